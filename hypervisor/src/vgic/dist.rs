//! The emulated distributor: GICv3 GICD (IHI 0069H §12.9) and GICv2 GICD
//! (IHI 0048B §4.3), plus the per-interrupt register arrays the GICv3
//! redistributor's SGI_base frame shares with it (IHI 0069H §12.11).

use super::irq::Trigger;
use super::{GICD_FRAME_SIZE, GicVersion, MmioError, NR_PRIVATE, Vgic, sgi};

/// GICD_CTLR.ARE (bit 4) and DS (bit 6) of the single-security-state view
/// (IHI 0069H §12.9.4): both RAO/WI here.
const CTLR_ARE_DS: u32 = (1 << 4) | (1 << 6);
/// GICD_IIDR / GICR_IIDR: implementer Arm (JEP106 0x43B), product 0.
pub(super) const IIDR: u32 = 0x0000_043B;
/// The IROUTER bits kept: Aff3 [39:32], Aff2..Aff0 [23:0]; IRM (bit 31) is
/// RAZ/WI because GICD_TYPER.No1N = 1 (IHI 0069H §12.9.22).
const IROUTER_MASK: u64 = 0xFF_00FF_FFFF;
/// Component ID bytes CIDR0-3 of every GIC frame (IHI 0069H §12.1.7).
const CIDR: [u32; 4] = [0x0D, 0xF0, 0x05, 0xB1];

/// The per-interrupt bit arrays, in their architectural order from
/// offset 0x080 (IHI 0069H §12.9: IGROUPR, ISENABLER, ICENABLER, ISPENDR,
/// ICPENDR, ISACTIVER, ICACTIVER, each 0x80 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BitArray {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl BitArray {
    /// Decodes an offset in 0x080..0x400 into the array and register index.
    pub(super) fn decode(offset: u64) -> Option<(BitArray, usize)> {
        const ORDER: [BitArray; 7] = [
            BitArray::Group,
            BitArray::SetEnable,
            BitArray::ClearEnable,
            BitArray::SetPending,
            BitArray::ClearPending,
            BitArray::SetActive,
            BitArray::ClearActive,
        ];
        if !(0x080..0x400).contains(&offset) {
            return None;
        }
        let array = ORDER[(offset / 0x80 - 1) as usize];
        Some((array, ((offset % 0x80) / 4) as usize))
    }
}

/// The per-interrupt byte arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ByteArray {
    Priority,
    Targets,
}

/// Checks the general access rules: 1, 2, 4 or 8 bytes, naturally aligned,
/// inside a frame of `frame_size` bytes.
pub(super) fn check_common(offset: u64, size: u8, frame_size: u64) -> Result<(), MmioError> {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(MmioError::BadSize { offset, size });
    }
    if offset >= frame_size {
        return Err(MmioError::OutOfRange { offset });
    }
    if offset & (u64::from(size) - 1) != 0 {
        return Err(MmioError::Unaligned { offset, size });
    }
    Ok(())
}

/// Checks that a register accepts `size` (IHI 0069H §12.1.3: GICD/GICR
/// registers are 32-bit, some byte-accessible, 64-bit ones also 32-bit halves).
pub(super) fn check_size(offset: u64, size: u8, allowed: &[u8]) -> Result<(), MmioError> {
    if allowed.contains(&size) { Ok(()) } else { Err(MmioError::BadSize { offset, size }) }
}

/// The identification registers at the top of a frame (IHI 0069H §12.1.7,
/// IHI 0048B §4.3.16): PIDR2.ArchRev [7:4] is what Linux checks; JEP106
/// bits [3:0] = 0xB say "Arm".
pub(super) fn id_register(version: GicVersion, index_from_pidr4: u64) -> u32 {
    match index_from_pidr4 {
        6 => match version {
            GicVersion::V2 => 0x2B,
            GicVersion::V3 => 0x3B,
        },
        8..=11 => CIDR[(index_from_pidr4 - 8) as usize],
        _ => 0,
    }
}

