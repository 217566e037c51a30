//! Runs one input through one harness, as CI would:
//! `cargo run -p el2-fuzz --example reproduce -- TARGET FILE`.

use el2_fuzz::runner;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, input] = &args[..] else {
        eprintln!("usage: reproduce TARGET FILE");
        std::process::exit(2);
    };
    let harness = el2_fuzz::target(target).unwrap_or_else(|| {
        eprintln!("reproduce: no fuzz target {target:?}");
        std::process::exit(2);
    });
    let bytes = std::fs::read(input).unwrap_or_else(|e| {
        eprintln!("reproduce: cannot read {input}: {e}");
        std::process::exit(2);
    });
    runner::execute(target, harness, &bytes);
}
