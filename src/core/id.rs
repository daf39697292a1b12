//! Document ids (16 random bytes, bs58check) and `automerge:` URLs.
//!
//! TODO(helper): implement.
