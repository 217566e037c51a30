//! Decoding a trapped data abort into an [`MmioAccess`].
//!
//! Two sources, in order of preference:
//! - the instruction syndrome, when ESR_EL2.ISS.ISV = 1 (ARM ARM D17.2.37,
//!   "ISS encoding for an exception from a Data Abort": SAS, SSE, SRT, SF,
//!   AR, WnR);
//! - otherwise the faulting A64 instruction word, which the glue fetches from
//!   guest memory. Only the general-purpose single-register load/store forms
//!   that compilers emit for MMIO are accepted (ARM ARM C4.1.88 "Loads and
//!   Stores": load/store register with unsigned immediate, unscaled
//!   immediate, pre-/post-indexed immediate and register offset). Anything
//!   else is refused with a [`DecodeError`]: a wrong guess would corrupt
//!   guest state, a refusal becomes an injected abort.

use core::fmt;

use super::{BaseReg, MmioAccess, Writeback};
use crate::esr::DataAbort;

/// Why an access could not be decoded. Every refusal is final: the glue
/// injects an abort (or stops the VM) rather than guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// ISV = 0 and no instruction word was supplied.
    NoSyndrome,
    /// The fault happened on a stage-1 table walk (ISS.S1PTW): the guest's
    /// page tables point at an unmapped IPA, not an MMIO access.
    TableWalk,
    /// A cache maintenance or address translation instruction (ISS.CM).
    CacheMaintenance,
    /// The fetched instruction's direction disagrees with ISS.WnR (the
    /// instruction changed between the fault and the fetch).
    DirectionMismatch,
    /// Not a load or store at all.
    NotLoadStore,
    /// LDP/STP/LDNP/STNP (two registers per access).
    Pair,
    /// A SIMD&FP register transfer (LDR Qn/Dn/..., LD1, ...).
    SimdFp,
    /// Load/store exclusive, load-acquire/store-release ordered, or CAS.
    ExclusiveOrOrdered,
    /// LSE atomic memory operations (LDADD, SWP, ...) and LDAPR, which
    /// shares their encoding space.
    Atomic,
    /// PC-relative load (LDR literal): MMIO cannot be code-relative data.
    Literal,
    /// LDTR/STTR: unprivileged access.
    Unprivileged,
    /// PRFM/PRFUM: a prefetch, not an access.
    Prefetch,
    /// LDRAA/LDRAB (pointer-authenticated load).
    PointerAuth,
    /// An unallocated encoding in a supported class.
    Unallocated,
    /// Writeback with the base register equal to the transfer register:
    /// CONSTRAINED UNPREDICTABLE (ARM ARM C6.2 "LDR (immediate)").
    WritebackOverlap,
    /// Any other load/store class (memory tags, MOPS, RCPC unscaled, ...).
    Unsupported,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::NoSyndrome => "no instruction syndrome and no instruction",
            Self::TableWalk => "stage-2 fault on a stage-1 table walk",
            Self::CacheMaintenance => "cache maintenance instruction",
            Self::DirectionMismatch => "instruction does not match the syndrome's direction",
            Self::NotLoadStore => "not a load/store instruction",
            Self::Pair => "load/store pair",
            Self::SimdFp => "SIMD&FP register load/store",
            Self::ExclusiveOrOrdered => "exclusive/ordered load/store or CAS",
            Self::Atomic => "atomic memory operation",
            Self::Literal => "PC-relative literal load",
            Self::Unprivileged => "unprivileged load/store (LDTR/STTR)",
            Self::Prefetch => "prefetch",
            Self::PointerAuth => "pointer-authenticated load",
            Self::Unallocated => "unallocated encoding",
            Self::WritebackOverlap => "writeback base is the transfer register",
            Self::Unsupported => "unsupported load/store class",
        };
        f.write_str(text)
    }
}

