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
use crate::fs::namei::At;
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
    let at = At { root: v.root, dir: v.root };
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
/// (or the root, for a task without an `fs_struct`).
pub fn at_cwd(k: &Kernel, me: TaskId) -> At {
    let fs = k.tasks.get(me).map_or(0, |t| t.fs);
    match k.vfs.fs_structs.get(&fs) {
        Some(f) => At { root: f.root, dir: f.pwd },
        None => At { root: k.vfs.root, dir: k.vfs.root },
    }
}
