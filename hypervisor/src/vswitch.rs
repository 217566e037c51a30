//! A learning Ethernet switch (IEEE 802.1D's relay, without spanning
//! tree), the pure core of `[[vm.net]] switch = "NAME"`: the VMs' network
//! cards are its ports. The glue (`arch/aarch64/vnet.rs`) hands it the
//! frames a card transmits ([`Switch::send`]) and takes from each port's
//! backlog the frames to write into that card's receive queue
//! ([`Switch::take`]).
//!
//! The rules, each host-tested:
//! - **Learning**: the source address of a frame sent on a port is learned
//!   for that port, unless it is a group (multicast) address; an address
//!   seen on another port moves there. The table holds at most
//!   [`MAC_TABLE_MAX`] addresses; a new one then replaces the one seen
//!   longest ago.
//! - **Forwarding**: a frame to a learned unicast address goes to that
//!   port only (dropped if that is the sender's port); a frame to a group
//!   address (broadcast included) or to an unknown one is flooded to every
//!   other port that is up. Never back to the sender.
//! - **Limits**, so that one VM cannot flood another: each port's backlog
//!   holds at most [`Limits::backlog`] frames (a frame to a full backlog is
//!   dropped and counted on that port); each port may send at most
//!   [`Limits::rate`] bytes per second with bursts of [`Limits::burst`]
//!   bytes (a token bucket over the time the caller passes in; a frame
//!   beyond it is dropped and counted on the sender's port).
//! - A port that is down (its card reset, its VM stopped) neither sends
//!   nor receives: its backlog is emptied and its addresses forgotten.
//!
//! Time is the caller's, in nanoseconds, and only differences matter.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::virtio::net::{self, FRAME_MAX, FRAME_MIN, Mac};

/// Addresses the MAC table holds.
pub const MAC_TABLE_MAX: usize = 256;
/// Ports a switch has at most.
pub const PORTS_MAX: usize = 64;

/// A port's number on its switch.
pub type PortId = usize;

/// Per-port limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Frames a port's backlog holds.
    pub backlog: usize,
    /// Bytes per second a port may send.
    pub rate: u64,
    /// Bytes a port may send at once (the bucket's size).
    pub burst: u64,
}

impl Limits {
    /// The defaults (`switchconf`): a receive ring's worth of backlog (256
    /// frames), 64 MiB/s with 256 KiB bursts: far above what a VM sends
    /// under emulation, far below what would starve the other VMs' CPUs of
    /// copies. A `[[switch]]` table changes them for its switch.
    pub const DEFAULT: Limits = Limits::of(crate::switchconf::SwitchLimits::DEFAULT);

    /// The limits a configuration gave (validated by `switchconf`).
    pub const fn of(l: crate::switchconf::SwitchLimits) -> Limits {
        Limits { backlog: l.backlog as usize, rate: l.rate, burst: l.burst }
    }
}

const _: () = assert!(crate::switchconf::FRAME_MAX == FRAME_MAX as u64, "switchconf's largest frame");

/// What happened to one frame given to [`Switch::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Queued on this many ports' backlogs (0: no other port, or the
    /// learned port was the sender's, or every backlog was full).
    Queued(usize),
    /// Dropped: the sender's rate limit.
    RateLimited,
    /// Dropped: shorter than [`FRAME_MIN`] or longer than [`FRAME_MAX`].
    BadFrame,
    /// Dropped: the port does not exist or is down.
    PortDown,
}

/// A port's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames the port sent that the switch accepted.
    pub sent: u64,
    /// Frames the port sent beyond its rate.
    pub rate_dropped: u64,
    /// Frames queued on the port's backlog.
    pub queued: u64,
    /// Frames for the port dropped because its backlog was full.
    pub backlog_dropped: u64,
}

#[derive(Clone, Debug)]
struct Port {
    up: bool,
    backlog: VecDeque<Vec<u8>>,
    /// Bytes the port may send now, times 1e9 (nanosecond resolution
    /// without fractions lost).
    tokens: u128,
    /// When the tokens were last counted.
    last: u64,
    stats: PortStats,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: Mac,
    port: PortId,
    seen: u64,
}