/// The faulting IPA: HPFAR_EL2.FIPA (`[43:4]`, IPA bits `[51:12]`) gives the
/// page, FAR_EL2 the offset within it (ARM ARM D17.2.65 "HPFAR_EL2").
pub const fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    (((hpfar >> 4) & ((1 << 40) - 1)) << 12) | (far & 0xfff)
}

/// The access a data abort describes: from the syndrome when ISV = 1,
/// otherwise from `insn`, the instruction word at the faulting PC.
pub fn decode(da: &DataAbort, ipa: u64, insn: Option<u32>) -> Result<MmioAccess, DecodeError> {
    if da.s1ptw {
        return Err(DecodeError::TableWalk);
    }
    if da.cm {
        return Err(DecodeError::CacheMaintenance);
    }
    if let Some(access) = from_syndrome(da, ipa) {
        return Ok(access);
    }
    let access = decode_instruction(insn.ok_or(DecodeError::NoSyndrome)?, ipa)?;
    if access.write != da.wnr {
        return Err(DecodeError::DirectionMismatch);
    }
    Ok(access)
}

/// The access from the instruction syndrome; `None` when ISV = 0 (ARM ARM
/// D17.2.37: ISV is 0 for writeback forms, pairs, SIMD&FP and others).
pub fn from_syndrome(da: &DataAbort, ipa: u64) -> Option<MmioAccess> {
    if !da.isv {
        return None;
    }
    Some(MmioAccess {
        ipa,
        size: da.size(),
        write: da.wnr,
        reg: da.srt,
        sign_extend: da.sse && !da.wnr,
        sixty_four: da.sf,
        acquire_release: da.ar,
        writeback: None,
    })
}

/// Bits `[hi:lo]` of an instruction word.
const fn field(insn: u32, hi: u32, lo: u32) -> u32 {
    (insn >> lo) & ((1u32 << (hi - lo + 1)) - 1)
}

/// Addressing forms of the supported single-register classes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `[Xn, #imm]`, LDUR/STUR: no writeback.
    Offset,
    /// `[Xn], #simm9`.
    PostIndex,
    /// `[Xn, #simm9]!`.
    PreIndex,
}

