//! Interrupt-virtualization self-tests of the hypervisor, run by the guest
//! kernel instead of a normal boot (`test=NAME`, dispatched by hyptest.rs,
//! which prints the final `hyptest NAME: ok` / `FAILED` line):
//!
//! - `timer-rate`: the virtual timer, re-armed at absolute deadlines
//!   (CNTV_CVAL += CNTFRQ / HZ), interrupts at HZ (`hz=` on the command
//!   line) within ±10 % over 2 s of the virtual counter, once while the
//!   vCPU spins (the timer fires while it is loaded) and once while it
//!   waits in WFI (the hypervisor must wake it at the deadline); the
//!   handler always finds the timer firing and CNTV_CTL_EL0 as the guest
//!   left it (no IMASK behind its back, no stale second delivery).
//! - `ipi`: 200 SGI round trips between vCPU 0 and vCPU 1 (whatever the
//!   physical CPUs: pinned to two, or time-sharing one).
//! - `irq-priority`: with interrupts masked, 8 SGIs to itself and 8 SPIs
//!   (GICD_ISPENDR) are made pending, 16 distinct priorities, more than the
//!   list registers; unmasked, they must be taken strictly by priority.
//! - `level`: a level-triggered interrupt whose source stays asserted is
//!   taken again after each EOI until the source is cleared: the emulated
//!   PL011's TX interrupt (UARTIMSC.TXIM) and the virtual timer PPI.
//! - `gic-nonsense`: pseudo-random values written to every GICD register
//!   and to the VM's own redistributor frames (RD and SGI), every word
//!   read back, then random sizes and offsets; afterwards the VM must still
//!   print, and after resetting its GIC still take an SGI and its tick.
//! - `vcounter`: the virtual counter starts near zero (per-VM CNTVOFF_EL2)
//!   and starts again after SYSTEM_RESET; a 200 ms timer wait in WFI with
//!   that offset wakes on time, without a storm of early wake-ups.
//!
//! GIC rules: IHI 0069H (GICv3) §4.1 (interrupt states), §4.8 (priority),
//! IHI 0048B (GICv2); timer: ARM ARM D11.2 (the generic timer).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::{cpu, irq, mmu, psci, smp, uaccess};
use crate::println;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTPCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, Readable, Writeable};
use crate::selftest::{XorShift64, check_priority_order, judge_rate, shuffled_priorities};
use shared::platform::{GicVersion, Platform};
use smccc::Hvc;

/// Runs interrupt test `name`; `None` if there is no such test here.
pub fn run(name: &str, platform: &Platform, hz: u32) -> Option<bool> {
    Some(match name {
        "timer-rate" => timer_rate(platform, hz),
        "ipi" => ipi(platform, hz),
        "irq-priority" => irq_priority(platform, hz),
        "level" => level(platform, hz),
        "gic-nonsense" => gic_nonsense(platform, hz),
        "vcounter" => vcounter(platform, hz),
        _ => return None,
    })
}

// ---- the counter and the virtual timer (ARM ARM D11.2) ----

/// CNTV_CTL_EL0 bits: ENABLE, IMASK, ISTATUS (read-only).
const CTL_ENABLE: u64 = CNTV_CTL_EL0::ENABLE::SET.value;
const CTL_IMASK: u64 = CNTV_CTL_EL0::IMASK::SET.value;
const CTL_ISTATUS: u64 = CNTV_CTL_EL0::ISTATUS::SET.value;

fn cntvct() -> u64 {
    irq::read_cntvct()
}

