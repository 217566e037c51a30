//! Set/way cache maintenance from a guest, as KVM emulates it
//! (`arch/arm64/kvm/mmu.c`: `kvm_set_way_flush`, `kvm_toggle_cache`), and
//! the flush it calls for done in bounded chunks.
//!
//! Set/way operations name lines of one CPU's caches, which mean nothing
//! to a VM whose memory may sit in any CPU's cache (ARM ARM D7.5.9
//! "Performing cache maintenance by set/way"): guests use them around
//! turning their caches on or off. So the first one flushes the VM's whole
//! RAM by VA and starts trapping the EL1 VM controls (HCR_EL2.TVM); further
//! ones do nothing until the guest switches its caches (SCTLR_EL1.{M,C}),
//! which flushes again, and once the caches are on TVM is dropped.
//!
//! A whole-RAM flush is long (about 0.25 s for 512 MiB under QEMU), far
//! more than a 10 ms time slice, and a guest can ask for one as often as
//! it likes. So a flush is never done in one go at EL2: the vCPU is held
//! out of its guest with a [`FlushCursor`], and each time it is scheduled
//! it flushes [`CHUNK`]-sized pieces until its slice is over: the flush
//! costs the VM that asked for it its own time, and other vCPUs on the
//! CPU still get theirs.

/// Bytes cleaned and invalidated between two looks at the clock.
pub const CHUNK: u64 = 1 << 20;

/// What a trapped set/way operation does: `(flush, trap_vm_controls)`.
/// `tvm` is whether HCR_EL2.TVM is already set (KVM's
/// `kvm_set_way_flush`: flush only when it is not).
pub fn on_set_way(tvm: bool) -> (bool, bool) {
    if tvm { (false, true) } else { (true, true) }
}

/// SCTLR_EL1.M and .C both set: the stage-1 MMU and data cache are on
/// (ARM ARM D19.2.118 "SCTLR_EL1"; KVM's `vcpu_has_cache_enabled`).
pub fn caches_on(sctlr: u64) -> bool {
    sctlr & 0b101 == 0b101
}

/// What a trapped SCTLR_EL1 write from `was` to `now` does:
/// `(flush, keep_trapping)` (KVM's `kvm_toggle_cache`: caches switched on
/// need their stale lines invalidated, switched off cleaned, and one
/// clean+invalidate does both; once on, stop trapping).
pub fn on_sctlr_write(was: u64, now: u64) -> (bool, bool) {
    (caches_on(was) != caches_on(now), !caches_on(now))
}

/// A flush of `[next, end)` under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushCursor {
    next: u64,
    end: u64,
}

impl FlushCursor {
    /// A flush of `size` bytes from `base`.
    pub fn new(base: u64, size: u64) -> Self {
        Self { next: base, end: base.saturating_add(size) }
    }

    /// The next piece to flush, at most [`CHUNK`] bytes; None when done.
    pub fn next_chunk(&mut self) -> Option<(u64, u64)> {
        if self.next >= self.end {
            return None;
        }
        let len = (self.end - self.next).min(CHUNK);
        let piece = (self.next, len);
        self.next += len;
        Some(piece)
    }

    /// Nothing is left to flush.
    pub fn done(&self) -> bool {
        self.next >= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range_exactly_and_are_bounded() {
        let mut c = FlushCursor::new(0x4000_0000, 5 * CHUNK + 123);
        let mut at = 0x4000_0000;
        let mut n = 0;
        while let Some((base, len)) = c.next_chunk() {
            assert_eq!(base, at);
            assert!(len > 0 && len <= CHUNK);
            at += len;
            n += 1;
        }
        assert_eq!((at, n), (0x4000_0000 + 5 * CHUNK + 123, 6));
        assert!(c.done());
        assert_eq!(c.next_chunk(), None);
        assert!(FlushCursor::new(0x1000, 0).done());
    }

    #[test]
    fn only_the_first_set_way_op_after_a_toggle_flushes() {
        assert_eq!(on_set_way(false), (true, true), "first: flush, then watch SCTLR");
        assert_eq!(on_set_way(true), (false, true), "while watching: nothing");
    }

    #[test]
    fn sctlr_writes_flush_on_a_toggle_and_stop_trapping_once_on() {
        let (off, mmu_only, on) = (0u64, 0b001u64, 0b101u64);
        assert_eq!(on_sctlr_write(off, on), (true, false));
        assert_eq!(on_sctlr_write(on, mmu_only), (true, true), "data cache off: clean");
        assert_eq!(on_sctlr_write(off, mmu_only), (false, true), "still off: nothing to do");
        assert_eq!(on_sctlr_write(on, on | 1 << 12), (false, false), "another bit: no flush");
    }
}
