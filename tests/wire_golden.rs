//! Golden wire tests against the real automerge-repo 2.5.6 packages.
//!
//! 1. Every frame in `tests/golden/` (written by automerge-repo's own encoder,
//!    see `tests/js/golden.mjs`) decodes with [`holdfast_core::wire::decode`]
//!    to the fields recorded in `tests/golden/expected.json`.
//! 2. Our [`encode`] of each of those messages decodes, with automerge-repo's
//!    own decoder (`node tests/js/golden.mjs check`), to the same fields.
//!
//! Needs node and `npm ci --prefix tests/js` (or `make test`); fails, never
//! skips, when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use holdfast_core::id::{AutomergeUrl, DocumentId};
use holdfast_core::wire::{decode, encode, DecodeLimits, Message, PeerMetadata};
use serde_json::{json, Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_dir() -> PathBuf {
    root().join("tests/golden")
}

fn expected() -> Value {
    let path = golden_dir().join("expected.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json is JSON")
}

fn frames(expected: &Value) -> &Vec<Value> {
    expected["frames"]
        .as_array()
        .expect("expected.json has frames")
}

fn bytes_json(b: &[u8]) -> Value {
    json!({ "$bytes": hex::encode(b) })
}

fn meta_json(m: &PeerMetadata) -> Value {
    let mut o = Map::new();
    if let Some(s) = &m.storage_id {
        o.insert("storageId".into(), json!(s));
    }
    o.insert("isEphemeral".into(), json!(m.is_ephemeral));
    if let Some(v) = m.holdfast {
        o.insert("holdfast".into(), json!(v));
    }
    Value::Object(o)
}

/// The JSON form of a message as automerge-repo holds it once decoded
/// (the format of `message` in expected.json): absent fields and empty
/// optional lists left out, byte strings as `{"$bytes": hex}`.
fn message_json(m: &Message) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(m.type_name()));
    let mut put = |k: &str, v: Value| {
        o.insert(k.into(), v);
    };
    let doc = |id: &DocumentId| json!(id.to_string());
    match m {
        Message::Join {
            sender_id,
            peer_metadata,
            supported_protocol_versions,
        } => {
            put("senderId", json!(sender_id));
            put("peerMetadata", meta_json(peer_metadata));
            if !supported_protocol_versions.is_empty() {
                put(
                    "supportedProtocolVersions",
                    json!(supported_protocol_versions),
                );
            }
        }
        Message::Peer {
            sender_id,
            target_id,
            peer_metadata,
            selected_protocol_version,
        } => {
            put("senderId", json!(sender_id));
            put("targetId", json!(target_id));
            put("peerMetadata", meta_json(peer_metadata));
            put("selectedProtocolVersion", json!(selected_protocol_version));
        }
        Message::Error { message } => put("message", json!(message)),
        Message::Leave { sender_id } => put("senderId", json!(sender_id)),
        Message::Sync {
            request: _,
            document_id,
            sender_id,
            target_id,
            data,
        } => {
            put("senderId", json!(sender_id));
            put("targetId", json!(target_id));
            put("documentId", doc(document_id));
            put("data", bytes_json(data));
        }
        Message::DocUnavailable {
            document_id,
            sender_id,
            target_id,
        } => {
            put("senderId", json!(sender_id));
            put("targetId", json!(target_id));
            put("documentId", doc(document_id));
        }
        Message::Ephemeral {
            sender_id,
            target_id,
            count,
            session_id,
            document_id,
            data,
        } => {
            put("senderId", json!(sender_id));
            put("targetId", json!(target_id));
            put("count", json!(count));
            put("sessionId", json!(session_id));
            put("documentId", doc(document_id));
            put("data", bytes_json(data));
        }
        Message::RemoteSubscriptionChange {
            sender_id,
            target_id,
            add,
            remove,
        } => {
            put("senderId", json!(sender_id));
            put("targetId", json!(target_id));
            if !add.is_empty() {
                put("add", json!(add));
            }
            if !remove.is_empty() {
                put("remove", json!(remove));
            }
        }
        Message::RemoteHeadsChanged {
            sender_id,
            target_id,
            document_id,
            new_heads,
        } => {
            put("senderId", json!(sender_id));
            put("targetId", json!(target_id));
            put("documentId", doc(document_id));
            let mut nh = Map::new();
            for (storage_id, heads, timestamp) in new_heads {
                nh.insert(
                    storage_id.clone(),
                    json!({ "heads": heads, "timestamp": timestamp }),
                );
            }
            put("newHeads", Value::Object(nh));
        }
        // holdfast's own (never sent to automerge-repo peers).
        Message::Resume {
            sender_id,
            target_id,
            since,
            held,
        } => {
            put("senderId", json!(sender_id));
            put("targetId", json!(target_id));
            if let Some(since) = since {
                put("since", json!(since));
            }
            put("data", bytes_json(held));
        }
        Message::Changed {
            sender_id,
            target_id,
            upto,
            docs,
        } => {
            put("senderId", json!(sender_id));
            put("targetId", json!(target_id));
            put("upto", json!(upto));
            put("data", bytes_json(docs));
        }
    }
    Value::Object(o)
}

