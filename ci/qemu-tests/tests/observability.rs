//! Benchmarks and exit tracing (issue 8). Benchmarks are not tests: this
//! only runs each of them once with few repetitions (`scripts/bench
//! --quick`), so that none can rot, and checks that every row got a
//! number. No thresholds.

use qemu_tests::{root, temp_file};
use std::process::Command;

fn script(name: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(root().join("scripts").join(name))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{name}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_benchmark_runs_once_and_reports_a_number() {
    let dir = std::env::temp_dir().join(format!("el2-bench-{}", std::process::id()));
    let (status, out) = script("bench", &["--quick", "--no-build", "--out", dir.to_str().unwrap()]);
    assert_eq!(status, 0, "scripts/bench failed:\n{out}");
    let md = std::fs::read_to_string(dir.join("bench.md")).expect("bench.md");
    assert!(!md.contains("(not run)"), "a hypervisor benchmark printed nothing:\n{md}");
    for row in md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| operation") && !l.starts_with("| VM")) {
        if row.contains("n/a:") || row.starts_with("| all guests up") {
            continue;
        }
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // Kernel rows: guest kernel, Linux, ratio, under the hypervisor.
        // Hypervisor rows: instructions/op. Boot rows: first line, booted.
        for cell in &cells[2..cells.len() - 2] {
            assert!(cell.parse::<f64>().is_ok(), "no number in {cell:?} of row {row}\n{md}");
        }
    }
    assert!(md.contains("| all guests up |"), "{md}");
    let json = std::fs::read_to_string(dir.join("bench.json")).expect("bench.json");
    // Seven kernel rows in three columns, seven hypervisor rows.
    assert!(json.matches("\"instructions_per_op\"").count() >= 7 * 3 + 7, "{json}");
    assert!(json.contains("\"id\": \"futex_switch\""), "{json}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_trace_shows_each_exit_with_its_reason_and_duration() {
    let cfg = temp_file(
        "trace.toml",
        b"[[vm]]\nname = \"traced\"\nkernel = \"guest-kernel\"\nmemory = \"64M\"\nvcpus = 1\ncmdline = \"test=hvc\"\n",
    );
    let (status, out) =
        script("trace", &["--all", "--no-build", "--config", cfg.to_str().unwrap(), "--timeout", "120"]);
    assert_eq!(status, 0, "scripts/trace failed:\n{out}");
    assert!(out.contains("[traced] hyptest hvc: ok"), "{out}");
    // A timeline row per exit, named by VM and vCPU...
    assert!(
        out.lines().any(|l| l.contains("traced/0") && l.contains("hvc") && l.contains("HVC from AArch64")),
        "{out}"
    );
    // ...and a histogram with the hypercalls the test made (some 490
    // unknown IDs of 500 tries, the rest skipped as known ranges, and a
    // few known ones) and the console's MMIO writes.
    let hvc = out
        .lines()
        .skip_while(|l| !l.starts_with("Per exit reason"))
        .find(|l| l.starts_with("hvc "))
        .unwrap_or_else(|| panic!("no hvc row in the histogram:\n{out}"));
    let exits: u64 = hvc.split_whitespace().nth(4).and_then(|n| n.parse().ok()).expect("exit count");
    assert!(exits >= 400, "{hvc}");
    assert!(out.lines().any(|l| l.starts_with("mmio-write ")), "{out}");
}
