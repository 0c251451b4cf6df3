//! SVG charts of an evaluation, rendered to strings (no files, no fonts needed beyond SVG text).
//!
//! What a reader should be able to tell without the docs: every series is named in a legend by
//! its model, drawn in a band between the title and the plot so it never covers a curve (`SFT → GRPO`, `baseline (type sign)`, never "candidate"); time runs over calendar
//! dates; every axis says its unit; bars sit above the label they belong to; a value that does
//! not exist is shown as `n/a`, never as a zero-height bar; a chart with nothing to show says
//! why instead of drawing an empty frame.

use super::diagnostics::{CarPath, Reliability, histogram};
use super::present;
use super::report::Evaluation;
use crate::contracts::evidence::Delta;
use chrono::NaiveDate;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

fn chart_error<E: std::fmt::Debug>(e: E) -> String {
    format!("chart: {e:?}")
}

/// The legend names of the two models of an evaluation.
#[derive(Debug, Clone)]
pub struct Names {
    pub candidate: String,
    pub baseline: String,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            candidate: "candidate".into(),
            baseline: "baseline (type sign)".into(),
        }
    }
}

const SIZE: (u32, u32) = (760, 380);
/// Colours of the first, second and third series.
const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// The drawing area of a chart.
type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// How a legend entry marks its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A solid line (a series over time).
    Line,
    /// A dashed line (a reference such as a bound or the diagonal).
    Dashed,
    /// A filled box (bars).
    Bar,
    /// A dot (points).
    Point,
}

/// One entry of a chart's legend: the series' name (a model's name, never "candidate") and
/// how it is drawn.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub color: RGBColor,
    pub mark: Mark,
}

const TITLE_HEIGHT: u32 = 30;
const LEGEND_ROW: u32 = 18;
const LEGEND_FONT: f64 = 13.0;
/// Width of a legend entry's mark and the gaps around it, in pixels.
const LEGEND_MARK: i32 = 22;
const LEGEND_GAP: i32 = 18;

/// Estimated width in pixels of `text` in a sans-serif font of nominal size `size` (the SVG
/// backend writes size / 1.24 px; 0.6 em is a generous mean glyph width), so that layouts keep
/// labels apart without measuring fonts.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size / 1.24 * 0.6
}

/// The legend's entries in rows that fit `width`: (row, x of the entry) for each entry.
fn legend_layout(entries: &[Entry], width: i32) -> Vec<(u32, i32)> {
    let (mut row, mut x) = (0u32, 12i32);
    entries
        .iter()
        .map(|e| {
            let w = LEGEND_MARK + text_width(&e.name, LEGEND_FONT).ceil() as i32 + LEGEND_GAP;
            if x > 12 && x + w > width - 12 {
                row += 1;
                x = 12;
            }
            let at = (row, x);
            x += w;
            at
        })
        .collect()
}

