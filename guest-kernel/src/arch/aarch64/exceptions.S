/*
 * EL1 exception vectors of the guest kernel. For now every exception is
 * unexpected: the registers are saved in a TrapFrame and
 * kernel_trap(frame, kind) prints a report and powers the VM off.
 */

.macro trap_vector kind
    .balign 0x80
    sub     sp, sp, #8 * 36
    stp     x0, x1, [sp, #8 * 0]
    mov     x0, #\kind
    b       trap_common
.endm

trap_common:
    stp     x2, x3, [sp, #8 * 2]
    stp     x4, x5, [sp, #8 * 4]
    stp     x6, x7, [sp, #8 * 6]
    stp     x8, x9, [sp, #8 * 8]
    stp     x10, x11, [sp, #8 * 10]
    stp     x12, x13, [sp, #8 * 12]
    stp     x14, x15, [sp, #8 * 14]
    stp     x16, x17, [sp, #8 * 16]
    stp     x18, x19, [sp, #8 * 18]
    stp     x20, x21, [sp, #8 * 20]
    stp     x22, x23, [sp, #8 * 22]
    stp     x24, x25, [sp, #8 * 24]
    stp     x26, x27, [sp, #8 * 26]
    stp     x28, x29, [sp, #8 * 28]
    str     x30, [sp, #8 * 30]
    add     x2, sp, #8 * 36
    str     x2, [sp, #8 * 31]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #8 * 32]
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #8 * 34]
    mov     x1, x0
    mov     x0, sp
    bl      kernel_trap
1:  wfe
    b       1b

.section .text.vectors, "ax"
.balign 0x800
.global kernel_vectors
kernel_vectors:
    trap_vector 0
    trap_vector 1
    trap_vector 2
    trap_vector 3
    trap_vector 4
    trap_vector 5
    trap_vector 6
    trap_vector 7
    trap_vector 8
    trap_vector 9
    trap_vector 10
    trap_vector 11
    trap_vector 12
    trap_vector 13
    trap_vector 14
    trap_vector 15
