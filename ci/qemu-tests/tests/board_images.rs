//! The SD-card images of `scripts/image BOARD`, read back: the MBR
//! partition table, the boot loader pieces at the sectors the SoC's boot ROM
//! reads (compared byte for byte with Debian's U-Boot package), and the
//! files of the FAT boot partition (compared with what they were made from).
//! Nothing here boots a board: that needs the board.

use std::path::{Path, PathBuf};
use std::process::Command;

use qemu_tests::root;

const SECTOR: usize = 512;
/// Where scripts/image starts the boot partition.
const PART_START: usize = 32 << 20;

struct Board {
    name: &'static str,
    /// Debian package and folder under usr/lib/u-boot/.
    package: &'static str,
    uboot_dir: &'static str,
    /// (file in that folder, byte offset in the image).
    pieces: &'static [(&'static str, usize)],
    /// The board DTB, under dtbs/ in Debian's Linux package.
    dtb: &'static str,
}

const RK3399_PIECES: &[(&str, usize)] = &[("idbloader.img", 64 * SECTOR), ("u-boot.itb", 16384 * SECTOR)];

const ROCKPRO64: Board = Board {
    name: "rockpro64",
    package: "u-boot-rockchip",
    uboot_dir: "rockpro64-rk3399",
    pieces: RK3399_PIECES,
    dtb: "rockchip/rk3399-rockpro64.dtb",
};
const PINEBOOK_PRO: Board = Board {
    name: "pinebook-pro",
    package: "u-boot-rockchip",
    uboot_dir: "pinebook-pro-rk3399",
    pieces: RK3399_PIECES,
    dtb: "rockchip/rk3399-pinebook-pro.dtb",
};
/// The A64 boot ROM reads the SPL at 8 KiB; Debian ships it and the U-Boot
/// FIT apart (u-boot-install-sunxi64 writes the FIT at 40 KiB), together the
/// same bytes as u-boot-sunxi-with-spl.bin.
const PINE64_PLUS: Board = Board {
    name: "pine64-plus",
    package: "u-boot-sunxi",
    uboot_dir: "pine64_plus",
    pieces: &[("sunxi-spl.bin", 8 << 10), ("u-boot-sunxi-with-spl.fit.itb", 40 << 10)],
    dtb: "allwinner/sun50i-a64-pine64-plus.dtb",
};

