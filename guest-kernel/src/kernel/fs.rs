//! The VFS's place in the running kernel (the pure core is `crate::fs`):
//! the root filesystem made at boot from the initramfs (Linux
//! init/initramfs.c `populate_rootfs`, devtmpfs's /dev), the console as
//! init's descriptors 0-2 (init/main.c `console_on_rootfs`), and what
//! fork, exec and exit do with a process's files (kernel/fork.c
//! `copy_files`/`copy_fs`, fs/exec.c `do_close_on_exec`, kernel/exit.c
//! `exit_files`/`exit_fs`). All of it runs with the kernel lock held.

use alloc::vec::Vec;

use super::Kernel;
use crate::arch::aarch64::irq::now_ns;
use crate::fs::Vfs;
use crate::fs::inode::Timespec;
use crate::fs::namei::{At, Who};
use crate::mm::Errno;
use crate::sched::TaskId;
use crate::task::fork::{CLONE_FILES, CLONE_FS};

/// Inode times: the time since boot (there is no real-time clock here).
fn clock() -> Timespec {
    let ns = now_ns();
    Timespec { sec: (ns / 1_000_000_000) as i64, nsec: (ns % 1_000_000_000) as u32 }
}

/// The root filesystem: a tmpfs of at most half of RAM (tmpfs's default
/// `size=`), the initramfs unpacked into it, then /dev.
pub fn boot_vfs(initrd: &'static [u8], total_pages: usize) -> Vfs {
    let mut v = Vfs::new(clock, total_pages * crate::mm::page::PAGE_SIZE / 2);
    v.rng ^= now_ns() | 1;
    match crate::initramfs::unpack_to_rootfs(&mut v, initrd) {
        Ok(n) => crate::println!("guest-kernel: initramfs: {n} entries unpacked into the tmpfs root"),
        Err(e) => crate::println!("guest-kernel: initramfs: unpacking stopped: {e:?}"),
    }
    if let Err(e) = v.populate_dev() {
        crate::println!("guest-kernel: cannot make /dev: {e:?}");
    }
    v
}

/// Wakes everyone waiting on each pipe (an end was closed, or data or
/// room appeared).
pub fn wake_pipes(k: &mut Kernel, pipes: &[u32]) {
    let now = now_ns();
    for p in pipes {
        if let Some(pipe) = k.vfs.pipes.get_mut(p) {
            pipe.rd_wait.wake_up_all(&mut k.sched, now);
            pipe.wr_wait.wake_up_all(&mut k.sched, now);
        }
    }
}

/// init's files: a new descriptor table with /dev/console open on 0, 1
/// and 2 (read-write, as `console_on_rootfs`), working in the root.
pub fn init_files(k: &mut Kernel, me: TaskId) -> Result<(), Errno> {
    let v = &mut k.vfs;
    let at = At::root(v.root, v.root);
    let files = v.files_new();
    let fs = v.fs_new(v.root);
    if let Ok(crate::fs::file::Opened::File(f)) =
        v.open(at, b"/dev/console", crate::fs::o::O_RDWR | crate::fs::o::O_NOCTTY, 0, 0, 0, 0)
    {
        v.fd_alloc(files, 0, f, false)?;
        for fd in [1, 2] {
            v.fd_dup3(files, 0, fd, false)?;
        }
    }
    if let Some(t) = k.tasks.get_mut(me) {
        t.files = files;
        t.fs = fs;
    }
    Ok(())
}

/// `copy_files` and `copy_fs` for a new child of `parent`: shared with
/// CLONE_FILES / CLONE_FS, copied otherwise. Kernel threads have none.
pub fn copy_files(k: &mut Kernel, parent: TaskId, child: TaskId, flags: u64) {
    let Some((files, fs)) = k.tasks.get(parent).map(|t| (t.files, t.fs)) else { return };
    let v = &mut k.vfs;
    let files = match files {
        0 => 0,
        f if flags & CLONE_FILES != 0 => {
            v.files_share(f);
            f
        }
        f => v.files_copy(f),
    };
    let fs = match fs {
        0 => 0,
        f if flags & CLONE_FS != 0 => {
            v.fs_share(f);
            f
        }
        f => v.fs_copy(f),
    };
    if let Some(c) = k.tasks.get_mut(child) {
        c.files = files;
        c.fs = fs;
    }
}

