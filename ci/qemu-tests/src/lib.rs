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

/// The checks of the EL0 test suite (`CHECKS` in
/// guest-kernel/user/src/bin/tests.rs), and how many of them need two or
/// more CPUs (skipped with one). A whole run passes exactly these.
pub const SUITE_CHECKS: u32 = 38;
pub const SUITE_CHECKS_NEED_2_CPUS: u32 = 1;

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

    /// Panics unless the machine powered off by itself (exit status 0)
    /// without a hypervisor crash, panic or bug report (those power off
    /// too, after printing `*** HYPERVISOR ...`).
    #[track_caller]
    pub fn expect_clean_exit(&self) -> &Self {
        assert_eq!(self.status, 0, "QEMU did not power off cleanly (status {}):\n{}", self.status, self.output);
        self.expect_not("*** HYPERVISOR ")
    }

    /// The EL0 test suite's `N passed, N failed` line printed by VM `name`,
    /// as (passed, failed); panics with the output if there is none.
    #[track_caller]
    pub fn suite(&self, name: &str) -> (u32, u32) {
        let line = self
            .vm_lines(name)
            .into_iter()
            .find(|l| l.ends_with(" failed") && l.contains(" passed, "))
            .unwrap_or_else(|| panic!("no suite summary from {name:?} in:\n{}", self.output));
        let mut it = line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
        (it.next().unwrap().parse().unwrap(), it.next().unwrap().parse().unwrap())
    }

    /// Panics unless VM `name`'s EL0 test suite ran whole and nothing
    /// failed: exactly [`SUITE_CHECKS`] passed (less those that need two
    /// CPUs, when it had one), and init saw it exit with status 0 (not
    /// killed by a signal).
    #[track_caller]
    pub fn expect_suite_passed(&self, name: &str) -> &Self {
        let lines = self.vm_lines(name);
        let cpus: u32 = lines
            .iter()
            .find_map(|l| l.strip_prefix("tests: pid ")?.split(", ").nth(2)?.strip_suffix(" CPU(s)")?.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no \"tests: pid ...\" line in:\n{}", self.output));
        let header = format!("tests: {SUITE_CHECKS} checks ({SUITE_CHECKS_NEED_2_CPUS} need 2 CPUs)");
        let expected = if cpus >= 2 { SUITE_CHECKS } else { SUITE_CHECKS - SUITE_CHECKS_NEED_2_CPUS };
        let (passed, failed) = self.suite(name);
        assert!(
            lines.contains(&header.as_str()) && passed == expected && failed == 0,
            "{name}: {passed} passed, {failed} failed; expected {expected} passed on {cpus} CPU(s) after {header:?}:\n{}",
            self.output
        );
        assert!(
            lines.iter().any(|l| l.starts_with("init: test suite (pid ") && l.ends_with(") exited with status 0")),
            "{name}: init did not see the suite exit with status 0:\n{}",
            self.output
        );
        self
    }

    /// Lines printed by VM `name` (console prefix `[name] `), prefix removed;
    /// every line for `""` (a guest kernel booted natively, no prefixes).
    pub fn vm_lines(&self, name: &str) -> Vec<&str> {
        if name.is_empty() {
            return self.output.lines().collect();
        }
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

/// QEMU arguments that boot build/guest-kernel.bin natively (at EL1, QEMU's
/// own GIC and PSCI) with the initramfs: `-cpu cortex-a72`, 128 MiB, GIC
/// version `gic`, `cpus` CPUs, kernel command line `append`.
pub fn native_guest_kernel_args(gic: u32, cpus: u32, append: &str) -> Vec<String> {
    let r = root();
    let path = |p: &str| r.join(p).to_str().unwrap().to_string();
    let mut args: Vec<String> =
        ["-M", &format!("virt,gic-version={gic}"), "-cpu", "cortex-a72", "-smp", &cpus.to_string()]
            .map(String::from)
            .to_vec();
    args.extend(["-m", "128M", "-nographic", "-nic", "none"].map(String::from));
    args.extend(["-kernel".into(), path("build/guest-kernel.bin"), "-initrd".into(), path("build/initramfs.cpio")]);
    args.extend(["-append".into(), append.to_string()]);
    args
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

/// An interactive run: the console is a pipe the test types into, and
/// every line printed is collected as it arrives.
pub struct Session {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    start: std::time::Instant,
    seen: usize,
}

impl Session {
    /// Starts `scripts/run --no-build --timeout SECS ARGS...` with a piped console.
    pub fn start(timeout_secs: u32, args: &[&str]) -> Session {
        Self::spawn(
            root().join("scripts/run"),
            &[&["--no-build", "--timeout", &timeout_secs.to_string()], args].concat(),
        )
    }

    /// Starts QEMU directly (under `timeout`), console piped.
    pub fn start_qemu(timeout_secs: u32, args: &[&str]) -> Session {
        let t = timeout_secs.to_string();
        Self::spawn(PathBuf::from("timeout"), &[&["-k", "5", t.as_str(), "qemu-system-aarch64"], args].concat())
    }

    fn spawn(program: PathBuf, args: &[&str]) -> Session {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("could not start the run");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                    let line = String::from_utf8_lossy(&line).replace('\r', "");
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let stdin = child.stdin.take();
        Session { child, stdin, lines, start: std::time::Instant::now(), seen: 0 }
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Waits until a line after the last match contains `needle`; returns it.
    /// Panics (with everything printed so far) after `secs` seconds.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            {
                let lines = self.lines.lock().unwrap();
                if let Some(i) = lines[self.seen..].iter().position(|l| l.contains(needle)) {
                    self.seen += i + 1;
                    return lines[self.seen - 1].clone();
                }
            }
            if std::time::Instant::now() > deadline {
                panic!("waited {secs}s for {needle:?}; output so far:\n{}", self.output());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits until each of `needles` has appeared, in any order, after the
    /// last match; the next match starts after the last of them.
    #[track_caller]
    pub fn wait_for_each(&mut self, needles: &[&str], secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            {
                let lines = self.lines.lock().unwrap();
                let found: Option<Vec<usize>> =
                    needles.iter().map(|n| lines[self.seen..].iter().position(|l| l.contains(n))).collect();
                if let Some(at) = found {
                    self.seen += at.into_iter().max().map_or(0, |i| i + 1);
                    return;
                }
            }
            if std::time::Instant::now() > deadline {
                panic!("waited {secs}s for each of {needles:?}; output so far:\n{}", self.output());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Types a line into the console.
    pub fn send(&mut self, text: &str) {
        use std::io::Write;
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(text.as_bytes());
            let _ = s.write_all(b"\n");
            let _ = s.flush();
        }
    }

    /// Types raw bytes into the console (no newline added).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(bytes);
            let _ = s.flush();
        }
    }

    /// Types a command into a shell and returns the lines it printed
    /// (between the echoed command and the next prompt marker).
    pub fn command(&mut self, cmd: &str, marker: &str, secs: u64) -> Vec<String> {
        let tag = format!("__done_{}", self.seen);
        self.send(&format!("{cmd}; echo {tag}"));
        let start = self.seen;
        self.wait_for(&format!("{marker}{tag}"), secs);
        let lines = self.lines.lock().unwrap();
        let window = &lines[start..self.seen - 1];
        // Output starts after the shell's echo of the command line.
        let echo = format!("echo {tag}");
        let from = window.iter().rposition(|l| l.contains(&echo)).map_or(0, |i| i + 1);
        window[from..].iter().filter_map(|l| l.strip_prefix(marker)).map(str::to_string).collect()
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for the run to end; returns its exit status and full output.
    pub fn finish(mut self, secs: u64) -> Run {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                break 124;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        Run { output: self.output(), status }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Makes sure Debian's Linux kernel and the busybox initramfs are in the
/// cache (`scripts/fetch-linux`, which downloads them once).
pub fn fetch_linux() {
    let st = Command::new(root().join("scripts/fetch-linux")).status().expect("scripts/fetch-linux");
    assert!(st.success(), "scripts/fetch-linux failed");
}
