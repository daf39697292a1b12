//! Access control over real sockets (`src/auth.rs`, the core's
//! `repo/access.rs`): tokens refused at the upgrade or at `join`, a
//! read-only token that cannot write (nothing stored, across a restart), a
//! token for one document that cannot tell another from a missing one,
//! ephemeral messages only to readers, the creator's ownership, a JWKS key,
//! and a connection closed when its token expires.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ChangeHash, ROOT};
use common::*;
use holdfast_core::id::DocumentId;
use holdfast_core::wire::{Message, PeerMetadata};
use holdfast_server::auth::Verifier;
use holdfast_server::Config;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const MAX_FRAME: usize = 1 << 20;
const SECRET: &[u8] = b"an HS256 secret of more than thirty-two bytes";

fn secured() -> Config {
    Config {
        auth: Some(Arc::new(Verifier::from_secret(SECRET))),
        ..config(None, MAX_FRAME)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token with `claims` plus `exp` an hour ahead (unless given).
fn token_with(secret: &[u8], mut claims: Value) -> String {
    if claims.get("exp").is_none() {
        claims["exp"] = json!(unix_now() + 3600);
    }
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn token(claims: Value) -> String {
    token_with(SECRET, claims)
}

fn full(sub: &str) -> String {
    token(json!({ "sub": sub, "read": "*", "write": "*", "create": true }))
}

fn with_token(url: &str, token: &str) -> String {
    format!("{url}?token={token}")
}

/// The upgrade's HTTP status and body when it is refused.
async fn refused(url: &str) -> (u16, String) {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => (
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// A raw connection with a URL token, joined.
async fn raw_with(url: &str, token: &str) -> Raw {
    let mut r = Raw::connect(&with_token(url, token)).await;
    r.join().await;
    r
}

fn request(raw: &Raw, doc: DocumentId) -> Message {
    empty_sync(doc, &raw.peer_id, "")
}

/// `empty_sync` addressed to the server (its peer id, from `peer`).
async fn ask(raw: &mut Raw, server_id: &str, doc: DocumentId) -> Message {
    let mut m = request(raw, doc);
    if let Message::Sync { target_id, .. } = &mut m {
        *target_id = server_id.to_string();
    }
    raw.send_msg(&m).await;
    next_msg(raw).await
}

async fn next_msg(raw: &mut Raw) -> Message {
    match raw.next().await {
        RawIn::Msg(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Join and return the server's peer id.
async fn joined(url: &str, token: &str) -> (Raw, String) {
    let mut r = Raw::connect(&with_token(url, token)).await;
    let server_id = r.join().await;
    (r, server_id)
}

/// The heads the server advertises for `doc` to a full-access reader.
async fn server_heads(url: &str, doc: DocumentId) -> Vec<ChangeHash> {
    let (mut r, sid) = joined(url, &full("auditor")).await;
    match ask(&mut r, &sid, doc).await {
        Message::Sync { data, .. } => sync::Message::decode(&data).unwrap().heads,
        other => panic!("expected the document, got {other:?}"),
    }
}

#[test]
fn bad_tokens_are_refused_at_the_upgrade_and_a_missing_one_at_join() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), secured()).await;
        let url = server.url();
        let expired = token(json!({ "sub": "a", "read": "*", "exp": unix_now() - 10 }));
        let forged = token_with(
            b"another secret, also long enough!!",
            json!({ "read": "*" }),
        );
        for (what, t, reason) in [
            ("expired", expired.as_str(), "token expired"),
            (
                "wrong signature",
                forged.as_str(),
                "invalid token signature",
            ),
            ("garbage", "not.a.jwt", "invalid token"),
        ] {
            let (status, body) = refused(&with_token(&url, t)).await;
            assert_eq!(status, 401, "{what}");
            assert!(body.contains(reason), "{what}: {body}");
        }
        // /sync too.
        let (status, _) = refused(&with_token(&ws_url(server.addr, "/sync"), &expired)).await;
        assert_eq!(status, 401);

        // No token on the URL: `join` must carry one.
        let mut r = Raw::connect(&url).await;
        let join = r.join_msg(&["1"]);
        r.send_msg(&join).await;
        let e = r.expect_error_and_close("join without a token").await;
        assert!(e.contains("authentication required"), "{e}");
        // A bad one there is refused the same way.
        let mut r = Raw::connect(&url).await;
        let mut join = r.join_msg(&["1"]);
        if let Message::Join { peer_metadata, .. } = &mut join {
            peer_metadata.token = Some(forged.clone());
        }
        r.send_msg(&join).await;
        let e = r.expect_error_and_close("join with a forged token").await;
        assert!(e.contains("signature"), "{e}");
        // A good one in `join` works like one on the URL.
        let mut r = Raw::connect(&url).await;
        let join = Message::Join {
            sender_id: r.peer_id.clone(),
            peer_metadata: PeerMetadata {
                token: Some(full("joiner")),
                ..Default::default()
            },
            supported_protocol_versions: vec!["1".into()],
        };
        r.send_msg(&join).await;
        assert!(matches!(next_msg(&mut r).await, Message::Peer { .. }));
        server.stop().await;
    });
}

#[test]
fn a_read_only_token_reads_but_cannot_write_and_nothing_is_stored() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), secured()).await;
        let url = server.url();
        let mut writer = Client::connect(&with_token(&url, &full("writer"))).await;
        let (x, created) = writer.create(|tx| tx.put(ROOT, "title", "by the writer"));
        writer.wait_durable(created).await;
        let heads = writer.heads(&x);
        writer.wait_acked(&x, &heads).await;

        // The reader syncs the document like any client.
        let read_only = token(json!({ "sub": "reader", "read": [x.to_string()] }));
        let mut reader = Client::connect(&with_token(&url, &read_only)).await;
        reader.find_doc(x).await;
        assert_eq!(
            get_str(&reader.doc(&x), "title").as_deref(),
            Some("by the writer")
        );

        // A change of its own is refused with an error; the connection stays.
        let (mut raw, sid) = joined(&url, &read_only).await;
        let mut doc = writer
            .doc(&x)
            .clone()
            .with_actor(automerge::ActorId::from([0x77; 16]));
        doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "title", "defaced"))
            .unwrap();
        let change = doc.get_last_local_change().unwrap();
        let mut new_heads = doc.get_heads();
        new_heads.sort();
        let data = sync::Message {
            heads: new_heads,
            need: vec![],
            have: vec![],
            changes: vec![change.raw_bytes().to_vec()].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        }
        .encode();
        raw.send_msg(&Message::Sync {
            request: false,
            document_id: x,
            sender_id: raw.peer_id.clone(),
            target_id: sid.clone(),
            data,
        })
        .await;
        match next_msg(&mut raw).await {
            Message::Error { message } => assert!(message.contains("may not write"), "{message}"),
            other => panic!("expected an error, got {other:?}"),
        }
        // Still connected, still reading.
        assert!(matches!(ask(&mut raw, &sid, x).await, Message::Sync { .. }));

        // Nothing stored: the server's heads are the writer's, now and after
        // a restart.
        assert_eq!(sorted(server_heads(&url, x).await), sorted(heads.clone()));
        writer.close().await;
        reader.close().await;
        server.stop().await;
        let server = InProc::start(dir.path(), secured()).await;
        assert_eq!(sorted(server_heads(&server.url(), x).await), sorted(heads));
        server.stop().await;
    });
}

