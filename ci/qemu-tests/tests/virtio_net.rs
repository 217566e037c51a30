//! virtio-net and the hypervisor's virtual switch under stock Linux
//! (issue 18): Debian's unmodified kernel loads its own `virtio_mmio`,
//! `failover`, `net_failover` and `virtio_net` modules in three VMs. Two
//! are on switch "lan": they ping each other and copy a file over TCP
//! (busybox `nc`), checked by its md5 sum. The third is alone on switch
//! "dmz" with an address of the same subnet: it reaches neither.

use std::path::{Path, PathBuf};

use qemu_tests::{Session, fetch_linux, linux_initrd_with_modules, temp_file};

const PROMPT: &str = "Enter 'help' for a list of built-in commands.";

/// Debian's busybox initramfs with the virtio-net modules from the
/// kernel's own package at its root.
fn initrd_with_modules() -> PathBuf {
    linux_initrd_with_modules(
        "virtio-net",
        &["drivers/virtio/virtio_mmio", "net/core/failover", "drivers/net/net_failover", "drivers/net/virtio_net"],
    )
}

/// A VM `name` running Linux with one card on `switch`.
fn vm(name: &str, initrd: &Path, switch: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"linux\"\ninitrd = \"{}\"\nmemory = \"128M\"\nvcpus = 1\n\
         cmdline = \"console=ttyAMA0\"\n\n[[vm.net]]\nswitch = \"{switch}\"\n\n",
        initrd.display()
    )
}

/// Gives console input to VM `n` (`Ctrl-]` `n`), loads the drivers and
/// brings eth0 up with `addr`/24.
fn set_up(s: &mut Session, n: usize, name: &str, addr: &str) {
    let p = format!("[{name}] ");
    s.send_raw(format!("\x1d{n}").as_bytes());
    s.command("insmod /virtio_mmio.ko && insmod /failover.ko", &p, 60);
    s.command("insmod /net_failover.ko && insmod /virtio_net.ko", &p, 60);
    s.command(&format!("ip addr add {addr}/24 dev eth0 && ip link set eth0 up"), &p, 60);
    let link = s.command("ip link show eth0", &p, 30).join("\n");
    assert!(link.contains("UP"), "{name}: {link}");
}

