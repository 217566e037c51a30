/*
 * User-memory access with an exception table (Linux: arch/arm64/lib/
 * copy_from_user.S, copy_to_user.S, and the __ex_table of
 * arch/arm64/mm/extable.c).
 *
 * Every load or store of user memory is an unprivileged ldtrb/sttrb, so
 * the access is checked with EL0's permissions (ARM ARM C6.2: LDTRB,
 * STTRB) — a user pointer into kernel memory faults like any bad pointer.
 * A fault on one of the instructions listed in uaccess_extable is first
 * offered to the page-fault handler (the page may just not be present
 * yet); if that cannot resolve it, the handler moves ELR_EL1 to the listed
 * fixup, which returns the number of bytes NOT copied.
 *
 * All three take (x0 = dst, x1 = src, x2 = len) and return x0 = bytes left.
 */

.text
.global __arch_copy_from_user
__arch_copy_from_user:
    cbz     x2, 2f
1:
9001: ldtrb  w3, [x1]
    strb    w3, [x0], #1
    add     x1, x1, #1
    subs    x2, x2, #1
    b.ne    1b
2:  mov     x0, #0
    ret

.global __arch_copy_to_user
__arch_copy_to_user:
    cbz     x2, 2f
1:  ldrb    w3, [x1], #1
9002: sttrb  w3, [x0]
    add     x0, x0, #1
    subs    x2, x2, #1
    b.ne    1b
2:  mov     x0, #0
    ret

/* __arch_clear_user(x0 = dst, x1 = len) -> bytes left. */
.global __arch_clear_user
__arch_clear_user:
    cbz     x1, 2f
1:
9003: sttrb  wzr, [x0]
    add     x0, x0, #1
    subs    x1, x1, #1
    b.ne    1b
2:  mov     x0, #0
    ret

/*
 * __arch_probe_read(x0 = kernel VA) -> x0 = value, x1 = 0; or x1 = 1 if the
 * read aborted (hypervisor tests: a read outside the VM's memory must get
 * an external abort from EL2, which the fixup turns into a result).
 */
.global __arch_probe_read
__arch_probe_read:
    mov     x1, x0
9004: ldr   x0, [x1]
    mov     x1, #0
    ret
uaccess_fixup_probe:
    mov     x0, #0
    mov     x1, #1
    ret

/*
 * Probed device accesses of each size (hypervisor tests: registers the
 * hypervisor emulates may answer a bad access with an external abort).
 * __arch_probe_ldN(x0 = VA) -> x0 = value, x1 = 0 (or x1 = 1 if aborted);
 * __arch_probe_stN(x0 = VA, x1 = value) -> x0 = 0, x1 = 0 (or x1 = 1).
 * Single ldr/str forms, so a trap to EL2 has a complete syndrome.
 */
.macro probe_ld name, insn, reg, label
.global \name
\name:
    mov     x1, x0
\label: \insn \reg, [x1]
    mov     x1, #0
    ret
.endm
.macro probe_st name, insn, reg, label
.global \name
\name:
\label: \insn \reg, [x0]
    mov     x0, #0
    mov     x1, #0
    ret
.endm
    probe_ld __arch_probe_ld8, ldrb, w0, 9010
    probe_ld __arch_probe_ld16, ldrh, w0, 9011
    probe_ld __arch_probe_ld32, ldr, w0, 9012
    probe_ld __arch_probe_ld64, ldr, x0, 9013
    probe_st __arch_probe_st8, strb, w1, 9014
    probe_st __arch_probe_st16, strh, w1, 9015
    probe_st __arch_probe_st32, str, w1, 9016
    probe_st __arch_probe_st64, str, x1, 9017

/*
 * __arch_probe_pmcr() / __arch_probe_pmccntr() -> x0 = PMCR_EL0 or
 * PMCCNTR_EL0, x1 = 0; or x1 = 1 if the read was refused with an
 * undefined-instruction exception (hypervisor tests: MDCR_EL2.TPMCR and
 * TPM keep the PMU from the guests).
 */
.global __arch_probe_pmcr
__arch_probe_pmcr:
9018: mrs   x0, pmcr_el0
    mov     x1, #0
    ret
.global __arch_probe_pmccntr
__arch_probe_pmccntr:
9019: mrs   x0, pmccntr_el0
    mov     x1, #0
    ret

/*
 * __arch_probe_exec(x0 = kernel VA) -> x0 = 0 if the code there returned,
 * 1 if fetching it aborted (hypervisor tests: a fetch from an IPA with
 * nothing behind it must take a prefetch abort in the guest). The abort's
 * ELR_EL1 is the unfetchable address, so the exception table is searched
 * with the return address in x30 (label 9020), and the fixup unwinds
 * this frame.
 */
.global __arch_probe_exec
__arch_probe_exec:
    stp     x29, x30, [sp, #-16]!
    mov     x29, sp
    blr     x0
9020: mov   x0, #0
    ldp     x29, x30, [sp], #16
    ret
uaccess_fixup_exec:
    mov     x0, #1
    ldp     x29, x30, [sp], #16
    ret

/* Fixups: the count of bytes not copied is still in x2 (x1 for clear). */
uaccess_fixup_copy:
    mov     x0, x2
    ret
uaccess_fixup_clear:
    mov     x0, x1
    ret

/* struct ExtableEntry: (insn, fixup) pairs, sorted by insn. */
.section .rodata.uaccess_extable, "a"
.balign 8
.global uaccess_extable
uaccess_extable:
    .quad   9001b, uaccess_fixup_copy
    .quad   9002b, uaccess_fixup_copy
    .quad   9004b, uaccess_fixup_probe
    .quad   9020b, uaccess_fixup_exec
    .quad   9003b, uaccess_fixup_clear
    .quad   9010b, uaccess_fixup_probe
    .quad   9011b, uaccess_fixup_probe
    .quad   9012b, uaccess_fixup_probe
    .quad   9013b, uaccess_fixup_probe
    .quad   9014b, uaccess_fixup_probe
    .quad   9015b, uaccess_fixup_probe
    .quad   9016b, uaccess_fixup_probe
    .quad   9017b, uaccess_fixup_probe
    .quad   9018b, uaccess_fixup_probe
    .quad   9019b, uaccess_fixup_probe
.global uaccess_extable_end
uaccess_extable_end:
