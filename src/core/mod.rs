//! The sans-IO core: no async, no clocks, no randomness, no IO.

pub mod id;
pub mod wire;
pub mod storage;
pub mod repo;
