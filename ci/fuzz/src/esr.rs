//! `hypervisor::esr`: every ESR_EL2 value the guest can provoke decodes
//! without a panic, the fields are the bits they claim to be, the typed
//! syndromes agree with the raw ISS, and the crash-report text formats.

use hypervisor::esr::{Esr, ExceptionClass, FaultStatus, Syndrome, SysRegAccess, describe};

/// Input: little-endian 64-bit ESR values, 8 bytes each.
pub fn fuzz(data: &[u8]) {
    for raw in crate::words(data) {
        check(raw);
    }
}

/// The invariants of one ESR value.
pub fn check(raw: u64) {
    let e = Esr::decode(raw);
    assert_eq!(e.raw, raw);
    assert_eq!(u64::from(e.ec.code()), (raw >> 26) & 0x3f, "{raw:#x}: EC");
    assert_eq!(ExceptionClass::from_code(e.ec.code()), e.ec, "{raw:#x}: EC round trip");
    assert_eq!(e.il, raw & (1 << 25) != 0);
    assert_eq!(u64::from(e.iss), raw & 0x1ff_ffff);
    assert_eq!(u64::from(e.iss2), (raw >> 32) & 0xff_ffff);
    let imm16 = (e.iss & 0xffff) as u16;
    match e.syndrome() {
        Syndrome::DataAbort(da) => {
            assert!(matches!(da.size(), 1 | 2 | 4 | 8), "{raw:#x}: access size {}", da.size());
            assert!(da.srt <= 31 && da.sas <= 3);
            assert_eq!(da.wnr, e.iss & (1 << 6) != 0);
            assert_eq!(da.isv, e.iss & (1 << 24) != 0);
            check_fault_status(da.dfsc, raw);
        }
        Syndrome::InstrAbort(ia) => check_fault_status(ia.ifsc, raw),
        Syndrome::Wfx(w) => assert!(w.rn <= 31),
        Syndrome::Hvc(imm) | Syndrome::Smc(imm) | Syndrome::Svc(imm) | Syndrome::Brk(imm) => {
            assert_eq!(imm, imm16, "{raw:#x}: imm16");
        }
        Syndrome::SysReg(access) => {
            assert!(access.rt <= 31);
            // Every ISS bit of EC 0x18 below bit 22 is a field: the encoding
            // round-trips exactly.
            assert_eq!(access.to_iss(), e.iss & 0x3f_ffff, "{raw:#x}: sysreg ISS round trip");
            assert_eq!(SysRegAccess::from_iss(access.to_iss()), access);
            let _ = (access.reg.name(), access.reg.trap());
        }
        Syndrome::Other => {}
    }
    let line = format!("{}", describe(raw));
    assert!(line.starts_with("EC 0x"), "{raw:#x}: {line}");
}

fn check_fault_status(fs: FaultStatus, raw: u64) {
    if let Some(level) = fs.level() {
        assert!((-1..=3).contains(&level), "{raw:#x}: fault level {level}");
    }
    let _ = format!("{fs}");
}
