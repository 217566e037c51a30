//! Block devices: disks addressed in 512-byte sectors, their names
//! (`vda`, `vdb`, ...), the size line Linux prints for them and the
//! partition scan of `add_disk` (LKD ch. 14, the block I/O layer; Linux
//! `block/genhd.c`, `block/partitions/msdos.c`).
//!
//! There is no request queue or I/O scheduler yet: a request is submitted
//! and completed before the call returns ([`BlockDevice`]). The VFS
//! (issue 15) and swap (issue 17) are the users to come; today the disks
//! are found, named and their partition tables read at boot
//! (`arch/aarch64/virtio.rs`).

pub mod virtio_blk;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// Bytes of a sector, the unit of every block request (`SECTOR_SIZE`).
pub const SECTOR_SIZE: usize = 512;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkError {
    /// The device reported an I/O error (`BLK_STS_IOERR`).
    Io,
    /// The device does not support the request (`BLK_STS_NOTSUPP`).
    Unsupported,
    /// A write to a read-only disk (`EROFS` upstairs).
    ReadOnly,
    /// The range is past the end of the disk, or not whole sectors.
    Range,
    /// The device broke the protocol (a bad used entry); it is not used
    /// again until reset.
    Device,
}

/// A disk: whole sectors in, whole sectors out.
pub trait BlockDevice {
    /// Capacity in 512-byte sectors.
    fn sectors(&self) -> u64;
    fn read_only(&self) -> bool;
    /// Reads `buf.len()` bytes (whole sectors) from `sector` on.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError>;
    /// Writes `buf` (whole sectors) from `sector` on.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlkError>;
    /// Makes earlier writes durable (a no-op for a device without a
    /// volatile cache).
    fn flush(&mut self) -> Result<(), BlkError>;
}

/// Checks that `[sector, sector + len/512)` lies on a disk of `sectors`
/// and that `len` is whole sectors.
pub fn check_range(sectors: u64, sector: u64, len: usize) -> Result<(), BlkError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(BlkError::Range);
    }
    let n = (len / SECTOR_SIZE) as u64;
    match sector.checked_add(n) {
        Some(end) if end <= sectors => Ok(()),
        _ => Err(BlkError::Range),
    }
}

/// The name of disk `index` with prefix `prefix` (`vd`): a..z, then aa,
/// ab, ... (Linux `sd_format_disk_name`).
pub fn disk_name(prefix: &str, index: usize) -> String {
    let mut letters = Vec::new();
    let mut i = index + 1;
    while i > 0 {
        i -= 1;
        letters.push(b'a' + (i % 26) as u8);
        i /= 26;
    }
    let mut s = String::from(prefix);
    s.extend(letters.iter().rev().map(|&c| c as char));
    s
}

/// Whether sizes are in powers of 1000 or 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    Decimal,
    Binary,
}

/// `size` blocks of `blk_size` bytes as three significant figures and a
/// unit, exactly as Linux's `string_get_size` (lib/string_helpers.c)
/// writes it: "1.05 MB", "1.00 MiB".
pub fn string_get_size(mut size: u64, mut blk_size: u64, units: Units) -> String {
    const UNITS_10: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    const UNITS_2: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    const ROUNDING: [u32; 3] = [500, 50, 5];
    let divisor: u64 = if units == Units::Decimal { 1000 } else { 1024 };
    let mut i = 0usize;
    let mut tmp = String::new();
    if blk_size == 0 {
        size = 0;
    }
    if size != 0 {
        // Napier's algorithm: both factors just under 32 bits.
        while blk_size >> 32 != 0 {
            blk_size /= divisor;
            i += 1;
        }
        while size >> 32 != 0 {
            size /= divisor;
            i += 1;
        }
        size *= blk_size;
        let mut remainder = 0u32;
        while size >= divisor {
            remainder = (size % divisor) as u32;
            size /= divisor;
            i += 1;
        }
        let mut sf_cap = size as u32;
        let mut j = 0;
        while sf_cap * 10 < 1000 {
            sf_cap *= 10;
            j += 1;
        }
        if units == Units::Binary {
            remainder = (remainder * 1000) >> 10;
        }
        remainder += ROUNDING[j];
        if remainder >= 1000 {
            remainder -= 1000;
            size += 1;
        }
        if j > 0 {
            let _ = write!(tmp, ".{remainder:03}");
            tmp.truncate(j + 1);
        }
    }
    let unit = match units {
        Units::Decimal => UNITS_10.get(i),
        Units::Binary => UNITS_2.get(i),
    };
    let mut out = String::new();
    let _ = write!(out, "{}{} {}", size as u32, tmp, unit.copied().unwrap_or("UNK"));
    out
}

/// A partition: first sector and length in sectors, and its number
/// (`vda1` is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub number: u32,
    pub start: u64,
    pub sectors: u64,
}

/// What sector 0 says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionTable {
    /// No 0x55AA signature: the disk is not partitioned.
    None,
    /// An MS-DOS table's primary partitions (Linux `msdos_partition`);
    /// an extended partition is listed as itself, its logical partitions
    /// are not read.
    Msdos(Vec<Partition>),
    /// A protective MBR (type 0xEE): a GPT, which is not read.
    Gpt,
}

