use super::{CliError, CliResult};
use crate::cli::output::outln;
use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::evidence::{
    EvidenceArtifact, EvidenceCounts, EvidenceSummary, EvidenceVersion,
};
use crate::contracts::label::{Label, Prediction};
use crate::contracts::lineage::digest_file;
use crate::contracts::reward::HgrmRewardArtifact;
use crate::contracts::{Artifact, ArtifactKind, Lineage, artifact, generated_at, read_artifact};
use crate::evaluation::backtest::{EventSlot, PricePanel};
use crate::evaluation::charts;
use crate::evaluation::report::{
    Evaluation, EvaluationConfig, EvaluationInput, METRICS, evaluate, evaluate_against,
};
use crate::labeling::input::parse_price_panel;
use crate::records;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The labelled events (janus-event-car-v1).
    #[arg(long)]
    pub event_car: PathBuf,
    /// JSON Lines: {"event_id", "direction", "event_type", "strength", "car_estimate"}.
    #[arg(long)]
    pub predictions: PathBuf,
    /// prices.csv: date,symbol,open,close.
    #[arg(long)]
    pub prices: PathBuf,
    /// Evaluation configuration (YAML or JSON).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The HGRM rewards of the candidate (janus-hgrm-reward-v1), referenced by the evidence.
    #[arg(long)]
    pub rewards: Option<PathBuf>,
    /// First evaluated date (the held-out window starts here); earlier data only feeds history.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Regime labels, CSV `date,regime`, instead of volatility terciles and trend.
    #[arg(long)]
    pub regimes: Option<PathBuf>,
    /// indices.csv (`date,index,close`): classify regimes by this market index instead of an
    /// equal-weighted proxy of all stocks.
    #[arg(long)]
    pub indices: Option<PathBuf>,
    /// Which index of --indices (needed when it holds several).
    #[arg(long)]
    pub index: Option<String>,
    /// SHA-256 of the candidate's model artifact, recorded in the evidence.
    #[arg(long, conflicts_with = "model")]
    pub model_sha256: Option<String>,
    /// The candidate's model artifact (the ONNX graph the decision service runs): its SHA-256
    /// is recorded in the evidence.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long)]
    pub generated_at: Option<DateTime<Utc>>,
    /// Output directory: evaluation.json, evidence.json, report.md and SVG charts.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictionLine {
    /// Read as text by [`records::json_line_id`] (a number's raw token), not here.
    #[allow(dead_code)]
    event_id: serde::de::IgnoredAny,
    #[serde(flatten)]
    prediction: Prediction,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads predictions by event id (text exactly as written); bad lines (malformed, not a JSON
/// object, not UTF-8) are named and skipped.
pub fn read_predictions(path: &Path) -> Result<BTreeMap<String, Prediction>, CliError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let mut out = BTreeMap::new();
    for (line, text) in records::text_lines(&bytes) {
        let parsed = text.and_then(|text| {
            let id = records::json_line_id(text)?;
            let p: PredictionLine = records::json_object(text)?;
            Ok((id, p.prediction))
        });
        match parsed {
            Ok((id, prediction)) => {
                if out.insert(id.clone(), prediction).is_some() {
                    eprintln!(
                        "{}:{line}: second prediction for `{}` replaces the first",
                        path.display(),
                        records::excerpt(id.as_bytes())
                    );
                }
            }
            Err(e) => eprintln!("skipped {}:{line}: {e}", path.display()),
        }
    }
    Ok(out)
}