fn decode_golden(entry: &Value) -> (String, Message) {
    let name = entry["name"].as_str().expect("frame name").to_owned();
    let file = golden_dir().join(entry["file"].as_str().expect("frame file"));
    let frame =
        std::fs::read(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let msg = decode(&frame, &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("{name}: holdfast cannot decode golden frame: {e}"));
    (name, msg)
}

#[test]
fn golden_frames_decode_to_expected_fields() {
    let expected = expected();
    let mut types = std::collections::BTreeSet::new();
    for entry in frames(&expected) {
        let (name, msg) = decode_golden(entry);
        assert_eq!(
            message_json(&msg),
            entry["message"],
            "{name}: decoded fields differ from expected.json"
        );
        types.insert(msg.type_name());
        if let Message::Sync { data, .. } = &msg {
            automerge::sync::Message::decode(data)
                .unwrap_or_else(|e| panic!("{name}: data is not an Automerge sync message: {e}"));
        }
    }
    for t in [
        "join",
        "peer",
        "error",
        "leave",
        "sync",
        "request",
        "doc-unavailable",
        "ephemeral",
        "remote-subscription-change",
        "remote-heads-changed",
    ] {
        assert!(types.contains(t), "no golden frame of type {t}");
    }
}

#[test]
fn golden_urls_parse_and_print() {
    let expected = expected();
    let urls = expected["urls"].as_array().expect("expected.json has urls");
    assert!(!urls.is_empty());
    for u in urls {
        let text = u["url"].as_str().expect("url");
        let url: AutomergeUrl = text
            .parse()
            .unwrap_or_else(|e| panic!("{text}: does not parse: {e}"));
        assert_eq!(
            hex::encode(url.document_id.as_bytes()),
            u["documentIdHex"].as_str().expect("documentIdHex"),
            "{text}"
        );
        let heads = url.heads.as_ref().map(|hs| {
            hs.iter()
                .map(|h| json!(hex::encode(h.0)))
                .collect::<Vec<_>>()
        });
        assert_eq!(
            heads.map(Value::Array).unwrap_or(Value::Null),
            u["headsHex"],
            "{text}"
        );
        assert_eq!(url.to_string(), text);
    }
}

fn require_js_deps() {
    let nm = root().join("tests/js/node_modules/@automerge/automerge-repo");
    assert!(
        nm.is_dir(),
        "tests/js/node_modules is missing: run `npm ci --prefix tests/js` (or `make test`) \
         before `cargo test`; the golden wire test needs the real automerge-repo 2.5.6 packages"
    );
}

fn run_js_check(dir: &Path) -> String {
    let out = Command::new("node")
        .arg(root().join("tests/js/golden.mjs"))
        .arg("check")
        .arg(dir)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (is node 20+ on PATH?): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "automerge-repo's decoder disagrees with holdfast's encoder:\n{stdout}\n{stderr}"
    );
    stdout
}

#[test]
fn our_encoding_decodes_in_automerge_repo() {
    require_js_deps();
    let expected = expected();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wire_golden_reencoded_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let mut entries = Vec::new();
    for entry in frames(&expected) {
        let (name, msg) = decode_golden(entry);
        let file = format!("{name}.cbor");
        std::fs::write(dir.join(&file), encode(&msg)).expect("write frame");
        entries.push(json!({
            "name": name,
            "file": file,
            "jsDecodable": true,
            "message": message_json(&msg),
            "ignoredKeys": [],
        }));
    }
    let n = entries.len();
    let doc = json!({ "generator": "tests/wire_golden.rs", "frames": entries, "urls": [] });
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&doc).expect("json"),
    )
    .expect("write expected.json");

    let stdout = run_js_check(&dir);
    print!("{stdout}");
    assert!(
        stdout.contains(&format!("golden check: {n} frames match, 0 rejected")),
        "unexpected summary: {stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn committed_golden_frames_pass_the_js_check() {
    require_js_deps();
    let stdout = run_js_check(&golden_dir());
    print!("{stdout}");
    assert!(stdout.contains("golden check:"), "{stdout}");
}

/// All committed golden frames, for mutation.
fn golden_frame_bytes() -> Vec<Vec<u8>> {
    let expected = expected();
    frames(&expected)
        .iter()
        .map(|e| {
            let file = golden_dir().join(e["file"].as_str().expect("frame file"));
            std::fs::read(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()))
        })
        .collect()
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Random edits of frames cbor-x really wrote (0xb9 map headers, 0xf7,
        /// float64 timestamps, ...) never make `decode` panic.
        #[test]
        fn mutated_golden_frames_never_panic(
            which in any::<prop::sample::Index>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
        ) {
            let all = golden_frame_bytes();
            let mut frame = all[which.index(all.len())].clone();
            for (at, byte, op) in edits {
                if frame.is_empty() {
                    frame.push(byte);
                    continue;
                }
                let i = at.index(frame.len());
                match op {
                    0 => frame[i] = byte,
                    1 => frame.insert(i, byte),
                    2 => {
                        frame.remove(i);
                    }
                    _ => frame.truncate(i),
                }
            }
            let _ = decode(&frame, &DecodeLimits::default());
        }
    }
}
