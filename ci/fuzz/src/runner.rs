//! The deterministic runner: every harness over its seeds, then over
//! inputs a fixed-seed mutator derives from them (bit flips, interesting
//! integers in both byte orders, insertions, deletions, copies, splices
//! between seeds, truncation, fresh random bytes). Not coverage-guided like
//! libFuzzer, but the same on every run, quick, and enough to catch a
//! regression in CI (`cargo test -p el2-fuzz`).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::Harness;

/// SplitMix64: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Integers that sit on edges: sizes, signs, alignments.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    31,
    32,
    0x3f,
    0x40,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xfff,
    0x1000,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    0x0001_0000_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX - 0xfff,
    u64::MAX - 1,
    u64::MAX,
];

/// Applies one to four mutations to `input`; `pool` supplies splices.
pub fn mutate(input: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        mutate_once(input, rng, pool);
    }
}

fn mutate_once(input: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>]) {
    let len = input.len();
    match rng.below(12) {
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = rng.next_u64() as u8;
        }
        2 if len > 0 => {
            let at = rng.below(len);
            input[at] = input[at].wrapping_add((rng.below(33) as u8).wrapping_sub(16));
        }
        3 | 4 if len > 0 => {
            // An interesting integer of 1, 2, 4 or 8 bytes, either order.
            let width = 1 << rng.below(4);
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let value = if rng.below(4) == 0 { value.wrapping_add(len as u64) } else { value };
            let bytes = if rng.below(2) == 0 { value.to_le_bytes() } else { value.to_be_bytes() };
            let bytes = if rng.below(2) == 0 { &bytes[..width] } else { &bytes[8 - width..] };
            let at = rng.below(len);
            let n = width.min(len - at);
            input[at..at + n].copy_from_slice(&bytes[..n]);
        }
        5 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let fresh = rng.bytes(n);
            input.splice(at..at, fresh);
        }
        6 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            input.drain(at..at + n);
        }
        7 if len > 1 => {
            // Copy a range over another place of the same input.
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(64));
            let to = rng.below(len);
            let chunk: Vec<u8> = input[from..from + n].to_vec();
            let n = n.min(len - to);
            input[to..to + n].copy_from_slice(&chunk[..n]);
        }
        8 if !pool.is_empty() => {
            // Splice: our head, another seed's tail.
            let other = &pool[rng.below(pool.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        9 if len > 0 => input.truncate(rng.below(len)),
        10 => {
            let n = rng.below(512);
            *input = rng.bytes(n);
        }
        _ => {
            let at = rng.below(len + 1);
            input.insert(at, rng.next_u64() as u8);
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Stats {
    pub seeds: usize,
    pub executions: usize,
}

/// Runs `harness` over each seed, then over `iterations` mutated inputs
/// (from a PRNG seeded with `seed`). On a panic, prints the input and
/// saves it to `<temp dir>/el2-fuzz-<name>.crash` for `scripts/fuzz
/// NAME --reproduce FILE`, then lets the panic through.
pub fn run(name: &str, harness: Harness, seeds: &[Vec<u8>], iterations: usize, seed: u64) -> Stats {
    let mut stats = Stats::default();
    let mut rng = Rng::new(seed);
    for s in seeds {
        execute(name, harness, s);
        stats.seeds += 1;
        stats.executions += 1;
    }
    let empty = [Vec::new()];
    let pool = if seeds.is_empty() { &empty[..] } else { seeds };
    for _ in 0..iterations {
        let mut input = pool[rng.below(pool.len())].clone();
        mutate(&mut input, &mut rng, pool);
        execute(name, harness, &input);
        stats.executions += 1;
    }
    stats
}

/// Runs one input, reporting it if the harness panics.
pub fn execute(name: &str, harness: Harness, input: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| harness(input))) {
        let path = std::env::temp_dir().join(format!("el2-fuzz-{name}.crash"));
        let saved = std::fs::write(&path, input).is_ok();
        let shown: String = input.iter().take(256).map(|b| format!("{b:02x}")).collect();
        eprintln!(
            "el2-fuzz: target {name} failed on a {}-byte input{}: {shown}{}",
            input.len(),
            if saved { format!(" (saved to {})", path.display()) } else { String::new() },
            if input.len() > 256 { "..." } else { "" }
        );
        resume_unwind(panic);
    }
}
