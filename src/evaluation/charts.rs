//! SVG charts of an evaluation, rendered to strings (no files, no fonts needed beyond SVG text).

use super::report::Evaluation;
use plotters::prelude::*;

fn chart_error<E: std::fmt::Debug>(e: E) -> String {
    format!("chart: {e:?}")
}

/// NAV of candidate and baseline.
pub fn nav(e: &Evaluation) -> Result<String, String> {
    let series = [
        ("candidate", &e.candidate.nav, BLUE),
        ("baseline", &e.baseline.nav, RED),
    ];
    lines("NAV (start = 1)", &series)
}

/// Drawdown of candidate and baseline.
pub fn drawdown(e: &Evaluation) -> Result<String, String> {
    let dd = |nav: &[f64]| -> Vec<f64> {
        let mut peak = f64::MIN;
        nav.iter()
            .map(|v| {
                peak = peak.max(*v);
                -(peak - v) / peak
            })
            .collect()
    };
    let (c, b) = (dd(&e.candidate.nav), dd(&e.baseline.nav));
    lines(
        "Drawdown",
        &[("candidate", &c, BLUE), ("baseline", &b, RED)],
    )
}

fn lines(title: &str, series: &[(&str, &Vec<f64>, RGBColor)]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let n = series.iter().map(|s| s.1.len()).max().unwrap_or(1).max(2);
        let (lo, hi) = series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0..n, (lo - pad)..(hi + pad))
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("trading day")
            .draw()
            .map_err(chart_error)?;
        for (name, values, color) in series {
            let color = *color;
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(i, v)| (i, *v)),
                    color,
                ))
                .map_err(chart_error)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Bars of named values (fold returns, regime Sharpe ratios), candidate and baseline side by side.
pub fn bars(title: &str, rows: &[(String, f64, f64)]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let (lo, hi) = rows
            .iter()
            .flat_map(|r| [r.1, r.2])
            .fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.1).max(1e-6);
        let n = rows.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, (lo - pad)..(hi + pad))
            .map_err(chart_error)?;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| labels.get(x.floor() as usize).cloned().unwrap_or_default())
            .draw()
            .map_err(chart_error)?;
        for (i, (_, c, b)) in rows.iter().enumerate() {
            let x = i as f64;
            chart
                .draw_series([
                    Rectangle::new([(x + 0.1, 0.0), (x + 0.45, *c)], BLUE.filled()),
                    Rectangle::new([(x + 0.55, 0.0), (x + 0.9, *b)], RED.filled()),
                ])
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}
