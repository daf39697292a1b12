//! The exports for several tabs of one origin on one IndexedDB database
//! (`pkg/tabs.js` and `docs/design.md` §5e): a hint that another tab
//! committed, whether the leader tab's acknowledged heads cover this tab's,
//! and the index read again by a tab that takes the sync connection over.

use js_sys::Array;
use wasm_bindgen::prelude::*;

use crate::api::{parse_heads, WasmRepo};
use crate::js::{now, storage_error};
use holdfast_core::storage::Storage;

#[wasm_bindgen]
impl WasmRepo {
    /// Another tab of this origin committed to the document (a hint from
    /// its BroadcastChannel message): read its records again and merge
    /// what is new, reported as a `change` from source "tab" (or, if the
    /// other tab deleted it, as `deleted`). Returns whether the document is
    /// open here (if not, nothing is read).
    pub fn refresh(&self, document_id: &str) -> Result<bool, JsValue> {
        self.check_open()?;
        let id = self.live(document_id)?;
        Ok(self.driver().with_repo(|r| r.refresh(now(), id)))
    }

    /// Whether `heads` (as handed out; what a sync server acknowledged to the tab
    /// holding the connection) cover this tab's heads of the document.
    #[wasm_bindgen(js_name = coveredBy)]
    pub fn covered_by(&self, document_id: &str, heads: JsValue) -> Result<bool, JsValue> {
        let id = self.live(document_id)?;
        let heads = parse_heads(&heads)?;
        Ok(self.driver().with_repo(|r| r.covered_by(&id, &heads)))
    }

    /// Read the collection index again (other tabs wrote to it): before
    /// this tab connects to a server on behalf of all of them, and while
    /// it does. Resolves with the ids of documents not open here whose
    /// stored heads are new to this tab.
    #[wasm_bindgen(js_name = rereadCollection)]
    pub async fn reread_collection(&self) -> Result<Array, JsValue> {
        self.check_open()?;
        let records = self
            .driver()
            .storage()
            .range(&holdfast_core::collection::prefix())
            .await
            .map_err(|e| storage_error(&e))?;
        let changed = self.driver().with_repo(|r| r.reread_collection(records));
        Ok(changed
            .iter()
            .map(|id| JsValue::from_str(&id.to_string()))
            .collect())
    }

    /// The tab holding the sync connection found no server with the
    /// document: a find here waiting for one fails now.
    #[wasm_bindgen(js_name = unavailableElsewhere)]
    pub fn unavailable_elsewhere(&self, document_id: &str) -> Result<(), JsValue> {
        self.check_open()?;
        let id = self.live(document_id)?;
        self.driver()
            .with_repo(|r| r.unavailable_elsewhere(now(), id));
        Ok(())
    }

    /// [`WasmRepo::refresh`] every open document (the tab became visible:
    /// hints may have been missed).
    #[wasm_bindgen(js_name = refreshAll)]
    pub fn refresh_all(&self) -> Result<(), JsValue> {
        self.check_open()?;
        self.driver().with_repo(|r| r.refresh_all(now()));
        Ok(())
    }
}
