//! Helpers for the QEMU integration tests: run `scripts/run` (or QEMU
//! directly) with a timeout and collect what the consoles printed.
//!
//! The images must have been built (`scripts/build`) and the Linux and
//! U-Boot fixtures fetched; `scripts/test` does both before these tests,
//! which download and install nothing. A run that does not finish within its
//! timeout is a failure, never a wait; tests wait for output, never for a
//! length of time.
//!
//! Every run is started in a process group of its own and the whole group is
//! killed when the run ends or its handle is dropped (a test that fails or
//! times out included), so no QEMU outlives its test. A failing check
//! panics with the whole console output, which libtest prints.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// The checks of the EL0 test suite (`CHECKS` in
/// guest-kernel/user/src/bin/tests.rs), and how many of them need two or
/// more CPUs (skipped with one). A whole run passes exactly these.
pub const SUITE_CHECKS: u32 = 80;
pub const SUITE_CHECKS_NEED_2_CPUS: u32 = 2;

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

/// Runs `scripts/run --no-build --timeout SECS ARGS...` to its end.
pub fn run(timeout_secs: u32, args: &[&str]) -> Run {
    let mut cmd = Command::new(root().join("scripts/run"));
    cmd.arg("--no-build").arg("--timeout").arg(timeout_secs.to_string()).args(args);
    // scripts/run stops QEMU itself after `timeout_secs`; the margin covers
    // its own set-up (vmconf, dtc) on a loaded machine.
    exec(cmd, timeout_secs + 120)
}

/// Runs QEMU directly (for machine shapes `scripts/run` refuses on purpose);
/// killed after `timeout_secs` (status 124).
pub fn qemu(timeout_secs: u32, args: &[&str]) -> Run {
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(args);
    exec(cmd, timeout_secs)
}

/// Runs any command to its end (killed after `timeout_secs`: status 124),
/// in a process group of its own like every run here.
pub fn command(cmd: Command, timeout_secs: u32) -> Run {
    exec(cmd, timeout_secs)
}

fn exec(cmd: Command, timeout_secs: u32) -> Run {
    let mut group = Group::spawn(cmd, false);
    let status = group.wait(std::time::Duration::from_secs(timeout_secs.into()));
    Run { output: group.output.text(), status }
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

/// Boots Debian's Linux 6.1 natively (QEMU virt, GICv3, cortex-a72, 128
/// MiB, `cpus` CPUs) with Debian's busybox initramfs followed by ours
/// (Linux unpacks concatenated archives in order, each at a 4-byte
/// boundary) and `rdinit=RDINIT`: the reference runs of the EL0 suite and
/// of the shell suite. `tag` names the temporary initramfs.
pub fn linux_with_our_initramfs(tag: &str, cpus: u32, rdinit: &str) -> Run {
    fetch_linux();
    let linux = cache().join("linux");
    let mut initrd = std::fs::read(linux.join("initramfs.cpio.gz")).expect("Debian's initramfs");
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    initrd.extend(std::fs::read(root().join("build/initramfs.cpio")).expect("build/initramfs.cpio"));
    let initrd = temp_file(&format!("linux-{tag}-{cpus}.cpio"), &initrd);
    let (image, initrd, smp) = (linux.join("Image"), initrd.to_str().unwrap().to_string(), cpus.to_string());
    let append = format!("console=ttyAMA0 quiet panic=-1 rdinit={rdinit}");
    #[rustfmt::skip]
    let args = [
        "-M", "virt,gic-version=3", "-cpu", "cortex-a72", "-smp", &smp, "-m", "128M", "-nographic", "-nic", "none",
        "-no-reboot", "-kernel", image.to_str().unwrap(), "-initrd", &initrd, "-append", &append,
    ];
    qemu(300, &args)
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

/// Everything a run printed, as it arrives: the raw text (carriage
/// returns dropped) and the complete lines. Readers wake waiters through
/// the condition variable, so a test waits for output, never for time.
#[derive(Default)]
struct Output {
    state: Mutex<Printed>,
    grew: Condvar,
}

#[derive(Default)]
struct Printed {
    raw: String,
    lines: Vec<String>,
    /// Streams still open (stdout, stderr).
    open: usize,
}

impl Output {
    fn lock(&self) -> std::sync::MutexGuard<'_, Printed> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn text(&self) -> String {
        self.lock().raw.clone()
    }

    /// Reads `stream` to its end; complete lines go to `lines` as they come.
    fn read_from(self: Arc<Self>, mut stream: Box<dyn Read + Send>) {
        let mut partial = String::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).unwrap_or(0);
            let mut st = self.lock();
            if n == 0 {
                if !partial.is_empty() {
                    st.lines.push(std::mem::take(&mut partial));
                }
                st.open -= 1;
                self.grew.notify_all();
                return;
            }
            let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
            st.raw.push_str(&text);
            for c in text.chars() {
                if c == '\n' {
                    st.lines.push(std::mem::take(&mut partial));
                } else {
                    partial.push(c);
                }
            }
            self.grew.notify_all();
        }
    }

    /// Waits until `done` finds what it looks for in what was printed, or
    /// every stream has closed, or `secs` have passed; panics with the whole
    /// output in the last two cases.
    #[track_caller]
    fn wait<T>(&self, what: &dyn std::fmt::Display, secs: u64, mut done: impl FnMut(&Printed) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut st = self.lock();
        loop {
            if let Some(v) = done(&st) {
                return v;
            }
            let now = Instant::now();
            if st.open == 0 || now >= deadline {
                let why = if st.open == 0 { "the run ended".to_string() } else { format!("{secs}s passed") };
                let output = st.raw.clone();
                drop(st); // not poisoned by the panic: the readers go on
                panic!("waited for {what}, but {why}; the output so far:\n{output}");
            }
            st = self.grew.wait_timeout(st, deadline - now).unwrap().0;
        }
    }
}

