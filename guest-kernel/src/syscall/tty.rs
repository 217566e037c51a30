//! The terminal's ioctls and job control (Linux drivers/tty/tty_io.c,
//! tty_jobctrl.c; ULK ch. 3 and APUE ch. 9 "Terminal Logins" for the
//! model): termios (TCGETS, TCSETS, TCSETSW, TCSETSF), the window size,
//! the controlling terminal of a session (TIOCSCTTY, TIOCNOTTY,
//! TIOCGSID) and its foreground process group (TIOCGPGRP, TIOCSPGRP);
//! and `tty_check_change` for a read from a background group, which gets
//! SIGTTIN (or EIO if that is ignored or blocked).

use super::table::R;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user};
use crate::kernel::signal::kill_pgrp;
use crate::kernel::{Kernel, lock};
use crate::mm::Errno;
use crate::sched::TaskId;
use crate::tty::Termios;

pub const TCGETS: u32 = 0x5401;
pub const TCSETS: u32 = 0x5402;
pub const TCSETSW: u32 = 0x5403;
pub const TCSETSF: u32 = 0x5404;
pub const TIOCSCTTY: u32 = 0x540e;
pub const TIOCGPGRP: u32 = 0x540f;
pub const TIOCSPGRP: u32 = 0x5410;
pub const TIOCGWINSZ: u32 = 0x5413;
pub const TIOCSWINSZ: u32 = 0x5414;
pub const TIOCNOTTY: u32 = 0x5422;
pub const TIOCGSID: u32 = 0x5429;

/// `SIGTTIN`, `SIGTTOU`.
const SIGTTIN: u32 = 21;
const SIGTTOU: u32 = 22;
/// `EIO`.
const EIO: Errno = Errno(5);

/// Whether the console is `me`'s controlling terminal (`me` has one:
/// there is only the console).
pub(super) fn is_ctty(k: &Kernel, me: TaskId) -> bool {
    let leader = k.tasks.get(me).map(|t| t.group_leader);
    leader.and_then(|l| k.tasks.get(l)).is_some_and(|l| l.ctty) && k.tty.session == Some(k.tasks.sid(me))
}

/// The terminal ioctls, on the console (a tty); `None` for other commands.
pub(super) fn tty_ioctl(cmd: u32, arg: usize) -> Option<R> {
    let me = current();
    Some(match cmd {
        TCGETS => {
            let t = lock().tty.ldisc.termios;
            copy_to_user(arg, &t.to_bytes()).map(|()| 0)
        }
        TCSETS | TCSETSW | TCSETSF => (|| {
            let mut b = [0u8; 36];
            copy_from_user(&mut b, arg)?;
            check_change(&mut lock(), me, SIGTTOU)?;
            // TCSETSW would wait for output to drain: the console writes
            // synchronously, so there is none.
            lock().tty.ldisc.set_termios(Termios::from_bytes(&b), cmd == TCSETSF);
            Ok(0)
        })(),
        TIOCGWINSZ => {
            let mut b = [0u8; 8];
            b[0..2].copy_from_slice(&24u16.to_le_bytes());
            b[2..4].copy_from_slice(&80u16.to_le_bytes());
            copy_to_user(arg, &b).map(|()| 0)
        }
        TIOCSWINSZ => Ok(0),
        TIOCSCTTY => tiocsctty(me, arg),
        TIOCNOTTY => {
            let mut k = lock();
            if !is_ctty(&k, me) {
                return Some(Err(Errno::ENOTTY));
            }
            let sid = k.tasks.sid(me);
            let leader = k.tasks.get(me).map(|t| t.group_leader).expect("current task");
            if k.tasks.get(leader).map(|t| t.pid) == Some(sid) {
                crate::arch::aarch64::tty::session_leader_exit(&mut k, sid);
            }
            if let Some(l) = k.tasks.get_mut(leader) {
                l.ctty = false;
            }
            Ok(0)
        }
        TIOCGPGRP | TIOCGSID => {
            let v = {
                let k = lock();
                if !is_ctty(&k, me) {
                    return Some(Err(Errno::ENOTTY));
                }
                if cmd == TIOCGPGRP { k.tty.pgrp } else { k.tty.session.unwrap_or(0) }
            };
            copy_to_user(arg, &v.to_le_bytes()).map(|()| 0)
        }
        TIOCSPGRP => (|| {
            let mut b = [0u8; 4];
            copy_from_user(&mut b, arg)?;
            let pgrp = i32::from_le_bytes(b);
            let mut k = lock();
            // tiocspgrp: an orphaned background group gets ENOTTY.
            match check_change(&mut k, me, SIGTTOU) {
                Err(e) if e == EIO => return Err(Errno::ENOTTY),
                r => r?,
            }
            if !is_ctty(&k, me) {
                return Err(Errno::ENOTTY);
            }
            if pgrp < 0 {
                return Err(Errno::EINVAL);
            }
            let members = k.tasks.pgrp_members(pgrp);
            if members.is_empty() {
                return Err(Errno::ESRCH);
            }
            if k.tasks.sid(members[0]) != k.tasks.sid(me) {
                return Err(Errno::EPERM);
            }
            k.tty.pgrp = pgrp;
            Ok(0)
        })(),
        _ => return None,
    })
}

