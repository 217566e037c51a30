//! VM-wide requests: the protocol by which something that must act on a
//! whole VM (SYSTEM_RESET, SYSTEM_OFF, a fatal error, CPU_OFF of its last
//! vCPU) gets every vCPU of the VM out of the guest first, then acts once,
//! holding no vCPU lock while it waits (KVM's `kvm_make_all_cpus_request`
//! with `KVM_REQUEST_WAIT`, Xen's `domain_pause`).
//!
//! The steps, and who takes them:
//!
//! 1. A requester [`VmRequests::post`]s a [`Request`] and kicks (IPI) the
//!    physical CPUs of the VM's vCPUs. Posts merge: two resets are one
//!    reset, and a stop wins over a reset.
//! 2. A CPU enters a vCPU only through [`VmRequests::enter`], which refuses
//!    while a request is pending; a CPU running one leaves the guest at its
//!    next exit once a request is pending (the kick makes sure there is
//!    one), then calls [`VmRequests::leave`] and drops the vCPU's lock.
//! 3. Any CPU that finds a request pending and no vCPU in the guest
//!    [`VmRequests::claim`]s it (exactly one succeeds), acts with no vCPU
//!    lock held on entry, taking each vCPU's lock in turn, and calls
//!    [`VmRequests::finish`]. Nobody spins waiting: the CPU of the last
//!    vCPU to leave finds the request claimable in its scheduling loop.
//!
//! Why no vCPU can slip into the guest after a claim: `enter` marks the
//! vCPU in the guest and *then* reads the request; `post` writes the
//! request and `claim` *then* reads the in-guest set. All four are
//! sequentially consistent, so at least one side sees the other (the
//! Dekker pattern of KVM's `vcpu->mode = IN_GUEST_MODE; smp_mb();
//! kvm_request_pending()`).
//!
//! The generic parts of the state are atomics, so that the hot path (one
//! load per guest exit) takes no lock.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

/// What a VM is asked to do. Ordered by precedence: a pending request is
/// replaced by a stronger one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    /// PSCI SYSTEM_RESET: reload the VM from its images, vCPU 0 at entry.
    Reset = 1,
    /// Stop the VM for good (SYSTEM_OFF, a fatal error, every vCPU off).
    Stop = 2,
}

impl Request {
    fn from_bits(bits: u32) -> Option<Self> {
        match bits & KIND {
            1 => Some(Self::Reset),
            2 => Some(Self::Stop),
            _ => None,
        }
    }
}

/// `state` bits: the pending request's kind, and whether a CPU has
/// claimed it and is acting on it.
const KIND: u32 = 0b11;
const CLAIMED: u32 = 0b100;

/// One VM's request state.
#[derive(Debug, Default)]
pub struct VmRequests {
    state: AtomicU32,
    /// Bit `i`: vCPU `i` is in the guest (or entering it).
    in_guest: AtomicU32,
}

impl VmRequests {
    /// Nothing pending, no vCPU in the guest.
    pub const fn new() -> Self {
        Self { state: AtomicU32::new(0), in_guest: AtomicU32::new(0) }
    }

