//! The kernel console: formatted output through whatever device the DTB
//! named (`/chosen/stdout-path`), behind a spin lock taken irqsave (class
//! `sync::CONSOLE`, the innermost lock): a line is printed whole, and an
//! interrupt's handler never finds its own CPU holding the lock (Linux's
//! `uart_port->lock`, taken with `spin_lock_irqsave`).

use core::fmt::{self, Write};

use crate::sync::{self, SpinLock};

/// A byte-at-a-time output device.
pub trait ByteSink: Send {
    /// Sends one byte, waiting until the device takes it.
    fn put(&mut self, b: u8);
}

struct Console {
    sink: Option<&'static mut dyn ByteSink>,
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(sink) = self.sink.as_mut() {
            for b in s.bytes() {
                sink.put(b);
            }
        }
        Ok(())
    }
}

static CONSOLE: SpinLock<Console> = SpinLock::new(&sync::CONSOLE, Console { sink: None });

/// Installs the console device.
pub fn init(sink: &'static mut dyn ByteSink) {
    CONSOLE.lock_irqsave().sink = Some(sink);
}

/// Prints under the console lock.
pub fn print(args: fmt::Arguments) {
    let _ = CONSOLE.lock_irqsave().write_fmt(args);
}

/// Writes raw bytes (a user program's output) under the console lock.
pub fn write_bytes(b: &[u8]) {
    if let Some(sink) = CONSOLE.lock_irqsave().sink.as_mut() {
        for &c in b {
            sink.put(c);
        }
    }
}

/// Prints without taking the lock (trap, panic and lockdep reports only).
// A named exception to the crate's `deny(unsafe_code)`: a crash report
// must not wait for a lock the crashed code may hold (libvmbase's
// emergency console does the same); why bypassing it is sound is below.
#[allow(unsafe_code)]
pub fn emergency_print(args: fmt::Arguments) {
    // SAFETY: the lock guards a byte sink: using it beside a holder can
    // only interleave output, and the callers never return to the
    // interrupted holder (they power off).
    let _ = unsafe { CONSOLE.force_get() }.write_fmt(args);
}

/// Prints a line to the kernel console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
