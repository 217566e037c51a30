//! The guest kernel's event trace (feature `trace`): a `defmt` global
//! logger that appends each CPU's frames to that CPU's byte ring
//! (shared::trace::ByteRing), and the dump `psci::system_off` prints on
//! the console before the VM powers off (`el2-trace: begin gk ...` lines,
//! docs/tracing.md).
//!
//! No lock on the hot path: a CPU writes only its own ring, with its
//! interrupts masked from `acquire` to `release`, so a frame is never
//! interleaved with another.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::MAX_CPUS;
use super::cpu::{local_irq_restore, local_irq_save, smp_processor_id};
use super::irq::{cntfrq, read_cntvct};
use crate::println;
use shared::trace::{ByteRing, LINE_PREFIX};

/// Ring bytes per CPU: some 300 events. Small on purpose: the dump goes
/// out through the emulated UART, one trapped write per character.
const RING_BYTES: usize = 4 * 1024;

/// One CPU's log: its ring, the encoder of the frame in progress and the
/// interrupt mask to restore when the frame ends.
struct CpuLog {
    ring: UnsafeCell<ByteRing<RING_BYTES>>,
    encoder: UnsafeCell<defmt::Encoder>,
    /// Frames begun on this CPU: 1 inside a frame; more only if a frame
    /// was begun by a synchronous exception in the middle of another
    /// (that inner frame is not written).
    depth: AtomicUsize,
    daif: AtomicU64,
}

// SAFETY: each CPU touches only its own `CpuLog`, with interrupts masked;
// `dump` reads every ring once, on the way to power-off.
unsafe impl Sync for CpuLog {}

static LOGS: [CpuLog; MAX_CPUS] = [const {
    CpuLog {
        ring: UnsafeCell::new(ByteRing::new()),
        encoder: UnsafeCell::new(defmt::Encoder::new()),
        depth: AtomicUsize::new(0),
        daif: AtomicU64::new(0),
    }
}; MAX_CPUS];

fn this_cpu_log() -> &'static CpuLog {
    &LOGS[smp_processor_id() % MAX_CPUS]
}

defmt::timestamp!("{=u64}", read_cntvct());

#[defmt::global_logger]
struct Logger;

// SAFETY: `acquire` masks interrupts before it touches the calling CPU's
// log, and `depth` keeps a nested frame out of the outer one.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        let daif = local_irq_save();
        let log = this_cpu_log();
        if log.depth.fetch_add(1, Ordering::Relaxed) == 0 {
            log.daif.store(daif, Ordering::Relaxed);
            // SAFETY: depth 0 -> 1 with interrupts masked: nothing else
            // uses this CPU's encoder and ring.
            let (enc, ring) = unsafe { (&mut *log.encoder.get(), &mut *log.ring.get()) };
            enc.start_frame(|b| ring.write(b));
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        let log = this_cpu_log();
        if log.depth.fetch_sub(1, Ordering::Relaxed) == 1 {
            // SAFETY: the caller acquired; this is the outermost frame.
            let (enc, ring) = unsafe { (&mut *log.encoder.get(), &mut *log.ring.get()) };
            enc.end_frame(|b| ring.write(b));
            local_irq_restore(log.daif.load(Ordering::Relaxed));
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

/// Prints every CPU's ring (once, on the way to power-off).
pub fn dump() {
    for (cpu, log) in LOGS.iter().enumerate() {
        // SAFETY: read-only; another CPU still logging could at worst tear
        // its newest frame, which the host decoder skips.
        let ring = unsafe { &*log.ring.get() };
        if ring.is_empty() {
            continue;
        }
        println!(
            "{LINE_PREFIX}begin gk cpu={cpu} bytes={} dropped={} base={:#x} cntfrq={}",
            ring.len(),
            ring.dropped(),
            image_base(),
            cntfrq()
        );
        ring.hex_lines(|l| println!("{LINE_PREFIX}{l}"));
        println!("{LINE_PREFIX}end gk cpu={cpu}");
    }
}
