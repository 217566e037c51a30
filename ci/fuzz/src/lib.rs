//! Fuzz harnesses for the pure cores that take guest- or file-controlled
//! input (design policy: "Fuzz the decoders that take guest- or
//! file-controlled input ... with `cargo fuzz` on the host").
//!
//! Each target is one function taking `&[u8]`: it drives a core with the
//! bytes (raw, or through [`arbitrary::Unstructured`] for call sequences)
//! and asserts the core's invariants, so that a violated invariant is a
//! panic, which libFuzzer and the deterministic runner both report.
//!
//! Two drivers call them:
//! - `ci/fuzz/libfuzzer/fuzz_targets/*.rs`, the cargo-fuzz binaries
//!   (`scripts/fuzz`), one per entry of [`TARGETS`];
//! - [`runner`], a fixed-seed mutator over the committed corpus
//!   (`ci/fuzz/corpus/<target>/`) and generated seeds, which the crate's
//!   `cargo test` runs, so CI exercises every harness without libFuzzer.
//!
//! docs/fuzzing.md says what each target covers.

pub mod binfmt_script;
pub mod cpio;
pub mod dtb;
pub mod elf;
pub mod esr;
pub mod hvc;
pub mod image;
pub mod mmio;
pub mod runner;
pub mod seeds;
pub mod syscall;
pub mod vgic;
pub mod virtio_net;
pub mod virtqueue;
pub mod vpl011;
pub mod vswitch;

/// A harness: takes any bytes, panics only on a broken invariant.
pub type Harness = fn(&[u8]);

/// Every target, by the name its cargo-fuzz binary and corpus directory use.
pub const TARGETS: &[(&str, Harness)] = &[
    ("esr", esr::fuzz),
    ("mmio_decode", mmio::fuzz),
    ("vgic", vgic::fuzz),
    ("hvc", hvc::fuzz),
    ("dtb", dtb::fuzz),
    ("image", image::fuzz),
    ("elf", elf::fuzz),
    ("binfmt_script", binfmt_script::fuzz),
    ("cpio", cpio::fuzz),
    ("syscall", syscall::fuzz),
    ("vpl011", vpl011::fuzz),
    ("virtqueue", virtqueue::fuzz),
    ("vswitch", vswitch::fuzz),
    ("virtio_net", virtio_net::fuzz),
];

/// The harness named `name`.
pub fn target(name: &str) -> Option<Harness> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// Little-endian words from `data`, 8 bytes each, the last one zero-padded.
pub(crate) fn words(data: &[u8]) -> impl Iterator<Item = u64> + '_ {
    data.chunks(8).map(|c| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(b)
    })
}

/// Calls `f` with a copy of `data` that starts `shift` bytes (0..=7) past
/// an 8-byte boundary: the fuzzer's buffer is usually aligned, but nothing
/// promises it, and the DTB and ELF parsers care.
pub(crate) fn with_alignment<R>(data: &[u8], shift: usize, f: impl FnOnce(&[u8]) -> R) -> R {
    let shift = shift.min(7);
    let mut words = vec![0u64; (data.len() + shift).div_ceil(8)];
    let total = words.len() * 8;
    // SAFETY: `words` owns `total` initialised bytes, u8 has no alignment or
    // validity requirement, and `words` outlives the slice.
    let all = unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), total) };
    let copy = &mut all[shift..shift + data.len()];
    copy.copy_from_slice(data);
    f(copy)
}
