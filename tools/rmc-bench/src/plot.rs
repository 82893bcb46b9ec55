// SPDX-License-Identifier: GPL-2.0

//! The report's SVG plots: kernel ns/op against CPUs, userspace calls/s against threads, and
//! calls per interval across a removal and a reload.

use std::{collections::BTreeMap, path::Path};

use plotters::prelude::*;

use crate::{
    report::{Timeline, UserRow},
    run::{KernelPoint, Variant},
};

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// A line chart with markers: one series per `(label, points)` through the medians, each
/// series' repetitions as small hollow points around them (the spread), y from 0.
struct LineChart<'a> {
    caption: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x_range: std::ops::Range<f64>,
    legend: SeriesLabelPosition,
}

impl LineChart<'_> {
    fn draw(self, path: &Path, series: &[Series]) -> Result<(), String> {
        let ymax = series
            .iter()
            .flat_map(|s| s.medians.iter().chain(&s.reps).map(|p| p.1))
            .filter(|y| y.is_finite())
            .fold(0.0, f64::max)
            * 1.15;
        // One label per whole unit (CPUs, threads).
        let x_labels = (self.x_range.end - self.x_range.start).round() as usize + 1;
        let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption(self.caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(self.x_range, 0f64..ymax.max(1.0))
            .map_err(err)?;
        c.configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .x_labels(x_labels)
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            c.draw_series(LineSeries::new(s.medians.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            c.draw_series(s.medians.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
            c.draw_series(
                s.reps
                    .iter()
                    .map(|&p| Circle::new(p, 2, color.stroke_width(1))),
            )
            .map_err(err)?;
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(self.legend)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)
    }
}

/// One line of a [`LineChart`].
struct Series {
    label: String,
    medians: Vec<(f64, f64)>,
    reps: Vec<(f64, f64)>,
}

pub fn kernel(path: &Path, points: &[KernelPoint], max_cpus: usize) -> Result<(), String> {
    let series: Vec<Series> = Variant::ALL
        .iter()
        .map(|v| {
            let mine = || points.iter().filter(|p| p.variant == v.name());
            Series {
                label: v.name().to_string(),
                medians: mine().map(|p| (p.cpus as f64, p.ns_per_op)).collect(),
                reps: mine()
                    .flat_map(|p| p.reps.iter().map(|&r| (p.cpus as f64, r)))
                    .collect(),
            }
        })
        .collect();
    LineChart {
        caption: "In-kernel cost per call (ns/op) vs concurrent CPUs; small circles: repetitions",
        x_desc: "CPUs running the loop at once",
        y_desc: "ns per op",
        x_range: 0.8..(max_cpus as f64 + 0.2),
        legend: SeriesLabelPosition::UpperLeft,
    }
    .draw(path, &series)
}

pub fn user(path: &Path, user: &[UserRow]) -> Result<(), String> {
    type Pick = fn(&UserRow) -> f64;
    let series: Vec<Series> = [
        (
            (|u| u.nop_calls_per_s) as Pick,
            0,
            "a: no-op ioctl (no provider, no reference)",
        ),
        (
            |u| u.echo_calls_per_s,
            1,
            "echo: a call's copies, no provider, no reference",
        ),
        (
            |u| u.compute_calls_per_s,
            2,
            "b: compute through the full discipline",
        ),
    ]
    .iter()
    .map(|&(pick, k, label)| Series {
        label: label.to_string(),
        medians: user.iter().map(|u| (u.threads as f64, pick(u))).collect(),
        reps: user
            .iter()
            .flat_map(|u| {
                u.calls_per_s_rounds
                    .iter()
                    .map(move |r| (u.threads as f64, r[k]))
            })
            .collect(),
    })
    .collect();
    LineChart {
        caption: "Userspace calls/s vs threads (rmc-load); small circles: rounds",
        x_desc: "threads",
        y_desc: "calls/s",
        x_range: 0.8..4.2,
        legend: SeriesLabelPosition::LowerRight,
    }
    .draw(path, &series)
}

pub fn timeline(
    path: &Path,
    timeline: &Timeline,
    marks: &BTreeMap<String, f64>,
) -> Result<(), String> {
    let rows: Vec<(f64, f64, f64)> = timeline
        .timeline
        .iter()
        .map(|&(t, ok, enodev, _)| (t, ok as f64, enodev as f64))
        .collect();
    let tmax = rows.last().map_or(1.0, |r| r.0 + 0.1);
    let ymax = rows.iter().map(|r| r.1.max(r.2)).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (860, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "Calls per 100 ms across a patient removal and a reload (4 threads)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax.max(1.0))
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("seconds since the load started")
        .y_desc("calls per interval")
        .draw()
        .map_err(err)?;
    for (i, (label, pick)) in [("ok", 1usize), ("ENODEV", 2usize)].iter().enumerate() {
        let s: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.0, if *pick == 1 { r.1 } else { r.2 }))
            .collect();
        let color = COLORS[i];
        c.draw_series(LineSeries::new(s, color.stroke_width(2)))
            .map_err(err)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    for (k, t) in marks {
        c.draw_series(std::iter::once(PathElement::new(
            vec![(*t, 0.0), (*t, ymax)],
            BLACK.stroke_width(1),
        )))
        .map_err(err)?;
        c.draw_series(std::iter::once(Text::new(
            k.clone(),
            (*t, ymax * 0.95),
            ("sans-serif", 14),
        )))
        .map_err(err)?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// One row of the verdicts plot: a target's name, its interval and median relative to its bound
/// (oriented so that above 1 is on the bound's good side), and its verdict's text.
pub struct VerdictRow {
    pub name: String,
    pub lo: f64,
    pub median: f64,
    pub hi: f64,
    pub verdict: &'static str,
}

/// Every target's 95 % interval against its bound, on a log scale: right of the line at 1 is
/// the good side; a bar across the line is "within noise".
pub fn verdicts(path: &Path, rows: &[VerdictRow]) -> Result<(), String> {
    let clamp = |x: f64| if x.is_nan() { 1.0 } else { x.clamp(0.05, 20.0) };
    let (xmin, xmax) = rows.iter().fold((0.5f64, 2.0f64), |(a, b), r| {
        (a.min(clamp(r.lo)), b.max(clamp(r.hi)))
    });
    let n = rows.len().max(1);
    let root = SVGBackend::new(path, (860, 70 + 40 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "Targets: median and 95 % interval relative to the bound (right of 1: met side)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d((xmin * 0.8..xmax * 1.25).log_scale(), 0f64..n as f64)
        .map_err(err)?;
    c.configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("effect relative to the bound (log scale)")
        .draw()
        .map_err(err)?;
    // Each row's name above its bar, at the left edge.
    for (i, r) in rows.iter().enumerate() {
        c.draw_series(std::iter::once(Text::new(
            format!("{} ({})", r.name, r.verdict),
            (xmin * 0.82, i as f64 + 0.92),
            ("sans-serif", 13),
        )))
        .map_err(err)?;
    }
    c.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        BLACK.stroke_width(1),
    )))
    .map_err(err)?;
    for (i, r) in rows.iter().enumerate() {
        let y = i as f64 + 0.35;
        let color = match r.verdict {
            "met" => COLORS[2],
            "not met" => COLORS[1],
            _ => RGBColor(127, 127, 127),
        };
        c.draw_series(std::iter::once(PathElement::new(
            vec![(clamp(r.lo), y), (clamp(r.hi), y)],
            color.stroke_width(3),
        )))
        .map_err(err)?;
        c.draw_series(std::iter::once(Circle::new(
            (clamp(r.median), y),
            4,
            color.filled(),
        )))
        .map_err(err)?;
    }
    root.present().map_err(err)
}
