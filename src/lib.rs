//! holdfast for the browser: a local-first Automerge document sync engine
//! whose one promise is that nothing is reported until it is durable.
//!
//! This crate is the thin IO layer around [`holdfast_core`] (the sans-IO
//! engine): IndexedDB storage ([`idb`]), the WebSocket transport ([`net`]),
//! the event loop that feeds the core its inputs and carries out its effects
//! ([`driver`]), and the wasm-bindgen exports the npm package wraps
//! ([`api`]; `api_history` for history, diffs and marks; for several tabs
//! on one database, `api_tabs`; [`ops`],
//! [`identity`]). It builds only for wasm32; on native
//! targets it is empty and hosts the workspace's integration tests
//! (`tests/`). The server is `crates/holdfast-server`, its storage
//! `crates/holdfast-log`.

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
mod api_history;
#[cfg(target_arch = "wasm32")]
mod api_tabs;
#[cfg(target_arch = "wasm32")]
pub mod cbor;
#[cfg(target_arch = "wasm32")]
pub mod driver;
#[cfg(target_arch = "wasm32")]
pub mod idb;
#[cfg(target_arch = "wasm32")]
pub mod identity;
#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
pub mod net;
#[cfg(target_arch = "wasm32")]
pub mod ops;