/// Reads an MS-DOS partition table from sector 0 (`block/partitions/
/// msdos.c`: four 16-byte entries at 446, the signature at 510). Entries
/// of type 0 or with no sectors are empty; an entry that runs past the
/// disk's end is kept, as Linux keeps it (and warns).
pub fn msdos_partitions(sector0: &[u8; SECTOR_SIZE]) -> PartitionTable {
    if sector0[510] != 0x55 || sector0[511] != 0xaa {
        return PartitionTable::None;
    }
    let mut parts = Vec::new();
    for n in 0..4 {
        let e = &sector0[446 + 16 * n..446 + 16 * (n + 1)];
        let kind = e[4];
        let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64;
        let sectors = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as u64;
        if kind == 0xee {
            return PartitionTable::Gpt;
        }
        if kind == 0 || sectors == 0 {
            continue;
        }
        parts.push(Partition { number: n as u32 + 1, start, sectors });
    }
    PartitionTable::Msdos(parts)
}

/// The line `add_disk`'s partition scan prints: " vda: vda1 vda2"
/// (`block/partitions/core.c` `check_partition`). None for a disk no
/// parser recognises, for which Linux prints nothing either (checked on
/// Linux 6.1 by `ci/qemu-tests/tests/disks.rs`). A GPT, which Linux would
/// read, gets a line of ours saying it was not.
pub fn partition_line(name: &str, table: &PartitionTable) -> Option<String> {
    let mut s = String::new();
    match table {
        PartitionTable::None => return None,
        PartitionTable::Gpt => {
            let _ = write!(s, " {name}: GPT partition table not read");
        }
        PartitionTable::Msdos(parts) => {
            let _ = write!(s, " {name}:");
            for p in parts {
                let _ = write!(s, " {name}{}", p.number);
            }
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_follow_sd_format_disk_name() {
        assert_eq!(disk_name("vd", 0), "vda");
        assert_eq!(disk_name("vd", 25), "vdz");
        assert_eq!(disk_name("vd", 26), "vdaa");
        assert_eq!(disk_name("vd", 27), "vdab");
        assert_eq!(disk_name("vd", 26 + 26 * 26), "vdaaa");
    }

    /// Figures checked against Linux 6.1's boot lines for these sizes.
    #[test]
    fn sizes_are_printed_as_string_get_size_prints_them() {
        // 1 MiB: "[vda] 2048 512-byte logical blocks (1.05 MB/1.00 MiB)"
        assert_eq!(string_get_size(2048, 512, Units::Decimal), "1.05 MB");
        assert_eq!(string_get_size(2048, 512, Units::Binary), "1.00 MiB");
        // 8 GiB: "(8.59 GB/8.00 GiB)"
        assert_eq!(string_get_size(16_777_216, 512, Units::Decimal), "8.59 GB");
        assert_eq!(string_get_size(16_777_216, 512, Units::Binary), "8.00 GiB");
        // 20 GB virtio disk of 41943040 sectors: "(21.5 GB/20.0 GiB)"
        assert_eq!(string_get_size(41_943_040, 512, Units::Decimal), "21.5 GB");
        assert_eq!(string_get_size(41_943_040, 512, Units::Binary), "20.0 GiB");
        // 512 bytes: "512 B"
        assert_eq!(string_get_size(1, 512, Units::Decimal), "512 B");
        assert_eq!(string_get_size(0, 512, Units::Binary), "0 B");
    }

    #[test]
    fn ranges_must_be_whole_sectors_on_the_disk() {
        assert_eq!(check_range(8, 0, 4096), Ok(()));
        assert_eq!(check_range(8, 1, 4096), Err(BlkError::Range));
        assert_eq!(check_range(8, 0, 100), Err(BlkError::Range));
        assert_eq!(check_range(8, u64::MAX, 512), Err(BlkError::Range));
    }

    fn mbr(entries: &[(u8, u32, u32)]) -> [u8; 512] {
        let mut s = [0u8; 512];
        for (n, &(kind, start, len)) in entries.iter().enumerate() {
            let e = 446 + 16 * n;
            s[e + 4] = kind;
            s[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            s[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xaa;
        s
    }

    #[test]
    fn msdos_tables_list_the_primary_partitions() {
        let s = mbr(&[(0x83, 2048, 1000), (0, 0, 0), (0x0c, 4096, 100)]);
        let t = msdos_partitions(&s);
        assert_eq!(
            t,
            PartitionTable::Msdos(alloc::vec![
                Partition { number: 1, start: 2048, sectors: 1000 },
                Partition { number: 3, start: 4096, sectors: 100 },
            ])
        );
        assert_eq!(partition_line("vda", &t).as_deref(), Some(" vda: vda1 vda3"));
    }

    #[test]
    fn no_signature_no_table_and_a_protective_mbr_is_a_gpt() {
        let mut s = mbr(&[(0x83, 1, 1)]);
        s[511] = 0;
        assert_eq!(msdos_partitions(&s), PartitionTable::None);
        assert_eq!(partition_line("vdb", &PartitionTable::None), None);
        assert_eq!(msdos_partitions(&mbr(&[(0xee, 1, 100)])), PartitionTable::Gpt);
    }
}
