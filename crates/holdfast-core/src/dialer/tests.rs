//! The dialer on a virtual clock: every delay is computed from the time and
//! random numbers the test passes in.

use super::*;

const MID: u32 = 1 << 31; // r = 0.5: the delay is exactly the base
const LOW: u32 = 0; // r = 0: half the base
const HIGH: u32 = u32::MAX; // r → 1: just under 1.5 × the base

fn t(ms: u64) -> Timestamp {
    Timestamp(ms)
}

fn actions(d: &mut Dialer) -> Vec<DialAction> {
    std::iter::from_fn(|| d.poll_action()).collect()
}

/// Dial one URL and take its first `Open`.
fn one_link() -> (Dialer, ConnId) {
    let mut d = Dialer::new(DialerConfig::default(), 1);
    d.add("ws://a");
    match actions(&mut d).as_slice() {
        [DialAction::Open { conn, url, link }] => {
            assert_eq!((url.as_str(), *link), ("ws://a", LinkId(0)));
            let conn = *conn;
            (d, conn)
        }
        other => panic!("expected one Open, got {other:?}"),
    }
}

fn open_conn(d: &mut Dialer) -> ConnId {
    match actions(d).as_slice() {
        [DialAction::Open { conn, .. }] => *conn,
        other => panic!("expected one Open, got {other:?}"),
    }
}

