//! Telling a database the browser reset from one that never held anything.
//!
//! A browser may discard an origin's IndexedDB data (a corrupt backing store
//! after a crash, storage pressure, the user clearing part of the site's
//! data). The database then opens empty, and without more a repo would
//! answer every `find` with "never existed". Two signals tell it apart:
//!
//! 1. **What the browser says.** Chromium sets `dataLoss` (`"none"` /
//!    `"total"`) and `dataLossMessage` on the `upgradeneeded` event of a
//!    database it had to discard. [`record_upgrade`] keeps them (and the old
//!    version) on the open request.
//! 2. **What the origin remembers.** Each database holds one record of
//!    holdfast's own, [`META_KEY`], with a random *identity* drawn when the
//!    database is first opened by holdfast. The origin also remembers the
//!    identity outside IndexedDB, in stores the browser does not reset
//!    together with it: a file in the origin private file system
//!    (`holdfast-indexeddb-<hash of the name>.identity`, durable as soon as
//!    its writer closes) and `localStorage` (`holdfast:indexeddb:<name>`;
//!    Chromium commits it seconds later, so it is the fallback where OPFS is
//!    missing). An open that finds the database without that record (created
//!    anew, from version 0) or with another identity, while the origin
//!    remembers one, is a reset. (Clearing all site data clears all of them,
//!    and is not reported: the user asked for it.)
//!
//! A detected reset is appended to the record's `resets` (so it is still
//! known after a reload) and reported by the repo as a `storage-reset`
//! event; from then on a document found nowhere fails with
//! `DocumentLostError` instead of `DocumentUnavailableError`.
//! [`crate::idb::delete_database`] forgets the identity first:
//! deleting through holdfast is not a loss.
//!
//! The record uses the store's usual layout (`{key, binary}`, `binary` is
//! UTF-8 JSON `{identity, created, resets: [{reason, detectedAt, detail}]}`)
//! under a key whose first component, `$holdfast`, is never a document id
//! (`$` is not in the base58 alphabet), so document prefix ranges and
//! automerge-repo never see it.

use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Event, IdbOpenDbRequest, IdbVersionChangeEvent};

use holdfast_core::storage::{ResetReason, StorageError, StorageKey, StorageReset};

/// The database as [`identify`] needs it: its name and single records read
/// and written whole. The IndexedDB adapter implements it (`crate::idb`
/// depends on this module, not the other way round).
#[allow(async_fn_in_trait)]
pub trait RecordStore {
    /// The database's name.
    fn name(&self) -> &str;
    /// Read the stored value under `key` as it is (`undefined` if absent).
    async fn get_value(&self, key: &StorageKey) -> Result<JsValue, StorageError>;
    /// Store `bytes` under `key` in one strict transaction; with `add`, fail
    /// with `Ok(false)` instead of overwriting an existing record.
    async fn put_value(
        &self,
        key: &StorageKey,
        bytes: &[u8],
        add: bool,
    ) -> Result<bool, StorageError>;
}

/// The key of holdfast's record about the database itself.
pub const META_KEY: [&str; 2] = ["$holdfast", "database"];

pub fn meta_key() -> StorageKey {
    StorageKey::new(META_KEY)
}

/// How many resets the record keeps (the newest ones).
const MAX_RESETS: usize = 16;

/// Property of the open request where [`record_upgrade`] leaves its notes.
const UPGRADE_PROP: &str = "holdfastUpgrade";

/// What the browser said on `upgradeneeded`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub old_version: u32,
    /// `dataLoss`: `"none"`, `"total"`, or empty where the browser lacks it.
    pub data_loss: String,
    pub data_loss_message: String,
}

impl Upgrade {
    /// What [`record_upgrade`] noted on `req`, if `upgradeneeded` fired.
    pub fn of_request(req: &IdbOpenDbRequest) -> Option<Upgrade> {
        let v = Reflect::get(req, &UPGRADE_PROP.into()).ok()?;
        if !v.is_object() {
            return None;
        }
        Some(Upgrade {
            old_version: number(&v, "oldVersion").unwrap_or(0.0) as u32,
            data_loss: string(&v, "dataLoss").unwrap_or_default(),
            data_loss_message: string(&v, "dataLossMessage").unwrap_or_default(),
        })
    }

