//! One evaluation of a candidate against the deterministic baseline: the backtest of both, the
//! paper's metrics, accuracy, walk-forward folds, regime slices, bootstrap deltas and a
//! split-conformal calibration check. Pure: inputs in, a value out.

use super::backtest::{self, BacktestConfig, EventSlot, PricePanel};
use super::baseline::TrailingTypes;
use super::bootstrap::{BootstrapConfig, PairedHit, Setting, accuracy_deltas, sharpe_delta_draws};
use super::metrics::{NavMetrics, Ruin, Undefined, sharpe_ratio};
use crate::contracts::evidence::{Calibration, Delta, Significance, WalkForwardSummary};
use crate::contracts::label::{Direction, Label, Prediction, Sign};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything an evaluation is configured by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    pub backtest: BacktestConfig,
    pub walk_forward: WalkForwardConfig,
    pub bootstrap: BootstrapSettings,
    /// Days of the rolling window that classifies market regimes.
    pub regime_window: u32,
    /// τ of the baseline's strength.
    pub strong_threshold: f64,
    /// Target coverage of the calibration check's prediction intervals.
    pub target_coverage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WalkForwardConfig {
    pub train_days: u32,
    pub test_days: u32,
    pub step_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapSettings {
    pub resamples: u32,
    pub block_length: f64,
    pub seed: u64,
    pub confidence: f64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            backtest: BacktestConfig::default(),
            walk_forward: WalkForwardConfig::default(),
            bootstrap: BootstrapSettings::default(),
            regime_window: 20,
            strong_threshold: 0.02,
            target_coverage: 0.90,
        }
    }
}

impl Default for WalkForwardConfig {
    fn default() -> Self {
        Self {
            train_days: 60,
            test_days: 40,
            step_days: 40,
        }
    }
}

impl Default for BootstrapSettings {
    fn default() -> Self {
        let b = BootstrapConfig::default();
        Self {
            resamples: b.resamples,
            block_length: b.block_length,
            seed: b.seed,
            confidence: b.confidence,
        }
    }
}

impl crate::config::Validate for EvaluationConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        use crate::config::check;
        check(
            (1..=10).contains(&self.backtest.holding_days),
            "backtest.holding_days",
            "must be 1 to 10",
        )?;
        check(
            self.backtest.cost_bps.is_finite() && self.backtest.cost_bps >= 0.0,
            "backtest.cost_bps",
            "must be ≥ 0",
        )?;
        check(
            self.backtest
                .gross_cap
                .is_none_or(|c| c.is_finite() && c > 0.0),
            "backtest.gross_cap",
            "must be a positive multiple of NAV",
        )?;
        check(
            self.walk_forward.test_days >= 2 && self.walk_forward.step_days >= 1,
            "walk_forward",
            "test_days ≥ 2 and step_days ≥ 1",
        )?;
        self.bootstrap
            .config()
            .validate()
            .map_err(|(setting, why)| (self.bootstrap.key(setting).to_string(), why.to_string()))?;
        check(self.regime_window >= 2, "regime_window", "must be ≥ 2")?;
        check(
            self.target_coverage > 0.0 && self.target_coverage < 1.0,
            "target_coverage",
            "must lie in (0, 1)",
        )
    }
}

impl BootstrapSettings {
    /// The configuration key of a setting, as errors name it.
    pub fn key(&self, setting: Setting) -> &'static str {
        match setting {
            Setting::Resamples => "bootstrap.resamples",
            Setting::BlockLength => "bootstrap.block_length",
            Setting::Confidence => "bootstrap.confidence",
        }
    }

    pub fn config(&self) -> BootstrapConfig {
        BootstrapConfig {
            resamples: self.resamples,
            block_length: self.block_length,
            seed: self.seed,
            confidence: self.confidence,
        }
    }
}

/// Why a record did not enter an evaluation. Every dropped record is counted under one of these
/// (`Evaluation::dropped`, the evidence's `counts.dropped`), and the ones that lose something
/// that could have been scored make the evidence incomplete (docs/methodology.md, "Dropped
/// records and completeness").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// A labelled event whose symbol has no prices, or whose d0 is not a day of the prices'
    /// calendar: its label can be neither traded nor scored.
    LabelledEventWithoutPrices,
    /// The same for an event without a label (the labeller already said why it has none, e.g.
    /// an unknown symbol): nothing to score was lost.
    UnlabelledEventWithoutPrices,
    /// An event without d0 (the labeller placed it outside the calendar or could not read its
    /// timestamp; counted there too).
    EventWithoutD0,
    /// A predictions line that is not a valid prediction (the error goes to stderr with file and
    /// line).
    PredictionMalformed,
    /// A prediction whose `event_id` names no event of the event-car artifact.
    PredictionUnknownEvent,
    /// A second prediction for the same event (the later one is used).
    PredictionDuplicate,
    /// A prediction for an event dropped for one of the reasons above.
    PredictionForDroppedEvent,
    /// A prices row that could not be read (skipped).
    PriceRowBad,
    /// A labelled event of the evaluated window without the candidate's prediction: DA, ETA
    /// and the errors would be computed without it.
    LabelledEventWithoutCall,
}

