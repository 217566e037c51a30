//! The attacker's runtime: console, hypercalls, exception vectors (catching
//! the aborts and UNDEFs the hypervisor injects), the GIC and the timer, and
//! the secondary vCPUs. Everything here is glue that touches the machine.

use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use shared::layout;

global_asm!(include_str!("entry.S"));

/// Most vCPUs the attacker drives (a VM has at most 8).
pub const MAX_VCPUS: usize = 8;

// ---------------------------------------------------------------- console

static CONSOLE_LOCK: AtomicBool = AtomicBool::new(false);

/// PL011 data and flag registers (PL011 TRM 3.3): FR.TXFF = bit 5, FR.RXFE = bit 4.
const UART_DR: usize = layout::UART_BASE as usize;
const UART_FR: usize = layout::UART_BASE as usize + 0x18;

/// Writes one byte to the emulated PL011.
pub fn putc(b: u8) {
    // SAFETY: the UART window is mapped Device memory in our table and
    // emulated by the hypervisor; a 32-bit access is what it expects.
    unsafe {
        while core::ptr::read_volatile(UART_FR as *const u32) & (1 << 5) != 0 {}
        core::ptr::write_volatile(UART_DR as *mut u32, u32::from(b));
    }
}

/// A byte typed at this VM, if one is waiting.
pub fn getc() -> Option<u8> {
    // SAFETY: as in putc.
    unsafe {
        if core::ptr::read_volatile(UART_FR as *const u32) & (1 << 4) != 0 {
            return None;
        }
        Some(core::ptr::read_volatile(UART_DR as *const u32) as u8)
    }
}

/// One console line being formatted (longer lines are cut).
pub struct Line {
    buf: [u8; 240],
    len: usize,
}

impl Line {
    pub const fn new() -> Line {
        Line { buf: [0; 240], len: 0 }
    }
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Prints raw bytes as one unit (no other vCPU's output inside).
pub fn print_bytes(bytes: &[u8]) {
    while CONSOLE_LOCK.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
        core::hint::spin_loop();
    }
    for &b in bytes {
        putc(b);
    }
    CONSOLE_LOCK.store(false, SeqCst);
}

/// Prints a formatted line.
pub fn print_line(args: core::fmt::Arguments<'_>) {
    let mut l = Line::new();
    let _ = l.write_fmt(args);
    let _ = l.write_str("\n");
    print_bytes(&l.buf[..l.len]);
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::rt::print_line(format_args!($($arg)*)) };
}

// ------------------------------------------------------------ hypercalls

/// `hvc #0` with SMCCC arguments; returns x0..x3 (SMCCC 1.1 §2.7).
pub fn hvc(fid: u32, a1: u64, a2: u64, a3: u64) -> [u64; 4] {
    let (r0, r1, r2, r3);
    // SAFETY: a hypercall changes no memory of ours; x4-x17 are marked
    // clobbered although SMCCC 1.1 preserves them (we trust nothing).
    unsafe {
        asm!("hvc #0",
            inout("x0") u64::from(fid) => r0, inout("x1") a1 => r1, inout("x2") a2 => r2, inout("x3") a3 => r3,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _,
            out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack));
    }
    [r0, r1, r2, r3]
}

/// PSCI SYSTEM_OFF: the end of this VM.
pub fn system_off() -> ! {
    hvc(shared::hvc::psci::SYSTEM_OFF, 0, 0, 0);
    println!("attacker: PSCI SYSTEM_OFF returned");
    loop {
        core::hint::spin_loop();
    }
}

/// This vCPU's index (MPIDR_EL1.Aff0, which the hypervisor sets from it).
pub fn vcpu_index() -> usize {
    let mpidr: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    (mpidr & 0xff) as usize
}

// ------------------------------------------------------ exceptions

/// The registers the vectors save (entry.S `vector_common`).
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

/// An exception the attacker caught while probing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caught {
    pub esr: u64,
    pub far: u64,
}

