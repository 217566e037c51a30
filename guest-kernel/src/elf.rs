//! The ELF loader's plan for a static aarch64 executable (Linux
//! fs/binfmt_elf.c `load_elf_binary`, static case): which pages to map
//! with which permissions, what to copy into them, where the program
//! starts and where its heap (brk) begins. Parsing uses `xmas-elf`; the
//! mapping itself is done by the exec glue through `mm`.
//!
//! Segments whose page ranges overlap (lld puts .rodata right after .text
//! in the same page) get one mapping with the union of their permissions,
//! as the kernel would map the shared file page for both.

use alloc::vec::Vec;
use xmas_elf::ElfFile;
use xmas_elf::header::{Class, Machine, Type};
use xmas_elf::program::{ProgramHeader, Type as PType};

use crate::mm::mm_struct::{MMAP_MIN_ADDR, TASK_SIZE, prot};
use crate::mm::page::{PAGE_SIZE, align_down, align_up};

/// A run of pages mapped with one protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    /// PROT_* bits.
    pub prot: u32,
}

/// Bytes of the file that go to a virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    pub vaddr: usize,
    pub offset: usize,
    pub len: usize,
}

/// What `exec` must do to load the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    pub entry: usize,
    pub mappings: Vec<Mapping>,
    pub copies: Vec<Copy>,
    /// End of the highest segment (bss included): the heap starts above.
    pub end_of_bss: usize,
}

/// Why a file is not a program we run (execve's ENOEXEC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    Parse(&'static str),
    NotAarch64Exec,
    BadSegment,
    NoSegments,
}

