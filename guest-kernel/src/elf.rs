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
use xmas_elf::program::{ProgramHeader, ProgramHeader64, Type as PType};

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
    /// Where the program header table is in memory, for AT_PHDR (inside
    /// the PT_LOAD segment whose file bytes hold it; 0 if none does), and
    /// its entry count (AT_PHNUM).
    pub phdr: usize,
    pub phnum: usize,
}

/// Why a file is not a program we run (execve's ENOEXEC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    Parse(&'static str),
    NotAarch64Exec,
    BadSegment,
    NoSegments,
}

/// A minimal static ELF64 aarch64 executable: header, one PT_LOAD per
/// `(vaddr, filesz, memsz, flags)` segment (all at the same file offset),
/// then `data` zero bytes. For tests and fuzz seeds.
pub fn minimal_elf(entry: u64, segs: &[(u64, u64, u64, u32)], data: usize) -> Vec<u8> {
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
    b.resize(b.len() + data, 0);
    b
}

/// Builds the load plan of a static, non-PIE aarch64 ELF64 executable.
pub fn load_plan(bytes: &[u8]) -> Result<LoadPlan, ElfError> {
    // xmas-elf reads headers in place and needs them 8-byte aligned; a
    // cpio archive aligns file data to 4 bytes only. It reads nothing but
    // the ELF header and the program header table, so only those are
    // copied to an aligned buffer (e_phoff and e_phnum read byte by byte),
    // not the whole file: copying a 22 KiB program from a 4-aligned source
    // cost exec some 66 k instructions.
    if !(bytes.as_ptr() as usize).is_multiple_of(8) {
        let field = |at: usize, n: usize| {
            bytes.get(at..at + n).map_or(0, |b| b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
        };
        let table_end = field(32, 8).saturating_add(field(56, 2) * size_of::<ProgramHeader64>() as u64);
        let len = usize::try_from(table_end.max(64)).unwrap_or(usize::MAX).min(bytes.len());
        // A copy at an 8-aligned offset inside a buffer 7 bytes longer.
        let mut buf = alloc::vec![0u8; len + 7];
        let skip = (buf.as_ptr() as usize).wrapping_neg() % 8;
        let aligned = &mut buf[skip..skip + len];
        aligned.copy_from_slice(&bytes[..len]);
        return plan(aligned, bytes.len());
    }
    plan(bytes, bytes.len())
}

/// [`load_plan`] from `headers`, 8-aligned, which start the file and hold
/// at least its ELF header and program header table when the file does;
/// `file_len` is the whole file's length, for the segments' bounds.
fn plan(headers: &[u8], file_len: usize) -> Result<LoadPlan, ElfError> {
    let bytes = headers;
    let elf = ElfFile::new(bytes).map_err(ElfError::Parse)?;
    let h = &elf.header;
    if h.pt1.class() != Class::SixtyFour
        || h.pt2.machine().as_machine() != Machine::AArch64
        || h.pt2.type_().as_type() != Type::Executable
    {
        return Err(ElfError::NotAarch64Exec);
    }
    // xmas-elf slices and casts the program header table without checking
    // it against the file (an out-of-range, short or misaligned entry
    // panics), so check it here, as Linux's load_elf_phdrs does.
    let (phoff, phnum, phentsize) = (h.pt2.ph_offset(), h.pt2.ph_count(), h.pt2.ph_entry_size());
    let table_end = (phoff as usize).checked_add(usize::from(phnum) * size_of::<ProgramHeader64>());
    if usize::from(phentsize) != size_of::<ProgramHeader64>()
        || !phoff.is_multiple_of(8)
        || table_end.is_none_or(|end| end > bytes.len())
    {
        return Err(ElfError::Parse("program header table is malformed or lies outside the file"));
    }
    // Each segment's page range and protection, as sweep events: the
    // mappings are the union of the ranges, each page with the union of
    // the protections of the segments that touch it. Ranges, not pages: a
    // segment may span gigabytes (a large bss), and a per-page list would
    // make exec take minutes.
    let mut events: Vec<(usize, bool, u32)> = Vec::new();
    let mut copies = Vec::new();
    let mut end_of_bss = 0;
    let mut phdr = 0;
    for ph in elf.program_iter() {
        let ProgramHeader::Ph64(p) = ph else { return Err(ElfError::NotAarch64Exec) };
        if p.get_type() != Ok(PType::Load) || p.mem_size == 0 {
            continue;
        }
        let (va, memsz, filesz, off) =
            (p.virtual_addr as usize, p.mem_size as usize, p.file_size as usize, p.offset as usize);
        let end = va.checked_add(memsz).ok_or(ElfError::BadSegment)?;
        // A segment with nothing in the file (a bss-only PT_LOAD) may give
        // any offset, even past the end of the file: Linux maps no file
        // pages for it and accepts it, and the usual linkers write such
        // segments.
        if filesz > memsz
            || va < MMAP_MIN_ADDR
            || end > TASK_SIZE
            || (filesz > 0 && off.checked_add(filesz).is_none_or(|e| e > file_len))
        {
            return Err(ElfError::BadSegment);
        }
        let f = p.flags;
        let prot = (if f.is_read() { prot::PROT_READ } else { 0 })
            | (if f.is_write() { prot::PROT_WRITE } else { 0 })
            | (if f.is_execute() { prot::PROT_EXEC } else { 0 });
        // `end` <= TASK_SIZE, so rounding up cannot overflow.
        events.push((align_down(va, PAGE_SIZE), true, prot));
        events.push((align_up(end, PAGE_SIZE), false, prot));
        if filesz > 0 {
            copies.push(Copy { vaddr: va, offset: off, len: filesz });
            // The table lies in this segment's file bytes (Linux: e_phoff
            // relative to the first load segment).
            let table = usize::from(phnum) * size_of::<ProgramHeader64>();
            if phdr == 0 && (phoff as usize) >= off && phoff as usize + table <= off + filesz {
                phdr = va + (phoff as usize - off);
            }
        }
        end_of_bss = end_of_bss.max(end);
    }
    if events.is_empty() {
        return Err(ElfError::NoSegments);
    }
    events.sort_unstable();
    // Sweep: how many segments cover the current position, and with each
    // protection bit (PROT_READ, PROT_WRITE, PROT_EXEC are bits 0-2).
    let mut covering = 0usize;
    let mut with_bit = [0usize; 3];
    let mut mappings: Vec<Mapping> = Vec::new();
    for (i, &(at, start, prot)) in events.iter().enumerate() {
        for (bit, count) in with_bit.iter_mut().enumerate() {
            if prot & (1 << bit) != 0 {
                if start { *count += 1 } else { *count -= 1 }
            }
        }
        if start {
            covering += 1
        } else {
            covering -= 1
        }
        let next = events.get(i + 1).map_or(at, |e| e.0);
        if covering == 0 || next == at {
            continue;
        }
        let prot = with_bit.iter().enumerate().fold(0, |p, (bit, &n)| if n > 0 { p | 1 << bit } else { p });
        match mappings.last_mut() {
            Some(m) if m.end == at && m.prot == prot => m.end = next,
            _ => mappings.push(Mapping { start: at, end: next, prot }),
        }
    }
    let entry = h.pt2.entry_point() as usize;
    if !mappings.iter().any(|m| m.prot & prot::PROT_EXEC != 0 && (m.start..m.end).contains(&entry)) {
        return Err(ElfError::BadSegment);
    }
    Ok(LoadPlan { entry, mappings, copies, end_of_bss: align_up(end_of_bss, 1), phdr, phnum: usize::from(phnum) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_headers_are_found_in_the_segment_that_holds_them() {
        // minimal_elf's segment starts after the headers: AT_PHDR is 0, as
        // Linux 6.1 gives for such a file.
        let mut f = minimal_elf(0x40_0010, &[(0x40_0000, 0x100, 0x100, 5)], 0x100);
        let p = load_plan(&f).unwrap();
        assert_eq!((p.phdr, p.phnum), (0, 1));
        // From file offset 0 (p_offset at 64 + 8), the headers at 64 are
        // mapped at vaddr + 64.
        f[72..80].copy_from_slice(&0u64.to_le_bytes());
        let p = load_plan(&f).unwrap();
        assert_eq!((p.phdr, p.phnum), (0x40_0040, 1));
    }

    /// A minimal ELF64 aarch64 executable with the given (vaddr, filesz,
    /// memsz, flags) segments; file data is zeros.
    fn elf(entry: u64, segs: &[(u64, u64, u64, u32)]) -> Vec<u8> {
        minimal_elf(entry, segs, 0x3000)
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
        // Only the headers are copied to align them: the segments are
        // still checked against the whole file, and a table past its end
        // is still refused.
        let unaligned = |f: &[u8]| {
            let mut g = alloc::vec![0u8; 4];
            g.extend_from_slice(f);
            load_plan(&g[4..])
        };
        let past_eof = elf(0x40_0000, &[(0x40_0000, 0x10_0000, 0x10_0000, R | X)]);
        assert_eq!(unaligned(&past_eof), Err(ElfError::BadSegment));
        let mut far = f.clone();
        far[0x20..0x28].copy_from_slice(&0x10_0000u64.to_le_bytes());
        assert!(matches!(unaligned(&far), Err(ElfError::Parse(_))));
        assert!(unaligned(b"not an elf").is_err());
    }

    /// Found by fuzzing (ci/fuzz, target `elf`): the plan was built page
    /// by page with a linear search per page, so a segment of a few GiB
    /// (a large bss, or any memsz up to TASK_SIZE) made exec run for hours.
    #[test]
    fn huge_segments_are_planned_by_range() {
        let f = elf(0x40_0000, &[(0x40_0000, 0x10, 0x10, R | X), (0x40_1000, 0x10, 1 << 30, R | W)]);
        let p = load_plan(&f).unwrap();
        assert_eq!(
            p.mappings,
            [
                Mapping { start: 0x40_0000, end: 0x40_1000, prot: prot::PROT_READ | prot::PROT_EXEC },
                Mapping { start: 0x40_1000, end: 0x40_1000 + (1 << 30), prot: prot::PROT_READ | prot::PROT_WRITE },
            ]
        );
        assert_eq!(p.end_of_bss, 0x40_1000 + (1 << 30));
        let f = elf(0x40_0000, &[(0x40_0000, 0x10, (TASK_SIZE - 0x40_0000) as u64, R | X)]);
        let p = load_plan(&f).unwrap();
        assert_eq!(p.mappings, [Mapping { start: 0x40_0000, end: TASK_SIZE, prot: prot::PROT_READ | prot::PROT_EXEC }]);
        // Nested and touching segments: the union, split where the
        // protection changes, merged where it does not.
        let f = elf(
            0x40_1800,
            &[(0x40_0000, 0x10, 0x4000, R), (0x40_1800, 0x10, 0x1000, R | X), (0x40_4000, 0x10, 0x1000, R)],
        );
        let p = load_plan(&f).unwrap();
        assert_eq!(
            p.mappings,
            [
                Mapping { start: 0x40_0000, end: 0x40_1000, prot: prot::PROT_READ },
                Mapping { start: 0x40_1000, end: 0x40_3000, prot: prot::PROT_READ | prot::PROT_EXEC },
                Mapping { start: 0x40_3000, end: 0x40_5000, prot: prot::PROT_READ },
            ]
        );
    }

    /// Found by fuzzing (ci/fuzz, target `elf`): a program header table
    /// past the end of the file, with entries shorter than a
    /// `ProgramHeader64` or misaligned made xmas-elf panic (in the guest
    /// kernel, an execve of such a file panicked the kernel).
    #[test]
    fn bad_program_header_tables_are_refused() {
        let good = elf(0x40_0000, &[(0x40_0000, 0x10, 0x10, R | X)]);
        let with = |at: usize, bytes: &[u8]| {
            let mut f = good.clone();
            f[at..at + bytes.len()].copy_from_slice(bytes);
            load_plan(&f)
        };
        assert!(load_plan(&good).is_ok());
        // e_phoff (0x20) past the end; e_phnum (0x38) too large.
        assert!(matches!(with(0x20, &0x10_0000u64.to_le_bytes()), Err(ElfError::Parse(_))));
        assert!(matches!(with(0x20, &u64::MAX.to_le_bytes()), Err(ElfError::Parse(_))));
        assert!(matches!(with(0x38, &0xffffu16.to_le_bytes()), Err(ElfError::Parse(_))));
        // e_phentsize (0x36) shorter than an entry; e_phoff misaligned.
        assert!(matches!(with(0x36, &8u16.to_le_bytes()), Err(ElfError::Parse(_))));
        assert!(matches!(with(0x20, &0x41u64.to_le_bytes()), Err(ElfError::Parse(_))));
        // The table exactly at the end of the file is fine.
        let end = good.len() - 56;
        let mut f = good[..end + 56].to_vec();
        f.copy_within(64..120, end);
        f[0x20..0x28].copy_from_slice(&(end as u64).to_le_bytes());
        assert_eq!(load_plan(&f).map(|p| p.entry), Ok(0x40_0000));
    }

    #[test]
    fn a_bss_only_segment_may_point_past_the_end_of_the_file() {
        let mut f = elf(0x40_0000, &[(0x40_0000, 0x10, 0x10, R | X), (0x40_2000, 0, 0x3000, R | W)]);
        // The second program header's p_offset (at 64 + 56 + 8): far past
        // the file's end, as a linker may leave it when p_filesz is 0.
        f[64 + 56 + 8..64 + 56 + 16].copy_from_slice(&0x10_0000u64.to_le_bytes());
        let p = load_plan(&f).unwrap();
        assert_eq!(p.copies.len(), 1, "nothing to copy for the bss");
        assert_eq!(
            p.mappings.last(),
            Some(&Mapping { start: 0x40_2000, end: 0x40_5000, prot: prot::PROT_READ | prot::PROT_WRITE })
        );
        // With file bytes, the same offset is still refused.
        f[64 + 56 + 32..64 + 56 + 40].copy_from_slice(&0x10u64.to_le_bytes());
        assert_eq!(load_plan(&f), Err(ElfError::BadSegment));
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