fn cntpct() -> u64 {
    // EL1 may read it: the hypervisor sets CNTHCTL_EL2.EL1PCTEN.
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

fn ms_to_ticks(ms: u64) -> u64 {
    ms * irq::cntfrq() / 1000
}

fn ticks_to_ms(ticks: u64) -> u64 {
    (u128::from(ticks) * 1000 / u128::from(irq::cntfrq())) as u64
}

fn timer_ctl() -> u64 {
    barrier::isb(barrier::SY);
    CNTV_CTL_EL0.get()
}

fn set_timer_ctl(v: u64) {
    CNTV_CTL_EL0.set(v);
    barrier::isb(barrier::SY);
}

fn timer_cval() -> u64 {
    CNTV_CVAL_EL0.get()
}

fn set_timer_cval(v: u64) {
    CNTV_CVAL_EL0.set(v);
    barrier::isb(barrier::SY);
}

fn wfi() {
    // Here with IRQs masked: a pending interrupt still ends the wait (ARM
    // ARM D1.6.2).
    barrier::dsb(barrier::SY);
    aarch64_cpu::asm::wfi();
}

/// Takes any pending interrupt: unmask, synchronize, mask again.
fn take_interrupts() {
    cpu::local_irq_enable();
    // SAFETY: a context synchronization point; no memory is touched.
    unsafe { core::arch::asm!("isb", options(nomem, nostack)) };
    cpu::local_irq_disable();
}

/// Waits in WFI, interrupts taken between waits, until `done()` or until
/// the virtual counter reaches `deadline`. Called with IRQs masked; the
/// condition is checked with them masked, so an interrupt between the
/// check and the WFI still ends the WFI. Something must interrupt (a tick)
/// for the deadline to be noticed. Returns `done()` and the number of
/// times WFI returned.
fn wfi_until(deadline: u64, done: impl Fn() -> bool) -> (bool, u64) {
    let mut wakeups = 0;
    loop {
        if done() {
            return (true, wakeups);
        }
        if cntvct() >= deadline {
            return (false, wakeups);
        }
        wfi();
        wakeups += 1;
        take_interrupts();
    }
}

/// Spins with interrupts enabled until `done()` or the virtual counter
/// reaches `deadline` (IRQs masked again on return).
fn spin_until(deadline: u64, done: impl Fn() -> bool) -> bool {
    cpu::local_irq_enable();
    let ok = loop {
        if done() {
            break true;
        }
        if cntvct() >= deadline {
            break done();
        }
        core::hint::spin_loop();
    };
    cpu::local_irq_disable();
    ok
}

/// Brings the GIC up with the tick at `hz` (then stopped unless `tick`),
/// IRQs masked. False (reported) without a GIC.
fn gic_up(platform: &Platform, hz: u32, tick: bool, test: &str) -> bool {
    cpu::local_irq_disable();
    if !irq::init(platform, hz.max(1)) {
        println!("hyptest {test}: the DTB names no GIC");
        return false;
    }
    if !tick {
        irq::stop_tick();
    }
    true
}

fn verdict(good: bool) -> &'static str {
    if good { "ok" } else { "WRONG" }
}

// ---- timer-rate ----

static RATE_COUNT: AtomicU64 = AtomicU64::new(0);
static RATE_PERIOD: AtomicU64 = AtomicU64::new(1);
/// Timer interrupts whose handler saw CNTV_CTL_EL0 other than ENABLE |
/// ISTATUS: IMASK set by a hypervisor that masks the guest's timer, or
/// ISTATUS clear in a stale (already handled) interrupt.
static RATE_BAD_CTL: AtomicU64 = AtomicU64::new(0);
/// The last such CNTV_CTL_EL0, and how far its deadline then was ahead.
static RATE_BAD_CTL_SEEN: AtomicU64 = AtomicU64::new(0);
static RATE_BAD_DEADLINE: AtomicU64 = AtomicU64::new(0);

fn rate_hook(_cpu: usize, raw: u32) -> bool {
    if raw & 0x3ff != irq::timer_intid() {
        return false;
    }
    let ctl = timer_ctl();
    if ctl & (CTL_ENABLE | CTL_IMASK | CTL_ISTATUS) != CTL_ENABLE | CTL_ISTATUS {
        RATE_BAD_CTL.fetch_add(1, Ordering::Relaxed);
        RATE_BAD_CTL_SEEN.store(ctl, Ordering::Relaxed);
        RATE_BAD_DEADLINE.store(timer_cval().wrapping_sub(cntvct()), Ordering::Relaxed);
    }
    // Absolute deadlines: the count measures delivery, not handler latency.
    set_timer_cval(timer_cval().wrapping_add(RATE_PERIOD.load(Ordering::Relaxed)));
    RATE_COUNT.fetch_add(1, Ordering::Relaxed);
    true
}