fn cache() -> PathBuf {
    std::env::var_os("EL2_CACHE").map_or_else(|| root().join(".cache"), PathBuf::from)
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("el2-board-images-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A file of the FAT partition at PART_START, read with mtools.
fn fat_file(img: &Path, name: &str) -> Vec<u8> {
    run(Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{PART_START}", img.display()))
        .arg(format!("::{name}")))
}

fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn check_board(board: &Board) {
    let dir = tmp_dir(board.name);
    let img = dir.join(format!("{}.img", board.name));
    run(Command::new(root().join("scripts/image")).args([board.name, "--no-build", "--out"]).arg(&img));
    let disk = std::fs::read(&img).expect("the image");

    // MBR: one bootable FAT32 (LBA) partition at 32 MiB reaching the end.
    assert_eq!(&disk[510..512], &[0x55, 0xaa], "{}: no MBR signature", board.name);
    let p = &disk[0x1be..0x1ce];
    assert_eq!(p[0], 0x80, "{}: partition 1 is not bootable", board.name);
    assert_eq!(p[4], 0x0c, "{}: partition 1 type is {:#x}, not FAT32 LBA", board.name, p[4]);
    assert_eq!(le32(p, 8) * SECTOR, PART_START, "{}: partition 1 start", board.name);
    assert_eq!(PART_START + le32(p, 12) * SECTOR, disk.len(), "{}: partition 1 size", board.name);
    assert!(disk[0x1ce..0x1fe].iter().all(|&b| b == 0), "{}: only one partition", board.name);
    // The FAT32 boot sector at the partition's start.
    let fat = &disk[PART_START..PART_START + SECTOR];
    assert_eq!(&fat[510..512], &[0x55, 0xaa], "{}: no FAT boot sector", board.name);
    assert_eq!(&fat[82..90], b"FAT32   ", "{}: not FAT32", board.name);
    assert_eq!(&fat[71..82], b"EL2BOOT    ", "{}: volume label", board.name);

    // The boot loader, byte for byte as Debian ships it, clear of the
    // partition table and of the partition.
    let debs = cache().join("u-boot/debs");
    let deb = std::fs::read_dir(&debs)
        .unwrap_or_else(|e| panic!("{}: {e}", debs.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{}_", board.package)))
        .unwrap_or_else(|| panic!("no {}_*.deb in {}", board.package, debs.display()));
    let unpacked = dir.join("deb");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    let uboot = unpacked.join("usr/lib/u-boot").join(board.uboot_dir);
    let mut end_of_last = SECTOR;
    for &(file, offset) in board.pieces {
        let want = std::fs::read(uboot.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(offset >= end_of_last, "{}: {file} at {offset:#x} overlaps what is before it", board.name);
        let got = &disk[offset..offset + want.len()];
        assert!(got == want, "{}: the bytes at {offset:#x} are not {file}", board.name);
        end_of_last = offset + want.len();
    }
    assert!(end_of_last <= PART_START, "{}: the boot loader runs into the partition", board.name);

    // The boot partition's files.
    let build = root().join("build");
    assert!(fat_file(&img, "hypervisor.bin") == std::fs::read(build.join("hypervisor.bin")).unwrap());
    assert!(fat_file(&img, "guest-kernel.bin") == std::fs::read(build.join("guest-kernel.bin")).unwrap());
    let dtb = cache().join("linux/dtbs").join(board.dtb);
    assert!(fat_file(&img, &format!("dtbs/{}", board.dtb)) == std::fs::read(&dtb).unwrap(), "{}", board.dtb);
    let config = root().join(format!("firmware/boards/{}.toml", board.name));
    assert!(fat_file(&img, "vms.toml") == std::fs::read(&config).unwrap());

    // boot.scr: a legacy U-Boot image (magic 0x27051956) of type script (6)
    // for arm64 (22) whose payload is boot.cmd, which loads this board's DTB
    // and the images and ends in booti.
    let scr = fat_file(&img, "boot.scr");
    assert_eq!(&scr[0..4], &[0x27, 0x05, 0x19, 0x56], "boot.scr: not a U-Boot image");
    assert_eq!((scr[29], scr[30]), (22, 6), "boot.scr: not an arm64 script image");
    let cmd = String::from_utf8(fat_file(&img, "boot.cmd")).unwrap();
    let payload = &scr[64 + 8..];
    assert!(payload.starts_with(cmd.as_bytes()), "boot.scr does not hold boot.cmd");
    assert!(cmd.contains(&format!("\nsetenv el2_dtb dtbs/{}\n", board.dtb)), "{cmd}");
    assert!(!cmd.lines().any(|l| l.starts_with("@EL2_")), "a placeholder was left in boot.cmd:\n{cmd}");
    assert!(cmd.contains(" guest-kernel.bin || setenv el2_failed"), "{cmd}");
    assert!(cmd.contains("fdt set /chosen/hypervisor/vm@1 \"vm-name\" 'beta'"), "{cmd}");
    assert!(cmd.contains("\n    booti ${kernel_addr_r} - ${fdt_addr_r}\n"), "{cmd}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rockpro64_image() {
    check_board(&ROCKPRO64);
}

#[test]
fn pinebook_pro_image() {
    check_board(&PINEBOOK_PRO);
}

#[test]
fn pine64_plus_image() {
    check_board(&PINE64_PLUS);
}

#[test]
fn unknown_board_is_named() {
    let out = Command::new(root().join("scripts/image")).args(["rock5b", "--no-build"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown target 'rock5b'"), "{err}");
}
