//! Console input: bytes typed on the hypervisor's UART go to one VM at a
//! time, the one with the focus. A prefix key switches, and opens the
//! VM-control command line (the pure core, with the key table, is
//! `vmctl.rs`; this is its glue to the UART and the VMs):
//!
//! | keys | effect |
//! | --- | --- |
//! | `Ctrl-]` `n` | input to the next running VM |
//! | `Ctrl-]` `0`..`9` | input to VM number N |
//! | `Ctrl-]` `s` | print every VM's exit statistics |
//! | `Ctrl-]` `:` | a command line: `list`, `pause`, `unpause`, `reset`, `stop`, `start`, `stats`, `help` |
//! | `Ctrl-]` `h` | list these keys |
//! | `Ctrl-]` `Ctrl-]` | send a literal Ctrl-] |
//!
//! (Ctrl-A is QEMU's own escape, hence Ctrl-].) The UART's receive
//! interrupt reaches EL2 like any physical interrupt (HCR_EL2.IMO); each
//! byte is pushed into the focused VM's emulated PL011 and its receive
//! interrupt raised through the vGIC. While the command line is open no
//! typed byte reaches a VM.

use super::timer;
use super::uart::UartDriver;
use super::vmops;
use crate::vcpu::Vcpu;
use crate::vm::{self, Vm};
use crate::vmctl::{self, Command, Key, Keys, VmOp};
use crate::{console, println};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

static UART: crate::sync::Once<UartDriver> = crate::sync::Once::new();
static INTID: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets up input from the console UART (boot CPU, after the GIC).
pub fn init(uart: &shared::platform::Uart) {
    let Some(irq) = uart.irq else { return };
    // SAFETY: the same device as the output driver; input registers are
    // only touched here, under the `RX` lock, output only by the console.
    let d = UART.call_once(|| unsafe { UartDriver::new(uart) });
    d.enable_rx_interrupt();
    INTID.store(irq.intid() as usize, Ordering::Relaxed);
    super::gic::enable_spi(irq.intid());
}

/// The INTID of the console's receive interrupt.
pub fn intid() -> Option<u32> {
    let i = INTID.load(Ordering::Relaxed);
    (i != usize::MAX).then_some(i as u32)
}

/// The input side's state, under the `CONSOLE_RX` lock: the keys (and the
/// command line being typed), and the exit counts of the last `list`.
struct Input {
    keys: Keys,
    /// When the last `list` ran (physical count) and each VM's exits then.
    last_list: Option<(u64, Vec<u64>)>,
}

static RX: crate::sync::Mutex<Input> =
    crate::sync::Mutex::ranked(crate::sync::CONSOLE_RX, Input { keys: Keys::new(), last_list: None });

/// The receive interrupt: drain the UART into the focused VM, or into the
/// command line. `running` is the vCPU this CPU was running (its lock is
/// held by the caller), if any. Returns true if a command acted on a VM:
/// the running vCPU should then give the CPU back, so that this CPU's
/// scheduling loop carries out or reports what was asked (`vmreq`).
pub fn on_interrupt(running: Option<(&Vm, &Vcpu)>) -> bool {
    let mut st = RX.lock();
    let Some(d) = UART.get() else { return false };
    let mut acted = false;
    while let Some(b) = d.try_getc() {
        acted |= input(&mut st, b, running);
    }
    acted
}

fn input(st: &mut Input, b: u8, running: Option<(&Vm, &Vcpu)>) -> bool {
    match st.keys.input(b) {
        Key::Deliver(b) => deliver(b),
        Key::None => {}
        Key::FocusNext => focus_next(),
        Key::Focus(id) => set_focus(id),
        Key::AllStats => {
            for vm in vm::vms() {
                vm::print_stats(vm, me(vm, running));
            }
        }
        Key::KeysHelp => {
            for l in vmctl::KEYS_HELP {
                println!("el2-hyp: {l}");
            }
        }
        Key::UnknownKey => println!("el2-hyp: console keys: Ctrl-] then n, 0-9, s, : (command line), h (help)"),
        Key::Open => console::command_line(st.keys.line(), ""),
        Key::Echo(c) => console::command_line(st.keys.line(), core::str::from_utf8(&[c]).unwrap_or("")),
        Key::Erase => console::command_line(st.keys.line(), "\x08 \x08"),
        Key::Cancel => console::command_closed(" (cancelled)\n"),
        Key::Run(line) => {
            console::command_closed("\n");
            return run(st, line.as_str(), running);
        }
    }
    false
}

/// The vCPU of `vm` this CPU runs, if `running` is one of its.
fn me<'a>(vm: &Vm, running: Option<(&Vm, &'a Vcpu)>) -> Option<&'a Vcpu> {
    running.filter(|(r, _)| r.id == vm.id).map(|(_, v)| v)
}

