//! Interrupt handling: the irq descriptor table, `request_irq` / `free_irq`
//! with shared lines, and dispatch (`handle_irq`). Bottom halves live in the
//! submodules.
//!
//! LKD ch. 7, "Interrupts and Interrupt Handlers": a handler is registered
//! per line with `request_irq(irq, handler, flags, name, dev)`; on a shared
//! line every handler runs and each says whether its device raised the
//! interrupt (IRQ_HANDLED) or not (IRQ_NONE). Top halves only acknowledge the
//! device and defer the rest (LKD ch. 8) to softirqs, tasklets or workqueues.

pub mod softirq;
pub mod tasklet;
pub mod workqueue;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::task::Errno;

/// `irqreturn_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqReturn {
    None,
    Handled,
}

/// `IRQF_SHARED`: the line may be shared by several devices.
pub const IRQF_SHARED: u32 = 0x0000_0080;
/// `IRQF_ONESHOT`.
pub const IRQF_ONESHOT: u32 = 0x0000_2000;
/// `IRQF_TRIGGER_MASK`: the trigger type must agree between sharers.
pub const IRQF_TRIGGER_MASK: u32 = 0x0000_000f;

/// A handler: `(irq, dev_id, ctx) -> IrqReturn`; `ctx` is whatever the glue
/// passes (e.g. the softirq state, so the top half can raise a bottom half).
pub type IrqHandler<C> = fn(u32, usize, &mut C) -> IrqReturn;

/// `struct irqaction`.
pub struct IrqAction<C> {
    pub handler: IrqHandler<C>,
    pub flags: u32,
    pub name: String,
    pub dev_id: usize,
}

/// Unhandled interrupts after which a line is declared stuck
/// (`note_interrupt`: 99,900 of 100,000).
pub const SPURIOUS_LIMIT: u32 = 99_900;
const SPURIOUS_WINDOW: u32 = 100_000;

/// `struct irq_desc`.
pub struct IrqDesc<C> {
    pub actions: Vec<IrqAction<C>>,
    /// `disable_irq` nesting depth.
    pub depth: u32,
    pub count: u32,
    pub unhandled: u32,
    /// Disabled because nobody handles it.
    pub spurious_disabled: bool,
}

/// The table of irq descriptors.
pub struct IrqTable<C> {
    descs: BTreeMap<u32, IrqDesc<C>>,
    nr_irqs: u32,
}

impl<C> IrqTable<C> {
    pub fn new(nr_irqs: u32) -> Self {
        IrqTable { descs: BTreeMap::new(), nr_irqs }
    }

    pub fn desc(&self, irq: u32) -> Option<&IrqDesc<C>> {
        self.descs.get(&irq)
    }

    /// `request_irq` → `__setup_irq`. A shared line needs a non-zero dev_id;
    /// a second action is accepted only if both agree to share and on the
    /// trigger type and ONESHOT (-EBUSY otherwise).
    pub fn request_irq(
        &mut self,
        irq: u32,
        handler: IrqHandler<C>,
        flags: u32,
        name: &str,
        dev_id: usize,
    ) -> Result<(), Errno> {
        if irq >= self.nr_irqs {
            return Err(Errno::EINVAL);
        }
        if flags & IRQF_SHARED != 0 && dev_id == 0 {
            return Err(Errno::EINVAL);
        }
        let desc = self.descs.entry(irq).or_insert_with(|| IrqDesc {
            actions: Vec::new(),
            depth: 0,
            count: 0,
            unhandled: 0,
            spurious_disabled: false,
        });
        if let Some(old) = desc.actions.first() {
            let both_shared = old.flags & flags & IRQF_SHARED != 0;
            let same_trigger = (old.flags ^ flags) & IRQF_TRIGGER_MASK == 0;
            let same_oneshot = (old.flags ^ flags) & IRQF_ONESHOT == 0;
            if !both_shared || !same_trigger || !same_oneshot {
                return Err(Errno::EBUSY);
            }
            if desc.actions.iter().any(|a| a.dev_id == dev_id) {
                return Err(Errno::EBUSY);
            }
        }
        desc.actions.push(IrqAction { handler, flags, name: String::from(name), dev_id });
        Ok(())
    }

    /// `free_irq(irq, dev_id)`: remove that device's action. -EINVAL if it
    /// was not registered ("Trying to free already-free IRQ").
    pub fn free_irq(&mut self, irq: u32, dev_id: usize) -> Result<(), Errno> {
        let desc = self.descs.get_mut(&irq).ok_or(Errno::EINVAL)?;
        let pos = desc.actions.iter().position(|a| a.dev_id == dev_id).ok_or(Errno::EINVAL)?;
        desc.actions.remove(pos);
        if desc.actions.is_empty() {
            self.descs.remove(&irq);
        }
        Ok(())
    }

    /// `disable_irq` (nests).
    pub fn disable_irq(&mut self, irq: u32) {
        if let Some(d) = self.descs.get_mut(&irq) {
            d.depth += 1;
        }
    }

    /// `enable_irq`.
    pub fn enable_irq(&mut self, irq: u32) {
        if let Some(d) = self.descs.get_mut(&irq) {
            d.depth = d.depth.saturating_sub(1);
        }
    }

