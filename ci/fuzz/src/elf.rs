//! `guest_kernel::elf::load_plan`: exec's view of a program file. Bad
//! files are refused with an error (never a panic or a long loop); an
//! accepted plan maps page-aligned, sorted, disjoint user ranges, copies
//! only bytes the file has into mapped pages, starts in an executable
//! page, and does not depend on where the file lies in memory.

use guest_kernel::elf::{LoadPlan, load_plan};
use guest_kernel::mm::mm_struct::{MMAP_MIN_ADDR, TASK_SIZE, prot};
use guest_kernel::mm::page::PAGE_SIZE;

/// Input: an ELF file.
pub fn fuzz(data: &[u8]) {
    let aligned = crate::with_alignment(data, 0, load_plan);
    // A cpio archive aligns file data to 4 bytes only.
    let shifted = crate::with_alignment(data, 4, load_plan);
    assert_eq!(aligned, shifted, "the plan depends on the file's alignment");
    if let Ok(plan) = aligned {
        check_plan(&plan, data.len());
    }
}

/// The invariants of an accepted plan for a file of `file_len` bytes.
pub fn check_plan(plan: &LoadPlan, file_len: usize) {
    assert!(!plan.mappings.is_empty());
    let mut last_end = 0;
    for m in &plan.mappings {
        assert!(m.start % PAGE_SIZE == 0 && m.end % PAGE_SIZE == 0, "unaligned mapping {m:?}");
        assert!(m.start < m.end, "empty mapping {m:?}");
        assert!(m.start >= MMAP_MIN_ADDR && m.end <= TASK_SIZE, "mapping {m:?} outside user space");
        assert!(m.start >= last_end, "mappings overlap or are unsorted at {m:?}");
        assert_eq!(m.prot & !(prot::PROT_READ | prot::PROT_WRITE | prot::PROT_EXEC), 0);
        last_end = m.end;
    }
    let mapped = |start: usize, end: usize| {
        let mut at = start;
        for m in &plan.mappings {
            if m.start <= at && at < m.end {
                at = m.end;
            }
        }
        at >= end
    };
    for c in &plan.copies {
        let file_end = c.offset.checked_add(c.len).expect("copy range wraps");
        assert!(file_end <= file_len, "copy {c:?} reads past the file ({file_len} bytes)");
        let end = c.vaddr.checked_add(c.len).expect("copy target wraps");
        assert!(mapped(c.vaddr, end), "copy {c:?} writes outside the mappings");
    }
    assert!(
        plan.mappings.iter().any(|m| m.prot & prot::PROT_EXEC != 0 && (m.start..m.end).contains(&plan.entry)),
        "entry {:#x} not in an executable mapping",
        plan.entry
    );
    assert!(plan.end_of_bss <= last_end, "bss ends past the last mapping");
}
