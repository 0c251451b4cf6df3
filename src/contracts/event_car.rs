//! `janus-event-car-v1`: events labelled with cumulative abnormal returns (DESIGN §3.2).

use super::hash::Sha256Hex;
use super::label::Label;
use super::lineage::Lineage;
use crate::taxonomy::EventType;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The only version this build writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EventCarVersion {
    #[serde(rename = "janus-event-car-v1")]
    V1,
}

/// The labelled events of one dataset snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCarArtifact {
    /// When the artifact was generated (see docs/contracts/README.md: an input, not wall time,
    /// unless asked for, so reruns are byte-identical).
    pub generated_at: DateTime<Utc>,
    pub lineage: Lineage,
    /// SHA-256 of the RFC 8785 encoding of this object without `manifest_hash`.
    pub manifest_hash: Sha256Hex,
    /// The labeling method and its parameters, exactly as applied.
    pub method: LabelingMethod,
    /// One record per input event, labelled or not, in input order.
    pub records: Vec<EventCarRecord>,
    /// Always `janus-event-car-v1`.
    pub schema_version: EventCarVersion,
    pub summary: EventCarSummary,
}

/// The parameters of the event study (DESIGN §3.2), recorded so anyone can recompute it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelingMethod {
    /// Trading days between the end of the estimation window and the first event day d0.
    pub buffer: u32,
    /// |car| at or below this is a neutral direction.
    pub dead_band: f64,
    /// Trading days in the market-model estimation window.
    pub estimation_window: u32,
    /// Trading days H in the event window d0 .. d0+H−1.
    pub event_window: u32,
    /// Style factors used for neutralization (industry dummies come in addition), in order.
    pub factors: Vec<String>,
    /// Fewest estimation days with both returns present for a fit.
    pub min_observations: u32,
    /// Whether abnormal returns were neutralized against factor returns; `car` equals
    /// `car_market_model` when false.
    pub neutralized: bool,
    /// Session open (HH:MM) in `timezone`; d0 is the first trading day opening strictly after the event.
    pub session_open: String,
    /// τ: |car| ≥ τ is strong.
    pub strong_threshold: f64,
    /// IANA time zone of the exchange.
    pub timezone: String,
}

/// Counts over the records, for gates and for a reader's first look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCarSummary {
    /// Input rows skipped as malformed, by input role.
    pub bad_rows: BTreeMap<String, u64>,
    /// Records per normalized event type (including `unknown`).
    pub by_event_type: BTreeMap<String, u64>,
    /// Input events (= records).
    pub events: u64,
    /// Records with a label.
    pub labelled: u64,
    /// Mean label `car` per known event type over labelled records.
    pub mean_car_by_type: BTreeMap<String, f64>,
    /// Source event-type strings the normalizer could not map, with counts.
    pub unknown_event_types: BTreeMap<String, u64>,
    /// Records without a label, by reason.
    pub unlabelled_by_reason: BTreeMap<String, u64>,
}

impl EventCarSummary {
    /// The summary of `records`, with the input rows skipped while reading them (`bad_rows`, by
    /// input role: the only count the records cannot give). The one computation `janus label`
    /// writes and every reader recounts (`contracts::consistency`). A record with neither a
    /// label nor a reason (which labeling never writes) is counted in `events` and
    /// `by_event_type` only; the reader's check names it.
    pub fn of(records: &[EventCarRecord], bad_rows: &BTreeMap<String, u64>) -> Self {
        let mut s = EventCarSummary {
            events: records.len() as u64,
            labelled: 0,
            unlabelled_by_reason: BTreeMap::new(),
            by_event_type: BTreeMap::new(),
            unknown_event_types: BTreeMap::new(),
            bad_rows: bad_rows.clone(),
            mean_car_by_type: BTreeMap::new(),
        };
        let mut car_sums: BTreeMap<EventType, (f64, u64)> = BTreeMap::new();
        for r in records {
            *s.by_event_type
                .entry(r.event_type.name().to_string())
                .or_default() += 1;
            if !r.event_type.is_known() {
                *s.unknown_event_types
                    .entry(r.source_event_type.clone())
                    .or_default() += 1;
            }
            match (&r.label, r.unlabelled_reason) {
                (Some(label), _) => {
                    s.labelled += 1;
                    if label.event_type.is_known() {
                        let e = car_sums.entry(label.event_type).or_default();
                        e.0 += label.car;
                        e.1 += 1;
                    }
                }
                (None, Some(reason)) => {
                    *s.unlabelled_by_reason
                        .entry(reason.name().to_string())
                        .or_default() += 1
                }
                (None, None) => {}
            }
        }
        s.mean_car_by_type = car_sums
            .into_iter()
            .map(|(t, (sum, n))| (t.name().to_string(), sum / n as f64))
            .collect();
        s
    }
}

