//! A socket's place in the connection counts ([`Slot`]), and what the
//! request handlers know of its peer ([`Peer`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::stats::Stats;

/// Open sockets, in total and per address.
#[derive(Default)]
pub struct Counts {
    pub total: usize,
    pub per_ip: HashMap<IpAddr, usize>,
}

/// One accepted socket's place in the counts; released on drop.
pub struct Slot {
    pub ip: IpAddr,
    pub counts: Arc<Mutex<Counts>>,
    pub stats: Arc<Stats>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
        self.stats.tcp_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The peer's address and its slot, handed to the request handlers (a
/// WebSocket keeps the slot for as long as it is open).
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub slot: Arc<Slot>,
}