#[test]
fn a_token_for_one_document_cannot_tell_another_from_a_missing_one() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), secured()).await;
        let url = server.url();
        let mut writer = Client::connect(&with_token(&url, &full("writer"))).await;
        let (a, _) = writer.create(|tx| tx.put(ROOT, "doc", "a"));
        let (b, created) = writer.create(|tx| tx.put(ROOT, "doc", "b"));
        writer.wait_durable(created).await;
        for id in [a, b] {
            let h = writer.heads(&id);
            writer.wait_acked(&id, &h).await;
        }
        let missing = random_doc_id();
        let only_a = token(json!({ "sub": "a-reader", "read": [a.to_string()] }));
        let (mut r, sid) = joined(&url, &only_a).await;
        assert!(matches!(ask(&mut r, &sid, a).await, Message::Sync { .. }));
        let for_b = ask(&mut r, &sid, b).await;
        let for_missing = ask(&mut r, &sid, missing).await;
        let unavailable = |id| Message::DocUnavailable {
            document_id: id,
            sender_id: sid.clone(),
            target_id: r.peer_id.clone(),
        };
        // Byte for byte (the encoder is deterministic) what a document
        // that does not exist gets, but for its id.
        assert_eq!(for_b, unavailable(b));
        assert_eq!(for_missing, unavailable(missing));
        // The same size but for the ids' own lengths (a bs58 id of 16
        // random bytes has 21 or 22 characters).
        assert_eq!(
            holdfast_core::wire::encode(&for_b).len() - b.to_string().len(),
            holdfast_core::wire::encode(&for_missing).len() - missing.to_string().len()
        );
        writer.close().await;
        server.stop().await;
    });
}

