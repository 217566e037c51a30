//! Signals on the way back to user space (LKD ch. 3; Linux
//! arch/arm64/kernel/signal.c `do_notify_resume` → `do_signal`):
//! reschedule if asked, stop if the group is stopped, then take pending
//! signals one by one: run a handler on a frame (`task/sigframe.rs`), end
//! the group, or stop it; an interrupted system call is restarted or gets
//! EINTR as the handler's SA_RESTART says. Also `rt_sigreturn`, and the
//! signal a faulting program gets.

use core::sync::atomic::Ordering;

use super::exit::do_group_exit;
use super::{Kernel, THREAD_INFO, lock};
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::mm::current_mm;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::signal::{fpsimd_current, fpsimd_set_current, set_user_regs, user_regs};
use crate::arch::aarch64::trap::TrapFrame;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user};
use crate::kernel::sched::schedule_locked;
use crate::mm::Errno;
use crate::sched::{TaskId, TaskState};
use crate::syscall::nr;
use crate::task::sigframe::{self, FRAME_SIZE};
use crate::task::signal::{Delivery, Restart, SA_RESTORER, SEGV_MAPERR, SigAction, SigInfo, restart};
use crate::task::task_struct::SIGSEGV;

/// A system call's number and first argument, for restarting it.
#[derive(Clone, Copy)]
pub struct Syscall {
    pub orig_x0: u64,
}

/// The restart code in x0, if a signal interrupted the call.
fn restart_code(x0: u64) -> Option<i32> {
    let e = -(x0 as i64);
    let e = i32::try_from(e).ok()?;
    restart(e, None).map(|_| e)
}

/// `do_signal`'s restart of a call a signal interrupted (`restart`):
/// again (x0 and the `svc` put back), through `restart_syscall`, or EINTR.
fn restart_call(frame: &mut TrapFrame, sc: Syscall, handler: Option<&SigAction>) {
    let Some(code) = restart_code(frame.x[0]) else { return };
    match restart(code, handler.map(|a| a.flags)) {
        Some(Restart::Again) => {
            frame.x[0] = sc.orig_x0;
            frame.elr -= 4;
        }
        Some(Restart::RestartBlock) => {
            frame.x[0] = sc.orig_x0;
            frame.elr -= 4;
            frame.x[8] = nr::RESTART_SYSCALL;
        }
        Some(Restart::Eintr) | None => frame.x[0] = Errno::EINTR.to_syscall_ret() as u64,
    }
}

/// `do_notify_resume` on the way back to EL0, with interrupts masked.
/// `syscall` is set when the exception was a system call, whose result is
/// in x0.
pub fn ret_to_user(frame: &mut TrapFrame, mut syscall: Option<Syscall>) {
    // Interrupts are masked: an IPI that sets `work` after this load is
    // taken as soon as `eret` unmasks them, and comes back here. A
    // restart code means a signal woke the call: the slow path.
    // (The codes are -512..=-516: one compare rules out everything else.)
    let restarting = syscall.is_some() && frame.x[0].wrapping_add(516) <= 4 && restart_code(frame.x[0]).is_some();
    if !restarting && !THREAD_INFO[smp_processor_id()].work.load(Ordering::Relaxed) {
        return;
    }
    loop {
        let mut k = lock();
        let cpu = smp_processor_id();
        if k.sched.need_resched(cpu) {
            schedule_locked(&mut k);
            continue;
        }
        let me = k.sched.current(cpu);
        if k.tasks.group_stopped(me) && !k.tasks.fatal_signal_pending(me) {
            // do_signal_stop: sleep until SIGCONT (or SIGKILL) wakes us.
            k.sched.set_current_state(cpu, TaskState::Stopped);
            schedule_locked(&mut k);
            continue;
        }
        match k.tasks.get_signal(me) {
            None => {
                if let Some(sc) = syscall.take() {
                    restart_call(frame, sc, None);
                }
                // A sigsuspend whose wake-up ran no handler: its mask goes.
                if let Some(m) = k.tasks.get_mut(me).and_then(|t| t.saved_sigmask.take()) {
                    k.tasks.set_blocked(me, m);
                    continue;
                }
                // Nothing left: the fast path again until a kick (the
                // lock's release raises the flag again if this section
                // kicked us).
                THREAD_INFO[cpu].work.store(false, Ordering::Relaxed);
                return;
            }
            Some(Delivery::Fatal { status }) => {
                drop(k);
                do_group_exit(status);
            }
            Some(Delivery::Stop { sig }) => {
                let t = now_ns();
                let k2 = &mut *k;
                for th in k2.tasks.do_signal_stop(&mut k2.sched, me, sig, t) {
                    k2.sched.kick_process(th);
                }
                continue;
            }
            Some(Delivery::Handler { info, action, old_blocked }) => {
                if let Some(sc) = syscall.take() {
                    restart_call(frame, sc, Some(&action));
                }
                let t = k.tasks.get_mut(me).expect("current task");
                let saved = t.saved_sigmask.take().unwrap_or(old_blocked);
                let (alt, tramp) = (t.altstack, t.sigtramp);
                drop(k);
                let tramp = match tramp {
                    0 if action.flags & SA_RESTORER == 0 => match sigtramp(me) {
                        Ok(t) => t,
                        Err(_) => {
                            force_sigsegv(me, 0);
                            continue;
                        }
                    },
                    t => t,
                };
                let fp = fpsimd_current();
                let esr = (info.signo == SIGSEGV && info.addr != 0).then_some(frame.esr);
                let b = sigframe::build(&user_regs(frame), &fp, &info, &action, saved, &alt, tramp, esr);
                if copy_to_user(b.addr as usize, &b.bytes).is_err() {
                    // force_sigsegv: no room for the frame. A SIGSEGV
                    // handler that cannot run is reset, so this ends.
                    force_sigsegv(me, b.addr);
                    continue;
                }
                set_user_regs(frame, &b.regs);
                // The handler starts with FP as it was, but FPSR/FPCR of
                // the ABI's default (Linux: fpsimd_flush_task_state).
            }
        }
    }
}

