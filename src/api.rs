//! The wasm-bindgen surface that `pkg/index.js` wraps. Every method that
//! reports durability returns a promise settled by the core's events.
//! Errors are JS `Error`s with stable names (see [`js_error`]).

use std::cell::RefCell;
use std::str::FromStr;

use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::driver::{heads_js, Driver};
use crate::idb::IdbStorage;
use crate::js::{js_error, now, storage_error};
use crate::ops;
use holdfast_core::error::ErrorKind;
use holdfast_core::id::{AutomergeUrl, DocumentId};
use holdfast_core::memory::MemoryStorage;
use holdfast_core::repo::{ChangeError, ChangeId, Repo, RepoConfig};
use holdfast_core::storage::{Commit, Storage, StorageError, StorageKey};

/// The storage a browser repo runs on.
pub enum AnyStorage {
    Memory(MemoryStorage),
    IndexedDb(IdbStorage),
}

impl Storage for AnyStorage {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        match self {
            AnyStorage::Memory(s) => s.get(key).await,
            AnyStorage::IndexedDb(s) => s.get(key).await,
        }
    }
    async fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        match self {
            AnyStorage::Memory(s) => s.range(prefix).await,
            AnyStorage::IndexedDb(s) => s.range(prefix).await,
        }
    }
    async fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        match self {
            AnyStorage::Memory(s) => s.commit(commit).await,
            AnyStorage::IndexedDb(s) => s.commit(commit).await,
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N], JsValue> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        js_error(
            ErrorKind::StorageUnavailable,
            &format!("no randomness: {e}"),
        )
    })?;
    Ok(b)
}

/// Accepts `automerge:<id>`, `automerge:<id>#heads`, or a bare id.
pub fn parse_document_id(s: &str) -> Result<DocumentId, JsValue> {
    let parsed = if s.starts_with("automerge:") {
        AutomergeUrl::from_str(s)
            .map(|u| u.document_id)
            .map_err(|e| e.to_string())
    } else {
        DocumentId::from_str(s).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        js_error(
            ErrorKind::InvalidDocumentUrl,
            &format!("{s:?} is not a document URL or id: {e}"),
        )
    })
}

fn change_error(e: ChangeError) -> JsValue {
    js_error(e.kind(), &e.to_string())
}

#[wasm_bindgen]
pub struct WasmRepo {
    driver: Driver<AnyStorage>,
    durability: &'static str,
    closed: RefCell<bool>,
}

#[wasm_bindgen]
impl WasmRepo {
    /// `options`: `{ indexedDB: "<database name>" }` or `{ memory: true }`.
    pub async fn open(options: JsValue) -> Result<WasmRepo, JsValue> {
        let name = Reflect::get(&options, &"indexedDB".into())
            .ok()
            .and_then(|v| v.as_string());
        let memory = Reflect::get(&options, &"memory".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let mut reset = None;
        let (storage, durability) =
            match (name, memory) {
                (Some(name), false) => {
                    let s = IdbStorage::open(&name)
                        .await
                        .map_err(|e| storage_error(&e))?;
                    let d = s.durability().as_str();
                    reset = s.identity().last_reset().cloned();
                    (AnyStorage::IndexedDb(s), d)
                }
                (None, true) => (AnyStorage::Memory(MemoryStorage::new()), "memory"),
                _ => return Err(js_error(
                    ErrorKind::InvalidOptions,
                    "Repo.open needs exactly one of { indexedDB: \"<name>\" } or { memory: true }",
                )),
            };
        let sync = crate::net::sync_servers(&Reflect::get(&options, &"sync".into())?)
            .map_err(|m| js_error(ErrorKind::InvalidOptions, &m))?;
        for url in sync.iter().map(|s| &s.url) {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(js_error(
                    ErrorKind::InvalidOptions,
                    &format!("sync URL {url:?} must start with ws:// or wss://"),
                ));
            }
        }
        let peer = hex::encode(random::<8>()?);
        let session = hex::encode(random::<8>()?);
        let mut cfg = RepoConfig::new(format!("holdfast-{peer}"), random::<16>()?, session);
        if sync.is_empty() {
            // No peer will ever have it: a document absent from storage is
            // unavailable at once.
            cfg.find_timeout_ms = 0;
        }
        // Diagnostics: compact after this many incremental records (the
        // crash test makes compaction constant with a small value).
        if let Some(n) = Reflect::get(&options, &"compactAfter".into())
            .ok()
            .and_then(|v| v.as_f64())
            .filter(|n| *n >= 1.0)
        {
            cfg.compact_after = n as usize;
        }
        // The collection index (docs/design.md §5b): one range read, not
        // every document.
        let records = storage
            .range(&holdfast_core::collection::prefix())
            .await
            .map_err(|e| storage_error(&e))?;
        let mut core = Repo::new(cfg);
        core.restore_collection(records);
        if let Some(reset) = reset {
            core.storage_reset(reset);
        }
        let repo = WasmRepo {
            driver: Driver::new(core, storage),
            durability,
            closed: RefCell::new(false),
        };
        if !sync.is_empty() {
            // `syncPaused`: another tab may hold the connection for this
            // database; this one dials only once `goOnline()` is called.
            let paused = Reflect::get(&options, &"syncPaused".into())
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            repo.driver.set_sync_servers(sync, paused);
        }
        Ok(repo)
    }

