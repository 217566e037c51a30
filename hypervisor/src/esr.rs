//! ESR_EL2 decoding: why the guest left EL1 (ARM ARM D17.2.37 "ESR_EL2").
//!
//! A pure core: the arch glue reads `ESR_EL2` and hands the raw value to
//! [`Esr::decode`]; everything here is plain bit arithmetic on that value,
//! which the guest controls in part, so nothing here can panic.
//!
//! Layout: `[63:56]` RES0, `[55:32]` ISS2, `[31:26]` EC, `[25]` IL,
//! `[24:0]` ISS.

use core::fmt;

/// Bits `[hi:lo]` of `value`, right-aligned.
const fn bits(value: u64, hi: u32, lo: u32) -> u64 {
    (value >> lo) & ((1u64 << (hi - lo + 1)) - 1)
}

/// Bit `n` of `value`.
const fn bit(value: u64, n: u32) -> bool {
    (value >> n) & 1 == 1
}

/// The exception class, ESR_EL2.EC (ARM ARM D17.2.37, table "EC encoding").
///
/// The AArch32 classes are listed for completeness: a guest that never runs
/// AArch32 code never produces them, but a crash report should still name
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    /// 0x00: unknown reason (e.g. an undefined instruction trapped to EL2).
    Unknown,
    /// 0x01: trapped WFI/WFE/WFIT/WFET (HCR_EL2.TWI/TWE).
    Wfx,
    /// 0x03: AArch32 MCR/MRC to CP15.
    Mcr15,
    /// 0x04: AArch32 MCRR/MRRC to CP15.
    Mcrr15,
    /// 0x05: AArch32 MCR/MRC to CP14.
    Mcr14,
    /// 0x06: AArch32 LDC/STC to CP14.
    Ldc14,
    /// 0x07: SVE, Advanced SIMD or FP access trapped (CPTR_EL2).
    FpAccess,
    /// 0x08: AArch32 VMRS trapped by the ID group trap.
    Vmrs,
    /// 0x09: trapped pointer-authentication instruction (HCR_EL2.API).
    PauthTrap,
    /// 0x0a: trapped LD64B/ST64B (FEAT_LS64).
    Ls64,
    /// 0x0c: AArch32 MRRC to CP14.
    Mrrc14,
    /// 0x0d: branch target exception (FEAT_BTI).
    Bti,
    /// 0x0e: illegal execution state (PSTATE.IL set).
    IllegalState,
    /// 0x11: SVC from AArch32.
    Svc32,
    /// 0x12: HVC from AArch32.
    Hvc32,
    /// 0x13: SMC from AArch32.
    Smc32,
    /// 0x15: SVC from AArch64.
    Svc64,
    /// 0x16: HVC from AArch64. ELR_EL2 already points past the `hvc`.
    Hvc64,
    /// 0x17: SMC from AArch64 trapped by HCR_EL2.TSC. Unlike HVC, ELR_EL2
    /// points at the `smc` itself: the glue must step over it (ARM ARM
    /// D1.10.4, "preferred exception return address").
    Smc64,
    /// 0x18: trapped MSR, MRS or system instruction from AArch64.
    SysReg,
    /// 0x19: SVE access trapped (CPTR_EL2.ZEN/TZ).
    Sve,
    /// 0x1a: trapped ERET/ERETAA/ERETAB (FEAT_NV).
    Eret,
    /// 0x1c: pointer authentication failure (FEAT_FPAC).
    Fpac,
    /// 0x1d: SME access trapped (FEAT_SME).
    Sme,
    /// 0x20: instruction abort from a lower EL (stage-2 fault on fetch).
    InstrAbortLower,
    /// 0x21: instruction abort taken without a change of EL (an EL2 bug).
    InstrAbortSame,
    /// 0x22: PC alignment fault.
    PcAlignment,
    /// 0x24: data abort from a lower EL (stage-2 fault: MMIO or bad IPA).
    DataAbortLower,
    /// 0x25: data abort taken without a change of EL (an EL2 bug).
    DataAbortSame,
    /// 0x26: SP alignment fault.
    SpAlignment,
    /// 0x27: memory copy/set (FEAT_MOPS) exception.
    Mops,
    /// 0x28: trapped floating-point exception from AArch32.
    Fp32,
    /// 0x2c: trapped floating-point exception from AArch64.
    Fp64,
    /// 0x2f: SError interrupt.
    SError,
    /// 0x30: breakpoint from a lower EL.
    BreakpointLower,
    /// 0x31: breakpoint without a change of EL.
    BreakpointSame,
    /// 0x32: software step from a lower EL.
    SoftwareStepLower,
    /// 0x33: software step without a change of EL.
    SoftwareStepSame,
    /// 0x34: watchpoint from a lower EL.
    WatchpointLower,
    /// 0x35: watchpoint without a change of EL.
    WatchpointSame,
    /// 0x38: BKPT from AArch32.
    Bkpt32,
    /// 0x3a: vector catch from AArch32.
    VectorCatch32,
    /// 0x3c: BRK from AArch64.
    Brk64,
    /// Any other (reserved or newer) EC value.
    Other(u8),
}

impl ExceptionClass {
    /// Decodes a 6-bit EC; bits above bit 5 are ignored.
    pub const fn from_code(code: u8) -> Self {
        match code & 0x3f {
            0x00 => Self::Unknown,
            0x01 => Self::Wfx,
            0x03 => Self::Mcr15,
            0x04 => Self::Mcrr15,
            0x05 => Self::Mcr14,
            0x06 => Self::Ldc14,
            0x07 => Self::FpAccess,
            0x08 => Self::Vmrs,
            0x09 => Self::PauthTrap,
            0x0a => Self::Ls64,
            0x0c => Self::Mrrc14,
            0x0d => Self::Bti,
            0x0e => Self::IllegalState,
            0x11 => Self::Svc32,
            0x12 => Self::Hvc32,
            0x13 => Self::Smc32,
            0x15 => Self::Svc64,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x18 => Self::SysReg,
            0x19 => Self::Sve,
            0x1a => Self::Eret,
            0x1c => Self::Fpac,
            0x1d => Self::Sme,
            0x20 => Self::InstrAbortLower,
            0x21 => Self::InstrAbortSame,
            0x22 => Self::PcAlignment,
            0x24 => Self::DataAbortLower,
            0x25 => Self::DataAbortSame,
            0x26 => Self::SpAlignment,
            0x27 => Self::Mops,
            0x28 => Self::Fp32,
            0x2c => Self::Fp64,
            0x2f => Self::SError,
            0x30 => Self::BreakpointLower,
            0x31 => Self::BreakpointSame,
            0x32 => Self::SoftwareStepLower,
            0x33 => Self::SoftwareStepSame,
            0x34 => Self::WatchpointLower,
            0x35 => Self::WatchpointSame,
            0x38 => Self::Bkpt32,
            0x3a => Self::VectorCatch32,
            0x3c => Self::Brk64,
            other => Self::Other(other),
        }
    }

    /// The 6-bit EC value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unknown => 0x00,
            Self::Wfx => 0x01,
            Self::Mcr15 => 0x03,
            Self::Mcrr15 => 0x04,
            Self::Mcr14 => 0x05,
            Self::Ldc14 => 0x06,
            Self::FpAccess => 0x07,
            Self::Vmrs => 0x08,
            Self::PauthTrap => 0x09,
            Self::Ls64 => 0x0a,
            Self::Mrrc14 => 0x0c,
            Self::Bti => 0x0d,
            Self::IllegalState => 0x0e,
            Self::Svc32 => 0x11,
            Self::Hvc32 => 0x12,
            Self::Smc32 => 0x13,
            Self::Svc64 => 0x15,
            Self::Hvc64 => 0x16,
            Self::Smc64 => 0x17,
            Self::SysReg => 0x18,
            Self::Sve => 0x19,
            Self::Eret => 0x1a,
            Self::Fpac => 0x1c,
            Self::Sme => 0x1d,
            Self::InstrAbortLower => 0x20,
            Self::InstrAbortSame => 0x21,
            Self::PcAlignment => 0x22,
            Self::DataAbortLower => 0x24,
            Self::DataAbortSame => 0x25,
            Self::SpAlignment => 0x26,
            Self::Mops => 0x27,
            Self::Fp32 => 0x28,
            Self::Fp64 => 0x2c,
            Self::SError => 0x2f,
            Self::BreakpointLower => 0x30,
            Self::BreakpointSame => 0x31,
            Self::SoftwareStepLower => 0x32,
            Self::SoftwareStepSame => 0x33,
            Self::WatchpointLower => 0x34,
            Self::WatchpointSame => 0x35,
            Self::Bkpt32 => 0x38,
            Self::VectorCatch32 => 0x3a,
            Self::Brk64 => 0x3c,
            Self::Other(code) => code & 0x3f,
        }
    }
}