/// The current address space's `rt_sigreturn` trampoline, mapped now if
/// it is not yet (`exec::map_sigtramp`); every task of the address space
/// learns where it is.
fn sigtramp(me: TaskId) -> Result<u64, Errno> {
    let m = current_mm().ok_or(Errno::EFAULT)?;
    let at = {
        let mut vmas = m.mmap_lock.write();
        let mut pt = m.page_table_lock.lock_irqsave();
        super::exec::map_sigtramp(&mut vmas, &mut pt)? as u64
    };
    let mut k = lock();
    let mm = k.tasks.get(me).and_then(|t| t.mm);
    let sharing: alloc::vec::Vec<TaskId> = k.tasks.iter().filter(|t| t.mm == mm).map(|t| t.id).collect();
    for t in sharing {
        if let Some(ts) = k.tasks.get_mut(t) {
            ts.sigtramp = at;
        }
    }
    Ok(at)
}

/// `kill_pgrp` from the kernel: `sig` to every process of group `pgrp`.
pub fn kill_pgrp(k: &mut Kernel, pgrp: crate::task::Pid, sig: u32, now: u64) {
    for id in k.tasks.pgrp_members(pgrp) {
        let info = crate::task::signal::SigInfo { signo: sig, code: 0x80, ..Default::default() }; // SI_KERNEL
        k.tasks.send_signal_info(&mut k.sched, id, info, true, false, now);
    }
}

/// Queues SIGSEGV for `me` with SIG_DFL put back (`force_sigsegv`): a
/// frame that could not be written, or a bad `rt_sigreturn`.
fn force_sigsegv(me: TaskId, addr: u64) {
    let mut k = lock();
    let _ = k.tasks.do_sigaction(me, SIGSEGV, Some(SigAction::default()));
    let t = now_ns();
    let info = SigInfo { signo: SIGSEGV, code: SEGV_MAPERR, addr, ..SigInfo::default() };
    let k2 = &mut *k;
    k2.tasks.send_signal_info(&mut k2.sched, me, info, false, false, t);
}

/// `rt_sigreturn`: the registers, FP/SIMD state, mask and alternate stack
/// from the frame at the user's sp; a frame that is misaligned,
/// unreadable or corrupt gets SIGSEGV instead (`arm64_notify_segfault`).
/// Returns the restored x0, which the caller puts back into the frame.
pub fn sys_rt_sigreturn(frame: &mut TrapFrame) -> isize {
    let me = current();
    let sp = frame.sp;
    let mut buf = alloc::vec![0u8; FRAME_SIZE];
    let parsed = if !sp.is_multiple_of(16) {
        None
    } else {
        copy_from_user(&mut buf, sp as usize).ok().and_then(|()| sigframe::parse(&buf).ok())
    };
    let Some(r) = parsed else {
        crate::println!("guest-kernel: rt_sigreturn: bad frame at sp {sp:#x}: SIGSEGV");
        force_sigsegv(me, sp);
        return frame.x[0] as isize;
    };
    set_user_regs(frame, &r.regs);
    fpsimd_set_current(&r.fp);
    let mut k = lock();
    k.tasks.set_blocked(me, r.blocked);
    // restore_altstack: the stack as it was, if it is still a valid one.
    let _ = crate::syscall::set_altstack(&mut k, me, r.altstack, frame.sp);
    // A signal the old mask unblocks is taken on the way out.
    if k.tasks.signal_pending(me) {
        k.sched.kick_process(me);
    }
    frame.x[0] as isize
}

/// Queues SIGSEGV for the current task, after saying why on the console
/// (Linux's `show_unhandled_signals`); it acts on the way out, or runs
/// the program's handler with the faulting address in `si_addr`.
pub fn segv(frame: &TrapFrame, what: &str) {
    let me = current();
    let mut k = lock();
    let pid = k.tasks.get(me).map_or(0, |t| t.pid);
    let handled = k.tasks.action(me, SIGSEGV).handler > crate::task::signal::SIG_IGN;
    if !handled {
        let comm = k.tasks.get(me).map(|t| t.comm.clone()).unwrap_or_default();
        drop(k);
        crate::println!(
            "guest-kernel: {comm}[{pid}]: {what} at {:#x} pc {:#x} (ESR {:#x}): SIGSEGV",
            frame.far,
            frame.elr,
            frame.esr
        );
        k = lock();
    }
    let info = SigInfo { signo: SIGSEGV, code: SEGV_MAPERR, addr: frame.far, ..SigInfo::default() };
    let t = now_ns();
    // force_sig_fault: a blocked or ignored SIGSEGV cannot be escaped.
    if let Some(ts) = k.tasks.get(me)
        && (ts.blocked & crate::task::signal::sigmask(SIGSEGV) != 0
            || k.tasks.action(me, SIGSEGV).handler == crate::task::signal::SIG_IGN)
    {
        let _ = k.tasks.do_sigaction(me, SIGSEGV, Some(SigAction::default()));
        let b = k.tasks.get(me).map_or(0, |t| t.blocked);
        k.tasks.set_blocked(me, b & !crate::task::signal::sigmask(SIGSEGV));
    }
    let k2 = &mut *k;
    k2.tasks.send_signal_info(&mut k2.sched, me, info, false, false, t);
}