impl Caught {
    /// ESR_ELx.EC (ARM ARM D17.2.37).
    pub fn ec(&self) -> u64 {
        self.esr >> 26
    }
    /// What an architect would call it.
    pub fn name(&self) -> &'static str {
        match self.ec() {
            0x00 => "UNDEF",
            0x20 | 0x21 => "prefetch abort",
            0x24 | 0x25 => {
                if self.esr & 0x3f == 0x21 {
                    "alignment fault"
                } else {
                    "data abort"
                }
            }
            0x2f => "SError",
            _ => "other exception",
        }
    }
}

struct CatchState {
    armed: AtomicBool,
    caught: AtomicBool,
    esr: AtomicU64,
    far: AtomicU64,
}

static CATCH: [CatchState; MAX_VCPUS] = [const {
    CatchState {
        armed: AtomicBool::new(false),
        caught: AtomicBool::new(false),
        esr: AtomicU64::new(0),
        far: AtomicU64::new(0),
    }
}; MAX_VCPUS];

/// Runs `f`, which executes one instruction that may fault at EL1; a
/// synchronous exception from it is caught (the handler steps over the
/// instruction, or returns to x30 for a bad instruction fetch) and returned.
pub fn probe(f: impl FnOnce()) -> Option<Caught> {
    let c = &CATCH[vcpu_index()];
    c.caught.store(false, SeqCst);
    c.armed.store(true, SeqCst);
    f();
    c.armed.store(false, SeqCst);
    c.caught.load(SeqCst).then(|| Caught { esr: c.esr.load(SeqCst), far: c.far.load(SeqCst) })
}

/// What an EL0 run (`run_el0`) ended with: r0-r15 / x0-x15 and ESR_EL1.
#[derive(Clone, Copy, Debug)]
pub struct El0Exit {
    pub regs: [u64; 16],
    pub esr: u64,
    pub elr: u64,
}

static EL0_EXIT: [[AtomicU64; 18]; MAX_VCPUS] = [const { [const { AtomicU64::new(0) }; 18] }; MAX_VCPUS];

unsafe extern "C" {
    fn enter_el0(pc: u64, spsr: u64, regs: *const [u64; 16]);
    static attacker_secondary_entry: u8;
    static SECONDARY_STACKS: u8;
}

/// Runs code at EL0 from `pc` with PSTATE `spsr` until its first
/// synchronous exception (an SVC ends it on purpose); IRQs in between are
/// handled and the code resumed.
pub fn run_el0(pc: u64, spsr: u64, regs: [u64; 16]) -> El0Exit {
    // SAFETY: enter_el0 saves our callee-saved registers and SP and comes
    // back here through el0_done when the handler ends the run; the EL0
    // code runs in memory mapped for EL0 and cannot touch EL1 state.
    unsafe { enter_el0(pc, spsr, &regs) };
    let e = &EL0_EXIT[vcpu_index()];
    let mut out = El0Exit { regs: [0; 16], esr: e[16].load(SeqCst), elr: e[17].load(SeqCst) };
    for (i, r) in out.regs.iter_mut().enumerate() {
        *r = e[i].load(SeqCst);
    }
    out
}

/// Interrupts taken, per vCPU, and of the two timers in all.
pub static IRQS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
pub static VTIMER_IRQS: AtomicU64 = AtomicU64::new(0);
pub static PTIMER_IRQS: AtomicU64 = AtomicU64::new(0);
pub static SGI_IRQS: AtomicU64 = AtomicU64::new(0);

