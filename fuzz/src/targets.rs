//! The bodies of the coverage-guided (libFuzzer) targets in
//! `fuzz/libfuzzer/`, as plain functions: the `fuzz_target!`s there call
//! them, and `tests/libfuzzer_corpus.rs` replays the checked-in corpus
//! through them on stable Rust. Also the seeds the corpus started from.
//!
//! - [`frame_decode`]: `wire::decode` on any bytes; what decodes must
//!   re-encode to a frame that decodes to the same message, and encoding
//!   that message again must give the same bytes.
//! - [`repo_frames`]: one incoming connection to a server repo (as
//!   `holdfast-server` configures it: `announce = false`, validation on, the
//!   collection exchange on), the `join` handshake, then the input's
//!   records (see [`repo_frames`] for the format).
//!
//! A failed check panics. Under libFuzzer every panic aborts the process
//! (libfuzzer-sys's panic hook), even one the core catches in its own
//! isolation (`repo/unwind.rs`): with validation on, a panic inside
//! automerge is a finding. [`check`] runs an input with the same rule on
//! stable, through the panic hook of [`crate::install_panic_hook`].

use std::sync::OnceLock;

use holdfast_core::collection;
use holdfast_core::id::DocumentId;
use holdfast_core::repo::{ConnId, Direction, Timestamp};
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};

use crate::corpus::Corpus;
use crate::driver::{Driver, Image, Outcome};
use crate::format::{checksum, Chunk, SyncMsg, CHUNK_CHANGE, CHUNK_COMPRESSED};
use crate::panics::{captured, install_panic_hook, PanicSeen};
use crate::{PEER_ID, SERVER_ID};

mod seeds;
pub use seeds::seeds;

// ---------------------------------------------------------------------------
// frame_decode
// ---------------------------------------------------------------------------

/// `wire::decode` on `data`; if it decodes, the message survives
/// encode + decode unchanged, and its encoding is stable.
///
/// Holds because `decode` keeps nothing `encode` drops: unknown keys are
/// not in [`Message`], a repeated key keeps its last value, integers come
/// out as `u64` whatever their CBOR form (`encode` writes them back as a
/// uint or, between 2^32 and 2^53, as an exact float64), `null` and
/// `undefined` are absent fields as `encode` omits them, and a document id
/// is its 16 bytes.
pub fn frame_decode(data: &[u8]) {
    let limits = DecodeLimits::default();
    let Ok(msg) = wire::decode(data, &limits) else {
        return;
    };
    let bytes = wire::encode(&msg);
    let again = match wire::decode(&bytes, &limits) {
        Ok(m) => m,
        Err(e) => panic!("{msg:?} encodes to a frame that does not decode: {e}"),
    };
    assert_eq!(again, msg, "decode(encode(msg)) != msg");
    assert_eq!(wire::encode(&again), bytes, "encode is not stable");
}

// ---------------------------------------------------------------------------
// repo_frames
// ---------------------------------------------------------------------------

/// Separates the parts of a [`repo_frames`] input. Four bytes no seed
/// payload holds (checked when the seeds are made).
pub const SEP: &[u8] = b"\xf7HF|";

/// Records of one input beyond this are ignored (each may be a frame of up
/// to the whole input).
pub const MAX_RECORDS: usize = 64;

/// The kind of a record: the low two bits of its first byte.
pub const RAW: u8 = 0;
pub const SYNC: u8 = 1;
pub const REQUEST: u8 = 2;
pub const CONTROL: u8 = 3;
/// With [`SYNC`] / [`REQUEST`]: make every chunk checksum of the message
/// valid before sending it, so that mutated changes reach automerge.
pub const FIX_CHECKSUMS: u8 = 0b100;
/// With [`CONTROL`]: let time run to the repo's next timer (else:
/// disconnect and connect again, with a new `join`).
pub const TIMERS: u8 = 0b100;

/// The handshake byte's bits: what the `join` says.
pub const JOIN_HOLDFAST: u8 = 0b001;
pub const JOIN_STORAGE_ID: u8 = 0b010;
pub const JOIN_EPHEMERAL: u8 = 0b100;

/// Chunks inflated for [`FIX_CHECKSUMS`] up to this size (the checksum of a
/// compressed change is that of the change it inflates to).
const FIX_INFLATE_MAX: usize = 1 << 20;

