//! Shared memory and doorbells between VMs (issue 18, docs/devices.md
//! "Shared memory and doorbell"): four guest-kernel VMs, three of which
//! share region "demo".
//!
//! - `a` and `b` boot normally: their shm driver (guest-kernel/src/arch/
//!   aarch64/shm.rs) finds the region in the DTB, `a` writes a hello into
//!   it and rings `b`, `b` answers, `a` acknowledges: the messages cross
//!   the region and a doorbell interrupt delivers one in each direction.
//! - `m` shares the region but is hostile (`test=shm-hostile`): rings of a
//!   region that does not exist, of a peer it does not have, of a region
//!   it does not share are refused, the page past the region is not
//!   mapped; then it pings `a` and `b`, which
//!   answer: they kept running.
//! - `c` shares nothing (`test=shm-hostile` too): its DTB has no region,
//!   every ring is refused, and the region's guest-physical window is
//!   unmapped for it (its read aborts).
//!
//! And a region the hypervisor refuses (vmconf's `--allow-invalid` passes
//! it on) is not created, while its VMs start without it; and through
//! U-Boot (as on a board) the `fdt` commands of `scripts/image` make the
//! `shm@0` node, string list included, and the demo runs the same.

use std::process::Command;

use qemu_tests::{Session, qemu, root, run, temp_file};

fn vm(name: &str, extra: &str) -> String {
    format!("[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\nmemory = \"64M\"\n{extra}\n")
}

#[test]
fn two_vms_talk_through_shared_memory_and_doorbells_a_hostile_peer_and_an_outsider_are_refused() {
    for gic in ["3", "2"] {
        let cfg = [
            vm("a", "initrd = \"guest-kernel\"\ncmdline = \"init=/bin/cat\""),
            vm("b", "initrd = \"guest-kernel\"\ncmdline = \"init=/bin/cat\""),
            vm("m", "cmdline = \"test=shm-hostile\""),
            vm("c", "cmdline = \"test=shm-hostile\""),
            String::from("[[shm]]\nname = \"demo\"\nsize = \"64K\"\nvms = [\"a\", \"b\", \"m\"]\n"),
        ]
        .concat();
        let cfg = temp_file("shm.toml", cfg.as_bytes());
        let mut s = Session::start(300, &["--config", cfg.to_str().unwrap(), "--gic", gic, "--cpus", "2"]);
        s.wait_for_each(
            &[
                "el2-hyp: shm[0] \"demo\": 64 KiB at host ",
                "[a] shm \"demo\": peer 0 of 3 (a, b, m), 64 KiB at IPA 0x10000000, doorbell INTID 56",
                "[b] shm \"demo\": peer 1 of 3 (a, b, m), 64 KiB at IPA 0x10000000, doorbell INTID 56",
                // The hello may be waiting when b's driver starts, or ring it.
                "[a] shm \"demo\": said \"hello from a\" to peer 1 (b)",
                "peer 0 (a) says \"hello from a\"",
                "[b] shm \"demo\": replied \"hello back from b\" to peer 0",
                // a listened before it said hello; b before it replied.
                "[a] shm \"demo\": doorbell: peer 1 (b) says \"hello back from b\"",
                "[a] shm \"demo\": acknowledged \"thanks, b\" to peer 1",
                "[b] shm \"demo\": doorbell: peer 0 (a) says \"thanks, b\"",
                // The hostile peer: refused, and both others still answer.
                "[m] hyptest shm-hostile: ring a peer that does not exist (0x0, 0x3): -2 refused",
                "[m] hyptest shm-hostile: ring a region not shared (0x1, 0x0): -2 refused",
                "[m] hyptest shm-hostile: read past the region's end aborted",
                "el2-hyp: VM \"m\" vCPU 0: access to IPA 0x10010000 at pc ",
                "[m] hyptest shm-hostile: peer 0 (a) answered \"hello back from a\"",
                "[m] hyptest shm-hostile: peer 1 (b) answered \"hello back from b\"",
                "[m] hyptest shm-hostile: ok",
                // The outsider.
                "[c] hyptest shm-hostile: no el2-hyp,shm node",
                "[c] hyptest shm-hostile: ring a region of others (0x0, 0x1): -2 refused",
                "[c] hyptest shm-hostile: read of the region window aborted",
                "el2-hyp: VM \"c\" vCPU 0: access to IPA 0x10000000 at pc ",
                "[c] hyptest shm-hostile: ok",
            ],
            240,
        );
        let out = s.output();
        for bad in ["WRONG", "NOT ISOLATED", "FAILED", "nonsense", "panic"] {
            assert!(!out.contains(bad), "GIC v{gic}: {bad:?} in the output:\n{out}");
        }
        // The b line that got the hello says how (boot or doorbell), and
        // nobody but a, b and m heard of the region.
        assert!(
            out.lines().any(|l| l.starts_with("[b] shm \"demo\": ") && l.ends_with("peer 0 (a) says \"hello from a\"")),
            "{out}"
        );
        assert!(!out.lines().any(|l| l.starts_with("[c] shm ")), "c has no region:\n{out}");
        // The peers' own accesses to the region never fault.
        for peer in ["a", "b"] {
            let fault = format!("el2-hyp: VM \"{peer}\" vCPU 0: access to IPA ");
            assert!(!out.contains(&fault), "{out}");
        }
        drop(s);
    }
}

