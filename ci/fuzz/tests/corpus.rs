//! CI coverage of the fuzz harnesses without libFuzzer: each target runs
//! over its seeds (committed corpus, generated seeds, real files of the
//! tree) and then over a fixed number of inputs from the deterministic
//! mutator. Same inputs on every run; a failure prints the input and saves
//! it (see `el2_fuzz::runner::execute`).

use el2_fuzz::{TARGETS, runner, seeds};

// The two tools that were ignored tests here (writing the corpus, replaying
// one input) are examples now (ci/fuzz/examples/), so every test here runs.

/// Mutated inputs per target: about 17 s of CPU for the whole file in a debug
/// build on two cores (vgic and dtb are the slow ones per input).
fn iterations(target: &str) -> usize {
    match target {
        "mmio_decode" | "image" => 50_000,
        "cpio" | "elf" | "binfmt_script" => 30_000,
        "esr" => 20_000,
        "hvc" | "vpl011" | "virtqueue" | "vswitch" | "virtio_net" => 5000,
        "syscall" => 4000,
        "dtb" => 3000,
        _ => 1000,
    }
}

fn run(target: &str) {
    let harness = el2_fuzz::target(target).expect("a known target");
    let seeds = seeds::all(target);
    assert!(!seeds.is_empty(), "target {target} has no seeds");
    // One fixed PRNG seed per target, from its name.
    let seed = target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let stats = runner::run(target, harness, &seeds, iterations(target), seed);
    eprintln!("{target}: {} seeds, {} executions", stats.seeds, stats.executions);
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { run(stringify!($name)); })*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in TARGETS {
                assert!(tested.contains(name), "target {name} has no test here");
            }
        }
    };
}

targets!(
    esr,
    mmio_decode,
    vgic,
    hvc,
    dtb,
    image,
    elf,
    binfmt_script,
    cpio,
    syscall,
    vpl011,
    virtqueue,
    vswitch,
    virtio_net
);

#[test]
fn every_target_has_a_corpus_and_a_libfuzzer_binary() {
    for (name, _) in TARGETS {
        assert!(seeds::corpus_dir(name).is_dir(), "no ci/fuzz/corpus/{name}");
        let bin = seeds::root().join(format!("ci/fuzz/libfuzzer/fuzz_targets/{name}.rs"));
        assert!(bin.is_file(), "no {}", bin.display());
    }
}