    /// `"strict"`, `"default"` (the browser ignored the strict hint) or `"memory"`.
    #[wasm_bindgen(getter)]
    pub fn durability(&self) -> String {
        self.durability.to_string()
    }

    /// The newest reset of this database the browser made (see
    /// `web::identity`): `{reason, detectedAt, detail, detectedNow}`, where
    /// `detectedNow` says whether this open found it; `null` if none.
    #[wasm_bindgen(getter, js_name = storageReset)]
    pub fn storage_reset(&self) -> JsValue {
        let AnyStorage::IndexedDb(s) = self.driver.storage() else {
            return JsValue::NULL;
        };
        let ident = s.identity();
        let Some(last) = ident.last_reset() else {
            return JsValue::NULL;
        };
        let v = crate::identity::reset_to_js(last);
        let _ = Reflect::set(&v, &"detectedNow".into(), &ident.detected.is_some().into());
        v
    }

    /// Diagnostics: the database's identity record and what the browser
    /// said when this open created or upgraded it (`null` for memory).
    #[wasm_bindgen(getter, js_name = storageIdentity)]
    pub fn storage_identity(&self) -> JsValue {
        match self.driver.storage() {
            AnyStorage::IndexedDb(s) => s.identity().to_js(),
            AnyStorage::Memory(_) => JsValue::NULL,
        }
    }

    /// Delete IndexedDB database `name` on purpose (no repo may have it
    /// open): unlike a database the browser discarded, the next open does
    /// not report a reset.
    #[wasm_bindgen(js_name = deleteDatabase)]
    pub async fn delete_database(name: String) -> Result<(), JsValue> {
        crate::idb::delete_database(&name)
            .await
            .map_err(|e| storage_error(&e))
    }

    /// Create a document whose first change applies `ops`; resolves with its
    /// id once that change is durable.
    pub fn create(&self, ops: JsValue) -> Result<Promise, JsValue> {
        self.check_open()?;
        let id = DocumentId(random::<16>()?);
        let change = self
            .driver
            .with_repo(|r| r.create(now(), id, |tx| ops::apply_ops(tx, &ops)))
            .map_err(change_error)?;
        Ok(self
            .driver
            .await_change(change, Some(id.to_string().into())))
    }

    /// Apply `ops` as one change; resolves with the durable heads once the
    /// commit holding it completed.
    pub fn change(&self, document_id: &str, ops: JsValue) -> Result<Promise, JsValue> {
        self.check_open()?;
        let id = self.live(document_id)?;
        let (change, ()) = self
            .driver
            .with_repo(|r| r.change(now(), &id, |tx| ops::apply_ops(tx, &ops)))
            .map_err(change_error)?;
        Ok(self.driver.await_change(change, None))
    }

    /// Open a document from memory, storage or peers.
    pub fn find(&self, document_id: &str) -> Result<Promise, JsValue> {
        self.check_open()?;
        let id = parse_document_id(document_id)?;
        let find = self.driver.with_repo(|r| r.find(now(), id));
        Ok(self.driver.await_find(find, id.to_string().into()))
    }

    /// The document as plain JS values (durable state plus pending changes).
    pub fn doc(&self, document_id: &str) -> Result<JsValue, JsValue> {
        let id = self.live(document_id)?;
        self.driver
            .read(&id, |d| ops::to_js(d, None))
            .unwrap_or_else(|| Err(not_open(&id)))
    }

