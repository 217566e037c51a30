//! The physical CPU's virtual interface: list registers and the saved
//! virtual CPU interface state of the loaded vCPU.
//!
//! GICv3: `ICH_*_EL2` system registers (ARM IHI 0069 §12.4); GICv2: the
//! memory-mapped GICH frame (IHI 0048B §5.3). The choice of what goes into
//! the list registers is the pure `vgic` core's (`flush_lrs`/`sync_lrs`).

use crate::vgic::LrPlan;
use crate::vgic::VgicCpuState;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use shared::platform::GicVersion;

static VERSION: crate::sync::Once<GicVersion> = crate::sync::Once::new();
static GICH: crate::sync::Once<usize> = crate::sync::Once::new();
static NR_LRS: crate::sync::Once<usize> = crate::sync::Once::new();

// GICH frame (GICv2 virtual interface control) register offsets, ARM IHI
// 0048B §5.3.1, Table 5-1 (arm-gic has no GICH block).
/// GICH_HCR, the hypervisor control register (§5.3.2).
const GICH_HCR: usize = 0x0;
/// GICH_VTR, VGIC type: ListRegs in bits [5:0] (§5.3.3).
const GICH_VTR: usize = 0x4;
/// GICH_VMCR, the guest's CPU-interface state (§5.3.4).
const GICH_VMCR: usize = 0x8;
/// GICH_APR, active priorities (§5.3.8).
const GICH_APR: usize = 0xf0;
/// GICH_LR0, the first of the list registers, 4 bytes apart (§5.3.9).
const GICH_LR0: usize = 0x100;

fn gich_read(off: usize) -> u32 {
    let base = *GICH.get().unwrap_or(&0);
    // SAFETY: GICH is the hypervisor's own frame, device-mapped at EL2 and
    // known from the DTB; reads have no side effects.
    unsafe { core::ptr::read_volatile((base + off) as *const u32) }
}

fn gich_write(off: usize, v: u32) {
    let base = *GICH.get().unwrap_or(&0);
    // SAFETY: as for `gich_read`; the registers only affect the virtual
    // CPU interface of the vCPU this CPU runs.
    unsafe { core::ptr::write_volatile((base + off) as *mut u32, v) }
}

/// Records the GIC version and (v2) the GICH frame; reads the LR count.
pub fn init(version: GicVersion, gich: Option<u64>) {
    VERSION.call_once(|| version);
    if let Some(g) = gich {
        GICH.call_once(|| g as usize);
    }
    NR_LRS.call_once(|| match version {
        GicVersion::V3 => (ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) + 1) as usize,
        GicVersion::V2 => ((gich_read(GICH_VTR) & 0x3f) + 1) as usize,
    });
}

/// Number of list registers.
pub fn nr_lrs() -> usize {
    (*NR_LRS.get().unwrap_or(&0)).min(16)
}

fn version() -> Option<GicVersion> {
    VERSION.get().copied()
}

macro_rules! ich_lr {
    ($op:ident, $n:expr $(, $v:expr)?) => {
        match $n {
            0 => ich_lr!(@ $op, ICH_LR0_EL2 $(, $v)?),
            1 => ich_lr!(@ $op, ICH_LR1_EL2 $(, $v)?),
            2 => ich_lr!(@ $op, ICH_LR2_EL2 $(, $v)?),
            3 => ich_lr!(@ $op, ICH_LR3_EL2 $(, $v)?),
            4 => ich_lr!(@ $op, ICH_LR4_EL2 $(, $v)?),
            5 => ich_lr!(@ $op, ICH_LR5_EL2 $(, $v)?),
            6 => ich_lr!(@ $op, ICH_LR6_EL2 $(, $v)?),
            7 => ich_lr!(@ $op, ICH_LR7_EL2 $(, $v)?),
            8 => ich_lr!(@ $op, ICH_LR8_EL2 $(, $v)?),
            9 => ich_lr!(@ $op, ICH_LR9_EL2 $(, $v)?),
            10 => ich_lr!(@ $op, ICH_LR10_EL2 $(, $v)?),
            11 => ich_lr!(@ $op, ICH_LR11_EL2 $(, $v)?),
            12 => ich_lr!(@ $op, ICH_LR12_EL2 $(, $v)?),
            13 => ich_lr!(@ $op, ICH_LR13_EL2 $(, $v)?),
            14 => ich_lr!(@ $op, ICH_LR14_EL2 $(, $v)?),
            _ => ich_lr!(@ $op, ICH_LR15_EL2 $(, $v)?),
        }
    };
    (@ read, $reg:ident) => { $reg.get() };
    (@ write, $reg:ident, $v:expr) => { $reg.set($v) };
}

