//! The console tty's line discipline: Linux's `n_tty` in canonical mode
//! (drivers/tty/n_tty.c; termios(3) "Canonical and noncanonical mode").
//!
//! The driver's interrupt top half only moves received bytes into a flip
//! buffer; a tasklet hands them to [`NTty::receive_buf`], which edits the
//! current line (ERASE, KILL), ends it on NL or EOF, and queues what to
//! echo. `read(2)` on the console takes one finished line at a time (or a
//! part of it if the buffer is small), and an EOF (`^D`) on an empty line
//! reads as end of file once. Echo is written from process context (a
//! workqueue), since the console lock is not taken in interrupt context.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// `N_TTY_BUF_SIZE`: bytes the line discipline holds (lines not yet read
/// plus the line being edited); input beyond it is dropped, as n_tty does.
pub const N_TTY_BUF_SIZE: usize = 4096;

/// `VEOF` (`^D`).
pub const EOF_CHAR: u8 = 0x04;
/// `VERASE`: DEL, what terminals send for backspace.
pub const ERASE_CHAR: u8 = 0x7f;
/// `^H`, also treated as an erase.
pub const BACKSPACE: u8 = 0x08;
/// `VKILL` (`^U`): erase the whole line.
pub const KILL_CHAR: u8 = 0x15;

/// The line discipline state of one tty.
#[derive(Default, Debug)]
pub struct NTty {
    /// Finished lines, oldest first; an empty line here is an EOF mark.
    lines: VecDeque<Vec<u8>>,
    /// The line being edited.
    line: Vec<u8>,
    /// Bytes held in `lines` and `line`.
    held: usize,
    /// Bytes to echo, oldest first.
    echo: Vec<u8>,
    /// Bytes dropped because the buffer was full.
    pub overruns: u64,
}

impl NTty {
    pub const fn new() -> Self {
        NTty { lines: VecDeque::new(), line: Vec::new(), held: 0, echo: Vec::new(), overruns: 0 }
    }