/// A region vmconf would refuse (`--allow-invalid` passes it on): the
/// hypervisor refuses it too, with the field, and its VMs start without it.
#[test]
fn a_region_the_hypervisor_refuses_is_not_created_and_its_vms_start_without_it() {
    let cfg = [
        vm("x", "cmdline = \"test=shm-hostile\""),
        vm("y", "cmdline = \"test=shm-hostile\""),
        String::from("[[shm]]\nname = \"odd\"\nsize = \"6K\"\nvms = [\"x\", \"y\"]\n"),
    ]
    .concat();
    let cfg = temp_file("shm-bad.toml", cfg.as_bytes());
    let r = run(120, &["--config", cfg.to_str().unwrap(), "--allow-invalid"]);
    r.expect_clean_exit()
        .expect("el2-hyp: shm \"odd\": size: 6 KiB is not a multiple of 4 KiB: region not created")
        .expect("[x] hyptest shm-hostile: no el2-hyp,shm node")
        .expect("[y] hyptest shm-hostile: no el2-hyp,shm node")
        .expect("[x] hyptest shm-hostile: ok")
        .expect("[y] hyptest shm-hostile: ok")
        .expect_not("el2-hyp: shm[0]");
}

/// The boot flow of a board (tests/uboot.rs): Debian's QEMU U-Boot runs
/// the `boot.scr` of `scripts/image qemu --config`, whose `fdt set ...
/// "vms" 'a' 'b'` makes the region's string list; `a` and `b` run the
/// demo, then their normal boot (the EL0 suite) and power off.
#[test]
fn through_uboot_the_script_describes_the_region_and_the_demo_runs() {
    const UBOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
    assert!(std::path::Path::new(UBOOT).exists(), "{UBOOT} is missing: run scripts/setup");
    let cfg = [
        vm("a", "initrd = \"guest-kernel\"\ncmdline = \"hz=100\""),
        vm("b", "initrd = \"guest-kernel\"\ncmdline = \"hz=100\""),
        String::from("[[shm]]\nname = \"demo\"\nsize = \"64K\"\nvms = [\"a\", \"b\"]\n"),
    ]
    .concat();
    let cfg = temp_file("shm-uboot.toml", cfg.as_bytes());
    let img = std::env::temp_dir().join(format!("el2-shm-uboot-{}.img", std::process::id()));
    let out = Command::new(root().join("scripts/image"))
        .args(["qemu", "--no-build", "--gic", "3", "--cpus", "2", "--mem", "1G", "--out"])
        .arg(&img)
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("could not start scripts/image");
    assert!(
        out.status.success(),
        "scripts/image: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let drive = format!("if=none,file={},format=raw,id=boot", img.display());
    #[rustfmt::skip]
    let r = qemu(300, &[
        "-M", "virt,virtualization=on,gic-version=3", "-cpu", "cortex-a72", "-smp", "2", "-m", "1G", "-nographic",
        "-nic", "none", "-bios", UBOOT, "-drive", &drive, "-device", "virtio-blk-device,drive=boot",
    ]);
    let _ = std::fs::remove_file(&img);
    r.expect("Starting kernel ...")
        .expect_not("SCRIPT FAILED")
        .expect("el2-hyp: shm[0] \"demo\": 64 KiB at host ")
        .expect("[a] shm \"demo\": peer 0 of 2 (a, b), 64 KiB at IPA 0x10000000, doorbell INTID 56")
        .expect("[a] shm \"demo\": doorbell: peer 1 (b) says \"hello back from b\"")
        .expect("[b] shm \"demo\": doorbell: peer 0 (a) says \"thanks, b\"")
        .expect("el2-hyp: all VMs have stopped; powering off")
        .expect_not("panic")
        .expect_clean_exit();
}
