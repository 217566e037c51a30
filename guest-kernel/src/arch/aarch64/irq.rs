//! Interrupt entry (stub until the GIC driver lands).

use super::trap::{TrapFrame, die, slot};

/// An IRQ exception.
pub fn handle_irq(frame: &mut TrapFrame, from_el0: bool) {
    die(frame, if from_el0 { slot::EL0_IRQ } else { slot::EL1H_IRQ }, "interrupt")
}
