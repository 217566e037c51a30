//! A small lockdep (Linux `kernel/locking/lockdep.c`, much reduced): every
//! lock has a [`LockClass`]; each CPU keeps the stack of classes it holds
//! ([`HeldStack`]); taking a lock of class B while holding A records the
//! edge A → B in an [`OrderGraph`]. Taking B while holding A is reported
//! when
//!
//! - B → A was recorded before (an AB-BA inversion: two CPUs doing one
//!   each deadlock), or
//! - both classes have a rank in the written order (`sync` module doc) and
//!   A's is not smaller than B's, or
//! - B is already held on this CPU (a spin lock taken twice on one CPU
//!   waits for itself).
//!
//! Unlike Linux there is no transitive closure (only direct edges are
//! compared; the ranks cover the longer cycles for ranked classes) and
//! no irq-context state (every lock here is held with interrupts masked,
//! which the glue checks). A `try_lock` cannot wait, so it is recorded as
//! held but adds no edge, as in Linux (`trylock` in `lock_acquire`).
//!
//! The core below is pure and unit-tested on the host; the per-CPU
//! instances and the report (a `*** guest-kernel: lockdep: ...` line on the
//! console, then power-off) are built with the cargo feature `lockdep`,
//! for bare metal only.

use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};

/// A lock class: a name for reports, an index into the order graph, and a
/// rank in the written lock order (0: not in it, checked by the recorded
/// order only).
#[derive(Debug, PartialEq, Eq)]
pub struct LockClass {
    pub name: &'static str,
    pub id: u8,
    pub rank: u8,
}

/// Most classes the graph can hold (one bit each in a row).
pub const MAX_CLASSES: usize = 32;

/// Deepest nesting of held locks on one CPU.
pub const MAX_DEPTH: usize = 16;

/// The recorded order: `after[a]` has bit `b` set once class `b` was
/// taken while class `a` was held. Shared by all CPUs; only ever gains
/// bits, so relaxed atomics suffice.
pub struct OrderGraph {
    after: [AtomicU32; MAX_CLASSES],
}

impl Default for OrderGraph {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderGraph {
    /// No order recorded yet.
    pub const fn new() -> Self {
        OrderGraph { after: [const { AtomicU32::new(0) }; MAX_CLASSES] }
    }

    /// Whether `b` was taken while `a` was held.
    pub fn has(&self, a: u8, b: u8) -> bool {
        self.after[a as usize % MAX_CLASSES].load(Ordering::Relaxed) & (1 << (b as usize % MAX_CLASSES)) != 0
    }

