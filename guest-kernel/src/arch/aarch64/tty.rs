//! The console tty: the PL011's receive interrupt through the whole
//! interrupt stack of LKD ch. 7-8, to `read(2)` on file descriptor 0.
//!
//! 1. top half ([`uart_interrupt`], registered with `request_irq`): drain
//!    the receive FIFO into the flip buffer, acknowledge, schedule the
//!    tasklet; nothing else;
//! 2. tasklet ([`flip_tasklet`], TASKLET_SOFTIRQ on irq_exit): feed the
//!    line discipline ([`crate::tty::NTty`]); queue the echo, or, with none
//!    to write, wake readers;
//! 3. work item ([`echo_work`], on the `events` workqueue's kworker, in
//!    process context): write the echo to the console, whose lock is not
//!    taken from interrupt context, then wake readers;
//! 4. `read(2)` sleeps on the tty's wait queue until a line is ready.
//!
//! As in Linux's n_tty (`__receive_buf` flushes echoes before it wakes
//! readers), a line is readable only once its echo is on the console: a
//! program that copies its input (cat) never prints a line before the
//! terminal has shown what was typed.

use alloc::collections::VecDeque;

use super::uart::Pl011Rx;
use crate::irq::IrqReturn;
use crate::irq::tasklet::TaskletId;
use crate::irq::workqueue::WorkId;
use crate::kernel::{KGuard, Kernel};
use crate::sched::waitqueue::WaitQueueHead;
use crate::tty::{N_TTY_BUF_SIZE, NTty};

/// The console tty (`struct tty_struct` for the one console).
#[derive(Default)]
pub struct ConsoleTty {
    /// The line discipline.
    pub ldisc: NTty,
    /// Bytes the top half took from the FIFO (`tty_buffer`'s flip buffer).
    flip: VecDeque<u8>,
    /// Readers waiting for a line.
    pub read_wait: WaitQueueHead,
    rx: Option<Pl011Rx>,
    tasklet: Option<TaskletId>,
    echo: Option<WorkId>,
    /// Echo taken by [`echo_work`] and not yet written.
    echo_in_flight: bool,
    /// The session this is the controlling terminal of (`tty->session`),
    /// and its foreground process group (`tty->pgrp`).
    pub session: Option<crate::task::Pid>,
    pub pgrp: crate::task::Pid,
}

impl ConsoleTty {
    /// Up to `max` bytes of the next line, unless its echo is still to be
    /// written (then the reader sleeps; [`echo_work`] wakes it).
    pub fn read(&mut self, max: usize) -> Option<alloc::vec::Vec<u8>> {
        if self.ldisc.has_echo() || self.echo_in_flight {
            return None;
        }
        self.ldisc.read(max)
    }

    /// Whether a `read` would return at once (`n_tty_poll`'s POLLIN): a
    /// line or an end of file is ready and echoed, or there is no input
    /// driver (end of file).
    pub fn readable(&self) -> bool {
        !self.has_input() || (self.ldisc.readable() && !self.ldisc.has_echo() && !self.echo_in_flight)
    }

    /// Whether the console has an input driver (without one, stdin is at
    /// end of file).
    pub fn has_input(&self) -> bool {
        self.rx.is_some()
    }
}

/// Sets up console input: the tasklet on every CPU, the echo work item,
/// and the UART's interrupt line. Without a PL011 with an interrupt in the
/// DTB the console stays output-only.
pub fn init(k: &mut KGuard, platform: &shared::platform::Platform) {
    let Some(u) = platform.uart else { return };
    let (shared::platform::UartKind::Pl011, Some(irq)) = (u.kind, u.irq) else { return };
    let intid = irq.intid();
    // SAFETY: the DTB names this PL011 as our console and mmu::init mapped
    // it; the console sink only writes DR and reads FR, and this is the
    // only receive-side user.
    let rx = unsafe { Pl011Rx::new(super::mmu::phys_to_virt(u.region.base)) };
    let mut tasklet = None;
    for q in k.tasklets.iter_mut() {
        tasklet = Some(q.tasklet_init(flip_tasklet, 0));
    }
    let k2 = &mut **k;
    k2.tty.tasklet = tasklet;
    k2.tty.echo = Some(k2.events.init_work(echo_work, 0));
    if k2.irqs.request_irq(intid, uart_interrupt, 0, "uart-pl011", 0).is_err() {
        crate::println!("guest-kernel: console input: cannot register IRQ {intid}");
        return;
    }
    rx.enable();
    k2.tty.rx = Some(rx);
    // Level-triggered (the binding's IRQ_TYPE_LEVEL_HIGH), routed to CPU 0.
    super::irq::configure(intid, 0xa0, false);
}

/// The top half: acknowledge the UART and defer the rest.
fn uart_interrupt(_irq: u32, _dev: usize, k: &mut Kernel) -> IrqReturn {
    let Some(rx) = k.tty.rx.as_ref() else { return IrqReturn::None };
    if !rx.pending() {
        return IrqReturn::None;
    }
    let flip = &mut k.tty.flip;
    rx.drain(|b| {
        if flip.len() < N_TTY_BUF_SIZE {
            flip.push_back(b);
        }
    });
    let cpu = super::cpu::smp_processor_id();
    if let Some(t) = k.tty.tasklet {
        k.tasklets[cpu].tasklet_schedule(t, &mut k.softirq[cpu]);
    }
    IrqReturn::Handled
}

/// The bottom half: the flip buffer through the line discipline.
pub fn flip_tasklet(k: &mut Kernel, _data: u64) {
    let now = super::irq::now_ns();
    let bytes: alloc::vec::Vec<u8> = k.tty.flip.drain(..).collect();
    k.tty.ldisc.receive_buf(&bytes);
    // ISIG: ^C, ^\ and ^Z go to the foreground process group
    // (`isig` → `kill_pgrp`), if the tty has one.
    for sig in k.tty.ldisc.take_signals() {
        if k.tty.session.is_some() {
            crate::kernel::signal::kill_pgrp(k, k.tty.pgrp, sig, now);
        }
    }
    if k.tty.ldisc.has_echo()
        && let Some(w) = k.tty.echo
    {
        k.events.queue_work(w, &mut k.sched, now);
    } else if k.tty.ldisc.readable() {
        k.tty.read_wait.wake_up_nr(&mut k.sched, 0, now);
    }
}

/// The echo, written in process context (called without the kernel lock),
/// then the readers woken: the line they read is on the console by then.
pub fn echo_work(_data: u64) {
    let bytes = {
        let mut k = crate::kernel::lock();
        k.tty.echo_in_flight = true;
        k.tty.ldisc.take_echo()
    };
    crate::console::write_bytes(&bytes);
    let mut k = crate::kernel::lock();
    let k = &mut *k;
    k.tty.echo_in_flight = false;
    if k.tty.ldisc.readable() {
        let now = super::irq::now_ns();
        k.tty.read_wait.wake_up_nr(&mut k.sched, 0, now);
    }
}

/// `disassociate_ctty` when a session leader exits: its terminal's
/// foreground group gets SIGHUP and SIGCONT, and the terminal is free for
/// another session.
pub fn session_leader_exit(k: &mut Kernel, sid: crate::task::Pid) {
    if k.tty.session != Some(sid) {
        return;
    }
    let (pgrp, now) = (k.tty.pgrp, super::irq::now_ns());
    k.tty.session = None;
    k.tty.pgrp = 0;
    crate::kernel::signal::kill_pgrp(k, pgrp, 1, now); // SIGHUP
    crate::kernel::signal::kill_pgrp(k, pgrp, 18, now); // SIGCONT
}
