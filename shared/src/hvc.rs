//! The hypercall ABI: SMC Calling Convention 1.1 (Arm DEN 0028), PSCI 1.1
//! (Arm DEN 0022) and this project's vendor-specific hypervisor service calls.
//!
//! A guest issues `hvc #0` with the function ID in `w0` and arguments in
//! `x1..x17`; results come back in `x0..x3`. Unknown IDs return
//! [`NOT_SUPPORTED`] (-1), never a fault.

/// SMCCC / PSCI return code for an unknown or unimplemented function.
pub const NOT_SUPPORTED: i64 = -1;
/// PSCI: success.
pub const PSCI_SUCCESS: i64 = 0;
/// PSCI: invalid parameters.
pub const PSCI_INVALID_PARAMETERS: i64 = -2;
/// PSCI: operation denied.
pub const PSCI_DENIED: i64 = -3;
/// PSCI: the target CPU is already on.
pub const PSCI_ALREADY_ON: i64 = -4;
/// PSCI: a CPU_ON for this target is pending.
pub const PSCI_ON_PENDING: i64 = -5;
/// PSCI: internal failure.
pub const PSCI_INTERNAL_FAILURE: i64 = -6;
/// PSCI: invalid address.
pub const PSCI_INVALID_ADDRESS: i64 = -9;

/// SMCCC_VERSION (SMCCC 1.1 §7.2).
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// SMCCC_ARCH_FEATURES.
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;

/// PSCI function IDs (DEN 0022D §5.1). The `_64` variants are SMC64.
pub mod psci {
    pub const VERSION: u32 = 0x8400_0000;
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    pub const CPU_SUSPEND_64: u32 = 0xC400_0001;
    pub const CPU_OFF: u32 = 0x8400_0002;
    pub const CPU_ON_32: u32 = 0x8400_0003;
    pub const CPU_ON_64: u32 = 0xC400_0003;
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    pub const AFFINITY_INFO_64: u32 = 0xC400_0004;
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    pub const FEATURES: u32 = 0x8400_000A;
    /// PSCI 1.1 as returned by `PSCI_VERSION` (major << 16 | minor).
    pub const VERSION_1_1: u32 = 0x0001_0001;
}

/// Paravirtualized time (Arm DEN0057 "Paravirtualized Time for Arm-based
/// Systems", standard hypervisor service calls, owner 5, SMC64), as KVM
/// offers it and Linux uses it (`arch/arm64/kernel/paravirt.c`).
pub mod pv_time {
    /// PV_TIME_FEATURES(fid in w1): 0 if `fid` is implemented.
    pub const FEATURES: u32 = 0xC500_0020;
    /// PV_TIME_ST: the IPA of the calling vCPU's stolen-time structure.
    pub const ST: u32 = 0xC500_0021;
    /// Size of one stolen-time structure: `revision` (u32, 0),
    /// `attributes` (u32, 0), `stolen_time` (u64, nanoseconds,
    /// little-endian), padding to 64 bytes (DEN0057 §3.2).
    pub const STRUCT_SIZE: u64 = 64;
    /// Offset of `stolen_time` in the structure.
    pub const STOLEN_TIME_OFFSET: u64 = 8;
}

/// Vendor-specific hypervisor service calls (SMCCC owner 6, fast, SMC64):
/// `0xC600_0000 + n`.
pub mod vendor {
    /// Returns the caller's VM id in x0, its vCPU index in x1, the VM's vCPU
    /// count in x2.
    pub const VM_INFO: u32 = 0xC600_0001;
    /// Writes `x1` bytes (at most 40) packed little-endian in `x2..x6` to the
    /// VM's console. Returns the number of bytes written.
    pub const CONSOLE_WRITE: u32 = 0xC600_0002;
    /// Returns 0 and does nothing else: the cheapest round trip through the
    /// hypervisor's hypercall path, for benchmarks.
    pub const NOP: u32 = 0xC600_0003;
    /// Prints the hypervisor's exit statistics for the calling VM.
    pub const PRINT_STATS: u32 = 0xC600_0004;
    /// Gives the physical CPU to another runnable vCPU, if one shares it
    /// (a paravirtual yield, like Xen's `SCHEDOP_yield`; QEMU does not trap
    /// WFE). Returns 0.
    pub const YIELD: u32 = 0xC600_0005;
    /// The guest reports that its boot is done (our guest kernel calls it
    /// just before it starts init); the hypervisor notes the time for the
    /// boot benchmark. Returns 0.
    pub const BOOTED: u32 = 0xC600_0006;
    /// SHM_DOORBELL(x1 = region, x2 = peer): makes the doorbell SPI of
    /// shared-memory region `region` pending in the VM that is peer `peer`
    /// of it (both numbers from the caller's `el2-hyp,shm` DT node; the
    /// caller must be a peer too). Returns 0, or
    /// [`super::PSCI_INVALID_PARAMETERS`] (-2) for a region the caller does
    /// not share or a peer that does not exist. Rings before the target
    /// takes the interrupt coalesce into one.
    pub const SHM_DOORBELL: u32 = 0xC600_0007;
    /// Largest payload of [`CONSOLE_WRITE`].
    pub const CONSOLE_WRITE_MAX: usize = 40;
}

/// Packs up to 40 bytes into five registers for [`vendor::CONSOLE_WRITE`].
pub fn pack_console_bytes(bytes: &[u8]) -> [u64; 5] {
    let mut regs = [0u64; 5];
    for (i, b) in bytes.iter().take(vendor::CONSOLE_WRITE_MAX).enumerate() {
        regs[i / 8] |= (*b as u64) << ((i % 8) * 8);
    }
    regs
}

/// Unpacks the payload of [`vendor::CONSOLE_WRITE`]; `len` is clamped to 40.
pub fn unpack_console_bytes(len: u64, regs: &[u64; 5], out: &mut [u8; 40]) -> usize {
    let len = (len as usize).min(vendor::CONSOLE_WRITE_MAX);
    for (i, o) in out.iter_mut().enumerate().take(len) {
        *o = (regs[i / 8] >> ((i % 8) * 8)) as u8;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_bytes_round_trip() {
        let msg = b"hello, world: a forty-byte console line!";
        assert_eq!(msg.len(), 40);
        let regs = pack_console_bytes(msg);
        let mut out = [0u8; 40];
        assert_eq!(unpack_console_bytes(40, &regs, &mut out), 40);
        assert_eq!(&out, msg);
        assert_eq!(unpack_console_bytes(1000, &regs, &mut out), 40);
    }
}