/// Counts timer interrupts over 2 s of virtual time, spinning or in WFI.
fn measure_rate(hz: u32, in_wfi: bool) -> bool {
    const INTERVAL_MS: u64 = 2000;
    const TOLERANCE_PERCENT: u64 = 10;
    let t0 = cntvct();
    let c0 = RATE_COUNT.load(Ordering::Relaxed);
    let end = t0 + ms_to_ticks(INTERVAL_MS);
    let wakeups = if in_wfi {
        wfi_until(end, || false).1
    } else {
        let _ = spin_until(end, || false);
        0
    };
    let (t1, c1) = (cntvct(), RATE_COUNT.load(Ordering::Relaxed));
    let v = judge_rate(c1 - c0, t1 - t0, irq::cntfrq(), u64::from(hz), TOLERANCE_PERCENT);
    println!(
        "hyptest timer-rate: {}: {} interrupts in {} ms at HZ={hz}: expected {} ± {} ({TOLERANCE_PERCENT} %): {}",
        if in_wfi { "waiting in WFI" } else { "spinning" },
        c1 - c0,
        ticks_to_ms(t1 - t0),
        v.expected,
        v.slack,
        verdict(v.ok)
    );
    if in_wfi {
        // Each WFI traps (HCR_EL2.TWI), so the hypervisor counts these; a
        // host that stalls this vCPU makes several ticks due at once, taken
        // back to back without a WFI between them, so fewer than ticks.
        println!("hyptest timer-rate: WFI executed while waiting: {wakeups}");
    }
    v.ok
}

fn timer_rate(platform: &Platform, hz: u32) -> bool {
    let (v, p) = (cntvct(), cntpct());
    println!("hyptest timer-rate: virtual counter {} ms, physical {} ms", ticks_to_ms(v), ticks_to_ms(p));
    if !gic_up(platform, hz, false, "timer-rate") {
        return false;
    }
    RATE_PERIOD.store((irq::cntfrq() / u64::from(hz.max(1))).max(1), Ordering::Relaxed);
    // gic_up armed the kernel's tick and stopped it again with interrupts
    // masked; if the host held this vCPU back for a tick period between the
    // two, that tick fired and is pending in a list register, and only an
    // exit lets the hypervisor see that the timer's output has dropped
    // since (a real GIC follows the level at once). One hypercall is that
    // exit, so the count below sees only interrupts of the test's timer.
    let _ = psci::hvc(shared::hvc::vendor::NOP, &[]);
    irq::set_test_hook(Some(rate_hook));
    set_timer_cval(cntvct() + RATE_PERIOD.load(Ordering::Relaxed));
    set_timer_ctl(CTL_ENABLE);
    let spinning = measure_rate(hz, false);
    let waiting = measure_rate(hz, true);
    irq::stop_tick();
    irq::set_test_hook(None);
    let bad = RATE_BAD_CTL.load(Ordering::Relaxed);
    println!(
        "hyptest timer-rate: interrupts taken while CNTV_CTL_EL0 was not ENABLE|ISTATUS (not firing, or masked behind the guest's back): {bad}: {}",
        verdict(bad == 0)
    );
    if bad != 0 {
        // ISTATUS clear: taken although not firing (a stale pending state);
        // IMASK set: masked by someone else.
        let deadline = RATE_BAD_DEADLINE.load(Ordering::Relaxed) as i64;
        println!(
            "hyptest timer-rate: last seen: CNTV_CTL_EL0 {:#x}, compare value {deadline} ticks ahead",
            RATE_BAD_CTL_SEEN.load(Ordering::Relaxed)
        );
    }
    spinning && waiting && bad == 0
}

// ---- ipi ----

const PING: u32 = 2;
const PONG: u32 = 3;
const ROUND_TRIPS: u64 = 200;
static PINGS: AtomicU64 = AtomicU64::new(0);
static PONGS: AtomicU64 = AtomicU64::new(0);
static SECONDARY_READY: AtomicBool = AtomicBool::new(false);
static IPI_DONE: AtomicBool = AtomicBool::new(false);

fn ipi_hook(cpu: usize, raw: u32) -> bool {
    match (cpu, raw & 0x3ff) {
        (1, PING) => {
            PINGS.fetch_add(1, Ordering::AcqRel);
            irq::send_ipi(1 << 0, PONG);
            true
        }
        (0, PONG) => {
            PONGS.fetch_add(1, Ordering::AcqRel);
            true
        }
        _ => false,
    }
}

