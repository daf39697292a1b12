//! IndexedDB storage — placeholder on main until the idb branch lands
//! (replaced on merge; API as agreed).
use crate::core::storage::{Commit, Storage, StorageError, StorageKey};

pub enum Durability {
    Strict,
    Default,
}
impl Durability {
    pub fn as_str(&self) -> &'static str {
        match self {
            Durability::Strict => "strict",
            Durability::Default => "default",
        }
    }
}
pub struct IdbStorage;
impl IdbStorage {
    pub async fn open(_name: &str) -> Result<IdbStorage, StorageError> {
        Err(StorageError::Unavailable("not yet".into()))
    }
    pub fn durability(&self) -> Durability {
        Durability::Default
    }
    pub fn commits(&self) -> u64 {
        0
    }
    pub fn close(&self) {}
}
impl Storage for IdbStorage {
    async fn get(&self, _key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        Err(StorageError::Unavailable("not yet".into()))
    }
    async fn range(&self, _p: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        Err(StorageError::Unavailable("not yet".into()))
    }
    async fn commit(&self, _c: Commit) -> Result<(), StorageError> {
        Err(StorageError::Unavailable("not yet".into()))
    }
}
pub async fn delete_database(_name: &str) -> Result<(), StorageError> {
    Err(StorageError::Unavailable("not yet".into()))
}