/// The vectors' Rust half: 1 ends an EL0 run, 0 returns to the interrupted code.
#[unsafe(no_mangle)]
extern "C" fn attacker_exception(frame: &mut Frame, kind: u64) -> u64 {
    let esr = read_esr();
    let far: u64;
    // SAFETY: reading FAR_EL1 has no side effects.
    unsafe { asm!("mrs {}, far_el1", out(reg) far, options(nomem, nostack)) };
    match kind {
        1 | 5 | 9 | 13 => {
            handle_irq();
            0
        }
        8 | 12 => {
            // From EL0: the run is over (SVC on purpose, anything else caught).
            let e = &EL0_EXIT[vcpu_index()];
            for (slot, x) in e.iter().zip(frame.x.iter().take(16)) {
                slot.store(*x, SeqCst);
            }
            e[16].store(esr, SeqCst);
            e[17].store(frame.elr, SeqCst);
            1
        }
        _ => {
            let c = &CATCH[vcpu_index()];
            if c.armed.load(SeqCst) {
                c.esr.store(esr, SeqCst);
                c.far.store(far, SeqCst);
                c.caught.store(true, SeqCst);
                // A fetch from a bad address returns to the caller (blr);
                // anything else steps over the faulting instruction.
                if esr >> 26 == 0x21 || esr >> 26 == 0x20 {
                    frame.elr = frame.x[30];
                } else if kind & 3 == 0 {
                    frame.elr += 4;
                }
                return 0;
            }
            println!(
                "attacker: BROKEN: unexpected exception (vector {kind}) ESR_EL1 {esr:#x} FAR {far:#x} ELR {:#x} on vCPU {}",
                frame.elr,
                vcpu_index()
            );
            system_off();
        }
    }
}

fn read_esr() -> u64 {
    let esr: u64;
    // SAFETY: reading ESR_EL1 has no side effects.
    unsafe { asm!("mrs {}, esr_el1", out(reg) esr, options(nomem, nostack)) };
    esr
}

// ------------------------------------------------------------------ GIC

/// GIC version and frames, from the DTB.
pub struct GicInfo {
    pub v3: bool,
    pub gicd: u64,
    pub gicr: u64,
    pub gicc: u64,
}

static GIC_V3: AtomicBool = AtomicBool::new(false);
static GICD: AtomicU64 = AtomicU64::new(0);
static GICR: AtomicU64 = AtomicU64::new(0);
static GICC: AtomicU64 = AtomicU64::new(0);

/// 32-bit MMIO read of a GIC register (mapped Device memory).
pub fn mmio_read(addr: u64) -> u32 {
    // SAFETY: every caller passes an address in a Device block of our table;
    // a fault there is an answer the probes catch.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// 32-bit MMIO write.
pub fn mmio_write(addr: u64, value: u32) {
    // SAFETY: as in mmio_read.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// The GIC frames this VM was given.
pub fn gic() -> GicInfo {
    GicInfo { v3: GIC_V3.load(SeqCst), gicd: GICD.load(SeqCst), gicr: GICR.load(SeqCst), gicc: GICC.load(SeqCst) }
}

/// Records the GIC found in the DTB.
pub fn set_gic(v3: bool, gicd: u64, gicr: u64, gicc: u64) {
    GIC_V3.store(v3, SeqCst);
    GICD.store(gicd, SeqCst);
    GICR.store(gicr, SeqCst);
    GICC.store(gicc, SeqCst);
}

/// INTIDs: the virtual and EL1 physical timers' PPIs (ARM ARM D11.2.4, Linux's binding).
pub const VTIMER_INTID: u32 = 27;
pub const PTIMER_INTID: u32 = 30;

/// Turns on this vCPU's interface and the SGIs and timer PPIs (GICv3:
/// IHI 0069 12.9, GICv2: IHI 0048 4.3); the distributor on vCPU 0.
pub fn gic_init_cpu() {
    let g = gic();
    let idx = vcpu_index() as u64;
    let ppis = 0xffff | (1 << VTIMER_INTID) | (1 << PTIMER_INTID);
    if g.v3 {
        if idx == 0 {
            mmio_write(g.gicd, (1 << 4) | (1 << 1)); // ARE_NS, EnableGrp1A
        }
        let rd = g.gicr + idx * layout::GICR_STRIDE;
        mmio_write(rd + 0x14, mmio_read(rd + 0x14) & !(1 << 1)); // WAKER.ProcessorSleep
        let sgi = rd + 0x1_0000;
        mmio_write(sgi + 0x80, 0xffff_ffff); // IGROUPR0: group 1
        mmio_write(sgi + 0x100, ppis); // ISENABLER0
        // SAFETY: the GICv3 CPU interface registers of this vCPU only.
        unsafe {
            asm!(
                "msr S3_0_C12_C12_5, {sre}", // ICC_SRE_EL1
                "isb",
                "msr S3_0_C12_C12_4, xzr",   // ICC_CTLR_EL1: EOImode 0
                "msr S3_0_C4_C6_0, {pmr}",   // ICC_PMR_EL1
                "msr S3_0_C12_C12_7, {one}", // ICC_IGRPEN1_EL1
                "isb",
                sre = in(reg) 7u64, pmr = in(reg) 0xffu64, one = in(reg) 1u64, options(nostack));
        }
    } else {
        if idx == 0 {
            mmio_write(g.gicd, 1);
        }
        mmio_write(g.gicd + 0x100, ppis);
        mmio_write(g.gicc + 0x4, 0xff); // GICC_PMR
        mmio_write(g.gicc, 1); // GICC_CTLR
    }
}

/// Sends SGI `intid` to the vCPUs in `targets` (a bit per vCPU index).
pub fn send_sgi(intid: u32, targets: u16) {
    let g = gic();
    if g.v3 {
        let v = (u64::from(intid) << 24) | u64::from(targets);
        // SAFETY: ICC_SGI1R_EL1 sends an SGI to our own VM's vCPUs.
        unsafe { asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) v, options(nostack)) };
    } else {
        mmio_write(g.gicd + 0xf00, (u32::from(targets & 0xff) << 16) | intid);
    }
}

