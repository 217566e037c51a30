//! The user's scripts themselves: what a run leaves behind.

use std::process::Command;

use qemu_tests::{command, root, temp_file};

/// `scripts/run` without `--timeout` (the path a person takes) removes its
/// work directory when QEMU ends: it used to `exec` QEMU, so its clean-up
/// never ran and every run left a `el2-run.*` directory in the temp dir.
#[test]
fn a_run_leaves_no_temporary_directory() {
    let tmp = std::env::temp_dir().join(format!("el2-scripts-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = temp_file(
        "one-vm.toml",
        b"[[vm]]\nname = \"solo\"\nkernel = \"guest-kernel\"\nmemory = \"64M\"\ncmdline = \"test=hvc\"\n",
    );
    let mut cmd = Command::new(root().join("scripts/run"));
    cmd.args(["--no-build", "--cpus", "1", "--config", cfg.to_str().unwrap()]).env("TMPDIR", &tmp);
    let r = command(cmd, 240);
    r.expect_clean_exit().expect("[solo] hyptest hvc: ok");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "scripts/run left {left:?} in {}:\n{}", tmp.display(), r.output);
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// A run in which no VM can start (here the one VM's kernel is not an arm64
/// Image) powers off cleanly, but `scripts/run` says so and exits 3: it used
/// to exit 0, as if the VMs had run.
#[test]
fn a_run_where_no_vm_starts_exits_non_zero() {
    let junk = temp_file("not-an-image.bin", b"not a kernel\n");
    let cfg = temp_file(
        "junk-vm.toml",
        format!("[[vm]]\nname = \"junk\"\nkernel = \"{}\"\nmemory = \"64M\"\n", junk.display()).as_bytes(),
    );
    let mut cmd = Command::new(root().join("scripts/run"));
    cmd.args(["--no-build", "--cpus", "1", "--config", cfg.to_str().unwrap()]);
    let r = command(cmd, 240);
    assert_eq!(r.status, 3, "{}", r.output);
    r.expect("el2-hyp: VM \"junk\" not started: kernel: image is 13 bytes, shorter than the 64-byte Image header")
        .expect("el2-hyp: no VM could start; powering off")
        .expect("run: no VM could start (the el2-hyp lines above say why)")
        .expect_not("all VMs have stopped");
}

/// `scripts/soak` (issue 14's 50-boot soak) on a short leash: two boots of
/// the suite on 2 CPUs pass and are counted, natively, and one in a VM of
/// the hypervisor (`--vm`); a boot that fails (QEMU
/// refuses GIC version 5) stops the soak with exit 1, the reason, and the
/// failing boot's log kept.
#[test]
fn the_soak_counts_passing_boots_and_stops_at_a_failing_one() {
    let out = std::env::temp_dir().join(format!("el2-soak-test-{}", std::process::id()));
    let soak = |extra: &[&str]| {
        let mut cmd = Command::new(root().join("scripts/soak"));
        cmd.args(["--no-build", "--cpus", "2", "--out", out.to_str().unwrap()]).args(extra);
        command(cmd, 900)
    };
    let r = soak(&["--runs", "2"]);
    r.expect_clean_exit()
        .expect("soak: boot 1 passed")
        .expect("soak: boot 2 passed")
        .expect("soak: 2 of 2 boots passed (2 CPUs, GICv3, native)");
    let r = soak(&["--runs", "1", "--vm"]);
    r.expect_clean_exit().expect("soak: 1 of 1 boots passed (2 CPUs, GICv3, VM)");
    let r = soak(&["--runs", "3", "--gic", "5"]);
    assert_eq!(r.status, 1, "{}", r.output);
    r.expect("soak: boot 1 of 3 failed: QEMU exited with status 1")
        .expect("soak: 0 of 3 boots passed (2 CPUs, GICv5, native) before it");
    assert!(out.join("failed-boot-1.log").exists(), "{}", r.output);
    let _ = std::fs::remove_dir_all(&out);
}
