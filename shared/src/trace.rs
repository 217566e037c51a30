//! Plumbing of the structured-event trace (the `trace` features of the
//! hypervisor and the guest kernel, `docs/tracing.md`): each CPU's
//! `defmt` global logger appends its encoded frames to a [`ByteRing`], and
//! at power-off the ring is printed as [`dump`] lines that the host tool
//! `el2-trace` decodes with `defmt-decoder` and the image's ELF.
//!
//! Frames are rzCOBS-encoded by `defmt::Encoder`, so a frame never holds
//! a zero byte and each one ends in one: when a ring wraps, the host drops
//! the bytes up to the first zero (a torn frame) and decodes the rest.
//!
//! Dump format (each line may carry a prefix, such as a VM's `[name] `):
//!
//! ```text
//! el2-trace: begin hyp cpu=0 bytes=812 dropped=0 cntfrq=1000000000
//! el2-trace: 0b5c3a0000000000d80200000000005a00000100...
//! el2-trace: end hyp cpu=0
//! ```
//!
//! The second word names the program whose ELF holds the frames' format
//! strings (`hyp` for the hypervisor, `gk` for the guest kernel).

#![deny(unsafe_code)]

/// Prefix of every dump line.
pub const LINE_PREFIX: &str = "el2-trace: ";
/// Bytes of ring per dump line (twice as many hex digits).
pub const LINE_BYTES: usize = 32;

/// A ring of the newest `N` bytes written: when full, the oldest bytes are
/// overwritten and counted as dropped.
pub struct ByteRing<const N: usize> {
    buf: [u8; N],
    /// Bytes written since the start.
    total: u64,
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self { buf: [0; N], total: 0 }
    }

    /// Appends `bytes`, overwriting the oldest when full.
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.buf[(self.total % N as u64) as usize] = b;
            self.total += 1;
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.total.min(N as u64) as usize
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Bytes overwritten before they could be dumped.
    pub fn dropped(&self) -> u64 {
        self.total.saturating_sub(N as u64)
    }

    /// The held bytes, oldest first, as two slices.
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        if self.total > N as u64 {
            let start = (self.total % N as u64) as usize;
            (&self.buf[start..], &self.buf[..start])
        } else {
            (&self.buf[..self.len()], &[])
        }
    }

    /// Calls `line` with each dump line's hex body ([`LINE_BYTES`] bytes
    /// a line, oldest first).
    pub fn hex_lines(&self, mut line: impl FnMut(&str)) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let (a, b) = self.as_slices();
        let mut s = [0u8; 2 * LINE_BYTES];
        let mut n = 0;
        for &byte in a.iter().chain(b) {
            s[n] = HEX[usize::from(byte >> 4)];
            s[n + 1] = HEX[usize::from(byte & 0xf)];
            n += 2;
            if n == s.len() {
                line(core::str::from_utf8(&s).unwrap_or(""));
                n = 0;
            }
        }
        if n > 0 {
            line(core::str::from_utf8(&s[..n]).unwrap_or(""));
        }
    }
}

/// Parses a dump line's hex body.
pub fn from_hex(s: &str) -> Option<heapless::Vec<u8, LINE_BYTES>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) || s.len() > 2 * LINE_BYTES || s.is_empty() {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    let mut v = heapless::Vec::new();
    for pair in s.chunks(2) {
        v.push((digit(pair[0])? << 4 | digit(pair[1])?) as u8).ok()?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines<const N: usize>(r: &ByteRing<N>) -> Vec<String> {
        let mut v = Vec::new();
        r.hex_lines(|l| v.push(l.to_string()));
        v
    }

    #[test]
    fn ring_keeps_the_newest_bytes_in_order() {
        let mut r: ByteRing<4> = ByteRing::new();
        assert!(r.is_empty());
        r.write(&[1, 2, 3]);
        assert_eq!(r.as_slices(), (&[1, 2, 3][..], &[][..]));
        assert_eq!(r.dropped(), 0);
        r.write(&[4, 5, 6]);
        assert_eq!(r.len(), 4);
        assert_eq!(r.dropped(), 2);
        let (a, b) = r.as_slices();
        assert_eq!([a, b].concat(), [3, 4, 5, 6]);
        assert_eq!(lines(&r), ["03040506"]);
    }

    #[test]
    fn hex_lines_round_trip() {
        let mut r: ByteRing<100> = ByteRing::new();
        let data: Vec<u8> = (0..70u8).map(|i| i.wrapping_mul(37)).collect();
        r.write(&data);
        let l = lines(&r);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].len(), 2 * LINE_BYTES);
        let back: Vec<u8> = l.iter().flat_map(|l| from_hex(l).unwrap()).collect();
        assert_eq!(back, data);
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(""), None);
        assert_eq!(from_hex(&"00".repeat(LINE_BYTES + 1)), None);
    }
}
