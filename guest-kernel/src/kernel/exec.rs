//! `execve` of a static ELF program found through the VFS (Linux fs/exec.c
//! `do_execve` → fs/binfmt_elf.c `load_elf_binary`): a new address space
//! with the program's segments, a stack holding argc, argv, envp and the
//! auxiliary vector, the heap start (brk) above the bss; the old address
//! space is released only once the new one is complete.

use alloc::vec::Vec;

use crate::arch::aarch64::mm::{GlobalAcct, set_current_mm};
use crate::arch::aarch64::mmu::sync_icache_all;
use crate::arch::aarch64::pgtable::{UserPageTable, switch_ttbr0};
use crate::arch::aarch64::process;
use crate::binfmt_script;
use crate::elf::load_plan;
use alloc::borrow::Cow;

use crate::fs::inode::{FileData, InodeKind};
use crate::kernel::fault::LockedPages;
use crate::kernel::fork::{mm_config, mm_install, mm_release_child_tid, mmput};
use crate::kernel::lock;
use crate::mm::Errno;
use crate::mm::mm_struct::{MmStruct, PageOps, PageTable, PteProt, map, prot};
use crate::mm::page::{PAGE_SIZE, align_down};
use crate::sched::TaskId;

/// Size of the initial stack VMA (it grows on demand below).
pub const STACK_SIZE: usize = 128 * 1024;
const AT_NULL: u64 = 0;
const AT_PAGESZ: u64 = 6;
const AT_ENTRY: u64 = 9;
const AT_RANDOM: u64 = 25;

/// Maps zeroed pages over `[start, end)` with `prot`.
fn populate(pt: &mut UserPageTable, start: usize, end: usize, p: PteProt) -> Result<(), Errno> {
    let mut va = start;
    while va < end {
        if pt.lookup(va).is_none() {
            let pfn = LockedPages.alloc_user_page().ok_or(Errno::ENOMEM)?;
            if let Err(e) = pt.map(va, pfn, p) {
                LockedPages.put_page(pfn);
                return Err(e);
            }
        }
        va += PAGE_SIZE;
    }
    Ok(())
}

/// The initial stack image (argc, argv[], NULL, envp[] = NULL, auxv,
/// then the strings), for a stack ending at `top`. Returns (sp, bytes).
fn build_stack(top: usize, argv: &[&[u8]], entry: usize, random: u64) -> (usize, Vec<u8>) {
    let strings_len: usize = argv.iter().map(|a| a.len() + 1).sum::<usize>() + 16;
    let str_base = top - strings_len;
    let mut strs = Vec::new();
    let mut ptrs = Vec::new();
    for a in argv {
        ptrs.push((str_base + strs.len()) as u64);
        strs.extend_from_slice(a);
        strs.push(0);
    }
    let random_at = (str_base + strs.len()) as u64;
    strs.extend_from_slice(&random.to_le_bytes());
    strs.extend_from_slice(&(!random).to_le_bytes());
    strs.resize(strings_len, 0);
    let mut words: Vec<u64> = Vec::new();
    words.push(argv.len() as u64);
    words.extend_from_slice(&ptrs);
    words.push(0); // argv terminator
    words.push(0); // envp terminator
    for (k, v) in [(AT_PAGESZ, PAGE_SIZE as u64), (AT_ENTRY, entry as u64), (AT_RANDOM, random_at), (AT_NULL, 0)] {
        words.push(k);
        words.push(v);
    }
    let sp = (str_base - words.len() * 8) & !15;
    let mut img = Vec::with_capacity(top - sp);
    for w in words {
        img.extend_from_slice(&w.to_le_bytes());
    }
    img.resize(str_base - sp, 0);
    img.extend_from_slice(&strs);
    (sp, img)
}

/// An argument vector built here (an interpreter's).
type Argv = Vec<Vec<u8>>;

/// The file to load for `execve(path, argv)`: the program itself, or the
/// interpreter its `#!` line names (`binfmt_script`), followed through up
/// to [`binfmt_script::MAX_RECURSION`] rewrites (then ELOOP), with the
/// interpreter's argv (None: `argv` as given, no copy).
fn find_program(me: TaskId, path: &[u8], argv: &[&[u8]]) -> Result<(Cow<'static, [u8]>, Option<Argv>), Errno> {
    // The path and argv after the rewrites so far.
    let mut script: Option<(Vec<u8>, Argv)> = None;
    for _ in 0..=binfmt_script::MAX_RECURSION {
        let name = script.as_ref().map_or(path, |(p, _)| p.as_slice());
        let file = open_exec(me, name)?;
        let Some(line) = binfmt_script::parse(&file) else { return Ok((file, script.map(|(_, a)| a))) };
        let s = line.map_err(|_| Errno::ENOEXEC)?;
        let args: Vec<&[u8]> = match &script {
            Some((_, a)) => a.iter().map(Vec::as_slice).collect(),
            None => argv.to_vec(),
        };
        let new = binfmt_script::interpreter_argv(&s, name, &args).into_iter().map(<[u8]>::to_vec).collect();
        script = Some((s.interp, new));
    }
    Err(Errno::ELOOP)
}

