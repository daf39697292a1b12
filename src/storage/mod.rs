//! Storage adapters implementing [`crate::core::storage::Storage`].

#[cfg(not(target_arch = "wasm32"))]
pub mod log;
pub mod memory;
