//! Pipes and FIFOs: a ring buffer of Linux's default capacity with its
//! reader and writer counts and wait queues (Linux fs/pipe.c,
//! `pipe_read`, `pipe_write`, `fifo_open`; pipe(7): "Pipe capacity",
//! "PIPE_BUF"). The blocking and the signals are the glue's: this core
//! says whether a read or write can go on, must wait, or has hit the end.

use alloc::vec;
use alloc::vec::Vec;

use crate::sched::WaitQueueHead;

/// A pipe's capacity (16 pages, `PIPE_DEF_BUFFERS`).
pub const PIPE_SIZE: usize = 65536;
/// Writes of at most this many bytes are atomic (`PIPE_BUF`).
pub const PIPE_BUF: usize = 4096;

/// What a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeRead {
    /// This many bytes were read.
    Data(usize),
    /// Empty, and no writer is left: end of file.
    Eof,
    /// Empty, but a writer may still write: wait (or EAGAIN).
    Wait,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeWrite {
    /// This many bytes were written (maybe fewer than asked: wait for
    /// room for the rest).
    Wrote(usize),
    /// No reader is left: EPIPE and SIGPIPE.
    Broken,
    /// No room (for an atomic write, not room for all of it): wait.
    Wait,
}

/// `struct pipe_inode_info`.
#[derive(Debug)]
pub struct Pipe {
    buf: Vec<u8>,
    /// Where the oldest unread byte is.
    head: usize,
    /// Bytes unread.
    len: usize,
    /// Open read and write ends.
    pub readers: u32,
    pub writers: u32,
    /// Times a reader or writer opened it (`r_counter`, `w_counter`): a
    /// FIFO's blocking open waits for the other side's count to move.
    pub r_counter: u32,
    pub w_counter: u32,
    /// Readers wait here for data, writers for room; openers of a FIFO
    /// for the other side (Linux 6.1's `rd_wait`, `wr_wait`).
    pub rd_wait: WaitQueueHead,
    pub wr_wait: WaitQueueHead,
}

impl Default for Pipe {
    fn default() -> Self {
        Pipe::new()
    }
}

impl Pipe {
    /// An empty pipe with no ends open.
    pub fn new() -> Self {
        Pipe {
            buf: vec![0; PIPE_SIZE],
            head: 0,
            len: 0,
            readers: 0,
            writers: 0,
            r_counter: 0,
            w_counter: 0,
            rd_wait: WaitQueueHead::new(),
            wr_wait: WaitQueueHead::new(),
        }
    }

    /// Bytes waiting to be read (`FIONREAD`).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `pipe_read`: takes up to `out.len()` bytes.
    pub fn read(&mut self, out: &mut [u8]) -> PipeRead {
        if out.is_empty() {
            return PipeRead::Data(0);
        }
        if self.len == 0 {
            return if self.writers == 0 { PipeRead::Eof } else { PipeRead::Wait };
        }
        let n = out.len().min(self.len);
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = self.buf[(self.head + i) % PIPE_SIZE];
        }
        self.head = (self.head + n) % PIPE_SIZE;
        self.len -= n;
        PipeRead::Data(n)
    }

    /// `pipe_write`: adds what fits of `data`; a write of at most
    /// [`PIPE_BUF`] bytes goes in whole or not at all.
    pub fn write(&mut self, data: &[u8]) -> PipeWrite {
        if self.readers == 0 {
            return PipeWrite::Broken;
        }
        if data.is_empty() {
            return PipeWrite::Wrote(0);
        }
        let room = PIPE_SIZE - self.len;
        if room == 0 || (data.len() <= PIPE_BUF && room < data.len()) {
            return PipeWrite::Wait;
        }
        let n = data.len().min(room);
        let tail = self.head + self.len;
        for (i, &b) in data[..n].iter().enumerate() {
            self.buf[(tail + i) % PIPE_SIZE] = b;
        }
        self.len += n;
        PipeWrite::Wrote(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> Pipe {
        let mut p = Pipe::new();
        p.readers = 1;
        p.writers = 1;
        p
    }

    #[test]
    fn round_trip_then_eof_when_no_writer() {
        let mut p = pipe();
        assert_eq!(p.write(b"hello"), PipeWrite::Wrote(5));
        let mut b = [0u8; 3];
        assert_eq!(p.read(&mut b), PipeRead::Data(3));
        assert_eq!(&b, b"hel");
        assert_eq!(p.read(&mut b), PipeRead::Data(2));
        assert_eq!(p.read(&mut b), PipeRead::Wait);
        p.writers = 0;
        assert_eq!(p.read(&mut b), PipeRead::Eof);
    }

    #[test]
    fn no_reader_is_a_broken_pipe() {
        let mut p = pipe();
        p.readers = 0;
        assert_eq!(p.write(b"x"), PipeWrite::Broken);
    }

    #[test]
    fn the_ring_wraps_around_and_keeps_order() {
        let mut p = pipe();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(40_000).collect();
        let mut out = vec![0u8; 40_000];
        for round in 0..5 {
            assert_eq!(p.write(&chunk), PipeWrite::Wrote(40_000), "round {round}");
            assert_eq!(p.read(&mut out), PipeRead::Data(40_000));
            assert_eq!(out, chunk);
        }
    }

    #[test]
    fn capacity_is_64k_and_small_writes_are_atomic() {
        let mut p = pipe();
        let big = vec![1u8; 70_000];
        assert_eq!(p.write(&big), PipeWrite::Wrote(PIPE_SIZE));
        assert_eq!(p.write(b"x"), PipeWrite::Wait);
        let mut b = vec![0u8; 10];
        assert_eq!(p.read(&mut b), PipeRead::Data(10));
        // 10 bytes free: a 100-byte write (atomic) waits, a 5000-byte one
        // (not atomic) writes what fits.
        assert_eq!(p.write(&[2u8; 100]), PipeWrite::Wait);
        assert_eq!(p.write(&[2u8; 5000]), PipeWrite::Wrote(10));
        assert_eq!(p.len(), PIPE_SIZE);
    }
}
