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
//!
//! **Pause** (the console's `pause`, Xen's `xl pause` / `domain_pause`,
//! KVM's paused vCPU threads) is not a request but a standing condition:
//! [`VmRequests::pause`] sets it, and while it is set [`VmRequests::enter`]
//! refuses just as it does while a request is pending (the same Dekker
//! pairing), so the vCPUs stay out of the guest with their registers,
//! timers and pending interrupts kept until [`VmRequests::unpause`]. Once
//! every vCPU is out, exactly one CPU gets `true` from
//! [`VmRequests::parked`] and reports the pause as done. A request is
//! still carried out while the VM is paused (a reset reloads it, and it
//! stays paused); a stop or a start ends the pause.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

/// What a VM is asked to do. Ordered by precedence: a pending request is
/// replaced by a stronger one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    /// PSCI SYSTEM_RESET: reload the VM from its images, vCPU 0 at entry.
    Reset = 1,
    /// Start a stopped VM again from its images (the console's `start`,
    /// Xen's `xl create` of a configured domain): a reset of a VM that is
    /// stopped. Ignored if the VM is not stopped when it is carried out.
    Start = 2,
    /// Stop the VM (SYSTEM_OFF, a fatal error, every vCPU off, the
    /// console's `stop`); only a later [`Request::Start`] runs it again.
    Stop = 3,
}

impl Request {
    fn from_bits(bits: u32) -> Option<Self> {
        match bits & KIND {
            1 => Some(Self::Reset),
            2 => Some(Self::Start),
            3 => Some(Self::Stop),
            _ => None,
        }
    }
}