#[test]
fn backoff_doubles_from_the_minimum_up_to_the_cap_with_jitter_from_the_caller() {
    let (mut d, mut conn) = one_link();
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..10 {
        d.connection_lost(t(now), conn, MID);
        assert_eq!(d.status(), Status::Offline);
        let at = d.poll_timeout().expect("a retry is planned").0;
        waits.push(at - now);
        // Nothing is dialled before the deadline, even if woken early.
        d.handle_timeout(t(at - 1));
        assert!(actions(&mut d).is_empty());
        now = at;
        d.handle_timeout(t(now));
        conn = open_conn(&mut d);
        assert_eq!(d.status(), Status::Connecting);
    }
    assert_eq!(
        waits,
        [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    );
    // Jitter: the same loss count waits between 0.5 and 1.5 times the base.
    for (random, wait) in [(LOW, 15_000), (HIGH, 44_999)] {
        d.connection_lost(t(now), conn, random);
        let at = d.poll_timeout().unwrap().0;
        assert_eq!(at - now, wait);
        now = at;
        d.handle_timeout(t(now));
        conn = open_conn(&mut d);
    }
}

#[test]
fn a_completed_handshake_starts_the_backoff_over() {
    let (mut d, conn) = one_link();
    d.connection_lost(t(0), conn, MID);
    d.handle_timeout(t(250));
    let conn = open_conn(&mut d);
    d.connection_lost(t(250), conn, MID);
    assert_eq!(d.poll_timeout(), Some(t(750)));
    d.handle_timeout(t(750));
    let conn = open_conn(&mut d);
    d.peer_joined(conn, "server");
    assert_eq!(d.status(), Status::Online);
    assert_eq!(d.peer(conn), Some("server"));
    assert_eq!(d.attempts(LinkId(0)), 0);
    d.connection_lost(t(1000), conn, MID);
    assert_eq!(d.poll_timeout(), Some(t(1250)), "back to the minimum");
    assert_eq!(d.peer(conn), None);
}

#[test]
fn pausing_closes_every_connection_and_dials_nothing_until_resumed() {
    let mut d = Dialer::new(DialerConfig::default(), 10);
    d.add("ws://a");
    d.add("ws://b");
    let opened: Vec<ConnId> = actions(&mut d)
        .into_iter()
        .map(|a| match a {
            DialAction::Open { conn, .. } => conn,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(opened, [ConnId(10), ConnId(11)]);
    d.peer_joined(ConnId(10), "s");
    // b is waiting to retry when the application goes offline.
    d.connection_lost(t(0), ConnId(11), MID);
    d.pause();
    assert_eq!(actions(&mut d), [DialAction::Close { conn: ConnId(10) }]);
    assert_eq!(d.status(), Status::Offline);
    assert_eq!(d.poll_timeout(), None, "no retry while paused");
    d.handle_timeout(t(1_000_000));
    d.add("ws://c");
    assert!(actions(&mut d).is_empty(), "nothing dials while paused");
    // A close the transport reports late changes nothing.
    d.connection_lost(t(5), ConnId(10), MID);
    assert_eq!(d.poll_timeout(), None);

    d.resume();
    let urls: Vec<(String, ConnId)> = actions(&mut d)
        .into_iter()
        .map(|a| match a {
            DialAction::Open { url, conn, .. } => (url, conn),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        urls,
        [
            ("ws://a".to_string(), ConnId(12)),
            ("ws://b".to_string(), ConnId(13)),
            ("ws://c".to_string(), ConnId(14)),
        ],
        "every link dials at once, each with a new connection id"
    );
    assert_eq!(d.status(), Status::Connecting);
}

#[test]
fn the_network_going_down_closes_everything_and_coming_back_dials_at_once() {
    let (mut d, conn) = one_link();
    // Several losses in a row: the next retry would be far off.
    let mut conn = conn;
    let mut now = 0;
    for _ in 0..5 {
        d.connection_lost(t(now), conn, MID);
        now = d.poll_timeout().unwrap().0;
        d.handle_timeout(t(now));
        conn = open_conn(&mut d);
    }
    d.set_network(false);
    assert_eq!(actions(&mut d), [DialAction::Close { conn }]);
    // A loss reported while down plans nothing.
    d.connection_lost(t(now), conn, MID);
    assert_eq!(d.poll_timeout(), None);
    d.set_network(true);
    let conn = open_conn(&mut d);
    d.connection_lost(t(now), conn, MID);
    assert_eq!(
        d.poll_timeout(),
        Some(t(now + 250)),
        "the network coming back resets the backoff"
    );
}

#[test]
fn a_close_the_repo_asks_for_is_carried_out_and_retried_later() {
    let (mut d, conn) = one_link();
    d.peer_joined(conn, "s");
    d.close(t(100), conn, MID);
    assert_eq!(actions(&mut d), [DialAction::Close { conn }]);
    assert_eq!(d.status(), Status::Offline);
    assert_eq!(d.poll_timeout(), Some(t(350)));
    // Closing it again, or reporting it lost, is a no-op.
    d.close(t(101), conn, MID);
    d.connection_lost(t(101), conn, MID);
    assert!(actions(&mut d).is_empty());
    assert_eq!(d.poll_timeout(), Some(t(350)));
    d.handle_timeout(t(400));
    let next = open_conn(&mut d);
    assert_ne!(next, conn);
}

#[test]
fn the_earliest_deadline_across_links_is_the_one_reported() {
    let mut d = Dialer::new(DialerConfig::default(), 1);
    d.add("ws://a");
    d.add("ws://b");
    actions(&mut d);
    d.connection_lost(t(0), ConnId(2), MID);
    d.connection_lost(t(0), ConnId(2), MID);
    d.connection_lost(t(100), ConnId(1), LOW);
    assert_eq!(d.poll_timeout(), Some(t(225)));
    d.handle_timeout(t(225));
    assert_eq!(open_conn(&mut d), ConnId(3));
    assert_eq!(d.poll_timeout(), Some(t(250)));
}

#[test]
fn huge_loss_counts_and_extreme_settings_do_not_overflow() {
    let config = DialerConfig {
        backoff_min_ms: u64::MAX / 2,
        backoff_max_ms: u64::MAX,
    };
    assert_eq!(backoff_ms(&config, u32::MAX, HIGH), u64::MAX);
    assert_eq!(backoff_ms(&DialerConfig::default(), u32::MAX, LOW), 15_000);
    let mut d = Dialer::new(config, 1);
    d.add("ws://a");
    let conn = open_conn(&mut d);
    d.connection_lost(t(u64::MAX - 1), conn, HIGH);
    assert_eq!(d.poll_timeout(), Some(t(u64::MAX)));
}
