//! The U-Boot boot flow, as on a board: Debian's `u-boot-qemu` (`qemu_arm64`,
//! started with `-bios`) finds `boot.scr` on a virtio disk made by
//! `scripts/image qemu`, loads the hypervisor and the guest kernel, adds the
//! VM nodes to its control DTB (the one QEMU generated) with `fdt` commands
//! and runs `booti`. The hypervisor must start at EL2 and both VMs must
//! print their banners and power off.

use std::path::{Path, PathBuf};
use std::process::Command;

use qemu_tests::{qemu, root, temp_file};

const UBOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
const T: u32 = 60;

/// Debian's QEMU U-Boot, which `scripts/setup` installs; panics when it is
/// missing (a test that cannot run fails, it does not pass).
fn uboot() -> &'static Path {
    let path = Path::new(UBOOT);
    assert!(path.exists(), "{UBOOT} is missing: run scripts/setup (it installs Debian's u-boot-qemu)");
    path
}

/// `scripts/image qemu --gic GIC [--config CONFIG]` into a fresh temporary file.
fn disk_image(gic: &str) -> PathBuf {
    disk_image_with(gic, None)
}

fn disk_image_with(gic: &str, config: Option<&Path>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("el2-uboot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let img = dir.join(format!("qemu-gicv{gic}{}.img", if config.is_some() { "-config" } else { "" }));
    let mut cmd = Command::new(root().join("scripts/image"));
    cmd.args(["qemu", "--no-build", "--gic", gic, "--cpus", "2", "--mem", "1G", "--out"]).arg(&img);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.output().expect("could not start scripts/image");
    assert!(
        out.status.success(),
        "scripts/image qemu --gic {gic} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    img
}

fn boot_through_uboot(gic: &str) {
    let uboot = uboot();
    let img = disk_image(gic);
    let machine = format!("virt,virtualization=on,gic-version={gic}");
    let drive = format!("if=none,file={},format=raw,id=boot", img.display());
    #[rustfmt::skip]
    let r = qemu(T, &[
        "-M", &machine, "-cpu", "cortex-a72", "-smp", "2", "-m", "1G", "-nographic", "-nic", "none",
        "-bios", uboot.to_str().unwrap(),
        "-drive", &drive, "-device", "virtio-blk-device,drive=boot",
    ]);
    let _ = std::fs::remove_file(&img);
    r.expect("U-Boot 20")
        .expect("Found U-Boot script /boot.scr")
        .expect("el2-hyp boot.scr: loading hypervisor.bin at 0x40400000")
        .expect("el2-hyp boot.scr: booti 0x40400000 - 0x40000000")
        .expect("Starting kernel ...")
        .expect_not("SCRIPT FAILED")
        .expect_not("could not load")
        .expect_not("syntax error")
        // The hypervisor at EL2, on the DTB U-Boot passed (QEMU's own).
        .expect(&format!("el2-hyp: linux,dummy-virt at EL2, 2 CPU(s), GICv{gic}, 1024 MiB RAM"))
        // The VMs in file order, as the fdt commands made them.
        .expect("el2-hyp: VM 0 \"alpha\"")
        .expect("el2-hyp: VM 1 \"beta\"")
        .expect("[alpha] guest-kernel: hello from VM \"alpha\": 64 MiB RAM, 1 CPU(s)")
        .expect("[beta] guest-kernel: hello from VM \"beta\": 64 MiB RAM, 1 CPU(s)")
        .expect("el2-hyp: VM \"alpha\" stopped: PSCI SYSTEM_OFF")
        .expect("el2-hyp: VM \"beta\" stopped: PSCI SYSTEM_OFF")
        .expect("el2-hyp: all VMs have stopped; powering off")
        .expect_not("CRASH")
        .expect_not("panic")
        .expect_clean_exit();
}

#[test]
fn uboot_booti_from_disk_gicv3() {
    boot_through_uboot("3");
}

#[test]
fn uboot_booti_from_disk_gicv2() {
    boot_through_uboot("2");
}

/// `[[vm.disk]]` through U-Boot: the disk images go on the boot partition,
/// the script loads them and makes the `disk@K` nodes (`readonly` an empty
/// property), and the attacker's hostile virtio driver finds its disk
/// (sector 0 "EL2DISK0") and gets the answers it gets under QEMU's loader.
#[test]
fn uboot_loads_disks_for_a_vm() {
    let uboot = uboot();
    let attacker = root().join("build/attacker.bin");
    let mut bytes = b"EL2DISK0".to_vec();
    bytes.resize(1 << 20, 0);
    let rw = temp_file("uboot-rw.img", &bytes);
    let ro = temp_file("uboot-ro.img", &[0x5a; 4096]);
    let cfg = format!(
        "[[vm]]\nname = \"attacker\"\nkernel = \"{}\"\nmemory = \"64M\"\ncmdline = \"attacks=virtio\"\n\n\
         [[vm.disk]]\nimage = \"{}\"\n\n[[vm.disk]]\nimage = \"{}\"\nreadonly = true\n",
        attacker.display(),
        rw.display(),
        ro.display()
    );
    let cfg = temp_file("uboot-disks.toml", cfg.as_bytes());
    let img = disk_image_with("3", Some(&cfg));
    let drive = format!("if=none,file={},format=raw,id=boot", img.display());
    #[rustfmt::skip]
    let r = qemu(T, &[
        "-M", "virt,virtualization=on,gic-version=3", "-cpu", "cortex-a72", "-smp", "2", "-m", "1G", "-nographic",
        "-nic", "none", "-bios", uboot.to_str().unwrap(),
        "-drive", &drive, "-device", "virtio-blk-device,drive=boot",
    ]);
    let _ = std::fs::remove_file(&img);
    r.expect("Starting kernel ...")
        .expect_not("SCRIPT FAILED")
        .expect_not("could not load")
        .expect("el2-hyp: VM 0 \"attacker\"")
        .expect("el2-hyp: VM 0 \"attacker\": disk[0]: 1 MiB at host ")
        .expect("el2-hyp: VM 0 \"attacker\": disk[1]: 4 KiB at host ")
        .expect(", virtio-mmio at IPA 0xa000200, read-only")
        .expect("[attacker] attacker: 8 held, 0 broken")
        .expect("el2-hyp: VM \"attacker\" stopped: PSCI SYSTEM_OFF")
        .expect_not("CRASH")
        .expect_clean_exit();
}
