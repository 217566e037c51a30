//! `hypervisor::mmio::decode`: a stage-2 data abort (syndrome, HPFAR/FAR
//! and the instruction word at the guest PC, all guest-controlled) either
//! decodes into a self-consistent [`MmioAccess`] or is refused; the load
//! result and store value helpers respect the access size.

use hypervisor::esr::DataAbort;
use hypervisor::mmio::decode::{DecodeError, apply_load, decode, decode_instruction, fault_ipa, from_syndrome};
use hypervisor::mmio::{BaseReg, MmioAccess};

/// Bytes per input record.
pub const RECORD: usize = 41;

/// Input: records of [`RECORD`] bytes, little-endian: ISS u32 (25 bits
/// used), instruction word u32, a flag byte (bit 0: the glue could fetch
/// the instruction), HPFAR u64, FAR u64, a device value u64 for loads and
/// the transfer register's value u64 for stores. A short last record is
/// zero-padded.
pub fn fuzz(data: &[u8]) {
    for chunk in data.chunks(RECORD) {
        let mut r = [0u8; RECORD];
        r[..chunk.len()].copy_from_slice(chunk);
        Record::from_bytes(&r).check();
    }
}

/// One record, for building seeds.
pub fn record(iss: u32, insn: Option<u32>, hpfar: u64, far: u64, value: u64, reg: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD);
    r.extend_from_slice(&iss.to_le_bytes());
    r.extend_from_slice(&insn.unwrap_or(0).to_le_bytes());
    r.push(u8::from(insn.is_some()));
    for v in [hpfar, far, value, reg] {
        r.extend_from_slice(&v.to_le_bytes());
    }
    r
}

struct Record {
    iss: u32,
    insn: Option<u32>,
    hpfar: u64,
    far: u64,
    value: u64,
    reg: u64,
}

impl Record {
    fn from_bytes(r: &[u8; RECORD]) -> Record {
        let u32_at = |at: usize| u32::from_le_bytes(r[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(r[at..at + 8].try_into().expect("8 bytes"));
        Record {
            iss: u32_at(0) & 0x1ff_ffff,
            insn: (r[8] & 1 != 0).then(|| u32_at(4)),
            hpfar: u64_at(9),
            far: u64_at(17),
            value: u64_at(25),
            reg: u64_at(33),
        }
    }

    fn check(&self) {
        let ipa = fault_ipa(self.hpfar, self.far);
        assert!(ipa < 1 << 52, "IPA {ipa:#x} wider than 52 bits");
        assert_eq!(ipa & 0xfff, self.far & 0xfff, "page offset comes from FAR");
        let da = DataAbort::from_iss(self.iss);
        let result = decode(&da, ipa, self.insn);
        if da.s1ptw {
            assert_eq!(result, Err(DecodeError::TableWalk));
        } else if da.cm {
            assert_eq!(result, Err(DecodeError::CacheMaintenance));
        }
        if let Ok(access) = result {
            check_access(&access, ipa);
            if da.isv {
                assert_eq!(Some(access), from_syndrome(&da, ipa), "ISV = 1 must use the syndrome");
            } else {
                let word = self.insn.expect("ISV = 0 decodes only with an instruction");
                assert_eq!(Ok(access), decode_instruction(word, ipa));
                assert_eq!(access.write, da.wnr, "direction must match WnR");
                check_from_instruction(&access, word);
            }
            self.check_helpers(&access);
        }
        // The instruction path on its own, whatever the syndrome says.
        if let Some(word) = self.insn
            && let Ok(access) = decode_instruction(word, ipa)
        {
            check_access(&access, ipa);
            check_from_instruction(&access, word);
            self.check_helpers(&access);
        }
    }

    fn check_helpers(&self, access: &MmioAccess) {
        let bits = u32::from(access.size) * 8;
        let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let loaded = apply_load(self.value, access);
        if !access.sixty_four {
            assert_eq!(loaded >> 32, 0, "a W register load clears bits [63:32]");
        }
        assert_eq!(loaded & mask & 0xffff_ffff, self.value & mask & 0xffff_ffff, "low bits are the data");
        if !access.sign_extend {
            let expect = if access.sixty_four { self.value & mask } else { self.value & mask & 0xffff_ffff };
            assert_eq!(loaded, expect, "a zero-extending load");
        }
        let mut regs = [0u64; 31];
        if usize::from(access.reg) < 31 {
            regs[usize::from(access.reg)] = self.reg;
        }
        let stored = access.store_value(&regs);
        if access.reg == 31 {
            assert_eq!(stored, 0, "xzr stores zero");
        } else {
            assert_eq!(stored, self.reg & mask);
        }
    }
}

/// What every decoded access must satisfy, however it was decoded.
fn check_access(access: &MmioAccess, ipa: u64) {
    assert!(matches!(access.size, 1 | 2 | 4 | 8), "size {}", access.size);
    assert!(access.reg <= 31, "register {}", access.reg);
    assert_eq!(access.ipa, ipa);
    assert!(!(access.write && access.sign_extend), "a store never sign-extends");
}

/// What an access decoded from an instruction word must also satisfy.
fn check_from_instruction(access: &MmioAccess, word: u32) {
    assert_eq!(u32::from(access.reg), word & 31, "Rt is bits [4:0]");
    assert!(!access.acquire_release);
    if access.sign_extend {
        assert!(access.size < 8, "sign extension of a full X register");
    }
    if access.size == 8 {
        assert!(access.sixty_four, "an 8-byte access uses an X register");
    }
    if let Some(wb) = access.writeback {
        assert!((-256..=255).contains(&wb.delta), "imm9 out of range: {}", wb.delta);
        match wb.base {
            BaseReg::X(n) => {
                assert!(n <= 30, "base x{n}");
                assert_ne!(n, access.reg, "writeback base is the transfer register");
            }
            BaseReg::Sp => assert_eq!((word >> 5) & 31, 31),
        }
    }
}
