//! holdfast: a local-first Automerge document sync engine whose one promise is
//! that nothing is reported until it is durable.
//!
//! [`core`] is the target-independent, sans-IO engine. Adapters (IndexedDB,
//! WebSockets, the server's log) live beside it and only move bytes.

pub mod core;
pub mod storage;
#[cfg(target_arch = "wasm32")]
pub mod web;
