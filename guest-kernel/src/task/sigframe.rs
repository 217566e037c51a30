//! The arm64 signal frame (`struct rt_sigframe`, Linux
//! arch/arm64/kernel/signal.c `setup_rt_frame` / `restore_sigframe`),
//! built and parsed as bytes so that the layout is checked on the host:
//! the `siginfo_t` (128 bytes), then the `ucontext` whose `uc_mcontext`
//! holds x0-x30, sp, pc and pstate, and a `__reserved` area of records
//! (`fpsimd_context`, `esr_context`, an empty terminator). A frame record
//! (x29, x30) sits just above it, so a debugger unwinds through the
//! handler. `rt_sigreturn` reads it back; every field a program could
//! have corrupted is checked (record magic and sizes, PSTATE), and a bad
//! frame is refused rather than trusted.

use super::signal::{AltStack, SA_ONSTACK, SA_RESTORER, SA_SIGINFO, SigAction, SigInfo, UNBLOCKABLE};

/// `sizeof(struct rt_sigframe)`: siginfo 128 + ucontext 4560.
pub const FRAME_SIZE: usize = 4688;
/// Offsets in the frame (include/uapi/asm-generic/siginfo.h,
/// arch/arm64/include/uapi/asm/{ucontext,sigcontext}.h).
const UC: usize = 128;
const UC_FLAGS: usize = UC;
const UC_STACK: usize = UC + 16;
const UC_SIGMASK: usize = UC + 40;
const MCONTEXT: usize = UC + 176;
const FAULT_ADDRESS: usize = MCONTEXT;
const REGS: usize = MCONTEXT + 8;
const SP: usize = REGS + 31 * 8;
const PC: usize = SP + 8;
const PSTATE: usize = PC + 8;
/// `uc_mcontext.__reserved`: 4096 bytes of records, 16-byte aligned.
pub const RESERVED: usize = MCONTEXT + 288;
const RESERVED_SIZE: usize = 4096;

/// `FPSIMD_MAGIC` and `sizeof(struct fpsimd_context)`.
pub const FPSIMD_MAGIC: u32 = 0x4650_8001;
const FPSIMD_SIZE: usize = 528;
/// `ESR_MAGIC` and `sizeof(struct esr_context)`.
pub const ESR_MAGIC: u32 = 0x4553_5201;
const ESR_SIZE: usize = 16;

/// PSTATE bits a frame may set for EL0: the condition flags. Mode,
/// DAIF and the rest are forced to EL0t with interrupts unmasked
/// (`valid_user_regs`).
const PSTATE_USER: u64 = 0xf000_0000;

/// The registers a signal frame saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRegs {
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub pstate: u64,
}

/// The FP/SIMD registers (`struct user_fpsimd_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct FpRegs {
    pub vregs: [u128; 32],
    pub fpsr: u32,
    pub fpcr: u32,
}

