use super::{CliError, CliResult};
use crate::cli::output::outln;
use crate::evaluation::bootstrap::{BootstrapConfig, Setting, sharpe_delta, sharpe_interval};
use crate::evaluation::metrics::{NavMetrics, Undefined, daily_returns};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// NAV series: CSV `date,nav`, or the JSON layout of the paper's fixture (`dates`, `series`).
    #[arg(long)]
    pub nav: PathBuf,
    /// Series name inside a JSON file.
    #[arg(long)]
    pub series: Option<String>,
    /// A baseline NAV series over the same dates, for deltas with confidence intervals.
    #[arg(long)]
    pub baseline_nav: Option<PathBuf>,
    #[arg(long)]
    pub baseline_series: Option<String>,
    /// Bootstrap resamples (0: no intervals; else at least 100, as in `janus evaluate`).
    #[arg(long, default_value_t = 10_000)]
    pub bootstrap: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Expected block length of the stationary bootstrap, in days: finite, ≥ 1 and below the
    /// series' return days.
    #[arg(long, default_value_t = 5.0)]
    pub block_length: f64,
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Reads a NAV series: the fixture's JSON layout when the name ends in `.json`, else CSV with a
/// `nav` column (and optionally a `date` column). The format comes from the name, never from
/// the content.
fn read_nav(path: &Path, series: Option<&str>) -> Result<(Vec<String>, Vec<f64>), CliError> {
    let bytes = std::fs::read(path).map_err(|source| CliError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let bad = |m: String| CliError::Usage(format!("{file}: {m}"));
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let all = doc["series"]
            .as_object()
            .ok_or_else(|| bad("no `series` object".into()))?;
        let name = match series {
            Some(n) => n.to_string(),
            None if all.len() == 1 => all.keys().next().cloned().unwrap_or_default(),
            None => {
                let names: Vec<&String> = all.keys().collect();
                return Err(bad(format!("choose a series with --series: {names:?}")));
            }
        };
        let values = all
            .get(&name)
            .and_then(|v| v.as_array())
            .ok_or_else(|| bad(format!("no series `{name}`")))?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64()
                    .ok_or_else(|| bad(format!("series `{name}` point {i} is not a number")))
            })
            .collect::<Result<Vec<f64>, _>>()?;
        let dates = doc["dates"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        return Ok((dates, values));
    }
    let table = crate::records::Table::parse(&file, &bytes)?;
    let nav_col = table.header.columns(&["nav"])?[0];
    let date_col = table.header.position("date");
    let (mut dates, mut values) = (Vec::new(), Vec::new());
    for (line, fields) in table.rows() {
        let at = |m: String| CliError::Usage(format!("{file}:{line}: {m}"));
        let fields = fields.map_err(at)?;
        let field = fields[nav_col].as_ref();
        let v: f64 = field.parse().map_err(|_| {
            at(format!(
                "nav `{}` is not a number",
                crate::records::excerpt(field.as_bytes())
            ))
        })?;
        values.push(v);
        dates.push(date_col.map_or(String::new(), |c| fields[c].to_string()));
    }
    Ok((dates, values))
}

fn num(x: Option<f64>) -> serde_json::Value {
    x.map_or(serde_json::Value::Null, |v| json!(v))
}

/// The metrics of one series with the reason for every null beside them.
fn metrics_json(m: &NavMetrics) -> serde_json::Value {
    json!({
        "sr": num(m.sr), "mdd": m.mdd, "arr": num(m.arr), "calmar": num(m.calmar),
        "total_return": m.total_return, "days": m.days,
        "ruin": m.ruin.as_ref().map(|r| json!({"day": r.day, "nav": r.nav})),
        "null_reasons": m.null_reasons,
    })
}

