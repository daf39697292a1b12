//! Storage adapters implementing [`crate::core::storage::Storage`].

pub mod memory;
