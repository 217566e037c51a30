//! `el2-trace [--all] [LOG]`: decodes the hypervisor's exit trace from a
//! console log (a file, or standard input) and prints a timeline and a
//! per-reason histogram. `scripts/trace` runs a configuration and pipes
//! its output here.

use std::io::Read;

fn main() {
    let mut all = false;
    let mut path = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--all" => all = true,
            "-h" | "--help" => {
                println!("usage: el2-trace [--all] [LOG]  (LOG: a console log with el2-trace: lines; default stdin)");
                return;
            }
            _ => path = Some(a),
        }
    }
    let mut log = String::new();
    let read = match &path {
        Some(p) => std::fs::read(p).map(|b| log = String::from_utf8_lossy(&b).into_owned()),
        None => std::io::stdin().read_to_string(&mut log).map(|_| ()),
    };
    if let Err(e) = read {
        eprintln!("el2-trace: cannot read {}: {e}", path.as_deref().unwrap_or("standard input"));
        std::process::exit(2);
    }
    let t = el2_tools::trace::parse(&log);
    if t.records.is_empty() {
        eprintln!("el2-trace: no trace records found (was the hypervisor built with --trace, and did it power off?)");
        std::process::exit(1);
    }
    println!("Timeline (instructions under -icount shift=0; counter at {} Hz):\n", t.cntfrq);
    print!("{}", t.timeline(if all { usize::MAX } else { 60 }));
    println!("\nPer exit reason:\n");
    print!("{}", t.histogram());
}
