//! The emulated GICv3 redistributors, one per vCPU: the RD_base frame
//! (IHI 0069H §12.10) and, 64 KiB above it, the SGI_base frame with the
//! SGI/PPI registers (IHI 0069H §12.11).

use super::dist::{BitArray, ByteArray, IIDR, check_common, check_size, id_register, size_mask};
use super::{GICR_FRAME_SIZE, GicVersion, MmioError, Vgic, vcpu_affinity};

/// Offset of the SGI_base frame inside a redistributor.
pub const SGI_BASE: u64 = 0x1_0000;

/// GICR_WAKER.ProcessorSleep and ChildrenAsleep (IHI 0069H §12.11.37).
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

impl Vgic {
    pub(super) fn redist_read(&self, rd: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        self.check_redist(rd, offset, size)?;
        if offset >= SGI_BASE {
            return self.sgi_frame_read(rd, offset - SGI_BASE, size);
        }
        let value = match offset {
            // GICR_CTLR: no LPIs, no pending register writes (IHI 0069H §12.11.2).
            0x0000 => {
                check_size(offset, size, &[4])?;
                0
            }
            0x0004 => {
                check_size(offset, size, &[4])?;
                u64::from(IIDR)
            }
            0x0008 | 0x000C => {
                check_size(offset, size, &[4, 8])?;
                let typer = self.gicr_typer(rd);
                if offset == 0x000C { typer >> 32 } else { typer & size_mask(size) }
            }
            0x0014 => {
                check_size(offset, size, &[4])?;
                // The redistributor follows ProcessorSleep at once, so the
                // handshake Linux waits for completes on the next read.
                let waker =
                    if self.redist[rd].processor_sleep { WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP } else { 0 };
                u64::from(waker)
            }
            0xFFD0..0x10000 => {
                check_size(offset, size, &[4])?;
                u64::from(id_register(GicVersion::V3, (offset - 0xFFD0) / 4))
            }
            // STATUSR, PROPBASER, PENDBASER, SYNCR and the rest: RAZ/WI.
            _ => 0,
        };
        Ok(value)
    }

    pub(super) fn redist_write(&mut self, rd: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        self.check_redist(rd, offset, size)?;
        if offset >= SGI_BASE {
            return self.sgi_frame_write(rd, offset - SGI_BASE, size, value);
        }
        match offset {
            0x0000 | 0x0004 => check_size(offset, size, &[4])?,
            0x0008 | 0x000C => check_size(offset, size, &[4, 8])?,
            0x0014 => {
                check_size(offset, size, &[4])?;
                self.redist[rd].processor_sleep = value as u32 & WAKER_PROCESSOR_SLEEP != 0;
            }
            0xFFD0..0x10000 => check_size(offset, size, &[4])?,
            _ => {}
        }
        Ok(())
    }

    fn sgi_frame_read(&self, rd: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        let full = offset + SGI_BASE;
        let value = match offset {
            0x080..0x400 => {
                check_size(full, size, &[4])?;
                match BitArray::decode(offset) {
                    Some((array, 0)) => u64::from(self.read_bits(rd, 0, array)),
                    _ => 0,
                }
            }
            0x400..0x420 => {
                check_size(full, size, &[1, 4])?;
                self.read_bytes(rd, (offset - 0x400) as u32, size, ByteArray::Priority)
            }
            0xC00 | 0xC04 => {
                check_size(full, size, &[4])?;
                u64::from(self.read_icfgr(rd, ((offset - 0xC00) / 4) as usize))
            }
            // IGRPMODR0, NSACR and the extended PPI ranges are RAZ/WI.
            _ => 0,
        };
        Ok(value)
    }

    fn sgi_frame_write(&mut self, rd: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let full = offset + SGI_BASE;
        match offset {
            0x080..0x400 => {
                check_size(full, size, &[4])?;
                if let Some((array, 0)) = BitArray::decode(offset) {
                    self.write_bits(rd, 0, array, value as u32);
                }
            }
            0x400..0x420 => {
                check_size(full, size, &[1, 4])?;
                self.write_bytes(rd, (offset - 0x400) as u32, size, ByteArray::Priority, value);
            }
            0xC00 | 0xC04 => {
                check_size(full, size, &[4])?;
                self.write_icfgr(rd, ((offset - 0xC00) / 4) as usize, value as u32);
            }
            _ => {}
        }
        Ok(())
    }

    fn check_redist(&self, rd: usize, offset: u64, size: u8) -> Result<(), MmioError> {
        check_common(offset, size, GICR_FRAME_SIZE)?;
        if self.version != GicVersion::V3 || rd >= self.nr_vcpus {
            return Err(MmioError::OutOfRange { offset });
        }
        Ok(())
    }

    /// GICR_TYPER (IHI 0069H §12.11.35): Affinity_Value [63:32],
    /// Processor_Number [23:8], Last [4] on the final redistributor.
    pub(super) fn gicr_typer(&self, rd: usize) -> u64 {
        let mut typer = (vcpu_affinity(rd) << 32) | ((rd as u64 & 0xFFFF) << 8);
        if rd + 1 == self.nr_vcpus {
            typer |= 1 << 4;
        }
        typer
    }
}
