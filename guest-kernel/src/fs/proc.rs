//! procfs (Linux fs/proc/: `proc_pid_readdir`, `proc_pid_stat` in
//! fs/proc/array.c, `proc_self`, `uptime_proc_show`): the processes as
//! files, for `ps` and friends. Linux builds each file when it is read;
//! here the tree of a mounted procfs is brought up to date from a
//! snapshot of the task table whenever a path walk or a read enters it
//! (`Vfs::proc_refresh`, called by the glue with the kernel lock held):
//! one directory per thread group, named by its pid, holding `stat`,
//! `status`, `cmdline` and `comm`; `self`, a symlink to the caller's own;
//! `uptime` and `meminfo`. A file that is open when its process goes
//! keeps its last contents, as any unlinked file does.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Vfs;
use super::inode::{Ino, S_IFREG};
use crate::mm::Errno;

/// What procfs shows of one thread group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcTask {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    /// `R`, `S`, `D`, `T` or `Z`.
    pub state: u8,
    pub num_threads: u32,
    /// CPU time in clock ticks (`USER_HZ`, 100 a second).
    pub utime: u64,
    pub uid: u32,
}

/// The whole system as procfs shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcSnapshot {
    pub tasks: Vec<ProcTask>,
    /// The caller's thread group (`/proc/self`).
    pub self_pid: i32,
    pub uptime_ns: u64,
    pub mem_total_kb: u64,
    pub mem_free_kb: u64,
}

/// `/proc/PID/stat` (fs/proc/array.c `do_task_stat`): 52 fields, those not
/// kept here 0.
pub fn stat_line(t: &ProcTask) -> String {
    let mut s = format!(
        "{} ({}) {} {} {} {} 0 -1 4194560 0 0 0 0 {} 0 0 0 20 0 {} 0 0 0 0",
        t.pid, t.comm, t.state as char, t.ppid, t.pid, t.pid, t.utime, t.num_threads
    );
    for _ in 25..=52 {
        s.push_str(" 0");
    }
    s.push('\n');
    s
}

/// `/proc/PID/status` (`proc_pid_status`): the first lines.
pub fn status_text(t: &ProcTask) -> String {
    let state = match t.state {
        b'R' => "R (running)",
        b'S' => "S (sleeping)",
        b'D' => "D (disk sleep)",
        b'T' => "T (stopped)",
        _ => "Z (zombie)",
    };
    format!(
        "Name:\t{}\nState:\t{state}\nTgid:\t{}\nPid:\t{}\nPPid:\t{}\nUid:\t{u}\t{u}\t{u}\t{u}\nGid:\t0\t0\t0\t0\nThreads:\t{}\n",
        t.comm,
        t.pid,
        t.pid,
        t.ppid,
        t.num_threads,
        u = t.uid
    )
}

/// `/proc/uptime`.
pub fn uptime_text(ns: u64) -> String {
    let cs = ns / 10_000_000;
    format!("{}.{:02} 0.00\n", cs / 100, cs % 100)
}

impl Vfs {
    /// `mount -t proc` on the directory `target`.
    pub fn mount_proc(&mut self, target: Ino) -> Result<Ino, Errno> {
        let root = self.mount_tmpfs(target, usize::MAX / 4)?;
        self.chmod(root, 0o555);
        let sb = self.inode(root).sb;
        self.supers.get_mut(&sb).expect("superblock").proc = true;
        Ok(root)
    }

    /// Whether any procfs is mounted (only then is a refresh needed).
    pub fn has_proc(&self) -> bool {
        self.supers.values().any(|s| s.proc)
    }

    /// Sets a procfs file `name` in `dir` to `text` (made if missing).
    fn proc_file(&mut self, dir: Ino, name: &[u8], text: &[u8]) {
        let ino = match self.dcache.d_lookup(dir, name) {
            Some(i) => i,
            None => match self.create(dir, name, S_IFREG | 0o444, 0, 0, 0) {
                Ok(i) => i,
                Err(_) => return,
            },
        };
        if self.inode(ino).data.as_slice() != text {
            let _ = self.truncate(ino, 0);
            let _ = self.write_at(ino, 0, text);
        }
    }

