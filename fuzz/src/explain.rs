//! Describing frames for `--replay --explain` and `--ops`: what a sync
//! message and its chunks declare, and every operation automerge decodes.

use crate::format;

/// One line about a frame: its type and, for sync data, what the sync
/// message and its chunks declare.
pub fn describe_frame(frame: &[u8]) -> String {
    use holdfast_core::wire::{self, DecodeLimits, Message};
    let msg = match wire::decode(frame, &DecodeLimits::default()) {
        Ok(m) => m,
        Err(e) => return format!("{} bytes, not a message holdfast decodes: {e}", frame.len()),
    };
    let Message::Sync {
        request,
        document_id,
        data,
        ..
    } = &msg
    else {
        return format!("{} ({} bytes)", msg.type_name(), frame.len());
    };
    let kind = if *request { "request" } else { "sync" };
    let Some(m) = format::SyncMsg::parse(data) else {
        return format!(
            "{kind} {document_id}: {} bytes of data that do not parse as a sync message",
            data.len()
        );
    };
    let haves: Vec<String> = m
        .have
        .iter()
        .map(|h| match format::Bloom::parse(&h.bloom) {
            Some(b) => format!(
                "lastSync {} bloom(entries {}, bits/entry {}, probes {}, {} bytes of bits)",
                h.last_sync.len(),
                b.entries,
                b.bits_per_entry,
                b.probes,
                b.bits.len()
            ),
            None => format!(
                "lastSync {} bloom unparsable ({} bytes)",
                h.last_sync.len(),
                h.bloom.len()
            ),
        })
        .collect();
    let mut chunks = Vec::new();
    for entry in &m.changes {
        match format::Chunk::parse_all(entry) {
            None => chunks.push(format!("[{} bytes, not whole chunks]", entry.len())),
            Some(cs) => {
                for c in cs {
                    let (c, note) = match c.inflate(1 << 30) {
                        Some(i) => (i, format!("compressed {} -> ", c.body.len())),
                        None => (c, String::new()),
                    };
                    let ok = if c.checksum_valid() {
                        ""
                    } else {
                        " BAD-CHECKSUM"
                    };
                    let body = match (c.typ, format::ChangeBody::parse(&c.body)) {
                        (format::CHUNK_CHANGE, Some(b)) => format!(
                            " actor {}.. seq {} startOp {} deps {} others {} time {}",
                            hex::encode(&b.actor[..b.actor.len().min(4)]),
                            b.seq,
                            b.start_op,
                            b.deps.len(),
                            b.other_actors.len(),
                            b.time
                        ),
                        _ => String::new(),
                    };
                    chunks.push(format!(
                        "[type {} {note}{} bytes{ok}{body}]",
                        c.typ,
                        c.body.len()
                    ));
                }
            }
        }
    }
    format!(
        "{kind} {document_id}: v{} heads {} need {} have [{}] changes {}{} flags {:?}{}",
        m.version.wrapping_sub(0x41),
        m.heads.len(),
        m.need.len(),
        haves.join(", "),
        m.changes.len(),
        if chunks.is_empty() {
            String::new()
        } else {
            format!(" {}", chunks.join(" "))
        },
        m.flags.as_ref().map(hex::encode),
        if m.trailing.is_empty() {
            String::new()
        } else {
            format!(" +{} trailing bytes", m.trailing.len())
        }
    )
}

/// Every operation of every change chunk in a frame, as automerge decodes
/// them (for `--replay --explain --ops`). Chunks automerge refuses to parse
/// are named with the reason.
pub fn describe_ops(frame: &[u8]) -> Vec<String> {
    use holdfast_core::wire::{self, DecodeLimits, Message};
    let Ok(Message::Sync { data, .. }) = wire::decode(frame, &DecodeLimits::default()) else {
        return Vec::new();
    };
    let Some(m) = format::SyncMsg::parse(&data) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in &m.changes {
        for c in format::Chunk::parse_all(entry).unwrap_or_default() {
            let bytes = c.encode();
            let change = match automerge::Change::try_from(&bytes[..]) {
                Ok(ch) => ch,
                Err(e) => {
                    out.push(format!("chunk automerge refuses: {e}"));
                    continue;
                }
            };
            // `decode` itself panics on some chunks automerge parsed.
            let Ok(x) = std::panic::catch_unwind(|| change.decode()) else {
                out.push(format!(
                    "change {}: automerge's decode panics",
                    change.hash()
                ));
                continue;
            };
            out.push(format!(
                "change {} actor {} seq {} startOp {} deps {:?}",
                change.hash(),
                x.actor_id,
                x.seq,
                x.start_op,
                x.deps
            ));
            for (i, op) in x.operations.iter().enumerate() {
                out.push(format!(
                    "  {}: {:?} obj {:?} key {:?}{} pred {:?}",
                    x.start_op.get() + i as u64,
                    op.action,
                    op.obj,
                    op.key,
                    if op.insert { " insert" } else { "" },
                    op.pred.iter().collect::<Vec<_>>()
                ));
            }
        }
    }
    out
}

/// The bytes an input makes the core handle, at most: every frame, plus
/// what its compressed change chunks inflate to (up to the core's budget of
/// 64 per received byte; the core also stops where a change's header says
/// its columns end, which this does not model). Linear work is
/// proportional to this.
pub fn data_bytes(frames: &[Vec<u8>]) -> u64 {
    use holdfast_core::wire::{self, DecodeLimits, Message};
    let mut total = 0u64;
    for f in frames {
        total += f.len() as u64;
        let Ok(Message::Sync { data, .. }) = wire::decode(f, &DecodeLimits::default()) else {
            continue;
        };
        let Some(m) = format::SyncMsg::parse(&data) else {
            continue;
        };
        // The core inflates up to what is left of the message's budget,
        // then refuses the message.
        let mut budget = data.len().saturating_mul(64);
        for entry in &m.changes {
            for c in format::Chunk::parse_all(entry).unwrap_or_default() {
                if c.typ != format::CHUNK_COMPRESSED || budget == 0 {
                    continue;
                }
                let n = c.inflate(budget).map_or(budget, |i| i.body.len());
                total += n as u64;
                budget -= n;
            }
        }
    }
    total
}
