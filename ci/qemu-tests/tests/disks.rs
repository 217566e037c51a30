//! Disks (issue 18): the guest kernel's virtio-blk driver
//! (`guest-kernel/src/block/virtio_blk.rs`) against QEMU's own
//! virtio-blk-device on QEMU's virtio-mmio transports natively, and
//! against the hypervisor's (`hypervisor/src/arch/aarch64/vdisk.rs`) in a
//! VM. The kernel prints the lines Linux prints for a disk, its size
//! (`string_get_size`) and the partition scan of sector 0: Debian's Linux
//! 6.1, booted on the same disks, must print the same.

use qemu_tests::{Run, Session, linux_initrd_with_modules, native_guest_kernel_args, qemu, run, temp_file};

/// A disk image of `sectors` sectors: a byte pattern, and an MS-DOS
/// partition table with `parts` (type 0x83, start, length) when given.
fn disk(name: &str, sectors: usize, parts: &[(u32, u32)]) -> String {
    let mut img: Vec<u8> = (0..sectors * 512).map(|i| (i * 7 + i / 512) as u8).collect();
    if !parts.is_empty() {
        img[446..510].fill(0);
        for (n, &(start, len)) in parts.iter().enumerate() {
            let e = 446 + 16 * n;
            img[e + 4] = 0x83;
            img[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            img[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
        }
        img[510] = 0x55;
        img[511] = 0xaa;
    } else {
        img[510] = 0;
    }
    temp_file(name, &img).to_str().unwrap().to_string()
}

/// QEMU's arguments for `disks` (path, read-only) as virtio-blk devices
/// on the machine's virtio-mmio transports.
fn drive_args(disks: &[(String, bool)]) -> Vec<String> {
    let mut args = Vec::new();
    for (n, (path, ro)) in disks.iter().enumerate() {
        let ro = if *ro { ",readonly=on" } else { "" };
        args.extend([
            "-drive".into(),
            format!("file={path},if=none,format=raw,id=d{n}{ro}"),
            "-device".into(),
            format!("virtio-blk-device,drive=d{n}"),
        ]);
    }
    args
}

/// The guest kernel natively with `disks` (path, read-only) as QEMU
/// virtio-blk devices; init is missing, so the kernel powers off once the
/// drivers have run.
fn boot_with(disks: &[(String, bool)], modern: bool) -> Run {
    let mut args = native_guest_kernel_args(3, 1, "hz=100 init=/bin/none");
    if modern {
        args.extend(["-global", "virtio-mmio.force-legacy=false"].map(String::from));
    }
    args.extend(drive_args(disks));
    qemu(120, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn the_guest_kernel_finds_qemus_virtio_disks_and_their_partitions() {
    let a = disk("a.img", 2048, &[(64, 512), (576, 1024)]);
    let b = disk("b.img", 6144, &[]);
    let r = boot_with(&[(a, false), (b, true)], true);
    // QEMU fills its transports from the top: the last -device is virtio0.
    r.expect_clean_exit()
        .expect("virtio_blk virtio0: [vda] 6144 512-byte logical blocks (3.15 MB/3.00 MiB)\n")
        .expect("virtio_blk virtio1: [vdb] 2048 512-byte logical blocks (1.05 MB/1.00 MiB)\n")
        .expect(" vdb: vdb1 vdb2\n")
        .expect_not(" vda:")
        .expect("guest-kernel: cannot run /bin/none");
}

/// The lines the guest kernel prints for its disks.
fn disk_lines(output: &str, prefix: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter(|l| l.starts_with("virtio_blk virtio") || l.starts_with(" vd"))
        .map(str::to_string)
        .collect()
}

/// Debian's Linux 6.1 natively on the same two QEMU disks: it loads its
/// own virtio_mmio and virtio_blk modules and prints, in its log, the very
/// lines the guest kernel printed (the guest kernel prints nothing for an
/// unpartitioned disk, as Linux does when no parser knows it).
#[test]
fn linux_prints_the_same_disk_lines_as_the_guest_kernel() {
    let a = disk("cmp-a.img", 2048, &[(64, 512), (576, 1024)]);
    let b = disk("cmp-b.img", 6144, &[]);
    let disks = [(a, false), (b, true)];
    let ours = boot_with(&disks, true);
    ours.expect_clean_exit();
    let ours = disk_lines(&ours.output, "");
    assert_eq!(ours.len(), 3, "{ours:?}");

    let initrd = linux_initrd_with_modules("disks", &["drivers/virtio/virtio_mmio", "drivers/block/virtio_blk"]);
    let image = qemu_tests::cache().join("linux/Image");
    let mut args: Vec<String> = [
        "-M",
        "virt,gic-version=3",
        "-cpu",
        "cortex-a72",
        "-m",
        "256M",
        "-nographic",
        "-nic",
        "none",
        "-global",
        "virtio-mmio.force-legacy=false",
        "-append",
        "console=ttyAMA0",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["-kernel".into(), image.to_str().unwrap().into(), "-initrd".into(), initrd.to_str().unwrap().into()]);
    args.extend(drive_args(&disks));
    let mut s = Session::start_qemu(300, &args.iter().map(String::as_str).collect::<Vec<_>>());
    s.wait_for("Enter 'help' for a list of built-in commands.", 120);
    // Typed lines echo back, so each waits for a word the shell computes.
    s.send("insmod /virtio_mmio.ko && insmod /virtio_blk.ko && echo insmod-$((6*7))");
    s.wait_for("insmod-42", 60);
    s.send("dmesg | grep -e virtio_blk -e ' vd'; echo dmesg-$((6*7))");
    s.wait_for("dmesg-42", 60);
    // dmesg's lines without their time stamps.
    let output = s.output();
    let log: Vec<String> = output
        .lines()
        .filter_map(|l| l.strip_prefix('[').and_then(|l| l.split_once("] ")).map(|(_, rest)| rest.trim_end()))
        .map(str::to_string)
        .collect();
    for line in &ours {
        assert!(
            log.iter().any(|l| l == line.trim_end()),
            "Linux did not print {line:?}; its lines: {log:#?}\nits console:\n{}",
            s.output()
        );
    }
    // And nothing of that kind that the guest kernel left out (a line
    // for the unpartitioned disk, say).
    for line in log.iter().filter(|l| l.starts_with(" vd") || (l.starts_with("virtio_blk virtio") && l.contains("] ")))
    {
        assert!(ours.iter().any(|o| o.trim_end() == line), "the guest kernel did not print Linux's {line:?}");
    }
    s.send("poweroff -f");
    s.finish(60);
}

/// The guest kernel in a VM of the hypervisor with two `[[vm.disk]]`s
/// (one read-only): the hypervisor's virtio-blk devices, found through the
/// guest DTB, read through the guest kernel's driver.
#[test]
fn the_guest_kernel_reads_its_disks_in_a_vm() {
    let a = disk("vm-a.img", 2048, &[(64, 512), (576, 1024)]);
    let b = disk("vm-b.img", 6144, &[]);
    let cfg = format!(
        "[[vm]]\nname = \"gk\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"64M\"\ncmdline = \"init=/bin/none\"\n\n\
         [[vm.disk]]\nimage = \"{a}\"\n\n[[vm.disk]]\nimage = \"{b}\"\nreadonly = true\n"
    );
    let cfg = temp_file("gk-disks.toml", cfg.as_bytes());
    let r = run(120, &["--config", cfg.to_str().unwrap(), "--cpus", "1"]);
    r.expect_clean_exit()
        .expect("[gk] virtio_blk virtio0: [vda] 2048 512-byte logical blocks (1.05 MB/1.00 MiB)\n")
        .expect("[gk]  vda: vda1 vda2\n")
        .expect("[gk] virtio_blk virtio1: [vdb] 6144 512-byte logical blocks (3.15 MB/3.00 MiB)\n")
        .expect("[gk] guest-kernel: cannot run /bin/none")
        .expect_not("DEVICE_NEEDS_RESET")
        .expect_not("broke a virtio rule");
}

#[test]
fn a_legacy_transport_is_refused_and_the_boot_goes_on() {
    let a = disk("legacy.img", 2048, &[(64, 512)]);
    let r = boot_with(&[(a, false)], false);
    r.expect_clean_exit()
        .expect("virtio-mmio 0xa003e00: version 1 (legacy) not supported; version 2 only\n")
        .expect_not("virtio_blk")
        .expect("guest-kernel: cannot run /bin/none");
}
