//! A virtio-blk disk under stock Linux (issue 18): Debian's unmodified
//! kernel loads its own `virtio_mmio` and `virtio_blk` modules, finds the
//! VM's disks where QEMU `virt` puts them, reads a known image, writes a
//! sector (and discards a MiB) that it reads back after a VM reset (the
//! image is the host copy, used in place), and is told that the read-only
//! disk is read-only.
//!
//! The disk is 48 MiB of a 256 MiB VM, read whole with the kernel's
//! `init_on_alloc=0`: its page cache then lands in RAM blocks the guest has
//! not touched yet, so a device that wrote guest RAM before the block was
//! filled (`guestram`) would have its data zeroed by the fill, and the sum
//! would be wrong (checked by breaking `vdisk::VmRam`).

use std::path::PathBuf;
use std::process::Command;

use qemu_tests::{Session, fetch_linux, linux_initrd_with_modules, root, run, temp_file};

const P: &str = "[linux] ";
const PROMPT: &str = "[linux] Enter 'help' for a list of built-in commands.";

/// Runs `sh -c script` on the host; panics with its output unless it succeeds.
fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().expect("sh");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Debian's busybox initramfs with its kernel's `virtio_mmio.ko` and
/// `virtio_blk.ko` at its root.
fn initrd_with_modules() -> PathBuf {
    linux_initrd_with_modules("virtio-blk", &["drivers/virtio/virtio_mmio", "drivers/block/virtio_blk"])
}

/// `len` bytes of a fixed pattern that differs from sector to sector.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

/// The md5 of `bytes`, as `md5sum` prints it.
fn md5(name: &str, bytes: &[u8]) -> String {
    let path = temp_file(name, bytes);
    sh(&format!("md5sum '{}'", path.display())).split_whitespace().next().unwrap().to_string()
}

/// Loads the modules (after a boot) and checks that both disks came up.
fn load_drivers(s: &mut Session) {
    s.command("insmod /virtio_mmio.ko && insmod /virtio_blk.ko", P, 60);
    assert_eq!(s.command("cat /sys/block/vda/size /sys/block/vdb/size", P, 30), ["98304", "128"]);
}

