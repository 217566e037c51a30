//! `hypervisor::vgic`: any sequence of guest MMIO accesses to the emulated
//! GICD/GICR frames, mixed with the host-side calls (inject, line levels,
//! ICC_SGI1R_EL1 traps, list-register flush and sync with whatever the
//! guest left in the LRs), never panics; every register reads back, right
//! after a write, a value the architecture allows (IHI 0069H §12.9-12.11,
//! IHI 0048B §4.3); a write through one vCPU's redistributor (or a banked
//! GICv2 register) changes no other vCPU's private interrupts; and a second
//! VM is never affected.

use arbitrary::{Result, Unstructured};
use hypervisor::vgic::irq::Trigger;
use hypervisor::vgic::lr::{LrState, decode_intid, decode_state};
use hypervisor::vgic::{Frame, GicVersion, IrqState, MAX_LRS, MAX_SPIS, MAX_VCPUS_V2, MAX_VCPUS_V3, NR_PRIVATE, Vgic};

/// Most operations per input.
const MAX_OPS: usize = 512;
/// GICv3 SGI_base frame offset inside a redistributor.
const SGI_BASE: u64 = 0x1_0000;
/// GICD_IROUTER<n> implemented bits (Aff3, Aff2..Aff0).
const IROUTER_MASK: u64 = 0xFF_00FF_FFFF;

/// Input: a VM configuration, then operations until the bytes run out.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let version = if u.arbitrary::<bool>()? { GicVersion::V3 } else { GicVersion::V2 };
    let max_vcpus = if version == GicVersion::V3 { MAX_VCPUS_V3 } else { MAX_VCPUS_V2 };
    let nr_vcpus = match u.int_in_range(0u8..=15)? {
        // Edge cases: none, the most, one too many.
        0 => 0,
        1 => max_vcpus,
        2 => max_vcpus + 1,
        n => usize::from(n - 2).min(max_vcpus),
    };
    let nr_spis = match u.int_in_range(0u8..=7)? {
        0 => MAX_SPIS,
        1 => MAX_SPIS + 1 + usize::from(u.arbitrary::<u8>()?),
        _ => usize::from(u.int_in_range(0u16..=256)?),
    };
    let made = Vgic::new(version, nr_vcpus, nr_spis);
    let valid = (1..=max_vcpus).contains(&nr_vcpus) && nr_spis <= MAX_SPIS;
    assert_eq!(made.is_ok(), valid, "Vgic::new({version:?}, {nr_vcpus}, {nr_spis}) = {made:?}");
    let Ok(vgic) = made else { return Ok(()) };
    assert_eq!(vgic.nr_spis() % 32, 0);
    assert!(vgic.nr_spis() >= nr_spis);

    // Another VM with the same configuration: nothing done to the first
    // may change it.
    let other = Vgic::new(version, nr_vcpus, nr_spis).expect("same configuration");
    let other_before = format!("{other:?}");

    let mut s = State { g: vgic, stash: vec![Vec::new(); nr_vcpus] };
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        s.op(u)?;
    }
    s.check_global();
    assert_eq!(format!("{other:?}"), other_before, "another VM's vGIC changed");
    Ok(())
}

/// Where an assertion failed: formatted only when one does.
struct At {
    version: GicVersion,
    value: u64,
    size: u8,
    frame: Frame,
    offset: u64,
    vcpu: usize,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let At { version, value, size, frame, offset, vcpu } = self;
        write!(f, "{version:?} write of {value:#x} ({size} bytes) at {frame:?}+{offset:#x} by vCPU {vcpu}")
    }
}

struct State {
    g: Vgic,
    /// Per vCPU: the LRs of the last flush, for a sync.
    stash: Vec<Vec<u64>>,
}

/// Register bases the offsets are drawn around: (base, span).
const DIST_REGS: &[(u64, u64)] = &[
    (0x000, 0x10),    // CTLR, TYPER, IIDR, TYPER2
    (0x080, 0x380),   // the seven bit arrays
    (0x400, 0x400),   // IPRIORITYR
    (0x800, 0x400),   // ITARGETSR
    (0xC00, 0x100),   // ICFGR
    (0xF00, 0x30),    // SGIR, CPENDSGIR, SPENDSGIR
    (0x6000, 0x2000), // IROUTER
    (0xFD0, 0x30),    // GICv2 ID registers
    (0xFFD0, 0x30),   // GICv3 ID registers
];
const REDIST_REGS: &[(u64, u64)] = &[
    (0x0000, 0x18),            // CTLR, IIDR, TYPER, WAKER
    (0xFFD0, 0x30),            // ID registers
    (SGI_BASE + 0x080, 0x380), // bit arrays
    (SGI_BASE + 0x400, 0x20),  // IPRIORITYR0-7
    (SGI_BASE + 0xC00, 0x8),   // ICFGR0-1
];