    fn add(&self, a: u8, b: u8) {
        self.after[a as usize % MAX_CLASSES].fetch_or(1 << (b as usize % MAX_CLASSES), Ordering::Relaxed);
    }
}

/// What lockdep found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// `taking` while `holding`, after `holding` was taken while `taking`
    /// was held.
    Inversion { holding: &'static LockClass, taking: &'static LockClass },
    /// `taking` while `holding`, against the written order.
    Rank { holding: &'static LockClass, taking: &'static LockClass },
    /// `class` taken while this CPU already holds it.
    Recursion { class: &'static LockClass },
    /// `class` released, but this CPU does not hold it.
    NotHeld { class: &'static LockClass },
    /// More than [`MAX_DEPTH`] locks held.
    TooDeep { class: &'static LockClass },
    /// A spin lock taken with interrupts unmasked: an interrupt's handler
    /// could take it again, or preemption at `irq_exit` move the holder.
    IrqsOn { class: &'static LockClass },
    /// A sleeping lock (`class`) taken while this CPU holds the spin lock
    /// `holding`: the sleep would keep it held (`might_sleep`'s "sleeping
    /// function called from invalid context").
    SleepInAtomic { holding: &'static LockClass, class: &'static LockClass },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::Inversion { holding, taking } => write!(
                f,
                "lock inversion: taking {} while holding {}, but {} was taken while holding {} before \
                 (AB-BA deadlock)",
                taking.name, holding.name, holding.name, taking.name
            ),
            Violation::Rank { holding, taking } => write!(
                f,
                "lock order: taking {} (rank {}) while holding {} (rank {}); see the table in guest-kernel/src/sync",
                taking.name, taking.rank, holding.name, holding.rank
            ),
            Violation::Recursion { class } => {
                write!(f, "{} taken while this CPU already holds it (waits for itself)", class.name)
            }
            Violation::NotHeld { class } => write!(f, "{} released but not held on this CPU", class.name),
            Violation::TooDeep { class } => write!(f, "taking {}: more than {MAX_DEPTH} locks held", class.name),
            Violation::IrqsOn { class } => write!(f, "{} taken with interrupts unmasked", class.name),
            Violation::SleepInAtomic { holding, class } => {
                write!(f, "sleeping lock {} taken while holding spin lock {}", class.name, holding.name)
            }
        }
    }
}

/// The classes one CPU holds, in the order taken. Only its own CPU
/// touches it, with interrupts masked; the fields are atomics only so
/// that a `static` needs no `unsafe`.
pub struct HeldStack {
    held: [AtomicU8; MAX_DEPTH],
    depth: AtomicU8,
}

impl Default for HeldStack {
    fn default() -> Self {
        Self::new()
    }
}

impl HeldStack {
    /// Nothing held.
    pub const fn new() -> Self {
        HeldStack { held: [const { AtomicU8::new(0) }; MAX_DEPTH], depth: AtomicU8::new(0) }
    }

    /// How many locks are held.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed) as usize
    }

    /// The class id of the `i`th lock held (outermost first).
    pub fn id_at(&self, i: usize) -> u8 {
        self.held[i].load(Ordering::Relaxed)
    }

    /// Records taking `class` (a blocking lock if `wait`; a `try_lock`
    /// otherwise) and checks it against what is held and the recorded
    /// order. `classes` maps ids to classes for the report. The lock is
    /// recorded even when a violation is returned.
    pub fn acquire(
        &self,
        graph: &OrderGraph,
        classes: &[&'static LockClass],
        class: &'static LockClass,
        wait: bool,
    ) -> Result<(), Violation> {
        let mut verdict = Ok(());
        let depth = self.depth();
        for i in 0..depth {
            let id = self.id_at(i);
            let Some(&holding) = classes.iter().find(|c| c.id == id) else { continue };
            if !wait {
                continue;
            }
            let v = if id == class.id {
                Some(Violation::Recursion { class })
            } else if holding.rank != 0 && class.rank != 0 && holding.rank >= class.rank {
                Some(Violation::Rank { holding, taking: class })
            } else if graph.has(class.id, id) {
                Some(Violation::Inversion { holding, taking: class })
            } else {
                graph.add(id, class.id);
                None
            };
            if let (Some(v), Ok(())) = (v, verdict) {
                verdict = Err(v);
            }
        }
        if depth >= MAX_DEPTH {
            return verdict.and(Err(Violation::TooDeep { class }));
        }
        self.held[depth].store(class.id, Ordering::Relaxed);
        self.depth.store(depth as u8 + 1, Ordering::Relaxed);
        verdict
    }

    /// `might_sleep` before taking the sleeping lock `class`: this CPU
    /// must hold no spin lock. Sleeping locks are not recorded here (a
    /// task, not a CPU, holds one: `sync::rwsem`).
    pub fn might_sleep(&self, classes: &[&'static LockClass], class: &'static LockClass) -> Result<(), Violation> {
        if self.depth() == 0 {
            return Ok(());
        }
        let id = self.id_at(self.depth() - 1);
        let holding = classes.iter().find(|c| c.id == id).copied().unwrap_or(class);
        Err(Violation::SleepInAtomic { holding, class })
    }

    /// Records releasing `class` (the innermost lock of that class held;
    /// locks may be released in any order).
    pub fn release(&self, class: &'static LockClass) -> Result<(), Violation> {
        let depth = self.depth();
        let Some(i) = (0..depth).rev().find(|&i| self.id_at(i) == class.id) else {
            return Err(Violation::NotHeld { class });
        };
        for j in i..depth - 1 {
            self.held[j].store(self.id_at(j + 1), Ordering::Relaxed);
        }
        self.depth.store(depth as u8 - 1, Ordering::Relaxed);
        Ok(())
    }
}

/// The per-CPU instances and the report: bare metal with `lockdep` only.
#[cfg(all(feature = "lockdep", target_arch = "aarch64", target_os = "none"))]
pub mod live {
    use super::{HeldStack, LockClass, OrderGraph, Violation};
    use crate::arch::aarch64::MAX_CPUS;
    use crate::arch::aarch64::cpu::{irqs_disabled, local_irq_restore, local_irq_save, smp_processor_id};

    static GRAPH: OrderGraph = OrderGraph::new();
    static HELD: [HeldStack; MAX_CPUS] = [const { HeldStack::new() }; MAX_CPUS];

    /// Prints the report and powers off.
    #[cold]
    fn report(cpu: usize, v: Violation) -> ! {
        let held = &HELD[cpu];
        let mut names: heapless::String<256> = heapless::String::new();
        for i in 0..held.depth() {
            let id = held.id_at(i);
            let name = super::super::CLASSES.iter().find(|c| c.id == id).map_or("?", |c| c.name);
            let _ = core::fmt::Write::write_fmt(&mut names, format_args!(" {name}"));
        }
        crate::console::emergency_print(format_args!("*** guest-kernel: lockdep: CPU{cpu}: {v}; held:{names}\n"));
        crate::arch::aarch64::psci::system_off()
    }

    /// Checks and records taking `class` on this CPU.
    pub fn acquire(class: &'static LockClass, wait: bool) {
        let irqs_were_on = !irqs_disabled();
        let daif = local_irq_save();
        let cpu = smp_processor_id();
        let r = HELD[cpu].acquire(&GRAPH, &super::super::CLASSES, class, wait);
        if let Err(v) = r {
            report(cpu, v);
        }
        if wait && irqs_were_on {
            report(cpu, Violation::IrqsOn { class });
        }
        local_irq_restore(daif);
    }

    /// Checks that this CPU may sleep for the sleeping lock `class`.
    pub fn might_sleep(class: &'static LockClass) {
        let daif = local_irq_save();
        let cpu = smp_processor_id();
        if let Err(v) = HELD[cpu].might_sleep(&super::super::CLASSES, class) {
            report(cpu, v);
        }
        local_irq_restore(daif);
    }

    /// Records releasing `class` on this CPU.
    pub fn release(class: &'static LockClass) {
        let daif = local_irq_save();
        let cpu = smp_processor_id();
        if let Err(v) = HELD[cpu].release(class) {
            report(cpu, v);
        }
        local_irq_restore(daif);
    }
}

/// lockdep's note that `class` is being taken (before waiting for it).
#[inline(always)]
pub fn acquire(class: &'static LockClass, wait: bool) {
    #[cfg(all(feature = "lockdep", target_arch = "aarch64", target_os = "none"))]
    live::acquire(class, wait);
    #[cfg(not(all(feature = "lockdep", target_arch = "aarch64", target_os = "none")))]
    let _ = (class, wait);
}

/// lockdep's check before a sleeping lock of `class` is taken (no spin
/// lock may be held).
#[inline(always)]
pub fn might_sleep(class: &'static LockClass) {
    #[cfg(all(feature = "lockdep", target_arch = "aarch64", target_os = "none"))]
    live::might_sleep(class);
    #[cfg(not(all(feature = "lockdep", target_arch = "aarch64", target_os = "none")))]
    let _ = class;
}

/// lockdep's note that `class` was released.
#[inline(always)]
pub fn release(class: &'static LockClass) {
    #[cfg(all(feature = "lockdep", target_arch = "aarch64", target_os = "none"))]
    live::release(class);
    #[cfg(not(all(feature = "lockdep", target_arch = "aarch64", target_os = "none")))]
    let _ = class;
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: LockClass = LockClass { name: "A", id: 0, rank: 0 };
    static B: LockClass = LockClass { name: "B", id: 1, rank: 0 };
    static OUTER: LockClass = LockClass { name: "OUTER", id: 2, rank: 1 };
    static INNER: LockClass = LockClass { name: "INNER", id: 3, rank: 2 };
    static TEST_CLASSES: [&LockClass; 4] = [&A, &B, &OUTER, &INNER];

    fn take(s: &HeldStack, g: &OrderGraph, c: &'static LockClass) -> Result<(), Violation> {
        s.acquire(g, &TEST_CLASSES, c, true)
    }

    #[test]
    fn an_inversion_is_reported_with_both_names() {
        let g = OrderGraph::new();
        let cpu0 = HeldStack::new();
        take(&cpu0, &g, &A).unwrap();
        take(&cpu0, &g, &B).unwrap();
        assert!(g.has(0, 1), "A -> B recorded");
        cpu0.release(&B).unwrap();
        cpu0.release(&A).unwrap();
        assert_eq!(cpu0.depth(), 0);
        // Another CPU takes them the other way round.
        let cpu1 = HeldStack::new();
        take(&cpu1, &g, &B).unwrap();
        let v = take(&cpu1, &g, &A).unwrap_err();
        assert_eq!(v, Violation::Inversion { holding: &B, taking: &A });
        let s = v.to_string();
        assert!(s.contains("taking A while holding B"), "{s}");
        assert!(s.contains("B was taken while holding A"), "{s}");
    }

    #[test]
    fn the_same_order_again_is_fine() {
        let g = OrderGraph::new();
        let s = HeldStack::new();
        for _ in 0..3 {
            take(&s, &g, &A).unwrap();
            take(&s, &g, &B).unwrap();
            s.release(&A).unwrap(); // out of order release is allowed
            s.release(&B).unwrap();
        }
        assert!(!g.has(1, 0));
    }

    #[test]
    fn rank_violations_are_reported_without_history() {
        let g = OrderGraph::new();
        let s = HeldStack::new();
        take(&s, &g, &OUTER).unwrap();
        take(&s, &g, &INNER).unwrap();
        s.release(&INNER).unwrap();
        s.release(&OUTER).unwrap();
        let s = HeldStack::new();
        take(&s, &g, &INNER).unwrap();
        let v = take(&s, &g, &OUTER).unwrap_err();
        assert!(matches!(v, Violation::Rank { .. }), "{v:?}");
        assert!(v.to_string().contains("taking OUTER (rank 1) while holding INNER (rank 2)"), "{v}");
        // Even on a fresh graph: the written order alone decides.
        let g = OrderGraph::new();
        let s = HeldStack::new();
        take(&s, &g, &INNER).unwrap();
        assert!(matches!(take(&s, &g, &OUTER), Err(Violation::Rank { .. })));
    }

    #[test]
    fn recursion_is_reported_but_try_lock_is_not_checked() {
        let g = OrderGraph::new();
        let s = HeldStack::new();
        take(&s, &g, &A).unwrap();
        assert_eq!(take(&s, &g, &A), Err(Violation::Recursion { class: &A }));
        let s = HeldStack::new();
        take(&s, &g, &B).unwrap();
        s.acquire(&g, &TEST_CLASSES, &A, false).unwrap();
        assert!(!g.has(1, 0), "a try_lock adds no edge");
        assert_eq!(s.depth(), 2, "but is held");
    }

    #[test]
    fn a_sleeping_lock_under_a_spin_lock_is_reported() {
        let g = OrderGraph::new();
        let s = HeldStack::new();
        s.might_sleep(&TEST_CLASSES, &OUTER).unwrap();
        take(&s, &g, &A).unwrap();
        let v = s.might_sleep(&TEST_CLASSES, &OUTER).unwrap_err();
        assert_eq!(v, Violation::SleepInAtomic { holding: &A, class: &OUTER });
        assert!(v.to_string().contains("sleeping lock OUTER taken while holding spin lock A"), "{v}");
    }

    #[test]
    fn releasing_what_is_not_held_and_overflow_are_reported() {
        let g = OrderGraph::new();
        let s = HeldStack::new();
        assert_eq!(s.release(&A), Err(Violation::NotHeld { class: &A }));
        for _ in 0..MAX_DEPTH {
            s.acquire(&g, &TEST_CLASSES, &A, false).unwrap();
        }
        assert_eq!(s.acquire(&g, &TEST_CLASSES, &B, false), Err(Violation::TooDeep { class: &B }));
    }
}