#[test]
fn ephemeral_messages_reach_only_readers() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), secured()).await;
        let url = server.url();
        let mut writer = Client::connect(&with_token(&url, &full("writer"))).await;
        let (x, created) = writer.create(|tx| tx.put(ROOT, "k", "v"));
        let (other, created2) = writer.create(|tx| tx.put(ROOT, "k", "w"));
        writer.wait_durable(created).await;
        writer.wait_durable(created2).await;
        for id in [x, other] {
            let h = writer.heads(&id);
            writer.wait_acked(&id, &h).await;
        }
        let (mut a, sid) = joined(&url, &full("a")).await;
        let (mut b, _) = joined(&url, &full("b")).await;
        let only_other = token(json!({ "read": [other.to_string()] }));
        let (mut c, _) = joined(&url, &only_other).await;
        for r in [&mut a, &mut b] {
            assert!(matches!(ask(r, &sid, x).await, Message::Sync { .. }));
        }
        assert!(matches!(
            ask(&mut c, &sid, x).await,
            Message::DocUnavailable { .. }
        ));
        let eph = |from: &Raw, count| Message::Ephemeral {
            sender_id: from.peer_id.clone(),
            target_id: sid.clone(),
            count,
            session_id: "session".into(),
            document_id: x,
            data: vec![0xa1, 0x61, 0x78, 0x01],
        };
        let m = eph(&a, 1);
        a.send_msg(&m).await;
        assert!(matches!(next_msg(&mut b).await, Message::Ephemeral { .. }));
        // c's next frame is the answer to what it asks now (frames to one
        // connection keep their order): no ephemeral came before it.
        assert!(matches!(
            ask(&mut c, &sid, other).await,
            Message::Sync { .. }
        ));
        // Nor is c's own ephemeral about x relayed: b's next frame is a's.
        let m = eph(&c, 1);
        c.send_msg(&m).await;
        let m = eph(&a, 2);
        a.send_msg(&m).await;
        match next_msg(&mut b).await {
            Message::Ephemeral {
                sender_id, count, ..
            } => assert_eq!((sender_id, count), (a.peer_id.clone(), 2)),
            other => panic!("{other:?}"),
        }
        writer.close().await;
        server.stop().await;
    });
}