/// One switch.
#[derive(Clone, Debug)]
pub struct Switch {
    limits: Limits,
    ports: Vec<Port>,
    table: Vec<Entry>,
}

const NS: u128 = 1_000_000_000;

impl Switch {
    /// A switch without ports.
    pub fn new(limits: Limits) -> Self {
        Self { limits, ports: Vec::new(), table: Vec::new() }
    }

    /// Adds a port, down; `None` past [`PORTS_MAX`].
    pub fn add_port(&mut self) -> Option<PortId> {
        if self.ports.len() >= PORTS_MAX {
            return None;
        }
        let tokens = u128::from(self.limits.burst) * NS;
        self.ports.push(Port { up: false, backlog: VecDeque::new(), tokens, last: 0, stats: PortStats::default() });
        Some(self.ports.len() - 1)
    }

    /// Number of ports.
    pub fn ports(&self) -> usize {
        self.ports.len()
    }

    /// Brings port `port` up or down. Down empties its backlog and forgets
    /// its addresses; up starts with a full bucket at `now`.
    pub fn set_up(&mut self, port: PortId, up: bool, now: u64) {
        let burst = u128::from(self.limits.burst) * NS;
        let Some(p) = self.ports.get_mut(port) else { return };
        if p.up == up {
            return;
        }
        p.up = up;
        p.backlog.clear();
        p.tokens = burst;
        p.last = now;
        if !up {
            self.table.retain(|e| e.port != port);
        }
    }

    /// Whether port `port` is up.
    pub fn is_up(&self, port: PortId) -> bool {
        self.ports.get(port).is_some_and(|p| p.up)
    }

    /// Port `port`'s counters.
    pub fn stats(&self, port: PortId) -> PortStats {
        self.ports.get(port).map(|p| p.stats).unwrap_or_default()
    }

    /// The port `mac` was learned on.
    pub fn lookup(&self, mac: &Mac) -> Option<PortId> {
        self.table.iter().find(|e| e.mac == *mac).map(|e| e.port)
    }

    /// Frames waiting on port `port`'s backlog.
    pub fn backlog(&self, port: PortId) -> usize {
        self.ports.get(port).map_or(0, |p| p.backlog.len())
    }

    /// `frame`, sent on port `port` at `now`: checked, rate-limited, its
    /// source learned, queued on its destinations' backlogs (module doc).
    pub fn send(&mut self, port: PortId, frame: &[u8], now: u64) -> Sent {
        if !self.is_up(port) {
            return Sent::PortDown;
        }
        if !(FRAME_MIN..=FRAME_MAX).contains(&frame.len()) {
            return Sent::BadFrame;
        }
        if !self.take_tokens(port, frame.len(), now) {
            self.ports[port].stats.rate_dropped += 1;
            return Sent::RateLimited;
        }
        self.ports[port].stats.sent += 1;
        let (Some(dst), Some(src)) = (net::dst(frame), net::src(frame)) else { return Sent::BadFrame };
        self.learn(src, port, now);
        let target = if net::is_multicast(&dst) { None } else { self.lookup(&dst) };
        let mut queued = 0;
        match target {
            Some(to) if to == port => {}
            Some(to) => queued += usize::from(self.enqueue(to, frame)),
            None => {
                for to in 0..self.ports.len() {
                    if to != port && self.ports[to].up {
                        queued += usize::from(self.enqueue(to, frame));
                    }
                }
            }
        }
        Sent::Queued(queued)
    }

    /// The oldest frame waiting for port `port`, taken off its backlog.
    pub fn take(&mut self, port: PortId) -> Option<Vec<u8>> {
        self.ports.get_mut(port)?.backlog.pop_front()
    }