pub fn run(args: MetricsArgs) -> CliResult {
    let config = BootstrapConfig {
        resamples: args.bootstrap,
        block_length: args.block_length,
        seed: args.seed,
        confidence: args.confidence,
    };
    // The same rules as `janus evaluate`'s `bootstrap` configuration (0 resamples: no interval).
    let flag = |setting: Setting| match setting {
        Setting::Resamples => "--bootstrap",
        Setting::BlockLength => "--block-length",
        Setting::Confidence => "--confidence",
    };
    if args.bootstrap > 0 {
        config
            .validate()
            .map_err(|(setting, why)| CliError::Usage(format!("{}: {why}", flag(setting))))?;
    }
    let (dates, nav) = read_nav(&args.nav, args.series.as_deref())?;
    let metrics_err = |p: &Path, e: crate::evaluation::metrics::MetricsError| {
        CliError::Usage(format!("{}: {e}", p.display()))
    };
    let m = NavMetrics::from_nav(&nav).map_err(|e| metrics_err(&args.nav, e))?;
    let returns = daily_returns(&nav).map_err(|e| metrics_err(&args.nav, e))?;
    // A block length the series cannot hold is a setting that does not fit the data: refused
    // like any other bad setting (exit 2), never turned into an interval of zero width. It is
    // checked where an interval would be drawn, so a series without an SR (ruin) still gets
    // its null with the reason.
    let misfit = |why| CliError::Usage(format!("--block-length: {why} ({})", args.nav.display()));
    let mut out = metrics_json(&m);
    if args.bootstrap > 0 {
        match sharpe_interval(&returns, &config) {
            Ok(ci) => {
                out["sr_ci"] =
                    json!({"ci_lower": ci.ci_lower, "ci_upper": ci.ci_upper, "p_value": ci.p_value})
            }
            Err(Undefined::Bootstrap(why)) => return Err(misfit(why)),
            Err(why) => {
                out["sr_ci"] = serde_json::Value::Null;
                out["null_reasons"]["sr_ci"] = json!(why.to_string());
            }
        }
        out["bootstrap"] =
            serde_json::to_value(config.significance("stationary_bootstrap")).expect("serializes");
    }
    if let Some(base_path) = &args.baseline_nav {
        let (base_dates, base_nav) = read_nav(base_path, args.baseline_series.as_deref())?;
        if base_nav.len() != nav.len()
            || (!dates.is_empty() && !base_dates.is_empty() && base_dates != dates)
        {
            return Err(CliError::Usage(format!(
                "{} and {} do not cover the same dates ({} and {} points)",
                args.nav.display(),
                base_path.display(),
                nav.len(),
                base_nav.len()
            )));
        }
        let b = NavMetrics::from_nav(&base_nav).map_err(|e| metrics_err(base_path, e))?;
        let base_returns = daily_returns(&base_nav).map_err(|e| metrics_err(base_path, e))?;
        out["baseline"] = metrics_json(&b);
        let mut delta = serde_json::Map::new();
        let mut delta_reasons = serde_json::Map::new();
        if args.bootstrap > 0 {
            // A ruined side has no SR, so no delta (sharpe_delta says which side and why).
            match sharpe_delta(&returns, &base_returns, &config) {
                Ok(d) => {
                    delta.insert("sr".into(), serde_json::to_value(d).expect("serializes"));
                }
                Err(Undefined::Bootstrap(why)) => return Err(misfit(why)),
                Err(why) => {
                    delta_reasons.insert("sr".into(), json!(why.to_string()));
                }
            }
        }
        for (name, c, bv) in [
            ("mdd", Some(m.mdd), Some(b.mdd)),
            ("arr", m.arr, b.arr),
            ("total_return", Some(m.total_return), Some(b.total_return)),
        ] {
            match (c, bv) {
                (Some(c), Some(bv)) => {
                    delta.insert(name.into(), json!({"value": c - bv}));
                }
                _ => {
                    delta_reasons.insert(
                        name.into(),
                        json!(format!("{name} is undefined for one of the series")),
                    );
                }
            }
        }
        // The delta's own reasons beside its figures, as every output holds them (issue 17).
        delta.insert(
            "null_reasons".into(),
            serde_json::Value::Object(delta_reasons),
        );
        out["delta"] = serde_json::Value::Object(delta);
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializes")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let show = |v: &serde_json::Value| v.as_f64().map_or("n/a".to_string(), |x| format!("{x:.4}"));
    outln!(
        "days {}  SR {}  MDD {}  ARR {}  Calmar {}  total return {}",
        m.days,
        show(&out["sr"]),
        show(&out["mdd"]),
        show(&out["arr"]),
        show(&out["calmar"]),
        show(&out["total_return"])
    );
    if let Some(ci) = out.get("sr_ci").filter(|ci| ci.is_object()) {
        outln!(
            "  SR {:.0}% CI [{}, {}], p(SR ≤ 0) = {}",
            args.confidence * 100.0,
            show(&ci["ci_lower"]),
            show(&ci["ci_upper"]),
            show(&ci["p_value"])
        );
    }
    if let Some(reasons) = out["null_reasons"].as_object() {
        for (k, why) in reasons {
            outln!("  {k} n/a: {}", why.as_str().unwrap_or_default());
        }
    }
    if let Some(d) = out.get("delta") {
        if let Some(why) = d["null_reasons"]["sr"].as_str() {
            outln!("  SR − baseline: n/a: {why}");
        }
        if let Some(sr) = d.get("sr") {
            outln!(
                "  SR − baseline: {} [{}, {}], p(Δ ≤ 0) = {}",
                show(&sr["value"]),
                show(&sr["ci_lower"]),
                show(&sr["ci_upper"]),
                show(&sr["p_value"])
            );
        }
        outln!(
            "  ARR − baseline: {}  MDD − baseline: {}",
            show(&d["arr"]["value"]),
            show(&d["mdd"]["value"])
        );
    }
    Ok(ExitCode::SUCCESS)
}
