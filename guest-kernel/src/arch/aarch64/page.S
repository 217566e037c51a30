/*
 * Whole-page zeroing and copying (Linux: arch/arm64/lib/clear_page.S,
 * copy_page.S). Both take 4 KiB-aligned kernel (linear-map) addresses.
 */

.text
/*
 * __arch_clear_page(x0 = page): DC ZVA, one block at a time (ARM ARM
 * C5.3.x DC ZVA: zeroes the naturally aligned block of DCZID_EL0.BS
 * words). If DCZID_EL0.DZP says DC ZVA is prohibited (also when EL2 traps
 * it, HCR_EL2.TDZ), 64 bytes of STP per round instead.
 */
.global __arch_clear_page
__arch_clear_page:
    add     x2, x0, #4096
    mrs     x1, dczid_el0
    tbnz    x1, #4, 2f
    and     w1, w1, #0xf
    mov     x3, #4
    lsl     x1, x3, x1
1:  dc      zva, x0
    add     x0, x0, x1
    cmp     x0, x2
    b.lo    1b
    ret
2:  stp     xzr, xzr, [x0]
    stp     xzr, xzr, [x0, #16]
    stp     xzr, xzr, [x0, #32]
    stp     xzr, xzr, [x0, #48]
    add     x0, x0, #64
    cmp     x0, x2
    b.lo    2b
    ret

/*
 * __arch_copy_page(x0 = dst, x1 = src): 128 bytes per round through seven
 * register pairs (LDP/STP), as copy_page.S.
 */
.global __arch_copy_page
__arch_copy_page:
    add     x2, x1, #4096
1:  ldp     x3, x4, [x1]
    ldp     x5, x6, [x1, #16]
    ldp     x7, x8, [x1, #32]
    ldp     x9, x10, [x1, #48]
    ldp     x11, x12, [x1, #64]
    ldp     x13, x14, [x1, #80]
    ldp     x15, x16, [x1, #96]
    stp     x3, x4, [x0]
    stp     x5, x6, [x0, #16]
    ldp     x3, x4, [x1, #112]
    stp     x7, x8, [x0, #32]
    stp     x9, x10, [x0, #48]
    stp     x11, x12, [x0, #64]
    stp     x13, x14, [x0, #80]
    stp     x15, x16, [x0, #96]
    stp     x3, x4, [x0, #112]
    add     x1, x1, #128
    add     x0, x0, #128
    cmp     x1, x2
    b.lo    1b
    ret

/*
 * __arch_copy_words(x0 = dst, x1 = src, x2 = len): copies len bytes
 * between 4-byte-aligned addresses, len a multiple of 4 (exec's copy of
 * an ELF segment out of the initramfs): 32 bytes per round with 32-bit
 * LDP/STP, which need only 4-byte alignment (ARM ARM B2.5.2), then 4 at
 * a time.
 */
.global __arch_copy_words
__arch_copy_words:
    cmp     x2, #32
    b.lo    2f
1:  ldp     w3, w4, [x1]
    ldp     w5, w6, [x1, #8]
    ldp     w7, w8, [x1, #16]
    ldp     w9, w10, [x1, #24]
    stp     w3, w4, [x0]
    stp     w5, w6, [x0, #8]
    stp     w7, w8, [x0, #16]
    stp     w9, w10, [x0, #24]
    add     x1, x1, #32
    add     x0, x0, #32
    sub     x2, x2, #32
    cmp     x2, #32
    b.hs    1b
2:  cbz     x2, 4f
3:  ldr     w3, [x1], #4
    str     w3, [x0], #4
    subs    x2, x2, #4
    b.ne    3b
4:  ret
