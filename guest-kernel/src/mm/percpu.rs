//! Per-CPU data (LKD ch. 12, "Per-CPU Allocations"; 《Linux内核深度解析》
//! §3.10 每处理器内存分配器).
//!
//! Each CPU's copy sits in its own cache line (`#[repr(align(64))]`), so one
//! CPU writing its copy never invalidates another CPU's line. Access goes
//! through a guard that holds preemption disabled, as `get_cpu_var()` /
//! `put_cpu_var()` do: the task cannot migrate while it uses "its" copy.
//!
//! Unlike Linux, every slot also has a spinlock (class `sync::PERCPU`). It is uncontended in the
//! normal case (one atomic per access) and makes remote access
//! (`per_cpu(var, cpu)`) and re-entry from an interrupt handler safe instead
//! of undefined: re-entry is reported as a panic that names the CPU.

use core::ops::{Deref, DerefMut};

use super::zone::NR_CPUS;
use crate::sync::{self, SpinLock, SpinLockGuard};

/// What per-CPU access needs from the scheduler.
///
/// The scheduler implements it with `preempt_count` in `thread_info`:
/// `preempt_disable()` increments it, `preempt_enable()` decrements it and
/// reschedules if `need_resched` is set and the count reached zero.
pub trait Preempt {
    /// `preempt_disable()`.
    fn preempt_disable(&self);
    /// `preempt_enable()`.
    fn preempt_enable(&self);
    /// `smp_processor_id()`; only stable while preemption is disabled.
    fn smp_processor_id(&self) -> usize;
}

/// One CPU's copy, alone in its cache line.
#[repr(align(64))]
struct Slot<T>(SpinLock<T>);

/// `DEFINE_PER_CPU(T, name)`.
pub struct PerCpu<T> {
    slots: [Slot<T>; NR_CPUS],
}

impl<T> PerCpu<T> {
    /// Every CPU's copy starts as `init()`.
    pub fn new(mut init: impl FnMut() -> T) -> Self {
        PerCpu { slots: core::array::from_fn(|_| Slot(SpinLock::new(&sync::PERCPU, init()))) }
    }

    /// `get_cpu_var()`: this CPU's copy with preemption disabled until the
    /// guard drops (`put_cpu_var()`).
    pub fn get_cpu_var<'a, P: Preempt>(&'a self, preempt: &'a P) -> PerCpuGuard<'a, T, P> {
        preempt.preempt_disable();
        let cpu = preempt.smp_processor_id();
        let Some(guard) = self.slots[cpu].0.try_lock() else {
            preempt.preempt_enable();
            panic!("per-CPU variable re-entered on cpu {cpu} (interrupt handlers need irqsave access)");
        };
        PerCpuGuard { guard, preempt, cpu }
    }

    /// `per_cpu(var, cpu)`: another CPU's copy, e.g. to sum counters.
    pub fn per_cpu<R>(&self, cpu: usize, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.slots[cpu].0.lock())
    }

    /// `for_each_possible_cpu` fold.
    pub fn fold<A>(&self, init: A, mut f: impl FnMut(A, &T) -> A) -> A {
        let mut acc = init;
        for s in &self.slots {
            acc = f(acc, &s.0.lock());
        }
        acc
    }
}

/// This CPU's copy; preemption is enabled again on drop.
pub struct PerCpuGuard<'a, T, P: Preempt> {
    guard: SpinLockGuard<'a, T>,
    preempt: &'a P,
    cpu: usize,
}

impl<T, P: Preempt> PerCpuGuard<'_, T, P> {
    /// The CPU whose copy this is.
    pub fn cpu(&self) -> usize {
        self.cpu
    }
}

impl<T, P: Preempt> Deref for PerCpuGuard<'_, T, P> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T, P: Preempt> DerefMut for PerCpuGuard<'_, T, P> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T, P: Preempt> Drop for PerCpuGuard<'_, T, P> {
    fn drop(&mut self) {
        // The slot lock is released after this (field drop order), before
        // anyone else can run on this CPU only if preemption stays off; the
        // lock makes the small window harmless anyway.
        self.preempt.preempt_enable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    struct FakeCpu {
        count: Cell<u32>,
        cpu: Cell<usize>,
    }

    impl Preempt for FakeCpu {
        fn preempt_disable(&self) {
            self.count.set(self.count.get() + 1);
        }
        fn preempt_enable(&self) {
            self.count.set(self.count.get() - 1);
        }
        fn smp_processor_id(&self) -> usize {
            self.cpu.get()
        }
    }

    #[test]
    fn slots_are_cache_line_aligned_and_independent() {
        let v: PerCpu<u64> = PerCpu::new(|| 0);
        let a = &v.slots[0] as *const _ as usize;
        let b = &v.slots[1] as *const _ as usize;
        assert_eq!(a % 64, 0);
        assert_eq!(b - a, 64);
        let p = FakeCpu { count: Cell::new(0), cpu: Cell::new(2) };
        {
            let mut g = v.get_cpu_var(&p);
            assert_eq!(p.count.get(), 1, "preemption disabled while in use");
            assert_eq!(g.cpu(), 2);
            *g += 5;
        }
        assert_eq!(p.count.get(), 0);
        p.cpu.set(3);
        *v.get_cpu_var(&p) += 7;
        assert_eq!(v.per_cpu(2, |x| *x), 5);
        assert_eq!(v.fold(0, |s, x| s + x), 12);
    }

    #[test]
    #[should_panic(expected = "re-entered on cpu 1")]
    fn reentry_is_reported() {
        let v: PerCpu<u32> = PerCpu::new(|| 0);
        let p = FakeCpu { count: Cell::new(0), cpu: Cell::new(1) };
        let _g = v.get_cpu_var(&p);
        let _h = v.get_cpu_var(&p);
    }
}