#[test]
fn the_creator_owns_its_documents_across_tokens_and_restarts() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), secured()).await;
        let url = server.url();
        let creator = token(json!({ "sub": "alice", "create": true }));
        let mut alice = Client::connect(&with_token(&url, &creator)).await;
        let (x, created) = alice.create(|tx| tx.put(ROOT, "owner", "alice"));
        alice.wait_durable(created).await;
        let h = alice.heads(&x);
        alice.wait_acked(&x, &h).await;
        alice.close().await;

        // Bob may create too, but not read alice's document.
        let bob = token(json!({ "sub": "bob", "create": true }));
        let (mut r, sid) = joined(&url, &bob).await;
        assert!(matches!(
            ask(&mut r, &sid, x).await,
            Message::DocUnavailable { .. }
        ));

        // Alice with a token that lists nothing, after a restart.
        server.stop().await;
        let server = InProc::start(dir.path(), secured()).await;
        let plain = token(json!({ "sub": "alice" }));
        let mut alice = Client::connect(&with_token(&server.url(), &plain)).await;
        alice.find_doc(x).await;
        assert_eq!(get_str(&alice.doc(&x), "owner").as_deref(), Some("alice"));
        let change = alice.change(&x, |tx| tx.put(ROOT, "again", "yes"));
        alice.wait_durable(change).await;
        let h = alice.heads(&x);
        alice.wait_acked(&x, &h).await;
        alice.close().await;
        server.stop().await;
    });
}

#[test]
fn a_jwks_public_key_verifies_eddsa_tokens() {
    // An Ed25519 key pair made for this test (openssl genpkey): the
    // private key as PKCS#8 DER, the public key as a JWK.
    const PRIVATE: [u8; 48] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20, 0x27, 0x2c, 0x17, 0x8c, 0x0b, 0x5e, 0x0a, 0x10, 0x0a, 0x65, 0xa4, 0xf6, 0xe3, 0x2f,
        0x53, 0x3b, 0xd8, 0xb8, 0x4d, 0x5d, 0x13, 0xd0, 0x7d, 0x4e, 0xab, 0x35, 0xe5, 0xab, 0x30,
        0x26, 0x4d, 0xfb,
    ];
    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
        "x":"HZVHGzhQUCaNjzPAtHWtiaFI-qkk8MDHfL061Q7N8X4"}]}"#;
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, JWKS).unwrap();
        let data = dir.path().join("data");
        let config = Config {
            auth: Some(Arc::new(Verifier::from_jwks_file(&jwks).unwrap())),
            ..config(None, MAX_FRAME)
        };
        let server = InProc::start(&data, config).await;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let claims = json!({ "sub": "k", "read": "*", "exp": unix_now() + 60 });
        let key = EncodingKey::from_ed_der(&PRIVATE);
        let good = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        raw_with(&server.url(), &good).await;
        // An HS256 token (what a secret would sign) is refused here.
        let (status, _) = refused(&with_token(&server.url(), &full("x"))).await;
        assert_eq!(status, 401);
        server.stop().await;
    });
}

#[test]
fn a_connection_is_told_and_closed_when_its_token_expires() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), secured()).await;
        let short = token(json!({ "sub": "brief", "read": "*", "exp": unix_now() + 2 }));
        let mut r = raw_with(&server.url(), &short).await;
        let e = r.expect_error_and_close("expiry").await;
        assert_eq!(e, "access token expired");
        server.stop().await;
    });
}

#[test]
fn an_open_server_says_so_and_lets_everyone_in() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let mut a = Client::connect(&server.url()).await;
        let (x, created) = a.create(|tx| tx.put(ROOT, "k", "v"));
        a.wait_durable(created).await;
        let h = a.heads(&x);
        a.wait_acked(&x, &h).await;
        a.close().await;
        server.stop().await;
    });
    // The binary warns at start.
    let dir = tempfile::tempdir().unwrap();
    let mut p = ServerProc::spawn(dir.path(), &[]);
    p.sigint();
    run(async {
        p.wait_exit().await;
    });
    let out = p.output.lock().unwrap();
    assert!(
        out.iter()
            .any(|l| l.contains("WARN") && l.contains("running OPEN")),
        "{out:#?}"
    );
}
