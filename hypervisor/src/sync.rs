//! The hypervisor's locks: every spin lock, once-cell and heap allocation
//! goes through here, and each checks that the EL2 MMU and data cache are
//! on before it touches an atomic.
//!
//! # Lock order
//!
//! A CPU may take a lock only while every lock it holds comes *earlier* in
//! this list ([`LockClass::rank`]; outermost first). Two locks of one class
//! are never held together by a blocking `lock` (a `try_lock` may nest, it
//! cannot wait). In debug builds (and with the `lockdep` feature, for a
//! release build under test) every blocking `lock` of a ranked mutex
//! checks this against the locks its CPU holds and panics, naming both, on
//! an inversion (a tiny lockdep: Linux's `lockdep` without the graph, since
//! the order is written down here; [`HeldSet`] is the check).
//!
//! | rank | class | what it guards | taken inside |
//! | ---: | --- | --- | --- |
//! | 1 | [`VCPU`] | a vCPU's registers and state (`vm::Vm::vcpus`) | nothing: held by the CPU running it, for the whole run |
//! | 2 | [`CONSOLE_RX`] | the console UART's input side | vCPU (an IRQ exit) |
//! | 3 | [`PSCI`] | a VM's PSCI power states | vCPU (a hypercall; a vCPU picking up its CPU_ON) |
//! | 4 | [`VM_CONSOLE`] | a VM's vPL011 and line buffer | vCPU, console input |
//! | 5 | [`VIRTIO`] | one virtio-mmio device of a VM: a disk (`vdisk`) or a network card (`vnet`) | vCPU (a trapped access; a network card of another VM delivering frames) |
//! | 6 | [`VGIC`] | a VM's virtual GIC | vCPU, console input, virtio (its interrupt line) |
//! | 7 | [`STAGE2`] | a VM's stage-2 tables | vGIC (pass-through set-up), virtio (a RAM block filled before the device touches it) |
//! | 8 | [`FP_SLOT`] | one vCPU's saved FP/SIMD registers | vCPU (any VM's: lazy FP save) |
//! | 9 | [`CPU_ON`] | one vCPU's pending CPU_ON (entry, context) | vCPU (the caller's or the target's) |
//! | 10 | [`REQUEST`] | a VM's request details (why it stops) | vCPU, console input (`stop`) |
//! | 11 | [`GIC`] | the physical GIC driver | vGIC (the timer PPI's enable) |
//! | 12 | [`FRAMES`] | the physical frame allocator | boot, VM building |
//! | 13 | [`VSCHED_CAP`] | a VM's CPU-cap account (`vsched::Cap`) | vCPU (charged after its run), the run loop |
//! | 14 | [`SWITCH`] | the virtual switches (`vnet`, `vswitch`): MAC tables, backlogs | vCPU, virtio (a card's port up or down; its backlog taken); nothing is taken inside it |
//! | - | `console::CONSOLE` | the hypervisor console (`println!`) | anything: the innermost lock, unchecked (the crash path forces it open) |
//!
//! What the order forbids, and what is done instead:
//!
//! - **vCPU -> other vCPU.** A CPU that holds its vCPU never waits for
//!   another's: PSCI CPU_ON leaves the entry point in the target's
//!   [`CPU_ON`] slot and kicks it; the target's own CPU starts it (KVM's
//!   `reset_state` + `KVM_REQ_VCPU_RESET`). Statistics of siblings are read
//!   with `try_lock` (so are the console's `s` and `stats`, which may run
//!   in an IRQ exit of any vCPU; its `list` reads only atomics).
//! - **virtio -> virtio.** Two network cards are never locked together,
//!   or two VMs sending to each other at once would deadlock AB-BA: the
//!   sender copies its frames out under its own card's lock and drops it,
//!   hands them to the switch under [`SWITCH`] alone, and only then takes
//!   each receiving card's lock in turn (`vnet`).
//! - **Acting on a whole VM** (SYSTEM_RESET, SYSTEM_OFF, a fatal error, the
//!   last CPU_OFF) is a VM-wide request (`vmreq`): every vCPU leaves the
//!   guest and drops its lock, and then one CPU, holding no vCPU lock, takes
//!   each vCPU's lock in turn (KVM's `kvm_make_all_cpus_request`, Xen's
//!   `domain_pause`). Before this, SYSTEM_RESET from two vCPUs at once
//!   deadlocked AB-BA on their locks. The console's `pause`, `reset`,
//!   `stop` and `start` (`vmctl`) are such requests too.
//!
//! Locks made with [`Mutex::new`] have no class and are not checked (the
//! console's, and the heap's inside `buddy_system_allocator`, which is not
//! ours); every other lock named above is made with [`Mutex::ranked`].
//!
//! # Why the MMU check
//!
//! With the MMU off every data access is Device-nGnRnE, and the
//! exclusive loads/stores (or LSE atomics) a lock is made of are only
//! guaranteed on Normal cacheable memory (ARM ARM DDI 0487 B2.9). QEMU does
//! not model that, a real Cortex-A53/A72 may spin or fault; so boot turns
//! the MMU on first (`mm::early_map`, `arch/aarch64/boot.rs`), and
//! [`assert_mmu_on`] catches any lock taken before that: it prints the
//! caller's location on the console UART without any lock and stops the
//! machine. The check is one system-register read; on the host (unit tests)
//! it is nothing.
//!
//! - [`Mutex`], [`Once`]: `spin`'s, checked on `lock` and `call_once`.
//! - [`CountedMutex`]: a [`Mutex`] that counts the times its data was
//!   handed out mutably, so that a reader can tell cheaply that nothing can
//!   have changed since it last looked. The run loop uses it to skip
//!   rebuilding a vCPU's list registers on exits that did not touch the vGIC
//!   (most hypercalls, MMIO to other devices): the scan of every interrupt
//!   was 80% of a null hypercall's cost.
//! - [`MmuChecked`]: a `GlobalAlloc` wrapper (the heap is behind a lock).

