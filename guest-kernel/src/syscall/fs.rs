//! File-descriptor calls: `read` and `write` on the console (fds 0-2;
//! the VFS of issue 15 replaces this).

use super::table::R;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user};
use crate::kernel::lock;
use crate::kernel::sched::schedule_locked;
use crate::mm::Errno;
use crate::sched::TaskState;

pub(super) fn sys_write(fd: u64, buf: usize, len: usize) -> R {
    if fd != 1 && fd != 2 {
        return Err(Errno::EBADF);
    }
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        if let Err(e) = copy_from_user(&mut chunk[..n], buf + done) {
            return if done > 0 { Ok(done as isize) } else { Err(e) };
        }
        crate::console::write_bytes(&chunk[..n]);
        done += n;
    }
    Ok(done as isize)
}

/// `read(2)` of the console (`n_tty_read`, canonical mode): sleep until a
/// line (or an end-of-file mark) is ready, then copy up to `len` bytes of
/// it. Without an input driver, stdin is at end of file. A signal
/// ends the wait (EINTR, or a restart under SA_RESTART); the buffer is checked before anything is
/// taken from the tty, so a bad pointer loses no input.
pub(super) fn sys_read(fd: u64, buf: usize, len: usize) -> R {
    if fd != 0 {
        return Err(Errno::EBADF);
    }
    if !crate::arch::aarch64::uaccess::access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    let mut k = lock();
    let me = current();
    loop {
        if !k.tty.has_input() {
            return Ok(0);
        }
        if let Some(data) = k.tty.read(len) {
            drop(k);
            copy_to_user(buf, &data)?;
            return Ok(data.len() as isize);
        }
        if k.tasks.signal_pending(me) {
            return Err(Errno::ERESTARTSYS);
        }
        let cpu = crate::arch::aarch64::cpu::smp_processor_id();
        let k2 = &mut *k;
        k2.tty.read_wait.prepare_to_wait(&mut k2.sched, cpu, TaskState::Interruptible, false);
        schedule_locked(&mut k);
        let cpu = crate::arch::aarch64::cpu::smp_processor_id();
        let k2 = &mut *k;
        k2.tty.read_wait.finish_wait(&mut k2.sched, cpu);
    }
}