/// Runs a command line; true if it acted on a VM.
fn run(st: &mut Input, line: &str, running: Option<(&Vm, &Vcpu)>) -> bool {
    let cmd = match vmctl::parse(line) {
        Ok(c) => c,
        Err(e) => {
            println!("el2-hyp: {e}");
            return false;
        }
    };
    let (op, target) = match cmd {
        Command::Empty => return false,
        Command::Help => {
            for l in vmctl::COMMANDS_HELP {
                println!("el2-hyp: {l}");
            }
            return false;
        }
        Command::List => {
            list(st);
            return false;
        }
        Command::Vm(op, target) => (op, target),
    };
    let vms = vm::vms();
    let names: Vec<&str> = vms.iter().map(|vm| vm.name.as_str()).collect();
    let vm = match vmctl::resolve(target, &names) {
        Ok(i) => &vms[i],
        Err(e) => {
            println!("el2-hyp: {}: {e}", op.name());
            return false;
        }
    };
    if let Err(e) = vmctl::plan(op, vm::state(vm)) {
        println!("el2-hyp: {}: VM {} \"{}\" {e}", op.name(), vm.id, vm.name);
        return false;
    }
    match op {
        VmOp::Stats => {
            vm::print_stats(vm, me(vm, running));
            return false;
        }
        // Each says what it does before doing it: another CPU may report
        // the result (paused, the VM's own output) at once.
        VmOp::Pause => {
            println!("el2-hyp: pausing VM {} \"{}\"", vm.id, vm.name);
            vmops::pause_vm(vm);
        }
        VmOp::Unpause => {
            println!("el2-hyp: VM {} \"{}\" unpaused", vm.id, vm.name);
            vmops::unpause_vm(vm);
        }
        VmOp::Reset => {
            println!("el2-hyp: resetting VM {} \"{}\"", vm.id, vm.name);
            vmops::reset_vm(vm);
        }
        VmOp::Stop => {
            println!("el2-hyp: stopping VM {} \"{}\"", vm.id, vm.name);
            vmops::stop_vm(vm, "stopped from the console");
        }
        VmOp::Start => {
            println!("el2-hyp: starting VM {} \"{}\"", vm.id, vm.name);
            if !vmops::start_vm(vm) {
                println!("el2-hyp: start: VM {} \"{}\" is being stopped", vm.id, vm.name);
            }
        }
    }
    true
}

/// `list`: one row per VM, exits/s since the last `list` (or boot).
fn list(st: &mut Input) {
    let vms = vm::vms();
    let now = timer::now();
    let freq = timer::frequency();
    let totals: Vec<u64> = vms.iter().map(|vm| vm.exits.iter().map(|e| e.get()).sum()).collect();
    let (then, before) = match st.last_list.take() {
        Some((at, before)) if before.len() == totals.len() => (Some(at), before),
        _ => (None, alloc::vec![0; totals.len()]),
    };
    let ticks = now.saturating_sub(then.unwrap_or(0));
    let rows: Vec<vmctl::Row> = vms
        .iter()
        .zip(totals.iter().zip(before.iter()))
        .map(|(vm, (&exits, &was))| vmctl::Row {
            id: vm.id,
            name: &vm.name,
            state: vm::state(vm),
            pcpus: vm.vcpu_pcpu.iter().map(|p| p.load(Ordering::Relaxed)).collect(),
            memory: vm.spec.memory.size,
            exits,
            per_second: vmctl::rate(exits.wrapping_sub(was), ticks, freq),
        })
        .collect();
    let since = then.map(|_| ticks * 100 / freq.max(1));
    for l in vmctl::list_table(&rows, since) {
        println!("el2-hyp: {l}");
    }
    st.last_list = Some((now, totals));
}

fn set_focus(id: usize) {
    match vm::vms().get(id) {
        Some(vm) if !vm.stopped.load(Ordering::Acquire) => {
            console::set_focus(id);
            println!("el2-hyp: console input goes to VM {id} \"{}\"", vm.name);
        }
        _ => println!("el2-hyp: no running VM {id}"),
    }
}

fn focus_next() {
    let vms = vm::vms();
    let start = console::focus();
    for k in 1..=vms.len() {
        let id = (start + k) % vms.len();
        if !vms[id].stopped.load(Ordering::Acquire) {
            return set_focus(id);
        }
    }
}

/// Hands one byte to the focused VM (the first running one if the focus
/// is on a VM that stopped).
fn deliver(b: u8) {
    let vms = vm::vms();
    let mut id = console::focus();
    if vms.get(id).is_none_or(|vm| vm.stopped.load(Ordering::Acquire)) {
        match vms.iter().position(|vm| !vm.stopped.load(Ordering::Acquire)) {
            Some(i) => {
                id = i;
                console::set_focus(i);
            }
            None => return,
        }
    }
    let vm = &vms[id];
    if !vm.spec.console {
        return;
    }
    {
        let mut c = vm.console.lock();
        c.type_byte(b);
        super::devices::Uart::drive_line(vm, &mut c, 0);
        super::devices::Uart::publish(vm, &c);
    }
    vm.flush_kicks(None);
}
