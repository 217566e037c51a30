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

/// The terminal, shared by the hypervisor and every VM. A VM's text may
/// end without a newline (a shell prompt, the echo of a key): that line
/// stays *open*, and the same VM's next text continues it without a new
/// `[name] ` prefix; anything else printed first ends it. So prefixes come
/// only at line starts, and no VM's line is ever broken by another VM's
/// bytes.
struct Console<S: ?Sized + ByteSink + 'static> {
    /// The VM whose line is open on the terminal, if one is.
    open: Option<usize>,
    sink: Option<&'static mut S>,
}

impl<S: ?Sized + ByteSink> Write for Console<S> {
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

impl<S: ?Sized + ByteSink> Console<S> {
    /// Ends a VM's open line, so that what follows starts a line of its own.
    fn end_open_line(&mut self) {
        if self.open.take().is_some() {
            let _ = self.write_str("\n");
        }
    }

    /// The hypervisor's own text.
    fn print(&mut self, args: fmt::Arguments) {
        self.end_open_line();
        let _ = self.write_fmt(args);
    }

    /// Text of VM `id`: the rest of its line if `complete`, else part of it.
    fn vm_text(&mut self, id: usize, name: &str, text: &str, complete: bool) {
        if self.open != Some(id) {
            self.end_open_line();
            let _ = write!(self, "[{name}] ");
        }
        let _ = self.write_str(text);
        if complete {
            let _ = self.write_str("\n");
            self.open = None;
        } else {
            self.open = Some(id);
        }
    }
}

static CONSOLE: Mutex<Console<dyn ByteSink>> = Mutex::new(Console { open: None, sink: None });

/// Installs the console device.
#[track_caller]
pub fn init(sink: &'static mut dyn ByteSink) {
    CONSOLE.lock().sink = Some(sink);
}

/// Prints under the console lock; used by the `println!` macro.
#[track_caller]
pub fn print(args: fmt::Arguments) {
    CONSOLE.lock().print(args);
}

/// Prints text of VM `id` (named `name`): the end of one of its lines if
/// `complete`, else a part that leaves the line open for its next text
/// (see [`Console`]). Callers make control characters visible first, but
/// for the VM that has the input focus.
#[track_caller]
pub fn vm_text(id: usize, name: &str, text: &str, complete: bool) {
    CONSOLE.lock().vm_text(id, name, text, complete);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What reached the terminal.
    struct Screen(std::vec::Vec<u8>);
    impl ByteSink for Screen {
        fn put(&mut self, b: u8) {
            self.0.push(b);
        }
    }

    fn console() -> Console<Screen> {
        Console { open: None, sink: Some(Box::leak(Box::new(Screen(std::vec::Vec::new())))) }
    }

    fn screen(c: &Console<Screen>) -> String {
        String::from_utf8(c.sink.as_ref().unwrap().0.clone()).unwrap()
    }

    #[test]
    fn a_prompt_stays_open_and_its_echo_continues_it() {
        let mut c = console();
        c.vm_text(0, "linux", "/ # ", false);
        assert_eq!(screen(&c), "[linux] / # ", "the prompt shows at once, no newline");
        c.vm_text(0, "linux", "l", false);
        c.vm_text(0, "linux", "s", true);
        assert_eq!(screen(&c), "[linux] / # ls\r\n", "the echo continues the line, no prefix inside it");
    }

    #[test]
    fn other_text_ends_an_open_line_first() {
        let mut c = console();
        c.vm_text(0, "a", "prompt> ", false);
        c.vm_text(1, "b", "a whole line", true);
        c.print(format_args!("el2-hyp: hello\n"));
        c.vm_text(0, "a", "typed", true);
        assert_eq!(screen(&c), "[a] prompt> \r\n[b] a whole line\r\nel2-hyp: hello\r\n[a] typed\r\n");
    }

    #[test]
    fn whole_lines_are_prefixed_once() {
        let mut c = console();
        c.vm_text(2, "gk", "one", true);
        c.vm_text(2, "gk", "two", true);
        assert_eq!(screen(&c), "[gk] one\r\n[gk] two\r\n");
    }
}
