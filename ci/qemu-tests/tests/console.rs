//! Console input (issue 7: `read` on the console). A byte typed on the
//! serial line takes the whole interrupt path of LKD ch. 7-8 in the guest
//! kernel: the PL011 receive interrupt through `request_irq`'s table, a
//! tasklet that feeds the n_tty line discipline, the echo written by the
//! events workqueue's kworker, and `read(2)` in `/bin/cat`, run as init so
//! that end of file powers the machine off. Natively on GICv3 and GICv2,
//! and under the hypervisor, where input goes to one VM at a time.

use qemu_tests::{Session, native_guest_kernel_args, temp_file};

fn native(gic: u32, cpus: u32) -> Session {
    let args = native_guest_kernel_args(gic, cpus, "hz=100 init=/bin/cat");
    Session::start_qemu(120, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn cat_reads_console_lines_natively() {
    for (gic, cpus) in [(3, 1), (2, 2)] {
        let mut s = native(gic, cpus);
        s.wait_for("CPU(s) online", 60);
        s.send("hello tty");
        // Once echoed by the line discipline, once written by cat.
        s.wait_for("hello tty", 30);
        s.wait_for("hello tty", 30);
        // DEL erases (echoed as BS SP BS), CR ends the line (ICRNL), ^D at a
        // line start is EOF. Each key is typed once the echo of the one
        // before it has come back, as a person at a terminal would.
        s.send_raw(b"abx");
        s.wait_for_raw("abx", 30);
        s.send_raw(b"\x7f");
        s.wait_for_raw("\x08 \x08", 30);
        s.send_raw(b"c\r");
        // The whole echo, then cat's copy: a line is readable only once its
        // echo is on the console, as with Linux's n_tty.
        s.wait_for_raw("c\nabc\n", 30);
        s.send_raw(b"\x04");
        let r = s.finish(60);
        r.expect_clean_exit().expect("guest-kernel: init (pid 1) exited with status 0; powering off");
    }
}

#[test]
fn console_input_goes_to_the_vm_that_has_it() {
    let vm = |name: &str, vcpus: u32| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"128M\"\nvcpus = {vcpus}\ncmdline = \"init=/bin/cat\"\n\n"
        )
    };
    let cfg = temp_file("cat.toml", [vm("reader", 2), vm("other", 1)].concat().as_bytes());
    let mut s = Session::start(180, &["--config", cfg.to_str().unwrap(), "--cpus", "2"]);
    s.wait_for_each(&["[reader] guest-kernel: 2 CPU(s) online", "[other] guest-kernel: 1 CPU(s) online"], 90);
    // Input starts with VM 0.
    s.send("to reader");
    s.wait_for("[reader] to reader", 30);
    s.wait_for("[reader] to reader", 30);
    s.send_raw(b"\x04");
    s.wait_for("el2-hyp: VM \"reader\" stopped: PSCI SYSTEM_OFF", 30);
    // Ctrl-] 1: input to VM 1.
    s.send_raw(b"\x1d1");
    s.wait_for("el2-hyp: console input goes to VM 1 \"other\"", 30);
    s.send("to other");
    // The echo and cat's copy, before the ^D that powers the VM off.
    s.wait_for("[other] to other", 30);
    s.wait_for("[other] to other", 30);
    s.send_raw(b"\x04");
    let r = s.finish(60);
    r.expect_clean_exit().expect("el2-hyp: all VMs have stopped; powering off");
    assert_eq!(r.vm_lines("other").iter().filter(|l| **l == "to other").count(), 2, "{}", r.output);
    assert!(!r.vm_lines("reader").iter().any(|l| l.contains("other")), "{}", r.output);
}
