//! Pipes (Linux fs/pipe.c): `pipe2`, and the blocking around the ring of
//! `crate::fs::pipe`: a reader sleeps on `rd_wait` while the pipe is
//! empty and has a writer, a writer on `wr_wait` while it is full and has
//! a reader (O_NONBLOCK: EAGAIN instead); a write with no reader left
//! gives EPIPE and SIGPIPE; a FIFO's open waits for the other side
//! (`fifo_open`). Every sleep is the `wait_event` loop on the kernel lock,
//! as the tty's; a pending signal ends it (EINTR, or a restart under
//! SA_RESTART, as Linux's -ERESTARTSYS).

use alloc::vec;

use super::fs::my_files;
use super::table::R;
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{access_ok, copy_from_user, copy_to_user};
use crate::fs::file::{FileId, FileKind};
use crate::fs::inode::Ino;
use crate::fs::o::*;
use crate::fs::pipe::{PIPE_SIZE, PipeRead, PipeWrite};
use crate::kernel::fs::wake_pipes;
use crate::kernel::sched::schedule_locked;
use crate::kernel::{KGuard, lock};
use crate::mm::Errno;
use crate::sched::TaskState;

/// `SIGPIPE`.
const SIGPIPE: u32 = 13;

/// Which of a pipe's wait queues.
#[derive(Clone, Copy)]
enum Queue {
    Read,
    Write,
}

/// One turn of a `wait_event_interruptible` on `pipe`'s queue: sleeps
/// until woken; ERESTARTSYS if a signal is pending (checked after
/// queueing, so that a wake-up in between is not lost).
fn pipe_wait(k: &mut KGuard, pipe: u32, q: Queue) -> Result<(), Errno> {
    let me = current();
    let cpu = smp_processor_id();
    let k2 = &mut **k;
    let Some(p) = k2.vfs.pipes.get_mut(&pipe) else { return Ok(()) };
    let wq = match q {
        Queue::Read => &mut p.rd_wait,
        Queue::Write => &mut p.wr_wait,
    };
    wq.prepare_to_wait(&mut k2.sched, cpu, TaskState::Interruptible, false);
    if k2.tasks.signal_pending(me) {
        let cpu = smp_processor_id();
        if let Some(p) = k2.vfs.pipes.get_mut(&pipe) {
            let wq = match q {
                Queue::Read => &mut p.rd_wait,
                Queue::Write => &mut p.wr_wait,
            };
            wq.finish_wait(&mut k2.sched, cpu);
        }
        return Err(Errno::ERESTARTSYS);
    }
    schedule_locked(k);
    let cpu = smp_processor_id();
    let k2 = &mut **k;
    if let Some(p) = k2.vfs.pipes.get_mut(&pipe) {
        let wq = match q {
            Queue::Read => &mut p.rd_wait,
            Queue::Write => &mut p.wr_wait,
        };
        wq.finish_wait(&mut k2.sched, cpu);
    }
    Ok(())
}

/// `send_sig(SIGPIPE, current, 0)`: a write found no reader. The signal
/// is taken on the way back to user space (its default action ends the
/// process). The one place that raises a signal from the VFS.
fn send_sigpipe(k: &mut KGuard) {
    // Taken on the way out (dropped if ignored: then only EPIPE).
    let me = current();
    let tgid = k.tasks.get(me).map_or(0, |t| t.tgid);
    let info = crate::task::signal::SigInfo::user(SIGPIPE, tgid);
    let k2 = &mut **k;
    k2.tasks.send_signal_info(&mut k2.sched, me, info, false, false, now_ns());
}

/// `pipe_read` into user `buf`.
pub(super) fn pipe_read(pipe: u32, flags: u32, buf: usize, len: usize) -> R {
    let mut data = vec![0u8; len.min(PIPE_SIZE)];
    let mut k = lock();
    loop {
        let Some(p) = k.vfs.pipes.get_mut(&pipe) else { return Ok(0) };
        match p.read(&mut data) {
            PipeRead::Data(n) => {
                // Room now: wake the writers.
                let now = now_ns();
                let k2 = &mut *k;
                if let Some(p) = k2.vfs.pipes.get_mut(&pipe) {
                    p.wr_wait.wake_up_all(&mut k2.sched, now);
                }
                drop(k);
                // A bad buffer after the bytes left the pipe loses them,
                // as Linux's copy_page_to_iter failure does.
                copy_to_user(buf, &data[..n])?;
                return Ok(n as isize);
            }
            PipeRead::Eof => return Ok(0),
            PipeRead::Wait if flags & O_NONBLOCK != 0 => return Err(Errno::EAGAIN),
            PipeRead::Wait => pipe_wait(&mut k, pipe, Queue::Read)?,
        }
    }
}

