//! Event-trace decoding: finds the `el2-trace:` dump lines in a console
//! log (the hypervisor's, and those a traced guest kernel prints through
//! its VM's console), decodes each CPU's defmt frames with
//! `defmt-decoder` and the string table of the ELF that logged them, and
//! reports: a timeline and a per-reason histogram of the hypervisor's
//! exits, and the guest kernels' events.

use crate::ticks_to_instructions;
use defmt_decoder::{DecodeError, Frame, Table};
use defmt_parser::Fragment;
use hypervisor::esr::Esr;
use hypervisor::stats::ExitReason;
use shared::trace::{LINE_PREFIX, from_hex};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Which program's ELF holds a dump's format strings.
pub const HYP: &str = "hyp";
/// The guest kernel's dumps.
pub const GUEST: &str = "gk";

/// One CPU's ring, as dumped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dump {
    /// [`HYP`] or [`GUEST`].
    pub program: String,
    /// The VM whose console printed it (`[name] ` before the prefix), or
    /// `hyp`.
    pub source: String,
    pub cpu: u32,
    pub cntfrq: u64,
    /// Bytes the ring overwrote before the dump.
    pub dropped: u64,
    /// Where the image ran: the frames' indices are the ELF's only when
    /// this is a multiple of 64 KiB (see [`decode`]).
    pub base: u64,
    pub bytes: Vec<u8>,
}

/// The dumps of a console log, and the VM names the hypervisor printed.
#[derive(Debug, Default)]
pub struct Log {
    pub dumps: Vec<Dump>,
    /// VM names by id, from the hypervisor's `VM <id> "<name>"` lines.
    pub vm_names: BTreeMap<u8, String>,
}

/// Finds the dumps in a console log.
pub fn parse_log(log: &str) -> Log {
    let mut out = Log::default();
    // Dumps in progress, by (source, program, cpu).
    let mut open: BTreeMap<(String, String, u32), Dump> = BTreeMap::new();
    for line in log.lines() {
        if let Some(i) = line.find("el2-hyp: VM ") {
            // el2-hyp: VM 0 "alpha": 64 MiB at IPA ...
            let rest = &line[i + "el2-hyp: VM ".len()..];
            if let Some((id, rest)) = rest.split_once(" \"")
                && let (Ok(id), Some((name, _))) = (id.parse::<u8>(), rest.split_once('"'))
            {
                out.vm_names.insert(id, name.to_string());
            }
        }
        let Some(i) = line.find(LINE_PREFIX) else { continue };
        // A VM's console line: "[alpha] el2-trace: ...".
        let source = line[..i]
            .trim()
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map_or_else(|| HYP.to_string(), str::to_string);
        let body = line[i + LINE_PREFIX.len()..].trim();
        let mut words = body.split_whitespace();
        match words.next() {
            Some(w @ ("begin" | "end")) => {
                let program = words.next().unwrap_or_default().to_string();
                let mut d = Dump { program, source: source.clone(), cntfrq: 1_000_000_000, ..Dump::default() };
                for word in words {
                    match word.split_once('=') {
                        Some(("cpu", v)) => d.cpu = v.parse().unwrap_or(0),
                        Some(("cntfrq", v)) => d.cntfrq = v.parse().unwrap_or(d.cntfrq),
                        Some(("dropped", v)) => d.dropped = v.parse().unwrap_or(0),
                        Some(("base", v)) => d.base = u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or(0),
                        _ => {}
                    }
                }
                let key = (source, d.program.clone(), d.cpu);
                if w == "begin" {
                    open.insert(key, d);
                } else if let Some(d) = open.remove(&key) {
                    out.dumps.push(d);
                }
            }
            _ => {
                // Data lines go to the one open dump of this source.
                if let (Some(bytes), Some(d)) =
                    (from_hex(body), open.iter_mut().find(|(k, _)| k.0 == source).map(|(_, d)| d))
                {
                    d.bytes.extend_from_slice(&bytes);
                }
            }
        }
    }
    // A dump cut short (the run was killed) still counts.
    out.dumps.extend(open.into_values());
    out
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The VM name for a guest kernel's event, `hyp` for the hypervisor's.
    pub source: String,
    pub cpu: u32,
    /// The frame's timestamp: counter ticks.
    pub time: u64,
    /// The interned format string.
    pub format: String,
    /// The formatted message.
    pub message: String,
    /// Each parameter, formatted, in order.
    pub params: Vec<String>,
}