impl State {
    fn nr_vcpus(&self) -> usize {
        self.g.nr_vcpus()
    }

    fn v3(&self) -> bool {
        self.g.version() == GicVersion::V3
    }

    fn exists(&self, vcpu: usize, intid: u32) -> bool {
        if (intid as usize) < NR_PRIVATE {
            vcpu < self.nr_vcpus()
        } else {
            (intid as usize) < NR_PRIVATE + self.g.nr_spis()
        }
    }

    fn cpu_mask(&self) -> u8 {
        ((1u16 << self.nr_vcpus().min(8)) - 1) as u8
    }

    fn intid(&self, u: &mut Unstructured<'_>) -> Result<u32> {
        Ok(match u.int_in_range(0u8..=3)? {
            0 => u.arbitrary()?,
            1 => u.int_in_range(0..=31)?,
            _ => u.int_in_range(0..=(NR_PRIVATE + self.g.nr_spis() + 8) as u32)?,
        })
    }

    fn op(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let nr = self.nr_vcpus();
        let vcpu = u.int_in_range(0..=nr)?;
        match u.int_in_range(0u8..=15)? {
            0..=6 => {
                let (frame, offset, size) = self.access(u)?;
                let value = u.arbitrary()?;
                self.write_and_read_back(vcpu, frame, offset, size, value);
            }
            7 => {
                let (frame, offset, size) = self.access(u)?;
                if let Ok(value) = self.g.mmio_read(vcpu, frame, offset, size)
                    && matches!(size, 1 | 2 | 4)
                {
                    assert_eq!(value >> (8 * u32::from(size)), 0, "{frame:?}+{offset:#x}: read wider than {size}");
                }
            }
            8 => {
                let intid = self.intid(u)?;
                let ok = self.g.inject(vcpu, intid).is_ok();
                assert_eq!(ok, self.exists(vcpu, intid), "inject({vcpu}, {intid})");
            }
            9 => {
                let intid = self.intid(u)?;
                let level = u.arbitrary()?;
                let ok = self.g.set_level(vcpu, intid, level).is_ok();
                assert_eq!(ok, self.exists(vcpu, intid), "set_level({vcpu}, {intid})");
            }
            10 => {
                let value: u64 = u.arbitrary()?;
                match self.g.send_sgi(vcpu, value) {
                    Ok(targets) => {
                        assert!(self.v3() && vcpu < nr);
                        if nr < 64 {
                            assert_eq!(targets.bits() >> nr, 0, "SGI to a missing vCPU");
                        }
                    }
                    Err(_) => assert!(!self.v3() || vcpu >= nr),
                }
            }
            11 => {
                let nr_lrs = u.int_in_range(0..=MAX_LRS + 2)?;
                self.flush(vcpu, nr_lrs);
            }
            12 => self.sync(u, vcpu)?,
            13 => {
                let intid = self.intid(u)?;
                let pintid = if u.arbitrary()? { Some(u.int_in_range(0..=1100)?) } else { None };
                let ok = self.g.map_hw(vcpu, intid, pintid).is_ok();
                let valid_p = pintid.is_none_or(|p| (16..1020).contains(&p));
                assert_eq!(
                    ok,
                    intid >= 16 && valid_p && self.exists(vcpu, intid),
                    "map_hw({vcpu}, {intid}, {pintid:?})"
                );
            }
            _ => self.check_pending(),
        }
        Ok(())
    }

    /// A frame, offset and size, mostly near real registers.
    fn access(&self, u: &mut Unstructured<'_>) -> Result<(Frame, u64, u8)> {
        let redist = self.v3() && u.ratio(1u8, 3)?;
        let frame = if redist { Frame::Redist(u.int_in_range(0..=self.nr_vcpus())?) } else { Frame::Dist };
        let size = *u.choose(&[4u8, 4, 4, 4, 1, 1, 2, 8, 8, 0, 3, 16])?;
        let offset = if u.ratio(1u8, 16)? {
            u.arbitrary::<u64>()? % 0x4_0000
        } else {
            let &(base, span) = u.choose(if redist { REDIST_REGS } else { DIST_REGS })?;
            let off = base + u.int_in_range(0..=span - 1)?;
            // Mostly naturally aligned, as a compiler would emit.
            if u.ratio(7u8, 8)? && matches!(size, 1 | 2 | 4 | 8) { off & !(u64::from(size) - 1) } else { off }
        };
        Ok((frame, offset, size))
    }

