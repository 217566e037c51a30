//! The physical GIC, driven with the `arm-gic` crate: the hypervisor keeps
//! its own interrupts (the EL2 physical timer for vCPU time slices, the
//! vGIC maintenance interrupt, the kick SGI between physical CPUs) and
//! takes the EL1 virtual timer's PPI on behalf of the running vCPU.
//! Everything a guest sees is virtual (list registers, `vgic_hw`).
//!
//! The CPU interfaces run with EOImode = 1 (GICv3 ICC_CTLR_EL1.EOImode,
//! IHI 0069 §12.2.6; GICv2 GICC_CTLR bit 9, IHI 0048B §4.4.1): a write to
//! EOIR only drops the running priority, and deactivation is a separate
//! write to ICC_DIR_EL1 / GICC_DIR. The hypervisor's own interrupts get
//! both ([`eoi`]); an interrupt of a pass-through device gets only the
//! priority drop ([`priority_drop`]) and stays active until the guest's
//! EOI of the virtual interrupt, whose list register has HW = 1 and the
//! physical INTID, deactivates it (IHI 0069 §4.1.3 / §11.5, IHI 0048B
//! §5.4.5) — `passthrough.rs`.

use crate::sync::Mutex;
use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::registers::{Gicd, GicrSgi};
use arm_gic::gicv3::{GicCpuInterface, GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup};
use core::ptr::NonNull;
use safe_mmio::UniqueMmioPointer;
use shared::platform::{Gic, GicVersion};

use super::sysreg::{ICC_CTLR_EL1, ICC_DIR_EL1, Readable, Writeable};
use aarch64_cpu::asm::barrier;

/// SGI a CPU sends another to make it look at its vCPUs again.
pub const SGI_KICK: u32 = 0;
/// PPI INTIDs (16 + the binding's number).
pub const INTID_MAINTENANCE: u32 = 25;
pub const INTID_HYP_TIMER: u32 = 26;
pub const INTID_VTIMER: u32 = 27;
/// "No pending interrupt" (ARM IHI 0069 §2.2.1).
const SPURIOUS: u32 = 1020;

/// The GICv2 registers the hypervisor accesses itself, where arm-gic has no
/// call for what it needs: the offsets come from arm-gic's register blocks
/// (so the two cannot disagree), named as ARM IHI 0048B names them
/// (distributor: §4.1.2, Table 4-1; CPU interface: §4.1.3, Table 4-2).
mod v2 {
    use arm_gic::gicv2::registers::{Gicc, Gicd};
    use core::mem::offset_of;

    /// GICD_ICENABLER<n>, write 1 to disable (§4.3.6).
    pub const GICD_ICENABLER: usize = offset_of!(Gicd, icenabler);
    /// GICD_ICACTIVER<n>, write 1 to deactivate (§4.3.10).
    pub const GICD_ICACTIVER: usize = offset_of!(Gicd, icactiver);
    /// GICD_ITARGETSR<n>, one byte per interrupt: its CPU targets (§4.3.12).
    pub const GICD_ITARGETSR: usize = offset_of!(Gicd, itargetsr);
    /// GICD_SGIR, the SGI trigger (§4.3.15).
    pub const GICD_SGIR: usize = offset_of!(Gicd, sgir);
    /// GICD_SGIR.CPUTargetList, bits [23:16].
    pub const GICD_SGIR_TARGET_LIST_SHIFT: u32 = 16;
    /// GICD_SGIR.NSATT (bit 15): send the SGI only if it is in group 1.
    pub const GICD_SGIR_NSATT: u32 = 1 << 15;
    /// GICC_CTLR (§4.4.1).
    pub const GICC_CTLR: usize = offset_of!(Gicc, ctlr);
    /// GICC_CTLR.EOImodeNS (Non-secure view) / EOImodeS (bit 9): EOIR only
    /// drops the priority, GICC_DIR deactivates.
    pub const GICC_CTLR_EOIMODE: u32 = 1 << 9;
    /// GICC_EOIR, end of a group 0 interrupt (§4.4.5).
    pub const GICC_EOIR: usize = offset_of!(Gicc, eoir);
    /// GICC_AEOIR, end of a group 1 interrupt (§4.4.10).
    pub const GICC_AEOIR: usize = offset_of!(Gicc, aeoir);
    /// GICC_DIR, deactivation (§4.4.15).
    pub const GICC_DIR: usize = offset_of!(Gicc, dir);