use core::alloc::{GlobalAlloc, Layout};
use core::ops::{Deref, DerefMut};
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};

/// Stops the machine with a report naming `caller` if the EL2 MMU or data
/// cache is off (see the module doc). Nothing on the host.
#[inline(always)]
pub fn assert_mmu_on(caller: &'static Location<'static>) {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    crate::arch::aarch64::mmu::assert_mmu_on(caller);
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    let _ = caller;
}

/// A lock class of the written lock order (module doc): a name for
/// reports and a rank; a lock may be taken only while every lock held has
/// a smaller rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockClass {
    pub name: &'static str,
    pub rank: u8,
}

macro_rules! classes {
    ($($(#[$doc:meta])* $name:ident = $rank:literal;)*) => {
        $($(#[$doc])* pub const $name: LockClass = LockClass { name: stringify!($name), rank: $rank };)*
        /// Every class, by rank (for reports).
        pub const CLASSES: &[LockClass] = &[$($name),*];
    };
}

classes! {
    /// A vCPU (`vm::Vm::vcpus`).
    VCPU = 1;
    /// The console UART's input side (`console_in`).
    CONSOLE_RX = 2;
    /// A VM's PSCI state.
    PSCI = 3;
    /// A VM's emulated console.
    VM_CONSOLE = 4;
    /// One virtio-mmio disk of a VM.
    VIRTIO = 5;
    /// A VM's virtual GIC.
    VGIC = 6;
    /// A VM's stage-2 tables.
    STAGE2 = 7;
    /// One vCPU's saved FP/SIMD registers.
    FP_SLOT = 8;
    /// One vCPU's pending PSCI CPU_ON.
    CPU_ON = 9;
    /// A VM's request details.
    REQUEST = 10;
    /// The physical GIC driver.
    GIC = 11;
    /// The frame allocator.
    FRAMES = 12;
    /// A VM's CPU-cap account.
    VSCHED_CAP = 13;
    /// The virtual switches (`vnet`).
    SWITCH = 14;
}

/// Number of ranks [`HeldSet`] tracks (ranks are `1..NR_RANKS`).
pub const NR_RANKS: usize = 16;

/// A lock-order violation: `taking` was asked for while `holding` was held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inversion {
    pub holding: u8,
    pub taking: u8,
}

impl core::fmt::Display for Inversion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = |r: u8| CLASSES.iter().find(|c| c.rank == r).map_or("?", |c| c.name);
        write!(
            f,
            "lock order: taking {} (rank {}) while holding {} (rank {}); see sync.rs",
            name(self.taking),
            self.taking,
            name(self.holding),
            self.holding
        )
    }
}

/// The ranked locks one CPU holds: how many of each rank. Pure; the
/// per-CPU instance lives in [`with_held`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldSet {
    count: [u8; NR_RANKS],
}

