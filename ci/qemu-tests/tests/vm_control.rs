//! Run-time VM control from the console (issue 20; hypervisor `vmctl`,
//! `arch/aarch64/console_in.rs`): `Ctrl-]` `:` opens a command line, as
//! Xen's `xl` would be typed. Two guest-kernel VMs run `/bin/cat` as init,
//! so each is idle until typed at and shows by its echo that it runs. Every
//! command is driven here, and every check waits for output (a line the
//! command prints, an echo), never for a length of time.

use qemu_tests::{Session, temp_file};

const T: u64 = 60;

/// Types `Ctrl-]` `:` and `line` with Enter, and waits for its echo.
fn cmd(s: &mut Session, line: &str) {
    s.send_raw(b"\x1d:");
    s.send(line);
    s.wait_for(&format!("el2-hyp> {line}"), T);
}

/// One VM's row of `list`: its state, exits and exits/s.
#[derive(Debug)]
struct Row {
    state: String,
    exits: u64,
    per_second: u64,
}

/// Runs `list` and returns the rows of VMs 0 "a" and 1 "b".
fn list(s: &mut Session) -> (Row, Row) {
    cmd(s, "list");
    s.wait_for("el2-hyp:  ID NAME", T);
    let mut row = |id: usize, name: &str| {
        let line = s.wait_for(&format!("el2-hyp: {id:>3} {name:<15} "), T);
        let w: Vec<&str> = line.split_whitespace().collect();
        // el2-hyp: ID NAME STATE VCPUS ONCPUS N MiB EXITS EXITS/S
        assert_eq!(w.len(), 10, "{line:?}");
        Row { state: w[3].to_string(), exits: w[8].parse().unwrap(), per_second: w[9].parse().unwrap() }
    };
    let a = row(0, "a");
    let b = row(1, "b");
    (a, b)
}

/// The lines printed after the last line containing `marker`.
fn lines_after(out: &str, marker: &str) -> Vec<String> {
    let at = out.rfind(marker).unwrap_or_else(|| panic!("no {marker:?} in:\n{out}"));
    out[at..].lines().skip(1).map(String::from).collect()
}

