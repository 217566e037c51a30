//! The rules of `[[switch]]` tables (docs/vm-config.md, "Network cards"):
//! per-switch limits of the virtual switch (`vswitch`), each port's send
//! rate, burst and backlog, where the configuration gives them; the
//! defaults otherwise. Run by both vmconf and the hypervisor, as
//! `vmspec` and `shm` (pure `core` + `alloc` + `shared`).

use alloc::vec::Vec;
use core::fmt;

use shared::platform::{MAX_SWITCHES, SwitchSpec, VmSpec};

use crate::vmspec::Size;

/// Default bytes per second a port may send: far above what a VM sends
/// under emulation, far below what would starve the other VMs' CPUs of
/// copies.
pub const DEFAULT_RATE: u64 = 64 << 20;
/// Default bytes a port may send at once (its token bucket's size).
pub const DEFAULT_BURST: u64 = 256 << 10;
/// Default frames a port's backlog holds: a receive ring's worth.
pub const DEFAULT_BACKLOG: u32 = 256;
/// The largest frame the switch carries (`virtio::net::FRAME_MAX`, which
/// `vswitch.rs` checks): a burst or a rate below it would never let one
/// through.
pub const FRAME_MAX: u64 = 1514;
/// Most frames a backlog may hold: each is heap, up to [`FRAME_MAX`]
/// bytes, and a switch has up to 64 ports.
pub const MAX_BACKLOG: u32 = 1024;

/// A switch's limits, for each of its ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchLimits {
    /// Bytes per second a port may send.
    pub rate: u64,
    /// Bytes a port may send at once.
    pub burst: u64,
    /// Frames a port's backlog holds.
    pub backlog: u32,
}

impl SwitchLimits {
    /// The limits of a switch no `[[switch]]` table names.
    pub const DEFAULT: SwitchLimits =
        SwitchLimits { rate: DEFAULT_RATE, burst: DEFAULT_BURST, backlog: DEFAULT_BACKLOG };

    /// `spec`'s limits, the defaults where it gives none.
    pub fn of(spec: &SwitchSpec) -> Self {
        SwitchLimits {
            rate: spec.rate.unwrap_or(DEFAULT_RATE),
            burst: spec.burst.unwrap_or(DEFAULT_BURST),
            backlog: spec.backlog.unwrap_or(DEFAULT_BACKLOG),
        }
    }
}

/// What is wrong with a `[[switch]]` table; the TOML key is the first
/// word of the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwitchProblem {
    /// Not 1 to 15 of a-z, 0-9, - and _.
    Name,
    /// Same name as the earlier table with this index.
    NameTaken(usize),
    /// More tables than [`MAX_SWITCHES`] (this is table `index`).
    TooMany(usize),
    /// No `[[vm.net]]` of the configuration plugs into it.
    Unused,
    RateTooLow(u64),
    BurstTooLow(u64),
    BacklogZero,
    BacklogTooLarge(u32),
}

impl fmt::Display for SwitchProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name => write!(f, "name: a switch name is 1 to 15 of a-z, 0-9, - and _"),
            Self::NameTaken(i) => write!(f, "name: is already the name of switch[{i}]"),
            Self::TooMany(i) => write!(f, "switch[{i}] is one table too many: at most {MAX_SWITCHES} allowed"),
            Self::Unused => write!(f, "name: no [[vm.net]] of this configuration plugs into it"),
            Self::RateTooLow(r) => {
                write!(f, "rate: {r} bytes/s is below one largest frame ({FRAME_MAX} bytes) per second")
            }
            Self::BurstTooLow(b) => {
                write!(f, "burst: {} is below the largest frame ({FRAME_MAX} bytes), which could never pass", Size(*b))
            }
            Self::BacklogZero => write!(f, "backlog: zero frames: the port could receive nothing"),
            Self::BacklogTooLarge(n) => write!(f, "backlog: {n} frames, at most {MAX_BACKLOG} allowed"),
        }
    }
}

/// Why table `index` was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchError {
    pub index: usize,
    pub name: heapless::String<15>,
    pub problem: SwitchProblem,
}

/// `switch "lan": burst: 1000 is below the largest frame (1514 bytes), ...`.
impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "switch[{}]: {}", self.index, self.problem)
        } else {
            write!(f, "switch {:?}: {}", self.name.as_str(), self.problem)
        }
    }
}

/// Checks every table against the VMs of the same configuration (all of
/// them, refused or not). One result per table, in order.
pub fn validate(switches: &[SwitchSpec], vms: &[VmSpec]) -> Vec<Result<(), SwitchError>> {
    let mut accepted: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(switches.len());
    for (i, s) in switches.iter().enumerate() {
        let r = check(i, s, switches, &accepted, vms).map_err(|problem| SwitchError {
            index: i,
            name: s.name.clone(),
            problem,
        });
        if r.is_ok() {
            accepted.push(i);
        }
        out.push(r);
    }
    out
}

