//! How evaluation figures are printed, in one place for the terminal table, report.md and the
//! demo's summary: counts as integers with thousands separators (`18,439`, never `18439.0000`),
//! p-values below the bootstrap's resolution as `< 0.001`, a missing value as `n/a` (its reason
//! is printed beside the table from `null_reasons`).

use crate::contracts::evidence::Delta;

/// Metrics (by short name, as in [`super::report::METRICS`]) that are counts (`ruin` counts
/// the ruined books: 0 or 1).
pub const COUNTS: [&str; 2] = ["trades", "ruin"];

/// A count with thousands separators: 18439 → `18,439`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A metric's value as printed: counts as integers, the rest with four decimals; `n/a` when
/// it has none.
pub fn metric(short: &str, value: Option<f64>) -> String {
    match value {
        None => "n/a".into(),
        Some(v) if COUNTS.contains(&short) && v >= 0.0 && v.fract() == 0.0 && v < 1e15 => {
            count(v as u64)
        }
        Some(v) => format!("{v:.4}"),
    }
}

/// A value with two decimals, or `n/a` (its reason is printed beside it).
pub fn two_decimals(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.2}"))
}

/// A p-value: `< 0.001` below 0.001 (a bootstrap of 10,000 resamples cannot resolve less than
/// 1 / 10,001 ≈ 1e-4, and three decimals of it would print a misleading `0.000`), else three
/// decimals.
pub fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// A delta with its interval and p-value: `+0.0270 [+0.0180, +0.0360], p < 0.001`.
pub fn delta(d: &Delta) -> String {
    let p = p_value(d.p_value);
    let p = if p.starts_with('<') {
        format!("p {p}")
    } else {
        format!("p = {p}")
    };
    format!(
        "{:+.4} [{:+.4}, {:+.4}], {p}",
        d.value, d.ci_lower, d.ci_upper
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_integers_and_small_p_values_are_bounded() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(18_439), "18,439");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(metric("trades", Some(18_439.0)), "18,439");
        assert_eq!(metric("ruin", Some(1.0)), "1");
        assert_eq!(metric("ruin", Some(0.0)), "0");
        assert_eq!(metric("sr", Some(5.876_54)), "5.8765");
        assert_eq!(metric("sr", None), "n/a");
        assert_eq!(p_value(0.000_099_99), "< 0.001");
        assert_eq!(p_value(0.001), "0.001");
        assert_eq!(p_value(0.0774), "0.077");
        let d = Delta {
            value: 0.027,
            ci_lower: 0.018,
            ci_upper: 0.036,
            p_value: 1.0 / 10_001.0,
        };
        assert_eq!(delta(&d), "+0.0270 [+0.0180, +0.0360], p < 0.001");
    }
}