/// A frame to write at `addr` and the registers the handler starts with.
pub struct Built {
    /// Where the frame goes (16-byte aligned); the frame record is at
    /// `addr + FRAME_SIZE`.
    pub addr: u64,
    /// The frame followed by the 16-byte frame record.
    pub bytes: alloc::vec::Vec<u8>,
    /// The handler's registers: x0 = signal, x1/x2 = &info/&uc with
    /// SA_SIGINFO, x29 = the frame record, x30 = the restorer, sp, pc.
    pub regs: UserRegs,
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The 128-byte `siginfo_t` of `i` (`rt_sigtimedwait`'s answer).
pub fn siginfo_bytes(i: &SigInfo) -> [u8; 128] {
    let mut b = [0u8; 128];
    write_siginfo(&mut b, i);
    b
}

/// `copy_siginfo_to_user`: the 128-byte `siginfo_t`.
fn write_siginfo(b: &mut [u8], i: &SigInfo) {
    put(b, 0, &(i.signo as i32).to_le_bytes());
    put(b, 8, &i.code.to_le_bytes());
    if i.addr != 0 {
        put(b, 16, &i.addr.to_le_bytes()); // _sigfault.si_addr
    } else {
        put(b, 16, &i.pid.to_le_bytes()); // _kill/_sigchld.si_pid
        put(b, 20, &i.uid.to_le_bytes());
        put(b, 24, &i.status.to_le_bytes()); // _sigchld.si_status
    }
}

/// `get_sigframe` + `setup_sigframe` + `setup_return`: the frame for
/// signal `info` handled by `action`, for a thread whose registers are
/// `regs`/`fp`, whose mask before the handler was `blocked`, and whose
/// alternate stack is `alt`. `sigtramp` is the `rt_sigreturn` trampoline
/// used without SA_RESTORER (Linux's vDSO `__kernel_rt_sigreturn`);
/// `esr` is the fault's syndrome for a fault's signal.
#[allow(clippy::too_many_arguments)]
pub fn build(
    regs: &UserRegs,
    fp: &FpRegs,
    info: &SigInfo,
    action: &SigAction,
    blocked: u64,
    alt: &AltStack,
    sigtramp: u64,
    esr: Option<u64>,
) -> Built {
    // sigsp: the alternate stack if asked for, enabled, and not already on it.
    let sp = if action.flags & SA_ONSTACK != 0 && alt.size != 0 && !alt.contains(regs.sp) {
        alt.sp + alt.size
    } else {
        regs.sp
    };
    let record = (sp - 16) & !15;
    let addr = (record & !15) - FRAME_SIZE as u64;
    let mut b = alloc::vec![0u8; FRAME_SIZE + 16];
    write_siginfo(&mut b, info);
    put(&mut b, UC_FLAGS, &0u64.to_le_bytes());
    // __save_altstack
    put(&mut b, UC_STACK, &alt.sp.to_le_bytes());
    let ss_flags = if alt.size == 0 {
        super::signal::SS_DISABLE
    } else if alt.contains(regs.sp) {
        1
    } else {
        0
    };
    put(&mut b, UC_STACK + 8, &ss_flags.to_le_bytes());
    put(&mut b, UC_STACK + 16, &alt.size.to_le_bytes());
    put(&mut b, UC_SIGMASK, &blocked.to_le_bytes());
    put(&mut b, FAULT_ADDRESS, &info.addr.to_le_bytes());
    for (i, x) in regs.x.iter().enumerate() {
        put(&mut b, REGS + 8 * i, &x.to_le_bytes());
    }
    put(&mut b, SP, &regs.sp.to_le_bytes());
    put(&mut b, PC, &regs.pc.to_le_bytes());
    put(&mut b, PSTATE, &regs.pstate.to_le_bytes());
    let mut at = RESERVED;
    put(&mut b, at, &FPSIMD_MAGIC.to_le_bytes());
    put(&mut b, at + 4, &(FPSIMD_SIZE as u32).to_le_bytes());
    put(&mut b, at + 8, &fp.fpsr.to_le_bytes());
    put(&mut b, at + 12, &fp.fpcr.to_le_bytes());
    for (i, v) in fp.vregs.iter().enumerate() {
        put(&mut b, at + 16 + 16 * i, &v.to_le_bytes());
    }
    at += FPSIMD_SIZE;
    if let Some(esr) = esr {
        put(&mut b, at, &ESR_MAGIC.to_le_bytes());
        put(&mut b, at + 4, &(ESR_SIZE as u32).to_le_bytes());
        put(&mut b, at + 8, &esr.to_le_bytes());
    }
    // The terminator is the zeroes that follow. Then the frame record.
    put(&mut b, FRAME_SIZE, &regs.x[29].to_le_bytes());
    put(&mut b, FRAME_SIZE + 8, &regs.x[30].to_le_bytes());

    let mut h = *regs;
    h.x[0] = u64::from(info.signo);
    if action.flags & SA_SIGINFO != 0 {
        h.x[1] = addr;
        h.x[2] = addr + UC as u64;
    }
    h.sp = addr;
    h.x[29] = record;
    h.pc = action.handler;
    h.x[30] = if action.flags & SA_RESTORER != 0 { action.restorer } else { sigtramp };
    Built { addr, bytes: b, regs: h }
}

/// What `rt_sigreturn` takes back from a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    pub regs: UserRegs,
    pub fp: FpRegs,
    /// The mask to restore (SIGKILL and SIGSTOP taken out).
    pub blocked: u64,
    /// `uc_stack`, for `restore_altstack`.
    pub altstack: AltStack,
}

/// Why `rt_sigreturn` refused a frame (the caller then gets SIGSEGV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// A record's size is not a multiple of 16, runs past the area, or
    /// its magic is unknown.
    BadRecord { offset: usize },
    /// No `fpsimd_context` record.
    NoFpsimd,
}

