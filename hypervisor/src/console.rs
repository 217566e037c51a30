//! The hypervisor's own console: formatted output to the platform UART
//! behind a lock, plus an emergency path for crash reports that does not
//! take the lock (a fault may have happened while it was held; libvmbase
//! does the same). The lock is a `crate::sync::Mutex`: printing before the
//! EL2 MMU is on stops the machine with a report (boot code uses
//! `arch::aarch64::uart::early_print` then).

use crate::sync::Mutex;
use crate::vmctl::{Line, PROMPT};
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
///
/// The hypervisor's command line (`Ctrl-]` `:`, `vmctl.rs`) is kept the
/// way a shell's line editor keeps it: text printed while it is open (a
/// VM's line, a stop report from another CPU) ends the half-typed line
/// first, and the next key typed, or Enter, draws the prompt and the whole
/// line again. So a command always shows whole on the line before its
/// output.
struct Console<S: ?Sized + ByteSink + 'static> {
    /// The VM whose line is open on the terminal, if one is.
    open: Option<usize>,
    /// The command line, if open, and whether the terminal shows it now.
    command: Option<(Line, bool)>,
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
    /// Ends a VM's open line, or the shown command line, so that what
    /// follows starts a line of its own.
    fn end_open_line(&mut self) {
        if self.open.take().is_some() {
            let _ = self.write_str("\n");
        }
        if let Some((_, shown @ true)) = self.command.as_mut() {
            *shown = false;
            let _ = self.write_str("\n");
        }
    }

    /// Shows the prompt and the command line typed so far, unless the
    /// terminal shows them already.
    fn draw_command(&mut self) {
        let Some((line, shown @ false)) = self.command.as_mut() else { return };
        *shown = true;
        let line = *line;
        let _ = self.write_str(PROMPT);
        let _ = self.write_str(line.as_str());
    }

    /// The command line is open and now holds `line`; `echo` is what the
    /// terminal needs after the old line to show the new one (a typed
    /// character, a backspace sequence; nothing when it opens).
    fn command_line(&mut self, line: Line, echo: &str) {
        if self.command.is_none() {
            self.end_open_line();
            self.command = Some((line, false));
        }
        self.draw_command();
        let _ = self.write_str(echo);
        self.command = Some((line, true));
    }

    /// The command line closed, with `tail` (a newline, " (cancelled)").
    fn command_closed(&mut self, tail: &str) {
        self.draw_command();
        self.command = None;
        let _ = self.write_str(tail);
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

static CONSOLE: Mutex<Console<dyn ByteSink>> = Mutex::new(Console { open: None, command: None, sink: None });

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

/// The command line is open and holds `line`; `echo` shows the change
/// (see [`Console`]: drawn again whole first if other text came between).
#[track_caller]
pub fn command_line(line: Line, echo: &str) {
    CONSOLE.lock().command_line(line, echo);
}

/// The command line closed; `tail` ends it on the terminal.
#[track_caller]
pub fn command_closed(tail: &str) {
    CONSOLE.lock().command_closed(tail);
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

/// The VM with the input focus (`arch/aarch64/console_in.rs` moves it).
/// Only its console output reaches the terminal raw; every other VM's has
/// its control characters made visible (`VmConsole::flush`).
static FOCUS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Whether VM `id` has the input focus.
pub fn has_focus(id: usize) -> bool {
    focus() == id
}

/// The VM that has the input focus.
pub fn focus() -> usize {
    FOCUS.load(core::sync::atomic::Ordering::Acquire)
}

/// Gives VM `id` the input focus.
pub fn set_focus(id: usize) {
    FOCUS.store(id, core::sync::atomic::Ordering::Release);
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
        Console { open: None, command: None, sink: Some(Box::leak(Box::new(Screen(std::vec::Vec::new())))) }
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

    /// Types `text` into the command line as `console_in` passes it on.
    fn typed(c: &mut Console<Screen>, k: &mut crate::vmctl::Keys, text: &[u8]) {
        use crate::vmctl::Key;
        for &b in text {
            match k.input(b) {
                Key::Open => c.command_line(Line::new(), ""),
                Key::Echo(ch) => c.command_line(k.line(), core::str::from_utf8(&[ch]).unwrap()),
                Key::Erase => c.command_line(k.line(), "\x08 \x08"),
                Key::Run(_) => c.command_closed("\n"),
                Key::Cancel => c.command_closed(" (cancelled)\n"),
                Key::None => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn output_while_a_command_is_typed_ends_it_and_the_next_key_draws_it_whole() {
        let mut c = console();
        let mut k = crate::vmctl::Keys::new();
        typed(&mut c, &mut k, b"\x1d:sto");
        c.print(format_args!("el2-hyp: VM \"a\" stopped\n"));
        c.vm_text(1, "b", "a line", true);
        typed(&mut c, &mut k, b"p b");
        c.print(format_args!("el2-hyp: report\n"));
        typed(&mut c, &mut k, b"\r");
        assert_eq!(
            screen(&c),
            "el2-hyp> sto\r\nel2-hyp: VM \"a\" stopped\r\n[b] a line\r\nel2-hyp> stop b\r\n\
             el2-hyp: report\r\nel2-hyp> stop b\r\n",
            "the line is ended by the output, and drawn whole again by the next key and by Enter"
        );
    }

    #[test]
    fn an_erase_after_output_draws_the_line_then_erases() {
        let mut c = console();
        let mut k = crate::vmctl::Keys::new();
        typed(&mut c, &mut k, b"\x1d:ab");
        c.print(format_args!("x\n"));
        typed(&mut c, &mut k, b"\x7f\x1b");
        assert_eq!(screen(&c), "el2-hyp> ab\r\nx\r\nel2-hyp> ab\x08 \x08 (cancelled)\r\n");
    }

    #[test]
    fn a_vm_prompt_open_when_the_command_line_opens_is_ended_first() {
        let mut c = console();
        let mut k = crate::vmctl::Keys::new();
        c.vm_text(0, "a", "/ # ", false);
        typed(&mut c, &mut k, b"\x1d:l");
        assert_eq!(screen(&c), "[a] / # \r\nel2-hyp> l");
    }
}