impl DropReason {
    /// The name used as the count's key.
    pub fn name(self) -> &'static str {
        match self {
            Self::LabelledEventWithoutPrices => "labelled_event_without_prices",
            Self::UnlabelledEventWithoutPrices => "unlabelled_event_without_prices",
            Self::EventWithoutD0 => "event_without_d0",
            Self::PredictionMalformed => "prediction_malformed",
            Self::PredictionUnknownEvent => "prediction_unknown_event",
            Self::PredictionDuplicate => "prediction_duplicate",
            Self::PredictionForDroppedEvent => "prediction_for_dropped_event",
            Self::PriceRowBad => "price_row_bad",
            Self::LabelledEventWithoutCall => "labelled_event_without_call",
        }
    }

    /// Whether a drop for this reason lost something the evaluation could have used (a label,
    /// a prediction, a price): then the evidence is not complete. Events the labeller could not
    /// label or place, and the predictions for them, are counted but lose nothing.
    pub fn breaks_completeness(self) -> bool {
        !matches!(
            self,
            Self::UnlabelledEventWithoutPrices
                | Self::EventWithoutD0
                | Self::PredictionForDroppedEvent
        )
    }
}

/// Dropped records by reason.
pub type Dropped = std::collections::BTreeMap<DropReason, u64>;

/// The events and market an evaluation runs on.
pub struct EvaluationInput<'a> {
    pub prices: PricePanel<'a>,
    pub events: &'a [EventSlot],
    pub labels: &'a [Option<Label>],
    /// The label window H (labels are known H days after d0).
    pub horizon: usize,
    /// First evaluated day (calendar position): earlier days only feed trailing history.
    pub start: usize,
    /// Regime label of each calendar day, from a file; `None` classifies days by the market's
    /// volatility terciles and trend.
    pub regime_labels: Option<&'a [Option<String>]>,
    /// The market index's return on each calendar day (NaN when unknown) for that
    /// classification; `None` uses an equal-weighted proxy of all stocks.
    pub market_returns: Option<&'a [f64]>,
    /// Records left out while the inputs were read, by reason (carried into the result).
    pub dropped: &'a Dropped,
}

/// One model's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    pub metrics: NavMetrics,
    /// Direction accuracy over labelled events with a call; `None` (reason in `null_reasons`)
    /// when there is none.
    pub da: Option<f64>,
    /// Event-type accuracy over labelled events of a known type with a call (a call without a
    /// type counts as wrong); `None` with a reason when there is no such event, or when no call
    /// states a type at all (the type-sign baseline, which is given the type).
    pub eta: Option<f64>,
    /// Mean absolute error of ĉ against the label's CAR (CAR units); `None` with a reason when
    /// nothing was scored.
    pub mae: Option<f64>,
    /// Root mean squared error of ĉ (CAR units), computed without overflow for any finite ĉ.
    pub rmse: Option<f64>,
    pub trades: usize,
    /// Share of trades with a positive net PnL; `None` without trades.
    pub hit_rate: Option<f64>,
    /// Traded notional per evaluated day as a multiple of mean NAV (see
    /// [`backtest::BacktestResult::turnover`]).
    pub turnover: Option<f64>,
    pub cost_paid: f64,
    /// Costs as basis points of traded notional; `None` without traded notional.
    pub cost_bps: Option<f64>,
    /// Largest gross exposure as a multiple of NAV.
    pub gross_exposure_max: f64,
    /// NAV at each close of the evaluated window, starting at 1.
    pub nav: Vec<f64>,
    /// Every position opened in the evaluated window (days are calendar positions).
    pub positions: Vec<backtest::Trade>,
    /// Why each metric without a value (by short name, as in [`METRICS`]) has none: the NAV
    /// metrics' reasons and this result's own.
    pub null_reasons: std::collections::BTreeMap<String, String>,
}

/// A reported metric: its short name (evidence, gates), its display name (reports), and how
/// to read it from a model's result. The one list every output is built from.
pub type MetricSpec = (&'static str, &'static str, fn(&ModelResult) -> Option<f64>);

pub const METRICS: [MetricSpec; 16] = [
    ("sr", "SR", |m| m.metrics.sr),
    ("mdd", "MDD", |m| Some(m.metrics.mdd)),
    ("arr", "ARR", |m| m.metrics.arr),
    ("calmar", "Calmar", |m| m.metrics.calmar),
    ("total_return", "total return", |m| {
        Some(m.metrics.total_return)
    }),
    ("da", "DA", |m| m.da),
    ("eta", "ETA", |m| m.eta),
    ("mae", "MAE", |m| m.mae),
    ("rmse", "RMSE", |m| m.rmse),
    ("trades", "trades", |m| Some(m.trades as f64)),
    ("hit_rate", "hit rate", |m| m.hit_rate),
    ("turnover", "turnover (daily, × NAV)", |m| m.turnover),
    ("cost_bps", "cost (bps of notional)", |m| m.cost_bps),
    ("cost_paid", "cost paid (× initial NAV)", |m| {
        Some(m.cost_paid)
    }),
    ("gross_exposure_max", "max gross exposure (× NAV)", |m| {
        Some(m.gross_exposure_max)
    }),
    // 1 when NAV fell to 0 or below (the series ends there), else 0; gate2 fails on 1.
    ("ruin", "ruin (NAV ≤ 0)", |m| {
        Some(if m.metrics.ruin.is_some() { 1.0 } else { 0.0 })
    }),
];

