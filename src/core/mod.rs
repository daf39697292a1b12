//! The sans-IO core: no async, no clocks, no randomness, no IO.

pub mod edit;
pub mod id;
pub mod repo;
pub mod storage;
pub mod validate;
pub mod wire;
