use super::{CliError, CliResult};
use crate::cli::output::{errln, outln};
use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::evidence::{
    EvidenceArtifact, EvidenceCounts, EvidenceSummary, EvidenceVersion,
};
use crate::contracts::label::{Label, Prediction};
use crate::contracts::lineage::digest_file;
use crate::contracts::reward::HgrmRewardArtifact;
use crate::contracts::{Artifact, ArtifactKind, Lineage, artifact, generated_at, read_artifact};
use crate::evaluation::backtest::{EventSlot, PricePanel};
use crate::evaluation::report::{
    DropReason, Dropped, Evaluation, EvaluationConfig, EvaluationInput, METRICS, evaluate,
    evaluate_against,
};
use crate::evaluation::{charts, diagnostics, present};
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
    /// The candidate's name in report.md and the charts' legends.
    #[arg(long, default_value = "candidate")]
    pub name: String,
    /// A paragraph printed at the top of report.md, under the title (`janus demo`: that the
    /// data is synthetic and what its ceiling is).
    #[arg(skip)]
    pub note: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictionLine {
    /// Read as text by [`records::json_line_id`] (a number's raw token), not here.
    #[allow(dead_code)]
    event_id: serde::de::IgnoredAny,
    /// The probability the model gave the direction it called (its softmax output for that
    /// class), in [0, 1]; optional. Feeds the reliability diagram.
    #[serde(default)]
    direction_probability: Option<f64>,
    #[serde(flatten)]
    prediction: Prediction,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A predictions file, read.
#[derive(Debug, Default)]
pub struct PredictionFile {
    /// The prediction of each event id, text exactly as written (the last line wins for a
    /// repeated id).
    pub by_id: BTreeMap<String, Prediction>,
    /// The `direction_probability` of each event id whose line states one.
    pub probability: BTreeMap<String, f64>,
    /// Lines that are not a valid prediction (malformed, not a JSON object, not UTF-8), each
    /// reported on stderr with file and line.
    pub malformed: u64,
    /// Lines that repeat an event id (each reported on stderr).
    pub duplicates: u64,
}

/// Reads predictions by event id; bad lines are reported (file and line) on stderr, skipped and
/// counted, so that the evaluation can count them as dropped.
pub fn read_predictions(path: &Path) -> Result<PredictionFile, CliError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let mut out = PredictionFile::default();
    for (line, text) in records::text_lines(&bytes) {
        let parsed = text.and_then(|text| {
            let id = records::json_line_id(text)?;
            let p: PredictionLine = records::json_object(text)?;
            match p.direction_probability {
                Some(q) if !(q.is_finite() && (0.0..=1.0).contains(&q)) => Err(format!(
                    "direction_probability {q} is not a probability in [0, 1]"
                )),
                q => Ok((id, p.prediction, q)),
            }
        });
        match parsed {
            Ok((id, prediction, q)) => {
                match q {
                    Some(q) => out.probability.insert(id.clone(), q),
                    None => out.probability.remove(&id),
                };
                if out.by_id.insert(id.clone(), prediction).is_some() {
                    out.duplicates += 1;
                    errln!(
                        "{}:{line}: second prediction for `{}` replaces the first",
                        path.display(),
                        records::excerpt(id.as_bytes())
                    );
                }
            }
            Err(e) => {
                out.malformed += 1;
                errln!("skipped {}:{line}: {e}", path.display());
            }
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
    /// Event-car records and price rows left out, by reason (predictions are added per file).
    dropped: Dropped,
    /// Ids of the event-car records left out (a prediction for one is counted as such).
    dropped_ids: std::collections::BTreeSet<String>,
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
        let mut dropped = Dropped::new();
        if bad.total() > 0 {
            errln!("skipped {} bad price rows", bad.total());
            dropped.insert(DropReason::PriceRowBad, bad.total());
        }
        let days = calendar.len();
        let (mut ids, mut events, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        let mut dropped_ids = std::collections::BTreeSet::new();
        for r in &event_car.records {
            let slot = match r.d0 {
                None => Err(DropReason::EventWithoutD0),
                Some(d0) => universe
                    .lookup
                    .get(&r.symbol)
                    .zip(calendar.index(d0))
                    .ok_or(if r.label.is_some() {
                        DropReason::LabelledEventWithoutPrices
                    } else {
                        DropReason::UnlabelledEventWithoutPrices
                    }),
            };
            let (&symbol, d0) = match slot {
                Ok(slot) => slot,
                Err(reason) => {
                    *dropped.entry(reason).or_default() += 1;
                    dropped_ids.insert(r.event_id.clone());
                    continue;
                }
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
        // The bootstrap's block length must be below the window's return days, or every
        // resample is a rotation of the series (an interval of zero width, p at its minimum):
        // a setting that does not fit the data, refused by its key (docs/methodology.md §3).
        let window_days = days - start;
        config
            .bootstrap
            .config()
            .fits(window_days)
            .map_err(|why| match &args.config {
                Some(path) => CliError::Config(crate::config::ConfigError::Invalid {
                    path: path.clone(),
                    key: "bootstrap.block_length".into(),
                    message: why.to_string(),
                }),
                None => CliError::Usage(format!(
                    "bootstrap.block_length (default {}): {why}; set a shorter one with --config",
                    config.bootstrap.block_length
                )),
            })?;
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
            dropped,
            dropped_ids,
        })
    }

    fn input<'a>(&'a self, dropped: &'a Dropped) -> EvaluationInput<'a> {
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
            dropped,
        }
    }

    /// The date of each NAV point of an evaluation of these inputs.
    fn nav_dates(&self, e: &Evaluation) -> Vec<NaiveDate> {
        charts::nav_dates(&self.dates, self.start, e.candidate.nav.len())
    }

    /// A predictions file's calls and their stated direction probabilities, aligned with
    /// `events`, and every record left out (this file's and the inputs'), by reason.
    fn calls(&self, path: &Path) -> Result<Calls, CliError> {
        let file = read_predictions(path)?;
        let mut dropped = self.dropped.clone();
        let mut count = |reason: DropReason, n: u64| {
            if n > 0 {
                *dropped.entry(reason).or_default() += n;
            }
        };
        count(DropReason::PredictionMalformed, file.malformed);
        count(DropReason::PredictionDuplicate, file.duplicates);
        let known: std::collections::BTreeSet<&String> = self.ids.iter().collect();
        let (mut for_dropped, mut unknown) = (0, 0);
        for id in file.by_id.keys().filter(|id| !known.contains(id)) {
            if self.dropped_ids.contains(id) {
                for_dropped += 1;
            } else {
                unknown += 1;
            }
        }
        count(DropReason::PredictionForDroppedEvent, for_dropped);
        count(DropReason::PredictionUnknownEvent, unknown);
        let calls = self
            .ids
            .iter()
            .map(|id| file.by_id.get(id).cloned())
            .collect();
        let probability = self
            .ids
            .iter()
            .map(|id| file.probability.get(id).copied())
            .collect();
        Ok(Calls {
            calls,
            probability,
            dropped,
        })
    }
}

/// One predictions file, aligned with the evaluated events.
struct Calls {
    calls: Vec<Option<Prediction>>,
    probability: Vec<Option<f64>>,
    dropped: Dropped,
}

/// Reliability bins of the direction probabilities (ten, as is usual for a reliability
/// diagram).
const RELIABILITY_BINS: usize = 10;

/// The reliability of a file's direction probabilities; `None` when no line states one.
fn reliability(input: &EvaluationInput<'_>, calls: &Calls) -> Option<diagnostics::Reliability> {
    calls.probability.iter().any(Option::is_some).then(|| {
        diagnostics::reliability(input, &calls.calls, &calls.probability, RELIABILITY_BINS)
    })
}

/// Compares the predictions of `args` with another model's (`reference`) on the same window:
/// the evaluation's baseline is that model, so its deltas say whether the candidate beats it.
/// Writes nothing; evidence for the gates always compares with the type-sign baseline.
pub fn compare_predictions(args: &EvaluateArgs, reference: &Path) -> Result<Evaluation, CliError> {
    let loaded = Loaded::read(args)?;
    let (candidate, reference) = (loaded.calls(&args.predictions)?, loaded.calls(reference)?);
    let input = loaded.input(&candidate.dropped);
    let mut evaluation =
        evaluate_against(&input, &candidate.calls, &reference.calls, &loaded.config);
    evaluation.nav_dates = loaded.nav_dates(&evaluation);
    evaluation.reliability = reliability(&input, &candidate);
    Ok(evaluation)
}

pub fn evaluate_files(args: &EvaluateArgs) -> Result<(Evaluation, EvidenceArtifact), CliError> {
    let loaded = Loaded::read(args)?;
    let rewards: Option<HgrmRewardArtifact> =
        args.rewards.as_deref().map(read_artifact).transpose()?;
    let calls = loaded.calls(&args.predictions)?;
    let (config, event_car) = (&loaded.config, &loaded.event_car);
    let input = loaded.input(&calls.dropped);
    let mut evaluation = evaluate(&input, &calls.calls, config);
    evaluation.nav_dates = loaded.nav_dates(&evaluation);
    evaluation.reliability = reliability(&input, &calls);

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
    // A record that could have been scored and was dropped makes the evidence incomplete.
    missing.extend(evaluation.incomplete_drops());
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
            dropped: evaluation
                .dropped
                .iter()
                .map(|(r, n)| (r.name().to_string(), *n))
                .collect(),
        },
        deltas: [
            ("sr", evaluation.sr_delta.clone()),
            ("da", evaluation.da_delta.clone()),
            ("eta", evaluation.eta_delta.clone()),
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
    let mut outputs = render_report(
        &evaluation,
        &diagnostics::car_paths(&event_car.records),
        &loaded.dates,
        loaded.start,
        &charts::Names {
            candidate: args.name.clone(),
            ..charts::Names::default()
        },
        args.note.as_deref(),
    )?;
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

pub fn print_table(e: &Evaluation) {
    outln!("{:<28} {:>10} {:>10}", "", "candidate", "baseline");
    for (short, name, get) in METRICS {
        outln!(
            "{name:<28} {:>10} {:>10}",
            present::metric(short, get(&e.candidate)),
            present::metric(short, get(&e.baseline))
        );
    }
    let conf = e.significance.confidence * 100.0;
    for (name, d) in [
        ("SR", e.sr_delta.as_ref()),
        ("DA", e.da_delta.as_ref()),
        ("ETA", e.eta_delta.as_ref()),
    ] {
        match d {
            Some(d) => outln!("Δ{name:<11} {}  ({conf:.0}% CI)", present::delta(d)),
            None => outln!("Δ{name:<11} {:>10}  ({})", "n/a", delta_reason(e, name)),
        }
    }
    for (key, why) in e.null_reasons() {
        if !key.starts_with("delta.") {
            outln!("  n/a {key}: {why}");
        }
    }
    outln!(
        "walk-forward: {} folds, negative-fold ratio {}, fold PnL CV {}",
        present::count(e.walk_forward.folds.into()),
        present::two_decimals(e.walk_forward.negative_fold_ratio),
        present::two_decimals(e.walk_forward.fold_pnl_cv)
    );
    if let Some(same) = same_trades(e, "candidate", "baseline") {
        outln!("{same}");
    }
}

/// A sentence when both models trade exactly the same events (then their difference is the
/// direction and size of each position, not which events they pick): the demo's policy and
/// baseline both trade every tradable event, which a reader should not have to discover.
fn same_trades(e: &Evaluation, candidate: &str, baseline: &str) -> Option<String> {
    let events = |m: &crate::evaluation::report::ModelResult| {
        m.positions
            .iter()
            .map(|t| t.event)
            .collect::<std::collections::BTreeSet<usize>>()
    };
    let (c, b) = (events(&e.candidate), events(&e.baseline));
    if c.is_empty() || c != b {
        return None;
    }
    let every = if c.len() == e.tradable_events {
        ", every tradable event of the window"
    } else {
        ""
    };
    Some(format!(
        "{candidate} and {baseline} trade the same {} events{every}: their results differ only \
         by the direction and size of each position, not by which events they trade.",
        present::count(c.len() as u64)
    ))
}

fn delta_reason(e: &Evaluation, name: &str) -> String {
    e.null_reasons
        .get(&format!("{}_delta", name.to_lowercase()))
        .cloned()
        .unwrap_or_else(|| "undefined".into())
}

/// What the reliability diagram says when the predictions state no probability.
const NO_PROBABILITY: &str = "No reliability diagram: the predictions state no \
    `direction_probability` (the probability of the called direction), and the model's only other \
    stated confidence, `strength` (strong / weak), is not a probability.";

/// The report and its charts, by file name, rendered in memory.
fn render_report(
    e: &Evaluation,
    car_paths: &[diagnostics::CarPath],
    calendar: &[NaiveDate],
    start: usize,
    names: &charts::Names,
    note: Option<&str>,
) -> Result<Vec<(&'static str, Vec<u8>)>, CliError> {
    let dates = &calendar[start.min(calendar.len())..];
    let mut files: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut chart = |name: &'static str, svg: Result<String, String>| -> Result<(), CliError> {
        let svg = svg.map_err(CliError::Usage)?;
        files.push((name, svg.into_bytes()));
        Ok(())
    };
    chart("nav.svg", charts::nav(e, names, &e.nav_dates))?;
    chart("drawdown.svg", charts::drawdown(e, names, &e.nav_dates))?;
    // Each fold under its test window's dates (start_day and end_day are calendar positions).
    let day = |d: usize| calendar.get(d).map_or(String::new(), |d| d.to_string());
    let folds: Vec<(String, Option<f64>, Option<f64>)> = e
        .folds
        .iter()
        .map(|f| {
            (
                format!("{} – {}", day(f.start_day), day(f.end_day)),
                Some(100.0 * f.candidate_return),
                f.baseline_return.map(|r| 100.0 * r),
            )
        })
        .collect();
    chart(
        "folds.svg",
        charts::bars(
            "Walk-forward fold returns (test windows)",
            "return over the fold (%)",
            names,
            &folds,
            &format!(
                "No walk-forward fold: the evaluated window has {} return days; a fold needs \
                 the training days plus the test days of the configuration.",
                e.trading_days
            ),
        ),
    )?;
    let regimes: Vec<(String, Option<f64>, Option<f64>)> = e
        .regimes
        .iter()
        .map(|r| {
            (
                format!("{} ({} d)", r.regime.replace('_', " "), r.days),
                r.candidate_sr,
                r.baseline_sr,
            )
        })
        .collect();
    chart(
        "regimes.svg",
        charts::bars(
            "Sharpe ratio by market regime",
            "Sharpe ratio (annualized)",
            names,
            &regimes,
            "No regime slices.",
        ),
    )?;

    let resamples = present::count(e.sr_delta_draws.len() as u64);
    chart(
        "bootstrap-sr.svg",
        charts::bootstrap(
            &format!("Bootstrap distribution of ΔSR ({resamples} resamples)"),
            &format!(
                "ΔSR = SR({}) − SR({}), annualized Sharpe ratio",
                names.candidate, names.baseline
            ),
            e.sr_delta.as_ref(),
            &e.sr_delta_draws,
            e.significance.confidence,
            &format!("No ΔSR: {}", delta_reason(e, "SR")),
        ),
    )?;
    let no_probability = diagnostics::Reliability {
        bins: Vec::new(),
        scored: 0,
        without_probability: 0,
        ece: None,
    };
    chart(
        "reliability.svg",
        charts::reliability(
            &names.candidate,
            e.reliability.as_ref().unwrap_or(&no_probability),
            NO_PROBABILITY,
        ),
    )?;
    chart(
        "car-by-type.svg",
        charts::car_by_type(
            "Mean CAR over the event window, by event type (labelled events)",
            car_paths,
            "No labelled event with an event window in the event-car artifact.",
        ),
    )?;

    let mut md = String::new();
    let span = match (dates.first(), dates.last()) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => String::new(),
    };
    let n = |x: usize| present::count(x as u64);
    let _ = writeln!(
        md,
        "# Evaluation report\n\nEvaluated window {span}, {} return days, {} predictions, {} labelled events scored.\n",
        n(e.trading_days),
        n(e.predictions),
        n(e.evaluated_events)
    );
    if let Some(note) = note {
        let _ = writeln!(md, "{note}\n");
    }
    let _ = writeln!(
        md,
        "| metric | {} | {} |\n| --- | --- | --- |",
        names.candidate, names.baseline
    );
    let m = |x: Option<f64>| present::metric("", x);
    for (short, name, get) in METRICS {
        let (c, b) = (get(&e.candidate), get(&e.baseline));
        let _ = writeln!(
            md,
            "| {name} | {} | {} |",
            present::metric(short, c),
            present::metric(short, b)
        );
    }
    let _ = writeln!(
        md,
        "\n## {} − {}\n\n{} ({} resamples, block length {}, seed {})\n\n| delta | value | CI | p (Δ ≤ 0) |\n| --- | --- | --- | --- |",
        names.candidate,
        names.baseline,
        e.significance.method,
        present::count(e.significance.resamples.into()),
        e.significance.block_length,
        e.significance.seed
    );
    for (name, d) in [
        ("SR", e.sr_delta.as_ref()),
        ("DA", e.da_delta.as_ref()),
        ("ETA", e.eta_delta.as_ref()),
    ] {
        let _ = match d {
            Some(d) => writeln!(
                md,
                "| {name} | {:+.4} | [{:+.4}, {:+.4}] | {} |",
                d.value,
                d.ci_lower,
                d.ci_upper,
                present::p_value(d.p_value)
            ),
            None => writeln!(md, "| {name} | n/a: {} | | |", delta_reason(e, name)),
        };
    }
    if let Some(same) = same_trades(e, &names.candidate, &names.baseline) {
        let _ = writeln!(md, "\n{same}");
    }
    // Walk-forward reasons are printed in their own section.
    let reasons: Vec<(String, String)> = e
        .null_reasons()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("delta.") && !k.starts_with("walk_forward."))
        .collect();
    if !reasons.is_empty() {
        let _ = writeln!(md, "\nMetrics shown as n/a have no value:\n");
        for (key, why) in reasons {
            let _ = writeln!(md, "- `{key}`: {why}");
        }
    }
    // A walk-forward statistic without a value says why where it is printed.
    let wf_stat = |key: &str, v: Option<f64>| match v {
        Some(v) => format!("{v:.2}"),
        None => format!(
            "n/a ({})",
            e.null_reasons
                .get(&format!("walk_forward.{key}"))
                .map_or("undefined", String::as_str)
        ),
    };
    let _ = writeln!(
        md,
        "\n![NAV](nav.svg)\n\n![Drawdown](drawdown.svg)\n\n## Walk-forward\n\n{} folds; negative-fold ratio {}; coefficient of variation of fold returns {}.\n\n![Folds](folds.svg)\n\n## Regimes\n\n| regime | days | {} SR | {} SR |\n| --- | --- | --- | --- |",
        present::count(e.walk_forward.folds.into()),
        wf_stat("negative_fold_ratio", e.walk_forward.negative_fold_ratio),
        wf_stat("fold_pnl_cv", e.walk_forward.fold_pnl_cv),
        names.candidate,
        names.baseline
    );
    for r in &e.regimes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.regime,
            n(r.days),
            m(r.candidate_sr),
            m(r.baseline_sr)
        );
    }
    let slice_reasons: Vec<String> = e
        .regimes
        .iter()
        .flat_map(|r| {
            r.null_reasons
                .iter()
                .map(move |(k, why)| format!("- `{}` {}: {why}", r.regime, k.replace('_', " ")))
        })
        .collect();
    if !slice_reasons.is_empty() {
        let _ = writeln!(
            md,
            "\nRegime figures shown as n/a have no value:\n\n{}",
            slice_reasons.join("\n")
        );
    }
    let _ = writeln!(md, "\n![Regimes](regimes.svg)\n");
    let _ = writeln!(
        md,
        "## Bootstrap distribution of ΔSR\n\n![Bootstrap distribution of ΔSR](bootstrap-sr.svg)\n\n\
         *How to read it: each bar counts the resamples whose ΔSR ({} − {}) fell in the bin; the \
         black line is the observed ΔSR, the red dashed lines the {:.0}% CI; the share of \
         resamples at or left of 0 is the p-value.*\n",
        names.candidate,
        names.baseline,
        e.significance.confidence * 100.0
    );
    let _ = match &e.reliability {
        Some(r) => writeln!(
            md,
            "## Reliability of the direction calls\n\n![Reliability](reliability.svg)\n\n\
             *How to read it: {}'s calls are binned by the probability it gave the direction it \
             called (its softmax output); a dot on the dashed diagonal means calls made with \
             probability p were right p of the time, below it the model is overconfident; n = \
             calls per bin. ECE {} over {} calls{}.*\n",
            names.candidate,
            r.ece.map_or("n/a".into(), |v| format!("{v:.3}")),
            present::count(r.scored),
            if r.without_probability > 0 {
                format!(
                    "; {} calls without a probability left out",
                    present::count(r.without_probability)
                )
            } else {
                String::new()
            }
        ),
        None => writeln!(
            md,
            "## Reliability of the direction calls\n\n![Reliability](reliability.svg)\n\n\
             *{NO_PROBABILITY}*\n"
        ),
    };
    let _ = writeln!(
        md,
        "## CAR around the event window by event type\n\n![Mean CAR by event type](car-by-type.svg)\n\n\
         *How to read it: each line is the mean cumulative abnormal return of one event type's \
         labelled events (count in the legend), from 0 at the close before d0 (day −1) to the end \
         of the event window, whose value is the type's mean label CAR. The event-car artifact \
         keeps only the event window's days, so drift before d0 is not shown.*\n"
    );
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
