//! The core's events as JS: settling the promises of local operations and
//! calling the application's event handler (`change`, `storage-error`,
//! `peer`, `sync-state`, ...).

use js_sys::Array;
use wasm_bindgen::prelude::*;

use super::{heads_js, Driver};
use crate::js::{iso_time, js_error, storage_error};
use crate::ops;
use holdfast_core::error::ErrorKind;
use holdfast_core::repo::{ChangeSource, Event, FindError};
use holdfast_core::storage::Storage;

impl<S: Storage + 'static> Driver<S> {
    /// Turn one core event into promise settlements and JS events.
    pub(super) fn dispatch(&self, e: Event) {
        match e {
            Event::ChangeDurable { change, heads, .. } => {
                let w = self.shared.state.borrow_mut().changes.remove(&change);
                self.settle(w, Ok(heads_js(&heads)));
            }
            Event::ChangeFailed { change, error, .. } => {
                let w = self.shared.state.borrow_mut().changes.remove(&change);
                self.settle(w, Err(storage_error(&error)));
            }
            Event::FindReady { find, .. } => {
                let w = self.shared.state.borrow_mut().finds.remove(&find);
                self.settle(w, Ok(JsValue::UNDEFINED));
            }
            Event::FindFailed { find, doc, error } => {
                let w = self.shared.state.borrow_mut().finds.remove(&find);
                let err = match error {
                    FindError::Unavailable => js_error(
                        ErrorKind::DocumentUnavailable,
                        &format!("document {doc} is not in storage and no peer has it"),
                    ),
                    FindError::Lost(reset) => js_error(
                        ErrorKind::DocumentLost,
                        &format!(
                            "document {doc} is not in storage and no peer has it, but this \
                             database lost data the browser had stored (detected {}: {reset}); \
                             the document may have existed here before",
                            iso_time(reset.detected_at)
                        ),
                    ),
                    FindError::Deleted => js_error(
                        ErrorKind::DocumentDeleted,
                        &format!("document {doc} was deleted"),
                    ),
                    FindError::Storage(e) => storage_error(&e),
                };
                self.settle(w, Err(err));
            }
            Event::DocChanged {
                doc,
                before,
                after,
                source,
            } => {
                let patches = {
                    let st = self.shared.state.borrow();
                    st.repo
                        .durable_doc(&doc)
                        .map(|d| ops::patches_to_js(&d.working().diff(&before, &after)))
                };
                let source = match source {
                    ChangeSource::Local => "local",
                    ChangeSource::Remote => "remote",
                    ChangeSource::Both => "both",
                    ChangeSource::Storage => "tab",
                };
                self.emit(&[
                    ("type", "change".into()),
                    ("documentId", doc.to_string().into()),
                    ("source", source.into()),
                    ("heads", heads_js(&after)),
                    ("patches", patches.unwrap_or_else(|| Array::new().into())),
                ]);
            }
            Event::StorageError { docs, error } => {
                let ids: Array = docs
                    .iter()
                    .map(|d| JsValue::from_str(&d.to_string()))
                    .collect();
                self.emit(&[
                    ("type", "storage-error".into()),
                    ("documentIds", ids.into()),
                    ("error", storage_error(&error)),
                ]);
            }
            Event::StorageRepaired { doc, quarantined } => {
                let keys: Array = quarantined
                    .iter()
                    .map(|k| k.0.iter().map(|s| JsValue::from_str(s)).collect::<Array>())
                    .collect();
                self.emit(&[
                    ("type", "storage-repaired".into()),
                    ("documentId", doc.to_string().into()),
                    ("quarantined", keys.into()),
                ]);
            }
            Event::DocDeleted { doc } => {
                self.emit(&[
                    ("type", "deleted".into()),
                    ("documentId", doc.to_string().into()),
                ]);
            }
            Event::PeerConnected { conn, peer_id, .. } => {
                self.shared.net.peer_joined(conn, peer_id.clone());
                self.emit(&[
                    ("type", "peer".into()),
                    ("peerId", peer_id.into()),
                    ("connected", true.into()),
                ]);
            }
            Event::PeerDisconnected { conn, peer_id } => {
                self.shared.net.peer_left(conn);
                if let Some(peer_id) = peer_id {
                    self.emit(&[
                        ("type", "peer".into()),
                        ("peerId", peer_id.into()),
                        ("connected", false.into()),
                    ]);
                }
            }
            Event::SyncStatus {
                doc,
                conn,
                covered,
                heads,
            } => {
                let peer = self.shared.net.peer(conn);
                if let Some(peer) = peer {
                    self.emit(&[
                        ("type", "sync-state".into()),
                        ("documentId", doc.to_string().into()),
                        ("peerId", peer.into()),
                        ("onServer", covered.into()),
                        ("heads", heads_js(&heads)),
                    ]);
                }
            }
            Event::ConnectionError { error, .. } => {
                web_sys::console::warn_1(&format!("holdfast: connection closed: {error}").into());
            }
            Event::AccessDenied { error, .. } => {
                web_sys::console::warn_1(&format!("holdfast: refused: {error}").into());
            }
            Event::Ephemeral { doc, sender, data } => {
                // Decoded here as automerge-repo decodes it; a payload that
                // is no CBOR still reaches the app as bytes.
                let (message, error) = match crate::cbor::decode(&data) {
                    Ok(m) => (m, JsValue::UNDEFINED),
                    Err(e) => (JsValue::UNDEFINED, e.into()),
                };
                self.emit(&[
                    ("type", "ephemeral".into()),
                    ("documentId", doc.to_string().into()),
                    ("senderId", sender.into()),
                    ("data", js_sys::Uint8Array::from(&data[..]).into()),
                    ("message", message),
                    ("messageError", error),
                ]);
            }
        }
    }
}