    fn lost_data(&self) -> bool {
        !self.data_loss.is_empty() && self.data_loss != "none"
    }

    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "oldVersion", &self.old_version.into());
        set(&o, "dataLoss", &self.data_loss.as_str().into());
        set(
            &o,
            "dataLossMessage",
            &self.data_loss_message.as_str().into(),
        );
        o.into()
    }
}

/// Keep what the `upgradeneeded` event says on its request, for the open
/// that waits on it.
pub fn record_upgrade(req: &IdbOpenDbRequest, event: &Event) {
    let o = Object::new();
    if let Some(e) = event.dyn_ref::<IdbVersionChangeEvent>() {
        set(&o, "oldVersion", &e.old_version().into());
    }
    for prop in ["dataLoss", "dataLossMessage"] {
        let v = Reflect::get(event, &prop.into()).unwrap_or(JsValue::UNDEFINED);
        set(&o, prop, &v);
    }
    set(req, UPGRADE_PROP, &o);
}

/// The database's identity and history, as this open found them.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Random, drawn when holdfast first opened the database.
    pub identity: String,
    /// When that was (ms since the Unix epoch).
    pub created: u64,
    /// Every reset detected so far, oldest first (the newest `MAX_RESETS`).
    pub resets: Vec<StorageReset>,
    /// What the browser said if this open created or upgraded the database.
    pub upgrade: Option<Upgrade>,
    /// The reset this open detected, if any (also the last of `resets`).
    pub detected: Option<StorageReset>,
}

impl Identity {
    /// The newest reset, detected now or by an earlier open.
    pub fn last_reset(&self) -> Option<&StorageReset> {
        self.resets.last()
    }

    /// For diagnostics: `{identity, created, upgrade, resets}`.
    pub fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "identity", &self.identity.as_str().into());
        set(&o, "created", &(self.created as f64).into());
        set(
            &o,
            "upgrade",
            &self.upgrade.as_ref().map_or(JsValue::NULL, Upgrade::to_js),
        );
        let resets: Array = self.resets.iter().map(reset_to_js).collect();
        set(&o, "resets", &resets);
        o.into()
    }
}

/// `{reason, detectedAt, detail}`.
pub fn reset_to_js(r: &StorageReset) -> JsValue {
    let o = Object::new();
    set(&o, "reason", &r.reason.as_str().into());
    set(&o, "detectedAt", &(r.detected_at as f64).into());
    set(&o, "detail", &r.detail.as_str().into());
    o.into()
}

fn reset_from_js(v: &JsValue) -> Option<StorageReset> {
    Some(StorageReset {
        reason: ResetReason::parse(&string(v, "reason")?)?,
        detected_at: number(v, "detectedAt")? as u64,
        detail: string(v, "detail").unwrap_or_default(),
    })
}

