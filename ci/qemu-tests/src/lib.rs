//! Helpers for the QEMU integration tests: run `scripts/run` (or QEMU
//! directly) with a timeout and collect what the consoles printed.
//!
//! The images must have been built (`scripts/build`); `scripts/test` does
//! that before running these tests. A run that does not finish within its
//! timeout is a failure, never a wait.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// What a QEMU run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// stdout and stderr, interleaved as lines.
    pub output: String,
    /// Exit status of `scripts/run` (124: timed out).
    pub status: i32,
}

impl Run {
    /// True if some line contains `needle`.
    pub fn has(&self, needle: &str) -> bool {
        self.output.contains(needle)
    }

    /// Panics with the whole output unless some line contains `needle`.
    #[track_caller]
    pub fn expect(&self, needle: &str) -> &Self {
        assert!(self.has(needle), "expected {needle:?} in the output:\n{}", self.output);
        self
    }

    /// Panics with the whole output if some line contains `needle`.
    #[track_caller]
    pub fn expect_not(&self, needle: &str) -> &Self {
        assert!(!self.has(needle), "did not expect {needle:?} in the output:\n{}", self.output);
        self
    }

    /// Panics unless the machine powered off by itself (exit status 0).
    #[track_caller]
    pub fn expect_clean_exit(&self) -> &Self {
        assert_eq!(self.status, 0, "QEMU did not power off cleanly (status {}):\n{}", self.status, self.output);
        self
    }

    /// Lines printed by VM `name` (console prefix `[name] `), prefix removed.
    pub fn vm_lines(&self, name: &str) -> Vec<&str> {
        let prefix = format!("[{name}] ");
        self.output.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
    }
}

/// Runs `scripts/run --no-build --timeout SECS ARGS...`.
pub fn run(timeout_secs: u32, args: &[&str]) -> Run {
    let mut cmd = Command::new(root().join("scripts/run"));
    cmd.arg("--no-build").arg("--timeout").arg(timeout_secs.to_string()).args(args);
    exec(cmd)
}

/// Runs QEMU directly (for machine shapes `scripts/run` refuses on purpose).
pub fn qemu(timeout_secs: u32, args: &[&str]) -> Run {
    let mut cmd = Command::new("timeout");
    cmd.arg("-k").arg("5").arg(timeout_secs.to_string()).arg("qemu-system-aarch64").args(args);
    exec(cmd)
}

fn exec(mut cmd: Command) -> Run {
    let out = cmd.stdin(std::process::Stdio::null()).output().expect("could not start the run");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Run { output: output.replace('\r', ""), status: out.status.code().unwrap_or(-1) }
}

/// Writes a temporary VM configuration (or any file) and returns its path.
pub fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("el2-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("temp file");
    path
}

/// A configuration with guest-kernel VMs `names`, each `memory` big with
/// `vcpus` vCPUs and command line `cmdline`.
pub fn guest_kernel_config(names: &[&str], memory: &str, vcpus: u32, cmdline: &str) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "[[vm]]\nname = \"{n}\"\nkernel = \"guest-kernel\"\nmemory = \"{memory}\"\nvcpus = {vcpus}\ncmdline = \"{cmdline}\"\n\n"
            )
        })
        .collect()
}
