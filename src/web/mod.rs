//! The browser adapters (wasm32 only): IndexedDB storage, the event loop
//! that drives the core, and the wasm-bindgen exports the npm package wraps.

pub mod api;
pub mod driver;
pub mod idb;
pub mod identity;
pub mod net;
pub mod ops;