impl Evaluation {
    /// Every null's reason in the evidence's layout: candidate metrics by short name,
    /// `baseline.<name>`, `delta.<name>` and `walk_forward.<name>`.
    pub fn null_reasons(&self) -> std::collections::BTreeMap<String, String> {
        let mut all = self.candidate.null_reasons.clone();
        for (k, v) in &self.baseline.null_reasons {
            all.insert(format!("baseline.{k}"), v.clone());
        }
        for (k, v) in &self.null_reasons {
            let key = match k.strip_suffix("_delta") {
                Some(delta) => format!("delta.{delta}"),
                None => k.clone(),
            };
            all.insert(key, v.clone());
        }
        all
    }
}

impl ModelResult {
    /// The defined metrics by short name (undefined ones, e.g. a Calmar ratio without a
    /// drawdown, are left out rather than written as NaN).
    pub fn metric_map(&self) -> std::collections::BTreeMap<String, f64> {
        METRICS
            .iter()
            .filter_map(|(short, _, get)| get(self).map(|v| (short.to_string(), v)))
            .collect()
    }
}

/// One walk-forward test window (days are calendar positions; the fold holding a ruined
/// candidate's ruin day ends on that day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fold {
    pub start_day: usize,
    pub end_day: usize,
    /// Compounded candidate return over the fold (≤ −1 for the fold holding its ruin).
    pub candidate_return: f64,
    /// Compounded baseline return; `None` (reason in `null_reasons`) when the baseline was
    /// ruined before the fold.
    pub baseline_return: Option<f64>,
    /// Candidate SR over the fold; `None` with the reason (e.g. ruin within the fold).
    pub candidate_sr: Option<f64>,
    /// Why a value of this fold has none, by field name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub null_reasons: std::collections::BTreeMap<String, String>,
}

/// The evaluated days of one market regime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegimeSlice {
    pub regime: String,
    pub days: usize,
    /// `None` with the reason, e.g. ruin when the slice holds the candidate's ruin day.
    pub candidate_sr: Option<f64>,
    pub baseline_sr: Option<f64>,
    /// Mean daily candidate return over the slice; `None` with the reason (no day, or ruin).
    pub candidate_mean_return: Option<f64>,
    /// Why a value of this slice has none, by field name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub null_reasons: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub candidate: ModelResult,
    pub baseline: ModelResult,
    /// Candidate − baseline SR; `None` (reason in `null_reasons`) when either has no SR.
    pub sr_delta: Option<Delta>,
    /// Candidate − baseline DA, paired on the events both called; `None` with a reason.
    pub da_delta: Option<Delta>,
    /// Candidate − baseline ETA on those events of a known type; `None` with a reason (always
    /// against the type-sign baseline, which states no type).
    pub eta_delta: Option<Delta>,
    pub significance: Significance,
    pub folds: Vec<Fold>,
    pub walk_forward: WalkForwardSummary,
    pub regimes: Vec<RegimeSlice>,
    pub calibration: Option<Calibration>,
    /// Why a delta without a value (keys `sr_delta`, `da_delta`, `eta_delta`) or a
    /// walk-forward statistic without one (`walk_forward.negative_fold_ratio`,
    /// `walk_forward.fold_pnl_cv`) has none.
    pub null_reasons: std::collections::BTreeMap<String, String>,
    pub predictions: usize,
    pub evaluated_events: usize,
    /// Events of the evaluated window that could trade (a d0 in the window with an open
    /// price), whoever calls them: with it a report can say that a model trades every one.
    #[serde(default)]
    pub tradable_events: usize,
    pub trading_days: usize,
    /// Records that did not enter the evaluation, by reason; empty when none was dropped.
    #[serde(default)]
    pub dropped: Dropped,
    /// The date of each point of the candidate's `nav` (the close it was marked at; point 0 is
    /// the close before the window), filled in by whoever knows the calendar (`janus evaluate`).
    #[serde(default)]
    pub nav_dates: Vec<chrono::NaiveDate>,
    /// The bootstrap's resampled SR deltas (sorted), for the chart of their distribution; empty
    /// when `sr_delta` is `None`. Kept in memory only: never written to an artifact.
    #[serde(skip)]
    pub sr_delta_draws: Vec<f64>,
    /// Reliability of the candidate's direction probabilities, filled in by whoever read them
    /// (`janus evaluate`, from the predictions' `direction_probability`); `None` when no
    /// prediction states one.
    #[serde(default)]
    pub reliability: Option<super::diagnostics::Reliability>,
}

