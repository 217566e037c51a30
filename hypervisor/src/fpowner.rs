//! Lazy FP/SIMD switching: the bookkeeping, as a pure core.
//!
//! The hypervisor never uses the FP/SIMD registers itself (it is built
//! soft-float), so a vCPU's V0-V31/FPSR/FPCR can stay in a physical CPU's
//! registers after the vCPU stops running there. Each physical CPU records
//! whose values its registers hold (its *owner*, an [`FpToken`]); a vCPU
//! runs with FP/SIMD untrapped only on the CPU that holds its values, and
//! with `CPTR_EL2.TFP` set everywhere else (ARM ARM D19.2.30 "CPTR_EL2",
//! nVHE layout: TFP is bit 10). Its first FP/SIMD instruction there then
//! traps to EL2 (ESR_EL2.EC 0x07), which saves the owner's values (if they
//! are still wanted) and loads the vCPU's — KVM's lazy switch
//! (`arch/arm64/kvm/fpsimd.c`, `kvm_hyp_handle_fpsimd`). A vCPU that never
//! touches FP/SIMD never costs a save or a restore.
//!
//! A token names the VM, the vCPU and the VM's *generation* (bumped by
//! SYSTEM_RESET): values left in some CPU by a VM's previous life belong to
//! nobody and are dropped, never saved over the reset state.

/// Whose FP/SIMD values a physical CPU's registers hold: VM, vCPU and the
/// VM's generation at the time they were loaded. Packs into a non-zero
/// `u64` (0 is "nobody"), so a CPU's owner fits in one atomic word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpToken(u64);

const VALID: u64 = 1 << 63;

impl FpToken {
    /// The token of vCPU `vcpu` of VM `vm` in generation `generation`.
    /// VM and vCPU indices keep 8 bits, the generation 32 (it wraps; a VM
    /// would need 2^32 resets between two FP uses to alias).
    pub const fn new(vm: usize, vcpu: usize, generation: usize) -> Self {
        FpToken(VALID | ((generation as u64 & 0xffff_ffff) << 16) | ((vm as u64 & 0xff) << 8) | (vcpu as u64 & 0xff))
    }

    /// The packed value (never 0).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Unpacks a value [`FpToken::raw`] made; `None` for 0 ("nobody").
    pub const fn from_raw(raw: u64) -> Option<Self> {
        if raw & VALID == 0 { None } else { Some(FpToken(raw)) }
    }

    /// The VM index.
    pub const fn vm(self) -> usize {
        ((self.0 >> 8) & 0xff) as usize
    }

    /// The vCPU index.
    pub const fn vcpu(self) -> usize {
        (self.0 & 0xff) as usize
    }

    /// The VM generation the values belong to (low 32 bits).
    pub const fn generation(self) -> u32 {
        (self.0 >> 16) as u32
    }

    /// Whether the values still belong to the VM's current life.
    pub const fn is_current(self, vm_generation: usize) -> bool {
        self.generation() == vm_generation as u32
    }
}

/// Whether vCPU `me` must enter with FP/SIMD trapped on a CPU whose
/// registers belong to `owner`: yes unless they are its own values.
pub fn trap_on_entry(owner: Option<FpToken>, me: FpToken) -> bool {
    owner != Some(me)
}

/// What the FP trap does with the values currently in the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evict {
    /// Nobody's, or already the trapping vCPU's: nothing to save.
    Nothing,
    /// Another vCPU's current values: save them into its context first.
    Save(FpToken),
    /// Values of a VM life that has ended (reset, or an unknown VM): drop them.
    Discard,
}

/// Decides [`Evict`] for vCPU `me` trapping on a CPU owned by `owner`.
/// `generation_of` gives the current generation of a VM by index (`None`
/// if there is no such VM).
pub fn evict(owner: Option<FpToken>, me: FpToken, generation_of: impl Fn(usize) -> Option<usize>) -> Evict {
    match owner {
        None => Evict::Nothing,
        Some(o) if o == me => Evict::Nothing,
        Some(o) => match generation_of(o.vm()) {
            Some(g) if o.is_current(g) => Evict::Save(o),
            _ => Evict::Discard,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_never_zero() {
        for (vm, vcpu, generation) in [(0, 0, 0), (7, 7, 3), (255, 255, usize::MAX)] {
            let t = FpToken::new(vm, vcpu, generation);
            assert_ne!(t.raw(), 0);
            assert_eq!(FpToken::from_raw(t.raw()), Some(t));
            assert_eq!((t.vm(), t.vcpu()), (vm, vcpu));
            assert_eq!(t.generation(), generation as u32);
            assert!(t.is_current(generation));
        }
        assert_eq!(FpToken::from_raw(0), None);
        // VM 0 vCPU 0 of generation 0 is still distinct from "nobody".
        assert_ne!(FpToken::new(0, 0, 0).raw(), 0);
    }

    #[test]
    fn entry_traps_unless_the_registers_are_ours() {
        let a = FpToken::new(0, 0, 0);
        let b = FpToken::new(1, 0, 0);
        assert!(trap_on_entry(None, a));
        assert!(trap_on_entry(Some(b), a));
        assert!(!trap_on_entry(Some(a), a));
        // After a reset the same vCPU is a new owner: its old values are not its.
        assert!(trap_on_entry(Some(FpToken::new(0, 0, 0)), FpToken::new(0, 0, 1)));
    }

    #[test]
    fn the_trap_saves_only_current_values_of_others() {
        let gens = |vm: usize| [Some(0), Some(2)].get(vm).copied().flatten();
        let me = FpToken::new(0, 0, 0);
        assert_eq!(evict(None, me, gens), Evict::Nothing);
        assert_eq!(evict(Some(me), me, gens), Evict::Nothing);
        let other = FpToken::new(1, 3, 2);
        assert_eq!(evict(Some(other), me, gens), Evict::Save(other));
        // VM 1 was reset since (generation 2 now): its old values go.
        assert_eq!(evict(Some(FpToken::new(1, 3, 1)), me, gens), Evict::Discard);
        // Our own VM's previous life.
        assert_eq!(evict(Some(FpToken::new(0, 0, 0)), FpToken::new(0, 0, 1), |_| Some(1)), Evict::Discard);
        // No such VM.
        assert_eq!(evict(Some(FpToken::new(5, 0, 0)), me, gens), Evict::Discard);
    }
}
