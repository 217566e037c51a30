//! Shared memory and doorbells between VMs (`[[shm]]`, docs/devices.md
//! "Shared memory and doorbell"), after Jailhouse's ivshmem: a region of
//! hypervisor memory mapped into each VM that names it, and a doorbell
//! interrupt one peer raises in another with a vendor hypercall.
//!
//! Pure: the rules a configuration must follow ([`validate`], run by the
//! hypervisor on the DTB and by `vmconf` on the TOML file), where region
//! i lies in a guest ([`ipa`], [`intid`]), which regions a VM shares
//! ([`memberships`]), and whether a `SHM_DOORBELL` call may ring
//! ([`doorbell`]). The glue allocates, maps and rings
//! (`arch/aarch64/vshm.rs`).

use alloc::vec::Vec;
use core::fmt;

use shared::layout;
use shared::platform::{MAX_SHM, MAX_SHM_PEERS, MAX_SHM_SIZE, ShmSpec, VmSpec};

use crate::vmspec::{self, PAGE, Size};

/// Guest-physical base of region `index` (the same in every peer).
pub const fn ipa(index: usize) -> u64 {
    layout::SHM_BASE + index as u64 * layout::SHM_STRIDE
}

/// The GIC INTID of region `index`'s doorbell (an edge-rising SPI).
pub const fn intid(index: usize) -> u32 {
    vmspec::SPI_FIRST + layout::SHM_SPI + index as u32
}

/// Which part of a `[[shm]]` table is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmField {
    Name,
    Size,
    Vms,
}

impl ShmField {
    /// The TOML key (the DT property for `name` is `shm-name`).
    pub fn toml_name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Size => "size",
            Self::Vms => "vms",
        }
    }
}

/// What is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShmProblem {
    /// A bad name (`vmspec::check_name`'s rules).
    Name(vmspec::Problem),
    /// Same name as the earlier region with this index.
    NameTaken(usize),
    /// More regions than [`MAX_SHM`] (this is region `index`).
    TooMany(usize),
    SizeZero,
    SizeNotPage(u64),
    SizeTooLarge(u64),
    /// Fewer than two VMs.
    TooFewVms(usize),
    TooManyVms(usize),
    /// A name no VM of the configuration has.
    NoSuchVm(heapless::String<16>),
    /// A VM named twice.
    VmRepeated(heapless::String<16>),
    /// The region's doorbell INTID is routed to VM `vm` by a pass-through device.
    IntidTaken {
        intid: u32,
        vm: heapless::String<16>,
    },
}

impl fmt::Display for ShmProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(p) => write!(f, "{p}"),
            Self::NameTaken(i) => write!(f, "is already the name of shm[{i}]"),
            Self::TooMany(i) => write!(f, "shm[{i}] is one region too many: at most {MAX_SHM} allowed"),
            Self::SizeZero => write!(f, "size is zero"),
            Self::SizeNotPage(s) => write!(f, "{} is not a multiple of 4 KiB", Size(*s)),
            Self::SizeTooLarge(s) => write!(f, "{} is more than the {} allowed", Size(*s), Size(MAX_SHM_SIZE)),
            Self::TooFewVms(n) => write!(f, "names {n} VM(s): a region is shared by at least 2"),
            Self::TooManyVms(n) => write!(f, "names {n} VMs, at most {MAX_SHM_PEERS} allowed"),
            Self::NoSuchVm(n) => write!(f, "{:?} is not the name of a VM of this configuration", n.as_str()),
            Self::VmRepeated(n) => write!(f, "{:?} is named twice", n.as_str()),
            Self::IntidTaken { intid, vm } => {
                write!(f, "the doorbell INTID {intid} is a pass-through interrupt of vm {:?}", vm.as_str())
            }
        }
    }
}

/// Why region `shm` was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmError {
    pub shm: usize,
    pub name: heapless::String<16>,
    pub field: ShmField,
    pub problem: ShmProblem,
}

/// `shm "ring": vms: "c" is not the name of a VM of this configuration`.
impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "shm[{}]", self.shm)?;
        } else {
            write!(f, "shm {:?}", self.name.as_str())?;
        }
        write!(f, ": {}: {}", self.field.toml_name(), self.problem)
    }
}