/// vCPU 1: answers PINGs (in `ipi_hook`) until vCPU 0 is done, then turns
/// itself off. Its tick keeps running so that its WFI loop sees the end.
fn ipi_secondary(cpu: usize) -> ! {
    cpu::local_irq_disable();
    irq::configure(PING, 0x40, true);
    irq::configure(PONG, 0x40, true);
    if cpu == 1 {
        SECONDARY_READY.store(true, Ordering::Release);
        let _ = wfi_until(u64::MAX, || IPI_DONE.load(Ordering::Acquire));
    }
    irq::stop_tick();
    let _ = smccc::psci::cpu_off::<Hvc>();
    loop {
        wfi();
    }
}

fn ipi(platform: &Platform, hz: u32) -> bool {
    if cpu::nr_cpus() < 2 {
        println!("hyptest ipi: needs 2 vCPUs, the DTB has {}", cpu::nr_cpus());
        return false;
    }
    // The tick stays on: it bounds every WFI wait.
    if !gic_up(platform, hz, true, "ipi") {
        return false;
    }
    irq::configure(PING, 0x40, true);
    irq::configure(PONG, 0x40, true);
    irq::set_test_hook(Some(ipi_hook));
    smp::set_secondary_test(ipi_secondary);
    let online = smp::smp_init();
    cpu::local_irq_disable();
    let ready = wfi_until(cntvct() + ms_to_ticks(10_000), || SECONDARY_READY.load(Ordering::Acquire)).0;
    if online < 2 || !ready {
        println!("hyptest ipi: vCPU 1 did not come up ({online} online)");
        return false;
    }
    let deadline = cntvct() + ms_to_ticks(60_000);
    let t0 = cntvct();
    let mut done = 0;
    for i in 1..=ROUND_TRIPS {
        irq::send_ipi(1 << 1, PING);
        if !wfi_until(deadline, || PONGS.load(Ordering::Acquire) >= i).0 {
            break;
        }
        done = i;
    }
    let t1 = cntvct();
    IPI_DONE.store(true, Ordering::Release);
    irq::stop_tick();
    let (pings, pongs) = (PINGS.load(Ordering::Acquire), PONGS.load(Ordering::Acquire));
    let ok = done == ROUND_TRIPS && pings == ROUND_TRIPS && pongs == ROUND_TRIPS;
    println!(
        "hyptest ipi: {done} of {ROUND_TRIPS} round trips vCPU 0 -> 1 -> 0 (SGI {PING} / SGI {PONG}): {pings} pings, {pongs} pongs, {} us per round trip: {}",
        ticks_to_ms((t1 - t0) * 1000) / done.max(1),
        verdict(ok)
    );
    ok
}

// ---- irq-priority ----

const SGIS: [u32; 8] = [2, 3, 4, 5, 6, 7, 8, 9];
const SPIS: [u32; 8] = [40, 41, 42, 43, 44, 45, 46, 47];
const NR_PRIO: usize = SGIS.len() + SPIS.len();
static ORDER: [AtomicU32; 32] = [const { AtomicU32::new(0) }; 32];
static ORDER_LEN: AtomicUsize = AtomicUsize::new(0);

fn order_hook(_cpu: usize, raw: u32) -> bool {
    let intid = raw & 0x3ff;
    if !SGIS.contains(&intid) && !SPIS.contains(&intid) {
        return false;
    }
    let n = ORDER_LEN.fetch_add(1, Ordering::AcqRel);
    if let Some(slot) = ORDER.get(n) {
        slot.store(intid, Ordering::Release);
    }
    true
}

