//! `hypervisor::vswitch`: ports going up and down, frames of any length
//! from any port to any of a few addresses (unicast, multicast,
//! broadcast, as source or destination), frames taken off backlogs, time
//! moving forward or back. Always: no panic; every frame taken off a port
//! is the one a small reference model of the rules (learning, unicast to
//! the learned port, flooding, never back to the sender, bounded backlogs,
//! a port down forgets) puts there, in order; a backlog never holds more
//! than its limit; the bytes a port got accepted since it came up never
//! exceed the burst plus the rate times the time elapsed (the token
//! bucket's bound).

use std::collections::{HashMap, VecDeque};

use arbitrary::{Result, Unstructured};
use hypervisor::virtio::net::Mac;
use hypervisor::vswitch::{Limits, Sent, Switch};

const MAX_OPS: usize = 256;
/// Few addresses, so that the MAC table never fills (its eviction has a
/// host test) and the model stays exact.
const MACS: [Mac; 6] = [
    [0x52, 0x54, 0, 0, 0, 1],
    [0x52, 0x54, 0, 0, 0, 2],
    [0x52, 0x54, 0, 0, 0, 3],
    [0x02, 0, 0, 0, 0, 4],
    [0x01, 0x00, 0x5e, 0, 0, 1],
    [0xff; 6],
];

struct ModelPort {
    up: bool,
    backlog: VecDeque<Vec<u8>>,
    /// Since the port came up: when, the latest time a send passed in, and
    /// the bytes accepted.
    since: u64,
    latest: u64,
    accepted: u128,
}

/// Input: the limits and the number of ports, then operations until the
/// bytes run out.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let limits = Limits {
        backlog: u.int_in_range(0..=8)?,
        rate: *u.choose(&[0u64, 1, 1000, 1 << 20, u64::MAX])?,
        burst: *u.choose(&[0u64, 60, 1514, 10_000, u64::MAX >> 40])?,
    };
    let nports = u.int_in_range(1..=5usize)?;
    let mut sw = Switch::new(limits);
    let mut model: Vec<ModelPort> = Vec::new();
    for _ in 0..nports {
        assert_eq!(sw.add_port(), Some(model.len()));
        model.push(ModelPort { up: false, backlog: VecDeque::new(), since: 0, latest: 0, accepted: 0 });
    }
    let mut table: HashMap<Mac, usize> = HashMap::new();
    let mut now: u64 = 0;
    let mut seq: u32 = 0;
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0u8..=9)? {
            0 => {
                let port = u.int_in_range(0..=nports - 1)?;
                let up: bool = u.arbitrary()?;
                sw.set_up(port, up, now);
                let m = &mut model[port];
                if m.up != up {
                    m.up = up;
                    m.backlog.clear();
                    (m.since, m.latest, m.accepted) = (now, now, 0);
                    if !up {
                        table.retain(|_, p| *p != port);
                    }
                }
            }
            1 => {
                // Time moves, mostly forward.
                let step: u64 = u.int_in_range(0..=2_000_000_000)?;
                now = if u.ratio(1, 8)? { now.saturating_sub(step) } else { now.saturating_add(step) };
            }
            2..=3 => {
                let port = u.int_in_range(0..=nports - 1)?;
                let got = sw.take(port);
                let want = model[port].backlog.pop_front();
                assert_eq!(got, want, "frame taken off port {port}");
            }
            _ => {
                // Out-of-range ports too, sometimes.
                let port = u.int_in_range(0..=nports)?;
                let dst = *u.choose(&MACS)?;
                let src = *u.choose(&MACS)?;
                let len = *u.choose(&[60usize, 14, 13, 0, 1514, 1515, 100, 1000])?;
                let mut frame = vec![0u8; len];
                let head = [dst.as_slice(), src.as_slice(), &[0x08, 0], &seq.to_le_bytes()].concat();
                let n = head.len().min(len);
                frame[..n].copy_from_slice(&head[..n]);
                seq = seq.wrapping_add(1);
                let sent = sw.send(port, &frame, now);
                let Some(m) = model.get_mut(port).filter(|m| m.up) else {
                    assert_eq!(sent, Sent::PortDown, "port {port} is down or missing");
                    continue;
                };
                if !(14..=1514).contains(&len) {
                    assert_eq!(sent, Sent::BadFrame);
                    continue;
                }
                // The token bucket's bound, from when the port came up
                // (the caller's clock may go back: the bucket has been
                // refilled up to the latest time it was given).
                m.latest = m.latest.max(now);
                if sent == Sent::RateLimited {
                    continue;
                }
                let accepted = m.accepted + len as u128;
                let elapsed = u128::from(m.latest - m.since);
                let bound = u128::from(limits.burst) + elapsed * u128::from(limits.rate) / 1_000_000_000 + 1;
                assert!(accepted <= bound, "port {port}: {accepted} bytes accepted, bound {bound}");
                m.accepted = accepted;
                if src[0] & 1 == 0 {
                    table.insert(src, port);
                }
                let targets: Vec<usize> = match (dst[0] & 1 == 0).then(|| table.get(&dst)).flatten() {
                    Some(&to) if to == port => vec![],
                    Some(&to) => vec![to],
                    None => (0..nports).filter(|&p| p != port && model[p].up).collect(),
                };
                let mut queued = 0;
                for to in targets {
                    let b = &mut model[to].backlog;
                    if b.len() < limits.backlog {
                        b.push_back(frame.clone());
                        queued += 1;
                    }
                }
                assert_eq!(sent, Sent::Queued(queued), "frame {dst:02x?} <- {src:02x?} from port {port}");
            }
        }
        for (p, m) in model.iter().enumerate() {
            assert_eq!(sw.backlog(p), m.backlog.len(), "port {p}'s backlog");
            assert!(sw.backlog(p) <= limits.backlog);
            assert_eq!(sw.is_up(p), m.up);
        }
        for (mac, &p) in &table {
            assert_eq!(sw.lookup(mac), Some(p), "{mac:02x?} learned on port {p}");
        }
    }
    Ok(())
}
