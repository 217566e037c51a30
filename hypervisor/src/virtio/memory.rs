//! Guest RAM as a device sees it: byte reads and writes at guest-physical
//! addresses (IPAs), refused outside the VM's RAM.
//!
//! The hypervisor implements [`GuestMemory`] over a VM's [`GuestRam`]
//! (its IPA range and the host-physical address behind it); the host tests
//! and the fuzz harness use [`VecMemory`]. Both check a range with
//! [`ram_offset`]. An implementation over guest RAM must also make the
//! bytes this VM instance's before it touches them: RAM is filled on first
//! touch (`guestram.rs`), so a block the guest has not touched yet is filled
//! (zeroed, mapped) first, or a device write would be zeroed later and a
//! device read would see the previous instance's bytes. That is why reads
//! take `&mut self` too.

use alloc::vec::Vec;

use crate::guestram::GuestRam;

/// An access that does not lie wholly inside the VM's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideRam {
    /// First guest-physical address of the access.
    pub addr: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// A VM's RAM as the device cores use it.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes at guest-physical `addr` into `buf`.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OutsideRam>;
    /// Copies `data` to guest-physical `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutsideRam>;
    /// Whether `[addr, addr + len)` lies wholly inside the RAM.
    fn contains(&self, addr: u64, len: u64) -> bool;

    /// A little-endian u16 at `addr` (ring indexes and entries, §2.7).
    fn read_u16(&mut self, addr: u64) -> Result<u16, OutsideRam> {
        let mut b = [0; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Writes a little-endian u16 at `addr`.
    fn write_u16(&mut self, addr: u64, value: u16) -> Result<(), OutsideRam> {
        self.write(addr, &value.to_le_bytes())
    }
}

/// The offset inside `ram` of `[addr, addr + len)`, if that range lies
/// wholly inside it (no wrap-around at the top of the address space).
pub fn ram_offset(ram: &GuestRam, addr: u64, len: u64) -> Option<u64> {
    let off = addr.checked_sub(ram.ipa)?;
    (off <= ram.size && len <= ram.size - off).then_some(off)
}

/// Guest RAM backed by a `Vec`: for host tests and the fuzz harness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecMemory {
    /// The RAM's IPA range (`host` unused).
    pub ram: GuestRam,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl VecMemory {
    /// `size` zeroed bytes of RAM at IPA `ipa`.
    pub fn new(ipa: u64, size: usize) -> Self {
        Self { ram: GuestRam { ipa, size: size as u64, host: 0 }, bytes: alloc::vec![0; size] }
    }

    fn range(&self, addr: u64, len: usize) -> Result<core::ops::Range<usize>, OutsideRam> {
        let off = ram_offset(&self.ram, addr, len as u64).ok_or(OutsideRam { addr, len: len as u64 })?;
        Ok(off as usize..off as usize + len)
    }
}

impl GuestMemory for VecMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OutsideRam> {
        let r = self.range(addr, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutsideRam> {
        let r = self.range(addr, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }

    fn contains(&self, addr: u64, len: u64) -> bool {
        ram_offset(&self.ram, addr, len).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_must_lie_wholly_inside_the_ram() {
        let ram = GuestRam { ipa: 0x4000_0000, size: 0x1000, host: 0 };
        assert_eq!(ram_offset(&ram, 0x4000_0000, 0x1000), Some(0));
        assert_eq!(ram_offset(&ram, 0x4000_0fff, 1), Some(0xfff));
        assert_eq!(ram_offset(&ram, 0x4000_1000, 0), Some(0x1000), "empty, at the end");
        assert_eq!(ram_offset(&ram, 0x4000_0fff, 2), None, "runs past the end");
        assert_eq!(ram_offset(&ram, 0x3fff_ffff, 1), None, "below");
        assert_eq!(ram_offset(&ram, 0x4000_0800, u64::MAX), None, "a length that would wrap");
        let top = GuestRam { ipa: u64::MAX - 0xfff, size: 0x1000, host: 0 };
        assert_eq!(ram_offset(&top, u64::MAX, 1), Some(0xfff), "the last byte of the address space");
        assert_eq!(ram_offset(&top, u64::MAX, 2), None);
    }

    #[test]
    fn vec_memory_refuses_accesses_outside_it() {
        let mut m = VecMemory::new(0x1000, 16);
        m.write(0x100e, &[1, 2]).unwrap();
        assert_eq!(m.read_u16(0x100e), Ok(0x0201));
        assert_eq!(m.write(0x100f, &[1, 2]), Err(OutsideRam { addr: 0x100f, len: 2 }));
        assert_eq!(m.read_u16(0xfff), Err(OutsideRam { addr: 0xfff, len: 2 }));
        assert_eq!(m.bytes[15], 2, "a refused write changes nothing");
    }
}