impl fmt::Display for ExceptionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Unknown => "unknown reason",
            Self::Wfx => "WFI/WFE",
            Self::Mcr15 => "AArch32 MCR/MRC (CP15)",
            Self::Mcrr15 => "AArch32 MCRR/MRRC (CP15)",
            Self::Mcr14 => "AArch32 MCR/MRC (CP14)",
            Self::Ldc14 => "AArch32 LDC/STC (CP14)",
            Self::FpAccess => "SVE/SIMD/FP access",
            Self::Vmrs => "AArch32 VMRS (ID group)",
            Self::PauthTrap => "pointer authentication trap",
            Self::Ls64 => "LD64B/ST64B",
            Self::Mrrc14 => "AArch32 MRRC (CP14)",
            Self::Bti => "branch target exception",
            Self::IllegalState => "illegal execution state",
            Self::Svc32 => "SVC from AArch32",
            Self::Hvc32 => "HVC from AArch32",
            Self::Smc32 => "SMC from AArch32",
            Self::Svc64 => "SVC from AArch64",
            Self::Hvc64 => "HVC from AArch64",
            Self::Smc64 => "SMC from AArch64",
            Self::SysReg => "MSR/MRS/system instruction",
            Self::Sve => "SVE access",
            Self::Eret => "ERET",
            Self::Fpac => "pointer authentication failure",
            Self::Sme => "SME access",
            Self::InstrAbortLower => "instruction abort from a lower EL",
            Self::InstrAbortSame => "instruction abort from EL2",
            Self::PcAlignment => "PC alignment fault",
            Self::DataAbortLower => "data abort from a lower EL",
            Self::DataAbortSame => "data abort from EL2",
            Self::SpAlignment => "SP alignment fault",
            Self::Mops => "memory copy/set exception",
            Self::Fp32 => "FP exception from AArch32",
            Self::Fp64 => "FP exception from AArch64",
            Self::SError => "SError",
            Self::BreakpointLower => "breakpoint from a lower EL",
            Self::BreakpointSame => "breakpoint from EL2",
            Self::SoftwareStepLower => "software step from a lower EL",
            Self::SoftwareStepSame => "software step from EL2",
            Self::WatchpointLower => "watchpoint from a lower EL",
            Self::WatchpointSame => "watchpoint from EL2",
            Self::Bkpt32 => "BKPT from AArch32",
            Self::VectorCatch32 => "vector catch from AArch32",
            Self::Brk64 => "BRK from AArch64",
            Self::Other(_) => "reserved exception class",
        };
        f.write_str(name)
    }
}

/// A decoded ESR_EL2 value (ARM ARM D17.2.37).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esr {
    /// The value as read from ESR_EL2.
    pub raw: u64,
    /// `[31:26]` EC.
    pub ec: ExceptionClass,
    /// `[25]` IL: the trapped instruction was 32 bits long (always for A64).
    pub il: bool,
    /// `[24:0]` ISS, the class-specific syndrome.
    pub iss: u32,
    /// `[55:32]` ISS2 (FEAT_LS64, FEAT_MTE, ...; zero on older cores).
    pub iss2: u32,
}

impl Esr {
    /// Splits a raw ESR_EL2 value into its fields. Never fails: unknown
    /// classes become [`ExceptionClass::Other`].
    pub const fn decode(raw: u64) -> Self {
        Self {
            raw,
            ec: ExceptionClass::from_code(bits(raw, 31, 26) as u8),
            il: bit(raw, 25),
            iss: bits(raw, 24, 0) as u32,
            iss2: bits(raw, 55, 32) as u32,
        }
    }

    /// The class-specific syndrome, typed.
    pub const fn syndrome(&self) -> Syndrome {
        let iss = self.iss;
        match self.ec {
            ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame => {
                Syndrome::DataAbort(DataAbort::from_iss(iss))
            }
            ExceptionClass::InstrAbortLower | ExceptionClass::InstrAbortSame => {
                Syndrome::InstrAbort(InstrAbort::from_iss(iss))
            }
            ExceptionClass::Wfx => Syndrome::Wfx(Wfx::from_iss(iss)),
            ExceptionClass::Hvc64 | ExceptionClass::Hvc32 => Syndrome::Hvc(imm16(iss)),
            ExceptionClass::Smc64 | ExceptionClass::Smc32 => Syndrome::Smc(imm16(iss)),
            ExceptionClass::Svc64 | ExceptionClass::Svc32 => Syndrome::Svc(imm16(iss)),
            ExceptionClass::Brk64 => Syndrome::Brk(imm16(iss)),
            ExceptionClass::SysReg => Syndrome::SysReg(SysRegAccess::from_iss(iss)),
            _ => Syndrome::Other,
        }
    }
}

/// ISS `[15:0]` imm16 of an SVC/HVC/SMC/BRK (ARM ARM D17.2.37, "ISS
/// encoding for an exception from an HVC or SVC instruction execution").
const fn imm16(iss: u32) -> u16 {
    (iss & 0xffff) as u16
}

/// The ISS of the classes a hypervisor acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syndrome {
    /// EC 0x24/0x25.
    DataAbort(DataAbort),
    /// EC 0x20/0x21.
    InstrAbort(InstrAbort),
    /// EC 0x01.
    Wfx(Wfx),
    /// EC 0x16/0x12: the `hvc #imm16` immediate.
    Hvc(u16),
    /// EC 0x17/0x13: the `smc #imm16` immediate.
    Smc(u16),
    /// EC 0x15/0x11: the `svc #imm16` immediate.
    Svc(u16),
    /// EC 0x3c: the `brk #imm16` immediate.
    Brk(u16),
    /// EC 0x18.
    SysReg(SysRegAccess),
    /// Any class without a typed decoder here; read [`Esr::iss`].
    Other,
}

/// A fault status code, DFSC/IFSC (ARM ARM D17.2.37, "ISS encoding for an
/// exception from a Data Abort", DFSC table). Levels are -1..=3 (level -1
/// exists with FEAT_LPA2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStatus {
    /// 0b0000nn, 0b101001: address size fault.
    AddressSize { level: i8 },
    /// 0b0001nn, 0b101011: translation fault.
    Translation { level: i8 },
    /// 0b0010nn: access flag fault (level 0 with FEAT_LPA2).
    AccessFlag { level: i8 },
    /// 0b0011nn: permission fault (level 0 with FEAT_LPA2).
    Permission { level: i8 },
    /// 0b010000: synchronous external abort, not on a table walk.
    SyncExternal,
    /// 0b010001: synchronous tag check fault (FEAT_MTE).
    TagCheck,
    /// 0b0101nn, 0b010011: synchronous external abort on a table walk.
    SyncExternalWalk { level: i8 },
    /// 0b011000: synchronous parity/ECC error, not on a table walk.
    SyncParity,
    /// 0b0111nn, 0b011011: synchronous parity/ECC error on a table walk.
    SyncParityWalk { level: i8 },
    /// 0b100001: alignment fault.
    Alignment,
    /// 0b1001nn, 0b100011: granule protection fault on a table walk (FEAT_RME).
    GranuleProtectionWalk { level: i8 },
    /// 0b101000: granule protection fault, not on a table walk.
    GranuleProtection,
    /// 0b110000: TLB conflict abort.
    TlbConflict,
    /// 0b110001: unsupported atomic hardware update (FEAT_HAFDBS).
    UnsupportedAtomicUpdate,
    /// 0b110100: IMPLEMENTATION DEFINED (lockdown).
    ImpDefLockdown,
    /// 0b110101: IMPLEMENTATION DEFINED (unsupported exclusive or atomic).
    ImpDefAtomic,
    /// Any other (reserved) code.
    Other(u8),
}

impl FaultStatus {
    /// Decodes a 6-bit DFSC/IFSC.
    pub const fn from_code(code: u8) -> Self {
        let code = code & 0x3f;
        // For the 0bxxxxnn groups, nn is the level.
        let level = (code & 0b11) as i8;
        match code {
            0b000000..=0b000011 => Self::AddressSize { level },
            0b101001 => Self::AddressSize { level: -1 },
            0b000100..=0b000111 => Self::Translation { level },
            0b101011 => Self::Translation { level: -1 },
            0b001000..=0b001011 => Self::AccessFlag { level },
            0b001100..=0b001111 => Self::Permission { level },
            0b010000 => Self::SyncExternal,
            0b010001 => Self::TagCheck,
            0b010011 => Self::SyncExternalWalk { level: -1 },
            0b010100..=0b010111 => Self::SyncExternalWalk { level },
            0b011000 => Self::SyncParity,
            0b011011 => Self::SyncParityWalk { level: -1 },
            0b011100..=0b011111 => Self::SyncParityWalk { level },
            0b100001 => Self::Alignment,
            0b100011 => Self::GranuleProtectionWalk { level: -1 },
            0b100100..=0b100111 => Self::GranuleProtectionWalk { level },
            0b101000 => Self::GranuleProtection,
            0b110000 => Self::TlbConflict,
            0b110001 => Self::UnsupportedAtomicUpdate,
            0b110100 => Self::ImpDefLockdown,
            0b110101 => Self::ImpDefAtomic,
            other => Self::Other(other),
        }
    }

    /// The table level the fault was reported at, if the code has one.
    pub const fn level(self) -> Option<i8> {
        match self {
            Self::AddressSize { level }
            | Self::Translation { level }
            | Self::AccessFlag { level }
            | Self::Permission { level }
            | Self::SyncExternalWalk { level }
            | Self::SyncParityWalk { level }
            | Self::GranuleProtectionWalk { level } => Some(level),
            _ => None,
        }
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::AddressSize { .. } => "address size fault",
            Self::Translation { .. } => "translation fault",
            Self::AccessFlag { .. } => "access flag fault",
            Self::Permission { .. } => "permission fault",
            Self::SyncExternal => "synchronous external abort",
            Self::TagCheck => "tag check fault",
            Self::SyncExternalWalk { .. } => "synchronous external abort on table walk",
            Self::SyncParity => "parity/ECC error",
            Self::SyncParityWalk { .. } => "parity/ECC error on table walk",
            Self::Alignment => "alignment fault",
            Self::GranuleProtectionWalk { .. } => "granule protection fault on table walk",
            Self::GranuleProtection => "granule protection fault",
            Self::TlbConflict => "TLB conflict abort",
            Self::UnsupportedAtomicUpdate => "unsupported atomic hardware update fault",
            Self::ImpDefLockdown => "IMPLEMENTATION DEFINED fault (lockdown)",
            Self::ImpDefAtomic => "IMPLEMENTATION DEFINED fault (exclusive/atomic)",
            Self::Other(code) => return write!(f, "reserved fault status {code:#04x}"),
        };
        f.write_str(name)?;
        match self.level() {
            Some(level) => write!(f, " level {level}"),
            None => Ok(()),
        }
    }
}

/// The ISS of a data abort (ARM ARM D17.2.37, "ISS encoding for an
/// exception from a Data Abort").
///
/// `sas`, `sse`, `srt`, `sf` and `ar` are valid only when `isv` is set;
/// they are kept raw here and interpreted by `mmio::decode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbort {
    /// `[24]` ISV: `[23:14]` hold a valid instruction syndrome.
    pub isv: bool,
    /// `[23:22]` SAS: access size is `1 << sas` bytes.
    pub sas: u8,
    /// `[21]` SSE: the load sign-extends.
    pub sse: bool,
    /// `[20:16]` SRT: the transfer register (31 = xzr/wzr).
    pub srt: u8,
    /// `[15]` SF: the transfer register is 64-bit (X, not W).
    pub sf: bool,
    /// `[14]` AR: acquire/release semantics.
    pub ar: bool,
    /// `[13]` VNCR: the fault came from a VNCR_EL2-relative access (FEAT_NV2).
    pub vncr: bool,
    /// `[10]` FnV: FAR is not valid.
    pub fnv: bool,
    /// `[9]` EA: external abort type (IMPLEMENTATION DEFINED).
    pub ea: bool,
    /// `[8]` CM: the fault came from a cache maintenance or address
    /// translation instruction.
    pub cm: bool,
    /// `[7]` S1PTW: stage-2 fault on a stage-1 translation table walk.
    pub s1ptw: bool,
    /// `[6]` WnR: the access was a write.
    pub wnr: bool,
    /// `[5:0]` DFSC.
    pub dfsc: FaultStatus,
}

impl DataAbort {
    /// Decodes the 25-bit ISS of EC 0x24/0x25.
    pub const fn from_iss(iss: u32) -> Self {
        let iss = iss as u64;
        Self {
            isv: bit(iss, 24),
            sas: bits(iss, 23, 22) as u8,
            sse: bit(iss, 21),
            srt: bits(iss, 20, 16) as u8,
            sf: bit(iss, 15),
            ar: bit(iss, 14),
            vncr: bit(iss, 13),
            fnv: bit(iss, 10),
            ea: bit(iss, 9),
            cm: bit(iss, 8),
            s1ptw: bit(iss, 7),
            wnr: bit(iss, 6),
            dfsc: FaultStatus::from_code(bits(iss, 5, 0) as u8),
        }
    }

    /// Access size in bytes (1, 2, 4 or 8) from SAS.
    pub const fn size(&self) -> u8 {
        1 << (self.sas & 3)
    }
}

impl fmt::Display for DataAbort {
    /// "write, 4 bytes, w1, translation fault level 3".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.wnr { "write" } else { "read" })?;
        if self.isv {
            let size = self.size();
            let unit = if size == 1 { "byte" } else { "bytes" };
            write!(f, ", {size} {unit}, ")?;
            write_gpr(f, self.srt, self.sf)?;
            if self.sse {
                f.write_str(", sign-extended")?;
            }
            if self.ar {
                f.write_str(", acquire/release")?;
            }
        } else {
            f.write_str(", no instruction syndrome")?;
        }
        if self.cm {
            f.write_str(", cache maintenance")?;
        }
        if self.s1ptw {
            f.write_str(", on stage-1 table walk")?;
        }
        if self.fnv {
            f.write_str(", FAR not valid")?;
        }
        write!(f, ", {}", self.dfsc)
    }
}

/// The ISS of an instruction abort (ARM ARM D17.2.37, "ISS encoding for an
/// exception from an Instruction Abort").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrAbort {
    /// `[10]` FnV: FAR is not valid.
    pub fnv: bool,
    /// `[9]` EA: external abort type.
    pub ea: bool,
    /// `[7]` S1PTW: stage-2 fault on a stage-1 translation table walk.
    pub s1ptw: bool,
    /// `[5:0]` IFSC.
    pub ifsc: FaultStatus,
}

impl InstrAbort {
    /// Decodes the 25-bit ISS of EC 0x20/0x21.
    pub const fn from_iss(iss: u32) -> Self {
        let iss = iss as u64;
        Self {
            fnv: bit(iss, 10),
            ea: bit(iss, 9),
            s1ptw: bit(iss, 7),
            ifsc: FaultStatus::from_code(bits(iss, 5, 0) as u8),
        }
    }
}

impl fmt::Display for InstrAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fetch, {}", self.ifsc)?;
        if self.s1ptw {
            f.write_str(", on stage-1 table walk")?;
        }
        if self.fnv {
            f.write_str(", FAR not valid")?;
        }
        Ok(())
    }
}

/// Which wait instruction trapped: WFx ISS `[1:0]` TI (ARM ARM D17.2.37,
/// "ISS encoding for an exception from a WF* instruction").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WfxKind {
    /// TI = 0b00.
    Wfi,
    /// TI = 0b01.
    Wfe,
    /// TI = 0b10 (FEAT_WFxT): WFI with a timeout in a register.
    Wfit,
    /// TI = 0b11 (FEAT_WFxT).
    Wfet,
}

/// The ISS of a trapped WFI/WFE/WFIT/WFET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wfx {
    /// `[1:0]` TI.
    pub kind: WfxKind,
    /// `[2]` RV: `rn` is valid (WFIT/WFET only).
    pub rv: bool,
    /// `[9:5]` Rn: the register holding the WFxT timeout.
    pub rn: u8,
}

impl Wfx {
    /// Decodes the ISS of EC 0x01.
    pub const fn from_iss(iss: u32) -> Self {
        let iss = iss as u64;
        let kind = match bits(iss, 1, 0) {
            0b00 => WfxKind::Wfi,
            0b01 => WfxKind::Wfe,
            0b10 => WfxKind::Wfit,
            _ => WfxKind::Wfet,
        };
        Self { kind, rv: bit(iss, 2), rn: bits(iss, 9, 5) as u8 }
    }
}

impl fmt::Display for Wfx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            WfxKind::Wfi => "WFI",
            WfxKind::Wfe => "WFE",
            WfxKind::Wfit => "WFIT",
            WfxKind::Wfet => "WFET",
        };
        f.write_str(name)?;
        if self.rv {
            f.write_str(" ")?;
            write_gpr(f, self.rn, true)?;
        }
        Ok(())
    }
}

/// A system register or system instruction encoding (op0, op1, CRn, CRm,
/// op2), as in `S3_0_C12_C11_5` (ARM ARM C5.1 "The System instruction
/// class encoding space"). op0 = 1 are system instructions (DC, IC, TLBI,
/// AT); op0 = 2 and 3 are registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysReg {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
}

