//! Console output of a VM made harmless for the host's terminal: control
//! characters shown as text, so that a VM cannot move the cursor, erase,
//! retitle the window or draw a line that looks like another VM's or the
//! hypervisor's (ESC `[2K`, CR, BS, OSC sequences...).
//!
//! The notation is `cat -v`'s (GNU coreutils): a C0 control `0x00..0x1f`
//! prints as `^` and the character 0x40 above it (ESC is `^[`, BS `^H`,
//! BEL `^G`, NUL `^@`), DEL as `^?`, a C1 control U+0080..U+009F (which
//! some terminals obey: U+009B is CSI) as `M-^` and its C0 twin's letter.
//! Tab stays a tab. A byte that is not part of valid UTF-8 prints as
//! `\xNN`. (The line buffer already took newlines and carriage returns
//! out: the glue ends each line itself.)

use alloc::string::String;
use core::fmt::Write;

/// `line` with every control character made visible.
pub fn visible(line: &[u8]) -> String {
    let mut out = String::with_capacity(line.len());
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c as u32 {
                0x09 => out.push('\t'),
                b @ 0x00..=0x1f => {
                    out.push('^');
                    out.push(char::from(b as u8 + 0x40));
                }
                0x7f => out.push_str("^?"),
                b @ 0x80..=0x9f => {
                    out.push_str("M-^");
                    out.push(char::from((b - 0x80) as u8 + 0x40));
                }
                _ => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_and_tabs_pass_unchanged() {
        assert_eq!(visible(b"hello, world\tok"), "hello, world\tok");
        assert_eq!(visible("gr\u{fc}\u{df}e \u{2713}".as_bytes()), "gr\u{fc}\u{df}e \u{2713}");
        assert_eq!(visible(b""), "");
    }

    #[test]
    fn c0_controls_and_del_are_shown_as_caret_letters() {
        // A forged hypervisor line: erase the line, go to column 1, print.
        assert_eq!(visible(b"\x1b[2K\x1b[1Gel2-hyp: fake"), "^[[2K^[[1Gel2-hyp: fake");
        assert_eq!(visible(b"a\x08b\x07\x00\x7f"), "a^Hb^G^@^?");
        // OSC 0 (set the window title), ended by BEL.
        assert_eq!(visible(b"\x1b]0;owned\x07"), "^[]0;owned^G");
        assert_eq!(visible(b"\x01\x1a\x1c\x1f"), "^A^Z^\\^_");
        // Every C0 control but tab is escaped; no raw control survives.
        for b in (0u8..0x20).chain([0x7f]) {
            let s = visible(&[b]);
            assert_eq!(s.chars().any(|c| c.is_control()), b == b'\t', "byte {b:#x} -> {s:?}");
        }
    }

    #[test]
    fn c1_controls_and_broken_utf8_are_shown_too() {
        // U+009B (CSI) in UTF-8 is C2 9B.
        assert_eq!(visible("\u{9b}2J".as_bytes()), "M-^[2J");
        // A lone 0x9b byte is not UTF-8.
        assert_eq!(visible(b"a\x9b2J\xff"), "a\\x9b2J\\xff");
    }
}
