//! What the kernel does once its console is up: the order of subsystem
//! start-up, as Linux's `start_kernel` lists it (memory was brought up by
//! the arch entry): interrupts and time, SMP, the scheduler, then
//! `rest_init` (init and kthreadd) and the boot CPU's idle loop.

use crate::arch::aarch64::{cpu, irq, mmu, process, smp, uaccess};
use crate::cmdline::Cmdline;
use crate::mm::Errno;
use crate::mm::oom::OvercommitPolicy;
use shared::platform::Platform;

/// Brings the kernel up and runs it; returns only by powering off.
pub fn run(platform: &Platform, cmdline: &Cmdline) -> ! {
    if let Some(test) = cmdline.test {
        hyptest(test, platform, cmdline);
    }
    // No user address space yet: every user address faults, and the
    // exception table must turn that into -EFAULT.
    let mut b = [0u8; 8];
    let r1 = uaccess::copy_from_user(&mut b, 0x1000);
    let r2 = uaccess::copy_to_user(0x40_0000, &b);
    let r3 = uaccess::copy_from_user(&mut b, mmu::PAGE_OFFSET as usize);
    let ok = [r1, r2, r3].iter().all(|r| *r == Err(Errno::EFAULT));
    crate::println!("guest-kernel: uaccess: bad user pointers give EFAULT: {}", if ok { "ok" } else { "FAILED" });

    let Some(initrd) = platform.initrd.filter(|r| r.size > 0) else {
        crate::println!("guest-kernel: no initramfs; nothing to run; powering off");
        crate::arch::aarch64::psci::system_off()
    };
    let initrd = crate::arch::aarch64::initrd(initrd);

    let have_gic = irq::init(platform, cmdline.hz);
    let nr = smp::smp_init();
    let overcommit = match cmdline.overcommit {
        "always" => OvercommitPolicy::Always,
        "never" => OvercommitPolicy::Never,
        _ => OvercommitPolicy::Guess,
    };
    crate::kernel::init(nr, cmdline.hz, cmdline.randomize, overcommit, initrd);
    crate::arch::aarch64::tty::init(&mut crate::kernel::lock(), platform);
    crate::println!(
        "guest-kernel: {} CPU(s) online, GIC {}, timer PPI at HZ={}",
        nr,
        match platform.gic.as_ref().map(|g| g.version) {
            Some(shared::platform::GicVersion::V3) if have_gic => "v3",
            Some(shared::platform::GicVersion::V2) if have_gic => "v2",
            _ => "absent",
        },
        cmdline.hz
    );
    let _ = cpu::nr_cpus();
    // Drivers (Linux `do_initcalls`): the virtio disks, memory shared
    // with other VMs.
    crate::arch::aarch64::virtio::probe_all(platform);
    crate::arch::aarch64::shm::probe(&mut crate::kernel::lock(), platform);
    if !platform.vm_name.is_empty() {
        crate::syscall::NODENAME.call_once(|| alloc::string::String::from(platform.vm_name.as_str()));
        // Under our hypervisor (it names the VM in the DTB): tell it the
        // boot is done, for the boot benchmark. Natively there is no EL2
        // to take the HVC.
        let _ = crate::arch::aarch64::psci::hvc(shared::hvc::vendor::BOOTED, &[]);
    }
    crate::kernel::kthread::rest_init(cmdline.init, cmdline.init_args);
    process::cpu_idle()
}

/// `test=NAME`: a hypervisor self-test, or `test=bench-SET` a benchmark
/// set (`crate::hyptest`), instead of the normal boot.
#[cfg(feature = "hyptest")]
fn hyptest(test: &str, platform: &Platform, cmdline: &Cmdline) -> ! {
    if let Some(set) = test.strip_prefix("bench-") {
        crate::hyptest::bench::run(set, platform, cmdline.init_args == "quick");
    }
    crate::hyptest::run(test, platform, cmdline.hz)
}

/// `test=NAME` on a kernel built without the self-tests: say so and stop,
/// rather than boot as if nothing had been asked.
#[cfg(not(feature = "hyptest"))]
fn hyptest(test: &str, _platform: &Platform, _cmdline: &Cmdline) -> ! {
    crate::println!(
        "guest-kernel: test={test} asked for, but the hypervisor self-tests and benchmarks are not built in \
         (cargo feature `hyptest`; scripts/build's build/guest-kernel.bin has them); powering off"
    );
    crate::arch::aarch64::psci::system_off()
}