impl SysReg {
    /// Builds `S<op0>_<op1>_C<crn>_C<crm>_<op2>`; out-of-range fields are
    /// masked to their widths (2, 3, 4, 4, 3 bits).
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self { op0: op0 & 3, op1: op1 & 7, crn: crn & 15, crm: crm & 15, op2: op2 & 7 }
    }

    // GICv3 CPU interface (GIC architecture spec IHI 0069, §12.2).
    pub const ICC_PMR_EL1: Self = Self::new(3, 0, 4, 6, 0);
    pub const ICC_DIR_EL1: Self = Self::new(3, 0, 12, 11, 1);
    pub const ICC_SGI1R_EL1: Self = Self::new(3, 0, 12, 11, 5);
    pub const ICC_ASGI1R_EL1: Self = Self::new(3, 0, 12, 11, 6);
    pub const ICC_SGI0R_EL1: Self = Self::new(3, 0, 12, 11, 7);
    pub const ICC_IAR1_EL1: Self = Self::new(3, 0, 12, 12, 0);
    pub const ICC_EOIR1_EL1: Self = Self::new(3, 0, 12, 12, 1);
    pub const ICC_CTLR_EL1: Self = Self::new(3, 0, 12, 12, 4);
    pub const ICC_SRE_EL1: Self = Self::new(3, 0, 12, 12, 5);
    pub const ICC_IGRPEN1_EL1: Self = Self::new(3, 0, 12, 12, 7);

    // Generic timer (ARM ARM D11).
    pub const CNTKCTL_EL1: Self = Self::new(3, 0, 14, 1, 0);
    pub const CNTFRQ_EL0: Self = Self::new(3, 3, 14, 0, 0);
    pub const CNTPCT_EL0: Self = Self::new(3, 3, 14, 0, 1);
    pub const CNTVCT_EL0: Self = Self::new(3, 3, 14, 0, 2);
    pub const CNTP_TVAL_EL0: Self = Self::new(3, 3, 14, 2, 0);
    pub const CNTP_CTL_EL0: Self = Self::new(3, 3, 14, 2, 1);
    pub const CNTP_CVAL_EL0: Self = Self::new(3, 3, 14, 2, 2);
    pub const CNTV_TVAL_EL0: Self = Self::new(3, 3, 14, 3, 0);
    pub const CNTV_CTL_EL0: Self = Self::new(3, 3, 14, 3, 1);
    pub const CNTV_CVAL_EL0: Self = Self::new(3, 3, 14, 3, 2);

    // Identification registers (HCR_EL2.TID1/TID2/TID3).
    pub const MIDR_EL1: Self = Self::new(3, 0, 0, 0, 0);
    pub const MPIDR_EL1: Self = Self::new(3, 0, 0, 0, 5);
    pub const REVIDR_EL1: Self = Self::new(3, 0, 0, 0, 6);
    pub const ID_AA64PFR0_EL1: Self = Self::new(3, 0, 0, 4, 0);
    pub const ID_AA64PFR1_EL1: Self = Self::new(3, 0, 0, 4, 1);
    pub const ID_AA64ZFR0_EL1: Self = Self::new(3, 0, 0, 4, 4);
    pub const ID_AA64SMFR0_EL1: Self = Self::new(3, 0, 0, 4, 5);
    pub const ID_AA64DFR0_EL1: Self = Self::new(3, 0, 0, 5, 0);
    pub const ID_AA64DFR1_EL1: Self = Self::new(3, 0, 0, 5, 1);
    pub const ID_AA64AFR0_EL1: Self = Self::new(3, 0, 0, 5, 4);
    pub const ID_AA64AFR1_EL1: Self = Self::new(3, 0, 0, 5, 5);
    pub const ID_AA64ISAR0_EL1: Self = Self::new(3, 0, 0, 6, 0);
    pub const ID_AA64ISAR1_EL1: Self = Self::new(3, 0, 0, 6, 1);
    pub const ID_AA64ISAR2_EL1: Self = Self::new(3, 0, 0, 6, 2);
    pub const ID_AA64MMFR0_EL1: Self = Self::new(3, 0, 0, 7, 0);
    pub const ID_AA64MMFR1_EL1: Self = Self::new(3, 0, 0, 7, 1);
    pub const ID_AA64MMFR2_EL1: Self = Self::new(3, 0, 0, 7, 2);
    pub const ID_AA64MMFR3_EL1: Self = Self::new(3, 0, 0, 7, 3);
    pub const ID_AA64MMFR4_EL1: Self = Self::new(3, 0, 0, 7, 4);
    pub const ID_AA64PFR2_EL1: Self = Self::new(3, 0, 0, 4, 2);
    pub const ID_AA64FPFR0_EL1: Self = Self::new(3, 0, 0, 4, 7);
    pub const ID_AA64DFR2_EL1: Self = Self::new(3, 0, 0, 5, 2);
    pub const ID_AA64ISAR3_EL1: Self = Self::new(3, 0, 0, 6, 3);
    // The AArch32 ID registers, read from AArch64 EL1 (ARM ARM D23.2,
    // "op0 = 3, op1 = 0, CRn = 0, CRm = 1..3"); also HCR_EL2.TID3.
    pub const ID_PFR0_EL1: Self = Self::new(3, 0, 0, 1, 0);
    pub const ID_PFR1_EL1: Self = Self::new(3, 0, 0, 1, 1);
    pub const ID_DFR0_EL1: Self = Self::new(3, 0, 0, 1, 2);
    pub const ID_AFR0_EL1: Self = Self::new(3, 0, 0, 1, 3);
    pub const ID_MMFR0_EL1: Self = Self::new(3, 0, 0, 1, 4);
    pub const ID_MMFR1_EL1: Self = Self::new(3, 0, 0, 1, 5);
    pub const ID_MMFR2_EL1: Self = Self::new(3, 0, 0, 1, 6);
    pub const ID_MMFR3_EL1: Self = Self::new(3, 0, 0, 1, 7);
    pub const ID_ISAR0_EL1: Self = Self::new(3, 0, 0, 2, 0);
    pub const ID_ISAR1_EL1: Self = Self::new(3, 0, 0, 2, 1);
    pub const ID_ISAR2_EL1: Self = Self::new(3, 0, 0, 2, 2);
    pub const ID_ISAR3_EL1: Self = Self::new(3, 0, 0, 2, 3);
    pub const ID_ISAR4_EL1: Self = Self::new(3, 0, 0, 2, 4);
    pub const ID_ISAR5_EL1: Self = Self::new(3, 0, 0, 2, 5);
    pub const ID_MMFR4_EL1: Self = Self::new(3, 0, 0, 2, 6);
    pub const ID_ISAR6_EL1: Self = Self::new(3, 0, 0, 2, 7);
    pub const MVFR0_EL1: Self = Self::new(3, 0, 0, 3, 0);
    pub const MVFR1_EL1: Self = Self::new(3, 0, 0, 3, 1);
    pub const MVFR2_EL1: Self = Self::new(3, 0, 0, 3, 2);
    pub const ID_PFR2_EL1: Self = Self::new(3, 0, 0, 3, 4);
    pub const ID_DFR1_EL1: Self = Self::new(3, 0, 0, 3, 5);
    pub const ID_MMFR5_EL1: Self = Self::new(3, 0, 0, 3, 6);
    pub const CCSIDR_EL1: Self = Self::new(3, 1, 0, 0, 0);
    pub const CLIDR_EL1: Self = Self::new(3, 1, 0, 0, 1);
    pub const CSSELR_EL1: Self = Self::new(3, 2, 0, 0, 0);
    pub const CTR_EL0: Self = Self::new(3, 3, 0, 0, 1);
    pub const DCZID_EL0: Self = Self::new(3, 3, 0, 0, 7);

    // Virtual memory controls (HCR_EL2.TVM/TRVM) and ACTLR (HCR_EL2.TACR).
    pub const SCTLR_EL1: Self = Self::new(3, 0, 1, 0, 0);
    pub const ACTLR_EL1: Self = Self::new(3, 0, 1, 0, 1);
    pub const TTBR0_EL1: Self = Self::new(3, 0, 2, 0, 0);
    pub const TTBR1_EL1: Self = Self::new(3, 0, 2, 0, 1);
    pub const TCR_EL1: Self = Self::new(3, 0, 2, 0, 2);
    pub const AFSR0_EL1: Self = Self::new(3, 0, 5, 1, 0);
    pub const AFSR1_EL1: Self = Self::new(3, 0, 5, 1, 1);
    pub const ESR_EL1: Self = Self::new(3, 0, 5, 2, 0);
    pub const FAR_EL1: Self = Self::new(3, 0, 6, 0, 0);
    pub const MAIR_EL1: Self = Self::new(3, 0, 10, 2, 0);
    pub const AMAIR_EL1: Self = Self::new(3, 0, 10, 3, 0);
    pub const CONTEXTIDR_EL1: Self = Self::new(3, 0, 13, 0, 1);

    // Debug and PMU (MDCR_EL2 traps).
    pub const MDSCR_EL1: Self = Self::new(2, 0, 0, 2, 2);
    pub const OSLAR_EL1: Self = Self::new(2, 0, 1, 0, 4);
    pub const OSLSR_EL1: Self = Self::new(2, 0, 1, 1, 4);
    pub const OSDLR_EL1: Self = Self::new(2, 0, 1, 3, 4);
    pub const MDCCSR_EL0: Self = Self::new(2, 3, 0, 1, 0);
    pub const PMCR_EL0: Self = Self::new(3, 3, 9, 12, 0);
    pub const PMCCNTR_EL0: Self = Self::new(3, 3, 9, 13, 0);
    pub const PMUSERENR_EL0: Self = Self::new(3, 3, 9, 14, 0);

    // System instructions (op0 = 1): set/way cache maintenance is trapped by
    // HCR_EL2.TSW because set/way operations cannot be virtualized (ARM ARM
    // D7.5.9.x "Performing cache maintenance by set/way").
    pub const DC_IVAC: Self = Self::new(1, 0, 7, 6, 1);
    pub const DC_ISW: Self = Self::new(1, 0, 7, 6, 2);
    pub const DC_CSW: Self = Self::new(1, 0, 7, 10, 2);
    pub const DC_CISW: Self = Self::new(1, 0, 7, 14, 2);
    pub const DC_ZVA: Self = Self::new(1, 3, 7, 4, 1);
    pub const DC_CVAC: Self = Self::new(1, 3, 7, 10, 1);
    pub const DC_CIVAC: Self = Self::new(1, 3, 7, 14, 1);
    pub const IC_IALLUIS: Self = Self::new(1, 0, 7, 1, 0);
    pub const IC_IALLU: Self = Self::new(1, 0, 7, 5, 0);
    pub const TLBI_VMALLE1IS: Self = Self::new(1, 0, 8, 3, 0);
    pub const TLBI_VMALLE1: Self = Self::new(1, 0, 8, 7, 0);

    /// Named encodings, for [`SysReg::name`] and the Display forms.
    const NAMES: &'static [(SysReg, &'static str)] = &[
        (Self::ICC_PMR_EL1, "ICC_PMR_EL1"),
        (Self::ICC_DIR_EL1, "ICC_DIR_EL1"),
        (Self::ICC_SGI1R_EL1, "ICC_SGI1R_EL1"),
        (Self::ICC_ASGI1R_EL1, "ICC_ASGI1R_EL1"),
        (Self::ICC_SGI0R_EL1, "ICC_SGI0R_EL1"),
        (Self::ICC_IAR1_EL1, "ICC_IAR1_EL1"),
        (Self::ICC_EOIR1_EL1, "ICC_EOIR1_EL1"),
        (Self::ICC_CTLR_EL1, "ICC_CTLR_EL1"),
        (Self::ICC_SRE_EL1, "ICC_SRE_EL1"),
        (Self::ICC_IGRPEN1_EL1, "ICC_IGRPEN1_EL1"),
        (Self::CNTKCTL_EL1, "CNTKCTL_EL1"),
        (Self::CNTFRQ_EL0, "CNTFRQ_EL0"),
        (Self::CNTPCT_EL0, "CNTPCT_EL0"),
        (Self::CNTVCT_EL0, "CNTVCT_EL0"),
        (Self::CNTP_TVAL_EL0, "CNTP_TVAL_EL0"),
        (Self::CNTP_CTL_EL0, "CNTP_CTL_EL0"),
        (Self::CNTP_CVAL_EL0, "CNTP_CVAL_EL0"),
        (Self::CNTV_TVAL_EL0, "CNTV_TVAL_EL0"),
        (Self::CNTV_CTL_EL0, "CNTV_CTL_EL0"),
        (Self::CNTV_CVAL_EL0, "CNTV_CVAL_EL0"),
        (Self::MIDR_EL1, "MIDR_EL1"),
        (Self::MPIDR_EL1, "MPIDR_EL1"),
        (Self::REVIDR_EL1, "REVIDR_EL1"),
        (Self::ID_AA64PFR0_EL1, "ID_AA64PFR0_EL1"),
        (Self::ID_AA64PFR1_EL1, "ID_AA64PFR1_EL1"),
        (Self::ID_AA64ZFR0_EL1, "ID_AA64ZFR0_EL1"),
        (Self::ID_AA64SMFR0_EL1, "ID_AA64SMFR0_EL1"),
        (Self::ID_AA64DFR0_EL1, "ID_AA64DFR0_EL1"),
        (Self::ID_AA64DFR1_EL1, "ID_AA64DFR1_EL1"),
        (Self::ID_AA64AFR0_EL1, "ID_AA64AFR0_EL1"),
        (Self::ID_AA64AFR1_EL1, "ID_AA64AFR1_EL1"),
        (Self::ID_AA64ISAR0_EL1, "ID_AA64ISAR0_EL1"),
        (Self::ID_AA64ISAR1_EL1, "ID_AA64ISAR1_EL1"),
        (Self::ID_AA64ISAR2_EL1, "ID_AA64ISAR2_EL1"),
        (Self::ID_AA64MMFR0_EL1, "ID_AA64MMFR0_EL1"),
        (Self::ID_AA64MMFR1_EL1, "ID_AA64MMFR1_EL1"),
        (Self::ID_AA64MMFR2_EL1, "ID_AA64MMFR2_EL1"),
        (Self::ID_AA64MMFR3_EL1, "ID_AA64MMFR3_EL1"),
        (Self::ID_AA64MMFR4_EL1, "ID_AA64MMFR4_EL1"),
        (Self::ID_AA64PFR2_EL1, "ID_AA64PFR2_EL1"),
        (Self::ID_AA64FPFR0_EL1, "ID_AA64FPFR0_EL1"),
        (Self::ID_AA64DFR2_EL1, "ID_AA64DFR2_EL1"),
        (Self::ID_AA64ISAR3_EL1, "ID_AA64ISAR3_EL1"),
        (Self::ID_PFR0_EL1, "ID_PFR0_EL1"),
        (Self::ID_PFR1_EL1, "ID_PFR1_EL1"),
        (Self::ID_DFR0_EL1, "ID_DFR0_EL1"),
        (Self::ID_AFR0_EL1, "ID_AFR0_EL1"),
        (Self::ID_MMFR0_EL1, "ID_MMFR0_EL1"),
        (Self::ID_MMFR1_EL1, "ID_MMFR1_EL1"),
        (Self::ID_MMFR2_EL1, "ID_MMFR2_EL1"),
        (Self::ID_MMFR3_EL1, "ID_MMFR3_EL1"),
        (Self::ID_ISAR0_EL1, "ID_ISAR0_EL1"),
        (Self::ID_ISAR1_EL1, "ID_ISAR1_EL1"),
        (Self::ID_ISAR2_EL1, "ID_ISAR2_EL1"),
        (Self::ID_ISAR3_EL1, "ID_ISAR3_EL1"),
        (Self::ID_ISAR4_EL1, "ID_ISAR4_EL1"),
        (Self::ID_ISAR5_EL1, "ID_ISAR5_EL1"),
        (Self::ID_MMFR4_EL1, "ID_MMFR4_EL1"),
        (Self::ID_ISAR6_EL1, "ID_ISAR6_EL1"),
        (Self::MVFR0_EL1, "MVFR0_EL1"),
        (Self::MVFR1_EL1, "MVFR1_EL1"),
        (Self::MVFR2_EL1, "MVFR2_EL1"),
        (Self::ID_PFR2_EL1, "ID_PFR2_EL1"),
        (Self::ID_DFR1_EL1, "ID_DFR1_EL1"),
        (Self::ID_MMFR5_EL1, "ID_MMFR5_EL1"),
        (Self::CCSIDR_EL1, "CCSIDR_EL1"),
        (Self::CLIDR_EL1, "CLIDR_EL1"),
        (Self::CSSELR_EL1, "CSSELR_EL1"),
        (Self::CTR_EL0, "CTR_EL0"),
        (Self::DCZID_EL0, "DCZID_EL0"),
        (Self::SCTLR_EL1, "SCTLR_EL1"),
        (Self::ACTLR_EL1, "ACTLR_EL1"),
        (Self::TTBR0_EL1, "TTBR0_EL1"),
        (Self::TTBR1_EL1, "TTBR1_EL1"),
        (Self::TCR_EL1, "TCR_EL1"),
        (Self::AFSR0_EL1, "AFSR0_EL1"),
        (Self::AFSR1_EL1, "AFSR1_EL1"),
        (Self::ESR_EL1, "ESR_EL1"),
        (Self::FAR_EL1, "FAR_EL1"),
        (Self::MAIR_EL1, "MAIR_EL1"),
        (Self::AMAIR_EL1, "AMAIR_EL1"),
        (Self::CONTEXTIDR_EL1, "CONTEXTIDR_EL1"),
        (Self::MDSCR_EL1, "MDSCR_EL1"),
        (Self::OSLAR_EL1, "OSLAR_EL1"),
        (Self::OSLSR_EL1, "OSLSR_EL1"),
        (Self::OSDLR_EL1, "OSDLR_EL1"),
        (Self::MDCCSR_EL0, "MDCCSR_EL0"),
        (Self::PMCR_EL0, "PMCR_EL0"),
        (Self::PMCCNTR_EL0, "PMCCNTR_EL0"),
        (Self::PMUSERENR_EL0, "PMUSERENR_EL0"),
        (Self::DC_IVAC, "DC IVAC"),
        (Self::DC_ISW, "DC ISW"),
        (Self::DC_CSW, "DC CSW"),
        (Self::DC_CISW, "DC CISW"),
        (Self::DC_ZVA, "DC ZVA"),
        (Self::DC_CVAC, "DC CVAC"),
        (Self::DC_CIVAC, "DC CIVAC"),
        (Self::IC_IALLUIS, "IC IALLUIS"),
        (Self::IC_IALLU, "IC IALLU"),
        (Self::TLBI_VMALLE1IS, "TLBI VMALLE1IS"),
        (Self::TLBI_VMALLE1, "TLBI VMALLE1"),
    ];

    /// The architectural name, if this is one of the encodings above.
    pub fn name(&self) -> Option<&'static str> {
        Self::NAMES.iter().find(|(reg, _)| reg == self).map(|(_, name)| *name)
    }

    /// An ID register in the HCR_EL2.TID3 group: op0=3, op1=0, CRn=0,
    /// CRm=1..=7 (ARM ARM D17.2.48 "HCR_EL2", TID3).
    pub const fn is_id_group3(&self) -> bool {
        self.op0 == 3 && self.op1 == 0 && self.crn == 0 && self.crm >= 1 && self.crm <= 7
    }

    /// A set/way data cache operation (DC ISW/CSW/CISW), trapped by
    /// HCR_EL2.TSW.
    pub const fn is_set_way_op(&self) -> bool {
        self.op0 == 1
            && self.op1 == 0
            && self.crn == 7
            && self.op2 == 2
            && (self.crm == 6 || self.crm == 10 || self.crm == 14)
    }

    /// One of the EL1 virtual-memory control registers whose writes
    /// HCR_EL2.TVM traps (ARM ARM D19.2.48 "HCR_EL2", TVM): SCTLR_EL1,
    /// TTBR0_EL1, TTBR1_EL1, TCR_EL1, ESR_EL1, FAR_EL1, AFSR0_EL1,
    /// AFSR1_EL1, MAIR_EL1, AMAIR_EL1, CONTEXTIDR_EL1.
    pub const fn is_vm_control(&self) -> bool {
        if self.op0 != 3 || self.op1 != 0 {
            return false;
        }
        matches!(
            (self.crn, self.crm, self.op2),
            (1, 0, 0) | (2, 0, 0..=2) | (5, 1, 0..=1) | (5, 2, 0) | (6, 0, 0) | (10, 2, 0) | (10, 3, 0) | (13, 0, 1)
        )
    }

    /// Which of the hypervisor's HCR_EL2 traps an access to this encoding
    /// comes from (the exit handler's first decision).
    pub const fn trap(&self) -> SysRegTrap {
        if self.is_id_group3() {
            SysRegTrap::IdGroup3
        } else if self.is_set_way_op() {
            SysRegTrap::SetWay
        } else if self.is_vm_control() {
            SysRegTrap::VmControl
        } else {
            SysRegTrap::Other
        }
    }
}