/// Draws a chart's title and its legend in a band between the title and the plot, and returns
/// the area left for the plot: a legend never covers data. The one legend of every chart.
fn frame<'a>(root: &Area<'a>, title: &str, entries: &[Entry]) -> Result<Area<'a>, String> {
    let width = root.dim_in_pixel().0 as i32;
    root.draw(&Text::new(
        title.to_string(),
        (width / 2, 8),
        TextStyle::from(("sans-serif", 18).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(chart_error)?;
    let layout = legend_layout(entries, width);
    let rows = layout.iter().map(|(r, _)| r + 1).max().unwrap_or(0);
    let (band, plot) = root.split_vertically(TITLE_HEIGHT + rows * LEGEND_ROW + 4);
    for (e, (row, x)) in entries.iter().zip(layout) {
        let y = (TITLE_HEIGHT + row * LEGEND_ROW + LEGEND_ROW / 2) as i32;
        let (x0, x1) = (x, x + LEGEND_MARK - 6);
        match e.mark {
            Mark::Line => band.draw(&PathElement::new(
                vec![(x0, y), (x1, y)],
                e.color.stroke_width(2),
            )),
            Mark::Dashed => band
                .draw(&PathElement::new(
                    vec![(x0, y), (x0 + 5, y)],
                    e.color.stroke_width(2),
                ))
                .and_then(|()| {
                    band.draw(&PathElement::new(
                        vec![(x1 - 5, y), (x1, y)],
                        e.color.stroke_width(2),
                    ))
                }),
            Mark::Bar => band.draw(&Rectangle::new(
                [(x0 + 2, y - 5), (x1 - 2, y + 5)],
                e.color.filled(),
            )),
            Mark::Point => band.draw(&Circle::new(((x0 + x1) / 2, y), 4, e.color.filled())),
        }
        .map_err(chart_error)?;
        band.draw(&Text::new(
            e.name.clone(),
            (x + LEGEND_MARK, y),
            TextStyle::from(("sans-serif", LEGEND_FONT).into_font())
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(chart_error)?;
    }
    Ok(plot)
}

/// The date of each NAV point of an evaluated window that starts at calendar day `start` of
/// `calendar`: point 0 is the close before the window's first open (the day before `start`, or
/// one day earlier than the calendar when `start` is 0), point k ≥ 1 the close of day
/// `start + k − 1`.
pub fn nav_dates(calendar: &[NaiveDate], start: usize, points: usize) -> Vec<NaiveDate> {
    (0..points)
        .filter_map(|k| match (start + k).checked_sub(1) {
            Some(day) => calendar.get(day).copied(),
            None => calendar.first().and_then(|d| d.pred_opt()),
        })
        .collect()
}

/// NAV of candidate and baseline over the dates of their points.
pub fn nav(e: &Evaluation, names: &Names, dates: &[NaiveDate]) -> Result<String, String> {
    lines(
        "NAV over the evaluated window (start = 1)",
        "NAV (multiple of the starting capital)",
        dates,
        &[
            (names.candidate.as_str(), &e.candidate.nav),
            (names.baseline.as_str(), &e.baseline.nav),
        ],
    )
}

/// Drawdown below the running peak, in percent.
pub fn drawdown_percent(nav: &[f64]) -> Vec<f64> {
    let mut peak = f64::MIN;
    nav.iter()
        .map(|v| {
            peak = peak.max(*v);
            -100.0 * (peak - v) / peak
        })
        .collect()
}

/// Drawdown of candidate and baseline, in percent of the running peak.
pub fn drawdown(e: &Evaluation, names: &Names, dates: &[NaiveDate]) -> Result<String, String> {
    let (c, b) = (
        drawdown_percent(&e.candidate.nav),
        drawdown_percent(&e.baseline.nav),
    );
    lines(
        "Drawdown",
        "drawdown (% below the running peak NAV)",
        dates,
        &[
            (names.candidate.as_str(), &c),
            (names.baseline.as_str(), &b),
        ],
    )
}

/// Lines over dates (`dates[k]` is the date of point k of every series), one colour each and a
/// legend naming them.
pub fn lines(
    title: &str,
    y_desc: &str,
    dates: &[NaiveDate],
    series: &[(&str, &Vec<f64>)],
) -> Result<String, String> {
    render(SIZE, |root| {
        let n = series.iter().map(|s| s.1.len()).max().unwrap_or(0);
        let finite = series
            .iter()
            .flat_map(|s| s.1.iter())
            .any(|v| v.is_finite());
        if n < 2 || !finite {
            empty(root, title, "fewer than two points: nothing to draw")
        } else {
            draw_lines(root, title, y_desc, dates, series, n)
        }
    })
}

/// An SVG of `size` pixels on a white ground, drawn by `draw`.
fn render(
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        draw(&root)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn draw_lines(
    root: &Area<'_>,
    title: &str,
    y_desc: &str,
    dates: &[NaiveDate],
    series: &[(&str, &Vec<f64>)],
    n: usize,
) -> Result<(), String> {
    let entries: Vec<Entry> = series
        .iter()
        .enumerate()
        .map(|(k, (name, _))| Entry {
            name: name.to_string(),
            color: COLORS[k % COLORS.len()],
            mark: Mark::Line,
        })
        .collect();
    let plot = frame(root, title, &entries)?;
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0..n - 1, (lo - pad)..(hi + pad))
        .map_err(chart_error)?;
    let label = |i: &usize| dates.get(*i).map(|d| d.to_string()).unwrap_or_default();
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&label)
        .x_desc("date (close)")
        .y_desc(y_desc)
        .draw()
        .map_err(chart_error)?;
    for (entry, (_, values)) in entries.iter().zip(series) {
        chart
            .draw_series(LineSeries::new(
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| (i, *v)),
                entry.color.stroke_width(2),
            ))
            .map_err(chart_error)?;
    }
    Ok(())
}

/// A caption and a sentence saying why there is nothing to draw.
fn empty(root: &Area<'_>, title: &str, why: &str) -> Result<(), String> {
    let h = SIZE.1;
    root.draw(&Text::new(
        title.to_string(),
        (12, 12),
        ("sans-serif", 18).into_font(),
    ))
    .map_err(chart_error)?;
    root.draw(&Text::new(
        why.to_string(),
        (40, h as i32 / 2),
        ("sans-serif", 15).into_font().color(&RGBColor(90, 90, 90)),
    ))
    .map_err(chart_error)?;
    Ok(())
}

/// Bars of named values (fold returns, regime Sharpe ratios), candidate and baseline side by
/// side above each row's label, with a legend naming the models. A value that does not exist is
/// drawn as no bar and its label says `n/a`. Without rows, the chart says `when_empty`.
pub fn bars(
    title: &str,
    y_desc: &str,
    names: &Names,
    rows: &[(String, Option<f64>, Option<f64>)],
    when_empty: &str,
) -> Result<String, String> {
    let labels: Vec<String> = rows
        .iter()
        .map(|(name, c, b)| {
            if c.is_none() || b.is_none() {
                format!("{name} (n/a)")
            } else {
                name.clone()
            }
        })
        .collect();
    let layout = CategoryLabels::new(&labels, PLOT_WIDTH);
    render((SIZE.0, SIZE.1 + layout.extra_height()), |root| {
        if rows.is_empty() {
            empty(root, title, when_empty)
        } else {
            draw_bars(root, title, y_desc, names, rows, &layout)
        }
    })
}

/// Width in pixels of a chart's plot (the chart less its margins and the value axis).
const PLOT_WIDTH: f64 = SIZE.0 as f64 - 2.0 * 12.0 - 64.0;
const TICK_FONT: f64 = 12.0;

/// How the labels under a row of categories are laid out so that they never crowd:
/// horizontal when every label fits its slot, else turned vertical (the label area grows to
/// the longest), and when even vertical labels are closer than a line, only every `step`-th.
#[derive(Debug, Clone, PartialEq)]
struct CategoryLabels {
    labels: Vec<String>,
    vertical: bool,
    step: usize,
    /// Height of the label area under the axis, in pixels.
    height: u32,
}

impl CategoryLabels {
    fn new(labels: &[String], width: f64) -> Self {
        let slot = width / labels.len().max(1) as f64;
        let widest = labels
            .iter()
            .map(|l| text_width(l, TICK_FONT))
            .fold(0.0, f64::max);
        let line = TICK_FONT / 1.24 + 3.0;
        let vertical = widest + 8.0 > slot;
        Self {
            labels: labels.to_vec(),
            vertical,
            step: if vertical && slot < line {
                (line / slot).ceil() as usize
            } else {
                1
            },
            height: if vertical {
                (widest + 16.0).ceil().min(220.0) as u32
            } else {
                36
            },
        }
    }

    /// Pixels added to the chart's height for vertical labels.
    fn extra_height(&self) -> u32 {
        self.height.saturating_sub(36)
    }

    /// Draws label i under pixel column `x` (the category's centre), `y` the axis's pixel row.
    fn draw(&self, root: &Area<'_>, i: usize, x: i32, y: i32) -> Result<(), String> {
        if i % self.step != 0 {
            return Ok(());
        }
        let Some(text) = self.labels.get(i) else {
            return Ok(());
        };
        let font = ("sans-serif", TICK_FONT).into_font();
        let style = if self.vertical {
            TextStyle::from(font.transform(FontTransform::Rotate90))
                .pos(Pos::new(HPos::Left, VPos::Center))
        } else {
            TextStyle::from(font).pos(Pos::new(HPos::Center, VPos::Top))
        };
        root.draw(&Text::new(text.clone(), (x, y + 8), style))
            .map_err(chart_error)
    }
}

fn draw_bars(
    root: &Area<'_>,
    title: &str,
    y_desc: &str,
    names: &Names,
    rows: &[(String, Option<f64>, Option<f64>)],
    labels: &CategoryLabels,
) -> Result<(), String> {
    let entries = [
        Entry {
            name: names.candidate.clone(),
            color: COLORS[0],
            mark: Mark::Bar,
        },
        Entry {
            name: names.baseline.clone(),
            color: COLORS[1],
            mark: Mark::Bar,
        },
    ];
    let plot = frame(root, title, &entries)?;
    let (lo, hi) = rows
        .iter()
        .flat_map(|r| [r.1, r.2])
        .flatten()
        .fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(1e-6);
    let n = rows.len();
    // Row i is centred on x = i, so the axis's integer ticks fall under each pair of bars.
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(labels.height)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (lo - pad)..(hi + pad))
        .map_err(chart_error)?;
    // The mesh draws the ticks; the labels are laid out by `labels` so that they never crowd.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|_| String::new())
        .y_desc(y_desc)
        .draw()
        .map_err(chart_error)?;
    let bottom = chart.backend_coord(&(0.0, lo - pad)).1;
    for i in 0..n {
        labels.draw(
            root,
            i,
            chart.backend_coord(&(i as f64, lo - pad)).0,
            bottom,
        )?;
    }
    for (k, entry) in entries.iter().enumerate() {
        let (from, to) = if k == 0 { (-0.38, -0.02) } else { (0.02, 0.38) };
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                let v = if k == 0 { r.1 } else { r.2 }?;
                let x = i as f64;
                Some(Rectangle::new(
                    [(x + from, 0.0), (x + to, v)],
                    entry.color.filled(),
                ))
            }))
            .map_err(chart_error)?;
    }
    chart
        .draw_series(LineSeries::new(
            [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(chart_error)?;
    Ok(())
}

/// A light blue for bars behind points and lines.
const LIGHT_BLUE: RGBColor = RGBColor(158, 190, 226);

/// A light grey for references (the diagonal, zero).
const GREY: RGBColor = RGBColor(120, 120, 120);

/// Ten colours, one per event type.
const TEN: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A reliability (calibration) diagram of `name`'s direction calls: for each probability bin,
/// the observed hit rate as a bar over the bin, the calls' mean probability against their hit
/// rate as a point, the diagonal of perfect calibration, and the number of calls under each
/// bin. Without a scored call the chart says `when_empty`.
pub fn reliability(name: &str, r: &Reliability, when_empty: &str) -> Result<String, String> {
    let title = match r.ece {
        Some(ece) => format!(
            "Reliability of {name}'s direction calls ({} calls, ECE {ece:.3})",
            present::count(r.scored)
        ),
        None => format!("Reliability of {name}'s direction calls"),
    };
    render((SIZE.0, SIZE.1 + 60), |root| {
        if r.scored == 0 {
            return empty(root, &title, when_empty);
        }
        let entries = [
            Entry {
                name: format!("{name}: hit rate of the calls in the bin"),
                color: LIGHT_BLUE,
                mark: Mark::Bar,
            },
            Entry {
                name: format!("{name}: mean probability vs hit rate"),
                color: COLORS[0],
                mark: Mark::Point,
            },
            Entry {
                name: "perfect calibration (hit rate = probability)".into(),
                color: GREY,
                mark: Mark::Dashed,
            },
        ];
        let plot = frame(root, &title, &entries)?;
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(52)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0f64..1.0, -0.08f64..1.0)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(11)
            .y_labels(6)
            .y_label_formatter(&|v| {
                if *v < 0.0 {
                    String::new()
                } else {
                    format!("{v:.1}")
                }
            })
            .x_desc("probability the model gave the direction it called (bin; n = calls in it)")
            .y_desc("hit rate (call's direction = label's)")
            .draw()
            .map_err(chart_error)?;
        let bar = LIGHT_BLUE;
        chart
            .draw_series(r.bins.iter().filter_map(|b| {
                Some(Rectangle::new(
                    [(b.lower + 0.005, 0.0), (b.upper - 0.005, b.hit_rate?)],
                    bar.filled(),
                ))
            }))
            .map_err(chart_error)?;
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                GREY.stroke_width(1),
            ))
            .map_err(chart_error)?;
        let points: Vec<(f64, f64)> = r
            .bins
            .iter()
            .filter_map(|b| Some((b.mean_probability?, b.hit_rate?)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), COLORS[0].stroke_width(1)))
            .map_err(chart_error)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new(*p, 4, COLORS[0].filled())),
            )
            .map_err(chart_error)?;
        // Counts sit in a strip under the bars, one per bin, so they cannot crowd.
        chart
            .draw_series(r.bins.iter().filter(|b| b.calls > 0).map(|b| {
                Text::new(
                    format!("n={}", present::count(b.calls)),
                    ((b.lower + b.upper) / 2.0, -0.04),
                    TextStyle::from(("sans-serif", 11).into_font())
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )
            }))
            .map_err(chart_error)?;
        Ok(())
    })
}