/// Builds the load plan of a static, non-PIE aarch64 ELF64 executable.
pub fn load_plan(bytes: &[u8]) -> Result<LoadPlan, ElfError> {
    // xmas-elf reads headers in place and needs them 8-byte aligned; a
    // cpio archive aligns file data to 4 bytes only.
    if !(bytes.as_ptr() as usize).is_multiple_of(8) {
        let mut words = alloc::vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `words` has at least `bytes.len()` bytes; u64 has no
        // invalid bit patterns.
        let aligned = unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
        aligned.copy_from_slice(bytes);
        return load_plan(aligned);
    }
    let elf = ElfFile::new(bytes).map_err(ElfError::Parse)?;
    let h = &elf.header;
    if h.pt1.class() != Class::SixtyFour
        || h.pt2.machine().as_machine() != Machine::AArch64
        || h.pt2.type_().as_type() != Type::Executable
    {
        return Err(ElfError::NotAarch64Exec);
    }
    let mut pages: Vec<(usize, u32)> = Vec::new();
    let mut copies = Vec::new();
    let mut end_of_bss = 0;
    for ph in elf.program_iter() {
        let ProgramHeader::Ph64(p) = ph else { return Err(ElfError::NotAarch64Exec) };
        if p.get_type() != Ok(PType::Load) || p.mem_size == 0 {
            continue;
        }
        let (va, memsz, filesz, off) =
            (p.virtual_addr as usize, p.mem_size as usize, p.file_size as usize, p.offset as usize);
        let end = va.checked_add(memsz).ok_or(ElfError::BadSegment)?;
        if filesz > memsz
            || va < MMAP_MIN_ADDR
            || end > TASK_SIZE
            || off.checked_add(filesz).is_none_or(|e| e > bytes.len())
        {
            return Err(ElfError::BadSegment);
        }
        let f = p.flags;
        let prot = (if f.is_read() { prot::PROT_READ } else { 0 })
            | (if f.is_write() { prot::PROT_WRITE } else { 0 })
            | (if f.is_execute() { prot::PROT_EXEC } else { 0 });
        let mut pg = align_down(va, PAGE_SIZE);
        while pg < end {
            match pages.iter_mut().find(|(a, _)| *a == pg) {
                Some((_, p)) => *p |= prot,
                None => pages.push((pg, prot)),
            }
            pg += PAGE_SIZE;
        }
        if filesz > 0 {
            copies.push(Copy { vaddr: va, offset: off, len: filesz });
        }
        end_of_bss = end_of_bss.max(end);
    }
    if pages.is_empty() {
        return Err(ElfError::NoSegments);
    }
    pages.sort_unstable();
    let mut mappings: Vec<Mapping> = Vec::new();
    for (pg, prot) in pages {
        match mappings.last_mut() {
            Some(m) if m.end == pg && m.prot == prot => m.end += PAGE_SIZE,
            _ => mappings.push(Mapping { start: pg, end: pg + PAGE_SIZE, prot }),
        }
    }
    let entry = h.pt2.entry_point() as usize;
    if !mappings.iter().any(|m| m.prot & prot::PROT_EXEC != 0 && (m.start..m.end).contains(&entry)) {
        return Err(ElfError::BadSegment);
    }
    Ok(LoadPlan { entry, mappings, copies, end_of_bss: align_up(end_of_bss, 1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 aarch64 executable with the given (vaddr, filesz,
    /// memsz, flags) segments; file data is zeros.
    fn elf(entry: u64, segs: &[(u64, u64, u64, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&entry.to_le_bytes());
        b.extend_from_slice(&64u64.to_le_bytes()); // phoff
        b.extend_from_slice(&0u64.to_le_bytes()); // shoff
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&64u16.to_le_bytes());
        b.extend_from_slice(&56u16.to_le_bytes());
        b.extend_from_slice(&(segs.len() as u16).to_le_bytes());
        b.extend_from_slice(&64u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        let data_off = 64 + 56 * segs.len() as u64;
        for &(va, filesz, memsz, flags) in segs {
            b.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&data_off.to_le_bytes());
            b.extend_from_slice(&va.to_le_bytes());
            b.extend_from_slice(&va.to_le_bytes());
            b.extend_from_slice(&filesz.to_le_bytes());
            b.extend_from_slice(&memsz.to_le_bytes());
            b.extend_from_slice(&0x1000u64.to_le_bytes());
        }
        b.resize(b.len() + 0x3000, 0);
        b
    }

    const R: u32 = 4;
    const W: u32 = 2;
    const X: u32 = 1;

    #[test]
    fn shared_pages_get_the_union_of_permissions() {
        let f = elf(
            0x40_0000,
            &[(0x40_0000, 0x1b78, 0x1b78, R | X), (0x40_1b80, 0x20e, 0x20e, R), (0x40_3000, 0x10, 0x2000, R | W)],
        );
        let p = load_plan(&f).unwrap();
        assert_eq!(p.entry, 0x40_0000);
        assert_eq!(
            p.mappings,
            [
                Mapping { start: 0x40_0000, end: 0x40_2000, prot: prot::PROT_READ | prot::PROT_EXEC },
                Mapping { start: 0x40_3000, end: 0x40_5000, prot: prot::PROT_READ | prot::PROT_WRITE },
            ]
        );
        assert_eq!(p.copies.len(), 3);
        assert_eq!(p.end_of_bss, 0x40_5000);
    }

    #[test]
    fn unaligned_files_load_too() {
        let f = elf(0x40_0000, &[(0x40_0000, 0x10, 0x10, R | X)]);
        let mut g = alloc::vec![0u8; 4];
        g.extend_from_slice(&f);
        assert_eq!(load_plan(&g[4..]), load_plan(&f));
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(load_plan(b"not an elf").is_err());
        assert_eq!(load_plan(&elf(0x40_0000, &[])), Err(ElfError::NoSegments));
        // Entry outside any executable mapping.
        assert_eq!(load_plan(&elf(0x50_0000, &[(0x40_0000, 0x10, 0x10, R | X)])), Err(ElfError::BadSegment));
        // filesz > memsz, segment below mmap_min_addr, past TASK_SIZE, data past EOF.
        assert_eq!(load_plan(&elf(0x40_0000, &[(0x40_0000, 0x20, 0x10, R | X)])), Err(ElfError::BadSegment));
        assert_eq!(load_plan(&elf(0x1000, &[(0x1000, 0x10, 0x10, R | X)])), Err(ElfError::BadSegment));
        assert_eq!(load_plan(&elf(0x40_0000, &[(u64::MAX - 0x100, 0x10, 0x1000, R | X)])), Err(ElfError::BadSegment));
        assert_eq!(load_plan(&elf(0x40_0000, &[(0x40_0000, 0x10_0000, 0x10_0000, R | X)])), Err(ElfError::BadSegment));
    }
}
