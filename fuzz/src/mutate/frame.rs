//! Frame level: a frame before encoding ([`Frame`]), its CBOR written by
//! hand, and the mutations of its fields (message type, documentId, sender,
//! target).

use holdfast_core::id::DocumentId;
use rand::{Rng, RngExt};

use super::Gen;
use crate::{PEER_ID, SERVER_ID};

/// A frame before encoding.
#[derive(Clone, Debug)]
pub struct Frame {
    pub ty: String,
    pub doc: String,
    pub sender: String,
    pub target: String,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn sync(doc: &DocumentId, request: bool, data: Vec<u8>) -> Frame {
        Frame {
            ty: if request { "request" } else { "sync" }.into(),
            doc: doc.to_string(),
            sender: PEER_ID.into(),
            target: SERVER_ID.into(),
            data,
        }
    }

    /// The frame as CBOR, written by hand so that any field value (a
    /// documentId that is no document id) can be sent.
    pub fn encode(&self) -> Vec<u8> {
        let mut c = Cbor(Vec::new());
        let s = |c: &mut Cbor, k: &str, v: &str| {
            c.text(k);
            c.text(v);
        };
        match self.ty.as_str() {
            "leave" => {
                c.map(2);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
            }
            "join" => {
                c.map(4);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                c.text("peerMetadata");
                c.map(1);
                c.text("isEphemeral");
                c.0.push(0xf4);
                c.text("supportedProtocolVersions");
                c.array(1);
                c.text("1");
            }
            "doc-unavailable" => {
                c.map(4);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                s(&mut c, "documentId", &self.doc);
            }
            "ephemeral" => {
                c.map(7);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                c.text("count");
                c.head(0, self.data.len() as u64 + 1);
                s(&mut c, "sessionId", "fuzz-session");
                s(&mut c, "documentId", &self.doc);
                c.text("data");
                c.bytes(&self.data);
            }
            "remote-heads-changed" => {
                c.map(5);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                s(&mut c, "documentId", &self.doc);
                c.text("newHeads");
                c.map(1);
                c.text("storage-1");
                c.map(2);
                c.text("heads");
                c.array(1);
                c.text(&hex::encode(&self.data));
                c.text("timestamp");
                c.head(0, 1_700_000_000_000);
            }
            "remote-subscription-change" => {
                c.map(5);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                c.text("add");
                c.array(1);
                c.text(&self.doc);
                c.text("remove");
                c.array(0);
            }
            _ => {
                c.map(5);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                s(&mut c, "documentId", &self.doc);
                c.text("data");
                c.bytes(&self.data);
            }
        }
        c.0
    }
}

struct Cbor(Vec<u8>);

impl Cbor {
    fn head(&mut self, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => self.0.push(m | n as u8),
            24..=0xff => self.0.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                self.0.push(m | 25);
                self.0.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(m | 26);
                self.0.extend((n as u32).to_be_bytes());
            }
            _ => {
                self.0.push(m | 27);
                self.0.extend(n.to_be_bytes());
            }
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.head(2, b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, s: &str) {
        self.head(3, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn array(&mut self, n: u64) {
        self.head(4, n);
    }
    fn map(&mut self, n: u64) {
        self.head(5, n);
    }
}

impl<'a> Gen<'a> {
    pub(super) fn frame(&mut self, f: &mut Frame) {
        match self.rng.random_range(0..12) {
            0 => f.ty = if f.ty == "sync" { "request" } else { "sync" }.into(),
            1 => {
                f.ty = self
                    .pick(&[
                        "doc-unavailable",
                        "ephemeral",
                        "remote-heads-changed",
                        "remote-subscription-change",
                        "leave",
                        "join",
                    ])
                    .into()
            }
            2..=4 => {
                // Another document's id: this message's changes and hashes
                // meet a document they do not belong to.
                let d = self.pick(&self.corpus.docs);
                f.doc = d.to_string();
            }
            5 => {
                let mut b = [0u8; 16];
                self.rng.fill_bytes(&mut b);
                f.doc = DocumentId(b).to_string();
            }
            6 => {
                let n = self.pick(&[100usize, 10_000, 1 << 20]);
                f.doc = "x".repeat(n);
            }
            7 => {
                // A valid id with one character changed (fails bs58check).
                let mut s: Vec<u8> = f.doc.clone().into_bytes();
                if !s.is_empty() {
                    let j = self.rng.random_range(0..s.len());
                    s[j] =
                        self.pick(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0Il");
                }
                f.doc = String::from_utf8(s).unwrap_or_default();
            }
            8 => f.doc = String::new(),
            9 => f.sender = self.pick(&["", "mallory", SERVER_ID]).into(),
            10 => f.target = self.pick(&["", "elsewhere", PEER_ID]).into(),
            _ => {
                // `request` carrying changes, or `sync` with empty data.
                if self.chance(0.5) {
                    f.ty = "request".into();
                } else {
                    f.data.clear();
                }
            }
        }
    }
}