#[test]
fn linux_reads_writes_and_keeps_a_virtio_disk() {
    fetch_linux();
    let initrd = initrd_with_modules();
    let disk = pattern(48 << 20, 1);
    let ro = pattern(64 << 10, 2);
    let (disk_path, ro_path) = (temp_file("vda.img", &disk), temp_file("vdb.img", &ro));
    let cfg = format!(
        "[[vm]]\nname = \"linux\"\nkernel = \"linux\"\ninitrd = \"{}\"\nmemory = \"256M\"\nvcpus = 2\n\
         cmdline = \"console=ttyAMA0 earlycon=pl011,0x09000000 init_on_alloc=0\"\n\n\
         [[vm.disk]]\nimage = \"{}\"\n\n[[vm.disk]]\nimage = \"{}\"\nreadonly = true\n",
        initrd.display(),
        disk_path.display(),
        ro_path.display()
    );
    let cfg = temp_file("linux-virtio-blk.toml", cfg.as_bytes());
    let mut s = Session::start(300, &["--config", cfg.to_str().unwrap(), "--gic", "3", "--cpus", "2"]);
    s.wait_for(PROMPT, 120);
    let out = s.output();
    assert!(out.contains("\"linux\": disk[0]: 48 MiB at host 0x"), "{out}");
    assert!(out.contains(", virtio-mmio at IPA 0xa000200, read-only\n"), "{out}");
    load_drivers(&mut s);

    // The whole disk, read through virtio-blk, is the image.
    assert_eq!(s.command("md5sum /dev/vda", P, 60), [format!("{}  /dev/vda", md5("vda.md5", &disk))]);
    assert_eq!(s.command("md5sum /dev/vdb", P, 60), [format!("{}  /dev/vdb", md5("vdb.md5", &ro))]);

    // A sector written, flushed, dropped from the page cache and read back.
    // (Commands stay short: the shell's echo of a long line wraps.)
    s.command("echo hello | dd of=/dev/vda seek=5 conv=fsync 2>/dev/null", P, 60);
    s.command("echo 3 > /proc/sys/vm/drop_caches", P, 30);
    assert_eq!(s.command("dd if=/dev/vda skip=5 count=1 2>/dev/null|head -n1", P, 30), ["hello"]);

    // DISCARD (§5.2.6): the second MiB reads as zeros afterwards.
    s.command("blkdiscard -o 1048576 -l 1048576 /dev/vda", P, 60);
    s.command("echo 3 > /proc/sys/vm/drop_caches", P, 30);
    let zeros = md5("zeros.md5", &[0; 1 << 20]);
    assert_eq!(s.command("dd if=/dev/vda bs=1M skip=1 count=1 2>/dev/null|md5sum", P, 30), [format!("{zeros}  -")]);

    // The read-only disk: Linux knows (VIRTIO_BLK_F_RO) and refuses writes.
    assert_eq!(s.command("blockdev --getro /dev/vdb", P, 30), ["1"]);
    let out = s.command("echo x | dd of=/dev/vdb seek=1 conv=fsync", P, 30).join("\n");
    assert!(out.contains("Operation not permitted"), "a write to the read-only disk: {out}");

    // A VM reset reloads the RAM but not the disk: after a new boot the
    // sector is still written, and the rest of the disk is as it was.
    s.send("reboot -f");
    s.wait_for("el2-hyp: VM \"linux\" reset", 60);
    s.wait_for(PROMPT, 120);
    load_drivers(&mut s);
    let mut written = disk.clone();
    written[5 * 512..5 * 512 + 6].copy_from_slice(b"hello\n");
    written[1 << 20..2 << 20].fill(0);
    assert_eq!(s.command("md5sum /dev/vda", P, 60), [format!("{}  /dev/vda", md5("vda2.md5", &written))]);
    assert_eq!(s.command("md5sum /dev/vdb", P, 60), [format!("{}  /dev/vdb", md5("vdb.md5", &ro))]);

    let log = s.command("dmesg", P, 30).join("\n");
    assert!(log.contains("virtio_blk virtio1: [vdb] 128 512-byte logical blocks"), "{log}");
    for bad in ["WARNING:", "Oops", "BUG:", "Call trace:", "Unable to handle", "I/O error"] {
        assert!(!log.contains(bad), "kernel log has {bad:?}:\n{log}");
    }
    s.send("poweroff -f");
    s.wait_for("el2-hyp: VM \"linux\" stopped: PSCI SYSTEM_OFF", 60);
    let r = s.finish(60);
    r.expect_clean_exit().expect_not("HYPERVISOR CRASH").expect_not("DEVICE_NEEDS_RESET").expect_not("injecting");
}

/// Scenarios of the attacker's `virtio` group (ci/attacker/src/attacks.rs).
const VIRTIO_SCENARIOS: usize = 8;

/// A hostile driver (the attacker image, `attacks=virtio`): register
/// accesses of the wrong width get an external abort; descriptors outside
/// the VM's RAM (just past it, on the GIC, a length past its end), a
/// descriptor loop and a used ring outside the RAM get DEVICE_NEEDS_RESET
/// with nothing used; a sector past the end gets IOERR; after all that,
/// a reset and a good request read sector 0 of the disk.
#[test]
fn a_hostile_virtio_driver_gets_device_needs_reset() {
    let attacker = root().join("build/attacker.bin");
    let mut image = b"EL2DISK0".to_vec();
    image.resize(1 << 20, 0);
    let disk = temp_file("hostile-vda.img", &image);
    let cfg = format!(
        "[[vm]]\nname = \"attacker\"\nkernel = \"{}\"\nmemory = \"64M\"\nvcpus = 1\ncmdline = \"attacks=virtio\"\n\n\
         [[vm.disk]]\nimage = \"{}\"\n",
        attacker.display(),
        disk.display()
    );
    let cfg = temp_file("hostile-virtio.toml", cfg.as_bytes());
    let r = run(120, &["--config", cfg.to_str().unwrap(), "--gic", "3", "--cpus", "2"]);
    r.expect_clean_exit()
        .expect_not("HYPERVISOR")
        .expect("[attacker] attacker: 8 held, 0 broken")
        .expect("el2-hyp: VM \"attacker\" stopped: PSCI SYSTEM_OFF")
        .expect("disk[0]: the driver broke a virtio rule");
    let attacker = r.vm_lines("attacker");
    let held = attacker.iter().filter(|l| l.starts_with("attack virtio-") && l.contains(": held (answer: ")).count();
    assert_eq!(held, VIRTIO_SCENARIOS, "{}", r.output);
    assert!(!attacker.iter().any(|l| l.contains("BROKEN")), "{}", r.output);
}