    /// Puts `frames`, taken off port `port`'s backlog and not delivered
    /// (its receive queue had no buffer), back at its front in order. They
    /// were counted when queued; a backlog may then hold up to the frames
    /// the caller took beyond its limit. Nothing if the port went down
    /// meanwhile (its backlog is gone).
    pub fn put_back(&mut self, port: PortId, frames: impl DoubleEndedIterator<Item = Vec<u8>>) {
        let Some(p) = self.ports.get_mut(port).filter(|p| p.up) else { return };
        for f in frames.rev() {
            p.backlog.push_front(f);
        }
    }

    /// Refills port `port`'s bucket up to `now` and takes `len` bytes'
    /// worth if it holds them. A clock that goes back refills nothing.
    fn take_tokens(&mut self, port: PortId, len: usize, now: u64) -> bool {
        let (rate, burst) = (u128::from(self.limits.rate), u128::from(self.limits.burst) * NS);
        let p = &mut self.ports[port];
        let elapsed = u128::from(now.saturating_sub(p.last));
        p.last = p.last.max(now);
        p.tokens = p.tokens.saturating_add(elapsed.saturating_mul(rate)).min(burst);
        let cost = len as u128 * NS;
        if p.tokens < cost {
            return false;
        }
        p.tokens -= cost;
        true
    }

    /// Learns `mac` on `port` (module doc: never a group address; a moved
    /// address moves; a full table forgets the address seen longest ago).
    fn learn(&mut self, mac: Mac, port: PortId, now: u64) {
        if net::is_multicast(&mac) {
            return;
        }
        if let Some(e) = self.table.iter_mut().find(|e| e.mac == mac) {
            e.port = port;
            e.seen = now;
            return;
        }
        if self.table.len() >= MAC_TABLE_MAX
            && let Some(oldest) = self.table.iter().enumerate().min_by_key(|(_, e)| e.seen).map(|(i, _)| i)
        {
            self.table.swap_remove(oldest);
        }
        self.table.push(Entry { mac, port, seen: now });
    }

    /// A copy of `frame` on `to`'s backlog, unless it is full (counted).
    fn enqueue(&mut self, to: PortId, frame: &[u8]) -> bool {
        let limit = self.limits.backlog;
        let p = &mut self.ports[to];
        if p.backlog.len() >= limit {
            p.stats.backlog_dropped += 1;
            return false;
        }
        p.backlog.push_back(frame.to_vec());
        p.stats.queued += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const A: Mac = [0x52, 0x54, 0, 0, 0, 0xa];
    const B: Mac = [0x52, 0x54, 0, 0, 0, 0xb];
    const C: Mac = [0x52, 0x54, 0, 0, 0, 0xc];
    const BCAST: Mac = [0xff; 6];
    const MCAST: Mac = [0x01, 0x00, 0x5e, 0, 0, 1];

    fn frame(dst: Mac, src: Mac, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(14)];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        for (i, b) in f.iter_mut().enumerate().skip(14) {
            *b = i as u8;
        }
        f.truncate(len);
        f
    }

    /// A switch with `n` ports, all up.
    fn switch(n: usize, limits: Limits) -> Switch {
        let mut s = Switch::new(limits);
        for _ in 0..n {
            let p = s.add_port().unwrap();
            s.set_up(p, true, 0);
        }
        s
    }

    fn drain(s: &mut Switch, port: PortId) -> Vec<Vec<u8>> {
        core::iter::from_fn(|| s.take(port)).collect()
    }

    #[test]
    fn unknown_unicast_floods_then_learned_goes_to_one_port() {
        let mut s = switch(3, Limits::DEFAULT);
        let f = frame(B, A, 60);
        assert_eq!(s.send(0, &f, 0), Sent::Queued(2), "B unknown: flooded to 1 and 2");
        assert_eq!(drain(&mut s, 1), core::slice::from_ref(&f));
        assert_eq!(drain(&mut s, 2), core::slice::from_ref(&f));
        assert_eq!(s.backlog(0), 0, "never back to the sender");
        assert_eq!(s.lookup(&A), Some(0), "A learned from the source");
        let reply = frame(A, B, 60);
        assert_eq!(s.send(1, &reply, 1), Sent::Queued(1), "A is known: port 0 only");
        assert_eq!(drain(&mut s, 0), [reply]);
        assert_eq!((s.backlog(1), s.backlog(2)), (0, 0));
        assert_eq!(s.send(0, &frame(B, A, 60), 2), Sent::Queued(1), "B learned now");
        assert_eq!((s.backlog(1), s.backlog(2)), (1, 0));
    }

