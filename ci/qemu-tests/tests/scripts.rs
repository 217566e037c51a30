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
