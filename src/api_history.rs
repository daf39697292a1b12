//! The exports that read a document's history and rich text: its changes
//! as heads (`history`), the patches between two points (`diff`), the
//! marks on a text (`marks`), and the heads codec (`encodeHeads`,
//! `decodeHeads`: bs58check `UrlHeads` and automerge's hex).

use js_sys::Array;
use wasm_bindgen::prelude::*;

use crate::api::{not_open, parse_heads, WasmRepo};
use crate::driver::heads_js;
use crate::js::js_error;
use crate::ops;
use holdfast_core::error::ErrorKind;

#[wasm_bindgen]
impl WasmRepo {
    /// The marks on the text at `path` (an array of keys and indices):
    /// `[{name, value, start, end}]`, positions in UTF-16 units.
    pub fn marks(&self, document_id: &str, path: JsValue) -> Result<JsValue, JsValue> {
        let id = self.live(document_id)?;
        let path = ops::decode_path(&path)
            .map_err(|e| js_error(ErrorKind::InvalidOptions, &e.to_string()))?;
        self.driver()
            .read(&id, |d| {
                let missing = |e: holdfast_core::edit::OpError| {
                    js_error(ErrorKind::InvalidOptions, &format!("marks: {e}"))
                };
                let (obj, ty) = holdfast_core::edit::resolve(d, &path).map_err(missing)?;
                if ty != automerge::ObjType::Text {
                    return Err(js_error(
                        ErrorKind::InvalidOptions,
                        "marks: the path does not lead to text",
                    ));
                }
                let marks = automerge::ReadDoc::marks(d, &obj)
                    .map_err(|e| js_error(ErrorKind::InvalidOptions, &e.to_string()))?;
                Ok(ops::marks_to_js(&marks))
            })
            .unwrap_or_else(|| Err(not_open(&id)))
    }

    /// Every change of the document, in causal order, each as the heads
    /// right after it (`[[<head>]]`, automerge-repo's `history()`).
    pub fn history(&self, document_id: &str) -> Result<JsValue, JsValue> {
        let id = self.live(document_id)?;
        self.driver()
            .read(&id, |d| {
                d.get_changes_meta(&[])
                    .iter()
                    .map(|c| heads_js(&[c.hash]))
                    .collect::<Array>()
                    .into()
            })
            .ok_or_else(|| not_open(&id))
    }

    /// The patches that take the document at `before` to it at `after`
    /// (its current heads when `after` is undefined); both bs58check or hex.
    pub fn diff(
        &self,
        document_id: &str,
        before: JsValue,
        after: JsValue,
    ) -> Result<JsValue, JsValue> {
        let id = self.live(document_id)?;
        let before = parse_heads(&before)?;
        let after = match after.is_undefined() {
            true => None,
            false => Some(parse_heads(&after)?),
        };
        self.driver()
            .read(&id, |d| {
                let missing = before
                    .iter()
                    .chain(after.iter().flatten())
                    .find(|h| d.get_change_meta_by_hash(h).is_none());
                if let Some(h) = missing {
                    return Err(js_error(
                        ErrorKind::DocumentUnavailable,
                        &format!("document {id} has no change {h}"),
                    ));
                }
                let after = after.clone().unwrap_or_else(|| d.get_heads());
                Ok(ops::patches_to_js(&d.diff(&before, &after)))
            })
            .unwrap_or_else(|| Err(not_open(&id)))
    }
}

/// `heads` (bs58check or hex) as bs58check `UrlHeads`.
#[wasm_bindgen(js_name = encodeHeads)]
pub fn encode_heads(heads: JsValue) -> Result<JsValue, JsValue> {
    Ok(heads_js(&parse_heads(&heads)?))
}

/// `heads` (bs58check or hex) as hex change hashes (`Automerge.getHeads`'s form).
#[wasm_bindgen(js_name = decodeHeads)]
pub fn decode_heads(heads: JsValue) -> Result<JsValue, JsValue> {
    Ok(parse_heads(&heads)?
        .iter()
        .map(|h| JsValue::from_str(&h.to_string()))
        .collect::<Array>()
        .into())
}