/// A child process in a process group of its own, with its output
/// collected: dropping it kills the whole group (scripts/run's bash, QEMU,
/// anything they started), so no QEMU outlives its test, whether the test
/// passes, fails or times out.
struct Group {
    child: Child,
    output: Arc<Output>,
    readers: Vec<std::thread::JoinHandle<()>>,
    reaped: bool,
}

impl Group {
    fn spawn(mut cmd: Command, piped_stdin: bool) -> Group {
        cmd.process_group(0)
            .stdin(if piped_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
        let output = Arc::new(Output::default());
        output.lock().open = 2;
        let streams: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        let readers = streams
            .into_iter()
            .map(|s| {
                let o = output.clone();
                std::thread::spawn(move || o.read_from(s))
            })
            .collect();
        Group { child, output, readers, reaped: false }
    }

    /// Waits up to `limit` for the process to exit (killing the group then,
    /// status 124), kills whatever is left of its group, and waits until
    /// everything it printed has been read.
    fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for the run") {
                break s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
            }
            if Instant::now() >= deadline {
                break 124;
            }
            // Polls the exit only; output is read as it comes by the readers.
            std::thread::sleep(Duration::from_millis(20));
        };
        self.kill();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status
    }

    fn kill(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) with a negative pid signals the process group this
        // Group created (process_group(0) made the child its leader); it
        // touches no memory of ours.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        if !self.reaped {
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An interactive run: the console is a pipe the test types into, and
/// everything printed is collected as it arrives.
pub struct Session {
    group: Group,
    stdin: Option<ChildStdin>,
    start: Instant,
    /// When the run is killed if it has not ended.
    deadline: Instant,
    /// Lines before this index have been matched by a `wait_for`.
    seen: usize,
    /// Bytes of the raw output before this offset have been matched by a `wait_for_raw`.
    raw_seen: usize,
}

impl Session {
    /// Starts `scripts/run --no-build --timeout SECS ARGS...` with a piped console.
    pub fn start(timeout_secs: u32, args: &[&str]) -> Session {
        let mut cmd = Command::new(root().join("scripts/run"));
        cmd.args(["--no-build", "--timeout", &timeout_secs.to_string()]).args(args);
        // scripts/run stops QEMU itself; the margin covers its set-up.
        Self::spawn(cmd, timeout_secs + 120)
    }

    /// Starts QEMU directly, console piped; it is killed once `timeout_secs`
    /// have passed by the time [`Session::finish`] waits for it, or when the
    /// session is dropped.
    pub fn start_qemu(timeout_secs: u32, args: &[&str]) -> Session {
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(args);
        Self::spawn(cmd, timeout_secs)
    }

    fn spawn(cmd: Command, timeout_secs: u32) -> Session {
        let mut group = Group::spawn(cmd, true);
        let stdin = group.child.stdin.take();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(timeout_secs.into());
        Session { group, stdin, start, deadline, seen: 0, raw_seen: 0 }
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Waits until a line after the last match contains `needle`; returns it.
    /// Panics (with everything printed so far) after `secs` seconds or when
    /// the run ends without it.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, secs: u64) -> String {
        let from = self.seen;
        let (i, line) = self.group.output.wait(&format_args!("a line with {needle:?}"), secs, |p| {
            p.lines[from..].iter().position(|l| l.contains(needle)).map(|i| (from + i, p.lines[from + i].clone()))
        });
        self.seen = i + 1;
        line
    }

    /// Waits until each of `needles` has appeared, in any order, after the
    /// last match; the next match starts after the last of them.
    #[track_caller]
    pub fn wait_for_each(&mut self, needles: &[&str], secs: u64) {
        let from = self.seen;
        let last = self.group.output.wait(&format_args!("lines with each of {needles:?}"), secs, |p| {
            let found: Option<Vec<usize>> =
                needles.iter().map(|n| p.lines[from..].iter().position(|l| l.contains(n))).collect();
            found.map(|at| at.into_iter().max().map_or(from, |i| from + i + 1))
        });
        self.seen = last;
    }

