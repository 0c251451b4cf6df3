//! SVG charts of an evaluation, rendered to strings (no files, no fonts needed beyond SVG text).
//!
//! What a reader should be able to tell without the docs: every series is named in a legend by
//! its model, drawn in a band between the title and the plot so it never covers a curve (`SFT → GRPO`, `baseline (type sign)`, never "candidate"); time runs over calendar
//! dates; every axis says its unit; bars sit above the label they belong to; a value that does
//! not exist is shown as `n/a`, never as a zero-height bar; a chart with nothing to show says
//! why instead of drawing an empty frame.

use super::report::Evaluation;
use chrono::NaiveDate;
use plotters::prelude::*;

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
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let n = series.iter().map(|s| s.1.len()).max().unwrap_or(0);
        if n < 2 {
            empty(root, title, "fewer than two points: nothing to draw")?;
        } else {
            draw_lines(&root, title, y_desc, dates, series, n)?;
        }
    }
    Ok(svg)
}

fn draw_lines(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    dates: &[NaiveDate],
    series: &[(&str, &Vec<f64>)],
    n: usize,
) -> Result<(), String> {
    {
        let (lo, hi) = series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|v| v.is_finite())
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let keys: Vec<(&str, RGBColor)> = series
            .iter()
            .enumerate()
            .map(|(k, s)| (s.0, COLORS[k % COLORS.len()]))
            .collect();
        let plot = legend_above(root, title, &keys, Swatch::Line)?;
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
        for (k, (_, values)) in series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(i, v)| (i, *v)),
                    color.stroke_width(2),
                ))
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(())
}

/// A caption and a sentence saying why there is nothing to draw.
fn empty(
    root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    why: &str,
) -> Result<(), String> {
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
    root.present().map_err(chart_error)
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
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        if rows.is_empty() {
            empty(root, title, when_empty)?;
        } else {
            draw_bars(&root, title, y_desc, names, rows)?;
        }
    }
    Ok(svg)
}

fn draw_bars(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    names: &Names,
    rows: &[(String, Option<f64>, Option<f64>)],
) -> Result<(), String> {
    let (lo, hi) = rows
        .iter()
        .flat_map(|r| [r.1, r.2])
        .flatten()
        .fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(1e-6);
    let n = rows.len();
    // Row i is centred on x = i, so the axis's integer ticks fall under each pair of bars.
    let keys = [
        (names.candidate.as_str(), COLORS[0]),
        (names.baseline.as_str(), COLORS[1]),
    ];
    let plot = legend_above(root, title, &keys, Swatch::Box)?;
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (lo - pad)..(hi + pad))
        .map_err(chart_error)?;
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
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        labels.get(i as usize).cloned().unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&label)
        .y_desc(y_desc)
        .draw()
        .map_err(chart_error)?;
    for (k, &color) in COLORS.iter().take(2).enumerate() {
        let (from, to) = if k == 0 { (-0.38, -0.02) } else { (0.02, 0.38) };
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                let v = if k == 0 { r.1 } else { r.2 }?;
                let x = i as f64;
                Some(Rectangle::new(
                    [(x + from, 0.0), (x + to, v)],
                    color.filled(),
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
    root.present().map_err(chart_error)?;
    Ok(())
}

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
enum Swatch {
    Line,
    Box,
}

/// Draws `title` and, in a band of its own under it, one legend entry per series (swatch and
/// name, left to right); returns the area left for the plot. The legend sits outside the plot
/// area, so it can never cover a curve or a bar (as a legend inside the frame did on the
/// drawdown chart).
fn legend_above<'a>(
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    title: &str,
    keys: &[(&str, RGBColor)],
    swatch: Swatch,
) -> Result<DrawingArea<SVGBackend<'a>, plotters::coord::Shift>, String> {
    let body = root
        .titled(title, ("sans-serif", 18))
        .map_err(chart_error)?;
    let (band, plot) = body.split_vertically(22);
    let font: TextStyle = ("sans-serif", 14).into_font().into();
    // From the plot's left edge (the margin plus the y-label area of the charts above).
    let mut x = 76;
    for (name, color) in keys {
        let color = *color;
        match swatch {
            Swatch::Line => band.draw(&PathElement::new(
                vec![(x, 11), (x + 16, 11)],
                color.stroke_width(2),
            )),
            Swatch::Box => band.draw(&Rectangle::new([(x, 6), (x + 12, 16)], color.filled())),
        }
        .map_err(chart_error)?;
        band.draw(&Text::new(name.to_string(), (x + 22, 4), font.clone()))
            .map_err(chart_error)?;
        let (w, _) = band.estimate_text_size(name, &font).map_err(chart_error)?;
        x += 22 + w as i32 + 24;
    }
    Ok(plot)
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
}
