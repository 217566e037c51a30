//! Benchmark reports: collects the `BENCH` lines (guest/benchmark output)
//! and the hypervisor's boot-time lines from the runs `scripts/bench`
//! made, and renders one markdown table and a JSON document.

use crate::ticks_to_instructions;
use std::fmt::Write;

/// One measured operation from one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// Which run (column) it came from: `hyp`, `guest-kernel`, `linux`,
    /// `guest-kernel-el2`.
    pub column: String,
    pub id: String,
    pub reps: u64,
    pub ticks: u64,
    pub cntfrq: u64,
    /// The QEMU machine shape of the run.
    pub machine: String,
}

impl Measurement {
    /// Instructions per operation.
    pub fn per_op(&self) -> f64 {
        ticks_to_instructions(self.ticks as f64, self.cntfrq) / self.reps.max(1) as f64
    }
}

/// A VM's boot milestones, in instructions from power-on.
#[derive(Clone, Debug, PartialEq)]
pub struct Boot {
    pub vm: String,
    pub first_line: f64,
    pub booted: Option<f64>,
    pub machine: String,
}

/// Everything gathered from the runs.
#[derive(Debug, Default)]
pub struct Report {
    pub measurements: Vec<Measurement>,
    pub boots: Vec<Boot>,
}

fn field<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words.iter().find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

impl Report {
    /// Adds what the console log `log` of run `column` printed. Only the
    /// first result of each benchmark id per column counts (two VMs of the
    /// vCPU-switch run both print theirs); boot times count only from the
    /// run named `boot`.
    pub fn add_log(&mut self, column: &str, machine: &str, log: &str) {
        for line in log.lines() {
            if let Some(i) = line.find("BENCH ") {
                let words: Vec<&str> = line[i + 6..].split_whitespace().collect();
                let parsed = (|| {
                    Some(Measurement {
                        column: column.to_string(),
                        id: field(&words, "id")?.to_string(),
                        reps: field(&words, "reps")?.parse().ok()?,
                        ticks: field(&words, "ticks")?.parse().ok()?,
                        cntfrq: field(&words, "cntfrq")?.parse().ok()?,
                        machine: machine.to_string(),
                    })
                })();
                if let Some(m) = parsed
                    && self.get(column, &m.id).is_none()
                {
                    self.measurements.push(m);
                }
            } else if column == "boot"
                && let Some(b) = parse_boot(line, machine)
            {
                self.boots.push(b);
            }
        }
    }

