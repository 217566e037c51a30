//! Pictures, drawn with `plotters`' SVG backend (text is SVG text: no
//! fonts needed):
//!
//! - [`trace_svg`] (`el2-trace --svg FILE`; `scripts/trace` writes
//!   build/trace.svg): the world switches as a timeline, one lane per
//!   physical CPU and one colour per VM, above a bar chart of the exits per
//!   reason with their mean duration;
//! - [`bench_svg`] (`bench-report --svg FILE`; `scripts/bench` writes
//!   bench.svg beside bench.md): the guest kernel ÷ Linux for each
//!   `/bin/bench` row on 1, 2 and 4 CPUs, on a log scale around 1.

use std::collections::BTreeMap;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::bench::Report;
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

/// The guest kernel beside Linux: one group of bars per `/bin/bench` row,
/// one bar per CPU count, the height ours ÷ Linux on a log scale (below 1:
/// fewer instructions than Linux). A row of ours that did not finish where
/// Linux did is drawn to the top and labelled so.
pub fn bench_svg(r: &Report) -> Result<String, String> {
    let rows = r.kernel_ratios();
    let cpus: Vec<String> = rows
        .first()
        .map(|(_, v)| v.iter().map(|(n, _)| format!("{n} CPU{}", if *n == 1 { "" } else { "s" })).collect())
        .unwrap_or_default();
    let series: Vec<&str> = cpus.iter().map(String::as_str).collect();
    let groups: Vec<Group> =
        rows.iter().map(|(id, v)| (id.to_string(), v.iter().map(|(_, ratio)| *ratio).collect())).collect();
    let axis = Axis {
        desc: "ours ÷ Linux (log scale)",
        log: true,
        range: Some((0.1, 1000.0)),
        reference: Some((1.0, "Linux = 1")),
    };
    bars_svg(
        "Guest kernel ÷ Linux 6.1, instructions per operation (below 1: fewer than Linux)",
        &axis,
        &series,
        &groups,
    )
}

/// One group of bars: its label and one value per series (None: not
/// measured, no bar; infinite: did not finish, drawn to the top as "DNF").
pub type Group = (String, Vec<Option<f64>>);

/// The value axis of a [`bars_svg`] chart.
pub struct Axis<'a> {
    /// What the values are.
    pub desc: &'a str,
    /// A log scale (for values over orders of magnitude).
    pub log: bool,
    /// Fixed (bottom, top), else from the values.
    pub range: Option<(f64, f64)>,
    /// A horizontal line at this value, named in the legend.
    pub reference: Option<(f64, &'a str)>,
}

impl<'a> Axis<'a> {
    /// A plain axis: linear or log, the range from the values.
    pub fn plain(desc: &'a str, log: bool) -> Self {
        Axis { desc, log, range: None, reference: None }
    }
}