fn irq_priority(platform: &Platform, hz: u32) -> bool {
    if !gic_up(platform, hz, false, "irq-priority") {
        return false;
    }
    // Distinct priorities 0x00..0x78, all more urgent than anything else.
    let mut rng = XorShift64::new(0x5EED_1234 ^ cntvct());
    let prios: [u8; NR_PRIO] = shuffled_priorities(8, &mut rng);
    let mut pending: heapless::Vec<(u32, u8), NR_PRIO> = heapless::Vec::new();
    for (&intid, &p) in SGIS.iter().chain(SPIS.iter()).zip(prios.iter()) {
        // Half the SPIs edge-triggered, half level (a software pending
        // state on a level interrupt is consumed by the acknowledge).
        irq::configure(intid, p, intid < 44);
        let _ = pending.push((intid, p));
    }
    irq::set_test_hook(Some(order_hook));
    let me = cpu::smp_processor_id();
    for &sgi in SGIS.iter() {
        irq::send_ipi(1 << me, sgi);
    }
    for &spi in SPIS.iter() {
        irq::set_spi_pending(spi);
    }
    println!(
        "hyptest irq-priority: {NR_PRIO} interrupts pending with IRQs masked (8 SGIs to self, 8 SPIs), more than the list registers"
    );
    let all = spin_until(cntvct() + ms_to_ticks(5000), || ORDER_LEN.load(Ordering::Acquire) >= NR_PRIO);
    // Anything delivered twice shows up now.
    let _ = spin_until(cntvct() + ms_to_ticks(100), || false);
    irq::set_test_hook(None);
    let n = ORDER_LEN.load(Ordering::Acquire).min(ORDER.len());
    let delivered: heapless::Vec<u32, 32> = ORDER[..n].iter().map(|a| a.load(Ordering::Acquire)).collect();
    // Eight per line: the hypervisor's console lines hold 160 bytes.
    for chunk in delivered.chunks(8) {
        let mut line: heapless::String<128> = heapless::String::new();
        for &intid in chunk {
            let p = pending.iter().find(|x| x.0 == intid).map_or(0xff, |x| x.1);
            let _ = core::fmt::write(&mut line, format_args!(" {intid}/{p:#04x}"));
        }
        println!("hyptest irq-priority: taken (INTID/priority):{}", line.as_str());
    }
    let order = check_priority_order(&pending, &delivered);
    let ok = all && order.is_ok();
    println!(
        "hyptest irq-priority: {} of {NR_PRIO} taken, strictly by priority: {} {}",
        delivered.len(),
        verdict(ok),
        match order {
            Ok(()) => alloc::string::String::new(),
            Err(e) => alloc::format!("({e:?})"),
        }
    );
    ok
}

// ---- level ----

/// Deliveries each level source gets before the handler clears it.
const LEVEL_TIMES: u64 = 5;
static LEVEL_COUNT: AtomicU64 = AtomicU64::new(0);
static LEVEL_INTID: AtomicU32 = AtomicU32::new(1023);
static LEVEL_BAD_CTL: AtomicU64 = AtomicU64::new(0);
static UART_VA: AtomicUsize = AtomicUsize::new(0);

/// PL011 registers (ARM DDI 0183G §3.2) and the TX interrupt bit.
const UARTIMSC: usize = 0x038;
const UARTMIS: usize = 0x040;
const UARTICR: usize = 0x044;
const UART_TXI: u32 = 1 << 5;

fn uart_write(off: usize, v: u32) {
    let base = UART_VA.load(Ordering::Relaxed);
    // SAFETY: the DTB's PL011, mapped as device memory by mmu::init; one
    // str so that the hypervisor gets a full syndrome.
    unsafe { core::arch::asm!("str {v:w}, [{a}]", v = in(reg) v, a = in(reg) base + off, options(nostack)) };
}

fn uart_read(off: usize) -> u32 {
    let base = UART_VA.load(Ordering::Relaxed);
    let v: u32;
    // SAFETY: as for `uart_write`.
    unsafe { core::arch::asm!("ldr {v:w}, [{a}]", v = out(reg) v, a = in(reg) base + off, options(nostack)) };
    v
}

/// The UART's TX interrupt: taken LEVEL_TIMES times with the source left
/// asserted, then cleared at the device (UARTICR) before the EOI.
fn uart_level_hook(_cpu: usize, raw: u32) -> bool {
    if raw & 0x3ff != LEVEL_INTID.load(Ordering::Relaxed) {
        return false;
    }
    if LEVEL_COUNT.fetch_add(1, Ordering::AcqRel) + 1 >= LEVEL_TIMES {
        uart_write(UARTICR, UART_TXI);
    }
    true
}

