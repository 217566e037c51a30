//! `el2-profile --nm FILE --base HEX [--top N] MONITOR_LOG`: the sampling
//! profile `scripts/profile` prints: each PC that QEMU's monitor showed
//! (`info registers -a`, in MONITOR_LOG) mapped to the kernel function
//! around it, with the symbols `nm -n -C` printed into FILE; the kernel is
//! linked at 0 and was loaded at physical address HEX.

use el2_tools::profile::{parse_monitor, parse_nm, report};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut nm, mut base, mut top, mut log) = (None, None, 25, None);
    let mut i = 0;
    let usage = || -> ! {
        eprintln!("usage: el2-profile --nm FILE --base HEX [--top N] MONITOR_LOG");
        std::process::exit(2)
    };
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--nm", Some(v)) => nm = Some(v.clone()),
            ("--base", Some(v)) => {
                base = Some(u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or_else(|_| usage()))
            }
            ("--top", Some(v)) => top = v.parse().unwrap_or_else(|_| usage()),
            (a, _) if !a.starts_with("--") && log.is_none() => {
                log = Some(a.to_string());
                i += 1;
                continue;
            }
            _ => usage(),
        }
        i += 2;
    }
    let (Some(nm), Some(base), Some(log)) = (nm, base, log) else { usage() };
    let read = |p: &str| {
        std::fs::read_to_string(p).unwrap_or_else(|e| {
            eprintln!("el2-profile: cannot read {p}: {e}");
            std::process::exit(2)
        })
    };
    let syms = parse_nm(&read(&nm));
    let samples = parse_monitor(&read(&log));
    if syms.is_empty() || samples.is_empty() {
        eprintln!("el2-profile: {} symbols, {} samples: nothing to report", syms.len(), samples.len());
        std::process::exit(1);
    }
    print!("{}", report(&samples, &syms, base, top));
}
