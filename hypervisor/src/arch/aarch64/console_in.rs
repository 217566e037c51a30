//! Console input: bytes typed on the hypervisor's UART go to one VM at a
//! time, the one with the focus. A prefix key switches:
//!
//! | keys | effect |
//! | --- | --- |
//! | `Ctrl-]` `n` | input to the next running VM |
//! | `Ctrl-]` `0`..`9` | input to VM number N |
//! | `Ctrl-]` `s` | print every VM's exit statistics |
//! | `Ctrl-]` `Ctrl-]` | send a literal Ctrl-] |
//!
//! (Ctrl-A is QEMU's own escape, hence Ctrl-].) The UART's receive
//! interrupt reaches EL2 like any physical interrupt (HCR_EL2.IMO); each
//! byte is pushed into the focused VM's emulated PL011 and its receive
//! interrupt raised through the vGIC.

use super::uart::UartDriver;
use super::vmm;
use crate::println;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use shared::layout;

/// The prefix key: Ctrl-] (GS, 0x1d).
pub const PREFIX: u8 = 0x1d;

static FOCUS: AtomicUsize = AtomicUsize::new(0);
static PREFIXED: AtomicBool = AtomicBool::new(false);
static UART: crate::sync::Once<UartDriver> = crate::sync::Once::new();
static INTID: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Whether VM `id` has the input focus. Only its console output reaches
/// the terminal raw; every other VM's has its control characters made
/// visible (`VmConsole::flush`).
pub fn has_focus(id: usize) -> bool {
    FOCUS.load(Ordering::Acquire) == id
}

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

static RX: crate::sync::Mutex<()> = crate::sync::Mutex::ranked(crate::sync::CONSOLE_RX, ());

/// The receive interrupt: drain the UART into the focused VM.
pub fn on_interrupt() {
    let _guard = RX.lock();
    let Some(d) = UART.get() else { return };
    while let Some(b) = d.try_getc() {
        input(b);
    }
}

fn input(b: u8) {
    if PREFIXED.swap(false, Ordering::AcqRel) {
        match b {
            b'n' => focus_next(),
            b'0'..=b'9' => set_focus((b - b'0') as usize),
            b's' => {
                for vm in vmm::vms() {
                    vmm::print_stats(vm, None);
                }
            }
            PREFIX => deliver(PREFIX),
            _ => println!("el2-hyp: console keys: Ctrl-] then n (next VM), 0-9 (VM N), s (exit statistics)"),
        }
        return;
    }
    if b == PREFIX {
        PREFIXED.store(true, Ordering::Release);
        return;
    }
    deliver(b);
}

fn set_focus(id: usize) {
    match vmm::vms().get(id) {
        Some(vm) if !vm.stopped.load(Ordering::Acquire) => {
            FOCUS.store(id, Ordering::Release);
            println!("el2-hyp: console input goes to VM {id} \"{}\"", vm.name);
        }
        _ => println!("el2-hyp: no running VM {id}"),
    }
}

fn focus_next() {
    let vms = vmm::vms();
    let start = FOCUS.load(Ordering::Acquire);
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
    let vms = vmm::vms();
    let mut id = FOCUS.load(Ordering::Acquire);
    if vms.get(id).is_none_or(|vm| vm.stopped.load(Ordering::Acquire)) {
        match vms.iter().position(|vm| !vm.stopped.load(Ordering::Acquire)) {
            Some(i) => {
                id = i;
                FOCUS.store(i, Ordering::Release);
            }
            None => return,
        }
    }
    let vm = &vms[id];
    if !vm.spec.console {
        return;
    }
    let level = {
        let mut c = vm.console.lock();
        c.type_byte(b);
        c.uart.irq_level()
    };
    let _ = vm.vgic.lock().set_level(0, 32 + layout::UART_SPI, level);
    vm.flush_kicks(None);
}
