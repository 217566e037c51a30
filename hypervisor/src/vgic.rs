//! The virtual GIC of one VM, a pure core for GICv3 and GICv2 guests.
//!
//! The glue calls [`Vgic::mmio_read`] / [`Vgic::mmio_write`] for guest
//! accesses to the emulated distributor (IHI 0069H §12.9, IHI 0048B §4.3)
//! and redistributors (IHI 0069H §12.10-12.11), raises interrupts with
//! [`Vgic::inject`] and [`Vgic::set_level`], forwards trapped ICC_SGI1R_EL1
//! writes to [`Vgic::send_sgi`], and around every guest entry does
//!
//! ```text
//! let plan = vgic.flush_lrs(vcpu, nr_lrs);  // write plan.lrs to ICH_LR<n>_EL2
//!                                           // (GICH_LR<n>), zero the rest,
//!                                           // set ICH_HCR_EL2.UIE = plan.underflow
//! ... run the guest ...
//! vgic.sync_lrs(vcpu, &read_back);          // ICH_LR<n>_EL2 for n < plan.lrs.len()
//! ```
//!
//! then kicks the physical CPUs of [`Vgic::take_kicks`]. A vCPU in WFI
//! wakes when [`Vgic::has_pending`] says so.
//!
//! The model follows KVM's vGIC: a single security state (GICD_CTLR.DS = 1),
//! affinity routing always on for GICv3 (ARE RAO/WI), no LPIs/ITS, no 1-of-N
//! SPI routing (GICD_TYPER.No1N = 1), 5 priority bits, PPIs fixed as
//! level-sensitive (their ICFGR bits read-only), and a level-sensitive
//! interrupt that is active never listed as pending too (its line is
//! resampled at the EOI maintenance exit instead). Changes the guest
//! makes through the distributor to an interrupt that currently sits in a
//! running vCPU's list register take effect when that vCPU next exits.

mod dist;
pub mod irq;
pub mod lr;
mod redist;
pub mod sgi;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_model;

use alloc::vec::Vec;

pub use crate::vpl011::MmioError;
pub use irq::{IrqState, Trigger};
pub use lr::{LrPlan, LrState, MAX_LRS};
pub use sgi::SgiRequest;

use irq::PRIORITY_MASK;

/// Size of the distributor frame.
pub const GICD_FRAME_SIZE: u64 = 0x1_0000;
/// Size of one GICv3 redistributor: RD_base then SGI_base (IHI 0069H §12.10).
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;
/// Most vCPUs a VM may have: a [`VcpuSet`] is a 64-bit mask.
pub const MAX_VCPUS_V3: usize = 64;
/// GICv2 addresses at most eight CPU interfaces (IHI 0048B §1.3).
pub const MAX_VCPUS_V2: usize = 8;
/// Most SPIs: INTIDs 32..=1019 (IHI 0069H §2.2.1), rounded to whole
/// 32-interrupt blocks.
pub const MAX_SPIS: usize = 960;
/// INTIDs 0..32 are private to each vCPU: SGIs 0-15, PPIs 16-31.
pub const NR_PRIVATE: usize = 32;

/// Which GIC architecture the VM sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (IHI 0048B): GICD + memory-mapped GICC (GICV through stage 2).
    V2,
    /// GICv3 (IHI 0069H): GICD + one GICR per vCPU + system-register CPU interface.
    V3,
}

/// Saved virtual CPU interface state of a vCPU that is not loaded
/// (`arch/aarch64/vgic_hw.rs` loads and saves it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VgicCpuState {
    /// ICH_VMCR_EL2 / GICH_VMCR: the guest's priority mask, BPR, enables.
    pub vmcr: u64,
    /// Active-priority registers (one of each suffices for 5 priority bits).
    pub ap0r0: u64,
    pub ap1r0: u64,
    /// How many list registers the last flush wrote.
    pub lrs_written: usize,
}

/// The first four 32-bit words of a vGIC register frame, where those that
/// never change after the vGIC is made are known (the distributor's
/// GICD_TYPER, IHI 0069H §12.9.38; GICR_TYPER, §12.11.35; the IIDRs): the
/// trap fast path answers their reads without the vGIC's lock
/// ([`Vgic::fixed_regs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedRegs([Option<u32>; 4]);

