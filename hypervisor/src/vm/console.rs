//! A VM's console (issue 18's plain VM objects): the emulated PL011's
//! model (`vpl011`) and the line buffer in front of the hypervisor's
//! console (`console::vm_text`). Locked as `Vm::console`; the device on
//! the bus is `arch/aarch64/devices.rs`'s `Uart`.

use crate::vpl011::Pl011;

/// The emulated console of a VM: the PL011 model and a line buffer, so
/// that lines from different VMs do not interleave mid-line. A line shows
/// when its newline comes, or, left open, when the vCPU that wrote it goes
/// idle (a shell's prompt, the echo of a key: they appear at once); the
/// same VM's next bytes continue it (`console::vm_text`).
pub struct VmConsole {
    /// The VM's number (for the input focus).
    id: usize,
    pub uart: Pl011,
    line: heapless::Vec<u8, 160>,
    /// Typed bytes the PL011's receive FIFO has no room for yet: they move
    /// in as the guest reads (a pasted line is longer than the FIFO).
    input: heapless::Deque<u8, 4096>,
    /// Physical counter when the VM's first line was printed (the boot
    /// benchmark's "first console line").
    pub first_line_at: Option<u64>,
    /// The vCPU that wrote the last byte.
    last_writer: usize,
    /// The physical counter, for [`VmConsole::first_line_at`] (the arch
    /// layer's `timer::now`).
    clock: fn() -> u64,
    /// The level the vPL011's interrupt line was last driven to in the
    /// vGIC. Whoever drives it holds this console's lock meanwhile
    /// (`devices::Uart::drive_line`), so it is the vGIC's line level.
    pub line_driven: bool,
}

impl VmConsole {
    /// A console of VM `id` with nothing buffered, reading the physical
    /// counter with `clock`.
    pub fn new(id: usize, clock: fn() -> u64) -> Self {
        Self {
            id,
            uart: Pl011::new(),
            line: heapless::Vec::new(),
            input: heapless::Deque::new(),
            first_line_at: None,
            last_writer: 0,
            clock,
            line_driven: false,
        }
    }

    /// Queues a typed byte and moves what fits into the receive FIFO.
    /// Returns false if the queue was full and the byte was dropped.
    pub fn type_byte(&mut self, b: u8) -> bool {
        let ok = self.input.push_back(b).is_ok();
        self.refill();
        ok
    }

    /// Moves queued input into the receive FIFO while it has room. Inline
    /// (every UART read calls it; there is rarely input queued), the move
    /// out of line.
    #[inline(always)]
    pub fn refill(&mut self) {
        if !self.input.is_empty() {
            self.move_input();
        }
    }

    /// [`VmConsole::refill`]'s loop.
    #[inline(never)]
    fn move_input(&mut self) {
        while !self.input.is_empty() && self.uart.rx_has_room() {
            match self.input.pop_front() {
                Some(b) => {
                    self.uart.push_input(b);
                }
                None => break,
            }
        }
    }

    /// Takes one byte vCPU `vcpu` wrote; prints the line when complete (a
    /// line longer than the buffer goes out in parts, as one line).
    pub fn output(&mut self, name: &str, vcpu: usize, b: u8) {
        self.last_writer = vcpu;
        if b == b'\r' {
            return;
        }
        if b == b'\n' {
            self.flush(name);
        } else if self.line.push(b).is_err() {
            self.flush_partial(name);
            let _ = self.line.push(b);
        }
    }

    /// Prints what is buffered as the end of a line.
    pub fn flush(&mut self, name: &str) {
        self.emit(name, self.line.len(), true);
        self.first_line_at.get_or_insert_with(self.clock);
    }

    /// Prints what is buffered and leaves the line open (a prompt, the
    /// echo of a key): called when the vCPU that wrote it goes idle
    /// ([`Self::idle`]) or the buffer is full. A UTF-8 sequence cut at the
    /// end waits for its rest.
    pub fn flush_partial(&mut self, name: &str) {
        let whole = match core::str::from_utf8(&self.line) {
            Ok(_) => self.line.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.line.len(),
        };
        if whole > 0 {
            self.emit(name, whole, false);
        }
    }

    /// Prints the first `n` buffered bytes (`console::vm_text`): as they
    /// are for the VM with the input focus, with control characters made
    /// visible for any other (`vpl011::visible`), so that no VM can forge
    /// another's line or the hypervisor's, or take over the terminal.
    fn emit(&mut self, name: &str, n: usize, complete: bool) {
        let bytes = &self.line[..n];
        if crate::console::has_focus(self.id) {
            let text = core::str::from_utf8(bytes).unwrap_or("<non-UTF-8 output>");
            crate::console::vm_text(self.id, name, text, complete);
        } else {
            crate::console::vm_text(self.id, name, &crate::vpl011::visible(bytes), complete);
        }
        let rest: heapless::Vec<u8, 160> = self.line[n..].iter().copied().collect();
        self.line = rest;
    }

    /// Prints the open line, if any (the VM stops).
    pub fn end(&mut self, name: &str) {
        if !self.line.is_empty() {
            self.flush(name);
        }
    }

    /// vCPU `vcpu` waits (WFI/WFE): if it wrote the open line, show it.
    /// Only the writer's own idling counts: a sibling vCPU's WFI while the
    /// writer was merely descheduled mid-line must not cut its line.
    pub fn idle(&mut self, name: &str, vcpu: usize) {
        if vcpu == self.last_writer && !self.line.is_empty() {
            self.flush_partial(name);
        }
    }
}