impl Vgic {
    /// Reads 32 bits of a bit array covering INTIDs `first..first + 32` of
    /// `vcpu` (SGIs/PPIs) or the VM (SPIs); absent INTIDs read as zero.
    pub(super) fn read_bits(&self, vcpu: usize, first: u32, array: BitArray) -> u32 {
        let mut value = 0;
        for bit in 0..32 {
            let Some(irq) = self.irq_state(vcpu, first + bit) else {
                continue;
            };
            let set = match array {
                BitArray::Group => irq.group1,
                BitArray::SetEnable | BitArray::ClearEnable => irq.enabled,
                BitArray::SetPending | BitArray::ClearPending => irq.is_pending(),
                BitArray::SetActive | BitArray::ClearActive => irq.active,
            };
            value |= u32::from(set) << bit;
        }
        value
    }

    /// Writes a bit array: IGROUPR takes every bit, the set/clear arrays act
    /// on the bits written as 1 (IHI 0069H §12.9.14 ff.).
    pub(super) fn write_bits(&mut self, vcpu: usize, first: u32, array: BitArray, value: u32) {
        let v2_sgis = self.version == GicVersion::V2;
        for bit in 0..32 {
            let intid = first + bit;
            let one = value & (1 << bit) != 0;
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            match array {
                BitArray::Group => irq.group1 = one,
                _ if !one => continue,
                BitArray::SetEnable => irq.enabled = true,
                BitArray::ClearEnable => irq.enabled = false,
                // GICv2 SGI pending state is per source and set or cleared
                // only through SPENDSGIR/CPENDSGIR (IHI 0048B §4.3.7).
                BitArray::SetPending | BitArray::ClearPending if v2_sgis && intid < 16 => {}
                BitArray::SetPending => irq.pending_latch = true,
                BitArray::ClearPending => irq.pending_latch = false,
                BitArray::SetActive => {
                    irq.active = true;
                    if !irq.in_lr {
                        irq.lr_vcpu = vcpu as u8;
                    }
                }
                BitArray::ClearActive => irq.active = false,
            }
            self.note(vcpu, intid);
        }
    }

    /// Reads `size` bytes of a byte-per-interrupt array from INTID `first`.
    pub(super) fn read_bytes(&self, vcpu: usize, first: u32, size: u8, array: ByteArray) -> u64 {
        let mut value = 0u64;
        for i in 0..u32::from(size) {
            let Some(irq) = self.irq_state(vcpu, first + i) else {
                continue;
            };
            let byte = match array {
                ByteArray::Priority => irq.priority,
                // SGI/PPI target bytes read as the accessing CPU (IHI 0048B §4.3.12).
                ByteArray::Targets if first + i < NR_PRIVATE as u32 => 1 << (vcpu % 8),
                ByteArray::Targets => irq.targets,
            };
            value |= u64::from(byte) << (8 * i);
        }
        value
    }

    /// Writes `size` bytes of a byte-per-interrupt array from INTID `first`.
    pub(super) fn write_bytes(&mut self, vcpu: usize, first: u32, size: u8, array: ByteArray, value: u64) {
        let cpu_mask = self.v2_cpu_mask();
        for i in 0..u32::from(size) {
            let intid = first + i;
            let byte = (value >> (8 * i)) as u8;
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            match array {
                ByteArray::Priority => Vgic::set_priority(irq, byte),
                ByteArray::Targets if intid < NR_PRIVATE as u32 => {}
                ByteArray::Targets => irq.targets = byte & cpu_mask,
            }
            self.note(vcpu, intid);
        }
    }

    /// Reads ICFGR register `n` (16 interrupts, 2 bits each; bit 2i+1 set =
    /// edge, IHI 0069H §12.9.9).
    pub(super) fn read_icfgr(&self, vcpu: usize, n: usize) -> u32 {
        let mut value = 0;
        for i in 0..16u32 {
            if let Some(irq) = self.irq_state(vcpu, n as u32 * 16 + i)
                && irq.trigger == Trigger::Edge
            {
                value |= 2 << (2 * i);
            }
        }
        value
    }