impl FixedRegs {
    /// A 32-bit aligned read at `offset` of a fixed word; None for
    /// anything else (the model answers, or refuses it).
    #[inline(always)]
    pub fn read(&self, offset: u64, size: u8) -> Option<u64> {
        if size != 4 || !offset.is_multiple_of(4) || offset >= 16 {
            return None;
        }
        self.0[(offset / 4) as usize].map(u64::from)
    }
}

/// Which emulated register frame an access hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The distributor; offsets 0..[`GICD_FRAME_SIZE`].
    Dist,
    /// The redistributor of vCPU `n` (GICv3 only); offsets 0..[`GICR_FRAME_SIZE`].
    Redist(usize),
}

impl Frame {
    /// Maps a guest IPA to a frame and offset, using the VM layout of
    /// `shared::layout`. Returns `None` outside every vGIC frame.
    pub fn from_ipa(version: GicVersion, nr_vcpus: usize, ipa: u64) -> Option<(Frame, u64)> {
        use shared::layout::{GICD_BASE, GICR_BASE};
        if let Some(offset) = ipa.checked_sub(GICD_BASE)
            && offset < GICD_FRAME_SIZE
        {
            return Some((Frame::Dist, offset));
        }
        if version == GicVersion::V3
            && let Some(offset) = ipa.checked_sub(GICR_BASE)
        {
            let vcpu = offset / GICR_FRAME_SIZE;
            if vcpu < nr_vcpus as u64 {
                return Some((Frame::Redist(vcpu as usize), offset % GICR_FRAME_SIZE));
            }
        }
        None
    }
}

/// A set of vCPU indices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSet(u64);

impl VcpuSet {
    /// No vCPU.
    pub const EMPTY: VcpuSet = VcpuSet(0);

    /// Adds `vcpu`; indices of [`MAX_VCPUS_V3`] or more are ignored.
    pub fn insert(&mut self, vcpu: usize) {
        if vcpu < MAX_VCPUS_V3 {
            self.0 |= 1 << vcpu;
        }
    }

    /// Whether `vcpu` is in the set.
    pub fn contains(&self, vcpu: usize) -> bool {
        vcpu < MAX_VCPUS_V3 && self.0 & (1 << vcpu) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The set as a bit mask, bit `n` for vCPU `n`.
    pub fn bits(&self) -> u64 {
        self.0
    }

    /// The vCPU indices, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let bits = self.0;
        (0..MAX_VCPUS_V3).filter(move |v| bits & (1 << v) != 0)
    }
}

/// Errors of the host-facing API (guest MMIO errors are [`MmioError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicError {
    /// `new` got a vCPU count of zero or above the version's maximum.
    BadVcpuCount(usize),
    /// `new` got more SPIs than [`MAX_SPIS`].
    BadSpiCount(usize),
    /// No such vCPU in this VM.
    NoSuchVcpu(usize),
    /// No such INTID in this VM (or not allowed for this call).
    NoSuchIrq(u32),
    /// The call only exists for the other GIC version.
    WrongVersion,
}

/// The affinity (MPIDR_EL1 Aff3..Aff0 layout) the vGIC gives vCPU `vcpu`:
/// Aff0 = index, other levels 0. The glue sets VMPIDR_EL2 to this value with
/// bit 31 (RES1) added, so that the guest and the vGIC agree.
pub const fn vcpu_affinity(vcpu: usize) -> u64 {
    (vcpu as u64) & 0xFF
}

/// Per-vCPU redistributor state that is not per interrupt.
#[derive(Clone, Copy, Debug)]
struct RedistState {
    /// GICR_WAKER.ProcessorSleep (IHI 0069H §12.11.37).
    processor_sleep: bool,
}

/// The virtual GIC of one VM.
#[derive(Clone, Debug)]
pub struct Vgic {
    version: GicVersion,
    nr_vcpus: usize,
    nr_spis: usize,
    /// GICD_CTLR EnableGrp0 (bit 0) and EnableGrp1 (bit 1).
    ctlr: u32,
    private: Vec<[IrqState; NR_PRIVATE]>,
    spis: Vec<IrqState>,
    redist: Vec<RedistState>,
    /// Per vCPU: the LR values written by the last flush, not yet synced.
    in_flight: Vec<heapless::Vec<u64, MAX_LRS>>,
    kicks: VcpuSet,
}

