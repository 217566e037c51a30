//! The console tty's line discipline: Linux's `n_tty`
//! (drivers/tty/n_tty.c; termios(3) "Canonical and noncanonical mode"),
//! steered by a `struct termios`: canonical or raw input, echo, and the
//! signal characters (ISIG: ^C SIGINT, ^\ SIGQUIT, ^Z SIGTSTP, which
//! the tty sends to its foreground process group).
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

/// `c_lflag` bits (include/uapi/asm-generic/termbits.h).
pub const ISIG: u32 = 0o1;
pub const ICANON: u32 = 0o2;
pub const ECHO: u32 = 0o10;
pub const ECHOCTL: u32 = 0o1000;
pub const NOFLSH: u32 = 0o200;
/// `c_iflag` bits.
pub const INLCR: u32 = 0o100;
pub const IGNCR: u32 = 0o200;
pub const ICRNL: u32 = 0o400;
/// `c_cc` indices.
pub const VINTR: usize = 0;
pub const VQUIT: usize = 1;
pub const VERASE: usize = 2;
pub const VKILL: usize = 3;
pub const VEOF: usize = 4;
pub const VTIME: usize = 5;
pub const VMIN: usize = 6;
pub const VSUSP: usize = 10;
/// `NCCS` of the kernel's `struct termios`.
pub const NCCS: usize = 19;

/// The kernel's `struct termios` (36 bytes: four flag words, the line
/// discipline number, 19 control characters), as TCGETS/TCSETS move it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; NCCS],
}

impl Default for Termios {
    /// A login terminal's settings (`tty_std_termios`): ICRNL; OPOST|ONLCR;
    /// B38400|CS8|CREAD|HUPCL; ISIG|ICANON|ECHO|ECHOE|ECHOK|ECHOCTL|ECHOKE|
    /// IEXTEN; `INIT_C_CC` (^C ^\ DEL ^U ^D, VTIME 0, VMIN 1, ..., ^Z).
    fn default() -> Self {
        Termios {
            iflag: 0o000400,
            oflag: 0o000005,
            cflag: 0o002277,
            lflag: 0o105073,
            line: 0,
            cc: [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0],
        }
    }
}