    /// `n_tty_receive_buf`: process bytes from the driver (ICRNL, ECHO,
    /// ECHOE, ECHOK and ICANON set, as a login terminal has them).
    pub fn receive_buf(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.receive_char(b);
        }
    }

    fn receive_char(&mut self, b: u8) {
        let c = if b == b'\r' { b'\n' } else { b }; // ICRNL
        match c {
            ERASE_CHAR | BACKSPACE => {
                if self.line.pop().is_some() {
                    self.held -= 1;
                    self.echo.extend_from_slice(b"\x08 \x08"); // ECHOE
                }
            }
            KILL_CHAR => {
                for _ in 0..self.line.len() {
                    self.echo.extend_from_slice(b"\x08 \x08"); // ECHOK, ECHOKE
                }
                self.held -= self.line.len();
                self.line.clear();
            }
            EOF_CHAR => {
                // The line so far is readable as it is, without a newline;
                // on an empty line, this is an end-of-file mark.
                self.lines.push_back(core::mem::take(&mut self.line));
            }
            _ => {
                // Keep room for the newline that ends the line.
                if self.held + 1 >= N_TTY_BUF_SIZE && c != b'\n' {
                    self.overruns += 1;
                    return;
                }
                self.held += 1;
                self.line.push(c);
                self.echo.push(c);
                if c == b'\n' {
                    self.lines.push_back(core::mem::take(&mut self.line));
                }
            }
        }
    }

    /// Whether a `read` would return now (data or end of file).
    pub fn readable(&self) -> bool {
        !self.lines.is_empty()
    }

    /// `n_tty_read` in canonical mode: up to `max` bytes of the oldest
    /// finished line (the rest stays for the next read); `Some(empty)` is end
    /// of file; `None` means the caller must sleep until [`Self::readable`].
    pub fn read(&mut self, max: usize) -> Option<Vec<u8>> {
        let first = self.lines.front_mut()?;
        if first.is_empty() {
            self.lines.pop_front();
            return Some(Vec::new());
        }
        if max == 0 {
            return Some(Vec::new());
        }
        let out = if first.len() <= max {
            self.lines.pop_front().unwrap_or_default()
        } else {
            let rest = first.split_off(max);
            core::mem::replace(first, rest)
        };
        self.held -= out.len();
        Some(out)
    }

    /// Takes the bytes waiting to be echoed.
    pub fn take_echo(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.echo)
    }

    /// Whether there is echo to write.
    pub fn has_echo(&self) -> bool {
        !self.echo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn a_line_is_readable_only_when_it_ends() {
        let mut t = NTty::new();
        t.receive_buf(b"hello");
        assert!(!t.readable());
        assert_eq!(t.read(100), None);
        t.receive_buf(b"\r");
        assert!(t.readable());
        assert_eq!(t.read(100).unwrap(), b"hello\n");
        assert!(!t.readable());
        assert_eq!(t.take_echo(), b"hello\n");
    }

    #[test]
    fn erase_and_kill_edit_the_line() {
        let mut t = NTty::new();
        t.receive_buf(b"heyy\x7f\x08llo\n");
        assert_eq!(t.read(100).unwrap(), b"hello\n");
        t.receive_buf(b"junk\x15ok\n");
        assert_eq!(t.read(100).unwrap(), b"ok\n");
        // Erase on an empty line does nothing, and echoes nothing.
        t.take_echo();
        t.receive_buf(b"\x7f");
        assert!(!t.has_echo());
        assert_eq!(t.take_echo(), b"");
    }

    #[test]
    fn eof_on_an_empty_line_reads_as_end_of_file_once() {
        let mut t = NTty::new();
        t.receive_buf(b"\x04");
        assert_eq!(t.read(10), Some(vec![]));
        assert_eq!(t.read(10), None, "the EOF mark is consumed");
        // EOF after text hands the text over without a newline.
        t.receive_buf(b"abc\x04");
        assert_eq!(t.read(10).unwrap(), b"abc");
        assert_eq!(t.read(10), None);
    }

    #[test]
    fn a_small_buffer_reads_a_line_in_parts() {
        let mut t = NTty::new();
        t.receive_buf(b"abcdef\nxy\n");
        assert_eq!(t.read(4).unwrap(), b"abcd");
        assert_eq!(t.read(4).unwrap(), b"ef\n", "a read never crosses a line end");
        assert_eq!(t.read(4).unwrap(), b"xy\n");
        assert_eq!(t.held, 0);
    }

    #[test]
    fn input_beyond_the_buffer_is_dropped_but_lines_still_end() {
        let mut t = NTty::new();
        t.receive_buf(&[b'x'; N_TTY_BUF_SIZE + 100]);
        assert!(t.overruns > 100);
        t.receive_buf(b"\n");
        let l = t.read(usize::MAX).unwrap();
        assert_eq!(l.len(), N_TTY_BUF_SIZE);
        assert_eq!(*l.last().unwrap(), b'\n');
        // Reading frees the space again.
        t.receive_buf(b"more\n");
        assert_eq!(t.read(100).unwrap(), b"more\n");
    }

    /// Random input against a simple model of canonical mode.
    #[test]
    fn random_input_matches_a_model() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = [b'a', b'b', b'\n', b'\r', ERASE_CHAR, KILL_CHAR, EOF_CHAR];
        for _ in 0..200 {
            let mut t = NTty::new();
            let (mut model_lines, mut model_line): (Vec<Vec<u8>>, Vec<u8>) = (Vec::new(), Vec::new());
            for _ in 0..(next() % 64) {
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                t.receive_buf(&[c]);
                match c {
                    b'\n' | b'\r' => {
                        model_line.push(b'\n');
                        model_lines.push(core::mem::take(&mut model_line));
                    }
                    ERASE_CHAR => {
                        model_line.pop();
                    }
                    KILL_CHAR => model_line.clear(),
                    EOF_CHAR => model_lines.push(core::mem::take(&mut model_line)),
                    _ => model_line.push(c),
                }
            }
            for want in &model_lines {
                assert_eq!(t.read(usize::MAX).as_ref(), Some(want));
            }
            assert_eq!(t.read(usize::MAX), None);
            assert_eq!(t.held, model_line.len());
        }
    }
}
