//! An in-memory [`Storage`]: for `Repo.open({ memory: true })`, examples and
//! tests. Commits are atomic; nothing survives the process, so it reports no
//! durability beyond the process's own life.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::storage::{Commit, Storage, StorageError, StorageKey};

#[derive(Default)]
pub struct MemoryStorage {
    records: RefCell<BTreeMap<StorageKey, Vec<u8>>>,
    closed: RefCell<bool>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every later call fail with [`StorageError::Unavailable`], as a
    /// closed database does.
    pub fn close(&self) {
        *self.closed.borrow_mut() = true;
    }

    fn check_open(&self) -> Result<(), StorageError> {
        if *self.closed.borrow() {
            Err(StorageError::Unavailable(
                "the memory store was closed".into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl Storage for MemoryStorage {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.check_open()?;
        Ok(self.records.borrow().get(key).cloned())
    }

    async fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        self.check_open()?;
        Ok(self
            .records
            .borrow()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn is_empty(&self) -> Result<bool, StorageError> {
        self.check_open()?;
        Ok(self.records.borrow().is_empty())
    }

    async fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        self.check_open()?;
        let mut records = self.records.borrow_mut();
        for k in commit.deletes {
            records.remove(&k);
        }
        for prefix in commit.delete_prefixes {
            records.retain(|k, _| !k.starts_with(&prefix));
        }
        for (k, v) in commit.puts {
            records.insert(k, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// The memory store's futures never wait, so one poll completes them.
    fn now<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("memory storage future was pending"),
        }
    }

    fn key(parts: &[&str]) -> StorageKey {
        StorageKey::new(parts.iter().copied())
    }

    #[test]
    fn range_returns_exactly_the_prefix_in_key_order() {
        let s = MemoryStorage::new();
        let commit = Commit {
            puts: vec![
                (key(&["b", "x"]), vec![2]),
                (key(&["a", "snapshot", "1"]), vec![1]),
                (key(&["a", "incremental", "2"]), vec![3]),
                (key(&["ab", "x"]), vec![4]),
            ],
            ..Default::default()
        };
        now(s.commit(commit)).unwrap();
        let got = now(s.range(&key(&["a"]))).unwrap();
        let keys: Vec<_> = got.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![
                key(&["a", "incremental", "2"]),
                key(&["a", "snapshot", "1"])
            ]
        );
        assert_eq!(now(s.get(&key(&["b", "x"]))).unwrap(), Some(vec![2]));
    }

    #[test]
    fn deletes_apply_with_the_puts_and_a_closed_store_fails_typed() {
        let s = MemoryStorage::new();
        now(s.commit(Commit {
            puts: vec![(key(&["a", "1"]), vec![1])],
            ..Default::default()
        }))
        .unwrap();
        now(s.commit(Commit {
            puts: vec![(key(&["a", "2"]), vec![2])],
            deletes: vec![key(&["a", "1"])],
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(now(s.range(&key(&["a"]))).unwrap().len(), 1);
        s.close();
        assert!(matches!(
            now(s.get(&key(&["a", "2"]))),
            Err(StorageError::Unavailable(_))
        ));
    }
}
