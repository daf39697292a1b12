//! The dialer: which sync servers to be connected to, and when to try again.
//!
//! Sans-IO like the [`Repo`](crate::repo::Repo): the transport (the
//! browser's WebSockets, a native client) tells it what happened, with the
//! time and, where a delay is drawn, a random number; it answers with
//! [`DialAction`]s to carry out and a deadline to be woken at. It never
//! touches a socket, a clock or a random source, so every path (backoff,
//! jitter, going offline and back) runs on a virtual clock in tests.
//!
//! Invariants:
//! - A link has at most one connection at a time; every [`ConnId`] it hands
//!   out is new (they count up from the `first_conn` given to [`Dialer::new`]).
//! - Nothing is dialled while paused ([`Dialer::pause`], the application's
//!   `goOffline()`) or while the network is down ([`Dialer::set_network`]);
//!   entering either state closes every open connection.
//! - After a connection is lost, the link waits
//!   `min(max, min · 2^(attempts − 1)) · (0.5 + r)` with `r` in `[0, 1)` drawn
//!   from the caller's random `u32`; `attempts` counts losses since the last
//!   completed handshake ([`Dialer::peer_joined`]) and is reset by resuming
//!   or the network coming back, which also dial at once.

use crate::repo::{ConnId, Timestamp};

/// Backoff bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialerConfig {
    /// The first retry waits about this long (± half).
    pub backoff_min_ms: u64,
    /// No retry waits longer than this (± half).
    pub backoff_max_ms: u64,
}

impl Default for DialerConfig {
    fn default() -> Self {
        Self {
            backoff_min_ms: 250,
            backoff_max_ms: 30_000,
        }
    }
}

/// A sync URL the dialer keeps connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub usize);

/// What the transport must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialAction {
    /// Open a connection to `url`, known from now on as `conn`. If opening
    /// fails at once, report [`Dialer::connection_lost`] for `conn`.
    Open {
        link: LinkId,
        conn: ConnId,
        url: String,
    },
    /// Close `conn` (and tell the repo it is gone); do not report it lost.
    Close { conn: ConnId },
}

/// The connection state the application sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A sync server completed the handshake on some connection.
    Online,
    /// A connection is open or being opened, none has completed the
    /// handshake yet.
    Connecting,
    /// No connection (none configured, paused, network down, or waiting to
    /// retry).
    Offline,
}

impl Status {
    /// The name the JS API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Connecting => "connecting",
            Status::Offline => "offline",
        }
    }
}

#[derive(Debug)]
enum LinkState {
    /// Not connected and no retry planned (paused, offline, or new).
    Idle,
    /// Waiting to retry.
    Backoff { until: Timestamp },
    /// A connection exists; `peer` is set once its handshake completed.
    Open { conn: ConnId, peer: Option<String> },
}

#[derive(Debug)]
struct Link {
    url: String,
    state: LinkState,
    /// Connections lost since the last completed handshake.
    attempts: u32,
}

/// The connection state of every sync URL. See the module docs.
#[derive(Debug)]
pub struct Dialer {
    config: DialerConfig,
    links: Vec<Link>,
    paused: bool,
    network_up: bool,
    next_conn: u64,
    /// In order; a handful at most (links are few), so a `Vec`.
    actions: Vec<DialAction>,
}

impl Dialer {
    /// A dialer with no links, network up, not paused. Connections get ids
    /// from `first_conn` upwards (keep them apart from any other source of
    /// [`ConnId`]s the same repo sees).
    pub fn new(config: DialerConfig, first_conn: u64) -> Self {
        Self {
            config,
            links: Vec::new(),
            paused: false,
            network_up: true,
            next_conn: first_conn,
            actions: Vec::new(),
        }
    }

    /// Keep `url` connected from now on; dials it at once unless paused or
    /// the network is down.
    pub fn add(&mut self, url: impl Into<String>) -> LinkId {
        self.links.push(Link {
            url: url.into(),
            state: LinkState::Idle,
            attempts: 0,
        });
        let i = self.links.len() - 1;
        self.dial(i);
        LinkId(i)
    }

    /// The application went offline (`goOffline()`): close everything and
    /// dial nothing until [`Dialer::resume`].
    pub fn pause(&mut self) {
        self.paused = true;
        self.close_all();
    }

    /// The application is back (`goOnline()`): dial every link now.
    pub fn resume(&mut self) {
        self.paused = false;
        self.dial_all_now();
    }

    /// The platform says the network went down (`false`: close everything,
    /// its sockets could hang half-open) or came back (`true`: dial now).
    pub fn set_network(&mut self, up: bool) {
        self.network_up = up;
        if up {
            self.dial_all_now();
        } else {
            self.close_all();
        }
    }