impl Vgic {
    /// A vGIC in its reset state for `nr_vcpus` vCPUs and `nr_spis` SPIs
    /// (rounded up to a multiple of 32, as GICD_TYPER.ITLinesNumber counts).
    pub fn new(version: GicVersion, nr_vcpus: usize, nr_spis: usize) -> Result<Vgic, VgicError> {
        let max_vcpus = match version {
            GicVersion::V2 => MAX_VCPUS_V2,
            GicVersion::V3 => MAX_VCPUS_V3,
        };
        if nr_vcpus == 0 || nr_vcpus > max_vcpus {
            return Err(VgicError::BadVcpuCount(nr_vcpus));
        }
        if nr_spis > MAX_SPIS {
            return Err(VgicError::BadSpiCount(nr_spis));
        }
        Ok(Self::build(version, nr_vcpus, nr_spis.div_ceil(32) * 32))
    }

    /// A vGIC of this one's version, vCPUs and SPIs, in its reset state (a
    /// VM reset; GICD/GICR reset values, IHI 0069H §12.1).
    pub fn reset_state(&self) -> Vgic {
        Self::build(self.version, self.nr_vcpus, self.nr_spis)
    }

    /// The reset state, for counts [`Vgic::new`] checked.
    fn build(version: GicVersion, nr_vcpus: usize, nr_spis: usize) -> Vgic {
        // KVM's reset state: SGIs edge, PPIs and SPIs level; a GICv3 guest
        // starts in group 1, a GICv2 guest in group 0 (IHI 0048B §4.3.5).
        let group1 = version == GicVersion::V3;
        let private_row: [IrqState; NR_PRIVATE] = core::array::from_fn(|intid| {
            let mut irq =
                if intid < 16 { IrqState::new(Trigger::Edge, group1) } else { IrqState::new(Trigger::Level, group1) };
            // GICv2 SGIs are permanently enabled on many implementations
            // (IHI 0048B §4.3.5); KVM starts them enabled.
            irq.enabled = version == GicVersion::V2 && intid < 16;
            irq
        });
        let private = (0..nr_vcpus)
            .map(|vcpu| {
                let mut row = private_row;
                for irq in row.iter_mut() {
                    irq.lr_vcpu = vcpu as u8;
                    irq.targets = 1 << (vcpu % 8);
                    irq.route = vcpu_affinity(vcpu);
                }
                row
            })
            .collect();
        let mut spi = IrqState::new(Trigger::Level, group1);
        // ITARGETSR resets to 0 on hardware; routing SPIs to CPU 0 keeps a
        // guest that never programs them working.
        spi.targets = 1;
        Vgic {
            version,
            nr_vcpus,
            nr_spis,
            ctlr: 0,
            private,
            spis: alloc::vec![spi; nr_spis],
            redist: alloc::vec![RedistState { processor_sleep: true }; nr_vcpus],
            in_flight: alloc::vec![heapless::Vec::new(); nr_vcpus],
            kicks: VcpuSet::EMPTY,
        }
    }

    /// The GIC version the VM sees.
    pub fn version(&self) -> GicVersion {
        self.version
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.nr_vcpus
    }

    /// Number of SPIs (INTIDs 32..32 + nr_spis).
    pub fn nr_spis(&self) -> usize {
        self.nr_spis
    }

    /// The registers of `frame` whose value is fixed for this vGIC's life
    /// (they follow only its version and counts, which a reset keeps).
    pub fn fixed_regs(&self, frame: Frame) -> FixedRegs {
        match frame {
            // GICD_CTLR changes; GICD_TYPER, GICD_IIDR and GICD_TYPER2 do not.
            Frame::Dist => FixedRegs([None, Some(self.typer()), Some(dist::IIDR), Some(0)]),
            // GICR_CTLR (no LPIs: reads as 0), GICR_IIDR, GICR_TYPER's two words.
            Frame::Redist(n) if self.version == GicVersion::V3 && n < self.nr_vcpus => {
                let typer = self.gicr_typer(n);
                FixedRegs([Some(0), Some(dist::IIDR), Some(typer as u32), Some((typer >> 32) as u32)])
            }
            Frame::Redist(_) => FixedRegs([None; 4]),
        }
    }

    /// A guest read of `size` bytes at `offset` of `frame` by vCPU `vcpu`
    /// (the accessor matters for the banked GICv2 registers).
    pub fn mmio_read(&self, vcpu: usize, frame: Frame, offset: u64, size: u8) -> Result<u64, MmioError> {
        let vcpu = vcpu.min(self.nr_vcpus - 1);
        match frame {
            Frame::Dist => self.dist_read(vcpu, offset, size),
            Frame::Redist(n) => self.redist_read(n, offset, size),
        }
    }