impl Evaluation {
    /// The drops that make the evidence incomplete, as `dropped.<reason>` entries of the
    /// evidence's `summary.missing`.
    pub fn incomplete_drops(&self) -> Vec<String> {
        self.dropped
            .iter()
            .filter(|(r, n)| r.breaks_completeness() && **n > 0)
            .map(|(r, _)| format!("dropped.{}", r.name()))
            .collect()
    }
}

fn direction_matches(d: Direction, s: Sign) -> bool {
    Direction::for_sign(s) == d
}

/// The baseline's calls: for each event, from the labels known before its d0.
pub fn baseline_calls(
    input: &EvaluationInput<'_>,
    config: &EvaluationConfig,
) -> Vec<Option<Prediction>> {
    let labelled = input.labels.iter().enumerate().filter_map(|(i, l)| {
        l.as_ref()
            .map(|l| (input.events[i].d0, input.events[i].event_type, l.car))
    });
    let mut trail = TrailingTypes::new(
        labelled,
        input.horizon,
        config.backtest.weight_window as usize,
    );
    let mut order: Vec<usize> = (0..input.events.len()).collect();
    order.sort_by_key(|&i| input.events[i].d0);
    let mut calls = vec![None; input.events.len()];
    for i in order {
        let e = &input.events[i];
        let table = trail.at(e.d0);
        calls[i] = Some(table.baseline(
            e.event_type,
            config.strong_threshold,
            config.backtest.min_type_history,
        ));
    }
    calls
}

fn model_result(
    input: &EvaluationInput<'_>,
    calls: &[Option<Prediction>],
    config: &EvaluationConfig,
) -> ModelResult {
    let in_window: Vec<Option<Prediction>> = calls
        .iter()
        .zip(input.events)
        .map(|(c, e)| c.clone().filter(|_| e.d0 >= input.start))
        .collect();
    let labelled: Vec<(usize, f64)> = input
        .labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.as_ref().map(|l| (i, l.car)))
        .collect();
    let bt = backtest::run(
        &input.prices,
        input.events,
        &in_window,
        &labelled,
        input.horizon,
        &config.backtest,
    );
    let nav: Vec<f64> = {
        let base = bt.nav[input.start];
        bt.nav[input.start..].iter().map(|v| v / base).collect()
    };
    let (da, eta) = accuracies(&in_window, input.labels);
    let mut errors = Vec::new();
    for (call, label) in in_window.iter().zip(input.labels) {
        if let (Some(p), Some(l)) = (call, label) {
            let err = if p.car_estimate.is_finite() {
                p.car_estimate - l.car
            } else {
                l.car
            };
            errors.push(err);
        }
    }
    let mut null_reasons = std::collections::BTreeMap::new();
    let metrics = NavMetrics::from_nav(&nav).unwrap_or_else(|e| {
        let why = e.to_string();
        NavMetrics {
            sr: None,
            mdd: 0.0,
            arr: None,
            calmar: None,
            total_return: 0.0,
            days: 0,
            ruin: None,
            null_reasons: ["sr", "arr", "calmar"]
                .iter()
                .map(|k| (k.to_string(), why.clone()))
                .collect(),
        }
    });
    null_reasons.extend(metrics.null_reasons.clone());
    let mut defined = |name: &str, value: Result<f64, Undefined>| match value {
        Ok(v) => Some(v),
        Err(why) => {
            null_reasons.insert(name.to_string(), why.to_string());
            None
        }
    };
    let da = defined("da", da);
    let eta = defined("eta", eta);
    let hit_rate = defined("hit_rate", bt.hit_rate().ok_or(Undefined::NoTrades));
    let cost_bps = defined("cost_bps", bt.cost_in_bps().ok_or(Undefined::NoTrades));
    let mae = defined("mae", mean_abs(&errors));
    let rmse = defined("rmse", root_mean_square(&errors));
    let turnover = defined("turnover", bt.turnover(input.start));
    ModelResult {
        metrics,
        da,
        eta,
        mae,
        rmse,
        trades: bt
            .trades
            .iter()
            .filter(|t| t.entry_day >= input.start)
            .count(),
        hit_rate,
        turnover,
        cost_paid: bt.cost_paid,
        cost_bps,
        gross_exposure_max: bt.max_gross_exposure,
        nav,
        positions: bt
            .trades
            .iter()
            .filter(|t| t.entry_day >= input.start)
            .cloned()
            .collect(),
        null_reasons,
    }
}