    /// `conn` closed or failed to open (not at the dialer's request):
    /// plan the retry. `random` draws the jitter. Unknown or already closed
    /// connections are ignored.
    pub fn connection_lost(&mut self, now: Timestamp, conn: ConnId, random: u32) {
        let Some(i) = self.link_of(conn) else {
            return;
        };
        let link = &mut self.links[i];
        link.attempts = link.attempts.saturating_add(1);
        link.state = if self.paused || !self.network_up {
            LinkState::Idle
        } else {
            let delay = backoff_ms(&self.config, link.attempts, random);
            LinkState::Backoff {
                until: Timestamp(now.0.saturating_add(delay)),
            }
        };
    }

    /// The repo wants `conn` closed (it saw the peer misbehave or leave):
    /// close it and retry later as if it had been lost.
    pub fn close(&mut self, now: Timestamp, conn: ConnId, random: u32) {
        if self.link_of(conn).is_some() {
            self.actions.push(DialAction::Close { conn });
            self.connection_lost(now, conn, random);
        }
    }

    /// The handshake on `conn` completed with `peer`: the link is healthy,
    /// so its backoff starts over.
    pub fn peer_joined(&mut self, conn: ConnId, peer: impl Into<String>) {
        if let Some(i) = self.link_of(conn) {
            let link = &mut self.links[i];
            link.attempts = 0;
            if let LinkState::Open { peer: p, .. } = &mut link.state {
                *p = Some(peer.into());
            }
        }
    }

    /// The peer on `conn` left (the connection may stay open).
    pub fn peer_left(&mut self, conn: ConnId) {
        if let Some(i) = self.link_of(conn) {
            if let LinkState::Open { peer, .. } = &mut self.links[i].state {
                *peer = None;
            }
        }
    }

    /// The peer that completed the handshake on `conn`, if any.
    pub fn peer(&self, conn: ConnId) -> Option<&str> {
        let i = self.link_of(conn)?;
        match &self.links[i].state {
            LinkState::Open { peer, .. } => peer.as_deref(),
            _ => None,
        }
    }

    /// When [`Dialer::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.links
            .iter()
            .filter_map(|l| match l.state {
                LinkState::Backoff { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Dial every link whose wait is over (a timer that fires early or late
    /// does no harm).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for i in 0..self.links.len() {
            if matches!(self.links[i].state, LinkState::Backoff { until } if until <= now) {
                self.links[i].state = LinkState::Idle;
                self.dial(i);
            }
        }
    }

    /// The next thing for the transport to do.
    pub fn poll_action(&mut self) -> Option<DialAction> {
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }

    pub fn status(&self) -> Status {
        let mut status = Status::Offline;
        for link in &self.links {
            if let LinkState::Open { peer, .. } = &link.state {
                if peer.is_some() {
                    return Status::Online;
                }
                status = Status::Connecting;
            }
        }
        status
    }

    /// Losses since the last completed handshake on `link` (diagnostics).
    pub fn attempts(&self, link: LinkId) -> u32 {
        self.links[link.0].attempts
    }

    /// The link whose open connection is `conn`.
    fn link_of(&self, conn: ConnId) -> Option<usize> {
        self.links
            .iter()
            .position(|l| matches!(l.state, LinkState::Open { conn: c, .. } if c == conn))
    }

    fn dial(&mut self, i: usize) {
        if self.paused || !self.network_up {
            return;
        }
        let link = &mut self.links[i];
        if matches!(link.state, LinkState::Open { .. }) {
            return;
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        link.state = LinkState::Open { conn, peer: None };
        self.actions.push(DialAction::Open {
            link: LinkId(i),
            conn,
            url: link.url.clone(),
        });
    }

    fn dial_all_now(&mut self) {
        for i in 0..self.links.len() {
            self.links[i].attempts = 0;
            if matches!(self.links[i].state, LinkState::Backoff { .. }) {
                self.links[i].state = LinkState::Idle;
            }
            self.dial(i);
        }
    }

    fn close_all(&mut self) {
        for link in &mut self.links {
            if let LinkState::Open { conn, .. } = link.state {
                self.actions.push(DialAction::Close { conn });
            }
            link.state = LinkState::Idle;
        }
    }
}

/// The wait after the `attempts`-th loss: the capped exponential base, times
/// a factor in `[0.5, 1.5)` taken from `random`.
fn backoff_ms(config: &DialerConfig, attempts: u32, random: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(32);
    let base = config
        .backoff_min_ms
        .saturating_mul(1u64 << doublings)
        .min(config.backoff_max_ms);
    (base / 2).saturating_add(((base as u128 * random as u128) >> 32) as u64)
}

#[cfg(test)]
mod tests;
