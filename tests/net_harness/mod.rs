//! Shared helpers of the repo protocol tests (`mod net_harness;` in
//! `core_net.rs` and `core_net_acks.rs`): a repo driven by hand frame by
//! frame, its effects drained and decoded.
#![allow(dead_code)]

use holdfast_core::repo::*;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};

pub const T: Timestamp = Timestamp(5_000);
pub const C: ConnId = ConnId(1);

pub fn repo(peer: &str, announce: bool) -> Repo {
    let mut cfg = RepoConfig::new(peer, [peer.len() as u8; 16], format!("{peer}-session"));
    cfg.announce = announce;
    Repo::new(cfg)
}

pub fn drain(r: &mut Repo) -> Vec<Effect> {
    std::iter::from_fn(|| r.poll_effect()).collect()
}

pub fn sent(effects: &[Effect]) -> Vec<Message> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { frame, .. } => {
                Some(wire::decode(frame, &DecodeLimits::default()).unwrap())
            }
            _ => None,
        })
        .collect()
}

pub fn closed(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::Close { .. }))
}

pub fn frame(m: &Message) -> Vec<u8> {
    wire::encode(m)
}

pub fn join(sender: &str, versions: &[&str]) -> Vec<u8> {
    frame(&Message::Join {
        sender_id: sender.into(),
        peer_metadata: PeerMetadata::default(),
        supported_protocol_versions: versions.iter().map(|s| s.to_string()).collect(),
    })
}

/// A server-side repo with one joined client "client".
pub fn joined_server() -> Repo {
    let mut s = repo("server", false);
    s.connected(T, C, Direction::Incoming);
    s.frame(T, C, &join("client", &["1"]));
    let out = sent(&drain(&mut s));
    assert!(
        matches!(&out[..], [Message::Peer { target_id, selected_protocol_version, .. }]
        if target_id == "client" && selected_protocol_version == "1")
    );
    s
}

/// Complete every commit successfully until idle; return the other effects.
pub fn settle(r: &mut Repo) -> Vec<Effect> {
    let mut rest = Vec::new();
    loop {
        let effects = drain(r);
        let mut any = false;
        for e in effects {
            match e {
                Effect::Commit { task, .. } => {
                    any = true;
                    r.commit_done(T, task, Ok(()));
                }
                Effect::Load { task, .. } => {
                    any = true;
                    r.load_done(T, task, Ok(vec![]));
                }
                other => rest.push(other),
            }
        }
        if !any {
            return rest;
        }
    }
}