fn handle_irq() {
    let g = gic();
    let iar = if g.v3 {
        let v: u64;
        // SAFETY: acknowledging an interrupt of our own CPU interface.
        unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) v, options(nostack)) };
        v as u32
    } else {
        mmio_read(g.gicc + 0xc)
    };
    let intid = iar & 0x3ff;
    if intid >= 1020 {
        return;
    }
    IRQS[vcpu_index()].fetch_add(1, SeqCst);
    match intid {
        VTIMER_INTID => {
            VTIMER_IRQS.fetch_add(1, SeqCst);
            // SAFETY: masks our own virtual timer (IMASK), which is level-triggered.
            unsafe { asm!("msr cntv_ctl_el0, {}", "isb", in(reg) 2u64, options(nostack)) };
        }
        PTIMER_INTID => {
            PTIMER_IRQS.fetch_add(1, SeqCst);
            // SAFETY: masks our own EL1 physical timer (emulated or not,
            // this code only runs when its interrupt arrived).
            unsafe { asm!("msr cntp_ctl_el0, {}", "isb", in(reg) 2u64, options(nostack)) };
        }
        0..16 => {
            SGI_IRQS.fetch_add(1, SeqCst);
        }
        _ => {}
    }
    if g.v3 {
        // SAFETY: EOI (priority drop and deactivation, EOImode 0) of what we acknowledged.
        unsafe { asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(iar), options(nostack)) };
    } else {
        mmio_write(g.gicc + 0x10, iar);
    }
}

/// Unmasks IRQs at EL1.
pub fn irq_enable() {
    // SAFETY: our vectors handle IRQs.
    unsafe { asm!("msr daifclr, #2", options(nomem, nostack)) };
}

/// Masks IRQs at EL1.
pub fn irq_disable() {
    // SAFETY: masking interrupts has no other effect.
    unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
}

// ---------------------------------------------------------------- timer

/// The virtual counter (CNTVCT_EL0).
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: reading the virtual counter has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) };
    t
}

/// Counter ticks per second (CNTFRQ_EL0).
pub fn freq() -> u64 {
    let f: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
    f
}

