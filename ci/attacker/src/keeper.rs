//! The secrets side of the snoop scenarios: `role=keeper` plants one value
//! (the secret, `boot::secret_plus_one() - 1`) in its RAM, general-purpose,
//! FP/SIMD, thread-ID and debug registers, then yields its CPU again and
//! again, checking after each return that nothing of it changed, until a
//! byte is typed at its console. The attacker (pinned to the same physical
//! CPU) looks for the value in everything it can read.

use crate::boot::{Boot, secret_plus_one};
use crate::{println, rt};
use core::arch::{asm, global_asm};

global_asm!(
    ".arch_extension fp",
    ".arch_extension simd",
    ".global fill_v",
    "fill_v:",
    "dup v0.2d, x0",
    "dup v1.2d, x0",
    "dup v2.2d, x0",
    "dup v3.2d, x0",
    "dup v4.2d, x0",
    "dup v5.2d, x0",
    "dup v6.2d, x0",
    "dup v7.2d, x0",
    "dup v8.2d, x0",
    "dup v9.2d, x0",
    "dup v10.2d, x0",
    "dup v11.2d, x0",
    "dup v12.2d, x0",
    "dup v13.2d, x0",
    "dup v14.2d, x0",
    "dup v15.2d, x0",
    "dup v16.2d, x0",
    "dup v17.2d, x0",
    "dup v18.2d, x0",
    "dup v19.2d, x0",
    "dup v20.2d, x0",
    "dup v21.2d, x0",
    "dup v22.2d, x0",
    "dup v23.2d, x0",
    "dup v24.2d, x0",
    "dup v25.2d, x0",
    "dup v26.2d, x0",
    "dup v27.2d, x0",
    "dup v28.2d, x0",
    "dup v29.2d, x0",
    "dup v30.2d, x0",
    "dup v31.2d, x0",
    "msr fpsr, x0",
    "ret",
    ".global dump_v",
    "dump_v:",
    "stp q0, q1, [x0]",
    "stp q2, q3, [x0, #32]",
    "stp q4, q5, [x0, #64]",
    "stp q6, q7, [x0, #96]",
    "stp q8, q9, [x0, #128]",
    "stp q10, q11, [x0, #160]",
    "stp q12, q13, [x0, #192]",
    "stp q14, q15, [x0, #224]",
    "stp q16, q17, [x0, #256]",
    "stp q18, q19, [x0, #288]",
    "stp q20, q21, [x0, #320]",
    "stp q22, q23, [x0, #352]",
    "stp q24, q25, [x0, #384]",
    "stp q26, q27, [x0, #416]",
    "stp q28, q29, [x0, #448]",
    "stp q30, q31, [x0, #480]",
    "ret",
);

unsafe extern "C" {
    /// Sets every V register (both halves) to x0.
    pub fn fill_v(value: u64);
    /// Stores V0-V31 at x0 (512 bytes).
    pub fn dump_v(out: *mut [u64; 64]);
}

/// The V registers, as 64 halves.
pub fn read_v() -> [u64; 64] {
    let mut v = [0u64; 64];
    // SAFETY: dump_v writes exactly 512 bytes to the array; FP is enabled (CPACR_EL1).
    unsafe { dump_v(&mut v) };
    v
}

/// Sets every V register to `value`.
pub fn write_v(value: u64) {
    // SAFETY: fill_v changes only V0-V31 and FPSR, which no Rust code of
    // this softfloat image uses.
    unsafe { fill_v(value) };
}

/// Thread-ID and other EL1/EL0 registers a VM can read and write freely.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sysregs {
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
    pub tpidr_el1: u64,
    pub contextidr: u64,
    pub par: u64,
    pub cntv_cval: u64,
    pub far: u64,
}

impl Sysregs {
    pub fn read() -> Sysregs {
        let mut s = Sysregs::default();
        // SAFETY: reads of this vCPU's own registers, no side effects.
        unsafe {
            asm!("mrs {}, tpidr_el0", out(reg) s.tpidr_el0, options(nomem, nostack));
            asm!("mrs {}, tpidrro_el0", out(reg) s.tpidrro_el0, options(nomem, nostack));
            asm!("mrs {}, tpidr_el1", out(reg) s.tpidr_el1, options(nomem, nostack));
            asm!("mrs {}, contextidr_el1", out(reg) s.contextidr, options(nomem, nostack));
            asm!("mrs {}, par_el1", out(reg) s.par, options(nomem, nostack));
            asm!("mrs {}, cntv_cval_el0", out(reg) s.cntv_cval, options(nomem, nostack));
            asm!("mrs {}, far_el1", out(reg) s.far, options(nomem, nostack));
        }
        s
    }

    pub fn values(&self) -> [u64; 7] {
        [self.tpidr_el0, self.tpidrro_el0, self.tpidr_el1, self.contextidr, self.par, self.cntv_cval, self.far]
    }
}

