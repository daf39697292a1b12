//! [`Storage`] on an open [`IdbStorage`]: reads on a shared readonly
//! transaction, every commit one strict readwrite transaction (module docs
//! of [`super`]), and the single-record reads and writes of holdfast's own
//! identity record ([`RecordStore`]).

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbObjectStore, IdbRequest, IdbTransaction};

use super::js::{
    binary_of, key_from_js, key_to_js, map_error, prefix_range, record, request_promise,
    transaction_promise, DatabaseWithOptions,
};
use super::{Durability, IdbStorage, STORE};
use crate::identity::RecordStore;
use holdfast_core::storage::{Commit, Storage, StorageError, StorageKey};

impl RecordStore for IdbStorage {
    fn name(&self) -> &str {
        IdbStorage::name(self)
    }

    /// Read the stored value under `key` as it is (`undefined` if absent).
    async fn get_value(&self, key: &StorageKey) -> Result<JsValue, StorageError> {
        let js_key = key_to_js(key);
        let req = self.read_request("reading a record", |store| store.get(&js_key))?;
        self.read("reading a record", &req).await
    }

    /// Store `bytes` under `key` in one strict transaction; with `add`, fail
    /// with `Ok(false)` instead of overwriting an existing record.
    async fn put_value(
        &self,
        key: &StorageKey,
        bytes: &[u8],
        add: bool,
    ) -> Result<bool, StorageError> {
        self.check_open()?;
        let tx = self.strict_transaction()?;
        let done = transaction_promise(&tx);
        let js_key = key_to_js(key);
        let issued = tx.object_store(STORE).and_then(|store| {
            let value = record(&js_key, bytes)?;
            let req = if add {
                store.add_with_key(&value, &js_key)?
            } else {
                store.put_with_key(&value, &js_key)?
            };
            Ok(req)
        });
        let req = match issued {
            Ok(req) => req,
            Err(e) => {
                let _ = tx.abort();
                let _ = JsFuture::from(done).await;
                return Err(self.fail("writing a record", &e));
            }
        };
        match JsFuture::from(done).await {
            Ok(_) => Ok(true),
            Err(_) => {
                let name = req
                    .error()
                    .ok()
                    .flatten()
                    .map(|e| e.name())
                    .unwrap_or_default();
                if add && name == "ConstraintError" {
                    return Ok(false);
                }
                Err(match tx.error() {
                    Some(e) => self.fail("writing a record", &e),
                    None => StorageError::Aborted("writing a record: transaction aborted".into()),
                })
            }
        }
    }
}

impl IdbStorage {
    fn check_open(&self) -> Result<(), StorageError> {
        self.state.check_open(&self.name)
    }

    /// A failure of `transaction()` or of a request, seen in the light of
    /// whether we know the connection is gone.
    fn fail(&self, context: &str, err: &JsValue) -> StorageError {
        match (&*self.state.closed.borrow(), map_error(context, err)) {
            (Some(why), StorageError::Aborted(msg)) => {
                let text = format!("{msg} ({why})");
                StorageError::Unavailable(msg.reworded(text))
            }
            (_, mapped) => mapped,
        }
    }

    pub(super) fn strict_transaction(&self) -> Result<IdbTransaction, StorageError> {
        let options = Object::new();
        Reflect::set(&options, &"durability".into(), &"strict".into())
            .map_err(|e| map_error("building transaction options", &e))?;
        self.db
            .unchecked_ref::<DatabaseWithOptions>()
            .transaction_with_options(STORE, "readwrite", &options)
            .map_err(|e| self.fail("starting a readwrite transaction", &e))
    }

    fn read_store(&self) -> Result<IdbObjectStore, StorageError> {
        self.check_open()?;
        let tx = self
            .db
            .transaction_with_str(STORE)
            .map_err(|e| self.fail("starting a read transaction", &e))?;
        let store = tx
            .object_store(STORE)
            .map_err(|e| self.fail("opening the object store", &e))?;
        *self.state.reader.borrow_mut() = Some(tx);
        Ok(store)
    }

    /// Issue one read with `issue` on the current readonly transaction if it
    /// is still active, else on a new one. (A transaction that is no longer
    /// active makes the request throw synchronously, nothing else happens.)
    fn read_request(
        &self,
        context: &str,
        issue: impl Fn(&IdbObjectStore) -> Result<IdbRequest, JsValue>,
    ) -> Result<IdbRequest, StorageError> {
        self.check_open()?;
        let current = self.state.reader.borrow().clone();
        if let Some(store) = current.and_then(|tx| tx.object_store(STORE).ok()) {
            if let Ok(req) = issue(&store) {
                return Ok(req);
            }
        }
        issue(&self.read_store()?).map_err(|e| self.fail(context, &e))
    }