/// The virtual timer: left firing (ISTATUS = 1) LEVEL_TIMES times, then
/// disabled before the EOI.
fn timer_level_hook(_cpu: usize, raw: u32) -> bool {
    if raw & 0x3ff != irq::timer_intid() {
        return false;
    }
    if timer_ctl() != CTL_ENABLE | CTL_ISTATUS {
        LEVEL_BAD_CTL.fetch_add(1, Ordering::Relaxed);
    }
    if LEVEL_COUNT.fetch_add(1, Ordering::AcqRel) + 1 >= LEVEL_TIMES {
        set_timer_ctl(0);
    }
    true
}

/// Lets a level source fire; returns how often it was taken.
fn count_level_deliveries() -> u64 {
    let _ = spin_until(cntvct() + ms_to_ticks(3000), || LEVEL_COUNT.load(Ordering::Acquire) >= LEVEL_TIMES);
    // Cleared at the source: no further delivery may come.
    let _ = spin_until(cntvct() + ms_to_ticks(100), || false);
    LEVEL_COUNT.load(Ordering::Acquire)
}

fn level(platform: &Platform, hz: u32) -> bool {
    if !gic_up(platform, hz, false, "level") {
        return false;
    }
    let mut ok = true;
    // 1. The PL011's TX interrupt, an SPI (level, IHI 0069H §4.1.2).
    match platform.uart.and_then(|u| u.irq.map(|i| (u.region.base, i.intid()))) {
        Some((base, intid)) => {
            UART_VA.store(mmu::phys_to_virt(base), Ordering::Relaxed);
            LEVEL_INTID.store(intid, Ordering::Relaxed);
            LEVEL_COUNT.store(0, Ordering::Relaxed);
            irq::configure(intid, 0x80, false);
            irq::set_test_hook(Some(uart_level_hook));
            uart_write(UARTIMSC, UART_TXI);
            // Transmitting sets the raw TX interrupt: the line goes high.
            println!("hyptest level: UART TX interrupt (INTID {intid}) unmasked");
            let n = count_level_deliveries();
            let mis = uart_read(UARTMIS);
            uart_write(UARTIMSC, 0);
            uart_write(UARTICR, 0x7ff);
            irq::set_test_hook(None);
            let good = n == LEVEL_TIMES && mis & UART_TXI == 0;
            println!(
                "hyptest level: UART TX taken {n} time(s) while asserted, then cleared (expected {LEVEL_TIMES}; UARTMIS {mis:#x}): {}",
                verdict(good)
            );
            ok &= good;
        }
        None => {
            println!("hyptest level: no PL011 interrupt in the DTB");
            ok = false;
        }
    }
    // 2. The virtual timer's PPI: asserted while ENABLE, !IMASK, ISTATUS.
    LEVEL_COUNT.store(0, Ordering::Relaxed);
    irq::configure(irq::timer_intid(), 0x80, false);
    irq::set_test_hook(Some(timer_level_hook));
    set_timer_cval(cntvct() + ms_to_ticks(1));
    set_timer_ctl(CTL_ENABLE);
    let n = count_level_deliveries();
    irq::stop_tick();
    irq::set_test_hook(None);
    let bad = LEVEL_BAD_CTL.load(Ordering::Relaxed);
    let good = n == LEVEL_TIMES && bad == 0;
    println!(
        "hyptest level: virtual timer taken {n} time(s) while firing, then disabled (expected {LEVEL_TIMES}; CNTV_CTL_EL0 not as the guest left it {bad} time(s)): {}",
        verdict(good)
    );
    ok && good
}

// ---- gic-nonsense ----

static SELF_SGIS: AtomicU64 = AtomicU64::new(0);

fn self_sgi_hook(_cpu: usize, raw: u32) -> bool {
    if raw & 0x3ff != PING {
        return false;
    }
    SELF_SGIS.fetch_add(1, Ordering::AcqRel);
    true
}

/// Every GIC frame this VM may touch: GICD, and (GICv3) its redistributors.
fn gic_frames(platform: &Platform) -> heapless::Vec<(&'static str, usize, usize), 8> {
    let mut frames = heapless::Vec::new();
    if let Some(g) = platform.gic.as_ref() {
        let _ = frames.push(("GICD", mmu::phys_to_virt(g.gicd.base), g.gicd.size as usize));
        if g.version == GicVersion::V3 {
            for r in g.gicr.iter() {
                let _ = frames.push(("GICR", mmu::phys_to_virt(r.base), r.size as usize));
            }
        }
    }
    frames
}

