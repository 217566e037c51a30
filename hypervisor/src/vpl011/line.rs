//! Line buffering of a VM's console output, so that lines from several VMs
//! interleave whole on the physical console, each behind its VM's name.

/// Longest line the buffer holds before it is flushed without a newline.
pub const LINE_MAX: usize = 120;

/// One complete line, without its newline.
pub type Line = heapless::Vec<u8, LINE_MAX>;

/// Collects transmitted bytes into lines.
#[derive(Clone, Debug, Default)]
pub struct LineBuffer {
    buf: Line,
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self { buf: heapless::Vec::new() }
    }

    /// Adds one byte. Returns a line when `byte` is a newline or when the
    /// buffer reached [`LINE_MAX`] bytes. Carriage returns are dropped: the
    /// glue ends each printed line itself.
    pub fn push(&mut self, byte: u8) -> Option<Line> {
        match byte {
            b'\n' => Some(self.take()),
            b'\r' => None,
            _ => {
                // The buffer is never left full, so this push cannot fail.
                let _ = self.buf.push(byte);
                if self.buf.is_full() { Some(self.take()) } else { None }
            }
        }
    }

    /// The partial line collected so far, if any (for a VM that stops).
    pub fn flush(&mut self) -> Option<Line> {
        if self.buf.is_empty() { None } else { Some(self.take()) }
    }

    /// Bytes waiting for their line to end.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    fn take(&mut self) -> Line {
        core::mem::take(&mut self.buf)
    }
}
