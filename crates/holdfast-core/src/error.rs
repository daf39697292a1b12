//! The one table of error kinds holdfast reports to applications.
//!
//! Every kind is defined here once, with the stable `name` a JS `Error`
//! carries and what it means. The core's typed errors map onto it
//! ([`StorageError::kind`](crate::storage::StorageError::kind),
//! [`ChangeError::kind`](crate::repo::ChangeError::kind),
//! [`FindError::kind`](crate::repo::FindError::kind)); the browser crate
//! builds every JS error from an [`ErrorKind`], never from a string; and
//! `tests/error_table.rs` checks that `pkg/index.d.ts` (`HoldfastErrorName`)
//! and `pkg/index.js` (`ERROR_NAMES`, and every name its wrapper throws)
//! list exactly these names.

macro_rules! error_kinds {
    ($($(#[doc = $doc:literal])+ $kind:ident => $name:literal,)+) => {
        /// A kind of error an application can see. See the module docs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorKind {
            $($(#[doc = $doc])+ $kind,)+
        }

        impl ErrorKind {
            /// Every kind, in table order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind),+];

            /// The stable JS `Error.name`.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $name,)+
                }
            }

            /// What the error means (the table's doc comment).
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => concat!($($doc),+),)+
                }
            }
        }
    };
}

error_kinds! {
    /// The browser's storage quota or the server's disk is full; nothing of
    /// the failed commit was stored.
    QuotaExceeded => "QuotaExceededError",
    /// Storage cannot be reached: closed, deleted, blocked by another
    /// connection, or never opened.
    StorageUnavailable => "StorageUnavailableError",
    /// The storage transaction was aborted before it committed; none of its
    /// writes landed.
    StorageAborted => "StorageAbortedError",
    /// A record read back failed verification (it was set aside).
    StorageCorrupt => "StorageCorruptError",
    /// The operating system failed a read, write or sync (the server's log).
    StorageIo => "StorageIoError",
    /// Not an `automerge:` URL or a document id.
    InvalidDocumentUrl => "InvalidDocumentUrlError",
    /// Bytes given to `import` are not an Automerge document.
    InvalidDocument => "InvalidDocumentError",
    /// Heads given are not an array of hex change hashes of this document.
    InvalidHeads => "InvalidHeadsError",
    /// Options given to `Repo.open` (or another call) are not valid.
    InvalidOptions => "InvalidOptionsError",
    /// Not in storage and no peer has it (or the document is not open here).
    DocumentUnavailable => "DocumentUnavailableError",
    /// Not in storage and no peer has it, and this repo's database was reset
    /// by the browser: it may have existed here before.
    DocumentLost => "DocumentLostError",
    /// The document was deleted, or is being deleted.
    DocumentDeleted => "DocumentDeletedError",
    /// The document is still loading from storage.
    DocumentLoading => "DocumentLoadingError",
    /// A document with this id already exists.
    DocumentExists => "DocumentExistsError",
    /// The change function threw or its edits were invalid; nothing changed.
    ChangeRejected => "ChangeRejectedError",
    /// The repo was closed.
    RepoClosed => "RepoClosedError",
    /// `whenSynced()` on a repo opened without sync servers.
    NoSyncServer => "NoSyncServerError",
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_distinct_end_in_error_and_every_kind_has_a_meaning() {
        let names: BTreeSet<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            assert!(k.name().ends_with("Error"), "{k:?}");
            assert!(!k.meaning().trim().is_empty(), "{k:?}");
        }
    }
}
