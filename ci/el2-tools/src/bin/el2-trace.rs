//! `el2-trace [--all] [--svg FILE] --elf hyp=ELF [--elf gk=ELF] [LOG]`: decodes the
//! defmt event trace dumped in a console log (a file, or standard input)
//! with the string tables of the ELFs that logged it, and prints a
//! timeline and a per-reason histogram of the hypervisor's exits and the
//! guest kernels' events; `--svg` also draws them (el2_tools::svg).
//! `scripts/trace` runs a configuration and calls this on its log.

use defmt_decoder::Table;
use el2_tools::trace::Tables;
use std::io::Read;

fn fail(msg: &str) -> ! {
    eprintln!("el2-trace: {msg}");
    std::process::exit(2);
}

fn main() {
    let mut all = false;
    let mut svg = None;
    let mut path = None;
    let mut tables = Tables::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--all" => all = true,
            "--svg" => svg = Some(args.next().unwrap_or_else(|| fail("--svg needs a FILE"))),
            "--elf" => {
                let spec = args.next().unwrap_or_else(|| fail("--elf needs PROGRAM=PATH"));
                let (program, elf) = spec.split_once('=').unwrap_or_else(|| fail("--elf needs PROGRAM=PATH"));
                let bytes = std::fs::read(elf).unwrap_or_else(|e| fail(&format!("cannot read {elf}: {e}")));
                match Table::parse(&bytes) {
                    Ok(Some(t)) => {
                        tables.insert(program.to_string(), t);
                    }
                    Ok(None) => fail(&format!("{elf} has no .defmt section (not a trace build?)")),
                    Err(e) => fail(&format!("{elf}: {e}")),
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: el2-trace [--all] [--svg FILE] --elf hyp=ELF [--elf gk=ELF] [LOG]  (LOG: a console log with el2-trace: lines; default stdin)"
                );
                return;
            }
            _ => path = Some(a),
        }
    }
    if tables.is_empty() {
        fail("no --elf: the format strings are in the trace build's ELF (build/hypervisor-trace.elf)");
    }
    let mut log = String::new();
    let read = match &path {
        Some(p) => std::fs::read(p).map(|b| log = String::from_utf8_lossy(&b).into_owned()),
        None => std::io::stdin().read_to_string(&mut log).map(|_| ()),
    };
    if let Err(e) = read {
        fail(&format!("cannot read {}: {e}", path.as_deref().unwrap_or("standard input")));
    }
    let t = el2_tools::trace::parse(&log, &tables);
    if t.exits.is_empty() {
        eprintln!("el2-trace: no exit events found (was the hypervisor built with --trace, and did it power off?)");
        std::process::exit(1);
    }
    println!("Timeline (instructions under -icount shift=0; counter at {} Hz):\n", t.cntfrq);
    print!("{}", t.timeline(if all { usize::MAX } else { 60 }));
    println!("\nPer exit reason:\n");
    print!("{}", t.histogram());
    println!("\nExits per VM and reason (compare with the hypervisor's exit statistics):\n");
    for ((vm, reason), n) in t.counts() {
        println!("{vm:<12} {reason:<11} {n:>7}");
    }
    if !t.events.is_empty() {
        println!("\nGuest kernel events:\n");
        print!("{}", t.guest_events(if all { usize::MAX } else { 40 }));
    }
    if t.malformed > 0 {
        println!("\n{} frames did not decode", t.malformed);
    }
    if let Some(file) = svg {
        let picture = el2_tools::svg::trace_svg(&t).unwrap_or_else(|e| fail(&format!("cannot draw the trace: {e}")));
        std::fs::write(&file, picture).unwrap_or_else(|e| fail(&format!("cannot write {file}: {e}")));
        println!("\nThe picture: {file}");
    }
}