    #[test]
    fn broadcast_and_multicast_flood_to_every_other_port() {
        let mut s = switch(4, Limits::DEFAULT);
        // Learn B on port 1 first: a group destination still floods.
        s.send(1, &frame(A, B, 60), 0);
        drain(&mut s, 0);
        drain(&mut s, 2);
        drain(&mut s, 3);
        for dst in [BCAST, MCAST] {
            assert_eq!(s.send(1, &frame(dst, B, 60), 1), Sent::Queued(3));
            assert_eq!([s.backlog(0), s.backlog(1), s.backlog(2), s.backlog(3)], [1, 0, 1, 1]);
            (0..4).for_each(|p| drop(drain(&mut s, p)));
        }
    }

    #[test]
    fn group_sources_are_never_learned() {
        let mut s = switch(2, Limits::DEFAULT);
        s.send(0, &frame(BCAST, MCAST, 60), 0);
        assert_eq!(s.lookup(&MCAST), None);
        s.send(0, &frame(BCAST, BCAST, 60), 0);
        assert_eq!(s.lookup(&BCAST), None);
        // A frame *to* that group from port 1 still floods (to port 0).
        assert_eq!(s.send(1, &frame(MCAST, B, 60), 1), Sent::Queued(1));
    }

    #[test]
    fn a_moved_address_is_learned_again() {
        let mut s = switch(3, Limits::DEFAULT);
        s.send(0, &frame(BCAST, A, 60), 0);
        assert_eq!(s.lookup(&A), Some(0));
        s.send(2, &frame(BCAST, A, 60), 1);
        assert_eq!(s.lookup(&A), Some(2), "A moved to port 2");
        (0..3).for_each(|p| drop(drain(&mut s, p)));
        s.send(1, &frame(A, B, 60), 2);
        assert_eq!([s.backlog(0), s.backlog(1), s.backlog(2)], [0, 0, 1]);
    }

    #[test]
    fn a_frame_to_the_senders_own_port_is_dropped() {
        let mut s = switch(2, Limits::DEFAULT);
        s.send(0, &frame(BCAST, A, 60), 0);
        s.send(0, &frame(BCAST, C, 60), 0);
        drain(&mut s, 1);
        assert_eq!(s.send(0, &frame(C, A, 60), 1), Sent::Queued(0), "C lives on port 0 too");
        assert_eq!((s.backlog(0), s.backlog(1)), (0, 0));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let mut s = switch(2, Limits { backlog: 1, ..Limits::DEFAULT });
        for i in 0..MAC_TABLE_MAX + 1 {
            let mac = [0x52, 0x54, 0, 1, (i >> 8) as u8, i as u8];
            s.send(0, &frame(BCAST, mac, 60), i as u64);
        }
        assert_eq!(s.table.len(), MAC_TABLE_MAX);
        assert_eq!(s.lookup(&[0x52, 0x54, 0, 1, 0, 0]), None, "the first, seen longest ago, went");
        assert_eq!(s.lookup(&[0x52, 0x54, 0, 1, 1, 0]), Some(0), "the last is there");
        assert_eq!(s.lookup(&[0x52, 0x54, 0, 1, 0, 1]), Some(0));
    }

