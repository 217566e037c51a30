//! List-register scheduling: which virtual interrupts a vCPU sees when it
//! next runs, encoded as GICv3 ICH_LR<n>_EL2 (IHI 0069H §12.4.6) or GICv2
//! GICH_LR<n> (IHI 0048B §5.3.8) values, and folding the state the guest
//! left in them back into the distributor model.
//!
//! A vCPU usually has more pending interrupts than list registers. Each
//! flush keeps every interrupt already active on the vCPU (it must stay
//! visible until the guest deactivates it), then fills the remaining LRs
//! with the most urgent pending ones: lowest priority value, then lowest
//! INTID. If some are left over, the plan asks for the underflow
//! maintenance interrupt (ICH_HCR_EL2.UIE / GICH_HCR.UIE), so that the
//! vCPU exits once the guest has consumed its LRs and the rest follow.

use super::irq::Trigger;
use super::{GicVersion, IrqState, NR_PRIVATE, Vgic};

/// Most list registers the architecture allows (ICH_VTR_EL2.ListRegs is 4 bits).
pub const MAX_LRS: usize = 16;

/// The state field of a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrState {
    /// 0b00: the LR is free.
    Invalid,
    /// 0b01.
    Pending,
    /// 0b10.
    Active,
    /// 0b11.
    PendingActive,
}

impl LrState {
    fn from_bits(bits: u64) -> LrState {
        match bits & 0x3 {
            0 => LrState::Invalid,
            1 => LrState::Pending,
            2 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }

    fn bits(self) -> u64 {
        match self {
            LrState::Invalid => 0,
            LrState::Pending => 1,
            LrState::Active => 2,
            LrState::PendingActive => 3,
        }
    }

    /// Whether the state includes pending.
    pub fn pending(self) -> bool {
        matches!(self, LrState::Pending | LrState::PendingActive)
    }

    /// Whether the state includes active.
    pub fn active(self) -> bool {
        matches!(self, LrState::Active | LrState::PendingActive)
    }
}

/// The contents of one list register, independent of its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrEntry {
    /// Virtual INTID.
    pub intid: u32,
    /// Physical INTID when the interrupt is hardware-backed (HW = 1).
    pub pintid: Option<u32>,
    /// Priority (8-bit scale).
    pub priority: u8,
    /// Group 1.
    pub group1: bool,
    /// State.
    pub state: LrState,
    /// HW = 0 only: raise a maintenance interrupt when the guest EOIs it.
    pub eoi_maintenance: bool,
    /// GICv2 SGIs: the source CPU the guest's GICV_IAR reports.
    pub source: u8,
}

/// ICH_LR<n>_EL2 (IHI 0069H §12.4.6): vINTID [31:0], pINTID [44:32] (with
/// HW = 0, bit 41 is EOI), Priority [55:48], Group [60], HW [61], State [63:62].
pub fn encode_v3(entry: &LrEntry) -> u64 {
    let mut lr = u64::from(entry.intid)
        | (u64::from(entry.priority) << 48)
        | (u64::from(entry.group1) << 60)
        | (entry.state.bits() << 62);
    match entry.pintid {
        Some(p) => lr |= ((u64::from(p) & 0x1FFF) << 32) | (1 << 61),
        None if entry.eoi_maintenance => lr |= 1 << 41,
        None => {}
    }
    lr
}

/// GICH_LR<n> (IHI 0048B §5.3.8): VirtualID [9:0], PhysicalID [19:10] (with
/// HW = 0: EOI [19], CPUID [12:10]), Priority [27:23], State [29:28],
/// Grp1 [30], HW [31].
pub fn encode_v2(entry: &LrEntry) -> u64 {
    let mut lr = (u64::from(entry.intid) & 0x3FF)
        | (u64::from(entry.priority >> 3) << 23)
        | (entry.state.bits() << 28)
        | (u64::from(entry.group1) << 30);
    match entry.pintid {
        Some(p) => lr |= ((u64::from(p) & 0x3FF) << 10) | (1 << 31),
        None => {
            lr |= u64::from(entry.source & 0x7) << 10;
            if entry.eoi_maintenance {
                lr |= 1 << 19;
            }
        }
    }
    lr
}

/// The state field of a read-back list register.
pub fn decode_state(version: GicVersion, lr: u64) -> LrState {
    match version {
        GicVersion::V3 => LrState::from_bits(lr >> 62),
        GicVersion::V2 => LrState::from_bits(lr >> 28),
    }
}

/// The virtual INTID of a list register value.
pub fn decode_intid(version: GicVersion, lr: u64) -> u32 {
    match version {
        GicVersion::V3 => lr as u32,
        GicVersion::V2 => (lr & 0x3FF) as u32,
    }
}

/// What to load into the list registers before entering a vCPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LrPlan {
    /// Values for ICH_LR0_EL2.. (GICH_LR0..; the low 32 bits on GICv2).
    /// The remaining list registers are written as zero.
    pub lrs: heapless::Vec<u64, MAX_LRS>,
    /// More interrupts wait than fit: set ICH_HCR_EL2.UIE (GICH_HCR.UIE).
    pub underflow: bool,
}

/// Sort key of a candidate: active ones first, then priority, then INTID.
type Key = (bool, u8, u32);