/// What every input starts from: the corpus's storage image (the repo
/// holds some of its documents) and its document ids.
struct Base {
    image: Image,
    docs: Vec<DocumentId>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let c = Corpus::build();
        // The corpus's image was written without the collection index; a
        // server's has one (and, started empty, knows it is complete). Import the documents its image holds into a
        // repo with the index on.
        let mut from = Driver::new(true, c.image.clone());
        let mut to = Driver::new(true, Image::default());
        to.repo.restore_collection(Vec::new());
        // Empty, as a new server's store: its index will be complete, so
        // frames about documents it does not list take the no-read path.
        to.repo.store_started_empty();
        for id in &c.docs {
            from.now += 1;
            from.repo.find(Timestamp(from.now), *id);
            from.settle(None, &mut Outcome::default());
            if let Some(bytes) = from.repo.export(id) {
                to.import(*id, &bytes);
            }
        }
        Base {
            image: to.image,
            docs: c.docs,
        }
    })
}

/// The document a record's bits 3..8 name: one of the corpus's (the repo
/// holds most of them) or, from the 32 values, one nobody has.
fn doc(base: &Base, bits: u8) -> DocumentId {
    let i = usize::from(bits & 0x1f);
    base.docs.get(i).copied().unwrap_or_else(|| {
        let mut b = [0xa0 ^ bits; 16];
        b[15] = bits;
        DocumentId(b)
    })
}

/// The parts of `data` between separators.
fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        out.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    out.push(rest);
    out
}

/// `data` with the checksum of every whole chunk in its change list made
/// valid (parsed and re-encoded with the fuzzer's own sync message
/// parser); unchanged if it does not parse.
pub fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let Some(mut msg) = SyncMsg::parse(data) else {
        return data.to_vec();
    };
    for entry in &mut msg.changes {
        let Some(mut chunks) = Chunk::parse_all(entry) else {
            continue;
        };
        for c in &mut chunks {
            if c.typ == CHUNK_COMPRESSED {
                if let Some(inflated) = c.inflate(FIX_INFLATE_MAX) {
                    c.checksum = checksum(CHUNK_CHANGE, &inflated.body);
                }
            } else {
                c.fix_checksum();
            }
        }
        *entry = chunks.iter().flat_map(Chunk::encode).collect();
    }
    msg.encode()
}

/// A `join` as a client sends it; `bits` (the handshake byte) picks the
/// metadata.
pub fn join(bits: u8) -> Vec<u8> {
    wire::encode(&Message::Join {
        sender_id: PEER_ID.into(),
        peer_metadata: PeerMetadata {
            storage_id: (bits & JOIN_STORAGE_ID != 0).then(|| "fuzz-peer-storage".into()),
            is_ephemeral: bits & JOIN_EPHEMERAL != 0,
            holdfast: (bits & JOIN_HOLDFAST != 0).then_some(collection::VERSION),
            // No token: a server without access control (the default).
            ..PeerMetadata::default()
        },
        supported_protocol_versions: vec!["1".into()],
    })
}

/// A `sync` (or `request`) frame from the peer.
pub fn sync_frame(doc: DocumentId, request: bool, data: Vec<u8>) -> Vec<u8> {
    wire::encode(&Message::Sync {
        request,
        document_id: doc,
        sender_id: PEER_ID.into(),
        target_id: SERVER_ID.into(),
        data,
    })
}

/// One input's connection to a fresh server repo.
struct Session {
    d: Driver,
    hello: Vec<u8>,
    conn: Option<ConnId>,
    next_conn: u64,
    /// Every frame the repo sent, if kept (for the seeds of `frame_decode`).
    sent: Option<Vec<Vec<u8>>>,
}

impl Session {
    fn new(base: &Base, bits: u8, keep_sent: bool) -> Session {
        let mut d = Driver::new(true, base.image.clone());
        // As holdfast-server's start(): the collection index, then inputs.
        let records = d.image.range(&collection::prefix());
        d.repo.restore_collection(records);
        Session {
            d,
            hello: join(bits),
            conn: None,
            next_conn: 1,
            sent: keep_sent.then(Vec::new),
        }
    }