/// Read (or create) the database's record, compare it with what the
/// browser said and what the origin remembers, record a reset if there was
/// one, and remember the identity.
pub async fn identify(
    storage: &impl RecordStore,
    upgrade: Option<Upgrade>,
) -> Result<Identity, StorageError> {
    let name = storage.name();
    let now = js_sys::Date::now() as u64;
    let memory = Memory::read(name).await;
    let remembered = memory.identity().cloned();
    let stored = read(storage).await?;

    let detected = if let Some(u) = upgrade.as_ref().filter(|u| u.lost_data()) {
        Some(StorageReset {
            reason: ResetReason::DataLoss,
            detected_at: now,
            detail: format!(
                "the browser discarded IndexedDB database {name:?} (dataLoss {:?}{})",
                u.data_loss,
                if u.data_loss_message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", u.data_loss_message)
                }
            ),
        })
    } else {
        match (&remembered, &stored) {
            (Some(known), None) => Some(StorageReset {
                reason: ResetReason::Recreated,
                detected_at: now,
                detail: format!(
                    "IndexedDB database {name:?} was created anew (from version {}) although \
                     this origin had used it before (identity {known})",
                    upgrade.as_ref().map_or(0, |u| u.old_version)
                ),
            }),
            (Some(known), Some(s)) if &s.identity != known => Some(StorageReset {
                reason: ResetReason::Recreated,
                detected_at: now,
                detail: format!(
                    "IndexedDB database {name:?} was replaced: this origin last used identity \
                     {known}, the database holds {}",
                    s.identity
                ),
            }),
            _ => None,
        }
    };

    let mut ident = match stored {
        Some(s) => s,
        None => {
            let fresh = Identity {
                identity: random_hex()?,
                created: now,
                resets: Vec::new(),
                upgrade: None,
                detected: None,
            };
            // `add`: two tabs opening a new database at once agree on the
            // first identity written.
            match storage.put_value(&meta_key(), &encode(&fresh), true).await {
                Ok(true) => fresh,
                Ok(false) => read(storage).await?.ok_or_else(|| {
                    StorageError::Aborted(
                        format!(
                            "database {name:?}: holdfast's record vanished while it was created"
                        )
                        .into(),
                    )
                })?,
                Err(e) => {
                    // E.g. a full quota: the database must still open (its
                    // data stays readable). Without a stored identity the
                    // origin remembers none either (else the next open would
                    // take the missing record for a reset).
                    unsaved(name, &e);
                    let mut ident = fresh;
                    ident.resets.extend(detected.clone());
                    ident.upgrade = upgrade;
                    ident.detected = detected;
                    return Ok(ident);
                }
            }
        }
    };
    if let Some(r) = &detected {
        ident.resets.push(r.clone());
        let excess = ident.resets.len().saturating_sub(MAX_RESETS);
        ident.resets.drain(..excess);
        if let Err(e) = storage.put_value(&meta_key(), &encode(&ident), false).await {
            // Reported now all the same; a later open will not know of it.
            unsaved(name, &e);
        }
    }
    memory.remember(name, &ident.identity).await;
    ident.upgrade = upgrade;
    ident.detected = detected;
    Ok(ident)
}

fn unsaved(name: &str, e: &StorageError) {
    web_sys::console::warn_1(
        &format!(
            "holdfast: could not store the identity record of IndexedDB database {name:?}: {e}"
        )
        .into(),
    );
}

async fn read(storage: &impl RecordStore) -> Result<Option<Identity>, StorageError> {
    let value = storage.get_value(&meta_key()).await?;
    if value.is_undefined() {
        return Ok(None);
    }
    // A record we cannot read is treated as absent (and rewritten): the
    // identity check then reports the database as recreated if the origin
    // remembers one, which is the truth as far as we can tell.
    Ok(decode(&value))
}

fn encode(ident: &Identity) -> Vec<u8> {
    let o = Object::new();
    set(&o, "identity", &ident.identity.as_str().into());
    set(&o, "created", &(ident.created as f64).into());
    let resets: Array = ident.resets.iter().map(reset_to_js).collect();
    set(&o, "resets", &resets);
    JSON::stringify(&o)
        .map(String::from)
        .unwrap_or_default()
        .into_bytes()
}

fn decode(value: &JsValue) -> Option<Identity> {
    let binary = Reflect::get(value, &"binary".into()).ok()?;
    let bytes = binary.dyn_ref::<js_sys::Uint8Array>()?.to_vec();
    let text = String::from_utf8(bytes).ok()?;
    let o = JSON::parse(&text).ok()?;
    let resets = Reflect::get(&o, &"resets".into()).ok()?;
    let resets = resets
        .dyn_ref::<Array>()
        .map(|a| a.iter().filter_map(|r| reset_from_js(&r)).collect())
        .unwrap_or_default();
    Some(Identity {
        identity: string(&o, "identity")?,
        created: number(&o, "created").unwrap_or(0.0) as u64,
        resets,
        upgrade: None,
        detected: None,
    })
}

fn random_hex() -> Result<String, StorageError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| {
        StorageError::Unavailable(format!("no randomness for an identity: {e}").into())
    })?;
    Ok(hex::encode(b))
}

// ------------------------------------------------------------ the origin's memory
//
// Two places outside IndexedDB that the browser clears with the site's data
// but not with an IndexedDB reset:
// - a file in the origin private file system (OPFS), written through a
//   writable stream whose `close()` puts it in place at once, so it survives
//   a crash right after the first open;
// - `localStorage`, where OPFS is missing (Chromium commits it to disk
//   seconds after a write, so alone it can miss a crash that soon).

fn marker(name: &str) -> String {
    format!("holdfast:indexeddb:{name}")
}

