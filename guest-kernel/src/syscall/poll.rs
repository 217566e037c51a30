//! `ppoll` (Linux fs/select.c `do_sys_poll`, `do_pollfd`; the drivers'
//! `poll` methods: fs/pipe.c `pipe_poll`, drivers/tty/n_tty.c
//! `n_tty_poll`): which descriptors are ready, and if none is, a sleep on
//! every wait queue that could make one ready (the console's readers,
//! each pipe's readers and writers) until a wake-up, the timeout or a
//! signal. Files that never block (regular files, directories, memory
//! devices) are always ready, as `DEFAULT_POLLMASK` says.

use alloc::vec;
use alloc::vec::Vec;

use super::fs::my_files;
use super::table::R;
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user};
use crate::fs::devices::CharDev;
use crate::fs::fdtable::NR_OPEN;
use crate::fs::file::FileKind;
use crate::fs::inode::InodeKind;
use crate::fs::pipe::PIPE_SIZE;
use crate::kernel::sched::{schedule_locked, schedule_timeout};
use crate::kernel::{Kernel, lock};
use crate::mm::Errno;
use crate::sched::TaskState;
use crate::syscall::{ns_to_sleep_jiffies, timespec_to_ns};

const POLLIN: u16 = 0x1;
const POLLOUT: u16 = 0x4;
const POLLERR: u16 = 0x8;
const POLLHUP: u16 = 0x10;
const POLLNVAL: u16 = 0x20;
const POLLRDNORM: u16 = 0x40;
const POLLWRNORM: u16 = 0x100;
/// What a file without a `poll` method reports.
const DEFAULT_POLLMASK: u16 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;

/// A wait queue a poller sleeps on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    Tty,
    PipeRead(u32),
    PipeWrite(u32),
}

/// `do_pollfd` for one descriptor: its ready mask, and the queue to wait
/// on if it is not ready.
fn poll_one(k: &Kernel, files: u32, fd: i32, queues: &mut Vec<Queue>) -> u16 {
    if fd < 0 {
        return 0;
    }
    let Ok(d) = k.vfs.fd_get(files, fd) else { return POLLNVAL };
    let f = k.vfs.files[&d.file];
    match f.kind {
        FileKind::Pipe { pipe, read, write, .. } => {
            let Some(p) = k.vfs.pipes.get(&pipe) else { return POLLHUP };
            let mut m = 0;
            if read {
                if !p.is_empty() {
                    m |= POLLIN | POLLRDNORM;
                }
                if p.writers == 0 {
                    m |= POLLHUP;
                }
                queues.push(Queue::PipeRead(pipe));
            }
            if write {
                if p.len() < PIPE_SIZE {
                    m |= POLLOUT | POLLWRNORM;
                }
                if p.readers == 0 {
                    m |= POLLERR;
                }
                queues.push(Queue::PipeWrite(pipe));
            }
            m
        }
        FileKind::Inode(i) => {
            let inode = k.vfs.inode(i);
            if inode.kind() == InodeKind::Chr && CharDev::of(inode.rdev).is_some_and(CharDev::is_tty) {
                queues.push(Queue::Tty);
                let mut m = POLLOUT | POLLWRNORM;
                if k.tty.readable() {
                    m |= POLLIN | POLLRDNORM;
                }
                m
            } else {
                DEFAULT_POLLMASK
            }
        }
    }
}

/// Queues or dequeues the current task on each of `queues`.
fn wait_on(k: &mut Kernel, queues: &[Queue], prepare: bool) {
    let cpu = smp_processor_id();
    for q in queues {
        let wq = match *q {
            Queue::Tty => &mut k.tty.read_wait,
            Queue::PipeRead(p) => match k.vfs.pipes.get_mut(&p) {
                Some(p) => &mut p.rd_wait,
                None => continue,
            },
            Queue::PipeWrite(p) => match k.vfs.pipes.get_mut(&p) {
                Some(p) => &mut p.wr_wait,
                None => continue,
            },
        };
        if prepare {
            wq.prepare_to_wait(&mut k.sched, cpu, TaskState::Interruptible, false);
        } else {
            wq.finish_wait(&mut k.sched, cpu);
        }
    }
}

/// `ppoll(fds, nfds, timeout, sigmask, sigsetsize)`. With `sigmask`, the
/// wait runs with that mask (`set_user_sigmask`); it comes back as the
/// call returns, or, when a signal ended the wait, after its handler
/// (`restore_saved_sigmask_unless`). A signal gives ERESTARTNOHAND: EINTR
/// if a handler runs, else the call starts again.
pub(super) fn sys_ppoll(fds: usize, nfds: usize, tmo: usize, sigmask: usize, sigsetsize: usize) -> R {
    if nfds > NR_OPEN {
        return Err(Errno::EINVAL);
    }
    let mask = if sigmask != 0 {
        if sigsetsize != 8 {
            return Err(Errno::EINVAL);
        }
        Some(crate::arch::aarch64::uaccess::get_user_u64(sigmask)?)
    } else {
        None
    };
    let me = current();
    if let Some(m) = mask {
        let mut k = lock();
        let old = k.tasks.set_blocked(me, m);
        k.tasks.get_mut(me).expect("current task").saved_sigmask = Some(old);
    }
    let r = do_ppoll(fds, nfds, tmo);
    if mask.is_some() && r != Err(Errno::ERESTARTNOHAND) {
        let mut k = lock();
        if let Some(old) = k.tasks.get_mut(me).and_then(|t| t.saved_sigmask.take()) {
            k.tasks.set_blocked(me, old);
        }
    }
    r
}

fn do_ppoll(fds: usize, nfds: usize, tmo: usize) -> R {
    let deadline = if tmo == 0 {
        None
    } else {
        let mut ts = [0u8; 16];
        copy_from_user(&mut ts, tmo)?;
        let sec = i64::from_le_bytes(ts[..8].try_into().unwrap());
        let nsec = i64::from_le_bytes(ts[8..].try_into().unwrap());
        Some(now_ns().saturating_add(timespec_to_ns(sec, nsec).ok_or(Errno::EINVAL)?))
    };
    let mut raw = vec![0u8; nfds * 8];
    copy_from_user(&mut raw, fds)?;
    let me = current();
    let mut k = lock();
    let files = my_files(&k)?;
    let mut queues = Vec::new();
    loop {
        queues.clear();
        let mut ready = 0;
        for c in raw.chunks_mut(8) {
            let fd = i32::from_le_bytes(c[..4].try_into().unwrap());
            let events = u16::from_le_bytes([c[4], c[5]]);
            let mask = poll_one(&k, files, fd, &mut queues) & (events | POLLERR | POLLHUP | POLLNVAL);
            c[6..8].copy_from_slice(&mask.to_le_bytes());
            ready += usize::from(mask != 0);
        }
        let now = now_ns();
        let expired = deadline.is_some_and(|d| now >= d);
        if ready > 0 || expired {
            drop(k);
            copy_to_user(fds, &raw)?;
            return Ok(ready as isize);
        }
        if k.tasks.signal_pending(me) {
            return Err(Errno::ERESTARTNOHAND);
        }
        wait_on(&mut k, &queues, true);
        match deadline {
            Some(d) => {
                let hz = k.jiffies.hz();
                schedule_timeout(&mut k, ns_to_sleep_jiffies(d - now, hz), TaskState::Interruptible);
            }
            None => schedule_locked(&mut k),
        }
        wait_on(&mut k, &queues, false);
    }
}