pub fn run(args: EvaluateArgs) -> CliResult {
    let (evaluation, evidence) = evaluate_files(&args)?;
    print_table(&evaluation);
    super::termination_message(
        &serde_json::json!({
            "step": "evaluate",
            "evidence_manifest_hash": evidence.manifest_hash,
            "reward_manifest_hash": evidence
                .artifacts
                .iter()
                .find(|a| a.schema_version.starts_with("janus-hgrm-reward"))
                .map(|a| &a.manifest_hash),
            "model_sha256": evidence.model_sha256,
            "complete": evidence.summary.complete,
        })
        .to_string(),
    );
    outln!(
        "wrote {}, {} (manifest_hash {}), report.md",
        args.out.join("evaluation.json").display(),
        args.out.join("evidence.json").display(),
        evidence.manifest_hash
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs an evaluation and writes evaluation.json, evidence.json, report.md and the charts.
/// What an evaluation reads, parsed and aligned: events with a known d0 and symbol, their
/// labels, and the trading calendar's prices.
struct Loaded {
    config: EvaluationConfig,
    event_car: EventCarArtifact,
    /// Event ids in the order of `events`.
    ids: Vec<String>,
    events: Vec<EventSlot>,
    labels: Vec<Option<Label>>,
    /// The trading calendar.
    dates: Vec<NaiveDate>,
    days: usize,
    open: Vec<f64>,
    close: Vec<f64>,
    start: usize,
    regime_labels: Option<Vec<Option<String>>>,
    market_returns: Option<Vec<f64>>,
}

impl Loaded {
    fn read(args: &EvaluateArgs) -> Result<Self, CliError> {
        let config: EvaluationConfig = match &args.config {
            Some(p) => crate::config::load(p)?,
            None => EvaluationConfig::default(),
        };
        let event_car: EventCarArtifact = read_artifact(&args.event_car)?;
        let price_bytes = std::fs::read(&args.prices).map_err(io(&args.prices))?;
        let (calendar, universe, prices, bad) =
            parse_price_panel((&args.prices.display().to_string(), &price_bytes), false)
                .map_err(|e| CliError::Usage(e.to_string()))?;
        if bad.total() > 0 {
            eprintln!("skipped {} bad price rows", bad.total());
        }
        let days = calendar.len();
        let (mut ids, mut events, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for r in &event_car.records {
            let (Some(d0), Some(&symbol)) = (r.d0, universe.lookup.get(&r.symbol)) else {
                continue;
            };
            let Some(d0) = calendar.index(d0) else {
                continue;
            };
            events.push(EventSlot {
                symbol: symbol as usize,
                d0,
                event_type: r.event_type,
            });
            labels.push(r.label.clone());
            ids.push(r.event_id.clone());
        }
        let start = args
            .from
            .and_then(|d| calendar.first_on_or_after(d))
            .unwrap_or(0);
        if start + 2 > days {
            return Err(CliError::Usage(format!(
                "--from leaves fewer than 2 trading days in {}",
                args.prices.display()
            )));
        }
        let regime_labels = args
            .regimes
            .as_deref()
            .map(|p| read_regimes(p, &calendar))
            .transpose()?;
        let market_returns = args
            .indices
            .as_deref()
            .map(|p| read_index_returns(p, args.index.as_deref(), &calendar))
            .transpose()?;
        Ok(Self {
            config,
            event_car,
            ids,
            events,
            labels,
            dates: calendar.dates,
            days,
            open: prices.open,
            close: prices.close,
            start,
            regime_labels,
            market_returns,
        })
    }

    fn input(&self) -> EvaluationInput<'_> {
        EvaluationInput {
            market_returns: self.market_returns.as_deref(),
            regime_labels: self.regime_labels.as_deref(),
            prices: PricePanel {
                days: self.days,
                open: &self.open,
                close: &self.close,
            },
            events: &self.events,
            labels: &self.labels,
            horizon: self.event_car.method.event_window as usize,
            start: self.start,
        }
    }

    /// A predictions file's calls, aligned with `events`.
    fn calls(&self, path: &Path) -> Result<Vec<Option<Prediction>>, CliError> {
        let predictions = read_predictions(path)?;
        Ok(self
            .ids
            .iter()
            .map(|id| predictions.get(id).cloned())
            .collect())
    }
}

/// Compares the predictions of `args` with another model's (`reference`) on the same window:
/// the evaluation's baseline is that model, so its deltas say whether the candidate beats it.
/// Writes nothing; evidence for the gates always compares with the type-sign baseline.
pub fn compare_predictions(args: &EvaluateArgs, reference: &Path) -> Result<Evaluation, CliError> {
    let loaded = Loaded::read(args)?;
    let (candidate, reference) = (loaded.calls(&args.predictions)?, loaded.calls(reference)?);
    Ok(evaluate_against(
        &loaded.input(),
        &candidate,
        &reference,
        &loaded.config,
    ))
}

pub fn evaluate_files(args: &EvaluateArgs) -> Result<(Evaluation, EvidenceArtifact), CliError> {
    let loaded = Loaded::read(args)?;
    let rewards: Option<HgrmRewardArtifact> =
        args.rewards.as_deref().map(read_artifact).transpose()?;
    let calls = loaded.calls(&args.predictions)?;
    let (config, event_car) = (&loaded.config, &loaded.event_car);
    let evaluation = evaluate(&loaded.input(), &calls, config);

    // Every output is computed before any is written, so a failure (a value JSON cannot carry,
    // a chart that cannot be drawn) leaves no partial set of outputs behind.
    let mut report = serde_json::to_vec_pretty(&evaluation).expect("evaluation serializes");
    report.push(b'\n');

    // The evidence the gates read.
    let mut missing = Vec::new();
    if evaluation.walk_forward.folds == 0 {
        missing.push("walk_forward".to_string());
    }
    if evaluation.calibration.is_none() {
        missing.push("calibration".to_string());
    }
    if rewards.is_none() {
        missing.push("hgrm_rewards".to_string());
    }
    if evaluation.predictions == 0 {
        missing.push("predictions".to_string());
    }
    let mut inputs = BTreeMap::from([
        (
            "event_car".to_string(),
            digest_file(&args.event_car).map_err(io(&args.event_car))?,
        ),
        (
            "predictions".to_string(),
            digest_file(&args.predictions).map_err(io(&args.predictions))?,
        ),
        (
            "prices".to_string(),
            digest_file(&args.prices).map_err(io(&args.prices))?,
        ),
    ]);
    let mut parents = vec![event_car.reference()];
    if let (Some(path), Some(r)) = (&args.rewards, &rewards) {
        inputs.insert("rewards".into(), digest_file(path).map_err(io(path))?);
        parents.push(r.reference());
    }
    let evidence_path = args.out.join("evidence.json");
    let lineage = Lineage::new(
        ArtifactKind::Evidence.schema_hash(),
        inputs,
        &serde_json::json!({"evaluation": &config, "from": args.from}),
        parents.clone(),
    )
    .map_err(|source| artifact::ContractError::Canonical {
        path: evidence_path.clone(),
        source,
    })?;
    let model_sha256 = match (&args.model, args.model_sha256.as_deref()) {
        (Some(path), _) => Some(digest_file(path).map_err(io(path))?.sha256),
        (None, Some(hex)) => Some(
            crate::contracts::Sha256Hex::parse(hex)
                .map_err(|e| CliError::Usage(format!("--model-sha256: {e}")))?,
        ),
        (None, None) => None,
    };
    let mut evidence = EvidenceArtifact {
        artifacts: parents.clone(),
        baseline_metrics: evaluation.baseline.metric_map(),
        calibration: evaluation.calibration.clone(),
        counts: EvidenceCounts {
            events: event_car.summary.events,
            labelled_events: event_car.summary.labelled,
            rewards: rewards.as_ref().map_or(0, |r| r.summary.samples),
            predictions: evaluation.predictions as u64,
            trades: evaluation.candidate.trades as u64,
            trading_days: evaluation.trading_days as u64,
        },
        deltas: [
            ("sr", evaluation.sr_delta.clone()),
            ("da", Some(evaluation.da_delta.clone())),
            ("eta", Some(evaluation.eta_delta.clone())),
        ]
        .into_iter()
        .filter_map(|(k, d)| Some((k.to_string(), d?)))
        .collect(),
        generated_at: generated_at(args.generated_at, event_car.generated_at)
            .map_err(CliError::Usage)?,
        lineage,
        manifest_hash: artifact::unsealed(),
        metrics: evaluation.candidate.metric_map(),
        model_sha256,
        null_reasons: evaluation.null_reasons(),
        reproducibility_hashes: parents.iter().map(|p| p.manifest_hash.clone()).collect(),
        schema_version: EvidenceVersion::V1,
        significance: Some(evaluation.significance.clone()),
        summary: EvidenceSummary {
            complete: missing.is_empty(),
            missing,
        },
        walk_forward: Some(evaluation.walk_forward.clone()),
    };
    let mut sealed = artifact::seal(&mut evidence)?;
    sealed.push(b'\n');
    let mut outputs = render_report(&evaluation, &loaded.dates[loaded.start..])?;
    outputs.push(("evaluation.json", report));
    outputs.push(("evidence.json", sealed));
    // Committed as a set, the sealed evidence last (see `write_set`): a crash never leaves a
    // new evaluation.json beside an old evidence.json.
    let files: Vec<(&str, &[u8])> = outputs.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    artifact::write_set(&args.out, &files)?;
    Ok((evaluation, evidence))
}

/// Close-to-close returns of one index over the prices' calendar (NaN where a close is missing).
fn read_index_returns(
    path: &Path,
    name: Option<&str>,
    calendar: &crate::labeling::input::Calendar,
) -> Result<Vec<f64>, CliError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let file = path.display().to_string();
    let bad = |line: u64, m: String| CliError::Usage(format!("{file}:{line}: {m}"));
    let table = records::Table::parse(&file, &bytes).map_err(CliError::Table)?;
    let cols = table
        .header
        .columns(&["date", "index", "close"])
        .map_err(CliError::Table)?;
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (line, fields) in table.rows() {
        let fields = fields.map_err(|m| bad(line, m))?;
        let date =
            crate::labeling::input::parse_date(&fields[cols[0]]).map_err(|m| bad(line, m))?;
        let close: f64 = fields[cols[2]]
            .parse()
            .ok()
            .filter(|c: &f64| c.is_finite() && *c > 0.0)
            .ok_or_else(|| {
                bad(
                    line,
                    format!(
                        "close `{}` is not a positive number",
                        records::excerpt(fields[cols[2]].as_bytes())
                    ),
                )
            })?;
        if let Some(day) = calendar.index(date) {
            series
                .entry(fields[cols[1]].to_string())
                .or_insert_with(|| vec![f64::NAN; calendar.len()])[day] = close;
        }
    }
    let chosen = match name {
        Some(n) => series
            .remove(n)
            .ok_or_else(|| bad(1, format!("no index `{n}` on the prices' dates")))?,
        None if series.len() == 1 => series.into_values().next().expect("one series"),
        None => {
            return Err(bad(
                1,
                format!(
                    "several indices ({}): choose one with --index",
                    series.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    };
    Ok(std::iter::once(f64::NAN)
        .chain(chosen.windows(2).map(|w| w[1] / w[0] - 1.0))
        .collect())
}

/// `date,regime` rows → a label per calendar day; a date outside the calendar or a repeated
/// date is an error naming the line.
fn read_regimes(
    path: &Path,
    calendar: &crate::labeling::input::Calendar,
) -> Result<Vec<Option<String>>, CliError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let file = path.display().to_string();
    let bad = |line: u64, m: String| CliError::Usage(format!("{file}:{line}: {m}"));
    let table = records::Table::parse(&file, &bytes).map_err(CliError::Table)?;
    let cols = table
        .header
        .columns(&["date", "regime"])
        .map_err(CliError::Table)?;
    let mut labels = vec![None; calendar.len()];
    for (line, fields) in table.rows() {
        let fields = fields.map_err(|m| bad(line, m))?;
        let date =
            crate::labeling::input::parse_date(&fields[cols[0]]).map_err(|m| bad(line, m))?;
        let day = calendar
            .index(date)
            .ok_or_else(|| bad(line, format!("{date} is not a trading day of the prices")))?;
        let regime = records::field(&fields, cols[1], "regime").map_err(|m| bad(line, m))?;
        if labels[day].replace(regime.to_string()).is_some() {
            return Err(bad(line, format!("{date} is labelled twice")));
        }
    }
    Ok(labels)
}

fn fmt(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.4}"))
}

pub fn print_table(e: &Evaluation) {
    outln!("{:<28} {:>10} {:>10}", "", "candidate", "baseline");
    for (_, name, get) in METRICS {
        outln!(
            "{name:<28} {:>10} {:>10}",
            fmt(get(&e.candidate)),
            fmt(get(&e.baseline))
        );
    }
    let conf = e.significance.confidence * 100.0;
    for (name, d) in [
        ("SR", e.sr_delta.as_ref()),
        ("DA", Some(&e.da_delta)),
        ("ETA", Some(&e.eta_delta)),
    ] {
        match d {
            Some(d) => outln!(
                "Δ{name:<11} {:>10.4}  {conf:.0}% CI [{:.4}, {:.4}]  p = {:.4}",
                d.value,
                d.ci_lower,
                d.ci_upper,
                d.p_value
            ),
            None => outln!("Δ{name:<11} {:>10}  ({})", "n/a", delta_reason(e, name)),
        }
    }
    for (key, why) in e.null_reasons() {
        if !key.starts_with("delta.") {
            outln!("  n/a {key}: {why}");
        }
    }
    outln!(
        "walk-forward: {} folds, negative-fold ratio {:.2}, fold PnL CV {:.2}",
        e.walk_forward.folds,
        e.walk_forward.negative_fold_ratio,
        e.walk_forward.fold_pnl_cv
    );
}

fn delta_reason(e: &Evaluation, name: &str) -> String {
    e.null_reasons
        .get(&format!("{}_delta", name.to_lowercase()))
        .cloned()
        .unwrap_or_else(|| "undefined".into())
}

/// The report and its charts, by file name, rendered in memory.
fn render_report(
    e: &Evaluation,
    dates: &[NaiveDate],
) -> Result<Vec<(&'static str, Vec<u8>)>, CliError> {
    let mut files: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut chart = |name: &'static str, svg: Result<String, String>| -> Result<(), CliError> {
        let svg = svg.map_err(CliError::Usage)?;
        files.push((name, svg.into_bytes()));
        Ok(())
    };
    chart("nav.svg", charts::nav(e))?;
    chart("drawdown.svg", charts::drawdown(e))?;
    let folds: Vec<(String, f64, f64)> = e
        .folds
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("fold {}", i + 1),
                f.candidate_return,
                f.baseline_return,
            )
        })
        .collect();
    chart(
        "folds.svg",
        charts::bars("Fold returns (candidate blue, baseline red)", &folds),
    )?;
    let regimes: Vec<(String, f64, f64)> = e
        .regimes
        .iter()
        .map(|r| {
            (
                r.regime.replace('_', " "),
                r.candidate_sr.unwrap_or(0.0),
                r.baseline_sr.unwrap_or(0.0),
            )
        })
        .collect();
    chart(
        "regimes.svg",
        charts::bars(
            "Sharpe ratio by regime (candidate blue, baseline red)",
            &regimes,
        ),
    )?;

    let mut md = String::new();
    let span = match (dates.first(), dates.last()) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => String::new(),
    };
    let _ = writeln!(
        md,
        "# Evaluation report\n\nEvaluated window {span}, {} return days, {} predictions, {} labelled events scored.\n",
        e.trading_days, e.predictions, e.evaluated_events
    );
    let _ = writeln!(md, "| metric | candidate | baseline |\n| --- | --- | --- |");
    let m = |x: Option<f64>| fmt(x);
    for (_, name, get) in METRICS {
        let (c, b) = (get(&e.candidate), get(&e.baseline));
        let _ = writeln!(md, "| {name} | {} | {} |", m(c), m(b));
    }
    let _ = writeln!(
        md,
        "\n## Candidate − baseline\n\n{} ({} resamples, block length {}, seed {})\n\n| delta | value | CI | p (Δ ≤ 0) |\n| --- | --- | --- | --- |",
        e.significance.method,
        e.significance.resamples,
        e.significance.block_length,
        e.significance.seed
    );
    for (name, d) in [
        ("SR", e.sr_delta.as_ref()),
        ("DA", Some(&e.da_delta)),
        ("ETA", Some(&e.eta_delta)),
    ] {
        let _ = match d {
            Some(d) => writeln!(
                md,
                "| {name} | {:.4} | [{:.4}, {:.4}] | {:.4} |",
                d.value, d.ci_lower, d.ci_upper, d.p_value
            ),
            None => writeln!(md, "| {name} | n/a: {} | | |", delta_reason(e, name)),
        };
    }
    let reasons: Vec<(String, String)> = e
        .null_reasons()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("delta."))
        .collect();
    if !reasons.is_empty() {
        let _ = writeln!(md, "\nMetrics shown as n/a have no value:\n");
        for (key, why) in reasons {
            let _ = writeln!(md, "- `{key}`: {why}");
        }
    }
    let _ = writeln!(
        md,
        "\n![NAV](nav.svg)\n\n![Drawdown](drawdown.svg)\n\n## Walk-forward\n\n{} folds; negative-fold ratio {:.2}; coefficient of variation of fold returns {:.2}.\n\n![Folds](folds.svg)\n\n## Regimes\n\n| regime | days | candidate SR | baseline SR |\n| --- | --- | --- | --- |",
        e.walk_forward.folds, e.walk_forward.negative_fold_ratio, e.walk_forward.fold_pnl_cv
    );
    for r in &e.regimes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.regime,
            r.days,
            m(r.candidate_sr),
            m(r.baseline_sr)
        );
    }
    let _ = writeln!(md, "\n![Regimes](regimes.svg)\n");
    if let Some(c) = &e.calibration {
        let _ = writeln!(
            md,
            "## Calibration\n\nSplit-conformal {:.0}% intervals for ĉ: observed coverage {:.3}, shift score {:.3}, width ratio {:.3}.",
            c.target_coverage * 100.0,
            c.observed_coverage,
            c.shift_score,
            c.interval_width_ratio
        );
    }
    files.push(("report.md", md.into_bytes()));
    Ok(files)
}