    fn check(&mut self, out: &Outcome) {
        assert!(
            !out.livelock,
            "the repo's effects did not settle after {} effects",
            crate::driver::MAX_EFFECTS
        );
        // What the repo sends, a peer can read.
        for f in &out.sent {
            match wire::decode(f, &DecodeLimits::default()) {
                Ok(Message::Sync { data, .. }) => {
                    if let Err(e) = automerge::sync::Message::decode(&data) {
                        panic!("the repo sent a sync message automerge cannot decode: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("the repo sent a frame that does not decode: {e}"),
            }
        }
        if let Some(sent) = &mut self.sent {
            sent.extend(out.sent.iter().cloned());
        }
    }

    /// A new incoming connection and the `join`; whether the repo answered
    /// `peer`.
    fn connect(&mut self) -> bool {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.d.now += 1;
        self.d
            .repo
            .connected(Timestamp(self.d.now), conn, Direction::Incoming);
        let hello = self.hello.clone();
        let out = self.d.frame(conn, &hello);
        self.check(&out);
        let ok = !out.closed
            && out.sent.iter().any(|f| {
                matches!(
                    wire::decode(f, &DecodeLimits::default()),
                    Ok(Message::Peer { .. })
                )
            });
        self.conn = (!out.closed).then_some(conn);
        ok
    }

    fn disconnect(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.d.close(conn);
        }
    }

    /// Sends a frame, on a new connection if the repo closed the last one.
    fn send(&mut self, frame: &[u8]) {
        if self.conn.is_none() && !self.connect() {
            return;
        }
        let Some(conn) = self.conn else { return };
        let out = self.d.frame(conn, frame);
        self.check(&out);
        if out.closed {
            self.conn = None;
        }
    }

    /// Lets time run to the repo's next timer (or by one millisecond).
    fn timers(&mut self) {
        let next = self.d.repo.poll_timeout().map_or(0, |t| t.0);
        self.d.now = next.max(self.d.now + 1);
        self.d.repo.handle_timeout(Timestamp(self.d.now));
        let mut out = Outcome::default();
        self.d.settle(self.conn, &mut out);
        self.check(&out);
        if out.closed {
            self.conn = None;
        }
    }

    fn record(&mut self, base: &Base, rec: &[u8]) {
        let Some((&h, payload)) = rec.split_first() else {
            return;
        };
        match h & 3 {
            RAW => self.send(payload),
            SYNC | REQUEST => {
                let data = if h & FIX_CHECKSUMS != 0 {
                    fix_checksums(payload)
                } else {
                    payload.to_vec()
                };
                self.send(&sync_frame(doc(base, h >> 3), h & 3 == REQUEST, data));
            }
            _ if h & TIMERS != 0 => self.timers(),
            _ => {
                self.disconnect();
                self.connect();
            }
        }
    }
}

/// The core's handling of what one peer sends a server.
///
/// Input: parts separated by [`SEP`]. The first part's first byte picks the
/// `join` ([`JOIN_HOLDFAST`], [`JOIN_STORAGE_ID`], [`JOIN_EPHEMERAL`]);
/// every later part is a record whose first byte is its kind (low two bits)
/// and its flags, the rest its payload:
///
/// - [`RAW`]: the payload is a frame, sent as is;
/// - [`SYNC`] / [`REQUEST`]: the payload is an automerge sync message, sent
///   in a `sync` / `request` frame for the document the byte's top five
///   bits name (eight the corpus holds, the rest unknown), after
///   [`fix_checksums`] with [`FIX_CHECKSUMS`];
/// - [`CONTROL`]: with [`TIMERS`], time runs to the repo's next timer;
///   without, the peer disconnects and connects again.
///
/// Each input starts from a fresh repo over the corpus's storage image;
/// `Load` and `Commit` effects complete at once. A frame sent after the
/// repo closed the connection goes to a new one. Asserted: the handshake
/// succeeds, the effects of every step settle, every frame the repo sends
/// decodes (and the sync messages in them too), and nothing panics.
pub fn repo_frames(data: &[u8]) {
    run_repo_frames(data, false);
}

/// [`repo_frames`], returning the frames the repo sent if `keep_sent`.
fn run_repo_frames(data: &[u8], keep_sent: bool) -> Vec<Vec<u8>> {
    let base = base();
    let parts = split(data);
    let bits = parts[0].first().copied().unwrap_or(0);
    let mut s = Session::new(base, bits, keep_sent);
    assert!(s.connect(), "the repo refused a valid join");
    for rec in parts.iter().skip(1).take(MAX_RECORDS) {
        s.record(base, rec);
    }
    s.disconnect();
    s.sent.unwrap_or_default()
}

/// Builds a [`repo_frames`] input from the handshake byte and records
/// (each a kind byte and a payload).
pub fn repo_input(bits: u8, records: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![bits];
    for (h, payload) in records {
        assert!(
            payload.windows(SEP.len()).all(|w| w != SEP),
            "a payload holds the separator"
        );
        out.extend_from_slice(SEP);
        out.push(*h);
        out.extend_from_slice(payload);
    }
    out
}

// ---------------------------------------------------------------------------
// Running an input on stable
// ---------------------------------------------------------------------------

/// A target body: any bytes in, a panic if a check fails.
pub type Target = fn(&[u8]);

/// The two targets, by the names of their `fuzz/libfuzzer` binaries.
pub const TARGETS: [(&str, Target); 2] =
    [("frame_decode", frame_decode), ("repo_frames", repo_frames)];

/// Runs `target` on `data` and returns every panic seen, caught by the core
/// or not (under libFuzzer, each would have aborted the process).
pub fn check(target: Target, data: &[u8]) -> Vec<PanicSeen> {
    install_panic_hook();
    // Outside the capture: the corpus is built once per process.
    let _ = base();
    captured(|| target(data)).1
}