#[test]
fn each_console_command_acts_on_the_vm_it_names() {
    let vm = |name: &str| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"128M\"\nvcpus = 1\ncmdline = \"init=/bin/cat\"\n\n"
        )
    };
    let cfg = temp_file("vmctl.toml", [vm("a"), vm("b")].concat().as_bytes());
    let mut s = Session::start(300, &["--config", cfg.to_str().unwrap(), "--cpus", "2"]);
    s.wait_for_each(&["[a] guest-kernel: 1 CPU(s) online", "[b] guest-kernel: 1 CPU(s) online"], 120);

    // The keys and the commands are listed.
    s.send_raw(b"\x1dh");
    s.wait_for("el2-hyp:   :        a command line", T);
    cmd(&mut s, "help");
    s.wait_for("el2-hyp:   pause VM      its vCPUs stop entering the guest", T);

    // Both run.
    let (a, b) = list(&mut s);
    assert_eq!((a.state.as_str(), b.state.as_str()), ("running", "running"), "{}", s.output());
    s.wait_for("el2-hyp: (exits/s since boot;", T);
    assert!(a.exits > 0 && b.exits > 0, "both booted, so both exited: {a:?} {b:?}");

    // Mistakes get one line and change nothing.
    cmd(&mut s, "frobnicate");
    s.wait_for("el2-hyp: unknown command \"frobnicate\"; try help", T);
    cmd(&mut s, "pause zeta");
    s.wait_for("el2-hyp: pause: no VM \"zeta\" (see list)", T);
    cmd(&mut s, "unpause a");
    s.wait_for("el2-hyp: unpause: VM 0 \"a\" is not paused", T);
    cmd(&mut s, "start 1");
    s.wait_for("el2-hyp: start: VM 1 \"b\" is not stopped", T);
    let (a, b) = list(&mut s);
    assert_eq!((a.state.as_str(), b.state.as_str()), ("running", "running"), "{}", s.output());
    s.wait_for("el2-hyp: (exits/s since the last list,", T);

    // The line editor: Backspace erases (BS SP BS on the terminal), CR
    // runs; Esc and Ctrl-C cancel; nothing typed while the line is open
    // reaches a VM (a, with the focus, runs cat: it would echo it).
    s.send_raw(b"\x1d:lisx\x7ft\r");
    s.wait_for_raw("el2-hyp> lisx\x08 \x08t", T);
    s.wait_for("el2-hyp:  ID NAME", T);
    s.send_raw(b"\x1d:stop a\x1b");
    s.wait_for("el2-hyp> stop a (cancelled)", T);
    s.send_raw(b"\x1d:zzz\x03");
    s.wait_for("el2-hyp> zzz (cancelled)", T);
    s.send("after");
    s.wait_for("[a] after", T);
    s.wait_for("[a] after", T);
    let (a, _) = list(&mut s);
    assert_eq!(a.state, "running", "a cancelled stop does nothing:\n{}", s.output());
    let out = s.output();
    assert!(!out.lines().any(|l| l.starts_with("[a] ") && l.contains("zzz")), "the command line leaked:\n{out}");

    // pause: b's input waits, unechoed, while a answers; b's exit count
    // stays put. The pause is said once b's vCPU is out of the guest, so
    // from that line on nothing of b's may appear.
    s.send_raw(b"\x1d1");
    s.wait_for("el2-hyp: console input goes to VM 1 \"b\"", T);
    cmd(&mut s, "pause b");
    s.wait_for("el2-hyp: VM 1 \"b\" paused", T);
    s.send("typed while paused");
    let (_, b1) = list(&mut s);
    assert_eq!(b1.state, "paused", "{}", s.output());
    s.send_raw(b"\x1d0");
    s.wait_for("el2-hyp: console input goes to VM 0 \"a\"", T);
    let (a1, _) = list(&mut s);
    s.send("ping a");
    s.wait_for("[a] ping a", T);
    s.wait_for("[a] ping a", T);
    let (a2, b2) = list(&mut s);
    assert_eq!(b2.state, "paused", "{}", s.output());
    assert_eq!((b2.exits, b2.per_second), (b1.exits, 0), "a paused VM does not run:\n{}", s.output());
    assert!(a2.exits > a1.exits && a2.per_second > 0, "a runs: {a1:?} {a2:?}\n{}", s.output());
    let out = s.output();
    let from_b: Vec<_> =
        lines_after(&out, "el2-hyp: VM 1 \"b\" paused").into_iter().filter(|l| l.starts_with("[b] ")).collect();
    assert!(from_b.is_empty(), "b printed while paused: {from_b:?}\n{out}");
    // unpause: b goes on where it was, with the input (and its pending
    // receive interrupt) it was given while paused.
    cmd(&mut s, "unpause b");
    s.wait_for("el2-hyp: VM 1 \"b\" unpaused", T);
    s.wait_for("[b] typed while paused", T);
    s.wait_for("[b] typed while paused", T);
    cmd(&mut s, "unpause b");
    s.wait_for("el2-hyp: unpause: VM 1 \"b\" is not paused", T);

    // reset: a boots a second time.
    cmd(&mut s, "reset a");
    s.wait_for("el2-hyp: VM \"a\" reset", T);
    s.wait_for("[a] guest-kernel: 1 CPU(s) online", T);

    // stats: a's exit statistics, and only a's.
    cmd(&mut s, "stats 0");
    s.wait_for("el2-hyp:   VM \"a\" exits: total ", T);
    let out = s.output();
    assert!(
        !lines_after(&out, "el2-hyp> stats 0").iter().any(|l| l.contains("VM \"b\" exits")),
        "stats of a printed b's:\n{out}"
    );

    // stop, then start: b stops, a runs on; b boots again from its images.
    cmd(&mut s, "stop b");
    s.wait_for("el2-hyp: VM \"b\" stopped: stopped from the console", T);
    let (a, b) = list(&mut s);
    assert_eq!((a.state.as_str(), b.state.as_str()), ("running", "stopped"), "{}", s.output());
    cmd(&mut s, "pause b");
    s.wait_for("el2-hyp: pause: VM 1 \"b\" is stopped (start it first)", T);
    cmd(&mut s, "start b");
    s.wait_for("el2-hyp: VM 1 \"b\" started", T);
    s.wait_for("[b] guest-kernel: 1 CPU(s) online", T);
    let (_, b) = list(&mut s);
    assert_eq!(b.state, "running", "{}", s.output());
    s.send_raw(b"\x1d1");
    s.wait_for("el2-hyp: console input goes to VM 1 \"b\"", T);
    s.send("b again");
    s.wait_for("[b] b again", T);
    s.wait_for("[b] b again", T);

    // Stopping both ends the run: the last VM to stop powers the machine
    // off. A paused VM can be stopped (its vCPUs are already out).
    cmd(&mut s, "pause a");
    s.wait_for("el2-hyp: VM 0 \"a\" paused", T);
    cmd(&mut s, "stop a");
    s.wait_for("el2-hyp: VM \"a\" stopped: stopped from the console", T);
    cmd(&mut s, "stop b");
    let r = s.finish(T);
    r.expect_clean_exit()
        .expect("el2-hyp: VM \"b\" stopped: stopped from the console")
        .expect("el2-hyp: all VMs have stopped; powering off");
    let banners = |name: &str| r.vm_lines(name).iter().filter(|l| l.contains("CPU(s) online")).count();
    assert_eq!((banners("a"), banners("b")), (2, 2), "a reset once, b started again once:\n{}", r.output);
}