/// `tiocsctty`: a session leader without a controlling terminal takes the
/// console, unless another session has it (root may steal it with
/// `arg` 1).
fn tiocsctty(me: TaskId, arg: usize) -> R {
    let mut k = lock();
    let sid = k.tasks.sid(me);
    let leader = k.tasks.get(me).map(|t| t.group_leader).expect("current task");
    let is_leader = k.tasks.get(leader).is_some_and(|l| l.pid == sid);
    if is_leader && k.tty.session == Some(sid) {
        return Ok(0);
    }
    if !is_leader || k.tasks.get(leader).is_some_and(|l| l.ctty) {
        return Err(Errno::EPERM);
    }
    if let Some(other) = k.tty.session {
        let root = k.tasks.get(me).is_some_and(|t| t.cred.is_root());
        if !(arg == 1 && root) {
            return Err(Errno::EPERM);
        }
        for t in k.tasks.iter().filter(|t| t.sid == other).map(|t| t.id).collect::<alloc::vec::Vec<_>>() {
            if let Some(t) = k.tasks.get_mut(t) {
                t.ctty = false;
            }
        }
    }
    k.tty.session = Some(sid);
    k.tty.pgrp = k.tasks.pgid(me);
    // Every process of the session shares it (they were forked from the
    // leader before or after: `signal->tty`).
    for t in
        k.tasks.iter().filter(|t| t.sid == sid && t.thread_group_leader()).map(|t| t.id).collect::<alloc::vec::Vec<_>>()
    {
        if let Some(t) = k.tasks.get_mut(t) {
            t.ctty = true;
        }
    }
    Ok(0)
}

/// `__tty_check_change`: a process of a background group of the
/// terminal's session that reads (`sig` SIGTTIN) or changes the terminal
/// (SIGTTOU) gets `sig` for its group and waits for it (ERESTARTSYS);
/// if it ignores or blocks `sig`, a change goes ahead and a read gets
/// EIO; an orphaned group, which nobody would continue, gets EIO.
fn check_change(k: &mut Kernel, me: TaskId, sig: u32) -> Result<(), Errno> {
    let pgrp = k.tasks.pgid(me);
    if !is_ctty(k, me) || pgrp == k.tty.pgrp || k.tty.pgrp == 0 {
        return Ok(());
    }
    let blocked = k.tasks.get(me).is_some_and(|t| t.blocked & crate::task::signal::sigmask(sig) != 0);
    if blocked || k.tasks.action(me, sig).handler == crate::task::signal::SIG_IGN {
        return if sig == SIGTTIN { Err(EIO) } else { Ok(()) };
    }
    if k.tasks.pgrp_orphaned(pgrp) {
        return Err(EIO);
    }
    kill_pgrp(k, pgrp, sig, now_ns());
    Err(Errno::ERESTARTSYS)
}

/// A read of the terminal (`job_control` → `tty_check_change(SIGTTIN)`).
pub(super) fn check_read(k: &mut Kernel, me: TaskId) -> Result<(), Errno> {
    check_change(k, me, SIGTTIN)
}