    /// Waits until the raw output (not only complete lines: echo and prompts
    /// end no line) has `needle` after the last raw match.
    #[track_caller]
    pub fn wait_for_raw(&mut self, needle: &str, secs: u64) {
        let from = self.raw_seen;
        let end = self.group.output.wait(&format_args!("{needle:?} in the raw output"), secs, |p| {
            p.raw[from..].find(needle).map(|i| from + i + needle.len())
        });
        self.raw_seen = end;
    }

    /// Types a line into the console.
    pub fn send(&mut self, text: &str) {
        self.send_raw(format!("{text}\n").as_bytes());
    }

    /// Types raw bytes into the console (no newline added).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(bytes);
            let _ = s.flush();
        }
    }

    /// Types a command into a shell and returns the lines it printed
    /// (between the echoed command and the next prompt marker).
    #[track_caller]
    pub fn command(&mut self, cmd: &str, marker: &str, secs: u64) -> Vec<String> {
        let tag = format!("__done_{}", self.seen);
        self.send(&format!("{cmd}; echo {tag}"));
        let start = self.seen;
        self.wait_for(&format!("{marker}{tag}"), secs);
        let st = self.group.output.lock();
        let window = &st.lines[start..self.seen - 1];
        // Output starts after the shell's echo of the command line.
        let echo = format!("echo {tag}");
        let from = window.iter().rposition(|l| l.contains(&echo)).map_or(0, |i| i + 1);
        window[from..].iter().filter_map(|l| l.strip_prefix(marker)).map(str::to_string).collect()
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.group.output.text()
    }

    /// Closes the console, waits up to `secs` (and no longer than the run's
    /// own time limit) for the run to end, killing it then (status 124), and
    /// returns its exit status and whole output.
    pub fn finish(mut self, secs: u64) -> Run {
        drop(self.stdin.take());
        let limit = Duration::from_secs(secs).min(self.deadline.saturating_duration_since(Instant::now()));
        let status = self.group.wait(limit);
        Run { output: self.group.output.text(), status }
    }
}

/// The download cache (`EL2_CACHE`, default `.cache/` in the repository).
pub fn cache() -> PathBuf {
    std::env::var_os("EL2_CACHE").map_or_else(|| root().join(".cache"), PathBuf::from)
}

/// Checks that Debian's Linux kernel and the busybox initramfs are in the
/// cache. Tests download nothing: `scripts/test` runs `scripts/fetch-linux`
/// before them, so a missing file is a failure of the set-up, said here.
#[track_caller]
/// Debian's busybox initramfs with kernel modules from the kernel's own
/// package (`${EL2_CACHE}/linux/debs/`) at its root, `/NAME.ko`: a second
/// gzip'd cpio archive appended to the first (Linux unpacks every archive
/// of an initramfs). `modules` are paths under `lib/modules/VERSION/kernel/`
/// without `.ko`, e.g. `drivers/virtio/virtio_mmio`; `tag` names the
/// temporary directory.
pub fn linux_initrd_with_modules(tag: &str, modules: &[&str]) -> PathBuf {
    fetch_linux();
    let linux = cache().join("linux");
    let version = std::fs::read_to_string(linux.join("VERSION")).expect("linux/VERSION (scripts/fetch-linux)");
    let pkg = version.split_whitespace().next().expect("the kernel package in linux/VERSION");
    let dir = temp_file("keep", b"").parent().unwrap().join(format!("{tag}-modules"));
    std::fs::create_dir_all(&dir).expect("modules dir");
    let q = |p: &Path| format!("'{}'", p.display());
    let wanted: Vec<String> = modules.iter().map(|m| format!("'*/kernel/{m}.ko'")).collect();
    let copies: Vec<String> = modules.iter().map(|m| format!("lib/modules/*/kernel/{m}.ko")).collect();
    let names: Vec<String> = modules.iter().map(|m| format!("{}.ko", m.rsplit('/').next().unwrap())).collect();
    let script = format!(
        "set -e; cd {dir}; deb=$(ls {debs}/{pkg}_*_arm64.deb | sort -V | tail -n 1); \
         dpkg-deb --fsys-tarfile \"$deb\" | tar -x --wildcards {wanted}; \
         cp {copies} .; \
         printf '%s\\n' {names} | cpio -o -H newc --quiet | gzip -n > modules.cpio.gz; \
         cat {initramfs} modules.cpio.gz > initrd.cpio.gz",
        dir = q(&dir),
        debs = q(&linux.join("debs")),
        wanted = wanted.join(" "),
        copies = copies.join(" "),
        names = names.join(" "),
        initramfs = q(&linux.join("initramfs.cpio.gz")),
    );
    let out = Command::new("sh").args(["-c", &script]).output().expect("sh");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    dir.join("initrd.cpio.gz")
}

pub fn fetch_linux() {
    for f in ["linux/Image", "linux/initramfs.cpio.gz"] {
        let p = cache().join(f);
        assert!(
            p.is_file(),
            "{} is missing: run scripts/fetch-linux (scripts/test does, before the tests)",
            p.display()
        );
    }
}