/// The string tables of the programs, by [`Dump::program`].
pub type Tables = BTreeMap<String, Table>;

/// Decodes one frame into an [`Event`].
fn event(source: &str, cpu: u32, f: &Frame<'_>) -> Event {
    let params = f
        .fragments()
        .into_iter()
        .zip(f.display_fragments())
        .filter_map(|(frag, text)| matches!(frag, Fragment::Parameter(_)).then_some(text))
        .collect();
    let time = f.display_timestamp().and_then(|t| t.to_string().parse().ok()).unwrap_or(0);
    let format = f.fragments().iter().map(fragment_source).collect();
    Event { source: source.to_string(), cpu, time, format, message: f.display_message().to_string(), params }
}

fn fragment_source(f: &Fragment<'_>) -> String {
    match f {
        Fragment::Literal(s) => s.to_string(),
        Fragment::Parameter(_) => "{}".to_string(),
    }
}

/// Decodes every dump whose program has a table. Returns the events (by
/// time) and how many frames could not be decoded.
///
/// A frame's index is the address of its format string's symbol in the
/// `.defmt` section, taken at run time and truncated to 16 bits: in our
/// position-independent images that address is relocated by the load
/// address, so it is the ELF's only for a load address that is a multiple
/// of 64 KiB. A dump from an image that ran elsewhere is not decoded
/// (each of its bytes counts as undecodable).
pub fn decode(log: &Log, tables: &Tables) -> (Vec<Event>, u64) {
    let mut events = Vec::new();
    let mut bad = 0;
    for d in &log.dumps {
        let Some(table) = tables.get(&d.program) else { continue };
        if !d.base.is_multiple_of(0x1_0000) {
            bad += d.bytes.len() as u64;
            continue;
        }
        let mut bytes = &d.bytes[..];
        if d.dropped > 0 {
            // The oldest frame was torn by the wrap: start after its end.
            let first_end = bytes.iter().position(|&b| b == 0).map_or(bytes.len(), |i| i + 1);
            bytes = &bytes[first_end..];
        }
        let mut dec = table.new_stream_decoder();
        dec.received(bytes);
        loop {
            match dec.decode() {
                Ok(f) => events.push(event(&d.source, d.cpu, &f)),
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => bad += 1,
            }
        }
    }
    events.sort_by_key(|e| e.time);
    (events, bad)
}

/// One guest exit, from a hypervisor `exit` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Counter when the guest exited (ticks).
    pub exit_at: u64,
    /// Ticks from the exit until the hypervisor was done with it.
    pub duration: u64,
    pub esr: u32,
    pub vm: u8,
    pub vcpu: u8,
    pub pcpu: u32,
    pub reason: Option<ExitReason>,
}

/// The exit event's format, as [`Event::format`] gives it.
pub const EXIT_FORMAT: &str = "exit vm={} vcpu={} reason={} esr={} duration={}";

impl Exit {
    /// The exit an event records, if it is one.
    pub fn from_event(e: &Event) -> Option<Exit> {
        if e.source != HYP || e.format != EXIT_FORMAT || e.params.len() != 5 {
            return None;
        }
        let p = &e.params;
        let reason = p[2].strip_prefix("Some(").and_then(|s| s.strip_suffix(')'));
        let reason = reason.and_then(|r| ExitReason::ALL.into_iter().find(|x| format!("{x:?}") == r));
        let duration: u64 = p[4].parse().ok()?;
        Some(Exit {
            exit_at: e.time.saturating_sub(duration),
            duration,
            esr: u32::from_str_radix(p[3].trim_start_matches("0x"), 16).ok()?,
            vm: p[0].parse().ok()?,
            vcpu: p[1].parse().ok()?,
            pcpu: e.cpu,
            reason,
        })
    }
}