    /// The measurement of `id` in `column`.
    pub fn get(&self, column: &str, id: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.column == column && m.id == id)
    }

    /// The markdown report.
    pub fn markdown(&self, date: &str, host: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Measured {date} on {host}. Unit: instructions, counted as virtual nanoseconds under QEMU \
             `-icount shift=0,sleep=off` (one instruction per nanosecond; with several CPUs, the instructions \
             of all of them). Exact and repeatable; not a prediction of time on hardware.\n"
        );
        let _ = writeln!(s, "#### Hypervisor (guest kernel at EL1 calling into EL2)\n");
        let _ = writeln!(s, "| operation | instructions/op | reps | machine |\n|---|---:|---:|---|");
        for (id, what) in HYPERVISOR_ROWS {
            match self.get("hyp", id) {
                Some(m) => {
                    let _ = writeln!(s, "| {what} | {:.0} | {} | {} |", m.per_op(), m.reps, m.machine);
                }
                None if *id == "stage2_first_touch" => {
                    let _ = writeln!(s, "| {what} | n/a: stage 2 is fully mapped when the VM is created | | |");
                }
                None => {
                    let _ = writeln!(s, "| {what} | (not run) | | |");
                }
            }
        }
        let _ = writeln!(s, "\n#### Guest kernel and Linux: the same static binary (`/bin/bench`)\n");
        let _ = writeln!(
            s,
            "| operation | guest kernel | Linux 6.1 | guest kernel ÷ Linux | guest kernel under the hypervisor | reps |\n\
             |---|---:|---:|---:|---:|---:|"
        );
        let mut machine = None;
        for (id, what) in KERNEL_ROWS {
            let gk = self.get("guest-kernel", id);
            let linux = self.get("linux", id);
            let el2 = self.get("guest-kernel-el2", id);
            machine = machine.or(gk.map(|m| m.machine.clone()));
            let cell = |m: Option<&Measurement>| m.map_or("-".to_string(), |m| format!("{:.0}", m.per_op()));
            let ratio = match (gk, linux) {
                (Some(a), Some(b)) if b.per_op() > 0.0 => format!("{:.2}", a.per_op() / b.per_op()),
                _ => "-".to_string(),
            };
            let reps = gk.or(linux).map_or(0, |m| m.reps);
            let _ = writeln!(s, "| {what} | {} | {} | {ratio} | {} | {reps} |", cell(gk), cell(linux), cell(el2));
        }
        if let Some(m) = machine {
            let _ = writeln!(s, "\nMachine: {m} (the hypervisor column: one 1-vCPU VM on that machine).");
        }
        if !self.boots.is_empty() {
            let _ = writeln!(s, "\n#### Boot (instructions from power-on)\n");
            let _ = writeln!(s, "| VM | first console line | booted (about to start init) |\n|---|---:|---:|");
            for b in &self.boots {
                let booted = b.booted.map_or("-".to_string(), |x| format!("{x:.0}"));
                let _ = writeln!(s, "| {} | {:.0} | {booted} |", b.vm, b.first_line);
            }
            if let Some(all) = self.all_up() {
                let _ = writeln!(s, "| all guests up | | {all:.0} |");
            }
            let _ = writeln!(s, "\nMachine: {}.", self.boots[0].machine);
        }
        s
    }

    /// When the last VM finished booting, if every one did.
    pub fn all_up(&self) -> Option<f64> {
        self.boots.iter().map(|b| b.booted).try_fold(0.0f64, |acc, b| b.map(|b| acc.max(b)))
    }

    /// The JSON document (hand-written: no serde dependency for this).
    pub fn json(&self, date: &str, host: &str) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\n  \"date\": {},\n  \"host\": {},\n  \"unit\": \"instructions (QEMU -icount shift=0: one per virtual nanosecond)\",\n  \"measurements\": [",
            json_str(date),
            json_str(host)
        );
        for (i, m) in self.measurements.iter().enumerate() {
            let _ = write!(
                s,
                "{}\n    {{\"column\": {}, \"id\": {}, \"reps\": {}, \"ticks\": {}, \"cntfrq\": {}, \"instructions_per_op\": {:.1}, \"machine\": {}}}",
                if i == 0 { "" } else { "," },
                json_str(&m.column),
                json_str(&m.id),
                m.reps,
                m.ticks,
                m.cntfrq,
                m.per_op(),
                json_str(&m.machine)
            );
        }
        let _ = write!(s, "\n  ],\n  \"boot\": [");
        for (i, b) in self.boots.iter().enumerate() {
            let _ = write!(
                s,
                "{}\n    {{\"vm\": {}, \"first_line\": {:.0}, \"booted\": {}, \"machine\": {}}}",
                if i == 0 { "" } else { "," },
                json_str(&b.vm),
                b.first_line,
                b.booted.map_or("null".to_string(), |x| format!("{x:.0}")),
                json_str(&b.machine)
            );
        }
        let _ = writeln!(s, "\n  ]\n}}");
        s
    }
}

/// Hypervisor rows, in table order: benchmark id and what it measures.
const HYPERVISOR_ROWS: &[(&str, &str)] = &[
    ("hvc_psci_version", "null hypercall round trip (`hvc` PSCI_VERSION)"),
    ("hvc_vendor_nop", "null hypercall round trip (`hvc` vendor NOP)"),
    ("mmio_uart_fr_read", "MMIO trap-and-emulate (read of the vPL011 flag register)"),
    ("vipi_one_way", "virtual IPI, send to handler entry (ping-pong, vCPUs on 2 pCPUs, receiver in WFI)"),
    ("vtimer_delivery_running", "virtual timer, expiry to handler entry (vCPU running)"),
    ("vtimer_delivery_wfi", "virtual timer, expiry to handler entry (vCPU in WFI)"),
    ("vcpu_switch_between_vms", "vCPU switch between two VMs time-sharing one pCPU"),
    ("stage2_first_touch", "stage-2 fault on first touch"),
];