/// The bootstrap distribution of a delta: a histogram of the resampled values, the observed
/// value and the confidence interval's bounds as vertical lines. `what` names the delta with
/// its models and unit (the x axis), `draws` are the resamples (none: the chart says
/// `when_empty`).
pub fn bootstrap(
    title: &str,
    what: &str,
    observed: Option<&Delta>,
    draws: &[f64],
    confidence: f64,
    when_empty: &str,
) -> Result<String, String> {
    let hist = observed.and(histogram(draws, 40));
    render(SIZE, |root| {
        let (Some(d), Some(h)) = (observed, hist.as_ref()) else {
            return empty(root, title, when_empty);
        };
        let entries = [
            Entry {
                name: format!("resamples ({})", present::count(draws.len() as u64)),
                color: LIGHT_BLUE,
                mark: Mark::Bar,
            },
            Entry {
                name: format!("observed {:+.3}", d.value),
                color: BLACK,
                mark: Mark::Line,
            },
            Entry {
                name: format!(
                    "{:.0}% CI [{:+.3}, {:+.3}]",
                    confidence * 100.0,
                    d.ci_lower,
                    d.ci_upper
                ),
                color: COLORS[1],
                mark: Mark::Dashed,
            },
            Entry {
                name: "zero".into(),
                color: GREY,
                mark: Mark::Line,
            },
        ];
        let plot = frame(root, title, &entries)?;
        let top = h.counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.08;
        let right = h.lower + h.width * h.counts.len() as f64;
        let (x0, x1) = [d.value, d.ci_lower, d.ci_upper, 0.0]
            .into_iter()
            .filter(|v| v.is_finite())
            .fold((h.lower, right), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((x1 - x0) * 0.03).max(1e-9);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..top)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_desc(what)
            .y_desc("resamples per bin")
            .draw()
            .map_err(chart_error)?;
        let bar = LIGHT_BLUE;
        chart
            .draw_series(h.counts.iter().enumerate().map(|(i, c)| {
                let left = h.lower + h.width * i as f64;
                Rectangle::new([(left, 0.0), (left + h.width, *c as f64)], bar.filled())
            }))
            .map_err(chart_error)?;
        let vline = |x: f64| [(x, 0.0), (x, top)];
        chart
            .draw_series(LineSeries::new(vline(0.0), GREY.stroke_width(1)))
            .map_err(chart_error)?;
        for x in [d.ci_lower, d.ci_upper] {
            chart
                .draw_series(DashedLineSeries::new(
                    vline(x),
                    6,
                    4,
                    COLORS[1].stroke_width(2),
                ))
                .map_err(chart_error)?;
        }
        chart
            .draw_series(LineSeries::new(vline(d.value), BLACK.stroke_width(2)))
            .map_err(chart_error)?;
        Ok(())
    })
}