impl HeldSet {
    /// Empty.
    pub const fn new() -> Self {
        Self { count: [0; NR_RANKS] }
    }

    /// The highest rank held, if any.
    pub fn highest(&self) -> Option<u8> {
        (0..NR_RANKS).rev().find(|&r| self.count[r] > 0).map(|r| r as u8)
    }

    /// Records taking a lock of `rank`. A blocking acquisition (`wait`)
    /// must come after everything held; a `try_lock` cannot deadlock and is
    /// only recorded. The lock is recorded even on an inversion.
    pub fn acquire(&mut self, rank: u8, wait: bool) -> Result<(), Inversion> {
        let r = (rank as usize).min(NR_RANKS - 1);
        let check = match self.highest() {
            Some(h) if wait && h >= rank => Err(Inversion { holding: h, taking: rank }),
            _ => Ok(()),
        };
        self.count[r] = self.count[r].saturating_add(1);
        check
    }

    /// Records releasing a lock of `rank`.
    pub fn release(&mut self, rank: u8) {
        let r = (rank as usize).min(NR_RANKS - 1);
        self.count[r] = self.count[r].saturating_sub(1);
    }
}

/// The debug-build check: each CPU's [`HeldSet`] (each thread's in host
/// unit tests). Elsewhere (release builds, host builds of the library
/// outside its tests) the notes are nothing.
#[cfg(all(any(debug_assertions, feature = "lockdep"), any(test, all(target_arch = "aarch64", target_os = "none"))))]
mod lockdep {
    use super::{HeldSet, LockClass};

    /// Runs `f` on this CPU's [`HeldSet`].
    // A named exception to the crate's `deny(unsafe_code)`: per-CPU data
    // without a lock (a lock here would recurse into this check); why it
    // is sound is below.
    #[cfg(not(test))]
    #[allow(unsafe_code)]
    fn with_held<R>(f: impl FnOnce(&mut HeldSet) -> R) -> R {
        use crate::arch::aarch64::{MAX_CPUS, smp};
        struct Slots([core::cell::UnsafeCell<HeldSet>; MAX_CPUS]);
        // SAFETY: slot `n` is only touched by CPU `n`, with interrupts
        // masked at EL2 (nothing re-enters it).
        unsafe impl Sync for Slots {}
        static HELD: Slots = Slots([const { core::cell::UnsafeCell::new(HeldSet::new()) }; MAX_CPUS]);
        let cpu = smp::cpu_index().min(MAX_CPUS - 1);
        // SAFETY: see `Slots`: this CPU's slot, no other reference lives.
        f(unsafe { &mut *HELD.0[cpu].get() })
    }

    /// Runs `f` on this thread's [`HeldSet`] (a thread is a CPU in tests).
    #[cfg(test)]
    pub(super) fn with_held<R>(f: impl FnOnce(&mut HeldSet) -> R) -> R {
        std::thread_local! {
            static HELD: core::cell::RefCell<HeldSet> = const { core::cell::RefCell::new(HeldSet::new()) };
        }
        HELD.with(|h| f(&mut h.borrow_mut()))
    }

    /// Records taking a lock of `class` on this CPU; panics on an inversion.
    pub(super) fn note_acquire(class: Option<LockClass>, wait: bool) {
        if let Some(c) = class
            && let Err(e) = with_held(|h| h.acquire(c.rank, wait))
        {
            panic!("{e}");
        }
    }