/// One event and its label, or the reason it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCarRecord {
    /// Σ AR over the event window under the market model alone.
    pub car_market_model: Option<f64>,
    /// First tradable day: the first trading day whose session opens strictly after `timestamp`.
    pub d0: Option<NaiveDate>,
    pub event_id: String,
    /// The normalized event type (`unknown` when unmapped).
    pub event_type: EventType,
    /// The market-model fit, when one was made.
    pub fit: Option<MarketModelFit>,
    /// The label y = {c, d, s, e}; absent when `unlabelled_reason` is set.
    pub label: Option<Label>,
    /// The event type as the source spelled it.
    pub source_event_type: String,
    pub symbol: String,
    /// Publication time as given (RFC 3339 with offset).
    pub timestamp: DateTime<FixedOffset>,
    pub title: String,
    /// Why the event has no label.
    pub unlabelled_reason: Option<UnlabelledReason>,
    /// Returns and abnormal returns of each day of the event window.
    pub window: Vec<WindowDay>,
}

/// OLS fit r_t = α + β·r_m,t over the estimation window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketModelFit {
    pub alpha: f64,
    pub beta: f64,
    /// Estimation days used (both returns present, outside other events' windows).
    pub observations: u32,
    pub r_squared: f64,
    /// Standard deviation of the residuals (n − 2 degrees of freedom).
    pub residual_std: f64,
    pub window_end: NaiveDate,
    /// First and last trading day of the estimation window.
    pub window_start: NaiveDate,
}

/// One day of an event window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowDay {
    /// AR_t = r_t − (α̂ + β̂·r_m,t).
    pub abnormal_return: f64,
    pub date: NaiveDate,
    /// r_m,t: close-to-close simple return of the stock's market index.
    pub market_return: f64,
    /// AR_t less the exposure-weighted factor returns of the day; absent without neutralization.
    pub neutral_abnormal_return: Option<f64>,
    /// r_t: close-to-close simple return of the stock.
    pub stock_return: f64,
}

/// Why an event could not be labelled. Such events stay in the artifact, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnlabelledReason {
    /// The symbol is not in the universe.
    UnknownSymbol,
    /// The calendar has no trading day opening after the event, or too few for the event window.
    OutsideCalendar,
    /// Fewer than `min_observations` estimation days with both returns present.
    InsufficientHistory,
    /// A day of the event window has no stock or index return (halt, missing row).
    MissingPrices,
    /// The index returns over the estimation window have no variance; β is undefined.
    DegenerateRegression,
    /// Neutralization was on but a window day lacks the symbol's exposures or factor returns.
    MissingFactorExposures,
}

impl UnlabelledReason {
    pub fn name(self) -> &'static str {
        match self {
            UnlabelledReason::UnknownSymbol => "unknown_symbol",
            UnlabelledReason::OutsideCalendar => "outside_calendar",
            UnlabelledReason::InsufficientHistory => "insufficient_history",
            UnlabelledReason::MissingPrices => "missing_prices",
            UnlabelledReason::DegenerateRegression => "degenerate_regression",
            UnlabelledReason::MissingFactorExposures => "missing_factor_exposures",
        }
    }
}