    // GICv3 keeps GICv2's distributor layout for these (IHI 0069H §12.9):
    // `disable_and_deactivate_spi` relies on it.
    const _: () = assert!(
        GICD_ICENABLER == offset_of!(arm_gic::gicv3::registers::Gicd, icenabler)
            && GICD_ICACTIVER == offset_of!(arm_gic::gicv3::registers::Gicd, icactiver)
    );
}

/// The `IntId` for a raw INTID (SGI, PPI or SPI; others are not ours).
fn intid(raw: u32) -> IntId {
    match raw {
        0..16 => IntId::sgi(raw),
        16..32 => IntId::ppi(raw - 16),
        _ => IntId::spi(raw - 32),
    }
}

enum Driver {
    V3(GicV3<'static>),
    V2 { gic: GicV2<'static>, group: InterruptGroup },
}

// SAFETY: the driver holds MMIO pointers to the GIC, which any CPU may use;
// all access goes through the `GIC` mutex.
unsafe impl Send for Driver {}

static GIC: Mutex<Option<Driver>> = Mutex::ranked(crate::sync::GIC, None);
static VERSION: crate::sync::Once<GicVersion> = crate::sync::Once::new();
/// GICv2 CPU interface number of each CPU (from its banked ITARGETSR0).
static V2_TARGETS: [core::sync::atomic::AtomicU8; super::MAX_CPUS] =
    [const { core::sync::atomic::AtomicU8::new(0) }; super::MAX_CPUS];

/// Sets the distributor up (boot CPU, once), then this CPU's interface.
pub fn init(gic: &Gic, nr_cpus: usize) {
    VERSION.call_once(|| gic.version);
    let driver = match gic.version {
        GicVersion::V3 => {
            // SAFETY: the DTB names these frames; the EL2 map has them as
            // device memory and nothing else drives the physical GIC.
            let mut d = unsafe {
                GicV3::new(
                    UniqueMmioPointer::new(NonNull::new(gic.gicd.base as *mut Gicd).unwrap()),
                    NonNull::new(gic.gicr[0].base as *mut GicrSgi).unwrap(),
                    nr_cpus,
                )
            };
            match d {
                Ok(ref mut d) => d.setup(0),
                Err(_) => return,
            }
            Driver::V3(d.unwrap())
        }
        GicVersion::V2 => {
            let Some(gicc) = gic.gicc else { return };
            // SAFETY: as above, for the distributor and CPU interface.
            let mut d = unsafe { GicV2::new(gic.gicd.base as *mut _, gicc.base as *mut _) };
            d.setup();
            let group =
                if d.typer().has_security_extension() { InterruptGroup::Group1 } else { InterruptGroup::Group0 };
            Driver::V2 { gic: d, group }
        }
    };
    *GIC.lock() = Some(driver);
    init_cpu(0);
}

/// Per-CPU part: wake this CPU's redistributor (v3) or enable its CPU
/// interface (v2), and enable the private interrupts the hypervisor uses.
pub fn init_cpu(cpu: usize) {
    let mut g = GIC.lock();
    let Some(d) = g.as_mut() else { return };
    let private = [IntId::sgi(SGI_KICK), IntId::ppi(9), IntId::ppi(10), IntId::ppi(11)];
    match d {
        Driver::V3(gic) => {
            if cpu != 0 {
                gic.init_cpu(cpu);
                GicCpuInterface::enable_group1(true);
            }
            GicCpuInterface::set_priority_mask(0xff);
            for id in private {
                let _ = gic.enable_interrupt(id, Some(cpu), true);
            }
            // ICC_CTLR_EL1.EOImode (bit 1): priority drop and deactivation
            // split (arm-gic's init_cpu cleared it).
            ICC_CTLR_EL1.set(ICC_CTLR_EL1.get() | (1 << 1));
            barrier::isb(barrier::SY);
        }
        Driver::V2 { gic, .. } => {
            if cpu != 0 {
                gic.setup();
            }
            for id in private {
                let _ = gic.enable_interrupt(id, true);
            }
            // ITARGETSR0 is banked: its first byte is this CPU's own bit.
            // SAFETY: reading a banked distributor register of the GIC we own.
            let mask = unsafe { core::ptr::read_volatile(gicd_itargetsr(gic) as *const u8) };
            V2_TARGETS[cpu].store(mask, core::sync::atomic::Ordering::Relaxed);
            // GICC_CTLR bit 9: EOImodeNS in the Non-secure view, EOImodeS
            // (our group 0) without the Security Extensions — either way the
            // mode of the group we use (arm-gic's setup wrote 1).
            if let Some(base) = gicc_base() {
                // SAFETY: GICC_CTLR of this CPU's (banked) interface, which we own.
                unsafe {
                    let ctlr = core::ptr::read_volatile((base + v2::GICC_CTLR) as *const u32);
                    core::ptr::write_volatile((base + v2::GICC_CTLR) as *mut u32, ctlr | v2::GICC_CTLR_EOIMODE);
                }
            }
        }
    }
}

/// The GICv2 CPU interface (GICC) base.
fn gicc_base() -> Option<usize> {
    super::platform::PLATFORM.get().and_then(|p| p.gic.as_ref()).and_then(|g| g.gicc).map(|r| r.base as usize)
}

/// The distributor (GICD) base.
fn gicd_base() -> Option<usize> {
    super::platform::PLATFORM.get().and_then(|p| p.gic.as_ref()).map(|g| g.gicd.base as usize)
}

/// GICv2 GICD_ITARGETSR0 (the register array's start).
fn gicd_itargetsr(_gic: &GicV2) -> usize {
    gicd_base().map_or(0, |d| d + v2::GICD_ITARGETSR)
}

/// Enables a shared peripheral interrupt (routed to the boot CPU).
pub fn enable_spi(raw: u32) {
    let mut g = GIC.lock();
    match g.as_mut() {
        Some(Driver::V3(gic)) => {
            let _ = gic.enable_interrupt(intid(raw), None, true);
        }
        Some(Driver::V2 { gic, .. }) => {
            // GICv2 SPIs go to the CPUs in their ITARGETSR byte (IHI 0048B
            // §4.3.12), which resets to none: target the boot CPU.
            let target = V2_TARGETS[0].load(core::sync::atomic::Ordering::Relaxed);
            let addr = gicd_itargetsr(gic) + raw as usize;
            // SAFETY: a byte-accessible distributor register of the GIC we own.
            unsafe { core::ptr::write_volatile(addr as *mut u8, target) };
            let _ = gic.enable_interrupt(intid(raw), true);
        }
        None => {}
    }
}

/// Enables or disables private interrupt (SGI/PPI) `raw` on this CPU only
/// (GICR_ISENABLER0/ICENABLER0 of its redistributor, IHI 0069H §12.11;
/// the banked GICD_ISENABLER0/ICENABLER0 on GICv2, IHI 0048B §4.3.5).
pub fn set_private_enabled(raw: u32, enable: bool) {
    if raw >= 32 {
        return;
    }
    let cpu = super::smp::cpu_index();
    match GIC.lock().as_mut() {
        Some(Driver::V3(gic)) => {
            let _ = gic.enable_interrupt(intid(raw), Some(cpu), enable);
        }
        Some(Driver::V2 { gic, .. }) => {
            let _ = gic.enable_interrupt(intid(raw), enable);
        }
        None => {}
    }
}

/// Acknowledges the highest-priority pending interrupt, if any; returns
/// the raw acknowledge value, to be passed to [`eoi`] unchanged.
pub fn ack() -> Option<u32> {
    let id = match VERSION.get()? {
        GicVersion::V3 => GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1).map(|i| i.into()),
        GicVersion::V2 => {
            let mut g = GIC.lock();
            match g.as_mut()? {
                Driver::V2 { gic, group } => gic.get_and_acknowledge_interrupt(*group).map(|i| i.into()),
                Driver::V3(_) => None,
            }
        }
    };
    // GICv2 IAR carries the source CPU of an SGI in bits [12:10]; the
    // INTID is bits [9:0]. The whole value goes back to EOIR.
    id.filter(|&raw: &u32| raw & 0x3ff < SPURIOUS)
}

/// The INTID of a value [`ack`] returned.
pub const fn intid_of(raw: u32) -> u32 {
    raw & 0x3ff
}

/// Ends (drops priority and deactivates) an acknowledged interrupt of
/// the hypervisor's own.
pub fn eoi(raw: u32) {
    priority_drop(raw);
    deactivate(raw);
}

/// Deactivates an acknowledged interrupt on this CPU's interface
/// (ICC_DIR_EL1, GICC_DIR: IHI 0069 §12.2.8, IHI 0048B §4.4.15).
fn deactivate(raw: u32) {
    match VERSION.get() {
        Some(GicVersion::V3) => ICC_DIR_EL1.set(u64::from(intid_of(raw))),
        Some(GicVersion::V2) => {
            if let Some(base) = gicc_base() {
                // SAFETY: GICC_DIR of the CPU interface we own; the raw
                // value keeps an SGI's source CPU, as GICC_DIR wants it.
                unsafe { core::ptr::write_volatile((base + v2::GICC_DIR) as *mut u32, raw) };
            }
        }
        None => {}
    }
}

/// Drops the running priority of an acknowledged interrupt without
/// deactivating it (EOImode = 1): what a pass-through interrupt gets; the
/// guest's EOI of its HW-mapped virtual interrupt deactivates it.
pub fn priority_drop(raw: u32) {
    match VERSION.get() {
        Some(GicVersion::V3) => GicCpuInterface::end_interrupt(intid(intid_of(raw)), InterruptGroup::Group1),
        Some(GicVersion::V2) => {
            // The raw value, with an SGI's source CPU, goes back to
            // GICC_EOIR (or AEOIR for group 1), IHI 0048B §4.4.5; arm-gic's
            // IntId cannot carry the CPUID bits.
            let g = GIC.lock();
            if let Some(Driver::V2 { group, .. }) = g.as_ref() {
                let off = if *group == InterruptGroup::Group1 { v2::GICC_AEOIR } else { v2::GICC_EOIR };
                let gicc =
                    super::platform::PLATFORM.get().and_then(|p| p.gic.as_ref()).and_then(|g| g.gicc).map(|r| r.base);
                if let Some(base) = gicc {
                    // SAFETY: GICC_(A)EOIR of the CPU interface we own.
                    unsafe { core::ptr::write_volatile((base as usize + off) as *mut u32, raw) };
                }
            }
        }
        None => {}
    }
}

/// Enables SPI `raw`, leaving its routing as [`route_spi`] set it.
pub fn enable_spi_routed(raw: u32) {
    match GIC.lock().as_mut() {
        Some(Driver::V3(gic)) => {
            let _ = gic.enable_interrupt(intid(raw), None, true);
        }
        Some(Driver::V2 { gic, .. }) => {
            let _ = gic.enable_interrupt(intid(raw), true);
        }
        None => {}
    }
}

/// Makes SPI `raw` level- or edge-triggered (GICD_ICFGR<n>).
pub fn set_spi_trigger(raw: u32, edge: bool) {
    let trigger = if edge { arm_gic::Trigger::Edge } else { arm_gic::Trigger::Level };
    match GIC.lock().as_mut() {
        Some(Driver::V3(gic)) => {
            let _ = gic.set_trigger(intid(raw), None, trigger);
        }
        Some(Driver::V2 { gic, .. }) => gic.set_trigger(intid(raw), trigger),
        None => {}
    }
}

/// Routes SPI `raw` to physical CPU `cpu` (GICv3 GICD_IROUTER<n>,
/// IHI 0069 §12.9.22; GICv2 GICD_ITARGETSR<n>, IHI 0048B §4.3.12).
pub fn route_spi(raw: u32, cpu: usize) {
    match GIC.lock().as_mut() {
        Some(Driver::V3(gic)) => {
            let _ = gic.distributor().set_routing(intid(raw), Some(super::smp::cpu_mpidr(cpu)));
        }
        Some(Driver::V2 { gic, .. }) => {
            let target = V2_TARGETS.get(cpu).map_or(0, |t| t.load(core::sync::atomic::Ordering::Relaxed));
            let addr = gicd_itargetsr(gic) + raw as usize;
            // SAFETY: a byte-accessible ITARGETSR of the GIC we own.
            unsafe { core::ptr::write_volatile(addr as *mut u8, target) };
        }
        None => {}
    }
}

/// Disables SPI `raw` and clears its active state in the distributor
/// (GICD_ICENABLER<n>, GICD_ICACTIVER<n>: the same offsets on GICv2 and
/// v3), from any CPU: a pass-through interrupt left active by a guest that
/// stopped or was reset before deactivating it.
pub fn disable_and_deactivate_spi(raw: u32) {
    if let Some(d) = gicd_base() {
        let (reg, bit) = (4 * (raw as usize / 32), 1u32 << (raw % 32));
        // SAFETY: write-1-to-clear registers of the distributor we own;
        // they only change this one interrupt's enable and active state.
        unsafe {
            core::ptr::write_volatile((d + v2::GICD_ICENABLER + reg) as *mut u32, bit);
            core::ptr::write_volatile((d + v2::GICD_ICACTIVER + reg) as *mut u32, bit);
        }
    }
}

/// Sends the kick SGI to physical CPU `cpu` (MPIDR `mpidr`). What the
/// caller stored before is visible to `cpu` when it takes the SGI (the
/// DSB orders the stores before the SGI register write, as Linux's
/// `gic_ipi_send_mask` does): a flag next to a kick is never missed.
pub fn kick(cpu: usize, mpidr: u64) {
    barrier::dsb(barrier::ISHST);
    match VERSION.get() {
        Some(GicVersion::V3) => {
            let target = SgiTarget::List {
                affinity3: (mpidr >> 32) as u8,
                affinity2: (mpidr >> 16) as u8,
                affinity1: (mpidr >> 8) as u8,
                target_list: 1 << (mpidr & 0xf),
            };
            let _ = GicCpuInterface::send_sgi(IntId::sgi(SGI_KICK), target, SgiTargetGroup::CurrentGroup1);
        }
        Some(GicVersion::V2) => {
            let mask = V2_TARGETS[cpu].load(core::sync::atomic::Ordering::Relaxed);
            if let Some(Driver::V2 { group, .. }) = GIC.lock().as_mut() {
                // GICD_SGIR (IHI 0048B §4.3.15): target list filter 0, CPU
                // target list, NSATT matching the group our SGIs are in
                // (arm-gic always sets NSATT, which a GIC without the
                // Security Extensions may not forward to group 0).
                let nsatt = if *group == InterruptGroup::Group1 { v2::GICD_SGIR_NSATT } else { 0 };
                let value = (u32::from(mask) << v2::GICD_SGIR_TARGET_LIST_SHIFT) | nsatt | SGI_KICK;
                let Some(gicd) = gicd_base() else { return };
                let addr = gicd + v2::GICD_SGIR;
                // SAFETY: GICD_SGIR of the GIC we own; a write only sends an SGI.
                unsafe { core::ptr::write_volatile(addr as *mut u32, value) };
            }
        }
        None => {}
    }
}