    /// A guest write of `size` bytes of `value` at `offset` of `frame` by `vcpu`.
    pub fn mmio_write(
        &mut self,
        vcpu: usize,
        frame: Frame,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        let vcpu = vcpu.min(self.nr_vcpus - 1);
        match frame {
            Frame::Dist => self.dist_write(vcpu, offset, size, value),
            Frame::Redist(n) => self.redist_write(n, offset, size, value),
        }
    }

    /// Makes an edge-style pulse pending: INTID `intid` of vCPU `vcpu` for
    /// SGIs/PPIs, of the VM for SPIs (`vcpu` then ignored).
    pub fn inject(&mut self, vcpu: usize, intid: u32) -> Result<(), VgicError> {
        let irq = self.irq_checked(vcpu, intid)?;
        irq.pending_latch = true;
        self.note(vcpu, intid);
        Ok(())
    }

    /// Drives the input line of an interrupt (device models and the vtimer):
    /// a level-sensitive interrupt is pending while the line is high and
    /// "re-asserted until cleared"; an edge-triggered one latches on a rising edge.
    pub fn set_level(&mut self, vcpu: usize, intid: u32, level: bool) -> Result<(), VgicError> {
        let irq = self.irq_checked(vcpu, intid)?;
        irq.set_line(level);
        self.note(vcpu, intid);
        Ok(())
    }

    /// Maps a virtual PPI/SPI to a physical INTID (or unmaps it with
    /// `None`): its LRs then carry HW = 1 and pINTID, so the guest's
    /// deactivation deactivates the physical interrupt too (IHI 0069H §11.5).
    pub fn map_hw(&mut self, vcpu: usize, intid: u32, pintid: Option<u32>) -> Result<(), VgicError> {
        if intid < 16 {
            return Err(VgicError::NoSuchIrq(intid));
        }
        if let Some(p) = pintid
            && !(16..1020).contains(&p)
        {
            return Err(VgicError::NoSuchIrq(p));
        }
        self.irq_checked(vcpu, intid)?.hw_intid = pintid;
        Ok(())
    }

    /// A GICv3 guest's trapped write of ICC_SGI1R_EL1 on vCPU `from`.
    /// Returns the vCPUs that received the SGI.
    pub fn send_sgi(&mut self, from: usize, sgi1r: u64) -> Result<VcpuSet, VgicError> {
        if self.version != GicVersion::V3 {
            return Err(VgicError::WrongVersion);
        }
        if from >= self.nr_vcpus {
            return Err(VgicError::NoSuchVcpu(from));
        }
        let request = sgi::decode_sgi1r(sgi1r, from, self.nr_vcpus);
        self.deliver_sgi(from, request);
        Ok(request.targets)
    }

    /// The state of one interrupt, for the glue and tests.
    pub fn irq_state(&self, vcpu: usize, intid: u32) -> Option<&IrqState> {
        if (intid as usize) < NR_PRIVATE {
            self.private.get(vcpu)?.get(intid as usize)
        } else {
            self.spis.get(intid as usize - NR_PRIVATE)
        }
    }

    /// Whether `vcpu` has an interrupt it could take now (for waking it
    /// from WFI). Interrupts held in its list registers are not counted.
    pub fn has_pending(&self, vcpu: usize) -> bool {
        if vcpu >= self.nr_vcpus {
            return false;
        }
        self.irqs_of(vcpu).any(|(intid, irq)| self.deliverable(vcpu, intid, irq))
    }

    /// INTIDs pending and deliverable to `vcpu`, most urgent first
    /// (priority, then INTID).
    pub fn pending_for(&self, vcpu: usize) -> Vec<u32> {
        if vcpu >= self.nr_vcpus {
            return Vec::new();
        }
        let mut list: Vec<(u8, u32)> = Vec::new();
        for (intid, irq) in self.irqs_of(vcpu) {
            if self.deliverable(vcpu, intid, irq) {
                list.push((irq.priority, intid));
            }
        }
        list.sort_unstable();
        list.into_iter().map(|(_, intid)| intid).collect()
    }

    /// vCPUs that gained deliverable work since the last call; the glue
    /// kicks their physical CPUs (or wakes them from WFI).
    pub fn take_kicks(&mut self) -> VcpuSet {
        core::mem::take(&mut self.kicks)
    }

    // ---- internals shared by dist, redist and lr ----

    fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut IrqState> {
        if (intid as usize) < NR_PRIVATE {
            self.private.get_mut(vcpu)?.get_mut(intid as usize)
        } else {
            self.spis.get_mut(intid as usize - NR_PRIVATE)
        }
    }

    fn irq_checked(&mut self, vcpu: usize, intid: u32) -> Result<&mut IrqState, VgicError> {
        if (intid as usize) < NR_PRIVATE && vcpu >= self.nr_vcpus {
            return Err(VgicError::NoSuchVcpu(vcpu));
        }
        self.irq_mut(vcpu, intid).ok_or(VgicError::NoSuchIrq(intid))
    }

    /// All interrupts `vcpu` can see: its private ones, then the SPIs.
    fn irqs_of(&self, vcpu: usize) -> impl Iterator<Item = (u32, &IrqState)> {
        let private = self.private[vcpu].iter().enumerate();
        let spis = self.spis.iter().enumerate().map(|(i, irq)| (i + NR_PRIVATE, irq));
        private.chain(spis).map(|(intid, irq)| (intid as u32, irq))
    }

    fn group_enabled(&self, irq: &IrqState) -> bool {
        let bit = if irq.group1 { 2 } else { 1 };
        self.ctlr & bit != 0
    }

    /// vCPUs an SPI is routed to (IHI 0069H §12.9.22 GICD_IROUTER<n>,
    /// IHI 0048B §4.3.12 GICD_ITARGETSR<n>).
    fn spi_targets(&self, irq: &IrqState) -> VcpuSet {
        let mut set = VcpuSet::EMPTY;
        match self.version {
            GicVersion::V3 => {
                let aff0 = (irq.route & 0xFF) as usize;
                if irq.route & !0xFF == 0 && aff0 < self.nr_vcpus {
                    set.insert(aff0);
                }
            }
            GicVersion::V2 => {
                for vcpu in 0..self.nr_vcpus {
                    if irq.targets & (1 << vcpu) != 0 {
                        set.insert(vcpu);
                    }
                }
            }
        }
        set
    }

    /// Whether `intid` (a private interrupt of `vcpu`, or an SPI) is
    /// pending, enabled and routed to `vcpu`, and neither held in some
    /// vCPU's LRs nor active on another vCPU.
    fn deliverable(&self, vcpu: usize, intid: u32, irq: &IrqState) -> bool {
        if !(irq.is_pending() && irq.enabled && self.group_enabled(irq)) || irq.in_lr {
            return false;
        }
        if (intid as usize) < NR_PRIVATE {
            return true;
        }
        if irq.active {
            return usize::from(irq.lr_vcpu) == vcpu;
        }
        self.spi_targets(irq).contains(vcpu)
    }

    /// Records in the kick set which vCPU can now take `intid`, if any.
    fn note(&mut self, vcpu: usize, intid: u32) {
        let Some(irq) = self.irq_state(vcpu, intid).copied() else {
            return;
        };
        if !(irq.is_pending() && irq.enabled && self.group_enabled(&irq)) {
            return;
        }
        if (intid as usize) < NR_PRIVATE || irq.in_lr || irq.active {
            let owner = if (intid as usize) < NR_PRIVATE { vcpu } else { usize::from(irq.lr_vcpu) };
            self.kicks.insert(owner);
        } else {
            let targets = self.spi_targets(&irq);
            // Kicking one target is enough: the first to flush takes it.
            if let Some(first) = targets.iter().next() {
                self.kicks.insert(first);
            }
        }
    }

    /// Adds every vCPU with deliverable work to the kick set (after a
    /// change with wide effect, such as GICD_CTLR).
    fn note_all(&mut self) {
        for vcpu in 0..self.nr_vcpus {
            if self.has_pending(vcpu) {
                self.kicks.insert(vcpu);
            }
        }
    }

    fn deliver_sgi(&mut self, from: usize, request: SgiRequest) {
        let version = self.version;
        for target in request.targets.iter() {
            if let Some(irq) = self.irq_mut(target, request.intid) {
                match version {
                    GicVersion::V3 => irq.pending_latch = true,
                    GicVersion::V2 => irq.sgi_sources |= 1 << (from % 8),
                }
            }
            self.note(target, request.intid);
        }
    }

    /// Sets a priority, keeping the implemented bits only.
    fn set_priority(irq: &mut IrqState, value: u8) {
        irq.priority = value & PRIORITY_MASK;
    }
}
