//! `janus-runtime-stats-v1`: what one decision-service replica (or a simulation) measured over one
//! exact window while serving one request at one stage with one model. Sealed like every artifact
//! (schema, lineage, manifest hash), so an edited file is refused; its `source` says whether a
//! real decision service served live events or a replay produced it, and the gates' policy
//! decides where a simulation may stand in. The manifest hash is a content hash anyone can
//! recompute: what makes a file the decision service's is its `signature`, an HMAC under the
//! statistics key only the decision service and the operator hold
//! (`crate::runtime::stats::sign`, `crate::runtime::stats::check_signature`).
//!
//! Latency and staleness are fixed-bucket histograms ([`Histogram`]): the files of several
//! replicas and windows merge by adding counts, and p50/p95/p99 are derived from the merged
//! buckets (an upper bound: the bucket's upper edge).

use super::hash::Sha256Hex;
use super::lineage::Lineage;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RuntimeStatsVersion {
    #[serde(rename = "janus-runtime-stats-v1")]
    V1,
}

/// Who measured the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StatsSource {
    /// `janus serve`, deciding the events a trading lane posted while it ran.
    DecisionService,
    /// A replay (`janus paper`, `janus demo`): the service's own code, but events replayed at a
    /// chosen rate, so the window's length says nothing about time in the market.
    Simulation,
}

impl StatsSource {
    /// As the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            StatsSource::DecisionService => "decision-service",
            StatsSource::Simulation => "simulation",
        }
    }
}

/// The serving identity that wrote the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceIdentity {
    /// The replica (`--replica`, default the pod's host name): one file series per replica.
    pub replica: String,
    /// The namespace it ran in (`$POD_NAMESPACE`), when known.
    pub namespace: Option<String>,
    /// The ServiceAccount it ran as (`$JANUS_SERVICE_ACCOUNT`), when known.
    pub service_account: Option<String>,
}

/// What happened to the events of the window. Every event answered is exactly one of
/// `decisions` (model or fallback), `halts`, `suppressed` or `duplicate_event_ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeCounts {
    /// Events answered.
    pub events: u64,
    /// Events the model or the fallback decided.
    pub decisions: u64,
    /// Decisions whose inference failed (`inference_error`); they took the fallback.
    pub errors: u64,
    /// Decisions whose inference missed its budget (`inference_timeout`); they took the fallback.
    pub timeouts: u64,
    /// Decisions the fallback made, for any reason.
    pub fallbacks: u64,
    /// Events answered `halted` (kill switch, stale or missing configuration, trading off).
    pub halts: u64,
    /// Events suppressed (stale, future-dated, out of session).
    pub suppressed: u64,
    /// Events whose `event_id` had already been decided under the configuration in force: answered
    /// with the first decision again (never a second order or position), counted only here.
    pub duplicate_event_ids: u64,
    /// Orders a canary limit refused.
    pub canary_refusals: u64,
    /// Orders a canary limit reduced.
    pub canary_reductions: u64,
    /// Events with an empty title or no event type.
    pub null_events: u64,
}

/// Upper edges of the histogram buckets, in milliseconds; a last bucket holds everything above.
pub const BUCKET_BOUNDS_MS: [f64; 22] = [
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
    100.0,
    200.0,
    500.0,
    1_000.0,
    2_000.0,
    5_000.0,
    10_000.0,
    30_000.0,
    60_000.0,
    120_000.0,
    300_000.0,
    600_000.0,
    1_800_000.0,
    3_600_000.0,
    86_400_000.0,
];

/// A mergeable histogram of durations in milliseconds: `counts[i]` values were at most
/// `bounds_ms[i]` (and above the previous edge); `counts[bounds_ms.len()]` were above the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    /// Upper edges of the buckets, increasing, in ms.
    pub bounds_ms: Vec<f64>,
    /// Values per bucket; one more than `bounds_ms` (the last: above every edge).
    pub counts: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            bounds_ms: BUCKET_BOUNDS_MS.to_vec(),
            counts: vec![0; BUCKET_BOUNDS_MS.len() + 1],
        }
    }
}