/// One file per database; the name is hashed (database names may hold any
/// character, file names may not).
fn opfs_file(name: &str) -> String {
    format!(
        "holdfast-indexeddb-{}.identity",
        &holdfast_core::storage::sha256_hex(name.as_bytes())[..32]
    )
}

/// `localStorage` where this global has one (not in workers; it may also
/// throw, e.g. with storage blocked): `None` then.
fn local_storage() -> Option<JsValue> {
    let ls = Reflect::get(&js_sys::global(), &"localStorage".into()).ok()?;
    (ls.is_object()).then_some(ls)
}

fn call(obj: &JsValue, method: &str, args: &[JsValue]) -> Option<JsValue> {
    let f = Reflect::get(obj, &method.into())
        .ok()?
        .dyn_into::<js_sys::Function>()
        .ok()?;
    f.apply(obj, &args.iter().collect::<Array>()).ok()
}

/// Call a method that returns a promise and await it; `None` if the method
/// is missing, throws or rejects.
async fn call_async(obj: &JsValue, method: &str, args: &[JsValue]) -> Option<JsValue> {
    let promise = call(obj, method, args)?
        .dyn_into::<js_sys::Promise>()
        .ok()?;
    wasm_bindgen_futures::JsFuture::from(promise).await.ok()
}

/// The OPFS root directory, where the browser has one.
async fn opfs_root() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let storage = Reflect::get(&navigator, &"storage".into()).ok()?;
    if !storage.is_object() {
        return None;
    }
    call_async(&storage, "getDirectory", &[]).await
}

async fn opfs_read(name: &str) -> Option<String> {
    let root = opfs_root().await?;
    let handle = call_async(&root, "getFileHandle", &[opfs_file(name).into()]).await?;
    let file = call_async(&handle, "getFile", &[]).await?;
    let text = call_async(&file, "text", &[]).await?.as_string()?;
    (!text.is_empty()).then_some(text)
}

/// Whether the file was written.
async fn opfs_write(name: &str, identity: &str) -> bool {
    let Some(root) = opfs_root().await else {
        return false;
    };
    let options = Object::new();
    set(&options, "create", &true.into());
    let Some(handle) = call_async(
        &root,
        "getFileHandle",
        &[opfs_file(name).into(), options.into()],
    )
    .await
    else {
        return false;
    };
    let Some(writable) = call_async(&handle, "createWritable", &[]).await else {
        return false;
    };
    if call_async(&writable, "write", &[identity.into()])
        .await
        .is_none()
    {
        call_async(&writable, "abort", &[]).await;
        return false;
    }
    call_async(&writable, "close", &[]).await.is_some()
}

/// What the origin remembers of database `name`, in each place.
struct Memory {
    opfs: Option<String>,
    local: Option<String>,
}

impl Memory {
    async fn read(name: &str) -> Memory {
        Memory {
            opfs: opfs_read(name).await,
            local: local_storage()
                .and_then(|ls| call(&ls, "getItem", &[marker(name).into()]))
                .and_then(|v| v.as_string()),
        }
    }

    /// The identity this origin last saw in the database.
    fn identity(&self) -> Option<&String> {
        self.opfs.as_ref().or(self.local.as_ref())
    }

    /// Remember `identity` wherever it is not yet.
    async fn remember(&self, name: &str, identity: &str) {
        if self.opfs.as_deref() != Some(identity) {
            opfs_write(name, identity).await;
        }
        if self.local.as_deref() != Some(identity) {
            if let Some(ls) = local_storage() {
                call(&ls, "setItem", &[marker(name).into(), identity.into()]);
            }
        }
    }
}

/// Forget database `name` (it is being deleted on purpose).
pub async fn forget(name: &str) {
    if let Some(root) = opfs_root().await {
        call_async(&root, "removeEntry", &[opfs_file(name).into()]).await;
    }
    if let Some(ls) = local_storage() {
        call(&ls, "removeItem", &[marker(name).into()]);
    }
}

// ------------------------------------------------------------ JS helpers

fn set(o: &JsValue, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

fn string(o: &JsValue, k: &str) -> Option<String> {
    Reflect::get(o, &JsValue::from_str(k)).ok()?.as_string()
}

fn number(o: &JsValue, k: &str) -> Option<f64> {
    Reflect::get(o, &JsValue::from_str(k)).ok()?.as_f64()
}