/// The trap group of a system register or instruction encoding
/// ([`SysReg::trap`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysRegTrap {
    /// HCR_EL2.TID3: ID group 3 (op0 = 3, op1 = 0, CRn = 0, CRm = 1..7),
    /// allocated or not; emulated by `idregs`.
    IdGroup3,
    /// HCR_EL2.TSW: DC ISW/CSW/CISW.
    SetWay,
    /// HCR_EL2.TVM: a write to an EL1 virtual-memory control register.
    VmControl,
    /// Anything else (GIC, timer, debug, implementation defined, ...).
    Other,
}

impl fmt::Display for SysReg {
    /// The name, or the generic `S3_0_C12_C11_5` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "S{}_{}_C{}_C{}_{}", self.op0, self.op1, self.crn, self.crm, self.op2),
        }
    }
}

/// A trapped MSR/MRS/SYS/SYSL (ARM ARM D17.2.37, "ISS encoding for an
/// exception from MSR, MRS, or System instruction execution in AArch64
/// state").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    /// `[21:20]` Op0, `[19:17]` Op2, `[16:14]` Op1, `[13:10]` CRn, `[4:1]` CRm.
    pub reg: SysReg,
    /// `[9:5]` Rt (31 = xzr).
    pub rt: u8,
    /// `[0]` Direction: true for a read (MRS, SYSL), false for a write
    /// (MSR, SYS).
    pub read: bool,
}