impl Termios {
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut t = [0u8; 36];
        for (i, w) in [self.iflag, self.oflag, self.cflag, self.lflag].into_iter().enumerate() {
            t[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        t[16] = self.line;
        t[17..36].copy_from_slice(&self.cc);
        t
    }
    pub fn from_bytes(t: &[u8; 36]) -> Self {
        let w = |i: usize| u32::from_le_bytes(t[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let mut cc = [0u8; NCCS];
        cc.copy_from_slice(&t[17..36]);
        Termios { iflag: w(0), oflag: w(1), cflag: w(2), lflag: w(3), line: t[16], cc }
    }
}

/// `SIGINT`, `SIGQUIT`, `SIGTSTP`: what ISIG's characters send.
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGTSTP: u32 = 20;

/// The line discipline state of one tty.
#[derive(Default, Debug)]
pub struct NTty {
    /// The settings.
    pub termios: Termios,
    /// Non-canonical input not yet read.
    raw: VecDeque<u8>,
    /// Signals the input asked for (ISIG), for the tty to send to its
    /// foreground group.
    signals: Vec<u32>,
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
    pub fn new() -> Self {
        NTty::default()
    }

    /// `n_tty_set_termios`: new settings; input already typed moves
    /// between the line buffer and the raw queue when ICANON changes;
    /// `flush` (TCSETSF) drops it.
    pub fn set_termios(&mut self, t: Termios, flush: bool) {
        let was_canon = self.canon();
        self.termios = t;
        if flush {
            self.flush_input();
        } else if was_canon && !self.canon() {
            for l in self.lines.drain(..) {
                self.raw.extend(l);
            }
            self.raw.extend(self.line.drain(..));
        } else if !was_canon && self.canon() {
            self.line.extend(self.raw.drain(..));
        }
        self.held = self.line.len() + self.lines.iter().map(Vec::len).sum::<usize>();
    }

    fn canon(&self) -> bool {
        self.termios.lflag & ICANON != 0
    }

    fn echoing(&self) -> bool {
        self.termios.lflag & ECHO != 0
    }

    /// Drops all typed input (`n_tty_flush_buffer`; TCSETSF, a signal
    /// character without NOFLSH).
    pub fn flush_input(&mut self) {
        self.lines.clear();
        self.line.clear();
        self.raw.clear();
        self.held = 0;
    }

    /// Takes the signals the input asked for, oldest first.
    pub fn take_signals(&mut self) -> Vec<u32> {
        core::mem::take(&mut self.signals)
    }

    /// `n_tty_receive_buf`: process bytes from the driver as the termios
    /// says.
    pub fn receive_buf(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.receive_char(b);
        }
    }

    fn receive_char(&mut self, b: u8) {
        let t = self.termios;
        let c = match b {
            b'\r' if t.iflag & IGNCR != 0 => return,
            b'\r' if t.iflag & ICRNL != 0 => b'\n',
            b'\n' if t.iflag & INLCR != 0 => b'\r',
            b => b,
        };
        if t.lflag & ISIG != 0 {
            let sig = [(VINTR, SIGINT), (VQUIT, SIGQUIT), (VSUSP, SIGTSTP)]
                .into_iter()
                .find(|&(i, _)| t.cc[i] != 0 && t.cc[i] == c)
                .map(|(_, s)| s);
            if let Some(sig) = sig {
                // isig(): flush unless NOFLSH, echo the character (^C).
                if t.lflag & NOFLSH == 0 {
                    self.flush_input();
                }
                if self.echoing() {
                    self.echo_ctl(c);
                }
                self.signals.push(sig);
                return;
            }
        }
        if !self.canon() {
            if self.raw.len() < N_TTY_BUF_SIZE {
                self.raw.push_back(c);
                if self.echoing() {
                    self.echo.push(c);
                }
            } else {
                self.overruns += 1;
            }
            return;
        }
        let erase = |x: u8| x == t.cc[VERASE] || x == BACKSPACE;
        match c {
            c if erase(c) => {
                if self.line.pop().is_some() {
                    self.held -= 1;
                    if self.echoing() {
                        self.echo.extend_from_slice(b"\x08 \x08"); // ECHOE
                    }
                }
            }
            c if c == t.cc[VKILL] => {
                if self.echoing() {
                    for _ in 0..self.line.len() {
                        self.echo.extend_from_slice(b"\x08 \x08"); // ECHOK, ECHOKE
                    }
                }
                self.held -= self.line.len();
                self.line.clear();
            }
            c if c == t.cc[VEOF] => {
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
                if self.echoing() {
                    self.echo.push(c);
                }
                if c == b'\n' {
                    self.lines.push_back(core::mem::take(&mut self.line));
                }
            }
        }
    }

    /// ECHOCTL: a control character echoes as `^X`.
    fn echo_ctl(&mut self, c: u8) {
        if self.termios.lflag & ECHOCTL != 0 && c < 0x20 {
            self.echo.extend_from_slice(&[b'^', c + 0x40]);
        } else {
            self.echo.push(c);
        }
    }

    /// Whether a `read` would return now (data or end of file; in raw
    /// mode with VMIN 0, always).
    pub fn readable(&self) -> bool {
        if self.canon() { !self.lines.is_empty() } else { !self.raw.is_empty() || self.termios.cc[VMIN] == 0 }
    }

    /// `n_tty_read`: in canonical mode up to `max` bytes of the oldest
    /// finished line (the rest stays for the next read), `Some(empty)` being
    /// end of file; in raw mode what has been typed, up to `max` (VMIN 1;
    /// VMIN 0 returns at once, VTIME is not kept). `None` means the caller
    /// must sleep until [`Self::readable`].
    pub fn read(&mut self, max: usize) -> Option<Vec<u8>> {
        if !self.canon() {
            if self.raw.is_empty() {
                return (self.termios.cc[VMIN] == 0).then(Vec::new);
            }
            let n = max.min(self.raw.len());
            return Some(self.raw.drain(..n).collect());
        }
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

    #[test]
    fn isig_characters_become_signals_and_flush_the_line() {
        let mut t = NTty::new();
        t.receive_buf(b"half a line\x03");
        assert_eq!(t.take_signals(), [SIGINT]);
        assert!(t.take_echo().ends_with(b"^C"));
        t.receive_buf(b"\n");
        assert_eq!(t.read(100).unwrap(), b"\n", "the typed half was flushed");
        t.receive_buf(b"\x1a\x1c");
        assert_eq!(t.take_signals(), [SIGTSTP, SIGQUIT]);
        let mut raw = t.termios;
        raw.lflag &= !ISIG;
        t.set_termios(raw, false);
        t.receive_buf(b"\x03\n");
        assert!(t.take_signals().is_empty());
        assert_eq!(t.read(100).unwrap(), b"\x03\n");
    }

    #[test]
    fn raw_mode_reads_each_byte_without_echo_and_canonical_input_carries_over() {
        let mut t = NTty::new();
        t.receive_buf(b"ab");
        let mut raw = t.termios;
        raw.lflag &= !(ICANON | ECHO);
        t.set_termios(raw, false);
        t.take_echo();
        t.receive_buf(b"c");
        assert!(!t.has_echo());
        assert!(t.readable());
        assert_eq!(t.read(2).unwrap(), b"ab");
        assert_eq!(t.read(8).unwrap(), b"c");
        assert_eq!(t.read(8), None, "VMIN 1: wait");
        raw.cc[VMIN] = 0;
        t.set_termios(raw, false);
        assert_eq!(t.read(8), Some(alloc::vec![]), "VMIN 0: return at once");
        t.set_termios(Termios::default(), false);
        t.receive_buf(b"x\n");
        assert_eq!(t.read(8).unwrap(), b"x\n");
        assert_eq!(Termios::from_bytes(&t.termios.to_bytes()), t.termios);
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