    fn private_rows(&self) -> Vec<Vec<IrqState>> {
        (0..self.nr_vcpus())
            .map(|v| (0..NR_PRIVATE as u32).map(|i| *self.g.irq_state(v, i).expect("private irq")).collect())
            .collect()
    }

    fn spis(&self) -> Vec<IrqState> {
        (0..self.g.nr_spis() as u32).map(|i| *self.g.irq_state(0, NR_PRIVATE as u32 + i).expect("spi")).collect()
    }

    fn write_and_read_back(&mut self, vcpu: usize, frame: Frame, offset: u64, size: u8, value: u64) {
        let rows = self.private_rows();
        let spis = self.spis();
        let before = self.g.mmio_read(vcpu, frame, offset, size);
        let written = self.g.mmio_write(vcpu, frame, offset, size, value);
        let after = self.g.mmio_read(vcpu, frame, offset, size);
        let at = &At { version: self.g.version(), value, size, frame, offset, vcpu };
        assert_eq!(before.err(), written.err(), "{at}: a read and a write disagree on the access rules");
        assert_eq!(after.is_ok(), written.is_ok(), "{at}");
        let (Ok(before), Ok(())) = (before, written) else { return };
        let after = after.expect("checked above");
        let accessor = vcpu.min(self.nr_vcpus() - 1);
        match frame {
            Frame::Dist => self.check_dist(at, accessor, offset, size, value, before, after),
            Frame::Redist(rd) => self.check_redist(at, rd, offset, size, value, before, after),
        }

        // Isolation: whose private interrupts may this write change?
        let rows_after = self.private_rows();
        for (v, (old, new)) in rows.iter().zip(&rows_after).enumerate() {
            let may_change = match frame {
                Frame::Redist(rd) => v == rd,
                // GICv3: the distributor holds no private state (ARE = 1).
                Frame::Dist if self.v3() => false,
                // GICv2 GICD_SGIR sends SGIs to other CPUs; everything
                // else is banked for the accessor.
                Frame::Dist => offset == 0xF00 || v == accessor,
            };
            if !may_change {
                assert_eq!(old, new, "{at}: vCPU {v}'s private interrupts changed");
            }
        }
        if matches!(frame, Frame::Redist(_)) {
            assert_eq!(spis, self.spis(), "{at}: a redistributor write changed an SPI");
        }
    }

