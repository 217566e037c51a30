//! Seed inputs: the committed corpus (`ci/fuzz/corpus/<target>/`), seeds
//! generated here from real values (the ESR and instruction words of the
//! cores' unit tests, a small static ELF, a cpio archive, an Image header),
//! and real files of the tree when they exist: the board DTB fixtures and,
//! after `scripts/build`, the EL0 programs, the initramfs and the images.

use std::path::{Path, PathBuf};

use crate::mmio::record;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the committed corpus of `target` lives.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

/// Every seed of `target`: committed, generated, and found in the tree.
pub fn all(target: &str) -> Vec<Vec<u8>> {
    let mut seeds = read_dir_files(&corpus_dir(target), usize::MAX);
    // The committed corpus holds the generated seeds too (examples/write-corpus.rs).
    for s in synthetic(target).into_iter().map(|(_, s)| s).chain(from_tree(target)) {
        if !seeds.contains(&s) {
            seeds.push(s);
        }
    }
    seeds
}

/// The files of `dir` (not recursive), sorted by name, skipping those
/// larger than `max` bytes. A missing directory gives nothing.
pub fn read_dir_files(dir: &Path, max: usize) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths.into_iter().filter_map(|p| std::fs::read(p).ok()).filter(|b| b.len() <= max).collect()
}