/// `restore_sigframe` + `parse_user_sigframe`: the state in frame `b`
/// (`FRAME_SIZE` bytes read from the user's sp).
pub fn parse(b: &[u8]) -> Result<Restored, BadFrame> {
    let mut regs = UserRegs { x: [0; 31], sp: get_u64(b, SP), pc: get_u64(b, PC), pstate: get_u64(b, PSTATE) };
    for (i, x) in regs.x.iter_mut().enumerate() {
        *x = get_u64(b, REGS + 8 * i);
    }
    regs.pstate &= PSTATE_USER;
    let mut fp = None;
    let mut at = RESERVED;
    while at + 8 <= RESERVED + RESERVED_SIZE {
        let (magic, size) = (get_u32(b, at), get_u32(b, at + 4) as usize);
        if magic == 0 && size == 0 {
            break;
        }
        let bad = BadFrame::BadRecord { offset: at - RESERVED };
        if size < 8 || size % 16 != 0 || at + size > RESERVED + RESERVED_SIZE {
            return Err(bad);
        }
        match magic {
            FPSIMD_MAGIC if size == FPSIMD_SIZE && fp.is_none() => {
                let mut f = FpRegs { fpsr: get_u32(b, at + 8), fpcr: get_u32(b, at + 12), ..FpRegs::default() };
                for (i, v) in f.vregs.iter_mut().enumerate() {
                    let o = at + 16 + 16 * i;
                    *v = u128::from_le_bytes(b[o..o + 16].try_into().expect("16 bytes"));
                }
                fp = Some(f);
            }
            ESR_MAGIC if size == ESR_SIZE => {}
            _ => return Err(bad),
        }
        at += size;
    }
    let fp = fp.ok_or(BadFrame::NoFpsimd)?;
    let altstack =
        AltStack { sp: get_u64(b, UC_STACK), size: get_u64(b, UC_STACK + 16), flags: get_u32(b, UC_STACK + 8) };
    Ok(Restored { regs, fp, blocked: get_u64(b, UC_SIGMASK) & !UNBLOCKABLE, altstack })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::signal::{SA_NODEFER, sigmask};

    fn regs() -> UserRegs {
        let mut x = [0; 31];
        for (i, r) in x.iter_mut().enumerate() {
            *r = 0x1000 + i as u64;
        }
        UserRegs { x, sp: 0x7fff_1238, pc: 0x40_1000, pstate: 0x6000_0000 }
    }

    #[test]
    fn the_layout_is_linuxs() {
        // Offsets as in arch/arm64/include/uapi/asm: uc_mcontext at 176 in
        // ucontext, __reserved at 288 in sigcontext.
        assert_eq!((MCONTEXT, SP, PC, PSTATE, RESERVED), (304, 560, 568, 576, 592));
        assert_eq!(FRAME_SIZE, 128 + 176 + 288 + 4096);
    }

    #[test]
    fn a_frame_round_trips_and_the_handler_starts_as_the_abi_says() {
        let r = regs();
        let mut fp = FpRegs { fpsr: 0x1f, fpcr: 0x0040_0000, ..FpRegs::default() };
        fp.vregs[31] = u128::MAX - 5;
        let info = SigInfo::user(10, 42);
        let act = SigAction { handler: 0x40_2000, flags: SA_SIGINFO | SA_NODEFER, restorer: 0, mask: 0 };
        let b = build(&r, &fp, &info, &act, sigmask(12), &AltStack::default(), 0x9000, None);
        assert_eq!(b.addr % 16, 0);
        assert!(b.addr + (FRAME_SIZE as u64) + 16 <= r.sp);
        assert_eq!(b.regs.x[0], 10);
        assert_eq!((b.regs.x[1], b.regs.x[2]), (b.addr, b.addr + 128));
        assert_eq!((b.regs.pc, b.regs.x[30], b.regs.sp), (0x40_2000, 0x9000, b.addr));
        assert_eq!(b.regs.x[29], b.addr + FRAME_SIZE as u64);
        assert_eq!(get_u32(&b.bytes, 0), 10, "si_signo");
        assert_eq!(get_u32(&b.bytes, 16), 42, "si_pid");
        let back = parse(&b.bytes[..FRAME_SIZE]).unwrap();
        assert_eq!(back.regs, r);
        assert_eq!(back.fp, fp);
        assert_eq!(back.blocked, sigmask(12));
    }

    #[test]
    fn the_alternate_stack_is_used_only_with_sa_onstack_and_not_when_on_it() {
        let r = regs();
        let alt = AltStack { sp: 0x10_0000, size: 0x4000, flags: 0 };
        let act = SigAction { handler: 1 << 20, flags: SA_ONSTACK, restorer: 0, mask: 0 };
        let b = build(&r, &FpRegs::default(), &SigInfo::user(10, 1), &act, 0, &alt, 0x9000, None);
        assert!(alt.contains(b.regs.sp));
        let mut on = r;
        on.sp = 0x10_2000;
        let b = build(&on, &FpRegs::default(), &SigInfo::user(10, 1), &act, 0, &alt, 0x9000, None);
        assert!(b.regs.sp < 0x10_2000 && alt.contains(b.regs.sp), "nested: below the current sp");
        let act = SigAction { flags: 0, ..act };
        let b = build(&r, &FpRegs::default(), &SigInfo::user(10, 1), &act, 0, &alt, 0x9000, None);
        assert!(!alt.contains(b.regs.sp));
    }

    #[test]
    fn a_corrupt_frame_is_refused_and_pstate_cannot_leave_el0() {
        let act = SigAction { handler: 1 << 20, ..SigAction::default() };
        let b = build(
            &regs(),
            &FpRegs::default(),
            &SigInfo::user(10, 1),
            &act,
            0,
            &AltStack::default(),
            0,
            Some(0x9200_0046),
        );
        let mut f = b.bytes[..FRAME_SIZE].to_vec();
        assert!(parse(&f).is_ok(), "with an esr_context record");
        put(&mut f, PSTATE, &0x3c5u64.to_le_bytes()); // EL1h, DAIF masked
        assert_eq!(parse(&f).unwrap().regs.pstate, 0);
        put(&mut f, RESERVED, &0x1234_5678u32.to_le_bytes());
        assert_eq!(parse(&f), Err(BadFrame::BadRecord { offset: 0 }));
        put(&mut f, RESERVED, &0u64.to_le_bytes());
        assert_eq!(parse(&f), Err(BadFrame::NoFpsimd));
        put(&mut f, RESERVED, &FPSIMD_MAGIC.to_le_bytes());
        put(&mut f, RESERVED + 4, &8000u32.to_le_bytes());
        assert_eq!(parse(&f), Err(BadFrame::BadRecord { offset: 0 }));
    }
}
