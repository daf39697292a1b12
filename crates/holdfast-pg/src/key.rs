//! Storage keys as PostgreSQL text: the components joined by U+001F, each
//! escaped so that U+001F never occurs inside one (and NUL, which a text
//! value cannot hold, never occurs at all).
//!
//! Invariant: a key `k` starts with prefix `p` (component-wise, as
//! [`StorageKey::starts_with`]) exactly when `text(k) == text(p)` or
//! `text(p) + SEP <= text(k) < text(p) + SEP_NEXT` in byte order (the
//! column's collation is "C"): separators are unambiguous, so the text
//! after `text(p) + SEP` always begins a new component.

use holdfast_core::storage::StorageKey;

const SEP: char = '\u{1f}';
const SEP_NEXT: char = '\u{20}';
const ESC: char = '\u{1e}';

fn escape(component: &str, out: &mut String) {
    for c in component.chars() {
        match c {
            ESC => out.push_str("\u{1e}1"),
            SEP => out.push_str("\u{1e}2"),
            '\0' => out.push_str("\u{1e}3"),
            c => out.push(c),
        }
    }
}

/// The text form of `key`.
pub fn encode(key: &StorageKey) -> String {
    let mut out = String::new();
    for (i, part) in key.0.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        escape(part, &mut out);
    }
    out
}

/// The key a text form names; `None` if it is not one [`encode`] makes.
pub fn decode(text: &str) -> Option<StorageKey> {
    let mut parts = Vec::new();
    for raw in text.split(SEP) {
        let mut part = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != ESC {
                part.push(c);
                continue;
            }
            part.push(match chars.next()? {
                '1' => ESC,
                '2' => SEP,
                '3' => '\0',
                _ => return None,
            });
        }
        parts.push(part);
    }
    Some(StorageKey(parts))
}

/// `(exact, low, high)`: a key starts with `prefix` iff its text equals
/// `exact` or lies in `[low, high)`.
pub fn prefix_bounds(prefix: &StorageKey) -> (String, String, String) {
    let exact = encode(prefix);
    let low = format!("{exact}{SEP}");
    let high = format!("{exact}{SEP_NEXT}");
    (exact, low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parts: &[&str]) -> StorageKey {
        StorageKey::new(parts.iter().copied())
    }

    #[test]
    fn round_trips_every_awkward_character() {
        for k in [
            key(&["a"]),
            key(&["$holdfast", "cursor", "x\u{1f}y\u{1e}z\0"]),
            key(&["", "", ""]),
            key(&["\u{1e}1", "\u{1e}"]),
        ] {
            assert_eq!(decode(&encode(&k)).as_ref(), Some(&k));
        }
        assert_eq!(decode("a\u{1e}9"), None);
    }

    #[test]
    fn the_prefix_bounds_select_exactly_the_keys_with_that_prefix() {
        let keys = [
            key(&["doc"]),
            key(&["doc", "snapshot", "ab"]),
            key(&["doc", "incremental", "cd"]),
            key(&["docx", "snapshot", "ab"]),
            key(&["do"]),
            key(&["doc\u{1f}", "x"]),
            key(&["doc\0"]),
            key(&["$holdfast", "doc", "doc"]),
        ];
        for prefix in [
            key(&["doc"]),
            key(&["doc", "snapshot"]),
            key(&["do"]),
            key(&["$holdfast"]),
        ] {
            let (exact, low, high) = prefix_bounds(&prefix);
            for k in &keys {
                let t = encode(k);
                let selected = t == exact
                    || (t.as_bytes() >= low.as_bytes() && t.as_bytes() < high.as_bytes());
                assert_eq!(selected, k.starts_with(&prefix), "{k:?} under {prefix:?}");
            }
        }
    }
}
