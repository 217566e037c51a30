//! Disks (issue 18): the guest kernel's virtio-blk driver
//! (`guest-kernel/src/block/virtio_blk.rs`) against QEMU's own
//! virtio-blk-device on QEMU's virtio-mmio transports, natively. The
//! kernel prints the lines Linux prints for a disk: its size
//! (`string_get_size`) and the partition scan of sector 0.

use qemu_tests::{Run, native_guest_kernel_args, qemu, temp_file};

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

/// The guest kernel natively with `disks` (path, read-only) as QEMU
/// virtio-blk devices; init is missing, so the kernel powers off once the
/// drivers have run.
fn boot_with(disks: &[(String, bool)], modern: bool) -> Run {
    let mut args = native_guest_kernel_args(3, 1, "hz=100 init=/bin/none");
    if modern {
        args.extend(["-global", "virtio-mmio.force-legacy=false"].map(String::from));
    }
    for (n, (path, ro)) in disks.iter().enumerate() {
        let ro = if *ro { ",readonly=on" } else { "" };
        args.extend([
            "-drive".into(),
            format!("file={path},if=none,format=raw,id=d{n}{ro}"),
            "-device".into(),
            format!("virtio-blk-device,drive=d{n}"),
        ]);
    }
    qemu(120, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn the_guest_kernel_finds_qemus_virtio_disks_and_their_partitions() {
    let a = disk("a.img", 2048, &[(64, 512), (576, 1024)]);
    let b = disk("b.img", 6144, &[]);
    let r = boot_with(&[(a, false), (b, true)], true);
    // QEMU fills its transports from the top: the last -device is virtio0.
    r.expect_clean_exit()
        .expect("virtio_blk virtio0: [vda] 6144 512-byte logical blocks (3.15 MB/3.00 MiB), read-only\n")
        .expect(" vda: unknown partition table\n")
        .expect("virtio_blk virtio1: [vdb] 2048 512-byte logical blocks (1.05 MB/1.00 MiB)\n")
        .expect(" vdb: vdb1 vdb2\n")
        .expect("guest-kernel: cannot run /bin/none");
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
