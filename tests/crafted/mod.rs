//! Crafting change chunks for bad-input tests (`mod crafted;`).

use sha2::{Digest, Sha256};

/// `raw` (a short uncompressed change chunk: magic, checksum, type 1, a
/// one-byte body length) with its one-byte `seq` replaced and its checksum
/// recomputed (the first 4 bytes of SHA-256 over type, length and body).
pub fn with_seq(raw: &[u8], seq: u8) -> Vec<u8> {
    assert!(raw[8] == 1 && raw[9] < 0x80, "a short uncompressed change");
    let mut body = raw[10..].to_vec();
    let actor_len_at = 1 + 32 * usize::from(body[0]);
    let seq_at = actor_len_at + 1 + usize::from(body[actor_len_at]);
    assert!(body[seq_at] < 0x80, "a one-byte seq");
    body[seq_at] = seq;
    let mut h = Sha256::new();
    h.update([1u8, raw[9]]);
    h.update(&body);
    let sum: [u8; 32] = h.finalize().into();
    let mut out = raw[..4].to_vec();
    out.extend(&sum[..4]);
    out.extend(&raw[8..10]);
    out.extend(body);
    out
}