impl Vgic {
    /// Chooses the list-register contents for `vcpu`, which has `nr_lrs`
    /// list registers (ICH_VTR_EL2.ListRegs + 1). Interrupts put in LRs
    /// belong to the vCPU until [`Vgic::sync_lrs`]; a flush without a sync
    /// in between first takes back the previous plan unchanged.
    pub fn flush_lrs(&mut self, vcpu: usize, nr_lrs: usize) -> LrPlan {
        let mut plan = LrPlan::default();
        if vcpu >= self.nr_vcpus {
            return plan;
        }
        let previous = self.in_flight[vcpu].clone();
        self.sync_lrs(vcpu, &previous);

        let nr_lrs = nr_lrs.min(MAX_LRS);
        let mut chosen: heapless::Vec<Key, MAX_LRS> = heapless::Vec::new();
        for (intid, irq) in self.irqs_of(vcpu) {
            let active_here = irq.active && !irq.in_lr && usize::from(irq.lr_vcpu) == vcpu;
            if !(active_here || self.deliverable(vcpu, intid, irq)) {
                continue;
            }
            let key = (!irq.active, irq.priority, intid);
            let at = chosen.iter().position(|k| key < *k).unwrap_or(chosen.len());
            if at >= nr_lrs {
                plan.underflow = true;
                continue;
            }
            if chosen.len() == nr_lrs {
                chosen.pop();
                plan.underflow = true;
            }
            // Room was made above, so the insert cannot fail.
            let _ = chosen.insert(at, key);
        }

        for &(_, _, intid) in chosen.iter() {
            let version = self.version;
            let Some(snapshot) = self.irq_state(vcpu, intid).copied() else {
                continue;
            };
            let pending = self.deliverable(vcpu, intid, &snapshot);
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            let entry = take_for_lr(irq, pending, version, intid);
            irq.in_lr = true;
            irq.lr_vcpu = vcpu as u8;
            let value = match version {
                GicVersion::V3 => encode_v3(&entry),
                GicVersion::V2 => encode_v2(&entry),
            };
            // `chosen` has at most MAX_LRS entries.
            let _ = plan.lrs.push(value);
        }
        self.in_flight[vcpu] = plan.lrs.clone();
        plan
    }

    /// Folds the list registers read back after running `vcpu` into the
    /// model. `read_back[i]` is ICH_LR<i>_EL2 for each LR the last plan
    /// wrote; a missing value counts as unchanged. An EOIed interrupt
    /// becomes inactive; one the guest has not acknowledged stays pending;
    /// a level-sensitive interrupt whose line is still high is pending again.
    pub fn sync_lrs(&mut self, vcpu: usize, read_back: &[u64]) {
        let Some(slot) = self.in_flight.get_mut(vcpu) else {
            return;
        };
        let written = core::mem::take(slot);
        let version = self.version;
        for (i, &ours) in written.iter().enumerate() {
            // The INTID comes from what we wrote, never from the read-back.
            let intid = decode_intid(version, ours);
            let source = ((ours >> 10) & 0x7) as u8;
            let presented = decode_state(version, ours);
            let state = decode_state(version, read_back.get(i).copied().unwrap_or(ours));
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            irq.in_lr = false;
            irq.active = state.active();
            if state.pending() {
                if version == GicVersion::V2 && (intid as usize) < 16 {
                    irq.sgi_sources |= 1 << source;
                } else if irq.trigger == Trigger::Edge {
                    irq.pending_latch = true;
                }
            } else if irq.trigger == Trigger::Level && presented.pending() {
                // Acknowledged: a software pending state (GICD_ISPENDR) is
                // consumed (IHI 0069H §4.1.2); the line, if still high,
                // keeps the interrupt pending. An LR written without the
                // pending state (the interrupt was only active there) took
                // nothing from the latch, so nothing is consumed.
                irq.pending_latch = false;
            }
            if (intid as usize) >= NR_PRIVATE && irq.is_pending() {
                self.note(vcpu, intid);
            }
        }
    }
}

/// Moves the pending state of `irq` into a list-register entry. An edge
/// latch (or a GICv2 SGI source bit) now lives in the LR; level-sensitive
/// state stays with the line and is resampled at sync.
fn take_for_lr(irq: &mut IrqState, pending: bool, version: GicVersion, intid: u32) -> LrEntry {
    // With HW = 1 the pending-and-active state is not allowed (IHI 0069H
    // §12.4.6): the physical interrupt cannot fire again while active.
    // A level-sensitive one is not shown pending and active either: the
    // pending half would be a stale copy of the line, taken again after
    // the EOI even if the device deasserted meanwhile (the guest clears
    // the source in its handler), and an LR that stays valid raises no EOI
    // maintenance interrupt to resample it. Shown active only, its EOI
    // empties the LR, the maintenance exit resamples the line, and a line
    // still high is presented again (KVM does the same).
    let state = match (irq.active, pending) {
        (true, true) if irq.hw_intid.is_some() || irq.trigger == Trigger::Level => LrState::Active,
        (true, true) => LrState::PendingActive,
        (true, false) => LrState::Active,
        _ => LrState::Pending,
    };
    let mut source = 0;
    if state.pending() {
        if version == GicVersion::V2 && intid < 16 && irq.sgi_sources != 0 {
            source = irq.sgi_sources.trailing_zeros() as u8;
            irq.sgi_sources &= !(1 << source);
        } else if irq.trigger == Trigger::Edge {
            irq.pending_latch = false;
        }
    }
    LrEntry {
        intid,
        pintid: irq.hw_intid,
        priority: irq.priority,
        group1: irq.group1,
        state,
        eoi_maintenance: irq.trigger == Trigger::Level && irq.hw_intid.is_none(),
        source,
    }
}