    /// Writes ICFGR register `n`. SGIs are always edge (ICFGR0 is RO). For
    /// PPIs (ICFGR1) it is IMPLEMENTATION DEFINED whether Int_config is
    /// programmable (IHI 0069H GICR_ICFGR1, IHI 0048B §4.3.13): here it is
    /// not, as in KVM and Xen: they stay level-sensitive, which the virtual
    /// timer relies on (its line is resampled on the EOI maintenance exit
    /// of a level interrupt; as an edge it would stay high and never fire
    /// again).
    pub(super) fn write_icfgr(&mut self, vcpu: usize, n: usize, value: u32) {
        if n < NR_PRIVATE / 16 {
            return;
        }
        for i in 0..16u32 {
            let intid = n as u32 * 16 + i;
            if let Some(irq) = self.irq_mut(vcpu, intid) {
                irq.trigger = if value & (2 << (2 * i)) != 0 { Trigger::Edge } else { Trigger::Level };
                self.note(vcpu, intid);
            }
        }
    }

    pub(super) fn dist_read(&self, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        check_common(offset, size, GICD_FRAME_SIZE)?;
        let v3 = self.version == GicVersion::V3;
        let value = match offset {
            0x000 => {
                check_size(offset, size, &[4])?;
                let ctlr = if v3 { self.ctlr | CTLR_ARE_DS } else { self.ctlr };
                u64::from(ctlr)
            }
            0x004 => {
                check_size(offset, size, &[4])?;
                u64::from(self.typer())
            }
            0x008 => {
                check_size(offset, size, &[4])?;
                u64::from(IIDR)
            }
            // GICD_TYPER2 (v3): no vPEs, no extended ranges.
            0x00C => {
                check_size(offset, size, &[4])?;
                0
            }
            0x080..0x400 => {
                check_size(offset, size, &[4])?;
                let Some((array, n)) = BitArray::decode(offset) else {
                    return Ok(0);
                };
                // With ARE = 1 the SGI/PPI words live in the GICR (IHI 0069H §12.9).
                if v3 && n == 0 { 0 } else { u64::from(self.read_bits(vcpu, n as u32 * 32, array)) }
            }
            0x400..0x800 => {
                check_size(offset, size, &[1, 4])?;
                let first = (offset - 0x400) as u32;
                if v3 && first < NR_PRIVATE as u32 {
                    0
                } else {
                    self.read_bytes(vcpu, first, size, ByteArray::Priority)
                }
            }
            0x800..0xC00 => {
                check_size(offset, size, &[1, 4])?;
                if v3 { 0 } else { self.read_bytes(vcpu, (offset - 0x800) as u32, size, ByteArray::Targets) }
            }
            0xC00..0xD00 => {
                check_size(offset, size, &[4])?;
                let n = ((offset - 0xC00) / 4) as usize;
                if v3 && n < 2 { 0 } else { u64::from(self.read_icfgr(vcpu, n)) }
            }
            // GICv2 GICD_SGIR is write-only.
            0xF00 if !v3 => {
                check_size(offset, size, &[4])?;
                0
            }
            0xF10..0xF30 if !v3 => {
                check_size(offset, size, &[1, 4])?;
                let first = ((offset - 0xF10) % 0x10) as u32;
                let mut value = 0;
                for i in 0..u32::from(size) {
                    if let Some(irq) = self.irq_state(vcpu, first + i) {
                        value |= u64::from(irq.sgi_sources) << (8 * i);
                    }
                }
                value
            }
            0x6000..0x8000 if v3 => {
                check_size(offset, size, &[4, 8])?;
                let intid = ((offset - 0x6000) / 8) as u32;
                let route = match self.irq_state(vcpu, intid) {
                    Some(irq) if intid >= NR_PRIVATE as u32 => irq.route,
                    _ => 0,
                };
                if offset % 8 == 4 { route >> 32 } else { route & size_mask(size) }
            }
            0xFFD0..0x10000 if v3 => {
                check_size(offset, size, &[4])?;
                u64::from(id_register(self.version, (offset - 0xFFD0) / 4))
            }
            0xFD0..0x1000 if !v3 => {
                check_size(offset, size, &[4])?;
                u64::from(id_register(self.version, (offset - 0xFD0) / 4))
            }
            // Everything else, including IGRPMODR and NSACR, is RAZ/WI.
            _ => 0,
        };
        Ok(value)
    }