/// `state` bits: the pending request's kind, and whether a CPU has
/// claimed it and is acting on it; whether the VM is paused, and whether
/// the pause has been reported done (every vCPU was out).
const KIND: u32 = 0b11;
const CLAIMED: u32 = 0b100;
const PAUSED: u32 = 0b1000;
const PARKED: u32 = 0b1_0000;

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

    /// Whether a vCPU must stay out of (or leave) the guest: a request is
    /// pending or the VM is paused. One load: the check after every exit.
    pub fn must_leave(&self) -> bool {
        self.state.load(SeqCst) & (KIND | PAUSED) != 0
    }

    /// Pauses the VM: no vCPU enters the guest until [`Self::unpause`].
    /// Returns true if it was not paused (the caller then kicks the VM's
    /// vCPUs out of the guest).
    pub fn pause(&self) -> bool {
        self.state.fetch_or(PAUSED, SeqCst) & PAUSED == 0
    }

    /// Ends a pause. Returns true if the VM was paused (the caller then
    /// wakes the CPUs that parked its vCPUs).
    pub fn unpause(&self) -> bool {
        self.state.fetch_and(!(PAUSED | PARKED), SeqCst) & PAUSED != 0
    }

    /// Whether the VM is paused (its vCPUs may still be on their way out:
    /// see [`Self::is_parked`]).
    pub fn is_paused(&self) -> bool {
        self.state.load(SeqCst) & PAUSED != 0
    }

    /// Whether the pause has taken effect: every vCPU was out of the guest
    /// and [`Self::parked`] said so.
    pub fn is_parked(&self) -> bool {
        self.state.load(SeqCst) & (PAUSED | PARKED) == PAUSED | PARKED
    }

    /// True exactly once per pause, for the one caller that finds the VM
    /// paused with every vCPU out of the guest: it reports the pause done.
    /// From then on no vCPU of the VM runs guest code until
    /// [`Self::unpause`].
    pub fn parked(&self) -> bool {
        let mut cur = self.state.load(SeqCst);
        loop {
            if cur & (PAUSED | PARKED) != PAUSED || self.in_guest.load(SeqCst) != 0 {
                return false;
            }
            match self.state.compare_exchange(cur, cur | PARKED, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// vCPU `vcpu` is about to enter the guest. False (and it is not
    /// counted as in the guest) while a request is pending or the VM is
    /// paused: the caller must not enter.
    pub fn enter(&self, vcpu: usize) -> bool {
        let bit = 1u32 << (vcpu % 32);
        self.in_guest.fetch_or(bit, SeqCst);
        if self.must_leave() {
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
    /// posted meanwhile stays pending, unclaimed, for another round. A stop
    /// or a start ends a pause; a reset keeps it.
    pub fn finish(&self, done: Request) {
        let mut cur = self.state.load(SeqCst);
        loop {
            let keep = if done == Request::Reset { cur & (PAUSED | PARKED) } else { 0 };
            let new = keep
                | match Request::from_bits(cur) {
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
    fn a_paused_vm_does_not_enter_and_reports_the_pause_once_every_vcpu_is_out() {
        let q = VmRequests::new();
        assert!(q.enter(0) && q.enter(1));
        assert!(q.pause(), "the caller kicks");
        assert!(!q.pause(), "already paused: no second kick");
        assert!(q.must_leave(), "the vCPUs leave at their next exit");
        assert!(!q.parked(), "both vCPUs are still in the guest");
        q.leave(0);
        assert!(!q.enter(0), "no vCPU enters a paused VM");
        assert!(!q.parked() && !q.is_parked(), "vCPU 1 is still in the guest");
        q.leave(1);
        assert!(q.parked(), "every vCPU is out: reported once");
        assert!(!q.parked(), "only once");
        assert!(q.is_paused() && q.is_parked());
        assert_eq!(q.claim(), None, "a pause is not a request");
        assert!(q.unpause());
        assert!(!q.unpause(), "not paused any more");
        assert!(!q.must_leave() && !q.is_paused() && !q.is_parked());
        assert!(q.enter(0), "it runs again");
        assert!(q.pause());
        q.leave(0);
        assert!(q.parked(), "a new pause is reported again");
    }

    #[test]
    fn a_reset_keeps_a_pause_and_a_stop_or_start_ends_it() {
        let q = VmRequests::new();
        assert!(q.pause() && q.parked());
        assert!(q.post(Request::Reset));
        assert_eq!(q.claim(), Some(Request::Reset), "carried out while paused");
        q.finish(Request::Reset);
        assert!(q.is_parked() && !q.enter(0), "still paused after the reset");
        assert!(q.post(Request::Stop));
        assert_eq!(q.claim(), Some(Request::Stop));
        q.finish(Request::Stop);
        assert!(!q.is_paused() && !q.must_leave(), "a stopped VM is not paused");
        q.pause();
        assert!(q.post(Request::Start));
        assert_eq!(q.claim(), Some(Request::Start));
        q.finish(Request::Start);
        assert!(!q.is_paused() && q.enter(0), "a started VM runs");
    }

    #[test]
    fn a_stop_wins_over_a_start_and_a_start_over_a_reset() {
        let q = VmRequests::new();
        assert!(q.post(Request::Reset));
        assert!(q.post(Request::Start));
        assert!(q.post(Request::Stop));
        assert!(!q.post(Request::Start), "a start cannot undo a pending stop");
        assert_eq!(q.claim(), Some(Request::Stop));
    }

    #[test]
    fn nothing_to_claim_without_a_request() {
        let q = VmRequests::new();
        assert_eq!(q.claim(), None);
        q.finish(Request::Reset);
        assert_eq!(q.pending(), None);
    }

    /// Threads as physical CPUs run "their" vCPUs while another pauses
    /// and unpauses the VM: once a CPU has been told the pause took
    /// effect, no vCPU is in the guest until the unpause.
    #[test]
    fn once_a_pause_is_reported_no_vcpu_runs_until_unpause() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        const CPUS: usize = 3;
        let q = Arc::new(VmRequests::new());
        let in_guest = Arc::new(AtomicUsize::new(0));
        let reported = Arc::new(AtomicUsize::new(0));
        let parked = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CPUS)
            .map(|cpu| {
                let (q, in_guest, reported, parked, done) =
                    (q.clone(), in_guest.clone(), reported.clone(), parked.clone(), done.clone());
                std::thread::spawn(move || {
                    while !done.load(SeqCst) {
                        if q.parked() {
                            assert_eq!(in_guest.load(SeqCst), 0, "reported paused beside a running vCPU");
                            parked.store(true, SeqCst);
                            reported.fetch_add(1, SeqCst);
                        }
                        if q.enter(cpu) {
                            in_guest.fetch_add(1, SeqCst);
                            assert!(!parked.load(SeqCst), "a vCPU entered a paused VM");
                            in_guest.fetch_sub(1, SeqCst);
                            q.leave(cpu);
                        }
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        for round in 1..=30 {
            assert!(q.pause());
            while reported.load(SeqCst) < round {
                std::hint::spin_loop();
            }
            // The controller clears its flag before unpausing, as the
            // hypervisor's vCPUs may run again at once.
            parked.store(false, SeqCst);
            assert!(q.unpause());
        }
        done.store(true, SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(reported.load(SeqCst), 30, "each pause reported once");
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