/// `open_exec`: the contents of the program at `path`, looked up from
/// `me`'s working directory with symlinks followed (busybox's applets
/// are symlinks to it). Not a regular file, or no execute bit: EACCES.
/// The initramfs's files are used in place; a file written since is
/// copied (its data can change once the kernel lock is released).
fn open_exec(me: TaskId, path: &[u8]) -> Result<Cow<'static, [u8]>, Errno> {
    let k = lock();
    let at = super::fs::at_cwd(&k, me);
    let ino = k.vfs.lookup(at, path, true)?;
    let i = k.vfs.inode(ino);
    if i.kind() != InodeKind::Reg || i.mode & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(match &i.data {
        FileData::Static(s) => Cow::Borrowed(s),
        FileData::Owned(v) => Cow::Owned(v.clone()),
    })
}

/// `execve` for task `me` (the caller runs on its kernel stack): on
/// success its user frame starts the new program.
/// A `#!` script runs its interpreter instead (`binfmt_script`), up to
/// [`binfmt_script::MAX_RECURSION`] interpreters deep (then ELOOP).
pub fn kernel_execve(me: TaskId, path: &[u8], argv: &[&[u8]]) -> Result<(), Errno> {
    // The new address space is private to us until it is installed: it is
    // built without the kernel lock (and without its own locks).
    let cfg = mm_config(&mut lock());
    // comm is the name of the file execve was given, a script's included
    // (Linux: `kbasename(bprm->filename)`).
    let comm = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
    let comm = alloc::string::String::from_utf8_lossy(comm).into_owned();
    let (file, script_argv) = find_program(me, path, argv)?;
    let script_refs: Vec<&[u8]>;
    let argv = match &script_argv {
        Some(a) => {
            script_refs = a.iter().map(Vec::as_slice).collect();
            script_refs.as_slice()
        }
        None => argv,
    };
    let plan = load_plan(&file).map_err(|_| Errno::ENOEXEC)?;
    let mut mm = MmStruct::new(cfg);
    let mut pt = UserPageTable::new()?;
    let built = (|| -> Result<usize, Errno> {
        for m in &plan.mappings {
            let flags = map::MAP_PRIVATE | map::MAP_ANONYMOUS | map::MAP_FIXED;
            mm.mmap(&mut pt, &mut LockedPages, &mut GlobalAcct, m.start, m.end - m.start, m.prot, flags, None)?;
            let p = PteProt { read: true, write: m.prot & prot::PROT_WRITE != 0, exec: m.prot & prot::PROT_EXEC != 0 };
            populate(&mut pt, m.start, m.end, p)?;
        }
        for c in &plan.copies {
            pt.write_bytes(c.vaddr, &file[c.offset..c.offset + c.len])?;
        }
        mm.setup_stack(STACK_SIZE, &mut GlobalAcct)?;
        let top = mm.stack_top;
        let (sp, img) = build_stack(top, argv, plan.entry, cfg.seed);
        populate(&mut pt, align_down(sp, PAGE_SIZE), top, PteProt { read: true, write: true, exec: false })?;
        pt.write_bytes(sp, &img)?;
        mm.setup_brk(plan.end_of_bss);
        Ok(sp)
    })();
    let sp = match built {
        Ok(sp) => sp,
        Err(e) => {
            mm.exit_mmap(&mut pt, &mut LockedPages, &mut GlobalAcct);
            pt.destroy();
            return Err(e);
        }
    };
    // The new text must be visible to instruction fetch.
    sync_icache_all();
    // Past the point of no return: exec_mm_release (CLONE_CHILD_CLEARTID
    // of the old image) touches user memory, with no lock held.
    mm_release_child_tid();
    let mut k = lock();
    let old = k.tasks.get(me).and_then(|t| t.mm);
    let t = super::irq::now_ns();
    let k2 = &mut *k;
    k2.tasks.exec(&mut k2.sched, me, t);
    let h = k.tasks.get(me).and_then(|t| t.mm).expect("exec gives an mm");
    let new = mm_install(&mut k, h, mm, pt);
    switch_ttbr0(new.ttbr0());
    // This CPU's current address space, for faults; the old one's
    // reference goes once the kernel lock is released.
    let old_current = set_current_mm(Some(new));
    let last = old.and_then(|o| mmput(&mut k, o));
    if let Some(ts) = k.tasks.get_mut(me) {
        ts.comm = comm;
    }
    super::fs::close_on_exec(&mut k, me);
    process::tls_thread_flush();
    let frame = process::user_frame_of(&mut k, me);
    *frame = crate::arch::aarch64::trap::TrapFrame::default();
    frame.elr = plan.entry as u64;
    frame.sp = sp as u64;
    frame.spsr = crate::arch::aarch64::trap::SPSR_EL0T;
    drop(k);
    drop(old_current);
    // The old image's last user (`mmput` → `exit_mmap`), with no lock held.
    if let Some(m) = last {
        m.exit_mmap();
    }
    Ok(())
}
