//! virtio-blk (virtio 1.2 §5.2) over a disk image held in host RAM.
//!
//! One request queue. A request is one chain (§5.2.6): a device-readable
//! header {type u32, reserved u32, sector u64}, the data (device-readable
//! for a write, device-writable for a read), and a device-writable status
//! byte at the very end. The chain is read as two byte streams, so the
//! driver may split it into descriptors any way it likes (§2.7.4).
//!
//! The disk is a `&mut [u8]`, the image in host RAM: it belongs to the
//! device, not to the VM's RAM, so what a guest wrote survives a reset of
//! the device or of the VM. Its capacity is its length in 512-byte sectors
//! (a partial last sector is not used). Every request is checked against
//! it: a sector range past the end is VIRTIO_BLK_S_IOERR, never a panic;
//! an unknown type is VIRTIO_BLK_S_UNSUPP; a read-only disk answers writes,
//! discards and write-zeroes with IOERR (§5.2.6.2) and changes nothing.

use super::device_id;
use super::memory::GuestMemory;
use super::mmio::VirtioDevice;
use super::queue::{Chain, QueueError};

/// Bytes per sector: the unit of `sector` and `capacity` (§5.2.4).
pub const SECTOR: u64 = 512;
/// QueueNumMax of the request queue (QEMU's default).
pub const QUEUE_SIZE_MAX: u16 = 256;
/// Bytes of the header at the start of every request (§5.2.6).
pub const HEADER_LEN: u64 = 16;
/// Bytes of a GET_ID answer (§5.2.6: VIRTIO_BLK_ID_BYTES).
pub const ID_BYTES: usize = 20;
/// Largest range of one discard or write-zeroes segment, in sectors.
pub const MAX_DISCARD_SECTORS: u32 = 1 << 22;
/// Most segments in one discard or write-zeroes request.
pub const MAX_DISCARD_SEG: u32 = 32;
/// Bytes of one discard or write-zeroes segment {sector u64, num_sectors
/// u32, flags u32} (§5.2.6).
const SEGMENT_LEN: u64 = 16;

/// Feature bits of the block device (§5.2.3).
pub mod feature {
    /// seg_max holds the most data segments in a request.
    pub const SEG_MAX: u64 = 1 << 2;
    /// The disk is read-only.
    pub const RO: u64 = 1 << 5;
    /// blk_size holds the block size.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// FLUSH requests are supported.
    pub const FLUSH: u64 = 1 << 9;
    /// DISCARD requests are supported, with the max_discard_* fields.
    pub const DISCARD: u64 = 1 << 13;
    /// WRITE_ZEROES requests are supported, with the max_write_zeroes_* fields.
    pub const WRITE_ZEROES: u64 = 1 << 14;
}

/// Request types (§5.2.6).
pub mod req {
    /// Read sectors into the data buffers.
    pub const IN: u32 = 0;
    /// Write the data buffers to sectors.
    pub const OUT: u32 = 1;
    /// Make written data durable.
    pub const FLUSH: u32 = 4;
    /// The device's ID string, 20 bytes.
    pub const GET_ID: u32 = 8;
    /// The sector ranges' contents are no longer needed.
    pub const DISCARD: u32 = 11;
    /// Make the sector ranges read as zeros.
    pub const WRITE_ZEROES: u32 = 13;
}

/// The status byte (§5.2.6).
pub mod req_status {
    /// Success.
    pub const OK: u8 = 0;
    /// Device or driver error.
    pub const IOERR: u8 = 1;
    /// Request unsupported by the device.
    pub const UNSUPP: u8 = 2;
}

/// The `flags` bit of a discard or write-zeroes segment asking to
/// deallocate (§5.2.6).
pub const SEGMENT_F_UNMAP: u32 = 1;

/// Bytes of `struct virtio_blk_config` this device fills (§5.2.4, up to
/// write_zeroes_may_unmap and its padding).
pub const CONFIG_LEN: usize = 60;

/// One virtio-blk device over a disk image in host RAM.
#[derive(Debug)]
pub struct Blk<'d> {
    disk: &'d mut [u8],
    read_only: bool,
    id: [u8; ID_BYTES],
    config: [u8; CONFIG_LEN],
}

impl<'d> Blk<'d> {
    /// A block device over `disk`, read-only if `read_only`, answering
    /// GET_ID with `id` (NUL-padded, as §5.2.6 allows).
    pub fn new(disk: &'d mut [u8], read_only: bool, id: [u8; ID_BYTES]) -> Self {
        let capacity = disk.len() as u64 / SECTOR;
        let mut config = [0u8; CONFIG_LEN];
        let mut put = |at: usize, bytes: &[u8]| config[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &capacity.to_le_bytes());
        // seg_max: the header and the status byte take two descriptors of
        // a chain no longer than the queue (§2.7.5.3.1), as QEMU counts.
        put(12, &u32::from(QUEUE_SIZE_MAX - 2).to_le_bytes());
        put(20, &(SECTOR as u32).to_le_bytes());
        put(36, &MAX_DISCARD_SECTORS.to_le_bytes());
        put(40, &MAX_DISCARD_SEG.to_le_bytes());
        put(44, &1u32.to_le_bytes()); // discard_sector_alignment: any sector
        put(48, &MAX_DISCARD_SECTORS.to_le_bytes());
        put(52, &MAX_DISCARD_SEG.to_le_bytes());
        Self { disk, read_only, id, config }
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.disk.len() as u64 / SECTOR
    }