/// Decodes an A64 general-purpose single-register load or store (ARM ARM
/// C4.1.88 "Loads and Stores"; field names follow its encoding index: op0 =
/// `[31:28]`, op1 = V `[26]`, op2 = `[24:23]`, op3 = `[21:16]`, op4 =
/// `[11:10]`).
pub fn decode_instruction(insn: u32, ipa: u64) -> Result<MmioAccess, DecodeError> {
    // Top level (C4.1 "A64 instruction set encoding"): loads and stores are
    // op0 `[28:25]` = x1x0.
    if field(insn, 27, 27) != 1 || field(insn, 25, 25) != 0 {
        return Err(DecodeError::NotLoadStore);
    }
    let simd = field(insn, 26, 26) == 1;
    let op2_hi = field(insn, 24, 24);
    let form = match field(insn, 29, 28) {
        // xx00: exclusives/ordered/CAS (V=0, op2=0x) and SIMD structures.
        0b00 if simd => return Err(DecodeError::SimdFp),
        0b00 if op2_hi == 0 => return Err(DecodeError::ExclusiveOrOrdered),
        0b00 => return Err(DecodeError::Unsupported),
        // xx01: literal (op2=0x); RCPC unscaled, MOPS, tags otherwise.
        0b01 if op2_hi == 0 => return Err(DecodeError::Literal),
        0b01 => return Err(DecodeError::Unsupported),
        // xx10: register pairs.
        0b10 => return Err(DecodeError::Pair),
        // xx11: single register.
        _ if simd => return Err(DecodeError::SimdFp),
        // op2=1x: unsigned immediate.
        _ if op2_hi == 1 => Form::Offset,
        _ => match (field(insn, 21, 21), field(insn, 11, 10)) {
            (0, 0b00) => Form::Offset,
            (0, 0b01) => Form::PostIndex,
            (0, 0b10) => return Err(DecodeError::Unprivileged),
            (0, _) => Form::PreIndex,
            (_, 0b00) => return Err(DecodeError::Atomic),
            (_, 0b10) => {
                // Register offset: option<1> = 0 is unallocated.
                if field(insn, 14, 14) == 0 {
                    return Err(DecodeError::Unallocated);
                }
                Form::Offset
            }
            (_, _) => return Err(DecodeError::PointerAuth),
        },
    };

    // size `[31:30]`, opc `[23:22]` (C4.1.88, e.g. "Load/store register
    // (unsigned immediate)" table).
    let size = field(insn, 31, 30);
    let (write, sign_extend, sixty_four) = match (size, field(insn, 23, 22)) {
        // STRB/STRH/STR W/STR X.
        (_, 0b00) => (true, false, size == 3),
        // LDRB/LDRH/LDR W/LDR X.
        (_, 0b01) => (false, false, size == 3),
        // PRFM/PRFUM; the indexed forms are unallocated.
        (3, 0b10) if form == Form::Offset => return Err(DecodeError::Prefetch),
        (3, 0b10) => return Err(DecodeError::Unallocated),
        // LDRSB/LDRSH/LDRSW to X.
        (_, 0b10) => (false, true, true),
        // LDRSB/LDRSH to W.
        (0 | 1, _) => (false, true, false),
        _ => return Err(DecodeError::Unallocated),
    };

    let rt = field(insn, 4, 0) as u8;
    let rn = field(insn, 9, 5) as u8;
    let writeback = match form {
        Form::Offset => None,
        Form::PostIndex | Form::PreIndex => {
            if rn == rt && rn != 31 {
                return Err(DecodeError::WritebackOverlap);
            }
            // imm9 `[20:12]`, sign-extended.
            let delta = ((field(insn, 20, 12) as i64) << 55) >> 55;
            let base = if rn == 31 { BaseReg::Sp } else { BaseReg::X(rn) };
            Some(Writeback { base, delta })
        }
    };

    Ok(MmioAccess { ipa, size: 1 << size, write, reg: rt, sign_extend, sixty_four, acquire_release: false, writeback })
}

