//! holdfast's sans-IO core: no async, no clocks, no randomness, no IO.
//!
//! Everything a holdfast node decides lives here, as plain values in and
//! out: document and peer ids ([`id`]), the automerge-repo wire format
//! ([`wire`]), the checks every byte from a peer passes before automerge sees
//! it ([`validate`]), the storage model every adapter implements
//! ([`storage`], with [`memory`] for the simulation), local edits ([`edit`])
//! and the repo state machine ([`repo`]). Adapters (IndexedDB and WebSockets
//! in the root crate, the log in `holdfast-log`, the server) only move bytes
//! and time in and effects out. The crate depends on no IO library;
//! `scripts/check-layers.sh` holds it to that.

pub mod collection;
pub mod dialer;
pub mod edit;
pub mod error;
pub mod id;
pub mod memory;
pub mod repo;
pub mod storage;
pub mod validate;
pub mod vecmap;
pub mod wire;