/// Direction and event-type accuracy of `calls` (aligned with `labels`, `None`: no call) over
/// the labelled events with a call; ETA only over those of a known type, a call without a type
/// counting as wrong. Each is undefined, with the reason, when it has nothing to score; ETA also
/// when no call states a type at all (a model that does not classify, such as the baseline).
fn accuracies(
    calls: &[Option<Prediction>],
    labels: &[Option<Label>],
) -> (Result<f64, Undefined>, Result<f64, Undefined>) {
    let (mut n_dir, mut hit_dir, mut n_type, mut hit_type, mut typed) = (0, 0, 0, 0, 0);
    for (call, label) in calls.iter().zip(labels) {
        if let (Some(p), Some(l)) = (call, label) {
            n_dir += 1;
            hit_dir += direction_matches(p.direction, l.direction) as usize;
            if l.event_type.is_known() {
                n_type += 1;
                typed += p.event_type.is_some() as usize;
                hit_type += (p.event_type == Some(l.event_type)) as usize;
            }
        }
    }
    let ratio = |hits: usize, n: usize| hits as f64 / n as f64;
    let da = if n_dir == 0 {
        Err(Undefined::NothingScored)
    } else {
        Ok(ratio(hit_dir, n_dir))
    };
    let eta = if n_type == 0 {
        Err(Undefined::NoKnownType)
    } else if typed == 0 {
        Err(Undefined::NoTypeCalls)
    } else {
        Ok(ratio(hit_type, n_type))
    };
    (da, eta)
}

/// Mean of |e| as a running mean, which cannot overflow for finite errors.
fn mean_abs(errors: &[f64]) -> Result<f64, Undefined> {
    if errors.is_empty() {
        return Err(Undefined::NothingScored);
    }
    let mut mean = 0.0;
    for (k, e) in errors.iter().enumerate() {
        mean += (e.abs() - mean) / (k + 1) as f64;
    }
    finite("MAE", mean)
}

/// √(mean e²) scaled by the largest |e| (as `hypot` does), so that errors up to the largest
/// double do not overflow the squares: 1e200 and 0.01 give 1e200 / √2 = 7.07e199.
fn root_mean_square(errors: &[f64]) -> Result<f64, Undefined> {
    if errors.is_empty() {
        return Err(Undefined::NothingScored);
    }
    let scale = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    if scale == 0.0 {
        return Ok(0.0);
    }
    let mean_sq = errors.iter().map(|e| (e / scale).powi(2)).sum::<f64>() / errors.len() as f64;
    finite("RMSE", scale * mean_sq.sqrt())
}

fn finite(what: &str, v: f64) -> Result<f64, Undefined> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Undefined::Overflow(format!(
            "{what} of the CAR estimates is not a finite double"
        )))
    }
}

/// Evaluates `candidate` calls against the baseline.
pub fn evaluate(
    input: &EvaluationInput<'_>,
    candidate: &[Option<Prediction>],
    config: &EvaluationConfig,
) -> Evaluation {
    evaluate_against(input, candidate, &baseline_calls(input, config), config)
}

