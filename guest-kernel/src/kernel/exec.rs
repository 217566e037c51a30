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

/// `__kernel_rt_sigreturn` (arch/arm64/kernel/vdso/sigreturn.S):
/// `mov x8, #__NR_rt_sigreturn; svc #0`.
const SIGTRAMP: [u8; 8] = {
    let mov = (0xd280_0008u32 | ((crate::syscall::nr::RT_SIGRETURN as u32) << 5)).to_le_bytes();
    let svc = 0xd400_0001u32.to_le_bytes();
    [mov[0], mov[1], mov[2], mov[3], svc[0], svc[1], svc[2], svc[3]]
};

/// Maps the `rt_sigreturn` trampoline page into an address space (its
/// `mmap_lock` and page-table lock held); returns its address. Linux maps
/// it with the vDSO at every exec; here it is mapped the first time a
/// handler without SA_RESTORER runs (`kernel/signal.rs`), so that fork and
/// exit of the many programs that never catch a signal do not pay for one
/// more VMA.
pub(crate) fn map_sigtramp(mm: &mut MmStruct, pt: &mut UserPageTable) -> Result<usize, Errno> {
    let flags = map::MAP_PRIVATE | map::MAP_ANONYMOUS;
    let at =
        mm.mmap(pt, &mut LockedPages, &mut GlobalAcct, 0, PAGE_SIZE, prot::PROT_READ | prot::PROT_EXEC, flags, None)?;
    populate(pt, at, at + PAGE_SIZE, PteProt { read: true, write: false, exec: true })?;
    pt.write_bytes(at, &SIGTRAMP)?;
    sync_icache_all();
    Ok(at)
}

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

/// What the auxiliary vector tells a program (`create_elf_tables`).
struct Aux<'a> {
    entry: usize,
    phdr: usize,
    phnum: usize,
    /// uid, euid, gid, egid.
    ids: [u32; 4],
    random: u64,
    /// The path execve was given (AT_EXECFN).
    execfn: &'a [u8],
}

const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;
const AT_MINSIGSTKSZ: u64 = 51;
/// `HWCAP_FP | HWCAP_ASIMD`: what every core this kernel runs on has
/// (the rest of ID_AA64ISAR0 is not reported yet).
const HWCAP: u64 = 0b11;

/// The initial stack image for a stack ending at `top` (Linux
/// fs/binfmt_elf.c `create_elf_tables`): argc, argv[], NULL, envp[],
/// NULL, the auxiliary vector, then the strings (arguments, environment,
/// AT_EXECFN, AT_PLATFORM) and AT_RANDOM's 16 bytes. Returns (sp, bytes).
fn build_stack(top: usize, argv: &[&[u8]], envp: &[&[u8]], aux: &Aux) -> (usize, Vec<u8>) {
    let mut strs = Vec::new();
    let mut put = |s: &[u8]| {
        let at = strs.len();
        strs.extend_from_slice(s);
        strs.push(0);
        at
    };
    let argv_at: Vec<usize> = argv.iter().map(|a| put(a)).collect();
    let envp_at: Vec<usize> = envp.iter().map(|e| put(e)).collect();
    let execfn_at = put(aux.execfn);
    let platform_at = put(b"aarch64");
    let random_at = strs.len();
    strs.extend_from_slice(&aux.random.to_le_bytes());
    strs.extend_from_slice(&(!aux.random).to_le_bytes());
    let strings_len = strs.len().next_multiple_of(16);
    strs.resize(strings_len, 0);
    let str_base = top - strings_len;
    let addr = |off: usize| (str_base + off) as u64;
    let mut words: Vec<u64> = Vec::new();
    words.push(argv.len() as u64);
    words.extend(argv_at.iter().map(|&o| addr(o)));
    words.push(0);
    words.extend(envp_at.iter().map(|&o| addr(o)));
    words.push(0);
    let [uid, euid, gid, egid] = aux.ids.map(u64::from);
    let auxv = [
        (AT_HWCAP, HWCAP),
        (AT_PAGESZ, PAGE_SIZE as u64),
        (AT_CLKTCK, 100),
        (AT_PHDR, aux.phdr as u64),
        (AT_PHENT, 56),
        (AT_PHNUM, aux.phnum as u64),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, aux.entry as u64),
        (AT_UID, uid),
        (AT_EUID, euid),
        (AT_GID, gid),
        (AT_EGID, egid),
        (AT_SECURE, 0),
        (AT_RANDOM, addr(random_at)),
        (AT_HWCAP2, 0),
        (AT_EXECFN, addr(execfn_at)),
        (AT_PLATFORM, addr(platform_at)),
        (AT_MINSIGSTKSZ, (crate::task::sigframe::FRAME_SIZE + 16) as u64),
        (AT_NULL, 0),
    ];
    for (k, v) in auxv {
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
    if i.kind() != InodeKind::Reg {
        return Err(Errno::EACCES);
    }
    // may_open(MAY_EXEC): the caller's x bit (root: anyone's).
    k.vfs.permission(ino, at.who, crate::fs::namei::MAY_EXEC)?;
    Ok(match &i.data {
        FileData::Static(s) => Cow::Borrowed(s),
        FileData::Owned(v) => Cow::Owned(v.clone()),
    })
}

/// `execve` for task `me` (the caller runs on its kernel stack): on
/// success its user frame starts the new program.
/// A `#!` script runs its interpreter instead (`binfmt_script`), up to
/// [`binfmt_script::MAX_RECURSION`] interpreters deep (then ELOOP).
pub fn kernel_execve(me: TaskId, path: &[u8], argv: &[&[u8]], envp: &[&[u8]]) -> Result<(), Errno> {
    // The new address space is private to us until it is installed: it is
    // built without the kernel lock (and without its own locks).
    let (cfg, ids) = {
        let mut k = lock();
        let c = &k.tasks.get(me).expect("current task").cred;
        let ids = [c.uid, c.euid, c.gid, c.egid];
        (mm_config(&mut k), ids)
    };
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
        let aux = Aux { entry: plan.entry, phdr: plan.phdr, phnum: plan.phnum, ids, random: cfg.seed, execfn: path };
        // The image decides the stack's first size: 128 KiB, or more
        // for large arguments (the VMA grows on demand below it).
        let strings: usize = argv.iter().chain(envp).map(|a| a.len() + 1).sum();
        let image = strings + 8 * (argv.len() + envp.len()) + 1024;
        mm.setup_stack(STACK_SIZE.max((image + STACK_SIZE / 2).next_multiple_of(PAGE_SIZE)), &mut GlobalAcct)?;
        let top = mm.stack_top;
        let (sp, img) = build_stack(top, argv, envp, &aux);
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
        ts.sigtramp = 0;
    }
    k.tasks.flush_signal_handlers(me);
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