    /// The document as stored (durable), at `heads` (hex change hashes, as
    /// a `change` event carries them), as plain JS values. This is what a
    /// `change` event shows: never an edit that is not yet durable.
    #[wasm_bindgen(js_name = durableDoc)]
    pub fn durable_doc(&self, document_id: &str, heads: JsValue) -> Result<JsValue, JsValue> {
        let id = self.live(document_id)?;
        let heads = parse_heads(&heads)?;
        self.driver
            .read_durable(&id, |durable| {
                let d = durable.working();
                let mut now = d.get_heads();
                let mut want = heads.clone();
                now.sort();
                want.sort();
                if now == want {
                    return ops::to_js(d, None);
                }
                if let Some(h) = heads.iter().find(|h| !durable.has_change(h)) {
                    return Err(js_error(
                        ErrorKind::DocumentUnavailable,
                        &format!("document {id} has no durable change {h}"),
                    ));
                }
                ops::to_js(d, Some(&heads))
            })
            .unwrap_or_else(|| Err(not_open(&id)))
    }

    /// The document with text and counters marked, for the change proxy.
    pub fn draft(&self, document_id: &str) -> Result<JsValue, JsValue> {
        let id = self.live(document_id)?;
        self.driver
            .read(&id, ops::to_js_draft)
            .unwrap_or_else(|| Err(not_open(&id)))
    }

    pub fn heads(&self, document_id: &str) -> Result<JsValue, JsValue> {
        let id = self.live(document_id)?;
        self.driver
            .read(&id, |d| heads_js(&d.get_heads()))
            .ok_or_else(|| not_open(&id))
    }

    /// The durable document as `Automerge.save()` bytes.
    pub fn export(&self, document_id: &str) -> Result<Vec<u8>, JsValue> {
        let id = self.live(document_id)?;
        self.driver
            .with_repo(|r| r.export(&id))
            .ok_or_else(|| not_open(&id))
    }

    /// Store `bytes` (an Automerge document) as a new document; resolves with
    /// its id once durable.
    pub fn import(&self, bytes: &[u8]) -> Result<Promise, JsValue> {
        self.check_open()?;
        let id = DocumentId(random::<16>()?);
        let change = self
            .driver
            .with_repo(|r| r.import(now(), id, bytes))
            .map_err(change_error)?;
        Ok(self
            .driver
            .await_change(change, Some(id.to_string().into())))
    }

    /// Remove a document from storage once its pending changes are durable.
    pub fn delete(&self, document_id: &str) -> Result<Promise, JsValue> {
        self.check_open()?;
        let id = self.live(document_id)?;
        let change: ChangeId = self
            .driver
            .with_repo(|r| r.delete(now(), &id))
            .map_err(change_error)?;
        Ok(self.driver.await_change(change, Some(JsValue::UNDEFINED)))
    }

    /// `cb(event)` for `change`, `storage-error`, `storage-repaired`, `deleted`.
    #[wasm_bindgen(js_name = setEventHandler)]
    pub fn set_event_handler(&self, cb: Option<js_sys::Function>) {
        self.driver.set_handler(cb);
    }

    /// The ids of the documents open in this repo.
    pub fn documents(&self) -> Array {
        self.driver.with_repo(|r| {
            r.documents()
                .map(|d| JsValue::from_str(&d.to_string()))
                .collect()
        })
    }

    /// Refuse new work, wait until everything pending is durable (or has
    /// failed), then close the storage.
    pub async fn close(&self) -> Result<(), JsValue> {
        if self.closed.replace(true) {
            return Ok(());
        }
        // Cursors and acknowledged heads the collection keeps in memory for
        // a moment are written now, so the next start resumes from them.
        self.driver.with_repo(Repo::persist_collection);
        wasm_bindgen_futures::JsFuture::from(self.driver.when_idle()).await?;
        self.driver.go_offline();
        self.driver.cancel_timer();
        self.driver.reject_finds(&js_error(
            ErrorKind::RepoClosed,
            "the repo was closed before the document was found",
        ));
        if let AnyStorage::IndexedDb(s) = self.driver.storage() {
            s.close();
        }
        self.driver.set_handler(None);
        Ok(())
    }

    /// Diagnostics: `cb({puts, snapshots, quarantined, deletes,
    /// deletePrefixes})` as each commit is handed to IndexedDB (the browser
    /// crash test aims its kill at compaction commits with it).
    #[wasm_bindgen(js_name = setCommitObserver)]
    pub fn set_commit_observer(&self, cb: Option<js_sys::Function>) {
        self.driver.set_commit_observer(cb);
    }