/// Clears what the nonsense may have left: every interrupt disabled, not
/// pending, not active (as Linux's gic_dist_config / gic_cpu_config do).
fn quiesce_gic(platform: &Platform) {
    for n in 0..32 {
        for base in [0x180, 0x280, 0x380] {
            irq::gicd_write32(base + 4 * n, u32::MAX);
        }
    }
    if platform.gic.as_ref().is_some_and(|g| g.version == GicVersion::V2) {
        // GICD_CPENDSGIR<n>: every source of every SGI (IHI 0048B §4.3.13).
        for n in 0..4 {
            irq::gicd_write32(0xF10 + 4 * n, u32::MAX);
        }
    }
    for (name, va, size) in gic_frames(platform) {
        if name != "GICR" {
            continue;
        }
        for rd in (0..size).step_by(0x2_0000) {
            for off in [0x1_0180, 0x1_0280, 0x1_0380] {
                // SAFETY: a mapped redistributor SGI frame of this VM.
                let _ = unsafe { uaccess::probe_mmio_write(va + rd + off, 4, u64::from(u32::MAX)) };
            }
        }
    }
}

fn gic_nonsense(platform: &Platform, hz: u32) -> bool {
    if !gic_up(platform, hz, false, "gic-nonsense") {
        return false;
    }
    let mut rng = XorShift64::new(0xBAD_5EED ^ cntpct());
    let (mut writes, mut reads, mut aborts) = (0u64, 0u64, 0u64);
    for (name, va, size) in gic_frames(platform) {
        let mut frame_aborts = 0;
        for off in (0..size).step_by(4) {
            // SAFETY: this VM's own GIC frame, device memory: writing
            // nonsense to it is the point; it holds no RAM.
            if unsafe { uaccess::probe_mmio_write(va + off, 4, rng.next_u64()) }.is_err() {
                frame_aborts += 1;
            }
            writes += 1;
        }
        for off in (0..size).step_by(4) {
            // SAFETY: as above.
            if unsafe { uaccess::probe_mmio_read(va + off, 4) }.is_err() {
                frame_aborts += 1;
            }
            reads += 1;
        }
        println!(
            "hyptest gic-nonsense: {name}: {:#x} bytes written with nonsense and read back, {frame_aborts} abort(s)",
            size
        );
        aborts += frame_aborts;
    }
    // Any size at any offset: some accesses are not allowed (the GIC
    // registers are 32-bit, a few byte or 64-bit accessible) and abort.
    let mut odd_aborts = 0;
    const ODD: u64 = 128;
    let frames = gic_frames(platform);
    for _ in 0..ODD {
        let r = rng.next_u64();
        let (_, va, size) = frames[(r % frames.len() as u64) as usize];
        let bytes = [1u8, 2, 4, 8][((r >> 8) % 4) as usize];
        // Half of them among the registers at the bottom of a frame.
        let window = if r & (1 << 61) != 0 { size.min(0x1000) } else { size };
        let off = ((r >> 16) as usize % window) & !(usize::from(bytes) - 1);
        // SAFETY: as above.
        let result = unsafe {
            if r & (1 << 60) != 0 {
                uaccess::probe_mmio_write(va + off, bytes, rng.next_u64())
            } else {
                uaccess::probe_mmio_read(va + off, bytes).map(|_| ())
            }
        };
        if result.is_err() {
            odd_aborts += 1;
        }
    }
    println!(
        "hyptest gic-nonsense: {writes} word writes and {reads} word reads ({aborts} aborted), {ODD} accesses of odd sizes ({odd_aborts} aborted)"
    );
    println!("hyptest gic-nonsense: still printing");
    // Reset the GIC as a booting kernel would, and check that it works.
    quiesce_gic(platform);
    if !gic_up(platform, hz, true, "gic-nonsense") {
        return false;
    }
    // The worst case of the nonsense for the tick, every time, after the
    // reset (arm-gic's GICv3 set-up rewrites it): the PPIs' Int_config
    // written as edge (GICD_ICFGR1 / GICR_ICFGR1). Whether PPI
    // triggers are programmable is IMPLEMENTATION DEFINED; either way the
    // timer must keep interrupting.
    if platform.gic.as_ref().is_some_and(|g| g.version == GicVersion::V2) {
        irq::gicd_write32(0xC04, u32::MAX);
    }
    for (name, va, size) in gic_frames(platform) {
        if name == "GICR" {
            for rd in (0..size).step_by(0x2_0000) {
                // SAFETY: a mapped redistributor SGI frame of this VM.
                let _ = unsafe { uaccess::probe_mmio_write(va + rd + 0x1_0C04, 4, u64::from(u32::MAX)) };
            }
        }
    }
    irq::configure(PING, 0x40, true);
    irq::set_test_hook(Some(self_sgi_hook));
    irq::send_ipi(1 << cpu::smp_processor_id(), PING);
    let ticks0 = irq::TICKS.load(Ordering::Acquire);
    let sgi = spin_until(cntvct() + ms_to_ticks(2000), || SELF_SGIS.load(Ordering::Acquire) >= 1);
    let tick = spin_until(cntvct() + ms_to_ticks(2000), || irq::TICKS.load(Ordering::Acquire) >= ticks0 + 3);
    irq::stop_tick();
    irq::set_test_hook(None);
    println!(
        "hyptest gic-nonsense: after a GIC reset: self-SGI taken: {}, tick running: {}",
        verdict(sgi),
        verdict(tick)
    );
    aborts == 0 && sgi && tick
}