/// `pipe_write` from user `buf`, a pipe-sized chunk at a time.
pub(super) fn pipe_write(pipe: u32, flags: u32, buf: usize, len: usize) -> R {
    let mut chunk = vec![0u8; len.min(PIPE_SIZE)];
    let mut done = 0;
    while done < len || len == 0 {
        let n = (len - done).min(PIPE_SIZE);
        if let Err(e) = copy_from_user(&mut chunk[..n], buf + done) {
            return if done > 0 { Ok(done as isize) } else { Err(e) };
        }
        match pipe_write_kernel(pipe, flags, &chunk[..n]) {
            Ok(w) => {
                done += w;
                if w < n {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        if len == 0 {
            break;
        }
    }
    Ok(done as isize)
}

/// `pipe_write` of kernel bytes: waits for room unless O_NONBLOCK (then
/// what fit, or EAGAIN); EPIPE with SIGPIPE to the caller when no reader
/// is left.
pub(super) fn pipe_write_kernel(pipe: u32, flags: u32, data: &[u8]) -> Result<usize, Errno> {
    let mut done = 0;
    let mut k = lock();
    loop {
        let Some(p) = k.vfs.pipes.get_mut(&pipe) else { return Err(Errno::EPIPE) };
        match p.write(&data[done..]) {
            PipeWrite::Wrote(n) => {
                done += n;
                let now = now_ns();
                let k2 = &mut *k;
                if let Some(p) = k2.vfs.pipes.get_mut(&pipe) {
                    p.rd_wait.wake_up_all(&mut k2.sched, now);
                }
                if done == data.len() {
                    return Ok(done);
                }
            }
            PipeWrite::Broken => {
                if done > 0 {
                    return Ok(done);
                }
                send_sigpipe(&mut k);
                return Err(Errno::EPIPE);
            }
            PipeWrite::Wait if flags & O_NONBLOCK != 0 => {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            PipeWrite::Wait => {
                if let Err(e) = pipe_wait(&mut k, pipe, Queue::Write) {
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
            }
        }
    }
}

/// `pipe2(fds, flags)`: O_CLOEXEC, O_NONBLOCK (O_DIRECT: EINVAL here,
/// packet mode is not implemented).
pub(super) fn sys_pipe2(fds: usize, flags: u32) -> R {
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    if !access_ok(fds, 8) {
        return Err(Errno::EFAULT);
    }
    let cloexec = flags & O_CLOEXEC != 0;
    let (r, w) = {
        let mut k = lock();
        let files = my_files(&k)?;
        let (rf, wf) = k.vfs.new_pipe(flags);
        let r = match k.vfs.fd_alloc(files, 0, rf, cloexec) {
            Ok(r) => r,
            Err(e) => {
                let _ = k.vfs.fput(wf);
                return Err(e);
            }
        };
        let w = match k.vfs.fd_alloc(files, 0, wf, cloexec) {
            Ok(w) => w,
            Err(e) => {
                let _ = k.vfs.fd_close(files, r as i32);
                return Err(e);
            }
        };
        (r, w)
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(r as i32).to_le_bytes());
    b[4..].copy_from_slice(&(w as i32).to_le_bytes());
    if let Err(e) = copy_to_user(fds, &b) {
        let mut k = lock();
        if let Ok(files) = my_files(&k) {
            let _ = k.vfs.fd_close(files, r as i32);
            let _ = k.vfs.fd_close(files, w as i32);
        }
        return Err(e);
    }
    Ok(0)
}

/// `fifo_open`: the file for an open of the FIFO `ino`. For reading, it
/// waits for a writer (unless O_NONBLOCK); for writing, for a reader
/// (O_NONBLOCK: ENXIO if there is none); O_RDWR never waits.
pub(super) fn fifo_open(ino: Ino, flags: u32) -> Result<FileId, Errno> {
    let mut k = lock();
    let pipe = k.vfs.fifo_pipe(ino);
    let acc = flags & O_ACCMODE;
    let (read, write) = (acc != O_WRONLY, acc != O_RDONLY);
    if acc == O_WRONLY && flags & O_NONBLOCK != 0 && k.vfs.pipes[&pipe].readers == 0 {
        return Err(Errno::ENXIO);
    }
    let id =
        k.vfs.alloc_file(FileKind::Pipe { pipe, read, write, fifo: Some(ino) }, flags & !(O_CREAT | O_EXCL | O_TRUNC));
    wake_pipes(&mut k, &[pipe]);
    if acc == O_RDWR || flags & O_NONBLOCK != 0 {
        return Ok(id);
    }
    // Wait for the other side's count to move (`wait_for_partner`).
    let counter = |k: &KGuard| k.vfs.pipes.get(&pipe).map_or(0, |p| if read { p.w_counter } else { p.r_counter });
    let other_open =
        |k: &KGuard| k.vfs.pipes.get(&pipe).is_some_and(|p| if read { p.writers > 0 } else { p.readers > 0 });
    let start = counter(&k);
    while !other_open(&k) && counter(&k) == start {
        if let Err(e) = pipe_wait(&mut k, pipe, if read { Queue::Read } else { Queue::Write }) {
            if let Some(p) = k.vfs.fput(id) {
                wake_pipes(&mut k, &[p]);
            }
            return Err(e);
        }
    }
    Ok(id)
}