/// Mean cumulative abnormal return on each day of the event window, one line per event type
/// (its name and event count in the legend), in percent. Without a path the chart says
/// `when_empty`.
pub fn car_by_type(title: &str, paths: &[CarPath], when_empty: &str) -> Result<String, String> {
    let entries: Vec<Entry> = paths
        .iter()
        .enumerate()
        .map(|(k, p)| Entry {
            name: format!("{} ({})", p.event_type.name(), present::count(p.events)),
            color: TEN[k % TEN.len()],
            mark: Mark::Line,
        })
        .collect();
    let rows = legend_layout(&entries, SIZE.0 as i32)
        .last()
        .map_or(0, |(r, _)| r + 1);
    render((SIZE.0, SIZE.1 + rows * LEGEND_ROW), |root| {
        let days = paths.iter().map(|p| p.mean_car.len()).max().unwrap_or(0);
        if days == 0 {
            return empty(root, title, when_empty);
        }
        let plot = frame(root, title, &entries)?;
        let (lo, hi) = paths
            .iter()
            .flat_map(|p| p.mean_car.iter().map(|v| 100.0 * v))
            .fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.08).max(1e-6);
        // Day −1 is the close before d0, where every CAR starts at 0.
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(-1i32..days as i32 - 1, (lo - pad)..(hi + pad))
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(days + 1)
            .x_label_formatter(&|d| format!("{d}"))
            .y_label_formatter(&|v| format!("{:.1}", if v.abs() < 1e-9 { 0.0 } else { *v }))
            .x_desc("trading day relative to d0 (0 = first tradable day after the news)")
            .y_desc("mean CAR (%)")
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(LineSeries::new(
                [(-1, 0.0), (days as i32 - 1, 0.0)],
                GREY.stroke_width(1),
            ))
            .map_err(chart_error)?;
        for (entry, p) in entries.iter().zip(paths) {
            let points = std::iter::once((-1, 0.0)).chain(
                p.mean_car
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| (k as i32, 100.0 * v)),
            );
            chart
                .draw_series(LineSeries::new(points, entry.color.stroke_width(2)))
                .map_err(chart_error)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split('>').nth(1))
            .map(|t| t.split('<').next().unwrap_or("").trim().to_string())
            .collect()
    }

    #[test]
    fn bars_sit_above_their_labels_and_legends_name_the_models() {
        let names = Names {
            candidate: "SFT → GRPO".into(),
            baseline: "baseline (type sign)".into(),
        };
        let rows = vec![
            ("calm".to_string(), Some(1.0), Some(-0.5)),
            ("stress".to_string(), None, Some(0.2)),
        ];
        let svg = bars("t", "Sharpe ratio", &names, &rows, "none").unwrap();
        let t = texts(&svg);
        for want in ["calm", "stress (n/a)", "SFT → GRPO", "baseline (type sign)"] {
            assert!(t.iter().any(|x| x == want), "{want} in {t:?}");
        }
        // Three bars in all (the missing value draws none), and each label's x lies between
        // its pair's bars: the plot spans x 76..748 of 760 for rows at −0.5..1.5, so row 0's
        // centre is about a quarter of the way across and row 1's three quarters.
        let label_x = |name: &str| -> f64 {
            let at = svg
                .find(&format!(">\n{name}\n"))
                .or_else(|| svg.find(name))
                .unwrap();
            let open = svg[..at].rfind("<text x=\"").unwrap() + 9;
            svg[open..].split('"').next().unwrap().parse().unwrap()
        };
        let (a, b) = (label_x("calm"), label_x("stress (n/a)"));
        assert!(a < 380.0 && b > 380.0 && (b - a) > 250.0, "{a} {b}");
        let filled = |c: &str| {
            svg.matches(&format!("fill=\"{c}\" stroke=\"none\"/>"))
                .count()
        };
        // Legend swatches add one rectangle per model.
        assert_eq!(filled("#1F77B4"), 1 + 1);
        assert_eq!(filled("#D62728"), 2 + 1);
    }

    #[test]
    fn legends_sit_above_the_plot_not_on_it() {
        // A drawdown-like series at its top-left corner, where a legend inside the frame sat.
        let d = |day| NaiveDate::from_ymd_opt(2024, 1, day).unwrap();
        let a = vec![0.0, 0.0, -5.0, -20.0];
        let b = vec![0.0, -1.0, -2.0, -3.0];
        let svg = lines(
            "Drawdown",
            "%",
            &[d(1), d(2), d(3), d(4)],
            &[("GRPO", &a), ("base", &b)],
        )
        .unwrap();
        let attr = |tag: &str, name: &str| -> f64 {
            let at = svg.find(tag).unwrap();
            let open = svg[..at].rfind(&format!("{name}=\"")).unwrap() + name.len() + 2;
            svg[open..].split('"').next().unwrap().parse().unwrap()
        };
        // The legend's text ends (y + 14 px of font) above the highest point of any curve.
        let legend_bottom = attr(">\nGRPO\n", "y").max(attr(">\nbase\n", "y")) + 14.0;
        let top_of_curves = svg
            .split("points=\"")
            .skip(1)
            .flat_map(|p| {
                p.split('"')
                    .next()
                    .unwrap()
                    .split(' ')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|xy| xy.split(',').nth(1).and_then(|y| y.parse::<f64>().ok()))
            .fold(f64::MAX, f64::min);
        assert!(
            legend_bottom <= top_of_curves,
            "{legend_bottom} > {top_of_curves}"
        );
    }

    #[test]
    fn an_empty_chart_says_why() {
        let svg = bars(
            "Folds",
            "%",
            &Names::default(),
            &[],
            "No walk-forward fold: 30 days",
        )
        .unwrap();
        let t = texts(&svg);
        assert!(
            t.iter().any(|x| x == "No walk-forward fold: 30 days"),
            "{t:?}"
        );
        // No axis, so no tick labels such as 0.0 and -0.0.
        assert!(!t.iter().any(|x| x == "0.0" || x == "-0.0"), "{t:?}");
    }

    #[test]
    fn nav_points_are_dated_by_their_close() {
        let d = |day| NaiveDate::from_ymd_opt(2024, 1, day).unwrap();
        let calendar = [d(2), d(3), d(4), d(5)];
        // Window from day 2: point 0 is day 1's close, point k the close of day 1 + k.
        assert_eq!(nav_dates(&calendar, 2, 3), vec![d(3), d(4), d(5)]);
        // From day 0 there is no earlier close: the day before the calendar.
        assert_eq!(nav_dates(&calendar, 0, 2), vec![d(1), d(2)]);
        assert_eq!(
            drawdown_percent(&[1.0, 2.0, 1.5, 3.0]),
            vec![0.0, 0.0, -25.0, 0.0]
        );
    }

    /// A minimal XML well-formedness check: every tag closes in order, attributes are quoted,
    /// text holds no raw `<` and only the five XML entities.
    fn well_formed(svg: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            for (k, _) in text.match_indices('&') {
                let entity = &text[k..];
                if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e))
                {
                    return Err(format!("bare & in {text:?}"));
                }
            }
            let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
            let tag = &rest[open + 1..close];
            if tag.starts_with('?') || tag.starts_with('!') {
            } else if let Some(name) = tag.strip_prefix('/') {
                let top = stack
                    .pop()
                    .ok_or(format!("</{name}> without an opening tag"))?;
                if top != name.trim() {
                    return Err(format!("</{name}> closes <{top}>"));
                }
            } else {
                if tag.matches('"').count() % 2 != 0 {
                    return Err(format!("unbalanced quotes in <{tag}>"));
                }
                let name = tag
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('/');
                if !tag.ends_with('/') {
                    stack.push(name.to_string());
                }
            }
            rest = &rest[close + 1..];
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    fn every_chart(with_data: bool) -> Vec<(&'static str, String)> {
        use super::super::diagnostics::{CarPath, Reliability, reliability_bins};
        use crate::taxonomy::EventType;
        let names = Names {
            candidate: "SFT → GRPO".into(),
            baseline: "baseline (type sign)".into(),
        };
        let d = |day| NaiveDate::from_ymd_opt(2024, 1, day).unwrap();
        let dates: Vec<NaiveDate> = (1..=5).map(d).collect();
        let (nav, nav_b) = if with_data {
            (
                vec![1.0, 1.1, f64::NAN, 1.05, 1.2],
                vec![1.0, 0.9, 0.95, f64::INFINITY, 1.0],
            )
        } else {
            (vec![], vec![])
        };
        let rows: Vec<(String, Option<f64>, Option<f64>)> = if with_data {
            (0..12)
                .map(|i| {
                    (
                        format!("2024-0{}-01 – 2024-0{}-28", i % 9 + 1, i % 9 + 1),
                        Some(i as f64 - 5.0),
                        None,
                    )
                })
                .collect()
        } else {
            vec![]
        };
        let points = [(0.35, true), (0.38, false), (0.62, true), (f64::NAN, true)];
        let r = Reliability {
            bins: if with_data {
                reliability_bins(&points, 10)
            } else {
                vec![]
            },
            scored: if with_data { 3 } else { 0 },
            without_probability: 0,
            ece: with_data.then_some(0.1),
        };
        let delta = Delta {
            value: 0.4,
            ci_lower: -0.2,
            ci_upper: 1.1,
            p_value: 0.1,
        };
        let draws: Vec<f64> = if with_data {
            (0..200)
                .map(|i| (i as f64 / 50.0).sin())
                .chain([f64::NAN])
                .collect()
        } else {
            vec![]
        };
        let paths = if with_data {
            vec![
                CarPath {
                    event_type: EventType::Dividend,
                    events: 12,
                    mean_car: vec![0.01, 0.015, f64::NAN],
                },
                CarPath {
                    event_type: EventType::Violation,
                    events: 3,
                    mean_car: vec![-0.02, -0.03, -0.025],
                },
            ]
        } else {
            vec![]
        };
        vec![
            (
                "lines",
                lines(
                    "NAV",
                    "NAV",
                    &dates,
                    &[
                        (names.candidate.as_str(), &nav),
                        (names.baseline.as_str(), &nav_b),
                    ],
                )
                .unwrap(),
            ),
            (
                "bars",
                bars("Folds", "return (%)", &names, &rows, "no fold").unwrap(),
            ),
            (
                "reliability",
                reliability(&names.candidate, &r, "no probability").unwrap(),
            ),
            (
                "bootstrap",
                bootstrap(
                    "ΔSR",
                    "ΔSR",
                    with_data.then_some(&delta),
                    &draws,
                    0.95,
                    "no ΔSR",
                )
                .unwrap(),
            ),
            ("car", car_by_type("CAR", &paths, "no event").unwrap()),
        ]
    }

    #[test]
    fn every_chart_is_well_formed_svg_without_nan_and_says_why_when_empty() {
        for with_data in [true, false] {
            for (name, svg) in every_chart(with_data) {
                well_formed(&svg).unwrap_or_else(|e| panic!("{name} ({with_data}): {e}"));
                assert!(
                    !svg.contains("NaN") && !svg.contains("inf"),
                    "{name}: {svg}"
                );
                let t = texts(&svg);
                if with_data {
                    assert!(t.len() > 6, "{name}: {t:?}");
                } else {
                    // A title and one sentence, no axis ticks.
                    assert_eq!(t.len(), 2, "{name}: {t:?}");
                }
            }
        }
        assert!(well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(well_formed("<svg><g></svg>").is_err());
    }

    #[test]
    fn legends_name_the_models_and_crowded_labels_turn_vertical() {
        let charts = every_chart(true);
        let svg = |n: &str| &charts.iter().find(|c| c.0 == n).unwrap().1;
        let t = texts(svg("reliability"));
        assert!(t.iter().any(|x| x.starts_with("SFT → GRPO")), "{t:?}");
        assert!(
            t.iter().any(|x| x == "n=2") && t.iter().any(|x| x == "n=1"),
            "{t:?}"
        );
        let t = texts(svg("car"));
        assert!(t.iter().any(|x| x == "dividend (12)"), "{t:?}");
        let t = texts(svg("bootstrap"));
        assert!(t.iter().any(|x| x == "95% CI [-0.200, +1.100]"), "{t:?}");
        assert!(t.iter().any(|x| x == "observed +0.400"), "{t:?}");
        // Twelve 23-character fold labels cannot sit side by side in 672 px (56 px each): they
        // are drawn vertically, one per fold, so none overlaps its neighbour.
        let folds = svg("bars");
        assert_eq!(
            folds.matches("transform=\"rotate(90,").count(),
            12,
            "{folds}"
        );
        // The legend sits above the plot: its text is higher than every bar's top.
        let legend_y = |name: &str| -> f64 {
            let at = folds.find(&format!(">\n{name}\n")).unwrap();
            let open = folds[..at].rfind(" y=\"").unwrap() + 4;
            folds[open..].split('"').next().unwrap().parse().unwrap()
        };
        let top = folds
            .split("<rect ")
            .skip(1)
            .filter(|r| r.contains("fill=\"#1F77B4\"") && !r.contains("height=\"10\""))
            .filter_map(|r| {
                r.split("y=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .fold(f64::MAX, f64::min);
        assert!(
            legend_y("SFT → GRPO") < top,
            "{} {top}",
            legend_y("SFT → GRPO")
        );
    }
}