// ---- vcounter ----

/// How long the first life lasts before SYSTEM_RESET.
const FIRST_LIFE_MS: u64 = 3000;
static SLEEP_FIRED: AtomicBool = AtomicBool::new(false);

fn sleep_hook(_cpu: usize, raw: u32) -> bool {
    if raw & 0x3ff != irq::timer_intid() {
        return false;
    }
    set_timer_ctl(0);
    SLEEP_FIRED.store(true, Ordering::Release);
    true
}

fn vcounter(platform: &Platform, hz: u32) -> bool {
    let (v, p) = (cntvct(), cntpct());
    println!(
        "hyptest vcounter: boot {}: virtual counter {} ms, physical {} ms",
        platform.vm_resets,
        ticks_to_ms(v),
        ticks_to_ms(p)
    );
    if platform.vm_resets == 0 {
        let small = v <= p;
        if !small {
            println!("hyptest vcounter: the virtual counter is ahead of the physical one");
            return false;
        }
        while cntvct() < ms_to_ticks(FIRST_LIFE_MS) {
            core::hint::spin_loop();
        }
        println!("hyptest vcounter: {} ms of virtual time passed; asking for PSCI SYSTEM_RESET", ticks_to_ms(cntvct()));
        psci::system_reset()
    }
    // The counter started again at the reset: its offset covers at least
    // the first life, and this life is younger than that.
    let offset = p - v.min(p);
    let restarted = v < ms_to_ticks(FIRST_LIFE_MS) && offset >= ms_to_ticks(FIRST_LIFE_MS);
    println!(
        "hyptest vcounter: after the reset: virtual {} ms, CNTVOFF {} ms: counter restarted: {}",
        ticks_to_ms(v),
        ticks_to_ms(offset),
        verdict(restarted)
    );
    // A timer deadline in virtual time, slept through in WFI: the
    // hypervisor turns it into a physical deadline using the offset.
    if !gic_up(platform, hz, false, "vcounter") {
        return false;
    }
    irq::configure(irq::timer_intid(), 0x80, false);
    irq::set_test_hook(Some(sleep_hook));
    let t0 = cntvct();
    set_timer_cval(t0 + ms_to_ticks(200));
    set_timer_ctl(CTL_ENABLE);
    // The deadline check in wfi_until is only a backstop; the timer ends the wait.
    let (fired, wakeups) = wfi_until(u64::MAX, || SLEEP_FIRED.load(Ordering::Acquire));
    let slept = ticks_to_ms(cntvct() - t0);
    irq::set_test_hook(None);
    let on_time = fired && (200..400).contains(&slept) && wakeups <= 5;
    println!(
        "hyptest vcounter: 200 ms timer in WFI: woke after {slept} ms, WFI returned {wakeups} time(s): {}",
        verdict(on_time)
    );
    restarted && on_time
}
