//! `bench-report --date D --host H --json OUT [--svg OUT] [--run COLUMN MACHINE LOG]...
//! [--criterion DIR [--host-clock wall|thread] [--host-load TEXT]]`: reads
//! the console logs of the benchmark runs, and with `--criterion` the host
//! micro-benchmarks' estimates under `DIR` (criterion's output directory,
//! measured with that clock; TEXT says how loaded the host was), and prints
//! the markdown table (and writes the JSON file, and with `--svg` a chart per
//! table, `el2_tools::svg::bench_charts`). Used by `scripts/bench`.

use el2_tools::bench::{HostClock, Report};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut date, mut host, mut json, mut svg) = (String::new(), String::new(), None, None);
    let (mut runs, mut criterion) = (0, None);
    let mut report = Report::default();
    let mut i = 0;
    while i < args.len() {
        let need = |n: usize| {
            if i + n >= args.len() {
                eprintln!("bench-report: {} needs {n} value(s)", args[i]);
                std::process::exit(2);
            }
        };
        match args[i].as_str() {
            "--date" => {
                need(1);
                date = args[i + 1].clone();
                i += 2;
            }
            "--host" => {
                need(1);
                host = args[i + 1].clone();
                i += 2;
            }
            "--json" => {
                need(1);
                json = Some(args[i + 1].clone());
                i += 2;
            }
            "--svg" => {
                need(1);
                svg = Some(args[i + 1].clone());
                i += 2;
            }
            "--run" => {
                need(3);
                let log = std::fs::read(&args[i + 3]).unwrap_or_else(|e| {
                    eprintln!("bench-report: cannot read {}: {e}", args[i + 3]);
                    std::process::exit(2)
                });
                report.add_log(&args[i + 1], &args[i + 2], &String::from_utf8_lossy(&log));
                runs += 1;
                i += 4;
            }
            "--criterion" => {
                need(1);
                criterion = Some(args[i + 1].clone());
                i += 2;
            }
            "--host-clock" => {
                need(1);
                report.host_clock = match args[i + 1].as_str() {
                    "wall" => HostClock::Wall,
                    "thread" => HostClock::ThreadCpu,
                    other => {
                        eprintln!("bench-report: --host-clock is wall or thread, not {other}");
                        std::process::exit(2);
                    }
                };
                i += 2;
            }
            "--host-load" => {
                need(1);
                report.host_load = Some(args[i + 1].clone());
                i += 2;
            }
            other => {
                eprintln!("bench-report: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if runs == 0 && criterion.is_none() {
        eprintln!("bench-report: nothing to report (no --run, no --criterion)");
        std::process::exit(2);
    }
    if let Some(dir) = &criterion
        && report.add_criterion(std::path::Path::new(dir)) == 0
    {
        eprintln!("bench-report: no criterion estimates of the host benchmarks under {dir}");
        std::process::exit(1);
    }
    print!("{}", report.markdown(&date, &host));
    if let Some(path) = json
        && let Err(e) = std::fs::write(&path, report.json(&date, &host))
    {
        eprintln!("bench-report: cannot write {path}: {e}");
        std::process::exit(2);
    }
    // A chart per table that has figures: PATH for the guest kernel beside
    // Linux, PATH's stem + "-hyp", "-scaling", "-boot", "-host" for the rest.
    if let Some(path) = svg {
        let stem = path.strip_suffix(".svg").unwrap_or(&path);
        for (suffix, picture) in el2_tools::svg::bench_charts(&report) {
            let file = format!("{stem}{suffix}.svg");
            if let Err(e) = std::fs::write(&file, picture) {
                eprintln!("bench-report: cannot write {file}: {e}");
                std::process::exit(2);
            }
        }
    }
    if runs > 0 && report.measurements.is_empty() {
        eprintln!("bench-report: no BENCH lines in any run");
        std::process::exit(1);
    }
}