/// The value a load leaves in its transfer register: the low `size` bytes
/// of `value`, sign- or zero-extended, and for a W register the upper 32
/// bits cleared (ARM ARM C6.2 "LDRSH (immediate)": `X[t] = SignExtend(data,
/// regsize)`, with a W write zeroing bits `[63:32]`).
/// Branch-free (the trap fast path's): the access's bytes are shifted to
/// the top and back, arithmetically to sign-extend.
#[inline]
pub fn apply_load(value: u64, access: &MmioAccess) -> u64 {
    // 1, 2, 4 or 8 bytes (SAS); the clamp keeps the shift in 0..=56.
    let shift = 64 - 8 * u32::from(access.size.clamp(1, 8));
    let top = value << shift;
    let extended = if access.sign_extend { ((top as i64) >> shift) as u64 } else { top >> shift };
    if access.sixty_four { extended } else { extended & 0xffff_ffff }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    const IPA: u64 = 0x0900_0010;

    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn access(size: u8, write: bool, reg: u8, sign: bool, x: bool, wb: Option<Writeback>) -> MmioAccess {
        MmioAccess {
            ipa: IPA,
            size,
            write,
            reg,
            sign_extend: sign,
            sixty_four: x,
            acquire_release: false,
            writeback: wb,
        }
    }

    fn wb(base: BaseReg, delta: i64) -> Option<Writeback> {
        Some(Writeback { base, delta })
    }

    /// Words assembled by `llvm-mc --triple=aarch64 -show-encoding` (and
    /// checked with `llvm-objdump -d`).
    #[test]
    fn real_instruction_words() {
        use BaseReg::{Sp, X};
        let cases: &[(u32, &str, MmioAccess)] = &[
            (0xb800_4401, "str w1, [x0], #4", access(4, true, 1, false, false, wb(X(0), 4))),
            (0x3980_0462, "ldrsb x2, [x3, #1]", access(1, false, 2, true, true, None)),
            (0xf862_7820, "ldr x0, [x1, x2, lsl #3]", access(8, false, 0, false, true, None)),
            (0xb900_0001, "str w1, [x0]", access(4, true, 1, false, false, None)),
            (0xb940_1001, "ldr w1, [x0, #16]", access(4, false, 1, false, false, None)),
            (0x381f_fc22, "strb w2, [x1, #-1]!", access(1, true, 2, false, false, wb(X(1), -1))),
            (0x7840_2c83, "ldrh w3, [x4, #2]!", access(2, false, 3, false, false, wb(X(4), 2))),
            (0x78df_e4c5, "ldrsh w5, [x6], #-2", access(2, false, 5, true, false, wb(X(6), -2))),
            (0xb980_0507, "ldrsw x7, [x8, #4]", access(4, false, 7, true, true, None)),
            (0xf85f_8149, "ldur x9, [x10, #-8]", access(8, false, 9, false, true, None)),
            (0xb800_317f, "stur wzr, [x11, #3]", access(4, true, 31, false, false, None)),
            (0x782e_59ac, "strh w12, [x13, w14, uxtw #1]", access(2, true, 12, false, false, None)),
            (0x3871_6a0f, "ldrb w15, [x16, x17]", access(1, false, 15, false, false, None)),
            (0x38f4_ca72, "ldrsb w18, [x19, w20, sxtw]", access(1, false, 18, true, false, None)),
            (0xf900_07f5, "str x21, [sp, #8]", access(8, true, 21, false, true, None)),
            (0xf841_07f6, "ldr x22, [sp], #16", access(8, false, 22, false, true, wb(Sp, 16))),
            (0xf81f_0ff7, "str x23, [sp, #-16]!", access(8, true, 23, false, true, wb(Sp, -16))),
            (0xb862_f820, "ldr w0, [x1, x2, sxtx #2]", access(4, false, 0, false, false, None)),
            (0x784f_f020, "ldurh w0, [x1, #255]", access(2, false, 0, false, false, None)),
            (0x3890_0020, "ldursb x0, [x1, #-256]", access(1, false, 0, true, true, None)),
            (0x799f_fc49, "ldrsh x9, [x2, #4094]", access(2, false, 9, true, true, None)),
            (0xf97f_fc41, "ldr x1, [x2, #32760]", access(8, false, 1, false, true, None)),
        ];
        for (word, text, expected) in cases {
            assert_eq!(decode_instruction(*word, IPA), Ok(*expected), "{text} ({word:#010x})");
        }
    }

    #[test]
    fn refusals() {
        use DecodeError::*;
        let cases: &[(u32, &str, DecodeError)] = &[
            (0xa940_0440, "ldp x0, x1, [x2]", Pair),
            (0x2981_0440, "stp w0, w1, [x2, #8]!", Pair),
            (0xa840_0440, "ldnp x0, x1, [x2]", Pair),
            (0xc85f_7c20, "ldxr x0, [x1]", ExclusiveOrOrdered),
            (0xc87f_8440, "ldaxp x0, x1, [x2]", ExclusiveOrOrdered),
            (0x88df_fc20, "ldar w0, [x1]", ExclusiveOrOrdered),
            (0x889f_fc20, "stlr w0, [x1]", ExclusiveOrOrdered),
            (0x88e0_fc41, "casal w0, w1, [x2]", ExclusiveOrOrdered),
            (0xb820_0041, "ldadd w0, w1, [x2]", Atomic),
            (0xf820_8041, "swp x0, x1, [x2]", Atomic),
            (0xb8bf_c020, "ldapr w0, [x1]", Atomic),
            (0x3dc0_0020, "ldr q0, [x1]", SimdFp),
            (0xfd40_0000, "ldr d0, [x0]", SimdFp),
            (0x3d40_0000, "ldr b0, [x0]", SimdFp),
            (0xbc40_4400, "ldr s0, [x0], #4", SimdFp),
            (0x4c40_7000, "ld1 {v0.16b}, [x0]", SimdFp),
            (0xb840_0820, "ldtr w0, [x1]", Unprivileged),
            (0x3880_0820, "ldtrsb x0, [x1]", Unprivileged),
            (0xf800_0820, "sttr x0, [x1]", Unprivileged),
            (0xf980_0000, "prfm pldl1keep, [x0]", Prefetch),
            (0xf880_0000, "prfum pldl1keep, [x0]", Prefetch),
            (0x5800_0000, "ldr x0, .", Literal),
            (0x9800_0000, "ldrsw x0, .", Literal),
            (0xf820_0420, "ldraa x0, [x1]", PointerAuth),
            (0xf8a0_1c20, "ldrab x0, [x1, #8]!", PointerAuth),
            (0xd920_0820, "stg x0, [x1]", Unsupported),
            (0x1901_0440, "cpyfp [x0]!, [x1]!, x2!", Unsupported),
            (0x9940_0020, "ldapur w0, [x1]", Unsupported),
            (0x9900_4020, "stlur w0, [x1, #4]", Unsupported),
            (0xb840_4484, "ldr w4, [x4], #4", WritebackOverlap),
            (0xf862_0820, "ldr with register option 0b000", Unallocated),
            (0xb9c0_0000, "size=10 opc=11 unsigned offset", Unallocated),
            (0xf880_0c00, "size=11 opc=10 pre-index", Unallocated),
            (0x8b02_0020, "add x0, x1, x2", NotLoadStore),
            (0xd400_0002, "hvc #0", NotLoadStore),
            (0x0000_0000, "udf #0", NotLoadStore),
        ];
        for (word, text, expected) in cases {
            assert_eq!(decode_instruction(*word, IPA), Err(*expected), "{text} ({word:#010x})");
        }
    }

    #[test]
    fn syndrome_path() {
        // EC 0x24 ISS: ISV, SAS=0b10, SRT=1, WnR, DFSC=translation L3
        // (`str w1, [x0]`).
        let da = DataAbort::from_iss(0x0181_0047);
        assert_eq!(decode(&da, IPA, None), Ok(access(4, true, 1, false, false, None)));
        // ldrsh w2: SAS=0b01, SSE, SRT=2, SF=0.
        let da = DataAbort::from_iss((1 << 24) | (0b01 << 22) | (1 << 21) | (2 << 16) | 0x07);
        assert_eq!(decode(&da, IPA, None), Ok(access(2, false, 2, true, false, None)));
        // ldar x3: SAS=0b11, SRT=3, SF, AR.
        let da = DataAbort::from_iss((1 << 24) | (0b11 << 22) | (3 << 16) | (1 << 15) | (1 << 14) | 0x07);
        let mut expected = access(8, false, 3, false, true, None);
        expected.acquire_release = true;
        assert_eq!(decode(&da, IPA, None), Ok(expected));
    }

    #[test]
    fn instruction_path() {
        // ISV=0, WnR, translation L3: post-indexed `str w1, [x0], #4`.
        let da = DataAbort::from_iss(0x47);
        assert_eq!(decode(&da, IPA, None), Err(DecodeError::NoSyndrome));
        assert_eq!(decode(&da, IPA, Some(0xb800_4401)), Ok(access(4, true, 1, false, false, wb(BaseReg::X(0), 4))));
        // The syndrome says write but the word is a load.
        assert_eq!(decode(&da, IPA, Some(0xb940_1001)), Err(DecodeError::DirectionMismatch));
        // S1PTW and CM are refused even with a decodable word.
        assert_eq!(decode(&DataAbort::from_iss(0x47 | 1 << 7), IPA, Some(0xb800_4401)), Err(DecodeError::TableWalk));
        assert_eq!(
            decode(&DataAbort::from_iss(0x47 | 1 << 8), IPA, Some(0xb800_4401)),
            Err(DecodeError::CacheMaintenance)
        );
    }

    #[test]
    fn fault_ipa_from_hpfar_and_far() {
        // IPA 0x0900_0abc: FIPA = 0x9000 in HPFAR[43:4].
        assert_eq!(fault_ipa(0x9000 << 4, 0xffff_0000_dead_0abc), 0x0900_0abc);
        // NS bit 63 and the RES0 bits are ignored; 52-bit IPAs survive.
        assert_eq!(fault_ipa((1 << 63) | (0xff_ffff_ffff << 4) | 0xf, 0x123), 0x000f_ffff_ffff_f123);
    }

    #[test]
    fn apply_load_extension() {
        let ldrsb_x = access(1, false, 0, true, true, None);
        assert_eq!(apply_load(0x1234_5680, &ldrsb_x), 0xffff_ffff_ffff_ff80);
        let ldrsb_w = access(1, false, 0, true, false, None);
        assert_eq!(apply_load(0x80, &ldrsb_w), 0x0000_0000_ffff_ff80);
        let ldrb = access(1, false, 0, false, false, None);
        assert_eq!(apply_load(0xffff_ffff_ffff_ff80, &ldrb), 0x80);
        let ldrsh_x = access(2, false, 0, true, true, None);
        assert_eq!(apply_load(0x7fff, &ldrsh_x), 0x7fff);
        assert_eq!(apply_load(0x8000, &ldrsh_x), 0xffff_ffff_ffff_8000);
        let ldrsw = access(4, false, 0, true, true, None);
        assert_eq!(apply_load(0xdead_beef_8000_0001, &ldrsw), 0xffff_ffff_8000_0001);
        let ldr_w = access(4, false, 0, false, false, None);
        assert_eq!(apply_load(0xdead_beef_8000_0001, &ldr_w), 0x8000_0001);
        let ldr_x = access(8, false, 0, false, true, None);
        assert_eq!(apply_load(0xdead_beef_8000_0001, &ldr_x), 0xdead_beef_8000_0001);
        // A W register never keeps bits [63:32], even for an 8-byte size
        // (impossible from a real decode, but a field the glue can set).
        let odd = access(8, false, 0, true, false, None);
        assert_eq!(apply_load(u64::MAX, &odd), 0xffff_ffff);
        // Nonsense sizes do not panic.
        for size in [0u8, 3, 5, 16, 255] {
            let _ = apply_load(u64::MAX, &access(size, false, 0, true, true, None));
        }
    }

    #[test]
    fn store_value_masks_and_reads_zero_register() {
        let mut regs = [0u64; 31];
        regs[1] = 0x1122_3344_5566_7788;
        assert_eq!(access(1, true, 1, false, false, None).store_value(&regs), 0x88);
        assert_eq!(access(2, true, 1, false, false, None).store_value(&regs), 0x7788);
        assert_eq!(access(4, true, 1, false, false, None).store_value(&regs), 0x5566_7788);
        assert_eq!(access(8, true, 1, false, true, None).store_value(&regs), 0x1122_3344_5566_7788);
        regs[30] = u64::MAX;
        assert_eq!(access(8, true, 31, false, true, None).store_value(&regs), 0);
    }

    /// The reference model: every accepted encoding written out as in the
    /// ARM ARM's per-class tables (C4.1.88), as bit strings. `s` = size,
    /// `o` = opc, `n`/`t` = Rn/Rt, `x` = option, anything else lower-case is
    /// a free field.
    struct Pattern {
        mask: u32,
        value: u32,
        /// `Some(false)`: post-index, `Some(true)`: pre-index.
        indexed: Option<bool>,
        /// Register-offset form: option<1> must be 1.
        register: bool,
        size: u8,
        write: bool,
        sign: bool,
        x: bool,
    }

    fn patterns() -> Vec<Pattern> {
        // Class templates, 32 characters each, bit 31 first.
        let classes: [(&str, Option<bool>, bool); 5] = [
            ("SS111001OOiiiiiiiiiiiinnnnnttttt", None, false), // unsigned immediate
            ("SS111000OO0iiiiiiiii00nnnnnttttt", None, false), // unscaled (LDUR/STUR)
            ("SS111000OO0iiiiiiiii01nnnnnttttt", Some(false), false), // post-indexed
            ("SS111000OO0iiiiiiiii11nnnnnttttt", Some(true), false), // pre-indexed
            ("SS111000OO1mmmmmxxxs10nnnnnttttt", None, true),  // register offset
        ];
        // (size, opc, bytes, write, sign-extend, X destination) from the
        // instruction pages: STRB, LDRB, LDRSB (64), LDRSB (32), STRH, LDRH,
        // LDRSH (64), LDRSH (32), STR (32), LDR (32), LDRSW, STR (64), LDR (64).
        let insns: [(&str, &str, u8, bool, bool, bool); 13] = [
            ("00", "00", 1, true, false, false),
            ("00", "01", 1, false, false, false),
            ("00", "10", 1, false, true, true),
            ("00", "11", 1, false, true, false),
            ("01", "00", 2, true, false, false),
            ("01", "01", 2, false, false, false),
            ("01", "10", 2, false, true, true),
            ("01", "11", 2, false, true, false),
            ("10", "00", 4, true, false, false),
            ("10", "01", 4, false, false, false),
            ("10", "10", 4, false, true, true),
            ("11", "00", 8, true, false, true),
            ("11", "01", 8, false, false, true),
        ];
        let mut out = Vec::new();
        for (template, indexed, register) in classes {
            for (size, opc, bytes, write, sign, x) in insns {
                let text = template.replacen("SS", size, 1).replacen("OO", opc, 1);
                assert_eq!(text.len(), 32);
                let (mut mask, mut value) = (0u32, 0u32);
                for (i, c) in text.chars().enumerate() {
                    let bit = 1u32 << (31 - i);
                    match c {
                        '0' => mask |= bit,
                        '1' => {
                            mask |= bit;
                            value |= bit;
                        }
                        _ => {}
                    }
                }
                out.push(Pattern { mask, value, indexed, register, size: bytes, write, sign, x });
            }
        }
        out
    }

    /// The reference decision for `word`: the matching pattern, if the
    /// word is a valid, supported encoding.
    fn reference(patterns: &[Pattern], word: u32) -> Option<MmioAccess> {
        let matches: Vec<&Pattern> = patterns.iter().filter(|p| word & p.mask == p.value).collect();
        assert!(matches.len() <= 1, "{word:#010x} matches {} patterns", matches.len());
        let p = matches.first()?;
        let rt = (word & 31) as u8;
        let rn = ((word >> 5) & 31) as u8;
        if p.register && (word >> 14) & 1 == 0 {
            return None;
        }
        let writeback = match p.indexed {
            None => None,
            Some(_) if rn == rt && rn != 31 => return None,
            Some(_) => {
                let imm9 = (word >> 12) & 0x1ff;
                let delta = if imm9 & 0x100 != 0 { imm9 as i64 - 512 } else { imm9 as i64 };
                let base = if rn == 31 { BaseReg::Sp } else { BaseReg::X(rn) };
                Some(Writeback { base, delta })
            }
        };
        Some(access(p.size, p.write, rt, p.sign, p.x, writeback))
    }

    #[test]
    fn random_words_agree_with_reference() {
        let patterns = patterns();
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        // Uniformly random words: never panic, and accept exactly what the
        // reference accepts.
        for _ in 0..200_000 {
            let word = rng.next() as u32;
            let got = decode_instruction(word, IPA).ok();
            assert_eq!(got, reference(&patterns, word), "{word:#010x}");
            accepted += got.is_some() as u32;
        }
        assert!(accepted > 1000, "only {accepted} random words decoded");
        // Words drawn from each pattern, free bits random.
        for p in &patterns {
            for _ in 0..300 {
                let word = (rng.next() as u32 & !p.mask) | p.value;
                assert_eq!(decode_instruction(word, IPA).ok(), reference(&patterns, word), "{word:#010x}");
            }
        }
    }
}