fn check(
    i: usize,
    s: &SwitchSpec,
    switches: &[SwitchSpec],
    accepted: &[usize],
    vms: &[VmSpec],
) -> Result<(), SwitchProblem> {
    let good = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if s.name.is_empty() || !s.name.chars().all(good) {
        return Err(SwitchProblem::Name);
    }
    if i >= MAX_SWITCHES {
        return Err(SwitchProblem::TooMany(i));
    }
    if let Some(&j) = accepted.iter().find(|&&j| switches[j].name == s.name) {
        return Err(SwitchProblem::NameTaken(j));
    }
    if !vms.iter().any(|vm| vm.nets.iter().any(|n| n.switch == s.name)) {
        return Err(SwitchProblem::Unused);
    }
    let l = SwitchLimits::of(s);
    if l.rate < FRAME_MAX {
        return Err(SwitchProblem::RateTooLow(l.rate));
    }
    if l.burst < FRAME_MAX {
        return Err(SwitchProblem::BurstTooLow(l.burst));
    }
    if l.backlog == 0 {
        return Err(SwitchProblem::BacklogZero);
    }
    if l.backlog > MAX_BACKLOG {
        return Err(SwitchProblem::BacklogTooLarge(l.backlog));
    }
    Ok(())
}

/// The limits of switch `name`: those of the accepted table that names
/// it (`valid[i]` says whether table i was), else the defaults.
pub fn limits(switches: &[SwitchSpec], valid: &[bool], name: &str) -> SwitchLimits {
    switches
        .iter()
        .zip(valid)
        .find(|(s, ok)| **ok && s.name == name)
        .map(|(s, _)| SwitchLimits::of(s))
        .unwrap_or(SwitchLimits::DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::platform::Net;

    fn vm(name: &str, switches: &[&str]) -> VmSpec {
        let mut v = VmSpec { name: name.try_into().unwrap(), ..Default::default() };
        for s in switches {
            v.nets.push(Net { switch: (*s).try_into().unwrap(), mac: [2, 0, 0, 0, 0, 1] }).unwrap();
        }
        v
    }

    fn sw(name: &str, rate: Option<u64>, burst: Option<u64>, backlog: Option<u32>) -> SwitchSpec {
        SwitchSpec { name: name.try_into().unwrap(), rate, burst, backlog }
    }

    fn errors(switches: &[SwitchSpec], vms: &[VmSpec]) -> Vec<Option<alloc::string::String>> {
        use alloc::string::ToString;
        validate(switches, vms).into_iter().map(|r| r.err().map(|e| e.to_string())).collect()
    }

    #[test]
    fn limits_default_where_not_given_and_are_found_by_name() {
        let vms = [vm("a", &["lan", "dmz"]), vm("b", &["lan"])];
        let switches = [sw("lan", Some(1 << 20), None, Some(32))];
        assert_eq!(errors(&switches, &vms), [None]);
        let lan = limits(&switches, &[true], "lan");
        assert_eq!(lan, SwitchLimits { rate: 1 << 20, burst: DEFAULT_BURST, backlog: 32 });
        assert_eq!(limits(&switches, &[true], "dmz"), SwitchLimits::DEFAULT);
        // A refused table is not used: its switch keeps the defaults.
        assert_eq!(limits(&switches, &[false], "lan"), SwitchLimits::DEFAULT);
    }

    #[test]
    fn each_rule_is_a_clear_error() {
        let vms = [vm("a", &["lan", "b-2"])];
        assert_eq!(
            errors(
                &[
                    sw("lan", Some(100), None, None),
                    sw("lan", None, Some(1000), None),
                    sw("lan", None, None, Some(0)),
                    sw("lan", None, None, Some(5000)),
                ],
                &vms
            ),
            [
                Some("switch \"lan\": rate: 100 bytes/s is below one largest frame (1514 bytes) per second".into()),
                Some(
                    "switch \"lan\": burst: 1000 bytes is below the largest frame (1514 bytes), which could never pass"
                        .into()
                ),
                Some("switch \"lan\": backlog: zero frames: the port could receive nothing".into()),
                Some("switch \"lan\": backlog: 5000 frames, at most 1024 allowed".into()),
            ]
        );
        assert_eq!(
            errors(&[sw("lan", None, None, None), sw("lan", None, None, None), sw("wan", None, None, None)], &vms),
            [
                None,
                Some("switch \"lan\": name: is already the name of switch[0]".into()),
                Some("switch \"wan\": name: no [[vm.net]] of this configuration plugs into it".into()),
            ]
        );
        assert_eq!(
            errors(&[sw("LAN", None, None, None)], &vms),
            [Some("switch \"LAN\": name: a switch name is 1 to 15 of a-z, 0-9, - and _".into())]
        );
        assert_eq!(
            errors(&[sw("", None, None, None)], &vms),
            [Some("switch[0]: name: a switch name is 1 to 15 of a-z, 0-9, - and _".into())]
        );
        let five: Vec<SwitchSpec> =
            ["lan", "b-2", "lan", "b-2", "lan"].iter().map(|n| sw(n, None, None, None)).collect();
        assert_eq!(
            errors(&five, &vms)[4],
            Some("switch \"lan\": switch[4] is one table too many: at most 4 allowed".into())
        );
        // At the edges: exactly one largest frame is enough.
        assert_eq!(errors(&[sw("b-2", Some(FRAME_MAX), Some(FRAME_MAX), Some(MAX_BACKLOG))], &vms), [None]);
    }
}
