/* Assembler helpers shared by entry.S and exceptions.S. */

/* adr_l reg, sym: PC-relative address of sym (+/- 4 GiB), usable with the MMU off. */
.macro adr_l reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

/* Size of each CPU's EL2 stack; must match arch::aarch64::STACK_SIZE. */
.equ BOOT_STACK_SIZE, 0x20000

/* Call frame information (.cfi_*) goes to .debug_frame, for debuggers: the
 * images unwind nothing themselves, and image.ld drops .eh_frame. */
.cfi_sections .debug_frame