    /// The interrupts of a 32-bit word of a bit array that exist, for `vcpu`.
    fn exists_mask(&self, vcpu: usize, first: u32) -> u32 {
        (0..32).filter(|b| self.exists(vcpu, first + b)).fold(0, |m, b| m | 1 << b)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_bit_array(&self, at: &At, vcpu: usize, array: u64, first: u32, value: u64, before: u64, after: u64) {
        let ex = u64::from(self.exists_mask(vcpu, first));
        let w = value & 0xFFFF_FFFF & ex;
        match array {
            0 => assert_eq!(after, w, "{at}: IGROUPR"),
            1 => assert_eq!(after, before | w, "{at}: ISENABLER"),
            2 => assert_eq!(after, before & !w, "{at}: ICENABLER"),
            3 => {
                // GICv2 SGIs are made pending only through SPENDSGIR.
                let w = if !self.v3() && first == 0 { w & !0xFFFF } else { w };
                assert_eq!(after, before | w, "{at}: ISPENDR");
            }
            4 => {
                assert_eq!(after & !before, 0, "{at}: ICPENDR made something pending");
                for bit in 0..32 {
                    let Some(irq) = self.g.irq_state(vcpu, first + bit) else { continue };
                    if w & (1 << bit) != 0 && irq.trigger == Trigger::Edge && irq.sgi_sources == 0 {
                        assert_eq!(after & (1 << bit), 0, "{at}: ICPENDR left INTID {} pending", first + bit);
                    }
                }
            }
            5 => assert_eq!(after, before | w, "{at}: ISACTIVER"),
            _ => assert_eq!(after, before & !w, "{at}: ICACTIVER"),
        }
    }

    fn check_priority(&self, at: &At, vcpu: usize, first: u32, size: u8, value: u64, after: u64) {
        for i in 0..u32::from(size) {
            let got = (after >> (8 * i)) as u8;
            let want = if self.exists(vcpu, first + i) { (value >> (8 * i)) as u8 & 0xF8 } else { 0 };
            assert_eq!(got, want, "{at}: IPRIORITYR byte {i}");
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_dist(&self, at: &At, vcpu: usize, offset: u64, size: u8, value: u64, before: u64, after: u64) {
        let v3 = self.v3();
        match offset {
            0x000 => assert_eq!(after, (value & 3) | if v3 { 0x50 } else { 0 }, "{at}: GICD_CTLR"),
            0x080..0x400 => {
                let n = (offset % 0x80) / 4;
                if v3 && n == 0 {
                    assert_eq!(after, 0, "{at}: SGI/PPI words are RAZ in the GICv3 GICD");
                } else {
                    self.check_bit_array(at, vcpu, offset / 0x80 - 1, n as u32 * 32, value, before, after);
                }
            }
            0x400..0x800 => {
                let first = (offset - 0x400) as u32;
                if v3 && first < NR_PRIVATE as u32 {
                    assert_eq!(after, 0, "{at}");
                } else {
                    self.check_priority(at, vcpu, first, size, value, after);
                }
            }
            0x800..0xC00 => {
                let first = (offset - 0x800) as u32;
                for i in 0..u32::from(size) {
                    let intid = first + i;
                    let got = (after >> (8 * i)) as u8;
                    let want = if v3 || !self.exists(vcpu, intid) {
                        0
                    } else if intid < NR_PRIVATE as u32 {
                        1 << (vcpu % 8)
                    } else {
                        (value >> (8 * i)) as u8 & self.cpu_mask()
                    };
                    assert_eq!(got, want, "{at}: ITARGETSR byte {i}");
                }
            }
            0xC00..0xD00 => {
                let n = ((offset - 0xC00) / 4) as u32;
                match n {
                    _ if v3 && n < 2 => assert_eq!(after, 0, "{at}"),
                    0 => assert_eq!(after, 0xAAAA_AAAA, "{at}: SGIs are edge-triggered"),
                    1 => assert_eq!(after, before, "{at}: PPI configuration is read-only"),
                    _ => {
                        let mut want = 0;
                        for i in 0..16 {
                            if self.exists(vcpu, n * 16 + i) {
                                want |= value & (2 << (2 * i));
                            }
                        }
                        assert_eq!(after, want, "{at}: ICFGR");
                    }
                }
            }
            0xF10..0xF30 if !v3 => {
                let set = offset >= 0xF20;
                for i in 0..u32::from(size) {
                    let (old, new, w) = ((before >> (8 * i)) as u8, (after >> (8 * i)) as u8, (value >> (8 * i)) as u8);
                    let want = if set { old | (w & self.cpu_mask()) } else { old & !w };
                    assert_eq!(new, want, "{at}: {}PENDSGIR byte {i}", if set { "S" } else { "C" });
                }
            }
            0x6000..0x8000 if v3 => {
                let intid = ((offset - 0x6000) / 8) as u32;
                let want = if intid < NR_PRIVATE as u32 || !self.exists(vcpu, intid) {
                    0
                } else {
                    match (size, offset % 8) {
                        (8, _) => value & IROUTER_MASK,
                        (_, 0) => value & IROUTER_MASK & 0xFFFF_FFFF,
                        _ => value & (IROUTER_MASK >> 32),
                    }
                };
                assert_eq!(after, want, "{at}: IROUTER");
            }
            // TYPER, IIDR, SGIR, ID registers, reserved space: RO or RAZ/WI.
            _ => assert_eq!(after, before, "{at}: read-only register changed"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_redist(&self, at: &At, rd: usize, offset: u64, size: u8, value: u64, before: u64, after: u64) {
        assert!(rd < self.nr_vcpus(), "{at}: a missing redistributor accepted an access");
        if offset < SGI_BASE {
            match offset {
                0x0014 => assert_eq!(after, if value & 2 != 0 { 6 } else { 0 }, "{at}: GICR_WAKER"),
                _ => assert_eq!(after, before, "{at}: read-only register changed"),
            }
            return;
        }
        let o = offset - SGI_BASE;
        match o {
            0x080..0x400 if (o % 0x80) / 4 == 0 => self.check_bit_array(at, rd, o / 0x80 - 1, 0, value, before, after),
            0x400..0x420 => self.check_priority(at, rd, (o - 0x400) as u32, size, value, after),
            0xC00 => assert_eq!(after, 0xAAAA_AAAA, "{at}: GICR_ICFGR0"),
            _ => assert_eq!(after, before, "{at}: read-only register changed"),
        }
    }

    fn flush(&mut self, vcpu: usize, nr_lrs: usize) {
        let version = self.g.version();
        let plan = self.g.flush_lrs(vcpu, nr_lrs);
        assert!(plan.lrs.len() <= nr_lrs.min(MAX_LRS), "{} LRs for {nr_lrs}", plan.lrs.len());
        if vcpu >= self.nr_vcpus() {
            assert!(plan.lrs.is_empty() && !plan.underflow);
            return;
        }
        let mut seen = Vec::new();
        for &lr in &plan.lrs {
            let intid = decode_intid(version, lr);
            assert!(self.exists(vcpu, intid), "LR names missing INTID {intid}");
            assert!(!seen.contains(&intid), "INTID {intid} in two LRs");
            seen.push(intid);
            assert_ne!(decode_state(version, lr), LrState::Invalid, "an empty LR in the plan");
            let irq = self.g.irq_state(vcpu, intid).expect("exists");
            assert!(irq.in_lr, "INTID {intid} listed but not marked in_lr");
        }
        self.stash[vcpu] = plan.lrs.to_vec();
    }

    fn sync(&mut self, u: &mut Unstructured<'_>, vcpu: usize) -> Result<()> {
        let version = self.g.version();
        let shift = if version == GicVersion::V3 { 62 } else { 28 };
        let stashed = self.stash.get(vcpu).cloned().unwrap_or_default();
        let back: Vec<u64> = match u.int_in_range(0u8..=3)? {
            0 => stashed,
            // The guest changed the states (acknowledge, EOI, ...).
            1 => stashed
                .iter()
                .map(|&lr| Ok((lr & !(3 << shift)) | (u64::from(u.int_in_range(0u8..=3)?) << shift)))
                .collect::<Result<_>>()?,
            // Garbage, or fewer values than LRs.
            2 => (0..u.int_in_range(0..=MAX_LRS)?).map(|_| u.arbitrary()).collect::<Result<_>>()?,
            _ => stashed.iter().take(u.int_in_range(0..=stashed.len())?).copied().collect(),
        };
        self.g.sync_lrs(vcpu, &back);
        if let Some(s) = self.stash.get_mut(vcpu) {
            s.clear();
        }
        Ok(())
    }

    fn check_pending(&mut self) {
        let nr = self.nr_vcpus();
        for vcpu in 0..=nr {
            let list = self.g.pending_for(vcpu);
            assert_eq!(self.g.has_pending(vcpu), !list.is_empty(), "has_pending({vcpu}) disagrees with pending_for");
            let mut last = 0;
            for &intid in &list {
                assert!(self.exists(vcpu, intid));
                let p = self.g.irq_state(vcpu, intid).expect("exists").priority;
                assert!(p >= last, "pending_for({vcpu}) not in priority order");
                last = p;
            }
        }
        let kicks = self.g.take_kicks();
        if nr < 64 {
            assert_eq!(kicks.bits() >> nr, 0, "kick for a missing vCPU");
        }
    }

    fn check_global(&mut self) {
        self.check_pending();
        let nr = self.nr_vcpus();
        let all = self.private_rows().into_iter().enumerate().flat_map(|(v, row)| {
            row.into_iter().enumerate().map(move |(i, irq)| (v, i as u32, irq)).collect::<Vec<_>>()
        });
        let spis = self.spis().into_iter().enumerate().map(|(i, irq)| (0, (i + NR_PRIVATE) as u32, irq));
        for (v, intid, irq) in all.chain(spis) {
            assert_eq!(irq.priority & 7, 0, "vCPU {v} INTID {intid}: unimplemented priority bits");
            assert_eq!(irq.route & !IROUTER_MASK, 0, "INTID {intid}: IROUTER reserved bits");
            assert!(usize::from(irq.lr_vcpu) < nr, "INTID {intid}: lr_vcpu {}", irq.lr_vcpu);
            if intid < 16 {
                assert_eq!(irq.trigger, Trigger::Edge, "vCPU {v} SGI {intid} became level");
            } else if intid < 32 {
                assert_eq!(irq.trigger, Trigger::Level, "vCPU {v} PPI {intid} became edge");
            }
            if let Some(p) = irq.hw_intid {
                assert!((16..1020).contains(&p));
            }
            if !self.v3() && intid >= 32 {
                assert_eq!(irq.targets & !self.cpu_mask(), 0, "SPI {intid} targets a missing CPU");
            }
        }
    }
}