    /// Removes `name` from `dir`, and all below it.
    fn remove_tree(&mut self, dir: Ino, name: &[u8]) {
        let Some(ino) = self.dcache.d_lookup(dir, name) else { return };
        if self.inode(ino).is_dir() {
            let children: Vec<Vec<u8>> = self.dcache.children(ino, 0).map(|(n, _)| n.to_vec()).collect();
            for c in children {
                self.remove_tree(ino, &c);
            }
            let _ = self.rmdir(dir, name);
        } else {
            let _ = self.unlink(dir, name);
        }
    }

    /// Brings every mounted procfs up to date with `snap`.
    pub fn proc_refresh(&mut self, snap: &ProcSnapshot) {
        let roots: Vec<Ino> = self.supers.values().filter(|s| s.proc).map(|s| s.root).collect();
        for root in roots {
            let pids: Vec<Vec<u8>> = snap.tasks.iter().map(|t| format!("{}", t.pid).into_bytes()).collect();
            let stale: Vec<Vec<u8>> = self
                .dcache
                .children(root, 0)
                .map(|(n, _)| n.to_vec())
                .filter(|n| n.iter().all(u8::is_ascii_digit) && !pids.contains(n))
                .collect();
            for n in stale {
                self.remove_tree(root, &n);
            }
            for (t, name) in snap.tasks.iter().zip(&pids) {
                let Ok(dir) = self.mkdir_p(root, name, 0o555) else { continue };
                self.chown(dir, t.uid, 0);
                self.proc_file(dir, b"stat", stat_line(t).as_bytes());
                self.proc_file(dir, b"status", status_text(t).as_bytes());
                let mut cmdline = t.comm.clone().into_bytes();
                cmdline.push(0);
                self.proc_file(dir, b"cmdline", &cmdline);
                self.proc_file(dir, b"comm", format!("{}\n", t.comm).as_bytes());
            }
            let me = format!("{}", snap.self_pid).into_bytes();
            let link = self.dcache.d_lookup(root, b"self");
            if link.is_none_or(|l| self.inode(l).data.as_slice() != me.as_slice()) {
                if link.is_some() {
                    let _ = self.unlink(root, b"self");
                }
                let _ = self.symlink(root, b"self", &me, 0, 0);
            }
            self.proc_file(root, b"uptime", uptime_text(snap.uptime_ns).as_bytes());
            let meminfo = format!(
                "MemTotal:       {:8} kB\nMemFree:        {:8} kB\nMemAvailable:   {:8} kB\n",
                snap.mem_total_kb, snap.mem_free_kb, snap.mem_free_kb
            );
            self.proc_file(root, b"meminfo", meminfo.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inode::S_IFDIR;
    use crate::fs::namei::At;
    use crate::fs::testing::vfs;

    fn task(pid: i32, comm: &str) -> ProcTask {
        ProcTask { pid, ppid: 1, comm: comm.into(), state: b'S', num_threads: 1, utime: 7, uid: 0 }
    }

    #[test]
    fn the_tree_follows_the_task_table() {
        let mut v = vfs();
        let r = v.root;
        let p = v.create(r, b"proc", S_IFDIR | 0o555, 0, 0, 0).unwrap();
        v.mount_proc(p).unwrap();
        assert!(v.has_proc());
        let at = At::root(r, r);
        let mut snap =
            ProcSnapshot { tasks: alloc::vec![task(1, "init"), task(7, "sh")], self_pid: 7, ..Default::default() };
        v.proc_refresh(&snap);
        let stat = v.lookup(at, b"/proc/7/stat", true).unwrap();
        let text = String::from_utf8(v.inode(stat).data.as_slice().to_vec()).unwrap();
        assert!(text.starts_with("7 (sh) S 1 7 7 0 -1"), "{text}");
        assert_eq!(text.split_whitespace().count(), 52);
        assert_eq!(v.lookup(at, b"/proc/self/comm", true), v.lookup(at, b"/proc/7/comm", true));
        v.iget(stat); // an open file of a process that goes
        snap.tasks.remove(1);
        snap.self_pid = 1;
        v.proc_refresh(&snap);
        assert_eq!(v.lookup(at, b"/proc/7", true), Err(Errno::ENOENT));
        assert!(v.inode(stat).data.as_slice().starts_with(b"7 (sh)"), "kept while open");
        v.iput(stat);
        assert_eq!(v.readlink(v.lookup(at, b"/proc/self", false).unwrap()), Ok(b"1".as_slice()));
        assert!(v.lookup(at, b"/proc/uptime", true).is_ok());
    }
}