    /// Test hook: after `skip` more commits reach IndexedDB, the next one
    /// fails inside it (a put with an invalid key makes the browser throw
    /// `DataError`; the transaction is aborted, none of its writes land).
    /// IndexedDB only; feature `test-hooks` (not in release builds).
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    #[wasm_bindgen(js_name = _failCommit)]
    pub fn fail_commit(&self, skip: u32) -> Result<(), JsValue> {
        match self.driver.storage() {
            AnyStorage::IndexedDb(s) => {
                s.inject_commit_fault_after(
                    skip as usize,
                    crate::idb::CommitFault::ThrowBeforePut(0),
                );
                Ok(())
            }
            AnyStorage::Memory(_) => Err(js_error(
                ErrorKind::InvalidOptions,
                "_failCommit needs an IndexedDB repo",
            )),
        }
    }

    /// `"online"` (a sync server is connected), `"connecting"` or `"offline"`.
    #[wasm_bindgen(getter)]
    pub fn status(&self) -> String {
        self.driver.status().to_string()
    }

    /// Close the sync connections and stay offline until `goOnline()`.
    #[wasm_bindgen(js_name = goOffline)]
    pub fn go_offline(&self) {
        self.driver.go_offline();
    }

    #[wasm_bindgen(js_name = goOnline)]
    pub fn go_online(&self) {
        self.driver.go_online();
    }

    /// Send an ephemeral message (e.g. presence) about a document to peers:
    /// `message` CBOR-encoded as automerge-repo encodes it (`cbor`).
    pub fn broadcast(&self, document_id: &str, message: JsValue) -> Result<(), JsValue> {
        self.check_open()?;
        let id = self.live(document_id)?;
        let data = crate::cbor::encode(&message)
            .map_err(|e| JsValue::from(js_sys::TypeError::new(&format!("broadcast: {e}"))))?;
        self.driver.with_repo(|r| r.broadcast(now(), id, data));
        Ok(())
    }

    /// Readwrite transactions committed so far (IndexedDB only; for tests
    /// and diagnostics).
    #[wasm_bindgen(getter, js_name = storageCommits)]
    pub fn storage_commits(&self) -> f64 {
        match self.driver.storage() {
            AnyStorage::IndexedDb(s) => s.commits() as f64,
            AnyStorage::Memory(_) => 0.0,
        }
    }
}

impl WasmRepo {
    pub fn driver(&self) -> &Driver<AnyStorage> {
        &self.driver
    }

    pub(crate) fn check_open(&self) -> Result<(), JsValue> {
        if *self.closed.borrow() {
            Err(js_error(ErrorKind::RepoClosed, "the repo is closed"))
        } else {
            Ok(())
        }
    }

    /// Parse an id. (The core refuses documents being deleted; the JS
    /// wrapper marks handles deleted once a delete has succeeded.)
    pub(crate) fn live(&self, document_id: &str) -> Result<DocumentId, JsValue> {
        parse_document_id(document_id)
    }
}

/// Heads given as an array of hex change hashes.
/// Heads from JS: each a bs58check `UrlHeads` entry (what holdfast hands
/// out, as automerge-repo 2.x does) or a 64-digit hex change hash (what
/// `Automerge.getHeads` returns).
pub(crate) fn parse_heads(v: &JsValue) -> Result<Vec<automerge::ChangeHash>, JsValue> {
    let bad =
        |detail: String| js_error(ErrorKind::InvalidHeads, &format!("invalid heads: {detail}"));
    let arr = v
        .dyn_ref::<Array>()
        .ok_or_else(|| bad("expected an array of change hashes (bs58check or hex)".into()))?;
    arr.iter()
        .map(|h| {
            let s = h
                .as_string()
                .ok_or_else(|| bad(format!("{h:?} is not a string")))?;
            if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                automerge::ChangeHash::from_str(&s).map_err(|e| bad(format!("{s:?}: {e}")))
            } else {
                holdfast_core::id::parse_head(&s).map_err(|e| bad(format!("{s:?}: {e}")))
            }
        })
        .collect()
}

pub(crate) fn not_open(id: &DocumentId) -> JsValue {
    js_error(
        ErrorKind::DocumentUnavailable,
        &format!("document {id} is not open in this repo (find it first)"),
    )
}
