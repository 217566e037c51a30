//! Exit tracing: one fixed-size binary record per guest exit, kept in a
//! per-CPU ring and dumped as hex lines when the machine powers off; the
//! host tool `el2-trace` (ci/el2-tools, run by `scripts/trace`) decodes
//! them into a timeline and a per-reason histogram.
//!
//! Recording is compiled in only with the `trace` cargo feature: off, the
//! world switch has no trace code at all; on, an exit costs two counter
//! reads and a 24-byte store. We use this format rather than `defmt`
//! because a record is already a handful of integers: `defmt`'s strength,
//! interned format strings, would buy nothing here, and its linker-script
//! and global-logger set-up does not fit the hypervisor's
//! position-independent image.
//!
//! Dump format (each line may carry a prefix, such as QEMU's serial
//! output interleaved with other CPUs):
//!
//! ```text
//! el2-trace: begin cpu=0 records=812 dropped=0 cntfrq=1000000000
//! el2-trace: 0b5c3a0000000000d80200000000005a00000100
//! ...
//! el2-trace: end cpu=0
//! ```

use crate::stats::ExitReason;

/// Bytes in an encoded record.
pub const RECORD_SIZE: usize = 24;
/// Prefix of every dump line.
pub const LINE_PREFIX: &str = "el2-trace: ";

/// One guest exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Physical counter when the guest exited (ticks from power-on).
    pub exit_at: u64,
    /// Counter ticks from the exit until the hypervisor was done with it
    /// (about to re-enter the guest or give the CPU away).
    pub duration: u32,
    /// ESR_EL2 for synchronous exits, 0 for interrupts.
    pub esr: u32,
    /// VM id, vCPU index, physical CPU.
    pub vm: u8,
    pub vcpu: u8,
    pub pcpu: u8,
    /// [`ExitReason`] as its index in [`ExitReason::ALL`]; 0xff if none
    /// was counted.
    pub reason: u8,
}

impl Record {
    /// Little-endian encoding: exit_at, duration, esr, vm, vcpu, pcpu,
    /// reason, 4 bytes of zero.
    pub fn encode(&self) -> [u8; RECORD_SIZE] {
        let mut b = [0u8; RECORD_SIZE];
        b[0..8].copy_from_slice(&self.exit_at.to_le_bytes());
        b[8..12].copy_from_slice(&self.duration.to_le_bytes());
        b[12..16].copy_from_slice(&self.esr.to_le_bytes());
        b[16] = self.vm;
        b[17] = self.vcpu;
        b[18] = self.pcpu;
        b[19] = self.reason;
        b
    }

    /// Inverse of [`Record::encode`].
    pub fn decode(b: &[u8; RECORD_SIZE]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[0..8]);
        Record {
            exit_at: u64::from_le_bytes(t),
            duration: u32_at(8),
            esr: u32_at(12),
            vm: b[16],
            vcpu: b[17],
            pcpu: b[18],
            reason: b[19],
        }
    }

    /// The exit reason, if the record names a known one.
    pub fn reason(&self) -> Option<ExitReason> {
        ExitReason::ALL.get(usize::from(self.reason)).copied()
    }

    /// The record as hex, for a dump line.
    pub fn to_hex(&self) -> heapless::String<{ 2 * RECORD_SIZE }> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = heapless::String::new();
        for byte in self.encode() {
            let _ = s.push(char::from(HEX[usize::from(byte >> 4)]));
            let _ = s.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        s
    }

    /// Parses a record's hex (exactly `2 * RECORD_SIZE` digits).
    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.as_bytes();
        if s.len() != 2 * RECORD_SIZE {
            return None;
        }
        let mut b = [0u8; RECORD_SIZE];
        for (i, byte) in b.iter_mut().enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            *byte = (digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?) as u8;
        }
        Some(Self::decode(&b))
    }
}

/// A ring of the last `N` records: when full, the oldest is overwritten
/// and counted as dropped.
pub struct Ring<const N: usize> {
    buf: [Record; N],
    /// Records pushed since the start.
    total: u64,
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Ring<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self { buf: [Record { exit_at: 0, duration: 0, esr: 0, vm: 0, vcpu: 0, pcpu: 0, reason: 0 }; N], total: 0 }
    }

    /// Adds a record, overwriting the oldest when full.
    pub fn push(&mut self, r: Record) {
        self.buf[(self.total % N as u64) as usize] = r;
        self.total += 1;
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.total.min(N as u64) as usize
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Records overwritten before they could be dumped.
    pub fn dropped(&self) -> u64 {
        self.total.saturating_sub(N as u64)
    }

    /// The held records, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        let start = if self.total > N as u64 { (self.total % N as u64) as usize } else { 0 };
        (0..self.len()).map(move |i| &self.buf[(start + i) % N])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> Record {
        Record {
            exit_at: 1000 + i,
            duration: 7 * i as u32,
            esr: 0x5a00_0000,
            vm: 1,
            vcpu: 2,
            pcpu: 3,
            reason: ExitReason::Hvc as u8,
        }
    }

    #[test]
    fn encode_decode_and_hex_round_trip() {
        let r =
            Record { exit_at: u64::MAX - 5, duration: u32::MAX, esr: 0x9200_0046, vm: 7, vcpu: 3, pcpu: 1, reason: 4 };
        assert_eq!(Record::decode(&r.encode()), r);
        let hex = r.to_hex();
        assert_eq!(hex.len(), 48);
        assert_eq!(Record::from_hex(&hex), Some(r));
        assert_eq!(Record::from_hex("00"), None);
        assert_eq!(Record::from_hex(&"zz".repeat(24)), None);
        assert_eq!(r.reason(), Some(ExitReason::MmioRead));
        assert_eq!(Record { reason: 0xff, ..r }.reason(), None);
    }

    #[test]
    fn ring_keeps_the_newest_records_in_order() {
        let mut ring: Ring<4> = Ring::new();
        assert!(ring.is_empty());
        for i in 0..3 {
            ring.push(rec(i));
        }
        assert_eq!(ring.iter().map(|r| r.exit_at).collect::<Vec<_>>(), [1000, 1001, 1002]);
        assert_eq!(ring.dropped(), 0);
        for i in 3..10 {
            ring.push(rec(i));
        }
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.dropped(), 6);
        assert_eq!(ring.iter().map(|r| r.exit_at).collect::<Vec<_>>(), [1006, 1007, 1008, 1009]);
    }
}