/// A grouped bar chart: a group per row, a bar per series (a colour each,
/// named in the legend), each bar labelled with its value. What
/// [`bench_charts`] draws every benchmark table with.
pub fn bars_svg(title: &str, axis: &Axis, series: &[&str], groups: &[Group]) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    if groups.iter().all(|g| g.1.iter().all(Option::is_none)) {
        return Err("nothing measured".into());
    }
    let finite: Vec<f64> =
        groups.iter().flat_map(|g| g.1.iter().flatten().copied()).filter(|v| v.is_finite() && *v > 0.0).collect();
    let max = finite.iter().copied().fold(0.0, f64::max);
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let (bottom, top) = axis.range.unwrap_or(if axis.log { (min / 2.0, max * 3.0) } else { (0.0, max * 1.2) });
    if top.is_nan() || bottom.is_nan() || top <= bottom {
        return Err("nothing measured".into());
    }
    let n = groups.len();
    let per = series.len().max(1);
    let label = |v: f64| {
        if v.is_infinite() {
            "DNF".to_string()
        } else if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1200, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let names: Vec<&str> = groups.iter().map(|g| g.0.as_str()).collect();
        let mut builder = ChartBuilder::on(&root);
        builder.caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(50).y_label_area_size(80);
        // Two coordinate types (linear, log) mean two chart types: one
        // macro draws on either.
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(n * 2 + 1)
                    .x_label_formatter(&|x| {
                        let i = x.floor() as usize;
                        if (x - i as f64 - 0.5).abs() < 0.01 {
                            names.get(i).copied().unwrap_or("").to_string()
                        } else {
                            String::new()
                        }
                    })
                    .y_desc(axis.desc)
                    .draw()
                    .map_err(|e| err(&e))?;
                if let Some((at, name)) = axis.reference {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            [(0.0, at), (n as f64, at)],
                            BLACK.stroke_width(2),
                        )))
                        .map_err(|e| err(&e))?
                        .label(name)
                        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(2)));
                }
                for (k, name) in series.iter().enumerate() {
                    let colour = Palette99::pick(k).to_rgba();
                    let width = 0.8 / per as f64;
                    let bars: Vec<(f64, f64, f64)> = groups
                        .iter()
                        .enumerate()
                        .filter_map(|(g, (_, v))| {
                            let x0 = g as f64 + 0.1 + k as f64 * width;
                            v.get(k).copied().flatten().map(|v| (x0, x0 + width * 0.9, v))
                        })
                        .collect();
                    chart
                        .draw_series(bars.iter().map(|&(x0, x1, v)| {
                            Rectangle::new([(x0, bottom), (x1, v.clamp(bottom, top))], colour.filled())
                        }))
                        .map_err(|e| err(&e))?
                        .label(name.to_string())
                        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
                    chart
                        .draw_series(bars.iter().map(|&(x0, x1, v)| {
                            Text::new(
                                label(v),
                                ((x0 + x1) / 2.0, v.clamp(bottom, top)),
                                TextStyle::from(("sans-serif", 11)).pos(Pos::new(HPos::Center, VPos::Bottom)),
                            )
                        }))
                        .map_err(|e| err(&e))?;
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(&e))?;
            }};
        }
        if axis.log {
            draw!(builder.build_cartesian_2d(0f64..n as f64, (bottom..top).log_scale()).map_err(|e| err(&e))?);
        } else {
            draw!(builder.build_cartesian_2d(0f64..n as f64, bottom..top).map_err(|e| err(&e))?);
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

/// Every chart of a benchmark report, by file-name suffix: "" the guest
/// kernel beside Linux ([`bench_svg`]), "-hyp" the hypervisor's rows,
/// "-scaling" the 2-CPU scaling loops, "-boot" the boot milestones,
/// "-host" the host micro-benchmarks; a table with nothing measured has
/// no chart.
pub fn bench_charts(r: &Report) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    if let Ok(s) = bench_svg(r) {
        v.push(("", s));
    }
    let hyp: Vec<Group> = r.hypervisor_figures().into_iter().map(|(id, x)| (id.to_string(), vec![Some(x)])).collect();
    if let Ok(s) = bars_svg(
        "Hypervisor operations (instructions each, log scale)",
        &Axis::plain("instructions", true),
        &["ours"],
        &hyp,
    ) {
        v.push(("-hyp", s));
    }
    let scaling: Vec<Group> =
        r.scaling_figures().into_iter().map(|(what, gk, linux)| (what.to_string(), vec![gk, linux])).collect();
    if let Ok(s) = bars_svg(
        "Scaling on 2 CPUs: throughput of two pinned processes ÷ one alone (target 1.8)",
        &Axis::plain("together ÷ alone", false),
        &["guest kernel", "Linux 6.1"],
        &scaling,
    ) {
        v.push(("-scaling", s));
    }
    let boot: Vec<Group> =
        r.boots.iter().map(|b| (b.vm.clone(), vec![Some(b.first_line / 1e6), b.booted.map(|x| x / 1e6)])).collect();
    if let Ok(s) = bars_svg(
        "Boot: million instructions from power-on",
        &Axis::plain("million instructions", false),
        &["first console line", "booted (about to start init)"],
        &boot,
    ) {
        v.push(("-boot", s));
    }
    let mut series = vec!["ours"];
    series.extend(crate::bench::HOST_BASELINES.iter().map(|b| b.1));
    let host: Vec<Group> = crate::bench::HOST_ROWS
        .iter()
        .map(|&(group, ours, _)| {
            let mut vals = vec![r.host_result(group, ours).map(|h| h.median_ns)];
            vals.extend(crate::bench::HOST_BASELINES.iter().map(|b| r.host_result(group, b.0).map(|h| h.median_ns)));
            (format!("{group}/{}", ours.trim_start_matches("ours_")), vals)
        })
        .collect();
    if let Ok(s) = bars_svg(
        "Host micro-benchmarks: one alloc + free (ns on the host, log scale)",
        &Axis::plain("ns", true),
        &series,
        &host,
    ) {
        v.push(("-host", s));
    }
    v
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

    #[test]
    fn the_bench_chart_has_a_bar_per_row_and_cpu_count_and_names_what_did_not_finish() {
        let mut r = Report::default();
        let log = |ids: &[(&str, u64)]| {
            ids.iter().map(|(id, t)| format!("BENCH id={id} reps=10 ticks={t} cntfrq=1000000000\n")).collect::<String>()
        };
        r.add_log("guest-kernel", "m", &log(&[("null_syscall", 3500), ("fork_exit_wait", 1_200_000)]));
        r.add_log("linux", "m", &log(&[("null_syscall", 5000), ("fork_exit_wait", 1_000_000)]));
        r.add_log("linux-smp2", "m", &log(&[("fork_exit_wait", 1_100_000)]));
        r.add_log("guest-kernel-smp2", "m", "BENCH-DNF id=fork_exit_wait seconds=30\n");
        let svg = bench_svg(&r).unwrap();
        for text in ["null_syscall", "fork_exit_wait", "0.70", "1.20", "DNF", "1 CPU", "2 CPUs", "Linux = 1"] {
            assert!(svg.lines().any(|l| l.trim() == text), "no text {text:?} in the chart:\n{svg}");
        }
        assert!(bench_svg(&Report::default()).is_err());
        // The other tables: the scaling rows and the boot lines are in
        // neither log, so only the kernel chart and none of those.
        let charts: Vec<&str> = bench_charts(&r).iter().map(|c| c.0).collect();
        assert_eq!(charts, [""]);
        r.add_log("hyp", "m", &log(&[("hvc_vendor_nop", 3700), ("mmio_uart_fr_read", 5300)]));
        let charts = bench_charts(&r);
        let hyp = &charts.iter().find(|c| c.0 == "-hyp").expect("a hypervisor chart").1;
        for text in ["hvc_vendor_nop", "mmio_uart_fr_read", "370", "530"] {
            assert!(hyp.lines().any(|l| l.trim() == text), "no text {text:?} in the chart:\n{hyp}");
        }
    }
}