impl SysRegAccess {
    /// Decodes the ISS of EC 0x18.
    pub const fn from_iss(iss: u32) -> Self {
        let iss = iss as u64;
        Self {
            reg: SysReg::new(
                bits(iss, 21, 20) as u8,
                bits(iss, 16, 14) as u8,
                bits(iss, 13, 10) as u8,
                bits(iss, 4, 1) as u8,
                bits(iss, 19, 17) as u8,
            ),
            rt: bits(iss, 9, 5) as u8,
            read: bit(iss, 0),
        }
    }

    /// The ISS that [`SysRegAccess::from_iss`] decodes back to `self`.
    pub const fn to_iss(&self) -> u32 {
        let r = &self.reg;
        ((r.op0 as u32 & 3) << 20)
            | ((r.op2 as u32 & 7) << 17)
            | ((r.op1 as u32 & 7) << 14)
            | ((r.crn as u32 & 15) << 10)
            | ((self.rt as u32 & 31) << 5)
            | ((r.crm as u32 & 15) << 1)
            | (self.read as u32)
    }
}

impl fmt::Display for SysRegAccess {
    /// The instruction as written: "MSR ICC_SGI1R_EL1, x3",
    /// "MRS x3, CNTP_CTL_EL0", "DC ISW, x3", "SYSL x3, #0, C7, C6, #2".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.reg;
        match (r.op0 == 1, self.read) {
            (false, true) => {
                f.write_str("MRS ")?;
                write_gpr(f, self.rt, true)?;
                write!(f, ", {r}")
            }
            (false, false) => {
                write!(f, "MSR {r}, ")?;
                write_gpr(f, self.rt, true)
            }
            (true, false) => {
                match r.name() {
                    Some(name) => f.write_str(name)?,
                    None => write!(f, "SYS #{}, C{}, C{}, #{}", r.op1, r.crn, r.crm, r.op2)?,
                }
                f.write_str(", ")?;
                write_gpr(f, self.rt, true)
            }
            (true, true) => {
                f.write_str("SYSL ")?;
                write_gpr(f, self.rt, true)?;
                write!(f, ", #{}, C{}, C{}, #{}", r.op1, r.crn, r.crm, r.op2)
            }
        }
    }
}

/// Writes `x<n>`/`w<n>`, or `xzr`/`wzr` for 31 (register 31 is the zero
/// register in every transfer-register field of the ISS).
fn write_gpr(f: &mut fmt::Formatter<'_>, n: u8, sixty_four: bool) -> fmt::Result {
    let prefix = if sixty_four { 'x' } else { 'w' };
    if n >= 31 { write!(f, "{prefix}zr") } else { write!(f, "{prefix}{n}") }
}

/// A one-line account of an ESR_EL2 value, for crash reports:
/// "EC 0x24 data abort from a lower EL: write, 4 bytes, w1, translation
/// fault level 3".
pub fn describe(esr: u64) -> impl fmt::Display {
    Describe(Esr::decode(esr))
}

struct Describe(Esr);