#[test]
fn two_linux_vms_ping_and_copy_a_file_over_tcp_a_third_on_another_switch_cannot() {
    fetch_linux();
    let initrd = initrd_with_modules();
    // dmz's limits are configured ([[switch]]); c is alone on it, so they
    // change nothing it does, but the hypervisor says what it applied.
    let dmz = "[[switch]]\nname = \"dmz\"\nrate = \"8M\"\nbacklog = 64\n";
    let cfg = [vm("a", &initrd, "lan"), vm("b", &initrd, "lan"), vm("c", &initrd, "dmz"), dmz.to_string()].concat();
    let cfg = temp_file("linux-virtio-net.toml", cfg.as_bytes());
    let mut s = Session::start(600, &["--config", cfg.to_str().unwrap(), "--gic", "3", "--cpus", "2"]);
    s.wait_for_each(&[&format!("[a] {PROMPT}"), &format!("[b] {PROMPT}"), &format!("[c] {PROMPT}")], 300);
    let out = s.output();
    let applied = "el2-hyp: switch \"dmz\": each port at most 8 MiB per second, bursts of 256 KiB, 64 frames queued";
    assert!(out.contains(applied), "the [[switch]] limits reach the hypervisor:\n{out}");
    assert!(!out.contains("switch \"lan\": each port"), "lan has no table: its defaults are not announced");
    set_up(&mut s, 0, "a", "10.0.0.1");
    set_up(&mut s, 1, "b", "10.0.0.2");
    set_up(&mut s, 2, "c", "10.0.0.3");

    // b pings a (ARP broadcast, then unicast both ways).
    s.send_raw(b"\x1d1");
    let out = s.command("ping -c 3 10.0.0.1", "[b] ", 60).join("\n");
    assert!(out.contains("3 packets transmitted, 3 packets received"), "b pings a: {out}");

    // A file a writes, b receives over TCP: the same md5 sum.
    s.send("nc -l -p 5000 > /tmp/f; md5sum /tmp/f");
    s.send_raw(b"\x1d0");
    let made = s.command("dd if=/dev/urandom of=/tmp/f bs=1024 count=512 2>/dev/null; md5sum /tmp/f", "[a] ", 60);
    let sum = made.iter().find_map(|l| l.strip_suffix("  /tmp/f")).expect("md5sum on a").to_string();
    assert_eq!(sum.len(), 32, "{made:?}");
    // a's prompt and b's sum come in either order (b prints as soon as a
    // closes the connection): wait for both at once, not one after the
    // other, or the second wait starts past a line already printed.
    s.send("nc 10.0.0.2 5000 < /tmp/f; echo __sent_the_file");
    s.wait_for_each(&["[a] __sent_the_file", &format!("[b] {sum}  /tmp/f")], 120);

    // c is on another switch: it reaches neither (ARP goes unanswered).
    s.send_raw(b"\x1d2");
    let out = s.command("ping -c 2 -W 1 10.0.0.1; ping -c 2 -W 1 10.0.0.2", "[c] ", 60).join("\n");
    assert_eq!(out.matches("0 packets received").count(), 2, "c reaches nobody: {out}");

    let stats = s.command("cat /sys/class/net/eth0/statistics/rx_packets", "[c] ", 30);
    assert_eq!(stats, ["0"], "nothing from lan reached dmz");
    for (n, name) in [(0, "a"), (1, "b")] {
        s.send_raw(format!("\x1d{n}").as_bytes());
        let p = format!("[{name}] ");
        let log = s.command("dmesg", &p, 30).join("\n");
        for bad in ["WARNING:", "Oops", "BUG:", "Call trace:", "Unable to handle", "virtio_net: probe"] {
            assert!(!log.contains(bad), "{name}: kernel log has {bad:?}:\n{log}");
        }
        s.send("poweroff -f");
        s.wait_for(&format!("el2-hyp: VM \"{name}\" stopped: PSCI SYSTEM_OFF"), 60);
    }
    s.send_raw(b"\x1d2");
    s.send("poweroff -f");
    s.wait_for("el2-hyp: VM \"c\" stopped: PSCI SYSTEM_OFF", 60);
    let r = s.finish(60);
    r.expect_clean_exit().expect_not("HYPERVISOR CRASH").expect_not("DEVICE_NEEDS_RESET").expect_not("injecting");
}

/// A VM reset while the other VM pings it every 10 ms: the
/// resetting card's port goes down (frames to it are dropped, nothing is
/// written into its next life), the hypervisor keeps running, and after
/// its new boot the two reach each other again (its address re-learned).
/// (With the card's reset skipped, the frames go into the old rings in the
/// new life's RAM: its driver is told DEVICE_NEEDS_RESET, which fails.)
#[test]
fn a_vm_reset_while_frames_stream_at_it_then_they_talk_again() {
    fetch_linux();
    let initrd = initrd_with_modules();
    let cfg = [vm("a", &initrd, "lan"), vm("b", &initrd, "lan")].concat();
    let cfg = temp_file("linux-virtio-net-reset.toml", cfg.as_bytes());
    let mut s = Session::start(600, &["--config", cfg.to_str().unwrap(), "--gic", "3", "--cpus", "2"]);
    s.wait_for_each(&[&format!("[a] {PROMPT}"), &format!("[b] {PROMPT}")], 300);
    set_up(&mut s, 0, "a", "10.0.0.1");
    set_up(&mut s, 1, "b", "10.0.0.2");

    // b pings a every 10 ms (busybox nc has no UDP; a ping does not stop
    // for an absent peer while b's ARP entry lives), until a has had 300.
    s.send_raw(b"\x1d1");
    s.send("ping -q -i 0.01 -s 1400 10.0.0.1 &");
    s.send_raw(b"\x1d0");
    let wait = "until [ $(cat /sys/class/net/eth0/statistics/rx_packets) -gt 300 ]; do :; done";
    s.command(wait, "[a] ", 120);
    // a is reset by the hypervisor's console (not by Linux, whose reboot
    // resets its cards first) while b's pings keep coming: they reach a's
    // card while it is reset, its RAM reloaded and its new kernel booting.
    s.send_raw(b"\x1d:");
    s.send("reset a");
    s.wait_for("el2-hyp: VM \"a\" reset", 60);
    s.wait_for(&format!("[a] {PROMPT}"), 300);
    set_up(&mut s, 0, "a", "10.0.0.1");
    let out = s.command("ping -c 3 10.0.0.2", "[a] ", 60).join("\n");
    assert!(out.contains("3 packets transmitted, 3 packets received"), "a pings b after its reset: {out}");

    for (n, name) in [(1, "b"), (0, "a")] {
        s.send_raw(format!("\x1d{n}").as_bytes());
        let log = s.command("dmesg", &format!("[{name}] "), 30).join("\n");
        for bad in ["WARNING:", "Oops", "BUG:", "Call trace:", "Unable to handle"] {
            assert!(!log.contains(bad), "{name}: kernel log has {bad:?}:\n{log}");
        }
        s.send("poweroff -f");
        s.wait_for(&format!("el2-hyp: VM \"{name}\" stopped: PSCI SYSTEM_OFF"), 60);
    }
    let r = s.finish(60);
    r.expect_clean_exit().expect_not("HYPERVISOR CRASH").expect_not("DEVICE_NEEDS_RESET").expect_not("injecting");
}