/// Real inputs of the tree, present or not depending on what was built.
pub fn from_tree(target: &str) -> Vec<Vec<u8>> {
    let root = root();
    let build = root.join("build");
    match target {
        "dtb" => read_dir_files(&root.join("shared/tests/fixtures"), usize::MAX)
            .into_iter()
            .filter(|b| b.starts_with(&0xd00d_feedu32.to_be_bytes()))
            .collect(),
        "elf" => read_dir_files(&build.join("user"), 4 << 20),
        "cpio" => read_dir_files(&build, 8 << 20).into_iter().filter(|b| b.starts_with(b"070701")).collect(),
        // Only the header matters; the first 4 KiB keep the inputs small.
        "image" => ["hypervisor.bin", "guest-kernel.bin"]
            .iter()
            .filter_map(|f| std::fs::read(build.join(f)).ok())
            .map(|mut b| {
                b.truncate(4096);
                b
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// ESR_EL2 values from `hypervisor::esr`'s tests: data and instruction
/// aborts, WFx, HVC/SMC/SVC/BRK, trapped system registers, set/way ops.
const ESR_VALUES: &[u64] = &[
    0x9381_0047,
    0x93c3_8006,
    0x9322_0007,
    0x9200_004f,
    0x9200_0089,
    0x9600_0004,
    0x5a00_0000,
    0x5e00_1234,
    0x0600_0000,
    0x0600_0001,
    0x0600_00a6,
    0x623a_3076,
    0x6232_f805,
    0x6214_1d3c,
    0x0200_0000,
    0xf200_03e8,
    0xbe00_0000,
    0x8200_0007,
    0xff00_0000_fe00_0001,
    0x6230_0009,
    0x6238_00a9,
    0x6214_1c4c,
    0x6214_1ffc,
    0x6230_0420,
    0x6234_0920,
];

/// Instruction words from `hypervisor::mmio::decode`'s tests (assembled by
/// llvm-mc): (word, is a store).
const MMIO_WORDS: &[(u32, bool)] = &[
    (0xb800_4401, true),  // str w1, [x0], #4
    (0x3980_0462, false), // ldrsb x2, [x3, #1]
    (0xf862_7820, false), // ldr x0, [x1, x2, lsl #3]
    (0xb900_0001, true),  // str w1, [x0]
    (0xb940_1001, false), // ldr w1, [x0, #16]
    (0x381f_fc22, true),  // strb w2, [x1, #-1]!
    (0x7840_2c83, false), // ldrh w3, [x4, #2]!
    (0x78df_e4c5, false), // ldrsh w5, [x6], #-2
    (0xb980_0507, false), // ldrsw x7, [x8, #4]
    (0xf85f_8149, false), // ldur x9, [x10, #-8]
    (0xb800_317f, true),  // stur wzr, [x11, #3]
    (0x782e_59ac, true),  // strh w12, [x13, w14, uxtw #1]
    (0x38f4_ca72, false), // ldrsb w18, [x19, w20, sxtw]
    (0xf841_07f6, false), // ldr x22, [sp], #16
    (0xf81f_0ff7, true),  // str x23, [sp, #-16]!
    (0xa940_0440, false), // ldp x0, x1, [x2]: refused
    (0xc85f_7c20, false), // ldxr x0, [x1]: refused
    (0x3dc0_0020, false), // ldr q0, [x1]: refused
];

/// A minimal static aarch64 ELF executable: `(vaddr, filesz, memsz,
/// flags)` segments, file data zeros (as `guest_kernel::elf`'s tests).
pub fn elf(entry: u64, segs: &[(u64, u64, u64, u32)], data: usize) -> Vec<u8> {
    guest_kernel::elf::minimal_elf(entry, segs, data)
}

/// The text, rodata and data+bss layout lld gives a small program.
fn small_program() -> Vec<u8> {
    const R: u32 = 4;
    const W: u32 = 2;
    const X: u32 = 1;
    elf(
        0x40_0000,
        &[(0x40_0000, 0x1b8, 0x1b8, R | X), (0x40_01c0, 0x20, 0x20, R), (0x40_1000, 0x10, 0x2000, R | W)],
        0x200,
    )
}

/// One cpio "newc" entry.
pub fn cpio_entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
    guest_kernel::initramfs::newc_entry(out, name, mode, data);
}

/// Seeds generated here, with the names `write_corpus` gives their files.
pub fn synthetic(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| out.push((name.to_string(), bytes));
    match target {
        "esr" => add("unit-test-values", ESR_VALUES.iter().flat_map(|v| v.to_le_bytes()).collect()),
        "mmio_decode" => {
            let (hpfar, far) = (0x9000 << 4, 0xffff_0000_dead_0010);
            let mut isv0 = Vec::new();
            for &(word, store) in MMIO_WORDS {
                // ISV = 0, WnR as the instruction, DFSC translation fault L3.
                let iss = 0x07 | if store { 1 << 6 } else { 0 };
                isv0.extend(record(iss, Some(word), hpfar, far, 0x8000_0000_8080_8080, 0x1122_3344_5566_7788));
            }
            add("instruction-words", isv0);
            // ISV = 1: str w1; ldrsh w2; ldar x3 (the syndrome tests).
            let mut isv1 = record(0x0181_0047, None, hpfar, far, 0, 0xdead_beef);
            isv1.extend(record(0x0162_0007, None, hpfar, far, 0x8000, 0));
            isv1.extend(record(0x01c3_c007, None, hpfar, far, u64::MAX, 0));
            add("syndromes", isv1);
        }
        "image" => {
            let mut h = vec![0u8; 128];
            h[0x10..0x18].copy_from_slice(&0x10000u64.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&0xau64.to_le_bytes());
            h[0x38..0x3c].copy_from_slice(&shared::image::MAGIC.to_le_bytes());
            add("header", h);
        }
        "elf" => add("small-program", small_program()),
        "cpio" => {
            let mut a = Vec::new();
            cpio_entry(&mut a, ".", 0o40755, b"");
            cpio_entry(&mut a, "bin", 0o40755, b"");
            cpio_entry(&mut a, "bin/init", 0o100755, &small_program());
            cpio_entry(&mut a, "bin/tests", 0o100755, b"#!not an elf");
            cpio_entry(&mut a, "TRAILER!!!", 0, b"");
            add("initramfs", a);
        }
        "vgic" | "hvc" | "syscall" | "vpl011" | "virtqueue" | "vswitch" | "virtio_net" => {
            // Call sequences are decoded from the bytes: any bytes are a
            // sequence, so random ones of a few lengths start the search.
            let mut rng = crate::runner::Rng::new(0x5eed ^ target.len() as u64);
            for len in [16, 64, 256, 1024, 4096] {
                add(&format!("random-{len}"), rng.bytes(len));
            }
        }
        _ => {}
    }
    out
}