    /// Await a read request; its error is mapped from `request.error`.
    async fn read(&self, context: &str, req: &IdbRequest) -> Result<JsValue, StorageError> {
        match JsFuture::from(request_promise(req)).await {
            Ok(_) => req.result().map_err(|e| self.fail(context, &e)),
            Err(_) => {
                let err = req.error().ok().flatten().map(JsValue::from);
                Err(match err {
                    Some(e) => self.fail(context, &e),
                    None => StorageError::Aborted(format!("{context}: the request failed").into()),
                })
            }
        }
    }

    /// Issue every operation of `commit` on `tx`. An `Err` means a call threw
    /// synchronously; the caller aborts the transaction.
    fn issue(&self, tx: &IdbTransaction, commit: Commit) -> Result<(), JsValue> {
        let store = tx.object_store(STORE)?;
        for key in &commit.deletes {
            store.delete(&key_to_js(key))?;
        }
        for prefix in &commit.delete_prefixes {
            store.delete(&prefix_range(prefix)?.into())?;
        }
        #[cfg(feature = "test-hooks")]
        let mut fault = self.state.faults.arm();
        for (key, bytes) in &commit.puts {
            let js_key = key_to_js(key);
            let value = record(&js_key, bytes)?;
            #[cfg(feature = "test-hooks")]
            fault.before_put(&store, &js_key, &value)?;
            store.put_with_key(&value, &js_key)?;
        }
        Ok(())
    }
}

impl Storage for IdbStorage {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        let js_key = key_to_js(key);
        let req = self.read_request("reading a record", |store| store.get(&js_key))?;
        let value = self.read("reading a record", &req).await?;
        if value.is_undefined() {
            return Ok(None);
        }
        binary_of(&value)
            .map(Some)
            .map_err(|detail| StorageError::Corrupt {
                key: key.clone(),
                detail,
            })
    }

    async fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let range = prefix_range(prefix).map_err(|e| self.fail("building a key range", &e))?;
        // One request: every stored value carries its own key (`{key,
        // binary}`, automerge-repo's layout), so no getAllKeys is needed.
        let req = self.read_request("reading records", |store| store.get_all_with_key(&range))?;
        let values: Array = self
            .read("reading records", &req)
            .await?
            .dyn_into()
            .map_err(|_| StorageError::Aborted("reading records: result is not an array".into()))?;
        let mut out = Vec::with_capacity(values.length() as usize);
        for v in values.iter() {
            let stored_key =
                Reflect::get(&v, &JsValue::from_str("key")).unwrap_or(JsValue::UNDEFINED);
            let key = key_from_js(&stored_key).map_err(|detail| StorageError::Corrupt {
                key: StorageKey::new([format!("{stored_key:?}")]),
                detail: format!("a record under {prefix} has no valid `key` field: {detail}"),
            })?;
            let bytes = binary_of(&v).map_err(|detail| StorageError::Corrupt {
                key: key.clone(),
                detail,
            })?;
            out.push((key, bytes));
        }
        Ok(out)
    }

    async fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        self.check_open()?;
        if commit.is_empty() {
            return Ok(());
        }
        let tx = self.strict_transaction()?;
        self.state.durability.set(Durability::of(&tx));
        let done = transaction_promise(&tx);
        let thrown = self.issue(&tx, commit).err();
        if thrown.is_some() {
            // Nothing of this transaction may land. The abort event settles
            // `done` (abort() cannot throw here: the transaction is active).
            let _ = tx.abort();
        }
        let settled = JsFuture::from(done).await;
        if let Some(e) = thrown {
            return Err(self.fail("commit", &e));
        }
        match settled {
            Ok(_) => {
                self.state.commits.set(self.state.commits.get() + 1);
                Ok(())
            }
            Err(_) => Err(match tx.error() {
                Some(e) => self.fail("commit", &e),
                None => match &*self.state.closed.borrow() {
                    Some(why) => StorageError::Unavailable(
                        format!("commit: transaction aborted ({why})").into(),
                    ),
                    None => StorageError::Aborted("commit: transaction aborted".into()),
                },
            }),
        }
    }
}
