//! What one frame may hold: the bounds [`decode`](super::decode) enforces.

/// The default [`DecodeLimits::max_frame_size`]: 100 MiB, the default
/// `maxPayload` of the `ws` server automerge-repo's Node adapter runs on, so
/// that any frame an automerge-repo server accepts, holdfast accepts too (a
/// first sync of a large document is one frame).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// How deeply arrays, maps and tags may nest inside a frame (the frame's own
/// map is depth 1). automerge-repo's messages nest at most 5 deep
/// (`newHeads.<storageId>.heads[i]`); the bound keeps skipping of unknown
/// values from recursing without limit.
pub const MAX_NESTING: usize = 32;

/// How many values (array elements, map keys and values) the fields holdfast
/// reads may hold in one frame. Bounds memory: a decoded value is ~40 bytes
/// while its CBOR can be one byte. Unknown keys are skipped, not counted.
pub const MAX_ITEMS: usize = 1 << 20;

/// The longest peer id, session id, storage id or message type a frame may
/// carry, in bytes (automerge-repo's are UUIDs or short random strings).
/// Longer ones are refused before anything stores, logs or echoes them.
pub const MAX_ID_LEN: usize = 1024;

/// Resource limits for [`decode`](super::decode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Frames longer than this are rejected before any parsing.
    pub max_frame_size: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}