/// A hostile driver: VM `a`'s root writes the card's registers through
/// `/dev/mem` (busybox `devmem`, no driver loaded) and gives the transmit
/// queue rings outside its RAM. The card answers DEVICE_NEEDS_RESET in
/// Status (the hypervisor reports it once), nothing else breaks, and once
/// Linux's own driver resets the card it works: `a` pings `b`.
#[test]
fn a_hostile_driver_gets_device_needs_reset_then_the_card_recovers() {
    fetch_linux();
    let initrd = initrd_with_modules();
    let cfg = [vm("a", &initrd, "lan"), vm("b", &initrd, "lan")].concat();
    let cfg = temp_file("linux-virtio-net-hostile.toml", cfg.as_bytes());
    let mut s = Session::start(600, &["--config", cfg.to_str().unwrap(), "--gic", "3", "--cpus", "2"]);
    s.wait_for_each(&[&format!("[a] {PROMPT}"), &format!("[b] {PROMPT}")], 300);
    set_up(&mut s, 1, "b", "10.0.0.2");

    s.send_raw(b"\x1d0");
    let p = "[a] ";
    // Transport 0 at 0x0a000000 (no disks): a net card, device ID 1.
    assert_eq!(s.command("devmem 0x0a000008 32", p, 30), ["0x00000001"]);
    // §3.1.1 up to FEATURES_OK with VERSION_1, then queue 1's rings at
    // 0x20000000 (below the RAM at 0x40000000: aligned, but outside it),
    // DRIVER_OK and a notification of queue 1.
    let w = |reg: u32, value: u32| format!("devmem {:#x} 32 {value:#x}", 0x0a00_0000u32 + reg);
    for line in [
        [w(0x70, 0), w(0x70, 1), w(0x70, 3), w(0x24, 1), w(0x20, 1), w(0x70, 11)].join("; "),
        [w(0x30, 1), w(0x38, 8), w(0x80, 0x2000_0000), w(0x84, 0), w(0x90, 0x2000_1000), w(0x94, 0)].join("; "),
        [w(0xa0, 0x2000_2000), w(0xa4, 0), w(0x44, 1), w(0x70, 15), w(0x50, 1)].join("; "),
    ] {
        s.command(&line, p, 30);
    }
    // DEVICE_NEEDS_RESET (0x40) on top of what the driver set.
    assert_eq!(s.command("devmem 0x0a000070 32", p, 30), ["0x0000004F"]);

    // Linux's driver resets the card (Status = 0) and brings it up.
    set_up(&mut s, 0, "a", "10.0.0.1");
    let out = s.command("ping -c 3 10.0.0.2", p, 60).join("\n");
    assert!(out.contains("3 packets transmitted, 3 packets received"), "a pings b after the reset: {out}");

    for (n, name) in [(1, "b"), (0, "a")] {
        s.send_raw(format!("\x1d{n}").as_bytes());
        s.send("poweroff -f");
        s.wait_for(&format!("el2-hyp: VM \"{name}\" stopped: PSCI SYSTEM_OFF"), 60);
    }
    let r = s.finish(60);
    r.expect_clean_exit().expect_not("HYPERVISOR CRASH").expect_not("injecting");
    r.expect(
        "el2-hyp: VM \"a\" vCPU 0: net[0]: the driver broke a virtio rule (Queue { queue: 1, error: RingOutsideRam",
    );
    assert_eq!(r.output.matches("DEVICE_NEEDS_RESET").count(), 1, "one report:\n{}", r.output);
}
