//! The hypervisor's own console: formatted output to the platform UART
//! behind a lock, plus an emergency path for crash reports that does not
//! take the lock (a fault may have happened while it was held; libvmbase
//! does the same). The lock is a `crate::sync::Mutex`: printing before the
//! EL2 MMU is on stops the machine with a report (boot code uses
//! `arch::aarch64::uart::early_print` then).

use crate::sync::Mutex;
use core::fmt::{self, Write};

/// Something that can send bytes (a UART driver, or a test buffer).
pub trait ByteSink: Send {
    /// Sends one byte, waiting until the device can take it.
    fn put(&mut self, b: u8);
}

/// Discards everything: the console before a UART is known.
pub struct NullSink;
impl ByteSink for NullSink {
    fn put(&mut self, _b: u8) {}
}

struct Console {
    sink: Option<&'static mut dyn ByteSink>,
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(sink) = self.sink.as_mut() {
            for b in s.bytes() {
                if b == b'\n' {
                    sink.put(b'\r');
                }
                sink.put(b);
            }
        }
        Ok(())
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console { sink: None });

/// Installs the console device.
#[track_caller]
pub fn init(sink: &'static mut dyn ByteSink) {
    CONSOLE.lock().sink = Some(sink);
}

/// Prints under the console lock; used by the `println!` macro.
#[track_caller]
pub fn print(args: fmt::Arguments) {
    let _ = CONSOLE.lock().write_fmt(args);
}

/// Prints without waiting for the lock. Only for crash reports: output may
/// interleave with a print that was under way.
// A named exception to the crate's `deny(unsafe_code)`: a crash report
// must not wait for a lock the crashed code may hold (as libvmbase's
// emergency console); why forcing it is sound is below.
#[allow(unsafe_code)]
pub fn emergency_print(args: fmt::Arguments) {
    // SAFETY: `CONSOLE` is a spin lock around plain data; forcing it open
    // can only interleave bytes on the wire, and the crash path never
    // returns to the interrupted holder.
    unsafe { CONSOLE.force_unlock() };
    print(args);
}

/// Prints a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}
