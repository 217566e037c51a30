/* Assembler helpers. */

/* adr_l reg, sym: PC-relative address of sym (+/- 4 GiB). */
.macro adr_l reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

/* Size of each kernel stack; must match arch::aarch64::KERNEL_STACK_SIZE. */
.equ KERNEL_STACK_SIZE, 0x20000
