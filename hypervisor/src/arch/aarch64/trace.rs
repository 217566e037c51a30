//! The hypervisor's structured-event trace (feature `trace`): a `defmt`
//! global logger that appends each CPU's frames to that CPU's own byte
//! ring (shared::trace::ByteRing), the exit event `run_vcpu` logs, and the
//! dump CPU 0 prints just before the machine powers off.
//!
//! No lock on the hot path: a CPU only ever writes its own ring, and EL2
//! runs with interrupts masked, so a frame cannot be interrupted by
//! another one on the same CPU. (A synchronous exception while a frame is
//! being written is a hypervisor bug; a frame logged then is dropped, not
//! interleaved, see [`CpuLog::depth`].)

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::switch::ExitKind;
use super::{MAX_CPUS, smp, timer};
use crate::println;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use aarch64_cpu::registers::{ESR_EL2, Readable};
use shared::trace::{ByteRing, LINE_PREFIX};

/// Ring bytes per CPU: an exit event is about 24 encoded bytes, so this
/// keeps some 40 000 exits (a traced guest kernel's own dump at power-off
/// alone costs about 10 000 console exits per guest CPU).
const RING_BYTES: usize = 1024 * 1024;

/// One CPU's log: its ring and the encoder of the frame in progress.
struct CpuLog {
    ring: UnsafeCell<ByteRing<RING_BYTES>>,
    encoder: UnsafeCell<defmt::Encoder>,
    /// Frames being logged on this CPU: 1 inside a frame; more only if a
    /// frame was started from an exception taken in the middle of another
    /// (that inner frame is not written).
    depth: AtomicUsize,
}

// SAFETY: each CPU touches only its own `CpuLog` (indexed by its CPU
// index) with interrupts masked, except `dump`, which runs when every other
// CPU has left its run loop.
unsafe impl Sync for CpuLog {}

static LOGS: [CpuLog; MAX_CPUS] = [const {
    CpuLog {
        ring: UnsafeCell::new(ByteRing::new()),
        encoder: UnsafeCell::new(defmt::Encoder::new()),
        depth: AtomicUsize::new(0),
    }
}; MAX_CPUS];

fn this_cpu_log() -> &'static CpuLog {
    &LOGS[smp::cpu_index() % MAX_CPUS]
}

defmt::timestamp!("{=u64}", timer::now());

#[defmt::global_logger]
struct Logger;

// SAFETY: `acquire` only touches the calling CPU's log, and `depth` keeps
// a nested frame from writing into the outer one.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        let log = this_cpu_log();
        if log.depth.fetch_add(1, Ordering::Relaxed) == 0 {
            // SAFETY: depth 0 -> 1: no other frame is using this CPU's
            // encoder and ring.
            let (enc, ring) = unsafe { (&mut *log.encoder.get(), &mut *log.ring.get()) };
            enc.start_frame(|b| ring.write(b));
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        let log = this_cpu_log();
        if log.depth.fetch_sub(1, Ordering::Relaxed) == 1 {
            // SAFETY: the caller acquired, and this is the outermost frame.
            let (enc, ring) = unsafe { (&mut *log.encoder.get(), &mut *log.ring.get()) };
            enc.end_frame(|b| ring.write(b));
        }
    }

    unsafe fn write(bytes: &[u8]) {
        let log = this_cpu_log();
        if log.depth.load(Ordering::Relaxed) == 1 {
            // SAFETY: as in `release`.
            let (enc, ring) = unsafe { (&mut *log.encoder.get(), &mut *log.ring.get()) };
            enc.write(bytes, |b| ring.write(b));
        }
    }
}

/// Logs one exit of `v`: `exit_at` is the counter read right after the
/// guest left; the frame's timestamp is now, when the exit was handled.
pub fn record(vm: &Vm, v: &Vcpu, kind: ExitKind, exit_at: u64) {
    let esr = if matches!(kind, ExitKind::Sync) { ESR_EL2.get() as u32 } else { 0 };
    let duration = timer::now().saturating_sub(exit_at).min(u64::from(u32::MAX)) as u32;
    defmt::println!(
        "exit vm={=u8} vcpu={=u8} reason={} esr={=u32:#x} duration={=u32}",
        vm.id as u8,
        v.index as u8,
        v.stats.last(),
        esr,
        duration
    );
}

/// Where the image runs. defmt's frame index is the address of a symbol
/// in the `.defmt` section truncated to 16 bits (`&SYM as *const u8 as
/// u16`), and in this position-independent image that address is
/// relocated by the load address: the indices are the linked ones only if
/// the image runs at a multiple of 64 KiB (the arm64 boot protocol's
/// 2 MiB alignment). The dump says where it ran, and the host decoder
/// refuses a dump from elsewhere (docs/tracing.md).
fn image_base() -> usize {
    unsafe extern "C" {
        /// The first byte of the image (image.ld).
        safe static __image_start: u8;
    }
    &raw const __image_start as usize
}

/// Prints every CPU's ring (called once, on the way to power-off, when
/// the other CPUs have left their run loops).
pub fn dump() {
    for (cpu, log) in LOGS.iter().enumerate() {
        // SAFETY: every other CPU has finished its run loop (boot.rs
        // waits for them), and this one is not inside a frame.
        let ring = unsafe { &*log.ring.get() };
        if ring.is_empty() {
            continue;
        }
        println!(
            "{LINE_PREFIX}begin hyp cpu={cpu} bytes={} dropped={} base={:#x} cntfrq={}",
            ring.len(),
            ring.dropped(),
            image_base(),
            timer::frequency()
        );
        ring.hex_lines(|l| println!("{LINE_PREFIX}{l}"));
        println!("{LINE_PREFIX}end hyp cpu={cpu}");
    }
}
