//! Several servers on one database: each commit notifies the others of
//! the documents it wrote (`NOTIFY holdfast_commits`, sent in the commit's
//! transaction, so delivered only once it committed), and
//! [`PgStorage::watch`] turns the others' notifications into
//! [`StoreHint`]s for the server's repo.
//!
//! Invariants: a notification is only a hint. Whenever one may have been
//! missed (the listening connection was lost and made again, or it could
//! not be made), and every `recheck` besides, the watcher says
//! [`StoreHint::Unknown`]: the repo reads every document it holds again.

use std::time::Duration;

use futures_util::StreamExt;
use holdfast_core::id::DocumentId;
use holdfast_core::storage::{key_doc, Commit, StoreHint};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::PgStorage;

pub const CHANNEL: &str = "holdfast_commits";

/// PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;

/// The notifications for `commit` by `node`: `"<node>\t<id>,<id>…"`, split
/// so that each stays under PostgreSQL's limit.
pub fn payloads(node: &str, commit: &Commit) -> Vec<String> {
    let mut ids: Vec<DocumentId> = commit
        .puts
        .iter()
        .map(|(k, _)| k)
        .chain(&commit.deletes)
        .chain(&commit.delete_prefixes)
        .filter_map(key_doc)
        .collect();
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    let mut cur = String::new();
    for id in ids {
        let id = id.to_string();
        if !cur.is_empty() && cur.len() + id.len() + 1 > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if cur.is_empty() {
            cur = format!("{node}\t{id}");
        } else {
            cur.push(',');
            cur.push_str(&id);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The documents a notification names, unless `node` sent it.
fn parse(payload: &str, node: &str) -> Option<Vec<DocumentId>> {
    let (from, ids) = payload.split_once('\t')?;
    if from == node {
        return None;
    }
    Some(ids.split(',').filter_map(|s| s.parse().ok()).collect())
}

impl PgStorage {
    /// The other nodes' commits as hints, from a connection of its own
    /// that listens (made again after a loss, with a growing pause up to
    /// 5 s), and [`StoreHint::Unknown`] after each (re)connection and
    /// every `recheck`. Runs until the receiver is dropped. Needs
    /// [`crate::PgOptions::node`].
    pub fn watch(&self, recheck: Duration) -> mpsc::UnboundedReceiver<StoreHint> {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = self.config.clone();
        let node = self.node.clone().unwrap_or_else(|| "".into());
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            let mut tick = tokio::time::interval(recheck);
            tick.tick().await;
            loop {
                let connected = config.connect(NoTls).await;
                let (client, mut connection) = match connected {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for other nodes' commits; trying again");
                        if tx.send(StoreHint::Unknown).is_err() {
                            return;
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                // A task drives the connection and hands on its notifications.
                let (ntx, mut notes) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                if ntx.send(n).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the connection listening for other nodes' commits");
                                return;
                            }
                        }
                    }
                });
                let listen = format!("LISTEN {CHANNEL}");
                if let Err(e) = client.batch_execute(&listen).await {
                    tracing::warn!(error = %e, "LISTEN failed; trying again");
                    driver.abort();
                    tokio::time::sleep(pause).await;
                    continue;
                }
                pause = Duration::from_millis(100);
                // Anything committed while not listening.
                if tx.send(StoreHint::Unknown).is_err() {
                    driver.abort();
                    return;
                }
                loop {
                    tokio::select! {
                        n = notes.recv() => match n {
                            Some(n) => {
                                if let Some(ids) = parse(n.payload(), &node) {
                                    if tx.send(StoreHint::Changed(ids)).is_err() {
                                        driver.abort();
                                        return;
                                    }
                                }
                            }
                            // The connection ended: listen again.
                            None => break,
                        },
                        _ = tick.tick() => {
                            if tx.send(StoreHint::Unknown).is_err() {
                                driver.abort();
                                return;
                            }
                        }
                        _ = tx.closed() => {
                            driver.abort();
                            return;
                        }
                    }
                }
                drop(client);
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_core::storage::StorageKey;

    #[test]
    fn payloads_name_each_document_once_and_stay_under_the_limit() {
        let ids: Vec<DocumentId> = (0..600u16)
            .map(|i| {
                let mut b = [0u8; 16];
                b[..2].copy_from_slice(&i.to_be_bytes());
                DocumentId(b)
            })
            .collect();
        let mut commit = Commit::default();
        for id in &ids {
            commit.puts.push((StorageKey::doc_prefix(id), vec![]));
            commit.puts.push((StorageKey::doc_prefix(id), vec![]));
        }
        commit
            .puts
            .push((StorageKey::new(["$holdfast", "seq"]), vec![]));
        let ps = payloads("n1", &commit);
        assert!(ps.len() > 1);
        assert!(ps.iter().all(|p| p.len() < 8000));
        let mut got: Vec<DocumentId> = ps.iter().flat_map(|p| parse(p, "n2").unwrap()).collect();
        got.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(got, want);
        assert!(parse(&ps[0], "n1").is_none(), "a node ignores its own");
    }
}