/// Loads a vCPU's virtual interface state and enables the interface.
pub fn load(s: &VgicCpuState) {
    match version() {
        Some(GicVersion::V3) => {
            ICH_VMCR_EL2.set(s.vmcr);
            ICH_AP0R0_EL2.set(s.ap0r0);
            ICH_AP1R0_EL2.set(s.ap1r0);
            ICH_HCR_EL2.write(ICH_HCR_EL2::En::SET);
            barrier::isb(barrier::SY);
        }
        Some(GicVersion::V2) => {
            gich_write(GICH_VMCR, s.vmcr as u32);
            gich_write(GICH_APR, s.ap0r0 as u32);
            gich_write(GICH_HCR, 1);
        }
        None => {}
    }
}

/// Saves a vCPU's virtual interface state and disables the interface.
pub fn save(s: &mut VgicCpuState) {
    match version() {
        Some(GicVersion::V3) => {
            s.vmcr = ICH_VMCR_EL2.get();
            s.ap0r0 = ICH_AP0R0_EL2.get();
            s.ap1r0 = ICH_AP1R0_EL2.get();
            ICH_HCR_EL2.set(0);
        }
        Some(GicVersion::V2) => {
            s.vmcr = gich_read(GICH_VMCR) as u64;
            s.ap0r0 = gich_read(GICH_APR) as u64;
            gich_write(GICH_HCR, 0);
        }
        None => {}
    }
}

/// Writes a flush plan into the list registers (the rest zeroed) and sets
/// the underflow maintenance interrupt if more interrupts wait.
pub fn write_lrs(plan: &LrPlan, s: &mut VgicCpuState) {
    let n = nr_lrs();
    // En, and UIE for the underflow interrupt (GICH_HCR has the same layout).
    let uie = if plan.underflow { ICH_HCR_EL2::UIE::SET.value } else { 0 };
    let hcr = ICH_HCR_EL2::En::SET.value | uie;
    match version() {
        Some(GicVersion::V3) => {
            for i in 0..n.max(s.lrs_written) {
                let v = plan.lrs.get(i).copied().unwrap_or(0);
                if i < plan.lrs.len() || i < s.lrs_written {
                    ich_lr!(write, i, v);
                }
            }
            ICH_HCR_EL2.set(hcr);
        }
        Some(GicVersion::V2) => {
            for i in 0..n {
                if i < plan.lrs.len() || i < s.lrs_written {
                    gich_write(GICH_LR0 + 4 * i, plan.lrs.get(i).copied().unwrap_or(0) as u32);
                }
            }
            gich_write(GICH_HCR, hcr as u32);
        }
        None => {}
    }
    s.lrs_written = plan.lrs.len();
}

/// Reads back the list registers the last flush wrote.
pub fn read_lrs(s: &VgicCpuState) -> heapless::Vec<u64, 16> {
    let mut out = heapless::Vec::new();
    for i in 0..s.lrs_written.min(nr_lrs()) {
        let v = match version() {
            Some(GicVersion::V3) => ich_lr!(read, i),
            Some(GicVersion::V2) => gich_read(GICH_LR0 + 4 * i) as u64,
            None => 0,
        };
        let _ = out.push(v);
    }
    out
}