/// `exit_files` and `exit_fs`: the task lets go of its tables; the last
/// user of a table closes its files.
pub fn exit_files(k: &mut Kernel, me: TaskId) {
    let Some(t) = k.tasks.get_mut(me) else { return };
    let (files, fs) = (core::mem::take(&mut t.files), core::mem::take(&mut t.fs));
    let mut wake = Vec::new();
    if files != 0 {
        wake = k.vfs.files_put(files);
    }
    if fs != 0 {
        k.vfs.fs_put(fs);
    }
    wake_pipes(k, &wake);
}

/// `do_close_on_exec` for `me`.
pub fn close_on_exec(k: &mut Kernel, me: TaskId) {
    let files = k.tasks.get(me).map_or(0, |t| t.files);
    if files != 0 {
        let wake = k.vfs.close_on_exec(files);
        wake_pipes(k, &wake);
    }
}

/// Where `me`'s path walks start: its root, and its working directory
/// (or the root, for a task without an `fs_struct`), walked with its
/// filesystem credentials (fsuid, fsgid, groups).
pub fn at_cwd(k: &Kernel, me: TaskId) -> At {
    let t = k.tasks.get(me);
    let fs = t.map_or(0, |t| t.fs);
    let who = t.map_or(Who::ROOT, |t| Who::new(t.cred.fsuid, t.cred.fsgid, &t.cred.groups));
    let (root, dir) = match k.vfs.fs_structs.get(&fs) {
        Some(f) => (f.root, f.pwd),
        None => (k.vfs.root, k.vfs.root),
    };
    At { root, dir, who }
}

/// Brings a mounted procfs up to date with the task table (`fs/proc.rs`),
/// before a path walk or a read that may enter it: one entry per thread
/// group (kernel threads included, as Linux lists them), `self` for the
/// caller. Nothing to do without a procfs.
pub fn proc_refresh(k: &mut Kernel) {
    use crate::fs::proc::{ProcSnapshot, ProcTask};
    use crate::sched::TaskState;
    use crate::task::task_struct::ExitState;
    if !k.vfs.has_proc() {
        return;
    }
    let now = now_ns();
    let me = k.sched.current(crate::arch::aarch64::cpu::smp_processor_id());
    let self_pid = k.tasks.get(me).map_or(0, |t| t.tgid);
    let leaders: Vec<TaskId> = k.tasks.iter().filter(|t| t.pid > 0 && t.pid == t.tgid).map(|t| t.id).collect();
    let mut tasks = Vec::with_capacity(leaders.len());
    for id in leaders {
        let Some(t) = k.tasks.get(id) else { continue };
        let group: Vec<TaskId> = core::iter::once(id).chain(t.thread_group.iter().copied()).collect();
        let ppid = t.real_parent.and_then(|p| k.tasks.get(p)).map_or(0, |p| p.tgid);
        let state = if t.exit_state != ExitState::None {
            b'Z'
        } else {
            match k.sched.task(id).map(|s| s.state) {
                Some(TaskState::Running) => b'R',
                Some(TaskState::Uninterruptible) => b'D',
                Some(TaskState::Stopped) => b'T',
                _ => b'S',
            }
        };
        let (pid, comm, threads) = (t.pid, t.comm.clone(), group.len() as u32);
        let ns: u64 = group.iter().map(|&g| k.sched.task_sched_runtime(g, now)).sum();
        tasks.push(ProcTask { pid, ppid, comm, state, num_threads: threads, utime: ns / 10_000_000, uid: 0 });
    }
    let (total, free) = crate::arch::aarch64::memory::with_pages(|pa| (pa.totalram_pages(), pa.nr_free_pages()));
    let page_kb = (crate::mm::page::PAGE_SIZE / 1024) as u64;
    let snap = ProcSnapshot {
        tasks,
        self_pid,
        uptime_ns: now,
        mem_total_kb: total as u64 * page_kb,
        mem_free_kb: free as u64 * page_kb,
    };
    k.vfs.proc_refresh(&snap);
}