    #[test]
    fn a_full_backlog_drops_and_counts() {
        let mut s = switch(3, Limits { backlog: 4, ..Limits::DEFAULT });
        for i in 0..10 {
            s.send(0, &frame(BCAST, A, 60 + i), 0);
        }
        assert_eq!(s.backlog(1), 4);
        assert_eq!(s.stats(1), PortStats { queued: 4, backlog_dropped: 6, ..PortStats::default() });
        let got = drain(&mut s, 1);
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [60, 61, 62, 63], "the oldest kept, in order");
        assert_eq!(s.send(0, &frame(BCAST, A, 60), 0), Sent::Queued(1), "port 2 still full, port 1 has room");
    }

    #[test]
    fn the_rate_limit_is_a_token_bucket_over_the_callers_time() {
        // 1000 bytes per second, bursts of 3000 bytes.
        let mut s = switch(2, Limits { backlog: 1000, rate: 1000, burst: 3000 });
        let f = frame(BCAST, A, 1000);
        for _ in 0..3 {
            assert_eq!(s.send(0, &f, 0), Sent::Queued(1));
        }
        assert_eq!(s.send(0, &f, 0), Sent::RateLimited, "the burst is spent");
        assert_eq!(s.send(0, &f, 999_999_999), Sent::RateLimited, "999 bytes earned in 0.999 s");
        assert_eq!(s.send(0, &f, 1_000_000_000), Sent::Queued(1), "1000 in 1 s");
        assert_eq!(s.send(0, &f, 500), Sent::RateLimited, "a clock going back earns nothing");
        assert_eq!(s.send(0, &f, 100_000_000_000), Sent::Queued(1), "100 s idle refills to the burst only");
        assert_eq!(s.send(0, &f, 100_000_000_000), Sent::Queued(1));
        assert_eq!(s.send(0, &f, 100_000_000_000), Sent::Queued(1));
        assert_eq!(s.send(0, &f, 100_000_000_000), Sent::RateLimited);
        assert_eq!(s.stats(0), PortStats { sent: 7, rate_dropped: 4, ..PortStats::default() });
        // The limit is per port: port 1 still has its burst.
        assert_eq!(s.send(1, &frame(BCAST, B, 1000), 0), Sent::Queued(1));
        assert_eq!(s.send(0, &f, u64::MAX), Sent::Queued(1), "no overflow at the end of time");
    }

    #[test]
    fn frames_put_back_keep_their_order() {
        let mut s = switch(2, Limits::DEFAULT);
        for len in [60, 61, 62] {
            s.send(0, &frame(BCAST, A, len), 0);
        }
        let taken = [s.take(1).unwrap(), s.take(1).unwrap()];
        s.put_back(1, taken.into_iter());
        assert_eq!(drain(&mut s, 1).iter().map(Vec::len).collect::<Vec<_>>(), [60, 61, 62]);
        s.set_up(1, false, 0);
        s.put_back(1, [frame(BCAST, A, 60)].into_iter());
        assert_eq!(s.backlog(1), 0, "not on a port that went down");
    }

    #[test]
    fn bad_frames_and_down_ports() {
        let mut s = switch(3, Limits::DEFAULT);
        assert_eq!(s.send(0, &frame(BCAST, A, 13), 0), Sent::BadFrame);
        assert_eq!(s.send(0, &vec![0xff; 1515], 0), Sent::BadFrame);
        assert_eq!(s.send(0, &frame(BCAST, A, 1514), 0), Sent::Queued(2));
        assert_eq!(s.send(9, &frame(BCAST, A, 60), 0), Sent::PortDown, "no such port");
        s.send(1, &frame(BCAST, B, 60), 0);
        s.set_up(1, false, 0);
        assert_eq!(s.backlog(1), 0, "down empties the backlog");
        assert_eq!(s.lookup(&B), None, "and forgets its addresses");
        assert_eq!(s.send(1, &frame(BCAST, B, 60), 0), Sent::PortDown);
        assert_eq!(s.send(0, &frame(B, A, 60), 0), Sent::Queued(1), "flooded to port 2 only");
        assert_eq!((s.backlog(1), s.backlog(2)), (0, 3), "two frames before, this one");
        let mut full = Switch::new(Limits::DEFAULT);
        for _ in 0..PORTS_MAX {
            assert!(full.add_port().is_some());
        }
        assert_eq!(full.add_port(), None);
    }
}