/// Checks every region against the VMs of the same configuration (all of
/// them, refused or not: a region names VMs, and a VM that does not start
/// is simply a peer that never rings). One result per region, in order.
pub fn validate(shms: &[ShmSpec], vms: &[VmSpec]) -> Vec<Result<(), ShmError>> {
    let mut accepted: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(shms.len());
    for (i, s) in shms.iter().enumerate() {
        let r = check(i, s, shms, &accepted, vms).map_err(|(field, problem)| ShmError {
            shm: i,
            name: s.name.clone(),
            field,
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
    s: &ShmSpec,
    shms: &[ShmSpec],
    accepted: &[usize],
    vms: &[VmSpec],
) -> Result<(), (ShmField, ShmProblem)> {
    vmspec::check_name(&s.name).map_err(|p| (ShmField::Name, ShmProblem::Name(p)))?;
    if i >= MAX_SHM {
        return Err((ShmField::Name, ShmProblem::TooMany(i)));
    }
    if let Some(&j) = accepted.iter().find(|&&j| shms[j].name == s.name) {
        return Err((ShmField::Name, ShmProblem::NameTaken(j)));
    }
    let size = |p| Err((ShmField::Size, p));
    if s.size == 0 {
        return size(ShmProblem::SizeZero);
    }
    if !s.size.is_multiple_of(PAGE) {
        return size(ShmProblem::SizeNotPage(s.size));
    }
    if s.size > MAX_SHM_SIZE {
        return size(ShmProblem::SizeTooLarge(s.size));
    }
    let bad = |p| Err((ShmField::Vms, p));
    if s.vms.len() < 2 {
        return bad(ShmProblem::TooFewVms(s.vms.len()));
    }
    if s.vms.len() > MAX_SHM_PEERS {
        return bad(ShmProblem::TooManyVms(s.vms.len()));
    }
    for (k, name) in s.vms.iter().enumerate() {
        if s.vms[..k].contains(name) {
            return bad(ShmProblem::VmRepeated(name.clone()));
        }
        let Some(vm) = vms.iter().find(|v| v.name == *name) else {
            return bad(ShmProblem::NoSuchVm(name.clone()));
        };
        let doorbell = intid(i);
        if vm.passthrough.iter().any(|d| d.interrupts.contains(&doorbell)) {
            return bad(ShmProblem::IntidTaken { intid: doorbell, vm: name.clone() });
        }
    }
    Ok(())
}

/// One region a VM shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The region's number (its place in the configuration).
    pub region: usize,
    /// This VM's peer number in it.
    pub peer: usize,
    /// How many peers it has.
    pub peers: usize,
}

/// The regions VM `name` shares, among those `valid` says were accepted.
pub fn memberships(shms: &[ShmSpec], valid: &[bool], name: &str) -> Vec<Membership> {
    shms.iter()
        .enumerate()
        .filter(|(i, _)| valid.get(*i).copied().unwrap_or(false))
        .filter_map(|(region, s)| {
            let peer = s.vms.iter().position(|v| v.as_str() == name)?;
            Some(Membership { region, peer, peers: s.vms.len() })
        })
        .collect()
}

/// A ring the caller may make: the doorbell of `region` in its peer `peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    pub region: usize,
    pub peer: usize,
}

/// `SHM_DOORBELL(region, peer)` from a VM sharing `mine`: allowed only for
/// a region the caller shares and a peer of it (itself included). The
/// arguments are whole 64-bit registers: any upper bit set is a bad one.
pub fn doorbell(mine: &[Membership], region: u64, peer: u64) -> Option<Ring> {
    let m = mine.iter().find(|m| m.region as u64 == region)?;
    (peer < m.peers as u64).then_some(Ring { region: m.region, peer: peer as usize })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use shared::platform::Passthrough;

    fn shm(name: &str, size: u64, vms: &[&str]) -> ShmSpec {
        ShmSpec { name: name.try_into().unwrap(), size, vms: vms.iter().map(|v| (*v).try_into().unwrap()).collect() }
    }

    fn vm(name: &str) -> VmSpec {
        VmSpec { name: name.try_into().unwrap(), ..Default::default() }
    }

    fn vms() -> Vec<VmSpec> {
        alloc::vec![vm("a"), vm("b"), vm("c")]
    }

    fn problem(s: ShmSpec) -> (ShmField, ShmProblem) {
        let e = validate(&[s], &vms()).remove(0).unwrap_err();
        (e.field, e.problem)
    }

    #[test]
    fn shm_layout_is_a_hole_of_the_guest_map() {
        assert_eq!(ipa(0), 0x1000_0000);
        assert_eq!(ipa(3), 0x1300_0000);
        assert_eq!(intid(0), 56);
        // Past the virtio transports' SPIs, inside the default vGIC.
        assert_eq!(vmspec::disk_intid(layout::VIRTIO_COUNT as usize - 1), 55);
        assert!(intid(MAX_SHM - 1) < 32 + 64);
        let window = vmspec::layout_windows().into_iter().find(|w| w.name == "SHM").unwrap();
        assert_eq!(window.region.base, ipa(0));
        assert_eq!(window.region.end(), ipa(MAX_SHM));
        for w in vmspec::layout_windows().iter().filter(|w| w.name != "SHM") {
            assert!(!w.region.overlaps(&window.region), "{}", w.name);
        }
    }

    #[test]
    fn shm_good_regions_pass() {
        let r = validate(&[shm("ring", 0x1_0000, &["a", "b"]), shm("all", MAX_SHM_SIZE, &["c", "b", "a"])], &vms());
        assert_eq!(r, [Ok(()), Ok(())]);
    }

    #[test]
    fn shm_size_rules() {
        assert_eq!(problem(shm("r", 0, &["a", "b"])), (ShmField::Size, ShmProblem::SizeZero));
        assert_eq!(problem(shm("r", 0x1800, &["a", "b"])), (ShmField::Size, ShmProblem::SizeNotPage(0x1800)));
        let big = MAX_SHM_SIZE + PAGE;
        assert_eq!(problem(shm("r", big, &["a", "b"])), (ShmField::Size, ShmProblem::SizeTooLarge(big)));
    }

    #[test]
    fn shm_vms_rules() {
        let name = |s: &str| heapless::String::try_from(s).unwrap();
        assert_eq!(problem(shm("r", PAGE, &["a"])), (ShmField::Vms, ShmProblem::TooFewVms(1)));
        assert_eq!(problem(shm("r", PAGE, &["a", "zz"])), (ShmField::Vms, ShmProblem::NoSuchVm(name("zz"))));
        assert_eq!(problem(shm("r", PAGE, &["a", "b", "a"])), (ShmField::Vms, ShmProblem::VmRepeated(name("a"))));
        let mut b = vm("b");
        b.passthrough
            .push(Passthrough { interrupts: heapless::Vec::from_slice(&[56]).unwrap(), ..Default::default() })
            .unwrap();
        let e = validate(&[shm("r", PAGE, &["a", "b"])], &[vm("a"), b]).remove(0).unwrap_err();
        assert_eq!(e.problem, ShmProblem::IntidTaken { intid: 56, vm: name("b") });
    }

    #[test]
    fn shm_name_count_and_messages() {
        let r = validate(&[shm("r", PAGE, &["a", "b"]), shm("r", PAGE, &["b", "c"])], &vms());
        assert_eq!(r[1].clone().unwrap_err().problem, ShmProblem::NameTaken(0));
        assert_eq!(r[1].clone().unwrap_err().to_string(), r#"shm "r": name: is already the name of shm[0]"#);
        // A refused region does not hold its name.
        let r = validate(&[shm("r", 0, &["a", "b"]), shm("r", PAGE, &["b", "c"])], &vms());
        assert!(r[0].is_err() && r[1].is_ok());
        assert_eq!(problem(shm("", PAGE, &["a", "b"])).1, ShmProblem::Name(vmspec::Problem::NameEmpty));
        let five: Vec<ShmSpec> = ["p", "q", "r", "s", "t"].iter().map(|n| shm(n, PAGE, &["a", "b"])).collect();
        let r = validate(&five, &vms());
        assert!(r[..4].iter().all(|r| r.is_ok()));
        let e = r[4].clone().unwrap_err();
        assert_eq!(e.to_string(), r#"shm "t": name: shm[4] is one region too many: at most 4 allowed"#);
        let e = validate(&[shm("ring", PAGE, &["a", "x"])], &vms()).remove(0).unwrap_err();
        assert_eq!(e.to_string(), r#"shm "ring": vms: "x" is not the name of a VM of this configuration"#);
    }

    #[test]
    fn shm_memberships_follow_the_vms_lists() {
        let shms = [shm("p", PAGE, &["a", "b"]), shm("q", PAGE, &["c", "b"]), shm("r", PAGE, &["b", "c"])];
        let valid = [true, true, false];
        assert_eq!(memberships(&shms, &valid, "a"), [Membership { region: 0, peer: 0, peers: 2 }]);
        assert_eq!(
            memberships(&shms, &valid, "b"),
            [Membership { region: 0, peer: 1, peers: 2 }, Membership { region: 1, peer: 1, peers: 2 }]
        );
        assert!(memberships(&shms, &valid, "d").is_empty());
    }

    #[test]
    fn shm_doorbell_rings_only_shared_regions_and_real_peers() {
        let mine = [Membership { region: 1, peer: 0, peers: 3 }];
        assert_eq!(doorbell(&mine, 1, 2), Some(Ring { region: 1, peer: 2 }));
        assert_eq!(doorbell(&mine, 1, 0), Some(Ring { region: 1, peer: 0 }), "its own doorbell");
        assert_eq!(doorbell(&mine, 1, 3), None, "no such peer");
        assert_eq!(doorbell(&mine, 0, 0), None, "not a member");
        assert_eq!(doorbell(&mine, 1 << 32 | 1, 0), None, "upper bits count");
        assert_eq!(doorbell(&mine, 1, u64::MAX), None);
        assert_eq!(doorbell(&[], 0, 0), None, "a VM that shares nothing");
    }
}