    /// Asks the VM for `r`. Returns true if this changed what is pending
    /// (the caller then kicks the VM's vCPUs out of the guest); false if
    /// an equal or stronger request was already pending.
    pub fn post(&self, r: Request) -> bool {
        let mut cur = self.state.load(SeqCst);
        loop {
            if Request::from_bits(cur).is_some_and(|p| p >= r) {
                return false;
            }
            let new = (cur & !KIND) | r as u32;
            match self.state.compare_exchange(cur, new, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// The pending request, claimed or not.
    pub fn pending(&self) -> Option<Request> {
        Request::from_bits(self.state.load(SeqCst))
    }

    /// vCPU `vcpu` is about to enter the guest. False (and it is not
    /// counted as in the guest) while a request is pending: the caller must
    /// not enter.
    pub fn enter(&self, vcpu: usize) -> bool {
        let bit = 1u32 << (vcpu % 32);
        self.in_guest.fetch_or(bit, SeqCst);
        if self.pending().is_some() {
            self.in_guest.fetch_and(!bit, SeqCst);
            return false;
        }
        true
    }

    /// vCPU `vcpu` has left the guest and its state is saved.
    pub fn leave(&self, vcpu: usize) {
        self.in_guest.fetch_and(!(1u32 << (vcpu % 32)), SeqCst);
    }

    /// The vCPUs in the guest, one bit each (those a requester must kick).
    pub fn in_guest(&self) -> u32 {
        self.in_guest.load(SeqCst)
    }

    /// Claims the pending request once every vCPU is out of the guest:
    /// the one caller that gets `Some` must carry it out and then call
    /// [`Self::finish`]. None if nothing is pending, a vCPU is still in
    /// the guest, or another CPU claimed it.
    pub fn claim(&self) -> Option<Request> {
        let mut cur = self.state.load(SeqCst);
        loop {
            let r = Request::from_bits(cur)?;
            if cur & CLAIMED != 0 || self.in_guest.load(SeqCst) != 0 {
                return None;
            }
            match self.state.compare_exchange(cur, cur | CLAIMED, SeqCst, SeqCst) {
                Ok(_) => return Some(r),
                Err(now) => cur = now,
            }
        }
    }

    /// The claimed request `done` has been carried out. A stronger request
    /// posted meanwhile stays pending, unclaimed, for another round.
    pub fn finish(&self, done: Request) {
        let mut cur = self.state.load(SeqCst);
        loop {
            let new = match Request::from_bits(cur) {
                Some(p) if p > done => p as u32,
                _ => 0,
            };
            match self.state.compare_exchange(cur, new, SeqCst, SeqCst) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_waits_for_every_vcpu_to_leave() {
        let q = VmRequests::new();
        assert!(q.enter(0) && q.enter(1));
        assert!(q.post(Request::Reset));
        assert_eq!(q.claim(), None, "both vCPUs are in the guest");
        assert_eq!(q.in_guest(), 0b11, "the requester kicks these");
        q.leave(0);
        assert_eq!(q.claim(), None, "vCPU 1 is still in the guest");
        assert!(!q.enter(0), "no vCPU enters while a request is pending");
        q.leave(1);
        assert_eq!(q.claim(), Some(Request::Reset));
        assert_eq!(q.claim(), None, "claimed once");
        assert!(!q.enter(1), "nor while it is carried out");
        q.finish(Request::Reset);
        assert_eq!(q.pending(), None);
        assert!(q.enter(0), "afterwards the VM runs again");
    }

    #[test]
    fn two_resets_at_once_are_one_reset() {
        let q = VmRequests::new();
        assert!(q.post(Request::Reset));
        assert!(!q.post(Request::Reset), "merged: no second kick, no second reset");
        assert_eq!(q.claim(), Some(Request::Reset));
        q.finish(Request::Reset);
        assert_eq!(q.claim(), None);
    }

    #[test]
    fn a_stop_wins_over_a_reset() {
        let q = VmRequests::new();
        assert!(q.post(Request::Reset));
        assert!(q.post(Request::Stop));
        assert!(!q.post(Request::Reset), "a reset cannot undo a pending stop");
        assert_eq!(q.claim(), Some(Request::Stop));
    }

    #[test]
    fn a_stop_posted_during_a_reset_runs_after_it() {
        let q = VmRequests::new();
        q.post(Request::Reset);
        assert_eq!(q.claim(), Some(Request::Reset));
        assert!(q.post(Request::Stop));
        assert_eq!(q.claim(), None, "the reset is still being carried out");
        q.finish(Request::Reset);
        assert_eq!(q.pending(), Some(Request::Stop));
        assert!(!q.enter(0));
        assert_eq!(q.claim(), Some(Request::Stop));
        q.finish(Request::Stop);
        assert_eq!(q.pending(), None);
    }

    #[test]
    fn nothing_to_claim_without_a_request() {
        let q = VmRequests::new();
        assert_eq!(q.claim(), None);
        q.finish(Request::Reset);
        assert_eq!(q.pending(), None);
    }

    /// Threads as physical CPUs: each runs "its" vCPU (enter, a guest
    /// stretch, leave) and polls for claims, while two of them post resets.
    /// Exactly one CPU acts per round, and never while a vCPU is in the
    /// guest.
    #[test]
    fn concurrent_cpus_act_once_and_never_beside_a_running_vcpu() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        const CPUS: usize = 4;
        const ROUNDS: usize = 200;
        let q = Arc::new(VmRequests::new());
        let in_guest = Arc::new(AtomicUsize::new(0));
        let acted = Arc::new(AtomicUsize::new(0));
        let posted = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CPUS)
            .map(|cpu| {
                let (q, in_guest, acted, posted, done) =
                    (q.clone(), in_guest.clone(), acted.clone(), posted.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !done.load(SeqCst) {
                        if let Some(r) = q.claim() {
                            assert_eq!(in_guest.load(SeqCst), 0, "acting beside a running vCPU");
                            acted.fetch_add(1, SeqCst);
                            q.finish(r);
                            if acted.load(SeqCst) >= ROUNDS {
                                done.store(true, SeqCst);
                            }
                        }
                        if q.enter(cpu) {
                            in_guest.fetch_add(1, SeqCst);
                            i += 1;
                            // The "guest" asks for a reset now and then.
                            if cpu < 2 && i.is_multiple_of(7) && q.post(Request::Reset) {
                                posted.fetch_add(1, SeqCst);
                            }
                            in_guest.fetch_sub(1, SeqCst);
                            q.leave(cpu);
                        }
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (acted, posted) = (acted.load(SeqCst), posted.load(SeqCst));
        assert!(acted >= ROUNDS && posted >= acted && posted <= acted + 1, "acted {acted}, posted {posted}");
    }
}