    pub(super) fn dist_write(&mut self, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        check_common(offset, size, GICD_FRAME_SIZE)?;
        let v3 = self.version == GicVersion::V3;
        let word = value as u32;
        match offset {
            0x000 => {
                check_size(offset, size, &[4])?;
                // EnableGrp0 (bit 0) and EnableGrp1 (bit 1), IHI 0069H
                // §12.9.4 with DS = 1; IHI 0048B §4.3.1.
                self.ctlr = word & 0x3;
                self.note_all();
            }
            0x004 | 0x008 | 0x00C => check_size(offset, size, &[4])?,
            0x080..0x400 => {
                check_size(offset, size, &[4])?;
                if let Some((array, n)) = BitArray::decode(offset)
                    && !(v3 && n == 0)
                {
                    self.write_bits(vcpu, n as u32 * 32, array, word);
                }
            }
            0x400..0x800 => {
                check_size(offset, size, &[1, 4])?;
                let first = (offset - 0x400) as u32;
                if !(v3 && first < NR_PRIVATE as u32) {
                    self.write_bytes(vcpu, first, size, ByteArray::Priority, value);
                }
            }
            0x800..0xC00 => {
                check_size(offset, size, &[1, 4])?;
                if !v3 {
                    self.write_bytes(vcpu, (offset - 0x800) as u32, size, ByteArray::Targets, value);
                }
            }
            0xC00..0xD00 => {
                check_size(offset, size, &[4])?;
                let n = ((offset - 0xC00) / 4) as usize;
                if !(v3 && n < 2) {
                    self.write_icfgr(vcpu, n, word);
                }
            }
            0xF00 if !v3 => {
                check_size(offset, size, &[4])?;
                if let Some(request) = sgi::decode_sgir(word, vcpu, self.nr_vcpus) {
                    self.deliver_sgi(vcpu, request);
                }
            }
            0xF10..0xF30 if !v3 => {
                check_size(offset, size, &[1, 4])?;
                let set = offset >= 0xF20;
                let first = ((offset - 0xF10) % 0x10) as u32;
                let cpu_mask = self.v2_cpu_mask();
                for i in 0..u32::from(size) {
                    let sources = (value >> (8 * i)) as u8;
                    if let Some(irq) = self.irq_mut(vcpu, first + i) {
                        if set {
                            irq.sgi_sources |= sources & cpu_mask;
                        } else {
                            irq.sgi_sources &= !sources;
                        }
                    }
                    self.note(vcpu, first + i);
                }
            }
            0x6000..0x8000 if v3 => {
                check_size(offset, size, &[4, 8])?;
                let intid = ((offset - 0x6000) / 8) as u32;
                if intid >= NR_PRIVATE as u32
                    && let Some(irq) = self.irq_mut(vcpu, intid)
                {
                    irq.route = match (size, offset % 8) {
                        (8, _) => value,
                        (_, 0) => (irq.route & !0xFFFF_FFFF) | (value & 0xFFFF_FFFF),
                        _ => (irq.route & 0xFFFF_FFFF) | ((value & 0xFFFF_FFFF) << 32),
                    } & IROUTER_MASK;
                    self.note(vcpu, intid);
                }
            }
            0xFFD0..0x10000 if v3 => check_size(offset, size, &[4])?,
            0xFD0..0x1000 if !v3 => check_size(offset, size, &[4])?,
            _ => {}
        }
        Ok(())
    }

    /// The GICv2 CPU-interface bits that name an existing vCPU.
    fn v2_cpu_mask(&self) -> u8 {
        ((1u16 << self.nr_vcpus.min(8)) - 1) as u8
    }

    /// GICD_TYPER (IHI 0069H §12.9.38, IHI 0048B §4.3.2).
    pub(super) fn typer(&self) -> u32 {
        let it_lines = (self.nr_spis / 32) as u32;
        let cpus = (self.nr_vcpus.min(8) - 1) as u32;
        let mut typer = it_lines | (cpus << 5);
        if self.version == GicVersion::V3 {
            // IDbits = 9: 10-bit INTIDs, no LPIs; No1N; RSS when Aff0 > 15 is used.
            typer |= (9 << 19) | (1 << 25);
            if self.nr_vcpus > 16 {
                typer |= 1 << 26;
            }
        }
        typer
    }
}

pub(super) fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}