/// A VM with two vCPUs on two physical CPUs is paused in the middle of its
/// boot, while both are busy: it stays out of the guest (its exit count is
/// fixed, it prints nothing) while the other VM answers, and once unpaused
/// it goes on where it was and passes its whole EL0 test suite.
#[test]
fn a_busy_two_vcpu_vm_paused_mid_boot_resumes_and_passes_its_suite() {
    let vm = |name: &str, vcpus: u32, pin: &str, cmdline: &str| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"128M\"\nvcpus = {vcpus}\n{pin}cmdline = \"{cmdline}\"\n\n"
        )
    };
    let cfg = temp_file(
        "vmctl-busy.toml",
        [vm("a", 2, "pin = [0, 1]\n", ""), vm("b", 1, "", "init=/bin/cat")].concat().as_bytes(),
    );
    let mut s = Session::start(300, &["--config", cfg.to_str().unwrap(), "--cpus", "2"]);
    // Its suite (init's child) runs for seconds after this line.
    s.wait_for("[a] guest-kernel: 2 CPU(s) online", 120);
    cmd(&mut s, "pause a");
    s.wait_for("el2-hyp: VM 0 \"a\" paused", T);
    let (a1, _) = list(&mut s);
    assert_eq!(a1.state, "paused", "{}", s.output());
    s.send_raw(b"\x1d1");
    s.wait_for("el2-hyp: console input goes to VM 1 \"b\"", T);
    // b's banner may have come before any of this: looked for from the start.
    s.wait_for_raw("[b] guest-kernel: 1 CPU(s) online", 120);
    s.send("hello b");
    s.wait_for("[b] hello b", T);
    s.wait_for("[b] hello b", T);
    let (a2, _) = list(&mut s);
    assert_eq!((a2.state.as_str(), a2.exits), ("paused", a1.exits), "a paused VM does not run:\n{}", s.output());
    let out = s.output();
    let from_a: Vec<_> =
        lines_after(&out, "el2-hyp: VM 0 \"a\" paused").into_iter().filter(|l| l.starts_with("[a] ")).collect();
    assert!(from_a.is_empty(), "a printed while paused: {from_a:?}\n{out}");
    cmd(&mut s, "unpause 0");
    s.wait_for("el2-hyp: VM 0 \"a\" unpaused", T);
    s.wait_for("[a] init: test suite (pid ", 120);
    s.send_raw(b"\x04");
    let r = s.finish(T);
    r.expect_clean_exit().expect_suite_passed("a").expect("el2-hyp: all VMs have stopped; powering off");
}

/// A VM stopped and started from the console never sees the RAM of its
/// previous instance (issue 19: RAM is zeroed at first touch, not at load;
/// `hypervisor/src/guestram.rs`). The old instance writes a pattern over
/// all the RAM it can allocate and waits; after `stop` and `start` the new
/// one finds no word of it and the RAM it never wrote zero. A second VM
/// keeps the machine on while the first is stopped.
#[test]
fn a_restarted_vm_never_sees_the_old_instance_ram() {
    let cfg = temp_file(
        "vmctl-ram.toml",
        b"[[vm]]\nname = \"a\"\nkernel = \"guest-kernel\"\nmemory = \"128M\"\nvcpus = 1\ncmdline = \"test=reset-ram-wait\"\n\n\
          [[vm]]\nname = \"b\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"64M\"\nvcpus = 1\ncmdline = \"init=/bin/cat\"\n",
    );
    let mut s = Session::start(300, &["--config", cfg.to_str().unwrap(), "--cpus", "2"]);
    s.wait_for_each(&["[a] hyptest reset-ram: wrote the pattern over ", "[b] guest-kernel: 1 CPU(s) online"], 120);
    let out = s.output();
    let mib =
        out.lines().find_map(|l| l.split("wrote the pattern over ").nth(1)?.split(' ').next()?.parse::<u64>().ok());
    assert!(mib.is_some_and(|m| m >= 96), "the old instance wrote over {mib:?} MiB:\n{out}");
    cmd(&mut s, "stop a");
    s.wait_for("el2-hyp: VM \"a\" stopped: stopped from the console", T);
    cmd(&mut s, "start a");
    s.wait_for("el2-hyp: VM 0 \"a\" started", T);
    s.wait_for(
        "[a] hyptest reset-ram: booted again after 1 reset(s); 0 word(s) of the old pattern in 128 MiB of RAM; 0 non-zero word(s)",
        120,
    );
    s.wait_for("[a] hyptest reset-ram-wait: ok", T);
    s.wait_for("el2-hyp: VM \"a\" stopped: PSCI SYSTEM_OFF", T);
    cmd(&mut s, "stop b");
    let r = s.finish(T);
    r.expect_clean_exit().expect("el2-hyp: all VMs have stopped; powering off").expect_not("FAILED");
}
