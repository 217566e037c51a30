//! gdb at both levels (docs/debugging.md): `scripts/run --gdb` waits for
//! gdb; `scripts/gdb --batch` stops in the hypervisor's hvc handler and in
//! the guest kernel's system-call dispatch, and the backtraces from both
//! unwind through the assembly (the call frame information of entry.S and
//! exceptions.S) to where they should end.

use std::process::Command;

use qemu_tests::{Session, command, root, temp_file};

/// A TCP port nobody listens on now (the kernel picks it; it is free again
/// once the listener is dropped, for QEMU to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The lines of `out` from the first that contains `from` up to (not
/// including) the next gdb "Breakpoint N," stop or the end.
fn section<'a>(out: &'a str, from: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = out.lines().collect();
    let Some(start) = lines.iter().position(|l| l.contains(from)) else { return Vec::new() };
    let end =
        lines[start + 1..].iter().position(|l| l.starts_with("Breakpoint ")).map_or(lines.len(), |i| start + 1 + i);
    lines[start..end].to_vec()
}

#[test]
fn gdb_stops_in_both_kernels_with_sane_backtraces() {
    let port = free_port().to_string();
    let config = root().join("firmware/qemu-debug.toml");
    let mut qemu = Session::start(300, &["--cpus", "1", "--config", config.to_str().unwrap(), "--gdb", &port]);
    // scripts/run prints this before it starts QEMU; gdb retries its
    // connection until QEMU listens (scripts/gdb: tcp connect-timeout).
    qemu.wait_for("run: QEMU is waiting for gdb on port", 120);

    let script = temp_file(
        "session.gdb",
        b"hbreak hypervisor::exit::hypercall<hypervisor::arch::aarch64::exit::Hw>\n\
          continue\n\
          bt\n\
          delete\n\
          hbreak guest_kernel::syscall::table::dispatch\n\
          continue\n\
          bt\n\
          p/x f.elr\n\
          kill\n",
    );
    let mut gdb = Command::new(root().join("scripts/gdb"));
    gdb.args(["--port", &port, "--batch", script.to_str().unwrap()]);
    let g = command(gdb, 240);
    let out = &g.output;

    // Both breakpoints hit.
    let hyp = section(out, "Breakpoint 1, hypervisor::exit::hypercall<hypervisor::arch::aarch64::exit::Hw>");
    let gk = section(out, "Breakpoint 2, guest_kernel::syscall::table::dispatch");
    assert!(!hyp.is_empty(), "the hvc handler's breakpoint did not hit:\n{out}");
    assert!(!gk.is_empty(), "dispatch's breakpoint did not hit:\n{out}");

    // No unwinder trouble anywhere.
    for bad in ["Internal error", "corrupt stack", "previous frame identical", "previous frame inner"] {
        assert!(!out.contains(bad), "gdb said {bad:?}:\n{out}");
    }

    // The hypervisor: the exit core's hypercall (generic over the arch
    // layer's `ExitEnv`, hence gdb's `<...Hw>`) <- handle_sync (the core's,
    // then the arch layer's) <- ... <- hyp_main <- the
    // boot path (entry.S's common_setup, part of primary_entry), where the
    // backtrace ends (x30 undefined there).
    let frames = |s: &[&str]| s.iter().filter(|l| l.starts_with('#')).map(|l| l.to_string()).collect::<Vec<_>>();
    let hf = frames(&hyp);
    assert!(hf.first().is_some_and(|l| l.contains("exit::hypercall")), "hypervisor bt:\n{out}");
    assert!(hf.iter().any(|l| l.contains("exit::handle_sync")), "hypervisor bt lacks handle_sync:\n{out}");
    assert!(hf.iter().any(|l| l.contains("hyp_main")), "hypervisor bt lacks hyp_main:\n{out}");
    assert!(
        hf.last().is_some_and(|l| l.contains(" in common_setup ()")),
        "hypervisor bt does not end at the entry:\n{out}"
    );
    assert!(hf.len() < 20, "hypervisor bt too long:\n{out}");

    // The guest kernel: dispatch <- el0_sync (handle_exception is inlined
    // or tail-called) <- trap_entry <- the EL0 pc the svc interrupted (a
    // user address).
    let gf = frames(&gk);
    assert!(gf.first().is_some_and(|l| l.contains("syscall::table::dispatch")), "guest bt:\n{out}");
    for f in ["el0_sync", "trap_entry"] {
        assert!(gf.iter().any(|l| l.contains(f)), "guest bt lacks {f}:\n{out}");
    }
    let after = gf.iter().position(|l| l.contains("trap_entry")).unwrap() + 1;
    let user = gf.get(after).unwrap_or_else(|| panic!("guest bt stops at trap_entry:\n{out}"));
    // That frame's pc is the one the exception saved in the TrapFrame (gdb
    // took the user's x30 for it before trap_entry had CFI).
    let hex = |a: &str| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok();
    let pc = user.split_whitespace().nth(1).and_then(hex);
    let elr = gk.iter().find_map(|l| l.strip_prefix("$1 = ")).and_then(hex);
    assert!(
        pc.is_some_and(|pc| pc != 0 && pc < 1 << 48),
        "the frame after trap_entry is not an EL0 pc: {user:?}\n{out}"
    );
    assert_eq!(pc, elr, "the frame after trap_entry is not the TrapFrame's elr:\n{out}");

    // gdb's `kill` ended QEMU, so the run ends now.
    let run = qemu.finish(60);
    assert_ne!(run.status, 124, "QEMU was still running after gdb's kill:\n{}", run.output);
}