/// Guest-kernel rows (`/bin/bench`), in table order.
const KERNEL_ROWS: &[(&str, &str)] = &[
    ("null_syscall", "null syscall (`getppid`)"),
    ("sched_yield_switch", "context switch (`sched_yield`, two tasks on one CPU)"),
    ("futex_switch", "context switch, futex wake-up (one way; two threads on one CPU)"),
    ("fork_exit_wait", "`fork` + `exit` + `wait4`"),
    ("fork_execve_exit", "`fork` + `execve` + `exit`"),
    ("anon_page_fault", "anonymous page fault (first write)"),
    ("cow_page_fault", "copy-on-write fault (child's first write)"),
];

/// `el2-hyp:   VM "x" boot: first line at N, booted at M (counter ticks at F Hz from power-on)`
fn parse_boot(line: &str, machine: &str) -> Option<Boot> {
    let i = line.find("el2-hyp:   VM \"")?;
    let rest = &line[i + "el2-hyp:   VM \"".len()..];
    let (vm, rest) = rest.split_once("\" boot: first line at ")?;
    let (first, rest) = rest.split_once(", booted at ")?;
    let (booted, rest) = rest.split_once(" (counter ticks at ")?;
    let (freq, _) = rest.split_once(" Hz")?;
    let freq: u64 = freq.parse().ok()?;
    let instr = |t: &str| t.parse::<u64>().ok().map(|t| ticks_to_instructions(t as f64, freq));
    Some(Boot { vm: vm.to_string(), first_line: instr(first)?, booted: instr(booted), machine: machine.to_string() })
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_runs_into_tables() {
        let mut r = Report::default();
        let boot = "el2-hyp:   VM \"bench\" boot: first line at 5000, booted at - (counter ticks at 1000000000 Hz from power-on)";
        r.add_log(
            "hyp",
            "virt -smp 2",
            &format!("[bench] BENCH id=hvc_psci_version reps=200 ticks=100000 cntfrq=1000000000\n{boot}"),
        );
        assert!(r.boots.is_empty(), "boot times only count from the boot run");
        r.add_log("boot", "virt -smp 2", boot);
        r.add_log("guest-kernel", "virt -smp 1", "BENCH id=null_syscall reps=10 ticks=4000 cntfrq=1000000000\n");
        r.add_log("linux", "virt -smp 1", "[    1.0] x\nBENCH id=null_syscall reps=10 ticks=2000 cntfrq=1000000000\n");
        // A second VM's line for the same id is ignored; a 62.5 MHz counter
        // is scaled to instructions.
        r.add_log(
            "guest-kernel",
            "x",
            "BENCH id=null_syscall reps=1 ticks=1 cntfrq=1\nBENCH id=cow_page_fault reps=2 ticks=1 cntfrq=62500000",
        );
        assert_eq!(r.get("hyp", "hvc_psci_version").unwrap().per_op(), 500.0);
        assert_eq!(r.get("guest-kernel", "null_syscall").unwrap().per_op(), 400.0);
        assert_eq!(r.get("guest-kernel", "cow_page_fault").unwrap().per_op(), 8.0);
        let md = r.markdown("2026-11-22", "test");
        assert!(md.contains("| null hypercall round trip (`hvc` PSCI_VERSION) | 500 | 200 | virt -smp 2 |"), "{md}");
        assert!(md.contains("| null syscall (`getppid`) | 400 | 200 | 2.00 | - | 10 |"), "{md}");
        assert!(md.contains("n/a: stage 2 is fully mapped"), "{md}");
        assert!(md.contains("| bench | 5000 | - |"), "{md}");
        assert_eq!(r.all_up(), None);
        let json = r.json("2026-11-22", "a \"quoted\" host");
        assert!(json.contains("\"instructions_per_op\": 400.0"), "{json}");
        assert!(json.contains("a \\\"quoted\\\" host"), "{json}");
        assert!(json.contains("\"booted\": null"), "{json}");
    }

    #[test]
    fn boot_lines_parse() {
        let b = parse_boot(
            "el2-hyp:   VM \"alpha\" boot: first line at 62500, booted at 125000 (counter ticks at 62500000 Hz from power-on)",
            "m",
        )
        .unwrap();
        assert_eq!((b.vm.as_str(), b.first_line, b.booted), ("alpha", 1_000_000.0, Some(2_000_000.0)));
        assert!(parse_boot("el2-hyp:   VM \"a\" stopped", "m").is_none());
    }
}
