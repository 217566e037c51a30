//! A sampling profile of the guest kernel under QEMU (`scripts/profile`):
//! QEMU's monitor prints every CPU's registers (`info registers -a`) many
//! times while a benchmark runs; this maps each sampled PC to the kernel
//! function around it, with the ELF's symbol table as `nm -n -C` prints it.
//!
//! A sample is where a CPU was when QEMU's main loop got hold of it, not a
//! uniform draw over executed instructions: QEMU stops a CPU at the end of
//! a translation block, and in round-robin `-icount` mode the CPU that is
//! not running at that moment shows where it was last stopped. Read the
//! shares to a few percent, and only for functions with many samples.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One CPU's state in one sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub cpu: usize,
    pub pc: u64,
    /// Exception level from PSTATE (`EL0t`, `EL1h`, ...): 0, 1, 2 or 3.
    pub el: u8,
}

/// The samples in a QEMU monitor log: `CPU#N` lines, each followed by
/// ` PC=... X00=...` and `PSTATE=... EL1h ...` lines.
pub fn parse_monitor(log: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let (mut cpu, mut pc) = (None, None);
    for line in log.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("CPU#") {
            cpu = n.trim().parse().ok();
            pc = None;
        } else if let Some(rest) = line.strip_prefix("PC=") {
            pc = u64::from_str_radix(rest.split_whitespace().next().unwrap_or(""), 16).ok();
        } else if let Some(rest) = line.strip_prefix("PSTATE=") {
            let el = rest.split_whitespace().find_map(|w| w.strip_prefix("EL")).and_then(|w| w.get(..1));
            if let (Some(c), Some(p), Some(el)) = (cpu, pc, el.and_then(|e| e.parse().ok())) {
                out.push(Sample { cpu: c, pc: p, el });
            }
            pc = None;
        }
    }
    out
}

/// Function symbols from `nm -n -C` output (`ADDR TYPE NAME`), sorted by
/// address; mapping symbols (`$x`, `$d`) and data symbols are left out.
pub fn parse_nm(text: &str) -> Vec<(u64, String)> {
    let mut syms: Vec<(u64, String)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let kind = it.next()?;
            let name = it.next()?.trim();
            (matches!(kind, "t" | "T" | "w" | "W") && !name.starts_with('$')).then(|| (addr, name.to_string()))
        })
        .collect();
    syms.sort_by_key(|s| s.0);
    syms
}

/// What a sample counts as: a kernel function, or user space.
pub fn place(sample: &Sample, syms: &[(u64, String)], base: u64) -> String {
    if sample.el == 0 {
        return "[user space (EL0)]".to_string();
    }
    // The kernel runs in the linear map (0xffff_0000_0000_0000 + physical)
    // or, early in boot, at its physical address; linked at 0, loaded at `base`.
    let phys = sample.pc & 0x0000_ffff_ffff_ffff;
    let Some(off) = phys.checked_sub(base) else { return format!("[EL{} outside the kernel image]", sample.el) };
    match syms.partition_point(|s| s.0 <= off) {
        0 => format!("[EL{} outside the kernel image]", sample.el),
        i => syms[i - 1].1.clone(),
    }
}

/// The table of the `top` places with the most samples: share of all
/// samples and per CPU.
pub fn report(samples: &[Sample], syms: &[(u64, String)], base: u64, top: usize) -> String {
    let cpus = samples.iter().map(|s| s.cpu + 1).max().unwrap_or(0);
    let mut per_cpu = vec![0u64; cpus];
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in samples {
        per_cpu[s.cpu] += 1;
        counts.entry(place(s, syms, base)).or_insert_with(|| vec![0; cpus])[s.cpu] += 1;
    }
    let mut rows: Vec<(String, Vec<u64>)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.iter().sum::<u64>().cmp(&a.1.iter().sum::<u64>()).then(a.0.cmp(&b.0)));
    let total = samples.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} samples of {cpus} CPU(s) ({}).\n",
        samples.len(),
        per_cpu.iter().enumerate().map(|(i, n)| format!("CPU {i}: {n}")).collect::<Vec<_>>().join(", ")
    );
    let _ = write!(s, "| function | all CPUs |");
    for i in 0..cpus {
        let _ = write!(s, " CPU {i} |");
    }
    let _ = write!(s, "\n|---|---:|");
    for _ in 0..cpus {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s);
    for (name, n) in rows.iter().take(top) {
        let mut name = name.replace('|', "\\|");
        if name.chars().count() > 110 {
            name = name.chars().take(107).collect::<String>() + "...";
        }
        let _ = write!(s, "| `{name}` | {:.1} % |", 100.0 * n.iter().sum::<u64>() as f64 / total.max(1.0));
        for (i, &c) in n.iter().enumerate() {
            let _ = write!(s, " {:.1} % |", 100.0 * c as f64 / (per_cpu[i].max(1)) as f64);
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "(qemu) info registers -a\n\nCPU#0\n PC=ffff000040242aec X00=0000000048200000 X01=1\n\
                       PSTATE=800003c5 N--- EL1h  SVCR=00000000 --  BTYPE=0\n\nCPU#1\n PC=0000000000401000 X00=0\n\
                       PSTATE=00000000 ---- EL0t\n(qemu) info registers -a\nCPU#0\n PC=000000004020004c X00=0\n\
                       PSTATE=600003c5 -ZC- EL1h\nCPU#1\n PC=ffff000040240434 X00=0\nPSTATE=600003c5 EL1h\n";

    #[test]
    fn samples_map_to_functions() {
        let samples = parse_monitor(LOG);
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[1], Sample { cpu: 1, pc: 0x401000, el: 0 });
        let syms = parse_nm(
            "0000000000000000 T _start\n0000000000000040 t $x\n0000000000000048 t early\n\
             000000000004281c T guest_kernel::kernel::softirq::irq_enter\n000000000003ffd8 T cpu_idle\n\
             0000000000050000 d SOME_DATA\n",
        );
        assert_eq!(syms.len(), 4, "{syms:?}");
        let base = 0x4020_0000;
        assert_eq!(place(&samples[0], &syms, base), "guest_kernel::kernel::softirq::irq_enter");
        assert_eq!(place(&samples[1], &syms, base), "[user space (EL0)]");
        assert_eq!(place(&samples[2], &syms, base), "early", "before the MMU: the physical address");
        assert_eq!(place(&samples[3], &syms, base), "cpu_idle");
        assert_eq!(place(&Sample { cpu: 0, pc: 0x1000, el: 1 }, &syms, base), "[EL1 outside the kernel image]");
        let r = report(&samples, &syms, base, 10);
        assert!(r.starts_with("4 samples of 2 CPU(s) (CPU 0: 2, CPU 1: 2)."), "{r}");
        assert!(r.contains("| `cpu_idle` | 25.0 % | 0.0 % | 50.0 % |"), "{r}");
        assert_eq!(report(&samples, &syms, base, 1).lines().filter(|l| l.starts_with("| `")).count(), 1);
    }
}