/// Breakpoint and watchpoint value registers 0 (ARM ARM D19.3).
pub fn read_dbg() -> [u64; 2] {
    let (b, w): (u64, u64);
    // SAFETY: reads of debug registers, no side effects.
    unsafe {
        asm!("mrs {}, dbgbvr0_el1", out(reg) b, options(nomem, nostack));
        asm!("mrs {}, dbgwvr0_el1", out(reg) w, options(nomem, nostack));
    }
    [b, w]
}

/// Writes breakpoint/watchpoint value registers 0 (their control registers
/// stay disabled, so nothing fires).
pub fn write_dbg(b: u64, w: u64) {
    // SAFETY: value registers only; DBGBCR0/DBGWCR0.E stay 0.
    unsafe {
        asm!("msr dbgbvr0_el1, {}", "msr dbgwvr0_el1, {}", "isb", in(reg) b, in(reg) w, options(nostack));
    }
}

/// The debug secret: the low 48 bits of secret_plus_one, word aligned (a
/// breakpoint value register keeps only an address).
pub fn dbg_secret() -> u64 {
    secret_plus_one() & 0x0000_7fff_ffff_fff0
}

/// What the vCPU found in its registers at entry (before the attacker
/// wrote any): entry.S saved the general-purpose ones.
pub struct EntryState {
    pub gprs: [u64; 30],
    pub sys: Sysregs,
}

unsafe extern "C" {
    static ENTRY_REGS: [u64; 30];
}

impl EntryState {
    pub fn read() -> EntryState {
        // SAFETY: entry.S wrote ENTRY_REGS before Rust ran; nothing writes it since.
        let gprs = unsafe { ENTRY_REGS };
        EntryState { gprs, sys: Sysregs::read() }
    }
}

/// Where the keeper's RAM secret lies: 4 MiB from 8 MiB into its RAM.
const PLANT_OFFSET: u64 = 8 << 20;
const PLANT_SIZE: u64 = 4 << 20;

/// `role=keeper`: never returns; powers the VM off when a byte is typed.
pub fn keep(boot: &Boot) -> ! {
    let s = secret_plus_one().wrapping_sub(1);
    let plant = boot.ram_base + PLANT_OFFSET;
    for a in (plant..plant + PLANT_SIZE).step_by(8) {
        // SAFETY: inside our RAM, above the image, its BSS and stacks.
        unsafe { core::ptr::write_volatile(a as *mut u64, s) };
    }
    // SAFETY: this vCPU's own thread-ID, context-ID, PAR and timer compare
    // registers (the timer stays disabled).
    unsafe {
        asm!("msr tpidr_el0, {s}", "msr tpidrro_el0, {s}", "msr tpidr_el1, {s}", "msr contextidr_el1, {c}",
            "msr par_el1, {s}", "msr cntv_cval_el0, {s}", "isb",
            s = in(reg) s, c = in(reg) s & 0xffff_ffff, options(nostack));
    }
    let d = dbg_secret();
    write_dbg(d, d);
    let dbg_planted = read_dbg();
    write_v(s);
    println!("keeper: secrets planted");
    let mut yields: u64 = 0;
    let mut broken = false;
    let mut report = |what: &str, value: u64, yields: u64| {
        if !broken {
            println!("keeper: BROKEN: {what} changed to {value:#x} while away (after {yields} yields)");
        }
        broken = true;
    };
    while rt::getc().is_none() {
        // SAFETY: fills x1-x17 with the secret and yields (WFE, trapped):
        // whoever runs next on this CPU must not see them.
        unsafe {
            asm!("mov x1, x0", "mov x2, x0", "mov x3, x0", "mov x4, x0", "mov x5, x0", "mov x6, x0",
                "mov x7, x0", "mov x8, x0", "mov x9, x0", "mov x10, x0", "mov x11, x0", "mov x12, x0",
                "mov x13, x0", "mov x14, x0", "mov x15, x0", "mov x16, x0", "mov x17, x0", "wfe",
                in("x0") s, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _,
                out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
        }
        yields += 1;
        if let Some(v) = read_v().into_iter().find(|&v| v != s) {
            report("a V register", v, yields);
        }
        let sys = Sysregs::read();
        for v in [sys.tpidr_el0, sys.tpidrro_el0, sys.tpidr_el1, sys.par, sys.cntv_cval] {
            if v != s {
                report("a thread-ID/PAR/CNTV_CVAL register", v, yields);
            }
        }
        let dbg = read_dbg();
        if dbg != dbg_planted {
            report("DBGBVR0_EL1/DBGWVR0_EL1", dbg[0] ^ dbg[1], yields);
        }
    }
    for a in (plant..plant + PLANT_SIZE).step_by(8) {
        // SAFETY: as above.
        let v = unsafe { core::ptr::read_volatile(a as *const u64) };
        if v != s {
            report("RAM", v, yields);
            break;
        }
    }
    if !broken {
        println!("keeper: secrets intact after {yields} yields");
    }
    rt::system_off();
}