    /// Records releasing a lock of `class` on this CPU.
    pub(super) fn note_release(class: Option<LockClass>) {
        if let Some(c) = class {
            with_held(|h| h.release(c.rank));
        }
    }
}

#[cfg(not(all(
    any(debug_assertions, feature = "lockdep"),
    any(test, all(target_arch = "aarch64", target_os = "none"))
)))]
mod lockdep {
    use super::LockClass;

    #[inline(always)]
    pub(super) fn note_acquire(_: Option<LockClass>, _: bool) {}

    #[inline(always)]
    pub(super) fn note_release(_: Option<LockClass>) {}
}

use lockdep::{note_acquire, note_release};

/// A spin lock that may only be taken with the MMU and caches on, and
/// (ranked, debug builds) only in the written lock order.
pub struct Mutex<T: ?Sized> {
    class: Option<LockClass>,
    inner: spin::Mutex<T>,
}

/// The guard of a [`Mutex`].
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    class: Option<LockClass>,
    guard: spin::MutexGuard<'a, T>,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        note_release(self.class);
    }
}

impl<T> Mutex<T> {
    /// Wraps `value`, in no lock class (not order-checked).
    pub const fn new(value: T) -> Self {
        Self { class: None, inner: spin::Mutex::new(value) }
    }

    /// Wraps `value` in lock class `class` (see the module doc).
    pub const fn ranked(class: LockClass, value: T) -> Self {
        Self { class: Some(class), inner: spin::Mutex::new(value) }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks (spinning).
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        assert_mmu_on(Location::caller());
        note_acquire(self.class, true);
        MutexGuard { class: self.class, guard: self.inner.lock() }
    }

    /// Locks if the lock is free.
    #[inline]
    #[track_caller]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        assert_mmu_on(Location::caller());
        let guard = self.inner.try_lock()?;
        note_acquire(self.class, false);
        Some(MutexGuard { class: self.class, guard })
    }

    /// Forces the lock open (a plain store, no exclusive access).
    ///
    /// # Safety
    /// As `spin::Mutex::force_unlock`: the holder must never touch the data
    /// again (its guard is never dropped, so its CPU's held set keeps it:
    /// only for the crash path).
    // A named exception to the crate's `deny(unsafe_code)`: the crash
    // console (`console::emergency_print`) needs it; it only passes on
    // spin's contract.
    #[allow(unsafe_code)]
    pub unsafe fn force_unlock(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.inner.force_unlock() }
    }
}

/// A once-cell whose initialisation may only run with the MMU and caches
/// on; reading it is a single load-acquire, allowed at any time.
pub struct Once<T>(spin::Once<T>);

impl<T> Once<T> {
    /// Empty.
    pub const fn new() -> Self {
        Self(spin::Once::new())
    }

    /// Initialises with `f` unless done already; returns the value.
    #[inline]
    #[track_caller]
    pub fn call_once(&self, f: impl FnOnce() -> T) -> &T {
        assert_mmu_on(Location::caller());
        self.0.call_once(f)
    }

    /// The value, if initialised.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        self.0.get()
    }
}

impl<T> Default for Once<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A global allocator wrapper that checks the MMU before every call into
/// the locked allocator it wraps (the report names this file: the caller
/// behind `alloc` is not known).
pub struct MmuChecked<A>(pub A);

impl<A> MmuChecked<A> {
    /// The wrapped allocator, for calls of its own (`init`), checked.
    #[inline]
    #[track_caller]
    pub fn checked(&self) -> &A {
        assert_mmu_on(Location::caller());
        &self.0
    }
}

// A named exception to the crate's `deny(unsafe_code)`: a global
// allocator is an `unsafe impl` by definition.
// SAFETY: every call is forwarded unchanged to `A`, which upholds the
// `GlobalAlloc` contract; the check only reads a system register.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for MmuChecked<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        assert_mmu_on(Location::caller());
        // SAFETY: the caller's `GlobalAlloc::alloc` contract, passed on.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        assert_mmu_on(Location::caller());
        // SAFETY: the caller's `GlobalAlloc::dealloc` contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        assert_mmu_on(Location::caller());
        // SAFETY: the caller's `GlobalAlloc::alloc_zeroed` contract, passed on.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        assert_mmu_on(Location::caller());
        // SAFETY: the caller's `GlobalAlloc::realloc` contract, passed on.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// A mutex with a change counter.