/// A decoded trace.
#[derive(Debug, Default)]
pub struct Trace {
    /// Every exit, oldest first.
    pub exits: Vec<Exit>,
    /// Every other event (the guest kernels'), oldest first per source.
    pub events: Vec<Event>,
    /// Counter frequency (from the hypervisor's dump lines).
    pub cntfrq: u64,
    /// Bytes the rings overwrote, by source.
    pub dropped: BTreeMap<String, u64>,
    /// Frames that did not decode.
    pub malformed: u64,
    /// VM names by id.
    pub vm_names: BTreeMap<u8, String>,
}

/// Decodes a console log with the programs' string tables.
pub fn parse(log: &str, tables: &Tables) -> Trace {
    let l = parse_log(log);
    let (events, malformed) = decode(&l, tables);
    let mut t = Trace { cntfrq: 1_000_000_000, malformed, vm_names: l.vm_names.clone(), ..Trace::default() };
    for d in &l.dumps {
        if d.program == HYP {
            t.cntfrq = d.cntfrq;
        }
        *t.dropped.entry(d.source.clone()).or_default() += d.dropped;
    }
    for e in events {
        match Exit::from_event(&e) {
            Some(x) => t.exits.push(x),
            None => t.events.push(e),
        }
    }
    t.exits.sort_by_key(|x| x.exit_at);
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
    fn what(x: &Exit) -> (String, String) {
        let reason = x.reason.map_or("?", |r| r.name()).to_string();
        let class = if x.esr == 0 { "-".to_string() } else { Esr::decode(u64::from(x.esr)).ec.to_string() };
        (reason, class)
    }

    /// Exits counted per (VM name, reason), to set beside the hypervisor's
    /// own exit statistics.
    pub fn counts(&self) -> BTreeMap<(String, &'static str), u64> {
        let mut m = BTreeMap::new();
        for x in &self.exits {
            *m.entry((self.vm(x.vm), x.reason.map_or("?", |r| r.name()))).or_default() += 1;
        }
        m
    }

    /// One line per exit: time, CPU, VM/vCPU, reason, class, duration.
    pub fn timeline(&self, limit: usize) -> String {
        let mut s = String::new();
        let start = self.exits.first().map_or(0, |x| x.exit_at);
        let _ = writeln!(
            s,
            "{:>14} {:>4} {:<16} {:<11} {:<40} {:>9}",
            "t (instr)", "cpu", "vm/vcpu", "reason", "ESR class", "duration"
        );
        for x in self.exits.iter().take(limit) {
            let (reason, class) = Self::what(x);
            let _ = writeln!(
                s,
                "{:>14.0} {:>4} {:<16} {:<11} {:<40} {:>9.0}",
                self.instr(x.exit_at - start),
                x.pcpu,
                format!("{}/{}", self.vm(x.vm), x.vcpu),
                reason,
                class,
                self.instr(x.duration)
            );
        }
        if self.exits.len() > limit {
            let _ = writeln!(s, "... {} more exits (--all prints them)", self.exits.len() - limit);
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
        for x in &self.exits {
            let d = x.duration;
            let row = rows.entry(Self::what(x)).or_insert(Row { min: u64::MAX, ..Row::default() });
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
        let dropped = self.dropped.get(HYP).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "{} exits, {:.0} instructions in EL2 handling them{}",
            self.exits.len(),
            self.instr(all),
            if dropped > 0 { format!(" (older exits were overwritten: {dropped} ring bytes)") } else { String::new() }
        );
        s
    }

    /// Per VM: how often each guest-kernel event was logged, and the last
    /// `limit` events.
    pub fn guest_events(&self, limit: usize) -> String {
        let mut s = String::new();
        let mut per: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for e in &self.events {
            *per.entry((&e.source, &e.format)).or_default() += 1;
        }
        let _ = writeln!(s, "{:<12} {:>7}  event", "vm", "count");
        for ((vm, format), n) in &per {
            let _ = writeln!(s, "{vm:<12} {n:>7}  {format}");
        }
        for (vm, dropped) in self.dropped.iter().filter(|(src, d)| src.as_str() != HYP && **d > 0) {
            let _ = writeln!(s, "{vm}: older events were overwritten ({dropped} ring bytes)");
        }
        let skip = self.events.len().saturating_sub(limit);
        if skip < self.events.len() {
            let _ = writeln!(s, "\n{:>16} {:<12} {:>4}  event", "t (ticks)", "vm", "cpu");
        }
        for e in &self.events[skip..] {
            let _ = writeln!(s, "{:>16} {:<12} {:>4}  {}", e.time, e.source, e.cpu, e.message);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_cpus_dump_by_source() {
        let log = [
            "el2-hyp: VM 0 \"alpha\": 64 MiB at IPA 0x40000000",
            "el2-hyp: VM 1 \"beta\": 64 MiB",
            "el2-trace: begin hyp cpu=0 bytes=3 dropped=0 base=0x40200000 cntfrq=62500000",
            "el2-trace: 010203",
            "[beta] el2-trace: begin gk cpu=1 bytes=2 dropped=7 base=0x40000000 cntfrq=62500000",
            "[alpha] an ordinary line with el2-trace: in it",
            "el2-trace: 0405",
            "[beta] el2-trace: aabb",
            "el2-trace: nothex",
            "el2-trace: end hyp cpu=0",
            "[beta] el2-trace: end gk cpu=1",
        ]
        .join("\n");
        let l = parse_log(&log);
        assert_eq!(l.vm_names.get(&1).map(String::as_str), Some("beta"));
        assert_eq!(l.dumps.len(), 2);
        let hyp = l.dumps.iter().find(|d| d.program == HYP).unwrap();
        assert_eq!((hyp.source.as_str(), hyp.cpu, hyp.cntfrq, hyp.base), ("hyp", 0, 62_500_000, 0x4020_0000));
        assert_eq!(hyp.bytes, [1, 2, 3, 4, 5]);
        let gk = l.dumps.iter().find(|d| d.program == GUEST).unwrap();
        assert_eq!((gk.source.as_str(), gk.cpu, gk.dropped), ("beta", 1, 7));
        assert_eq!(gk.bytes, [0xaa, 0xbb]);
    }

    #[test]
    fn exit_events_become_exits() {
        let e = |source: &str, params: [&str; 5]| Event {
            source: source.into(),
            cpu: 1,
            time: 10_000,
            format: EXIT_FORMAT.into(),
            message: String::new(),
            params: params.map(String::from).to_vec(),
        };
        let x = Exit::from_event(&e(HYP, ["2", "1", "Some(MmioWrite)", "0x93c08047", "400"])).unwrap();
        assert_eq!(
            x,
            Exit {
                exit_at: 9_600,
                duration: 400,
                esr: 0x93c0_8047,
                vm: 2,
                vcpu: 1,
                pcpu: 1,
                reason: Some(ExitReason::MmioWrite)
            }
        );
        assert_eq!(Exit::from_event(&e(HYP, ["0", "0", "None", "0x0", "5"])).unwrap().reason, None);
        assert_eq!(Exit::from_event(&e("alpha", ["0", "0", "None", "0x0", "5"])), None);
        let mut t = Trace { exits: vec![x.clone(), Exit { exit_at: 5_000, duration: 200, ..x }], ..Trace::default() };
        t.cntfrq = 1_000_000_000;
        t.vm_names.insert(2, "gamma".into());
        assert_eq!(t.counts().get(&("gamma".to_string(), "mmio-write")), Some(&2));
        let h = t.histogram();
        assert!(h.contains("mmio-write"), "{h}");
        assert!(h.contains("2 exits, 600 instructions"), "{h}");
        assert!(t.timeline(1).contains("gamma/1"), "{}", t.timeline(1));
    }
}