impl Histogram {
    /// Counts one value (a negative or non-finite value counts in the last bucket: it is never
    /// reported as fast).
    pub fn record(&mut self, ms: f64) {
        let i = if ms.is_finite() && ms >= 0.0 {
            self.bounds_ms.partition_point(|b| *b < ms)
        } else {
            self.bounds_ms.len()
        };
        if let Some(c) = self.counts.get_mut(i) {
            // Saturates rather than wraps: 2^64 values is beyond any one process.
            *c = c.saturating_add(1);
        }
    }

    /// Adds another histogram's counts. Nothing is added when the buckets differ, or when a
    /// sum would exceed `u64::MAX` (counts no service could have recorded: the sum is refused,
    /// never wrapped).
    pub fn merge(&mut self, other: &Histogram) -> Result<(), HistogramMergeError> {
        if self.bounds_ms != other.bounds_ms || self.counts.len() != other.counts.len() {
            return Err(HistogramMergeError::DifferentBuckets);
        }
        let sums = self
            .counts
            .iter()
            .zip(&other.counts)
            .map(|(a, b)| a.checked_add(*b))
            .collect::<Option<Vec<u64>>>()
            .ok_or(HistogramMergeError::Overflow)?;
        self.counts = sums;
        Ok(())
    }

    /// Whether the shape is one this build reads: increasing finite edges, one count more.
    pub fn well_formed(&self) -> bool {
        self.counts.len() == self.bounds_ms.len() + 1
            && self.bounds_ms.iter().all(|b| b.is_finite() && *b >= 0.0)
            && self.bounds_ms.windows(2).all(|w| w[0] < w[1])
    }

    /// The upper edge of the bucket holding the `q` quantile (0 < q ≤ 1); infinity when it lies
    /// above the last edge, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        // Summed as u128: the counts of one histogram cannot overflow it (that would take more
        // than 2^64 buckets).
        let total: u128 = self.counts.iter().map(|c| u128::from(*c)).sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u128;
        let mut seen = 0u128;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u128::from(*c);
            if seen >= rank {
                return Some(self.bounds_ms.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

/// Why two histograms do not add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HistogramMergeError {
    #[error("the buckets differ")]
    DifferentBuckets,
    #[error("a bucket's count summed past 2^64 - 1")]
    Overflow,
}

/// One window's statistics (see the module comment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeStatsArtifact {
    /// The PromotionRequest served.
    pub promotion_request: String,
    /// The candidate the request names.
    pub candidate: String,
    /// The stage served: `shadow`, `paper` or `canary`.
    pub stage: String,
    /// SHA-256 of the model served throughout the window.
    pub model_sha256: Sha256Hex,
    /// The event record schema the feed carried.
    pub feature_schema_version: String,
    /// `decision-service` (served live events) or `simulation` (a replay).
    pub source: StatsSource,
    /// The replica that wrote the file.
    pub service: ServiceIdentity,
    /// The exact window: every event answered at or after the start and before the end.
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub counts: RuntimeCounts,
    /// Time to answer each event, in ms.
    pub latency_ms: Histogram,
    /// Age of each event at decision time, in ms.
    pub staleness_ms: Histogram,
    /// Symbols of the events answered, sorted.
    pub symbols_seen: Vec<String>,
    /// Symbols of the events the model or the fallback decided, sorted.
    pub symbols_decided: Vec<String>,
    /// `inputs` empty; `run_config_hash` is the canonical hash of the runtime configuration
    /// served (the ConfigMap's data).
    pub lineage: Lineage,
    /// HMAC-SHA256 (RFC 2104), lowercase hex, under the statistics key (`janus serve
    /// --stats-key`) over `janus-runtime-stats-v1` and a newline followed by the RFC 8785
    /// encoding of this object without `manifest_hash` and with `signature` null. Null: unsigned
    /// (a replay's `simulation`, or a service run without a key); the operator counts a
    /// `decision-service` file only with a signature its key verifies.
    pub signature: Option<String>,
    /// SHA-256 of the RFC 8785 encoding of this object without `manifest_hash` (the signature
    /// included).
    pub manifest_hash: Sha256Hex,
    /// Always `janus-runtime-stats-v1`.
    pub schema_version: RuntimeStatsVersion,
}
