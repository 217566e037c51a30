//! Exit-trace decoding: finds the `el2-trace:` lines in a console log,
//! merges every CPU's records by time, and reports.

use crate::ticks_to_instructions;
use hypervisor::esr::Esr;
use hypervisor::trace::{LINE_PREFIX, Record};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A decoded trace.
#[derive(Debug, Default)]
pub struct Trace {
    /// Every record, oldest first.
    pub records: Vec<Record>,
    /// Counter frequency (from the dump's `begin` lines).
    pub cntfrq: u64,
    /// Records the rings overwrote.
    pub dropped: u64,
    /// VM names by id, from the hypervisor's `VM <id> "<name>"` lines.
    pub vm_names: BTreeMap<u8, String>,
}

/// Parses a console log.
pub fn parse(log: &str) -> Trace {
    let mut t = Trace { cntfrq: 1_000_000_000, ..Trace::default() };
    for line in log.lines() {
        if let Some(i) = line.find("el2-hyp: VM ") {
            // el2-hyp: VM 0 "alpha": 64 MiB at IPA ...
            let rest = &line[i + "el2-hyp: VM ".len()..];
            if let Some((id, rest)) = rest.split_once(" \"")
                && let (Ok(id), Some((name, _))) = (id.parse::<u8>(), rest.split_once('"'))
            {
                t.vm_names.insert(id, name.to_string());
            }
        }
        let Some(i) = line.find(LINE_PREFIX) else { continue };
        let body = line[i + LINE_PREFIX.len()..].trim();
        if let Some(begin) = body.strip_prefix("begin ") {
            for word in begin.split_whitespace() {
                match word.split_once('=') {
                    Some(("cntfrq", v)) => t.cntfrq = v.parse().unwrap_or(t.cntfrq),
                    Some(("dropped", v)) => t.dropped += v.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        } else if let Some(r) = Record::from_hex(body) {
            t.records.push(r);
        }
    }
    t.records.sort_by_key(|r| r.exit_at);
    t
}

impl Trace {
    fn vm(&self, id: u8) -> String {
        self.vm_names.get(&id).cloned().unwrap_or_else(|| format!("vm{id}"))
    }

    fn instr(&self, ticks: u64) -> f64 {
        ticks_to_instructions(ticks as f64, self.cntfrq)
    }

    /// What an exit was: the counted reason, and the ESR class for
    /// synchronous exits.
    fn what(r: &Record) -> (String, String) {
        let reason = r.reason().map_or("?", |x| x.name()).to_string();
        let class = if r.esr == 0 { "-".to_string() } else { Esr::decode(u64::from(r.esr)).ec.to_string() };
        (reason, class)
    }

    /// One line per exit: time, CPU, VM/vCPU, reason, class, duration.
    pub fn timeline(&self, limit: usize) -> String {
        let mut s = String::new();
        let start = self.records.first().map_or(0, |r| r.exit_at);
        let _ = writeln!(
            s,
            "{:>14} {:>4} {:<16} {:<11} {:<40} {:>9}",
            "t (instr)", "cpu", "vm/vcpu", "reason", "ESR class", "duration"
        );
        for r in self.records.iter().take(limit) {
            let (reason, class) = Self::what(r);
            let _ = writeln!(
                s,
                "{:>14.0} {:>4} {:<16} {:<11} {:<40} {:>9.0}",
                self.instr(r.exit_at - start),
                r.pcpu,
                format!("{}/{}", self.vm(r.vm), r.vcpu),
                reason,
                class,
                self.instr(u64::from(r.duration))
            );
        }
        if self.records.len() > limit {
            let _ = writeln!(s, "... {} more exits (--all prints them)", self.records.len() - limit);
        }
        s
    }

    /// Per reason (and per ESR class): count, total, mean, min, max
    /// duration in instructions, and a bar of the share of EL2 time.
    pub fn histogram(&self) -> String {
        #[derive(Default)]
        struct Row {
            n: u64,
            total: u64,
            min: u64,
            max: u64,
        }
        let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
        for r in &self.records {
            let d = u64::from(r.duration);
            let row = rows.entry(Self::what(r)).or_insert(Row { min: u64::MAX, ..Row::default() });
            row.n += 1;
            row.total += d;
            row.min = row.min.min(d);
            row.max = row.max.max(d);
        }
        let all: u64 = rows.values().map(|r| r.total).sum::<u64>().max(1);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<11} {:<40} {:>7} {:>9} {:>9} {:>9} {:>12}  share of EL2 time",
            "reason", "ESR class", "exits", "mean", "min", "max", "total"
        );
        let mut sorted: Vec<_> = rows.into_iter().collect();
        sorted.sort_by_key(|row| std::cmp::Reverse(row.1.total));
        for ((reason, class), r) in sorted {
            let share = r.total as f64 / all as f64;
            let _ = writeln!(
                s,
                "{:<11} {:<40} {:>7} {:>9.0} {:>9.0} {:>9.0} {:>12.0}  {:<30} {:>5.1}%",
                reason,
                class,
                r.n,
                self.instr(r.total) / r.n as f64,
                self.instr(r.min),
                self.instr(r.max),
                self.instr(r.total),
                "#".repeat((share * 30.0).round() as usize),
                share * 100.0
            );
        }
        let _ = writeln!(
            s,
            "{} exits, {:.0} instructions in EL2 handling them{}",
            self.records.len(),
            self.instr(all),
            if self.dropped > 0 { format!(" ({} older exits were overwritten)", self.dropped) } else { String::new() }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypervisor::stats::ExitReason;

    fn line(r: Record) -> String {
        format!("{LINE_PREFIX}{}", r.to_hex())
    }

    #[test]
    fn decodes_merges_and_reports() {
        let hvc = Record {
            exit_at: 5000,
            duration: 300,
            esr: 0x5a00_0000,
            vm: 0,
            vcpu: 0,
            pcpu: 0,
            reason: ExitReason::Hvc as u8,
        };
        let irq =
            Record { exit_at: 2000, duration: 100, esr: 0, vm: 1, vcpu: 1, pcpu: 1, reason: ExitReason::Irq as u8 };
        let hvc2 = Record { exit_at: 9000, duration: 500, ..hvc };
        let log = [
            "el2-hyp: VM 0 \"alpha\": 64 MiB at IPA 0x40000000".to_string(),
            "el2-hyp: VM 1 \"beta\": 64 MiB".to_string(),
            format!("{LINE_PREFIX}begin cpu=0 records=2 dropped=3 cntfrq=1000000000"),
            line(hvc),
            format!("[alpha] interleaved {}", line(hvc2)),
            format!("{LINE_PREFIX}end cpu=0"),
            format!("{LINE_PREFIX}begin cpu=1 records=1 dropped=0 cntfrq=1000000000"),
            line(irq),
            "garbage el2-trace: nothex".to_string(),
        ]
        .join("\n");
        let t = parse(&log);
        assert_eq!(t.records, [irq, hvc, hvc2]);
        assert_eq!(t.dropped, 3);
        assert_eq!(t.vm_names.get(&1).map(String::as_str), Some("beta"));
        let tl = t.timeline(2);
        assert!(tl.contains("beta/1"), "{tl}");
        assert!(tl.contains("HVC"), "{tl}");
        assert!(tl.contains("1 more exits"), "{tl}");
        let h = t.histogram();
        assert!(h.lines().nth(1).unwrap().starts_with("hvc"), "hvc has the most EL2 time:\n{h}");
        assert!(h.contains("      2       400       300       500          800"), "{h}");
        assert!(h.contains("3 exits, 900 instructions"), "{h}");
        assert!(h.contains("3 older exits were overwritten"), "{h}");
    }
}