/// The same evaluation with another model's calls in the baseline's place (e.g. a GRPO policy
/// against its SFT parent): every delta is then candidate − that model, paired on the same
/// days and events.
pub fn evaluate_against(
    input: &EvaluationInput<'_>,
    candidate: &[Option<Prediction>],
    baseline_calls: &[Option<Prediction>],
    config: &EvaluationConfig,
) -> Evaluation {
    let cand = model_result(input, candidate, config);
    let base = model_result(input, baseline_calls, config);
    let returns = |nav: &[f64]| -> Vec<f64> { nav.windows(2).map(|w| w[1] / w[0] - 1.0).collect() };
    let (rc, rb) = (returns(&cand.nav), returns(&base.nav));
    let boot = config.bootstrap.config();
    let mut null_reasons = std::collections::BTreeMap::new();
    // A ruined side has no SR (sharpe_ratio refuses a return ≤ −100 %), so no delta.
    let (sr_delta, sr_delta_draws) = sharpe_delta_draws(&rc, &rb, &boot)
        .map_err(|why| null_reasons.insert("sr_delta".to_string(), why.to_string()))
        .map_or((None, Vec::new()), |(d, draws)| (Some(d), draws));
    let paired: Vec<usize> = (0..input.events.len())
        .filter(|&i| input.events[i].d0 >= input.start)
        .filter(|&i| {
            input.labels[i].is_some() && candidate[i].is_some() && baseline_calls[i].is_some()
        })
        .collect();
    let hits: Vec<PairedHit> = paired
        .iter()
        .filter_map(|&i| {
            let l = input.labels[i].as_ref()?;
            let (c, b) = (candidate[i].as_ref()?, baseline_calls[i].as_ref()?);
            Some(PairedHit {
                candidate_direction: direction_matches(c.direction, l.direction),
                baseline_direction: direction_matches(b.direction, l.direction),
                type_known: l.event_type.is_known(),
                candidate_type: c.event_type == Some(l.event_type),
                baseline_type: b.event_type == Some(l.event_type),
            })
        })
        .collect();
    let (da_delta, eta_delta) = accuracy_deltas(&hits, &boot);
    // A side that states no type at all has no ETA, so neither has the delta.
    let no_types = |who: &'static str, calls: &[Option<Prediction>]| {
        let calls: Vec<Option<Prediction>> = paired.iter().map(|&i| calls[i].clone()).collect();
        let labels: Vec<Option<Label>> = paired.iter().map(|&i| input.labels[i].clone()).collect();
        match accuracies(&calls, &labels).1 {
            Err(Undefined::NoTypeCalls) => {
                Some(Undefined::Side(who, Box::new(Undefined::NoTypeCalls)))
            }
            _ => None,
        }
    };
    let eta_delta =
        match no_types("candidate", candidate).or_else(|| no_types("baseline", baseline_calls)) {
            Some(why) => Err(why),
            None => eta_delta,
        };
    let mut delta = |name: &str, d: Result<Delta, Undefined>| {
        d.map_err(|why| null_reasons.insert(name.to_string(), why.to_string()))
            .ok()
    };
    let (da_delta, eta_delta) = (delta("da_delta", da_delta), delta("eta_delta", eta_delta));

    let cand_series = Series {
        returns: &rc,
        ruin: cand.metrics.ruin.as_ref(),
    };
    let base_series = Series {
        returns: &rb,
        ruin: base.metrics.ruin.as_ref(),
    };
    let window_days = input.prices.days.saturating_sub(input.start);
    let (folds, walk_forward) = walk_forward(
        input.start,
        window_days,
        &cand_series,
        &base_series,
        &config.walk_forward,
        &mut null_reasons,
    );
    let regimes = match input.regime_labels {
        Some(labels) => labelled_regimes(input.start, labels, &cand_series, &base_series),
        None => regime_slices(
            input,
            &cand_series,
            &base_series,
            config.regime_window as usize,
        ),
    };
    let calibration = calibration(input, candidate, config.target_coverage);
    let mut dropped = input.dropped.clone();
    let uncalled = (0..input.events.len())
        .filter(|&i| input.events[i].d0 >= input.start)
        .filter(|&i| input.labels[i].is_some() && candidate[i].is_none())
        .count() as u64;
    if uncalled > 0 {
        *dropped
            .entry(DropReason::LabelledEventWithoutCall)
            .or_default() += uncalled;
    }
    let days = input.prices.days;
    let tradable_events = input
        .events
        .iter()
        .filter(|e| e.d0 >= input.start && e.d0 < days)
        .filter(|e| input.prices.open[e.symbol * days + e.d0].is_finite())
        .count();
    Evaluation {
        tradable_events,
        predictions: candidate.iter().filter(|c| c.is_some()).count(),
        evaluated_events: hits.len(),
        trading_days: rc.len(),
        candidate: cand,
        baseline: base,
        sr_delta,
        da_delta,
        eta_delta,
        significance: boot.significance("stationary_bootstrap(sr); paired_bootstrap(da, eta)"),
        folds,
        walk_forward,
        regimes,
        calibration,
        null_reasons,
        dropped,
        nav_dates: Vec::new(),
        sr_delta_draws,
        reliability: None,
    }
}

/// One model's evaluated daily returns and its ruin, if any (the returns then end with the
/// ruin day's return, ≤ −100 %).
struct Series<'a> {
    returns: &'a [f64],
    ruin: Option<&'a Ruin>,
}

impl Series<'_> {
    /// The SR of some of the days (a fold, a regime slice): a part holding the ruin day has
    /// none, with the model's own ruin as the reason (day and NAV of the whole window, not of
    /// the part).
    fn sharpe_of(&self, part: &[f64]) -> Result<f64, Undefined> {
        sharpe_ratio(part).map_err(|why| match (why, self.ruin) {
            (Undefined::Ruin { .. }, Some(r)) => self.ruined(r),
            (why, _) => why,
        })
    }
    fn ruined(&self, r: &Ruin) -> Undefined {
        Undefined::Ruin {
            day: r.day,
            nav: r.nav,
        }
    }
}

