//! Pictures of a decoded trace (`el2-trace --svg FILE`, which
//! `scripts/trace` writes to build/trace.svg): the world switches as a
//! timeline, one lane per physical CPU and one colour per VM, above a bar
//! chart of the exits per reason with their mean duration. Drawn with
//! `plotters`' SVG backend (text is SVG text: no fonts needed).

use std::collections::BTreeMap;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::trace::Trace;

/// The picture of `t` as an SVG document.
pub fn trace_svg(t: &Trace) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    if t.exits.is_empty() {
        return Err("no exits to draw".into());
    }
    let start = t.exits.first().map_or(0, |x| x.exit_at);
    let end = t.exits.iter().map(|x| x.exit_at + x.duration).max().unwrap_or(start + 1);
    let instr = |ticks: u64| crate::ticks_to_instructions(ticks as f64, t.cntfrq);
    let span = instr(end - start).max(1.0);
    let cpus = t.exits.iter().map(|x| x.pcpu).max().unwrap_or(0) + 1;
    // An exit lasts a few hundred instructions of a run of millions: draw
    // each at least this wide so that every one shows.
    let min_width = span / 1500.0;

    // Per reason: count and mean duration.
    let mut reasons: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for x in &t.exits {
        let r = reasons.entry(x.reason.map_or("?", |r| r.name())).or_default();
        r.0 += 1;
        r.1 += x.duration;
    }
    let reasons: Vec<(&str, u64, f64)> =
        reasons.into_iter().map(|(name, (n, total))| (name, n, instr(total) / n as f64)).collect();
    let most = reasons.iter().map(|r| r.1).max().unwrap_or(1);

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1200, 820)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (top, bottom) = root.split_vertically(470);

        let mut chart = ChartBuilder::on(&top)
            .caption("Guest exits per physical CPU (one colour per VM)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..span, -0.5f64..(cpus as f64 - 0.5))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("million instructions since the first exit (-icount shift=0)")
            .x_label_formatter(&|x| format!("{:.1}", x / 1e6))
            .y_labels(cpus as usize)
            .y_label_formatter(&|y| format!("CPU {}", y.round() as i64))
            .draw()
            .map_err(|e| err(&e))?;
        let vms: Vec<u8> = {
            let mut v: Vec<u8> = t.exits.iter().map(|x| x.vm).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        for (k, vm) in vms.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            let name = t.vm_names.get(vm).cloned().unwrap_or_else(|| format!("vm{vm}"));
            // Exits closer than `min_width` merge into one bar (a burst of
            // MMIO exits is one block; the picture stays small).
            let mut spans: Vec<(u32, f64, f64)> = Vec::new();
            for x in t.exits.iter().filter(|x| x.vm == *vm) {
                let x0 = instr(x.exit_at - start);
                let x1 = x0 + instr(x.duration).max(min_width);
                match spans.iter_mut().rev().find(|s| s.0 == x.pcpu) {
                    Some(s) if x0 <= s.2 + min_width => s.2 = s.2.max(x1),
                    _ => spans.push((x.pcpu, x0, x1)),
                }
            }
            chart
                .draw_series(spans.into_iter().map(|(cpu, x0, x1)| {
                    let y = f64::from(cpu);
                    Rectangle::new([(x0, y - 0.35), (x1, y + 0.35)], colour.filled())
                }))
                .map_err(|e| err(&e))?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;

        let n = reasons.len();
        let mut bars = ChartBuilder::on(&bottom)
            .caption("Exits per reason (label: count, mean duration in instructions)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((0..n).into_segmented(), 0u64..most + most / 5 + 1)
            .map_err(|e| err(&e))?;
        let names: Vec<&str> = reasons.iter().map(|r| r.0).collect();
        bars.configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => names.get(*i).copied().unwrap_or("").to_string(),
                SegmentValue::Last => String::new(),
            })
            .y_desc("exits")
            .draw()
            .map_err(|e| err(&e))?;
        bars.draw_series(reasons.iter().enumerate().map(|(i, r)| {
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i), 0), (SegmentValue::Exact(i + 1), r.1)],
                RGBColor(70, 110, 180).filled(),
            );
            bar.set_margin(0, 0, 8, 8);
            bar
        }))
        .map_err(|e| err(&e))?;
        bars.draw_series(reasons.iter().enumerate().map(|(i, r)| {
            Text::new(
                format!("{} ({:.0})", r.1, r.2),
                (SegmentValue::CenterOf(i), r.1 + most / 40 + 1),
                TextStyle::from(("sans-serif", 14)).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))
        .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Exit;
    use hypervisor::stats::ExitReason;

    #[test]
    fn the_picture_has_a_lane_per_cpu_a_colour_per_vm_and_a_bar_per_reason() {
        let mut t = Trace { cntfrq: 1_000_000_000, ..Trace::default() };
        t.vm_names.insert(0, "alpha".into());
        t.vm_names.insert(1, "beta".into());
        for i in 0..40u64 {
            t.exits.push(Exit {
                exit_at: 1000 + i * 10_000,
                duration: 400 + i,
                esr: 0,
                vm: (i % 2) as u8,
                vcpu: 0,
                pcpu: (i % 2) as u32,
                reason: Some(if i % 4 == 0 { ExitReason::Hvc } else { ExitReason::MmioWrite }),
            });
        }
        let svg = trace_svg(&t).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for text in ["alpha", "beta", "CPU 0", "CPU 1", "hvc", "mmio-write", "10 (418)", "30 (420)"] {
            assert!(svg.lines().any(|l| l.trim() == text), "no text {text:?} in the picture:\n{svg}");
        }
        // 40 exits, 2 legend swatches and 2 bars at least.
        assert!(svg.matches("<rect").count() >= 44, "{} rects", svg.matches("<rect").count());
        assert!(trace_svg(&Trace::default()).is_err());
    }
}