impl fmt::Display for Describe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esr = &self.0;
        write!(f, "EC {:#04x} {}", esr.ec.code(), esr.ec)?;
        match esr.syndrome() {
            Syndrome::DataAbort(da) => write!(f, ": {da}"),
            Syndrome::InstrAbort(ia) => write!(f, ": {ia}"),
            Syndrome::Wfx(wfx) => write!(f, ": {wfx}"),
            Syndrome::Hvc(imm) | Syndrome::Smc(imm) | Syndrome::Svc(imm) | Syndrome::Brk(imm) => {
                write!(f, ": #{imm:#x}")
            }
            Syndrome::SysReg(access) => write!(f, ": {access}"),
            Syndrome::Other => write!(f, ": ISS {:#09x}", esr.iss),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::ToString;

    /// Builds an ESR from EC, IL and ISS.
    fn esr(ec: u8, il: bool, iss: u32) -> u64 {
        ((ec as u64) << 26) | ((il as u64) << 25) | (iss as u64 & 0x1ff_ffff)
    }

    #[test]
    fn ec_round_trips_all_codes() {
        for code in 0u8..64 {
            let ec = ExceptionClass::from_code(code);
            assert_eq!(ec.code(), code, "{ec:?}");
            // Every class has a name, and Other only for unlisted codes.
            assert!(!ec.to_string().is_empty());
        }
        assert_eq!(ExceptionClass::from_code(0x24), ExceptionClass::DataAbortLower);
        assert_eq!(ExceptionClass::from_code(0x02), ExceptionClass::Other(0x02));
        assert_eq!(ExceptionClass::from_code(0x3f), ExceptionClass::Other(0x3f));
    }

    /// Real ESR values, derived bit by bit from D17.2.37 (EC[31:26],
    /// IL[25], ISS[24:0]).
    #[test]
    fn esr_table() {
        struct Case {
            raw: u64,
            ec: ExceptionClass,
            il: bool,
            iss: u32,
            text: &'static str,
        }
        let cases = [
            // str w1, [x0] to unmapped IPA: EC 0x24, IL, ISV, SAS=0b10,
            // SRT=1, SF=0, WnR, DFSC=0b000111 (translation fault level 3).
            Case {
                raw: 0x9381_0047,
                ec: ExceptionClass::DataAbortLower,
                il: true,
                iss: 0x0181_0047,
                text: "EC 0x24 data abort from a lower EL: write, 4 bytes, w1, translation fault level 3",
            },
            // ldr x3, [x0]: ISV, SAS=0b11, SRT=3, SF, read, translation L2.
            Case {
                raw: 0x93c3_8006,
                ec: ExceptionClass::DataAbortLower,
                il: true,
                iss: 0x01c3_8006,
                text: "EC 0x24 data abort from a lower EL: read, 8 bytes, x3, translation fault level 2",
            },
            // ldrsb w2, ...: ISV, SAS=0, SSE, SRT=2.
            Case {
                raw: 0x9322_0007,
                ec: ExceptionClass::DataAbortLower,
                il: true,
                iss: 0x0122_0007,
                text: "EC 0x24 data abort from a lower EL: read, 1 byte, w2, sign-extended, translation fault level 3",
            },
            // Post-indexed store: ISV=0, WnR, permission fault level 3.
            Case {
                raw: 0x9200_004f,
                ec: ExceptionClass::DataAbortLower,
                il: true,
                iss: 0x4f,
                text: "EC 0x24 data abort from a lower EL: write, no instruction syndrome, permission fault level 3",
            },
            // Access flag fault level 1 on a stage-1 walk.
            Case {
                raw: 0x9200_0089,
                ec: ExceptionClass::DataAbortLower,
                il: true,
                iss: 0x89,
                text: "EC 0x24 data abort from a lower EL: read, no instruction syndrome, on stage-1 table walk, access flag fault level 1",
            },
            // EL2's own null dereference: EC 0x25, translation level 0.
            Case {
                raw: 0x9600_0004,
                ec: ExceptionClass::DataAbortSame,
                il: true,
                iss: 0x04,
                text: "EC 0x25 data abort from EL2: read, no instruction syndrome, translation fault level 0",
            },
            // hvc #0.
            Case {
                raw: 0x5a00_0000,
                ec: ExceptionClass::Hvc64,
                il: true,
                iss: 0,
                text: "EC 0x16 HVC from AArch64: #0x0",
            },
            // smc #0x1234 trapped by TSC.
            Case {
                raw: 0x5e00_1234,
                ec: ExceptionClass::Smc64,
                il: true,
                iss: 0x1234,
                text: "EC 0x17 SMC from AArch64: #0x1234",
            },
            // wfi.
            Case { raw: 0x0600_0000, ec: ExceptionClass::Wfx, il: true, iss: 0, text: "EC 0x01 WFI/WFE: WFI" },
            // wfe.
            Case { raw: 0x0600_0001, ec: ExceptionClass::Wfx, il: true, iss: 1, text: "EC 0x01 WFI/WFE: WFE" },
            // wfit x5: TI=0b10, RV, Rn=5.
            Case { raw: 0x0600_00a6, ec: ExceptionClass::Wfx, il: true, iss: 0xa6, text: "EC 0x01 WFI/WFE: WFIT x5" },
            // msr ICC_SGI1R_EL1, x3: Op0=3, Op2=5, Op1=0, CRn=12, Rt=3,
            // CRm=11, write.
            Case {
                raw: 0x623a_3076,
                ec: ExceptionClass::SysReg,
                il: true,
                iss: 0x003a_3076,
                text: "EC 0x18 MSR/MRS/system instruction: MSR ICC_SGI1R_EL1, x3",
            },
            // mrs x0, CNTP_CTL_EL0: Op0=3, Op2=1, Op1=3, CRn=14, CRm=2, read.
            Case {
                raw: 0x6232_f805,
                ec: ExceptionClass::SysReg,
                il: true,
                iss: 0x0032_f805,
                text: "EC 0x18 MSR/MRS/system instruction: MRS x0, CNTP_CTL_EL0",
            },
            // dc cisw, x9: Op0=1, Op2=2, Op1=0, CRn=7, CRm=14, write.
            Case {
                raw: 0x6214_1d3c,
                ec: ExceptionClass::SysReg,
                il: true,
                iss: 0x0014_1d3c,
                text: "EC 0x18 MSR/MRS/system instruction: DC CISW, x9",
            },
            // An undefined instruction.
            Case {
                raw: 0x0200_0000,
                ec: ExceptionClass::Unknown,
                il: true,
                iss: 0,
                text: "EC 0x00 unknown reason: ISS 0x0000000",
            },
            // brk #0x3e8 (Rust's panic trap on some targets).
            Case {
                raw: 0xf200_03e8,
                ec: ExceptionClass::Brk64,
                il: true,
                iss: 0x3e8,
                text: "EC 0x3c BRK from AArch64: #0x3e8",
            },
            // SError with IDS=0, AET/DFSC=0 (an uncategorized SError).
            Case {
                raw: 0xbe00_0000,
                ec: ExceptionClass::SError,
                il: true,
                iss: 0,
                text: "EC 0x2f SError: ISS 0x0000000",
            },
            // Instruction abort from EL1: translation fault level 3.
            Case {
                raw: 0x8200_0007,
                ec: ExceptionClass::InstrAbortLower,
                il: true,
                iss: 0x07,
                text: "EC 0x20 instruction abort from a lower EL: fetch, translation fault level 3",
            },
            // Reserved EC 0x3f, bits above 55 set (RES0, ignored).
            Case {
                raw: 0xff00_0000_fe00_0001,
                ec: ExceptionClass::Other(0x3f),
                il: true,
                iss: 1,
                text: "EC 0x3f reserved exception class: ISS 0x0000001",
            },
        ];
        for case in &cases {
            let e = Esr::decode(case.raw);
            assert_eq!(e.ec, case.ec, "{:#x}", case.raw);
            assert_eq!(e.il, case.il, "{:#x}", case.raw);
            assert_eq!(e.iss, case.iss, "{:#x}", case.raw);
            assert_eq!(describe(case.raw).to_string(), case.text);
            // The values were derived by hand; rebuild them from the fields.
            assert_eq!(esr(case.ec.code(), case.il, case.iss), case.raw & 0xffff_ffff, "{:#x}", case.raw);
        }
    }

    #[test]
    fn data_abort_fields() {
        // ISS with every named bit set once: ISV SAS=0b01 SSE SRT=0b10101
        // SF AR VNCR FnV EA CM S1PTW WnR DFSC=0b001101.
        let iss = (1 << 24)
            | (0b01 << 22)
            | (1 << 21)
            | (0b10101 << 16)
            | (1 << 15)
            | (1 << 14)
            | (1 << 13)
            | (1 << 10)
            | (1 << 9)
            | (1 << 8)
            | (1 << 7)
            | (1 << 6)
            | 0b001101;
        let da = DataAbort::from_iss(iss);
        assert_eq!(
            da,
            DataAbort {
                isv: true,
                sas: 1,
                sse: true,
                srt: 21,
                sf: true,
                ar: true,
                vncr: true,
                fnv: true,
                ea: true,
                cm: true,
                s1ptw: true,
                wnr: true,
                dfsc: FaultStatus::Permission { level: 1 },
            }
        );
        assert_eq!(da.size(), 2);
        // Each bit alone decodes to exactly that field.
        assert!(DataAbort::from_iss(1 << 13).vncr);
        assert!(!DataAbort::from_iss(1 << 13).ar);
        assert!(DataAbort::from_iss(1 << 8).cm);
        assert_eq!(DataAbort::from_iss(0b11 << 22).size(), 8);
    }

    #[test]
    fn fault_status_table() {
        let cases: &[(u8, FaultStatus, &str)] = &[
            (0b000000, FaultStatus::AddressSize { level: 0 }, "address size fault level 0"),
            (0b101001, FaultStatus::AddressSize { level: -1 }, "address size fault level -1"),
            (0b000101, FaultStatus::Translation { level: 1 }, "translation fault level 1"),
            (0b101011, FaultStatus::Translation { level: -1 }, "translation fault level -1"),
            (0b001011, FaultStatus::AccessFlag { level: 3 }, "access flag fault level 3"),
            (0b001111, FaultStatus::Permission { level: 3 }, "permission fault level 3"),
            (0b010000, FaultStatus::SyncExternal, "synchronous external abort"),
            (0b010001, FaultStatus::TagCheck, "tag check fault"),
            (0b010101, FaultStatus::SyncExternalWalk { level: 1 }, "synchronous external abort on table walk level 1"),
            (0b011000, FaultStatus::SyncParity, "parity/ECC error"),
            (0b011110, FaultStatus::SyncParityWalk { level: 2 }, "parity/ECC error on table walk level 2"),
            (0b100001, FaultStatus::Alignment, "alignment fault"),
            (0b101000, FaultStatus::GranuleProtection, "granule protection fault"),
            (0b110000, FaultStatus::TlbConflict, "TLB conflict abort"),
            (0b110001, FaultStatus::UnsupportedAtomicUpdate, "unsupported atomic hardware update fault"),
            (0b111111, FaultStatus::Other(0x3f), "reserved fault status 0x3f"),
        ];
        for (code, status, text) in cases {
            assert_eq!(FaultStatus::from_code(*code), *status, "{code:#b}");
            assert_eq!(status.to_string(), *text);
        }
    }

    #[test]
    fn sysreg_iss_round_trip_and_names() {
        for (reg, name) in SysReg::NAMES {
            assert_eq!(reg.name(), Some(*name));
            for read in [false, true] {
                let access = SysRegAccess { reg: *reg, rt: 7, read };
                assert_eq!(SysRegAccess::from_iss(access.to_iss()), access);
            }
        }
        // Encodings are unique.
        for (i, (a, _)) in SysReg::NAMES.iter().enumerate() {
            for (b, _) in &SysReg::NAMES[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let unnamed = SysRegAccess { reg: SysReg::new(3, 4, 15, 2, 7), rt: 31, read: true };
        assert_eq!(unnamed.to_string(), "MRS xzr, S3_4_C15_C2_7");
        let sys = SysRegAccess { reg: SysReg::new(1, 2, 7, 3, 4), rt: 1, read: false };
        assert_eq!(sys.to_string(), "SYS #2, C7, C3, #4, x1");
        let sysl = SysRegAccess { reg: SysReg::DC_ISW, rt: 3, read: true };
        assert_eq!(sysl.to_string(), "SYSL x3, #0, C7, C6, #2");
    }

    #[test]
    fn sysreg_groups() {
        assert!(SysReg::ID_AA64PFR0_EL1.is_id_group3());
        assert!(SysReg::ID_AA64MMFR2_EL1.is_id_group3());
        assert!(!SysReg::MIDR_EL1.is_id_group3());
        assert!(!SysReg::CTR_EL0.is_id_group3());
        assert!(SysReg::DC_ISW.is_set_way_op());
        assert!(SysReg::DC_CSW.is_set_way_op());
        assert!(SysReg::DC_CISW.is_set_way_op());
        assert!(!SysReg::DC_CIVAC.is_set_way_op());
        assert!(!SysReg::DC_IVAC.is_set_way_op());
    }

    /// Trapped accesses, as ESR_EL2 values built bit by bit from D17.2.37
    /// (EC 0x18, IL, Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10],
    /// Rt [9:5], CRm [4:1], Direction [0]), and what they decode to.
    #[test]
    fn trapped_sysreg_table() {
        let cases: &[(u64, SysReg, u8, bool, SysRegTrap, &str)] = &[
            // mrs x0, ID_AA64PFR0_EL1: Op0 3, Op2 0, Op1 0, CRn 0, CRm 4.
            (0x6230_0009, SysReg::ID_AA64PFR0_EL1, 0, true, SysRegTrap::IdGroup3, "MRS x0, ID_AA64PFR0_EL1"),
            // mrs x5, ID_AA64ZFR0_EL1: Op2 4, CRm 4, Rt 5.
            (0x6238_00a9, SysReg::ID_AA64ZFR0_EL1, 5, true, SysRegTrap::IdGroup3, "MRS x5, ID_AA64ZFR0_EL1"),
            // mrs x1, ID_AA64DFR0_EL1: CRm 5.
            (0x6230_002b, SysReg::ID_AA64DFR0_EL1, 1, true, SysRegTrap::IdGroup3, "MRS x1, ID_AA64DFR0_EL1"),
            // mrs x2, ID_AA64MMFR4_EL1: Op2 4, CRm 7.
            (0x6238_004f, SysReg::ID_AA64MMFR4_EL1, 2, true, SysRegTrap::IdGroup3, "MRS x2, ID_AA64MMFR4_EL1"),
            // mrs x3, ID_ISAR6_EL1: Op2 7, CRm 2.
            (0x623e_0065, SysReg::ID_ISAR6_EL1, 3, true, SysRegTrap::IdGroup3, "MRS x3, ID_ISAR6_EL1"),
            // mrs x4, MVFR2_EL1: Op2 2, CRm 3.
            (0x6234_0087, SysReg::MVFR2_EL1, 4, true, SysRegTrap::IdGroup3, "MRS x4, MVFR2_EL1"),
            // mrs x6, ID_PFR1_EL1: Op2 1, CRm 1.
            (0x6232_00c3, SysReg::ID_PFR1_EL1, 6, true, SysRegTrap::IdGroup3, "MRS x6, ID_PFR1_EL1"),
            // An unallocated ID encoding, S3_0_C0_C3_3, is still TID3's.
            (0x6236_0007, SysReg::new(3, 0, 0, 3, 3), 0, true, SysRegTrap::IdGroup3, "MRS x0, S3_0_C0_C3_3"),
            // dc isw, x2: Op0 1, Op2 2, CRn 7, CRm 6, write.
            (0x6214_1c4c, SysReg::DC_ISW, 2, false, SysRegTrap::SetWay, "DC ISW, x2"),
            // dc csw, x7: CRm 10.
            (0x6214_1cf4, SysReg::DC_CSW, 7, false, SysRegTrap::SetWay, "DC CSW, x7"),
            // dc cisw, xzr: CRm 14, Rt 31.
            (0x6214_1ffc, SysReg::DC_CISW, 31, false, SysRegTrap::SetWay, "DC CISW, xzr"),
            // msr SCTLR_EL1, x1: Op0 3, CRn 1, write.
            (0x6230_0420, SysReg::SCTLR_EL1, 1, false, SysRegTrap::VmControl, "MSR SCTLR_EL1, x1"),
            // msr TCR_EL1, x9: Op2 2, CRn 2.
            (0x6234_0920, SysReg::TCR_EL1, 9, false, SysRegTrap::VmControl, "MSR TCR_EL1, x9"),
            // msr CONTEXTIDR_EL1, x3: Op2 1, CRn 13.
            (0x6232_3460, SysReg::CONTEXTIDR_EL1, 3, false, SysRegTrap::VmControl, "MSR CONTEXTIDR_EL1, x3"),
            // msr AMAIR_EL1, x0: CRn 10, CRm 3.
            (0x6230_2806, SysReg::AMAIR_EL1, 0, false, SysRegTrap::VmControl, "MSR AMAIR_EL1, x0"),
            // MIDR_EL1 (CRm 0) is not TID3's; VPIDR_EL2 answers it untrapped.
            (0x6230_0001, SysReg::MIDR_EL1, 0, true, SysRegTrap::Other, "MRS x0, MIDR_EL1"),
            // Neither is DC CIVAC (by VA).
            (0x6212_dfdc, SysReg::DC_CIVAC, 30, false, SysRegTrap::Other, "DC CIVAC, x30"),
        ];
        for &(raw, reg, rt, read, trap, text) in cases {
            let e = Esr::decode(raw);
            let Syndrome::SysReg(acc) = e.syndrome() else { panic!("{raw:#x} is not EC 0x18") };
            assert_eq!(acc, SysRegAccess { reg, rt, read }, "{raw:#x}");
            assert_eq!(reg.trap(), trap, "{text}");
            assert_eq!(acc.to_string(), text);
            assert_eq!(u64::from(acc.to_iss()) | (0x18 << 26) | (1 << 25), raw, "{text}");
        }
        // Every named ID register is in group 3 or is one of the untrapped
        // identification registers of CRm 0.
        for (reg, name) in SysReg::NAMES {
            if name.starts_with("ID_") || name.starts_with("MVFR") {
                assert_eq!(reg.trap(), SysRegTrap::IdGroup3, "{name}");
            }
        }
        // TVM covers exactly these eleven registers.
        let tvm = [
            SysReg::SCTLR_EL1,
            SysReg::TTBR0_EL1,
            SysReg::TTBR1_EL1,
            SysReg::TCR_EL1,
            SysReg::ESR_EL1,
            SysReg::FAR_EL1,
            SysReg::AFSR0_EL1,
            SysReg::AFSR1_EL1,
            SysReg::MAIR_EL1,
            SysReg::AMAIR_EL1,
            SysReg::CONTEXTIDR_EL1,
        ];
        let mut n = 0;
        for crn in 0..16 {
            for crm in 0..16 {
                for op2 in 0..8 {
                    let r = SysReg::new(3, 0, crn, crm, op2);
                    assert_eq!(r.is_vm_control(), tvm.contains(&r), "{r}");
                    n += r.is_vm_control() as usize;
                }
            }
        }
        assert_eq!(n, tvm.len());
        assert!(!SysReg::ACTLR_EL1.is_vm_control());
        assert!(!SysReg::new(3, 4, 1, 0, 0).is_vm_control(), "SCTLR_EL2 is not TVM's");
    }

    #[test]
    fn random_esr_values_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let e = Esr::decode(state);
            assert_eq!(e.ec.code() as u64, (state >> 26) & 0x3f);
            let line = format!("{}", describe(state));
            assert!(line.starts_with("EC 0x"));
        }
    }
}