pub struct CountedMutex<T> {
    inner: Mutex<T>,
    changes: AtomicU64,
}

/// The guard of a [`CountedMutex`]: each mutable dereference counts as a
/// change (conservatively: a `&mut` that writes nothing counts too).
pub struct CountedGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    changes: &'a AtomicU64,
}

impl<T> CountedMutex<T> {
    /// Wraps `value`, in lock class `class`.
    pub const fn ranked(class: LockClass, value: T) -> Self {
        Self { inner: Mutex::ranked(class, value), changes: AtomicU64::new(0) }
    }

    /// Locks (spinning).
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> CountedGuard<'_, T> {
        CountedGuard { guard: self.inner.lock(), changes: &self.changes }
    }

    /// How many mutable accesses there have been. Read under the lock, it
    /// is exact; without, it only grows.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }
}

impl<T> Deref for CountedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for CountedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.changes.fetch_add(1, Ordering::Release);
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_mutable_access_only() {
        let m = CountedMutex::ranked(VGIC, vec![1, 2]);
        assert_eq!(m.lock().len(), 2);
        assert_eq!(m.changes(), 0, "reading is not a change");
        m.lock().push(3);
        assert_eq!(m.changes(), 1);
        {
            let mut g = m.lock();
            g[0] = 7;
            *g = vec![0];
        }
        assert_eq!(m.changes(), 3);
        assert_eq!(*m.lock(), [0]);
    }

    #[test]
    fn lockdep_accepts_the_written_order() {
        let (vcpu, psci, vgic) = (Mutex::ranked(VCPU, 0), Mutex::ranked(PSCI, 0), CountedMutex::ranked(VGIC, 0));
        let _v = vcpu.lock();
        drop(psci.lock());
        let _g = vgic.lock();
        let unranked = Mutex::new(());
        let _u = unranked.lock();
        assert_eq!(lockdep::with_held(|h| h.highest()), Some(VGIC.rank));
    }

    #[test]
    fn lockdep_catches_an_inversion() {
        let (vcpu, vgic) = (std::sync::Arc::new(Mutex::ranked(VCPU, 0)), Mutex::ranked(VGIC, 0));
        let v2 = vcpu.clone();
        let caught = std::thread::spawn(move || {
            let _g = vgic.lock();
            let _v = v2.lock();
        })
        .join()
        .expect_err("taking a vCPU lock under the vGIC's must panic");
        let msg = caught.downcast_ref::<String>().expect("a formatted panic message");
        assert_eq!(msg, "lock order: taking VCPU (rank 1) while holding VGIC (rank 6); see sync.rs");
        // This thread's set was never touched: the order still holds here.
        drop(vcpu.lock());
    }

    #[test]
    fn two_vcpu_locks_nest_only_by_try_lock() {
        let (a, b) = (Mutex::ranked(VCPU, 0), std::sync::Arc::new(Mutex::ranked(VCPU, 1)));
        {
            let _a = a.lock();
            assert!(b.try_lock().is_some(), "a try_lock cannot deadlock: allowed");
        }
        let mut h = HeldSet::new();
        h.acquire(VCPU.rank, true).unwrap();
        assert_eq!(h.acquire(VCPU.rank, true), Err(Inversion { holding: 1, taking: 1 }));
        h.release(VCPU.rank);
        h.release(VCPU.rank);
        assert_eq!(h.highest(), None);
        assert_eq!(h.acquire(FRAMES.rank, true), Ok(()));
    }

    #[test]
    fn classes_are_ranked_in_the_documented_order() {
        for w in CLASSES.windows(2) {
            assert!(w[0].rank < w[1].rank, "{w:?}");
        }
        assert!(CLASSES.last().unwrap().rank < NR_RANKS as u8);
    }
}