/// Walk-forward folds over the evaluated window of `window_days` return days: test windows of
/// `test_days` after `train_days`, every `step_days`. A ruined candidate's series ends early:
/// the fold holding its ruin day is kept, cut at that day (its return ≤ −100 %, its SR null with
/// reason ruin), and no fold follows. The summary's statistics are null, with the reason
/// recorded in `null_reasons` under `walk_forward.<name>`, when there is no fold (`no_folds`),
/// when the candidate was ruined (its folds do not measure stability: the book ended), and, for
/// the coefficient of variation, with a single fold (one observation has no dispersion).
fn walk_forward(
    start: usize,
    window_days: usize,
    cand: &Series<'_>,
    base: &Series<'_>,
    wf: &WalkForwardConfig,
    null_reasons: &mut std::collections::BTreeMap<String, String>,
) -> (Vec<Fold>, WalkForwardSummary) {
    let (test, rc, rb) = (wf.test_days as usize, cand.returns, base.returns);
    let compound = |r: &[f64]| r.iter().fold(1.0, |acc, x| acc * (1.0 + x)) - 1.0;
    let mut folds = Vec::new();
    let mut from = wf.train_days as usize;
    while from + test <= window_days && from < rc.len() {
        let to = (from + test).min(rc.len());
        let mut reasons = std::collections::BTreeMap::new();
        let candidate_sr = cand
            .sharpe_of(&rc[from..to])
            .map_err(|why| reasons.insert("candidate_sr".to_string(), why.to_string()))
            .ok();
        // A baseline ruined before the fold has no return over it.
        let baseline_return = match (rb.get(from..to.min(rb.len())), base.ruin) {
            (Some(b), _) if !b.is_empty() => Some(compound(b)),
            (_, Some(r)) => {
                reasons.insert(
                    "baseline_return".to_string(),
                    Undefined::Side("baseline", Box::new(base.ruined(r))).to_string(),
                );
                None
            }
            _ => None,
        };
        folds.push(Fold {
            start_day: start + from,
            end_day: start + to - 1,
            candidate_return: compound(&rc[from..to]),
            baseline_return,
            candidate_sr,
            null_reasons: reasons,
        });
        from += wf.step_days as usize;
    }
    let fold_returns: Vec<f64> = folds.iter().map(|f| f.candidate_return).collect();
    let undefined = if let Some(r) = cand.ruin {
        Some(cand.ruined(r))
    } else if folds.is_empty() {
        Some(Undefined::NoFolds {
            days: window_days,
            needed: wf.train_days as usize + test,
        })
    } else {
        None
    };
    let mut stat = |name: &str, value: Result<f64, Undefined>| {
        value
            .map_err(|why| null_reasons.insert(format!("walk_forward.{name}"), why.to_string()))
            .ok()
    };
    let (negative_fold_ratio, fold_pnl_cv) = match undefined {
        Some(why) => (
            stat("negative_fold_ratio", Err(why.clone())),
            stat("fold_pnl_cv", Err(why)),
        ),
        None => (
            stat(
                "negative_fold_ratio",
                Ok(fold_returns.iter().filter(|r| **r < 0.0).count() as f64 / folds.len() as f64),
            ),
            stat("fold_pnl_cv", coefficient_of_variation(&fold_returns)),
        ),
    };
    let summary = WalkForwardSummary {
        folds: folds.len() as u32,
        negative_fold_ratio,
        fold_pnl_cv,
    };
    (folds, summary)
}

/// std / |mean| of fold returns (population std). With a zero mean it is reported as 1e6
/// ("effectively infinite") unless every fold is zero, so it stays a finite number. Undefined
/// without a fold, and with one (a single return has no dispersion to measure: 0 would claim
/// perfect stability from one observation).
pub fn coefficient_of_variation(xs: &[f64]) -> Result<f64, Undefined> {
    match xs.len() {
        0 => return Err(Undefined::NoReturns),
        1 => return Err(Undefined::OneObservation("fold return")),
        _ => {}
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    Ok(if mean.abs() > 1e-12 {
        (sd / mean.abs()).min(1e6)
    } else if sd == 0.0 {
        0.0
    } else {
        1e6
    })
}

/// The slice of the evaluated days `idx` (positions in the candidate's returns). A slice that
/// holds a model's ruin day has no SR for it, and no candidate mean return (a per-day average
/// over a day that took the NAV below 0), each null with the reason.
fn slice(regime: String, idx: &[usize], cand: &Series<'_>, base: &Series<'_>) -> RegimeSlice {
    let c: Vec<f64> = idx.iter().map(|&k| cand.returns[k]).collect();
    // A ruined baseline ends early: its slice holds the days it has.
    let b: Vec<f64> = idx
        .iter()
        .filter_map(|&k| base.returns.get(k).copied())
        .collect();
    let mut null_reasons = std::collections::BTreeMap::new();
    let mut defined = |name: &str, value: Result<f64, Undefined>| {
        value
            .map_err(|why| null_reasons.insert(name.to_string(), why.to_string()))
            .ok()
    };
    let mean = match cand.ruin {
        _ if c.is_empty() => Err(Undefined::NoReturns),
        Some(r) if c.iter().any(|x| *x <= -1.0) => Err(cand.ruined(r)),
        _ => Ok(c.iter().sum::<f64>() / c.len() as f64),
    };
    RegimeSlice {
        regime,
        days: idx.len(),
        candidate_sr: defined("candidate_sr", cand.sharpe_of(&c)),
        baseline_sr: defined("baseline_sr", base.sharpe_of(&b)),
        candidate_mean_return: defined("candidate_mean_return", mean),
        null_reasons,
    }
}

/// Slices by regime labels given per calendar day (evaluated return k is that of calendar day
/// start + k); days without a label are left out.
fn labelled_regimes(
    start: usize,
    labels: &[Option<String>],
    cand: &Series<'_>,
    base: &Series<'_>,
) -> Vec<RegimeSlice> {
    let mut names: Vec<&String> = labels.iter().flatten().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let idx: Vec<usize> = (0..cand.returns.len())
                .filter(|&k| labels.get(start + k).and_then(|l| l.as_ref()) == Some(name))
                .collect();
            slice(name.clone(), &idx, cand, base)
        })
        .collect()
}