    /// The disk's bytes.
    pub fn disk(&self) -> &[u8] {
        self.disk
    }

    /// The byte range of `bytes` bytes at `sector`, if it is whole sectors
    /// inside the capacity.
    fn sectors(&self, sector: u64, bytes: u64) -> Option<core::ops::Range<usize>> {
        let start = sector.checked_mul(SECTOR)?;
        let end = start.checked_add(bytes)?;
        (bytes.is_multiple_of(SECTOR) && end <= self.capacity() * SECTOR).then_some(start as usize..end as usize)
    }

    /// A request's status and how many data bytes it wrote at the start of
    /// the writable part. `data_out` and `data_in` are the data lengths:
    /// the readable part after the header, the writable part before the
    /// status byte.
    fn serve(
        &mut self,
        ty: u32,
        sector: u64,
        chain: &Chain,
        mem: &mut dyn GuestMemory,
    ) -> Result<(u8, u64), QueueError> {
        let data_out = chain.readable_len() - HEADER_LEN;
        let data_in = chain.writable_len() - 1;
        match ty {
            req::IN => {
                let Some(r) = self.sectors(sector, data_in) else { return Ok((req_status::IOERR, 0)) };
                chain.write_at(mem, 0, &self.disk[r])?;
                Ok((req_status::OK, data_in))
            }
            req::OUT => {
                let Some(r) = self.sectors(sector, data_out).filter(|_| !self.read_only) else {
                    return Ok((req_status::IOERR, 0));
                };
                chain.read_at(mem, HEADER_LEN, &mut self.disk[r])?;
                Ok((req_status::OK, 0))
            }
            // The disk is host RAM: written data is as durable as it gets.
            req::FLUSH => Ok((req_status::OK, 0)),
            req::GET_ID => {
                let n = data_in.min(ID_BYTES as u64) as usize;
                chain.write_at(mem, 0, &self.id[..n])?;
                Ok((req_status::OK, n as u64))
            }
            req::DISCARD | req::WRITE_ZEROES => Ok((self.discard(ty, data_out, chain, mem)?, 0)),
            _ => Ok((req_status::UNSUPP, 0)),
        }
    }

    /// DISCARD and WRITE_ZEROES (§5.2.6.2): every segment is checked
    /// before any is done. Unknown flags, and UNMAP on a discard, are
    /// UNSUPP; too many segments, too many sectors, a range past the end
    /// or a read-only disk are IOERR. Both zero the ranges: a discarded
    /// range may read as anything, and zeros leak nothing.
    fn discard(&mut self, ty: u32, data_out: u64, chain: &Chain, mem: &mut dyn GuestMemory) -> Result<u8, QueueError> {
        let count = data_out / SEGMENT_LEN;
        if !data_out.is_multiple_of(SEGMENT_LEN) || count == 0 || count > u64::from(MAX_DISCARD_SEG) || self.read_only {
            return Ok(req_status::IOERR);
        }
        let mut ranges = [(0, 0); MAX_DISCARD_SEG as usize];
        for (i, range) in ranges.iter_mut().take(count as usize).enumerate() {
            let mut s = [0u8; SEGMENT_LEN as usize];
            chain.read_at(mem, HEADER_LEN + i as u64 * SEGMENT_LEN, &mut s)?;
            let sector = u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
            let num = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
            let flags = u32::from_le_bytes([s[12], s[13], s[14], s[15]]);
            if flags & !SEGMENT_F_UNMAP != 0 || (ty == req::DISCARD && flags & SEGMENT_F_UNMAP != 0) {
                return Ok(req_status::UNSUPP);
            }
            let Some(r) = self.sectors(sector, u64::from(num) * SECTOR).filter(|_| num <= MAX_DISCARD_SECTORS) else {
                return Ok(req_status::IOERR);
            };
            *range = (r.start, r.end);
        }
        for (start, end) in ranges.into_iter().take(count as usize) {
            self.disk[start..end].fill(0);
        }
        Ok(req_status::OK)
    }
}

impl VirtioDevice for Blk<'_> {
    fn device_id(&self) -> u32 {
        device_id::BLOCK
    }

    fn features(&self) -> u64 {
        let ro = if self.read_only { feature::RO } else { 0 };
        feature::SEG_MAX | feature::BLK_SIZE | feature::FLUSH | feature::DISCARD | feature::WRITE_ZEROES | ro
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE_MAX]
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    /// One request. A chain without room for the header and the status
    /// byte breaks the request format (the device cannot even answer it):
    /// an error, so DEVICE_NEEDS_RESET. Everything else gets a status.
    fn handle(&mut self, _queue: u16, chain: &Chain, mem: &mut dyn GuestMemory) -> Result<u32, QueueError> {
        let (readable, writable) = (chain.readable_len(), chain.writable_len());
        if readable < HEADER_LEN || writable < 1 {
            return Err(QueueError::ShortChain { readable, writable });
        }
        let mut h = [0u8; HEADER_LEN as usize];
        chain.read_at(mem, 0, &mut h)?;
        let ty = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let sector = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        let (status, data) = self.serve(ty, sector, chain, mem)?;
        chain.write_at(mem, writable - 1, &[status])?;
        // The used len counts the bytes written from the start of the
        // writable part (§2.7.8.1): the status byte joins them only when
        // every data byte before it was written.
        let len = if data == writable - 1 { writable } else { data };
        Ok(u32::try_from(len).unwrap_or(u32::MAX))
    }
}