    /// Is the line enabled (the glue unmasks it at the GIC when so)?
    pub fn irq_enabled(&self, irq: u32) -> bool {
        self.descs.get(&irq).is_some_and(|d| d.depth == 0 && !d.spurious_disabled)
    }

    /// `generic_handle_irq` → `handle_irq_event`: run every action on the
    /// line; the result is HANDLED if any device claimed the interrupt.
    /// Called by the glue between `irq_enter` and `irq_exit`, after it read
    /// the interrupt id from the GIC and before it writes end-of-interrupt.
    pub fn handle_irq(&mut self, irq: u32, ctx: &mut C) -> IrqReturn {
        let Some(desc) = self.descs.get_mut(&irq) else {
            return IrqReturn::None;
        };
        if desc.depth > 0 || desc.spurious_disabled {
            return IrqReturn::None;
        }
        let mut ret = IrqReturn::None;
        for a in &desc.actions {
            if (a.handler)(irq, a.dev_id, ctx) == IrqReturn::Handled {
                ret = IrqReturn::Handled;
            }
        }
        // note_interrupt: a line nobody handles is eventually disabled.
        desc.count += 1;
        if ret == IrqReturn::None {
            desc.unhandled += 1;
        }
        if desc.count >= SPURIOUS_WINDOW {
            if desc.unhandled > SPURIOUS_LIMIT {
                desc.spurious_disabled = true;
            }
            desc.count = 0;
            desc.unhandled = 0;
        }
        ret
    }
}

#[cfg(test)]
mod tests {
    use super::softirq::{SoftirqState, TASKLET_SOFTIRQ};
    use super::*;

    /// A device model: `status[dev]` says whether device `dev` raised the line.
    struct Devs {
        status: [bool; 4],
        acked: Vec<usize>,
        softirq: SoftirqState,
    }

    fn top_half(_irq: u32, dev: usize, d: &mut Devs) -> IrqReturn {
        if !d.status[dev] {
            return IrqReturn::None;
        }
        // Acknowledge the device and defer the work.
        d.status[dev] = false;
        d.acked.push(dev);
        d.softirq.raise_softirq(TASKLET_SOFTIRQ);
        IrqReturn::Handled
    }

    fn devs() -> Devs {
        Devs { status: [false; 4], acked: Vec::new(), softirq: SoftirqState::new() }
    }

    #[test]
    fn sharing_requires_agreement() {
        let mut t: IrqTable<Devs> = IrqTable::new(64);
        assert_eq!(t.request_irq(5, top_half, IRQF_SHARED, "a", 0), Err(Errno::EINVAL), "shared needs dev_id");
        assert_eq!(t.request_irq(99, top_half, 0, "a", 1), Err(Errno::EINVAL));
        t.request_irq(5, top_half, IRQF_SHARED, "a", 1).unwrap();
        assert_eq!(t.request_irq(5, top_half, 0, "b", 2), Err(Errno::EBUSY), "b does not share");
        assert_eq!(t.request_irq(5, top_half, IRQF_SHARED | 0x4, "b", 2), Err(Errno::EBUSY), "trigger differs");
        assert_eq!(t.request_irq(5, top_half, IRQF_SHARED, "a", 1), Err(Errno::EBUSY), "same dev_id");
        t.request_irq(5, top_half, IRQF_SHARED, "b", 2).unwrap();
        t.request_irq(6, top_half, 0, "c", 3).unwrap();
        assert_eq!(t.request_irq(6, top_half, IRQF_SHARED, "d", 1), Err(Errno::EBUSY), "c is exclusive");
        t.free_irq(5, 1).unwrap();
        assert_eq!(t.free_irq(5, 1), Err(Errno::EINVAL));
        assert_eq!(t.desc(5).unwrap().actions.len(), 1);
    }

    #[test]
    fn shared_dispatch_runs_all_and_reports() {
        let mut t: IrqTable<Devs> = IrqTable::new(64);
        t.request_irq(5, top_half, IRQF_SHARED, "a", 1).unwrap();
        t.request_irq(5, top_half, IRQF_SHARED, "b", 2).unwrap();
        let mut d = devs();
        assert_eq!(t.handle_irq(5, &mut d), IrqReturn::None);
        d.status[2] = true;
        assert_eq!(t.handle_irq(5, &mut d), IrqReturn::Handled);
        assert_eq!(d.acked, [2]);
        assert!(d.softirq.pending() & (1 << TASKLET_SOFTIRQ) != 0, "work deferred");
        t.disable_irq(5);
        t.disable_irq(5);
        t.enable_irq(5);
        d.status[1] = true;
        assert_eq!(t.handle_irq(5, &mut d), IrqReturn::None, "still disabled");
        t.enable_irq(5);
        assert!(t.irq_enabled(5));
        assert_eq!(t.handle_irq(5, &mut d), IrqReturn::Handled);
        assert_eq!(t.handle_irq(7, &mut d), IrqReturn::None, "no handler");
    }

    #[test]
    fn stuck_line_is_disabled() {
        let mut t: IrqTable<Devs> = IrqTable::new(64);
        t.request_irq(9, top_half, 0, "x", 1).unwrap();
        let mut d = devs();
        for _ in 0..SPURIOUS_WINDOW {
            t.handle_irq(9, &mut d);
        }
        assert!(!t.irq_enabled(9));
    }
}