/// Arms the virtual timer `ticks` from now, its interrupt unmasked.
pub fn vtimer_arm(ticks: u64) {
    // SAFETY: our own virtual timer.
    unsafe {
        asm!("msr cntv_tval_el0, {t}", "msr cntv_ctl_el0, {one}", "isb",
            t = in(reg) ticks, one = in(reg) 1u64, options(nostack))
    };
}

/// Waits for an interrupt (WFI, trapped by the hypervisor).
pub fn wfi() {
    // SAFETY: WFI only waits.
    unsafe { asm!("dsb sy", "wfi", options(nostack)) };
}

/// WFE (trapped by the hypervisor: a yield).
pub fn wfe() {
    // SAFETY: WFE only waits.
    unsafe { asm!("wfe", options(nomem, nostack)) };
}

// ------------------------------------------------------- secondary vCPUs

/// Commands for vCPUs 1.. (`secondary_main` polls its mailbox).
pub mod cmd {
    pub const IDLE: u64 = 0;
    /// Spin with interrupts masked and no exits until `GO` is 0.
    pub const SPIN: u64 = 1;
    /// Wait for `GO`, then PSCI SYSTEM_RESET.
    pub const RESET: u64 = 2;
    /// PSCI CPU_OFF.
    pub const CPU_OFF: u64 = 3;
    /// Take interrupts (SGIs) until `GO` is 0.
    pub const TAKE_IRQS: u64 = 4;
}

/// Per-vCPU mailbox: the command, and whether the vCPU has taken it.
pub static MAILBOX: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
pub static TAKEN: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
/// A flag the secondary commands watch.
pub static GO: AtomicUsize = AtomicUsize::new(0);

/// Starts vCPU `index` (PSCI CPU_ON, MPIDR = index); returns the PSCI code.
pub fn cpu_on(index: usize) -> i64 {
    let (entry, stacks) = (&raw const attacker_secondary_entry as u64, &raw const SECONDARY_STACKS as u64);
    let top = stacks + (index as u64) * 0x1_0000;
    MAILBOX[index].store(cmd::IDLE, SeqCst);
    TAKEN[index].store(0, SeqCst);
    hvc(shared::hvc::psci::CPU_ON_64, index as u64, entry, top)[0] as i64
}

/// Hands vCPU `index` a command and waits until it has taken it.
pub fn command(index: usize, c: u64) {
    let before = TAKEN[index].load(SeqCst);
    MAILBOX[index].store(c, SeqCst);
    while TAKEN[index].load(SeqCst) == before {
        wfe();
    }
}

#[unsafe(no_mangle)]
extern "C" fn attacker_secondary_main() -> ! {
    let me = vcpu_index();
    // SAFETY: TPIDR_EL1 holds our vCPU index for entry.S.
    unsafe { asm!("msr tpidr_el1, {}", in(reg) me as u64, options(nostack)) };
    gic_init_cpu();
    loop {
        let c = MAILBOX[me].swap(cmd::IDLE, SeqCst);
        if c != cmd::IDLE {
            TAKEN[me].fetch_add(1, SeqCst);
        }
        match c {
            cmd::SPIN => {
                irq_disable();
                while GO.load(SeqCst) != 0 {
                    core::hint::spin_loop();
                }
            }
            cmd::RESET => {
                while GO.load(SeqCst) == 0 {
                    core::hint::spin_loop();
                }
                hvc(shared::hvc::psci::SYSTEM_RESET, 0, 0, 0);
            }
            cmd::CPU_OFF => {
                hvc(shared::hvc::psci::CPU_OFF, 0, 0, 0);
                println!("attacker: BROKEN: CPU_OFF returned on vCPU {me}");
            }
            cmd::TAKE_IRQS => {
                irq_enable();
                while GO.load(SeqCst) != 0 {
                    wfi();
                }
                irq_disable();
            }
            _ => wfe(),
        }
    }
}