/// Volatility terciles and trend of an equal-weighted market proxy (mean stock return per
/// day) over a rolling window, each day classified by the window ending the day before.
fn regime_slices(
    input: &EvaluationInput<'_>,
    cand: &Series<'_>,
    base: &Series<'_>,
    window: usize,
) -> Vec<RegimeSlice> {
    let rc = cand.returns;
    let days = input.prices.days;
    let symbols = input.prices.close.len() / days.max(1);
    let market: Vec<f64> = (0..days)
        .map(|t| {
            if let Some(index) = input.market_returns {
                return index
                    .get(t)
                    .copied()
                    .filter(|r| r.is_finite())
                    .unwrap_or(0.0);
            }
            if t == 0 {
                return 0.0;
            }
            let (mut sum, mut n) = (0.0, 0usize);
            for s in 0..symbols {
                let (a, b) = (
                    input.prices.close[s * days + t - 1],
                    input.prices.close[s * days + t],
                );
                if a.is_finite() && b.is_finite() {
                    sum += b / a - 1.0;
                    n += 1;
                }
            }
            if n == 0 { 0.0 } else { sum / n as f64 }
        })
        .collect();
    // Evaluated return k is the return of calendar day start + k (from the previous close).
    let stats: Vec<(f64, f64)> = (0..rc.len())
        .map(|k| {
            let t = input.start + k;
            let from = t.saturating_sub(window);
            let w = &market[from..t];
            let mean = w.iter().sum::<f64>() / w.len().max(1) as f64;
            let vol =
                (w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / w.len().max(1) as f64).sqrt();
            (vol, mean)
        })
        .collect();
    let mut vols: Vec<f64> = stats.iter().map(|s| s.0).collect();
    vols.sort_by(f64::total_cmp);
    let cut = |q: f64| {
        vols.get(((vols.len() as f64 * q) as usize).min(vols.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let (lo, hi) = (cut(1.0 / 3.0), cut(2.0 / 3.0));
    // (volatility, mean) of the window before each day → regime membership.
    let member = |name: &str, (vol, mean): (f64, f64)| match name {
        "low_volatility" => vol < lo,
        "mid_volatility" => vol >= lo && vol < hi,
        "high_volatility" => vol >= hi,
        "trend_up" => mean >= 0.0,
        _ => mean < 0.0,
    };
    let classes = [
        "low_volatility",
        "mid_volatility",
        "high_volatility",
        "trend_up",
        "trend_down",
    ];
    classes
        .iter()
        .map(|name| {
            let idx: Vec<usize> = (0..rc.len()).filter(|&k| member(name, stats[k])).collect();
            slice(name.to_string(), &idx, cand, base)
        })
        .collect()
}

/// Split-conformal check of the candidate's CAR estimates: intervals ĉ ± q, with q the
/// conformal quantile of |c − ĉ| on the first half of the evaluated events (by d0); coverage
/// measured on the second half. The shift score is the Kolmogorov-Smirnov distance between the
/// two halves' |residual| distributions; the width ratio is the second half's own quantile
/// over q (above 1: intervals too narrow).
fn calibration(
    input: &EvaluationInput<'_>,
    candidate: &[Option<Prediction>],
    target: f64,
) -> Option<Calibration> {
    let mut residuals: Vec<(usize, f64)> = (0..input.events.len())
        .filter(|&i| input.events[i].d0 >= input.start)
        .filter_map(|i| {
            let (p, l) = (candidate[i].as_ref()?, input.labels[i].as_ref()?);
            p.car_estimate
                .is_finite()
                .then(|| (input.events[i].d0, (l.car - p.car_estimate).abs()))
        })
        .collect();
    if residuals.len() < 40 {
        return None;
    }
    residuals.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let half = residuals.len() / 2;
    let mut cal: Vec<f64> = residuals[..half].iter().map(|r| r.1).collect();
    let mut test: Vec<f64> = residuals[half..].iter().map(|r| r.1).collect();
    cal.sort_by(f64::total_cmp);
    test.sort_by(f64::total_cmp);
    let conformal = |v: &[f64]| {
        let k = ((v.len() + 1) as f64 * target).ceil() as usize;
        v[k.clamp(1, v.len()) - 1]
    };
    let q = conformal(&cal);
    let covered = test.iter().filter(|r| **r <= q).count() as f64 / test.len() as f64;
    let ks = {
        let (mut i, mut j, mut d) = (0, 0, 0.0f64);
        while i < cal.len() && j < test.len() {
            if cal[i] <= test[j] {
                i += 1
            } else {
                j += 1
            }
            d = d.max((i as f64 / cal.len() as f64 - j as f64 / test.len() as f64).abs());
        }
        d
    };
    Some(Calibration {
        target_coverage: target,
        observed_coverage: covered,
        shift_score: ks,
        interval_width_ratio: if q > 0.0 { conformal(&test) / q } else { 1.0 },
    })
}
