//! The decision service's own statistics (sans-IO: time is an argument). A [`Recorder`] counts
//! every answered event into the current window of what is served (request, candidate, stage,
//! model, configuration); a window closes when it is flushed (every `--stats-interval`, and on
//! shutdown) or when what is served changes, and the next one starts at the same instant, so one
//! replica's windows are contiguous by construction. [`merge`] combines files (several replicas,
//! several windows) into the figures the gates read, joining only windows that touch or overlap:
//! a gap (a replica killed without its last flush, a service that was down) is reported and the
//! statistics before it are not bridged over it.
//!
//! Invariants: every event answered while a configuration is in force is counted exactly once,
//! in exactly one window; a window is never written twice (closing empties it).
//!
//! Provenance: the decision service signs each file with the statistics key ([`sign`]); the
//! operator counts a `decision-service` file only when [`check_signature`] verifies it, so a
//! file anyone with write access to the artifacts volume wrote (a valid content hash is easy to
//! compute) is refused with its reason. A `simulation` file is what a replay says it is: it may
//! be unsigned, and counts only where the policy lets a simulation stand in.

use crate::contracts::artifact::unsealed;
use crate::contracts::runtime_stats::{
    Histogram, HistogramMergeError, RuntimeCounts, RuntimeStatsArtifact, RuntimeStatsVersion,
    ServiceIdentity, StatsSource,
};
use crate::contracts::{ArtifactKind, Inputs, Lineage, Sha256Hex, canonical_hash};
use crate::gates::RuntimeStats;
use crate::identity::SigningKey;
use crate::runtime::decision::Source;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// What is being served: a window holds one of these throughout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub promotion_request: String,
    pub candidate: String,
    pub stage: String,
    pub model_sha256: Sha256Hex,
    /// Canonical hash of the runtime configuration's data.
    pub config_hash: Sha256Hex,
}

/// One answered event, as the statistics see it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub event_id: &'a str,
    /// The id was already decided under this configuration: answered again with its first
    /// decision (`runtime::dedup`), counted as a duplicate and nothing else.
    pub repeat: bool,
    pub symbol: &'a str,
    /// The title is empty or the event type is missing.
    pub null: bool,
    pub source: Source,
    /// The decision's reason (`inference_timeout`, `max_gross_notional_reduced`, ...).
    pub reason: &'a str,
    pub latency_ms: f64,
    /// Age of the event at decision time.
    pub staleness_ms: f64,
}

#[derive(Debug, Clone)]
struct Window {
    served: Served,
    start: DateTime<Utc>,
    counts: RuntimeCounts,
    latency: Histogram,
    staleness: Histogram,
    seen: BTreeSet<String>,
    decided: BTreeSet<String>,
}

impl Window {
    fn new(served: Served, start: DateTime<Utc>) -> Self {
        Self {
            served,
            start,
            counts: RuntimeCounts::default(),
            latency: Histogram::default(),
            staleness: Histogram::default(),
            seen: BTreeSet::new(),
            decided: BTreeSet::new(),
        }
    }
}

/// Accumulates one replica's windows.
#[derive(Debug, Clone)]
pub struct Recorder {
    source: StatsSource,
    service: ServiceIdentity,
    feature_schema_version: String,
    window: Option<Window>,
}

impl Recorder {
    pub fn new(source: StatsSource, service: ServiceIdentity) -> Self {
        Self {
            source,
            service,
            feature_schema_version: ArtifactKind::EventCar.version().to_string(),
            window: None,
        }
    }

    /// Counts one event answered under `served` at `now`. When `served` differs from the
    /// current window's, that window is closed at `now` and returned (to be written), and a new
    /// one starts.
    pub fn record(
        &mut self,
        served: &Served,
        o: &Observation<'_>,
        now: DateTime<Utc>,
    ) -> Option<RuntimeStatsArtifact> {
        let closed = match &self.window {
            Some(w) if w.served != *served => {
                let closed = self.close(now);
                // The next window is the new identity's, from the same instant.
                self.window = None;
                closed
            }
            _ => None,
        };
        let w = self
            .window
            .get_or_insert_with(|| Window::new(served.clone(), now));
        let c = &mut w.counts;
        c.events += 1;
        if o.repeat {
            // Not a second decision: the first one is already counted.
            c.duplicate_event_ids += 1;
            return closed;
        }
        if o.null {
            c.null_events += 1;
        }
        w.seen.insert(o.symbol.to_string());
        match o.source {
            Source::Halted => c.halts += 1,
            Source::Suppressed => c.suppressed += 1,
            Source::Model | Source::Fallback => {
                c.decisions += 1;
                w.decided.insert(o.symbol.to_string());
                if o.source == Source::Fallback {
                    c.fallbacks += 1;
                }
                match o.reason {
                    "inference_error" => c.errors += 1,
                    "inference_timeout" => c.timeouts += 1,
                    r if r.ends_with("_refused") => c.canary_refusals += 1,
                    r if r.ends_with("_reduced") => c.canary_reductions += 1,
                    _ => {}
                }
            }
        }
        w.latency.record(o.latency_ms);
        w.staleness.record(o.staleness_ms);
        closed
    }

    /// Starts a window for `served` at `now` if none is open (a service that is serving but
    /// receives no events still covers its time).
    pub fn serving(&mut self, served: &Served, now: DateTime<Utc>) -> Option<RuntimeStatsArtifact> {
        match &self.window {
            Some(w) if w.served == *served => None,
            Some(_) => {
                let closed = self.close(now);
                self.window = Some(Window::new(served.clone(), now));
                closed
            }
            None => {
                self.window = Some(Window::new(served.clone(), now));
                None
            }
        }
    }

    /// Closes the current window at `now` and starts none: nothing is served from then on (the
    /// configuration became unusable), so that time is in no window, and the next window (from
    /// [`Recorder::serving`]) leaves a gap after this one. `None` as for [`Recorder::close`].
    pub fn stop(&mut self, now: DateTime<Utc>) -> Option<RuntimeStatsArtifact> {
        let closed = self.close(now);
        self.window = None;
        closed
    }

    /// Closes the current window at `now` (unsealed; see [`crate::contracts::seal`]) and starts
    /// the next one for the same served identity at the same instant. `None` when nothing is
    /// served or the window is empty in time.
    pub fn close(&mut self, now: DateTime<Utc>) -> Option<RuntimeStatsArtifact> {
        let w = self.window.take()?;
        let served = w.served.clone();
        if now <= w.start {
            self.window = Some(w);
            return None;
        }
        self.window = Some(Window::new(served.clone(), now));
        let inputs = Inputs::new();
        Some(RuntimeStatsArtifact {
            promotion_request: served.promotion_request,
            candidate: served.candidate,
            stage: served.stage,
            model_sha256: served.model_sha256,
            feature_schema_version: self.feature_schema_version.clone(),
            source: self.source,
            service: self.service.clone(),
            window_start: w.start,
            window_end: now,
            counts: w.counts,
            latency_ms: w.latency,
            staleness_ms: w.staleness,
            symbols_seen: w.seen.into_iter().collect(),
            symbols_decided: w.decided.into_iter().collect(),
            lineage: Lineage {
                dataset_snapshot_hash: canonical_hash(&inputs).expect("an empty map hashes"),
                generation_code: crate::contracts::lineage::generation_code(),
                generation_code_hash: crate::contracts::lineage::generation_code_hash(),
                inputs,
                parents: Vec::new(),
                run_config_hash: served.config_hash,
                schema_hash: ArtifactKind::RuntimeStats.schema_hash(),
            },
            signature: None,
            manifest_hash: unsealed(),
            schema_version: RuntimeStatsVersion::V1,
        })
    }
}

/// Where a window's file goes, relative to the artifacts root:
/// `candidates/<candidate>/runtime/<stage>/<replica>-<window start>.json` (start as
/// `YYYYMMDDTHHMMSS.mmmZ`).
pub fn file_path(a: &RuntimeStatsArtifact) -> String {
    format!(
        "{}/{}-{}.json",
        stage_dir(&a.candidate, &a.stage),
        a.service.replica,
        a.window_start.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// The folder of a candidate's statistics at a stage, relative to the artifacts root.
pub fn stage_dir(candidate: &str, stage: &str) -> String {
    format!("candidates/{candidate}/runtime/{stage}")
}

/// One statistics file as read from a stage folder: its path, its name relative to the
/// artifacts root (as refusals name it), and the fail-closed reader's verdict.
pub type StageFile = (
    std::path::PathBuf,
    String,
    Result<RuntimeStatsArtifact, String>,
);

/// Reads every `*.json` under `<root>/<stage_dir>` (in name order) with the fail-closed artifact
/// reader, for [`accept`]: the one reader the operator and the demo share. The only I/O of this
/// module. Errors: the folder cannot be listed (absent included).
pub fn read_stage(
    root: &std::path::Path,
    candidate: &str,
    stage: &str,
) -> std::io::Result<Vec<StageFile>> {
    let mut paths: Vec<std::path::PathBuf> =
        std::fs::read_dir(root.join(stage_dir(candidate, stage)))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let read = crate::contracts::read_artifact::<RuntimeStatsArtifact>(&p)
                .map_err(|e| e.to_string());
            let name = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            (p, name, read)
        })
        .collect())
}

/// A hole in the windows: a time nothing covered, or a replica's time between two of its own
/// windows (its window there was lost, e.g. SIGKILLed before its flush), even where another
/// replica covered that time (each replica decides its own events).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gap {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Files merged into the figures the gates read.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// Over the newest contiguous stretch of windows (every window starting at or after the
    /// last gap's end).
    pub stats: RuntimeStats,
    /// The sources of the files merged (a simulation among them makes the whole a simulation).
    pub source: StatsSource,
    /// Files merged.
    pub files: usize,
    /// Holes (see [`Gap`]), oldest first; what starts before the last one's end is not merged.
    pub gaps: Vec<Gap>,
}

/// Why windows cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("no statistics files")]
    Empty,
    /// A sum past `u64::MAX`: counts no service could have recorded (each file may carry up to
    /// 2^53 - 1, the reader's exact-integer limit). Refused, never wrapped.
    #[error(
        "impossible: `{0}` summed over the windows exceeds 2^64 - 1 (counts no decision service could have recorded)"
    )]
    Overflow(&'static str),
}

/// The gaps among `windows`: over all of them (a time nothing covered), and per replica
/// (between two windows of the same replica); sorted, each once.
fn gaps_in(windows: &[&RuntimeStatsArtifact]) -> BTreeSet<Gap> {
    let mut gaps = BTreeSet::new();
    let mut holes = |group: &mut Vec<&RuntimeStatsArtifact>| {
        group.sort_by_key(|a| (a.window_start, a.window_end));
        let Some(first) = group.first() else { return };
        let mut end = first.window_end;
        for a in group.iter().skip(1) {
            if a.window_start > end {
                gaps.insert(Gap {
                    from: end,
                    to: a.window_start,
                });
            }
            end = end.max(a.window_end);
        }
    };
    holes(&mut windows.to_vec());
    let replicas: BTreeSet<&str> = windows.iter().map(|a| a.service.replica.as_str()).collect();
    for replica in replicas {
        let mut own: Vec<&RuntimeStatsArtifact> = windows
            .iter()
            .copied()
            .filter(|a| a.service.replica == replica)
            .collect();
        holes(&mut own);
    }
    gaps
}

/// `total += n`, refused past `u64::MAX`.
fn add(total: &mut u64, n: u64, field: &'static str) -> Result<(), MergeError> {
    *total = total.checked_add(n).ok_or(MergeError::Overflow(field))?;
    Ok(())
}

/// Merges windows (any replicas, any order) of one request, stage and model: counts and
/// histograms add (checked: a sum past `u64::MAX` is [`MergeError::Overflow`]), symbol sets
/// unite. Every gap is reported ([`Gap`]: per replica as well as overall) and never bridged:
/// only the windows that start at or after the last gap's end count (a window straddling it
/// cannot be split, so it is left out, and any hole that leaves is a gap too). Expects one
/// replica's windows not to overlap each other ([`accept`] refuses those that do).
pub fn merge(files: &[RuntimeStatsArtifact]) -> Result<Merged, MergeError> {
    if files.is_empty() {
        return Err(MergeError::Empty);
    }
    let mut gaps = BTreeSet::new();
    let mut cutoff: Option<DateTime<Utc>> = None;
    // Each round moves the cutoff to the end of the newest gap found, which is a window's
    // start later than the cutoff before: the loop ends, with that window kept.
    let mut stretch = loop {
        let kept: Vec<&RuntimeStatsArtifact> = files
            .iter()
            .filter(|a| cutoff.is_none_or(|c| a.window_start >= c))
            .collect();
        let found = gaps_in(&kept);
        match found.iter().map(|g| g.to).max() {
            None => break kept,
            Some(to) => cutoff = Some(to),
        }
        gaps.extend(found);
    };
    stretch.sort_by_key(|a| (a.window_start, a.window_end));
    let mut counts = RuntimeCounts::default();
    let (mut latency, mut staleness) = (Histogram::default(), Histogram::default());
    let (mut seen, mut decided) = (BTreeSet::new(), BTreeSet::new());
    let mut source = StatsSource::DecisionService;
    let mut schema_versions = BTreeSet::new();
    let mut mergeable = true;
    for a in &stretch {
        let c = &a.counts;
        add(&mut counts.events, c.events, "events")?;
        add(&mut counts.decisions, c.decisions, "decisions")?;
        add(&mut counts.errors, c.errors, "errors")?;
        add(&mut counts.timeouts, c.timeouts, "timeouts")?;
        add(&mut counts.fallbacks, c.fallbacks, "fallbacks")?;
        add(&mut counts.halts, c.halts, "halts")?;
        add(&mut counts.suppressed, c.suppressed, "suppressed")?;
        add(
            &mut counts.duplicate_event_ids,
            c.duplicate_event_ids,
            "duplicate_event_ids",
        )?;
        add(
            &mut counts.canary_refusals,
            c.canary_refusals,
            "canary_refusals",
        )?;
        add(
            &mut counts.canary_reductions,
            c.canary_reductions,
            "canary_reductions",
        )?;
        add(&mut counts.null_events, c.null_events, "null_events")?;
        for (total, h, field) in [
            (&mut latency, &a.latency_ms, "latency_ms"),
            (&mut staleness, &a.staleness_ms, "staleness_ms"),
        ] {
            match total.merge(h) {
                Ok(()) => {}
                // Different buckets: no quantile over the whole.
                Err(HistogramMergeError::DifferentBuckets) => mergeable = false,
                Err(HistogramMergeError::Overflow) => return Err(MergeError::Overflow(field)),
            }
        }
        seen.extend(a.symbols_seen.iter().cloned());
        decided.extend(a.symbols_decided.iter().cloned());
        if a.source == StatsSource::Simulation {
            source = StatsSource::Simulation;
        }
        schema_versions.insert(a.feature_schema_version.clone());
    }
    let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
    let first = stretch.first().ok_or(MergeError::Empty)?;
    let end = stretch
        .iter()
        .map(|a| a.window_end)
        .max()
        .unwrap_or(first.window_end);
    let stats = RuntimeStats {
        stage: first.stage.clone(),
        window_start: first.window_start,
        window_end: end,
        // Every window written was closed: the stretch is complete up to its end.
        completed: true,
        decisions: counts.decisions,
        // Two feature schemas in one stretch is no one schema.
        feature_schema_version: (schema_versions.len() == 1)
            .then(|| schema_versions.into_iter().next())
            .flatten(),
        null_rate: ratio(counts.null_events, counts.events),
        staleness_p95_ms: mergeable.then(|| staleness.quantile(0.95)).flatten(),
        symbol_coverage: symbol_coverage(&seen, &decided),
        error_ratio: ratio(counts.errors, counts.decisions),
        fallback_ratio: ratio(counts.fallbacks, counts.decisions),
        latency_p95_ms: mergeable.then(|| latency.quantile(0.95)).flatten(),
        timeout_ratio: ratio(counts.timeouts, counts.decisions),
    };
    Ok(Merged {
        stats,
        source,
        files: stretch.len(),
        gaps: gaps.into_iter().collect(),
    })
}

/// The domain prefix of the statistics signature: what is signed and its version.
const SIGNATURE_DOMAIN: &[u8] = b"janus-runtime-stats-v1\n";

/// The bytes a statistics signature covers: [`SIGNATURE_DOMAIN`], then the RFC 8785 encoding
/// of the artifact without `manifest_hash` and with `signature` null.
fn signed_bytes(
    a: &RuntimeStatsArtifact,
) -> Result<Vec<u8>, crate::contracts::jcs::CanonicalError> {
    let mut unsigned = a.clone();
    unsigned.signature = None;
    let body = crate::contracts::jcs::to_canonical_vec(&unsigned, Some("manifest_hash"))?;
    Ok([SIGNATURE_DOMAIN, &body].concat())
}

/// Signs a closed window with the statistics key (before it is sealed: the manifest hash then
/// covers the signature too). Fails only on a value JSON cannot carry, which sealing would
/// refuse as well.
pub fn sign(
    a: &mut RuntimeStatsArtifact,
    key: &SigningKey,
) -> Result<(), crate::contracts::jcs::CanonicalError> {
    a.signature = Some(key.sign(&signed_bytes(a)?));
    Ok(())
}

/// Why a statistics file's signature does not make it the decision service's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "unsigned: `source: decision-service` counts only signed with the statistics key (a hand-written file, or a service run without --stats-key)"
    )]
    Unsigned,
    #[error(
        "the signature does not verify with the statistics key (another key, or the file was changed after it was signed)"
    )]
    Invalid,
    #[error("signed, but the operator has no --stats-key to verify the signature with")]
    NoKey,
}

/// Checks a statistics file's signature against the statistics key (current or previous). A
/// signature that is present must verify, whatever the source; an unsigned file is accepted
/// only as `simulation` (what a replay is, and counted only where the policy lets a simulation
/// stand in).
pub fn check_signature(
    a: &RuntimeStatsArtifact,
    key: Option<&SigningKey>,
) -> Result<(), SignatureError> {
    match (&a.signature, key) {
        (None, _) if a.source == StatsSource::Simulation => Ok(()),
        (None, _) => Err(SignatureError::Unsigned),
        (Some(_), None) => Err(SignatureError::NoKey),
        (Some(tag), Some(key)) => match signed_bytes(a) {
            Ok(bytes) if key.verifies(&bytes, tag) => Ok(()),
            _ => Err(SignatureError::Invalid),
        },
    }
}

/// Symbol coverage (gate0): of the symbols that could trade, the share the service decided (by
/// the model or the fallback, rather than halting or suppressing them); `None` when none could
/// trade. A symbol with no price row on the day (halted, not yet listed, a day outside the
/// data) could not trade and is in neither set: the market's halts never lower coverage. The
/// decision service cannot know the market's halts, so every symbol it sees counts as able to
/// trade; a replay that reads the price files (`janus paper`) passes only the symbols priced on
/// their event's first tradable day, keyed by symbol and day. Members of `decided` outside
/// `could_trade` are not counted.
pub fn symbol_coverage<T: Ord>(could_trade: &BTreeSet<T>, decided: &BTreeSet<T>) -> Option<f64> {
    let covered = could_trade.iter().filter(|s| decided.contains(s)).count();
    (!could_trade.is_empty()).then(|| covered as f64 / could_trade.len() as f64)
}

/// What statistics must have come from to count for a decision.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub candidate: &'a str,
    pub stage: &'a str,
    /// The candidate's model digest: statistics of another model say nothing about this one.
    pub model_sha256: &'a Sha256Hex,
    /// The request that must have been served (shadow → paper: this request in shadow);
    /// `None`: any request serving the candidate at the stage (paper → canary: the paper
    /// request).
    pub promotion_request: Option<&'a str>,
    /// The policy lets a simulation stand in.
    pub allow_simulation: bool,
    /// The statistics key that verifies the decision service's signatures (`None`: no
    /// `decision-service` file counts; see [`check_signature`]).
    pub key: Option<&'a SigningKey>,
}

/// Why one statistics file does not count for a decision.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The fail-closed artifact reader refused it (schema, lineage, content hash).
    #[error("does not verify: {0}")]
    Unverifiable(String),
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("is for candidate `{0}`")]
    OtherCandidate(String),
    #[error("is for stage {0}")]
    OtherStage(String),
    #[error("served model {served}, not the candidate's {wanted}")]
    OtherModel {
        served: Sha256Hex,
        wanted: Sha256Hex,
    },
    /// Another request's own shadow window: genuine, and not this request's.
    #[error("served request `{served}`, not `{wanted}`")]
    OtherRequest { served: String, wanted: String },
    #[error("is a simulation, which the policy does not accept for the {0} window")]
    Simulation(String),
    /// Dated later than the operator's clock allows ([`crate::identity::MAX_CLOCK_SKEW`]): a
    /// replica's clock running ahead, or a forged date. Counting it would make every genuine
    /// window before it look older than a gap.
    #[error("its window ends at {end}, after now ({now}) plus the allowed clock skew")]
    Future {
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// Numbers that contradict each other: no recorder writes them (an edited or forged file,
    /// or a bug in the recorder).
    #[error("impossible: {0}")]
    Inconsistent(#[from] Inconsistency),
    /// The same window under another name: counted once, as `of`.
    #[error("a copy of {of}, already counted")]
    Copy { of: String },
    /// One replica serves each instant once: a second window of the same replica over the
    /// same time is not its own (an edited copy, or two services under one replica name).
    #[error("overlaps {other}, a window of the same replica already counted")]
    Overlaps { other: String },
}

/// How one window's numbers contradict each other (the invariants [`Recorder::record`] keeps:
/// every event is a decision, a halt, a suppression or a duplicate; each non-duplicate event
/// has one latency and one staleness value; what is decided was seen).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    #[error("symbol `{0}` decided but never seen")]
    DecidedNotSeen(String),
    #[error(
        "{events} events, but decisions + halts + suppressed + duplicate_event_ids = {accounted}"
    )]
    EventsDoNotAddUp { events: u64, accounted: u128 },
    #[error("`{field}` {count} exceeds the {decisions} decisions")]
    MoreThanDecided {
        field: &'static str,
        count: u64,
        decisions: u64,
    },
    #[error("{null} null events among {answered} answered (non-duplicate) events")]
    MoreNullThanAnswered { null: u64, answered: u64 },
    #[error("`{field}` holds {total} values for {answered} answered (non-duplicate) events")]
    HistogramTotal {
        field: &'static str,
        total: u128,
        answered: u64,
    },
}

/// The first way `a`'s numbers contradict each other, if any.
pub fn inconsistency(a: &RuntimeStatsArtifact) -> Option<Inconsistency> {
    let seen: BTreeSet<&String> = a.symbols_seen.iter().collect();
    if let Some(s) = a.symbols_decided.iter().find(|s| !seen.contains(s)) {
        return Some(Inconsistency::DecidedNotSeen(s.clone()));
    }
    let c = &a.counts;
    let accounted = [c.decisions, c.halts, c.suppressed, c.duplicate_event_ids]
        .into_iter()
        .map(u128::from)
        .sum::<u128>();
    if accounted != u128::from(c.events) {
        return Some(Inconsistency::EventsDoNotAddUp {
            events: c.events,
            accounted,
        });
    }
    for (field, count) in [
        ("fallbacks", c.fallbacks),
        ("errors", c.errors),
        ("timeouts", c.timeouts),
        ("canary_refusals", c.canary_refusals),
        ("canary_reductions", c.canary_reductions),
    ] {
        if count > c.decisions {
            return Some(Inconsistency::MoreThanDecided {
                field,
                count,
                decisions: c.decisions,
            });
        }
    }
    // Cannot underflow: duplicates are part of the events just checked.
    let answered = c.events - c.duplicate_event_ids;
    if c.null_events > answered {
        return Some(Inconsistency::MoreNullThanAnswered {
            null: c.null_events,
            answered,
        });
    }
    for (field, h) in [
        ("latency_ms", &a.latency_ms),
        ("staleness_ms", &a.staleness_ms),
    ] {
        let total: u128 = h.counts.iter().map(|n| u128::from(*n)).sum();
        if total != u128::from(answered) {
            return Some(Inconsistency::HistogramTotal {
                field,
                total,
                answered,
            });
        }
    }
    None
}

impl Refusal {
    /// Whether the refusal says something about the file's provenance (unverifiable, badly
    /// signed, another candidate or model in this candidate's folder, a simulation the policy
    /// refuses), rather than being another request's genuine window.
    pub fn is_suspect(&self) -> bool {
        !matches!(self, Refusal::OtherRequest { .. })
    }
}

/// One refused file: its name and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub file: String,
    pub why: Refusal,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.why)
    }
}

/// Files read for a decision: the merge of those that count, and why each other one did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub merged: Option<Merged>,
    /// Every file refused (unverifiable, unsigned or badly signed, another request, stage or
    /// model, a simulation the policy does not accept, dated in the future, numbers that
    /// contradict each other ([`Inconsistency`]); then copies and
    /// windows overlapping one of the same replica already counted), in that order.
    pub refused: Vec<Refused>,
    /// Why the files that count could not be merged (counts that add up to the impossible);
    /// `merged` is then `None`.
    pub unmergeable: Option<MergeError>,
}

/// Keeps the files that verified (the caller read them with the fail-closed artifact reader),
/// carry a signature the statistics key verifies (or are an unsigned simulation, see
/// [`check_signature`]), come from serving `want` and end no later than `now` plus
/// [`crate::identity::MAX_CLOCK_SKEW`]; counts each window once (a copy, or a window of a
/// replica overlapping one of its own already kept, is refused: the earliest-starting is kept,
/// ties by name), and merges them (see [`merge`]).
pub fn accept(
    files: Vec<(String, Result<RuntimeStatsArtifact, String>)>,
    want: &Wanted<'_>,
    now: DateTime<Utc>,
) -> Accepted {
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for (file, read) in files {
        match read
            .map_err(Refusal::Unverifiable)
            .and_then(|a| refusal(&a, want, now).map_or(Ok(a), Err))
        {
            Ok(a) => kept.push((file, a)),
            Err(why) => refused.push(Refused { file, why }),
        }
    }
    kept.sort_by(|(f, a), (g, b)| {
        (&a.service.replica, a.window_start, a.window_end, f).cmp(&(
            &b.service.replica,
            b.window_start,
            b.window_end,
            g,
        ))
    });
    // Per replica: the window kept last (the latest ending so far) and its file.
    let mut once: Vec<(String, RuntimeStatsArtifact)> = Vec::with_capacity(kept.len());
    let mut last: Option<usize> = None;
    for (file, a) in kept {
        let previous = last.map(|i| &once[i]).filter(|(_, p)| {
            p.service.replica == a.service.replica && a.window_start < p.window_end
        });
        match previous {
            Some((of, p)) if *p == a => refused.push(Refused {
                file,
                why: Refusal::Copy { of: of.clone() },
            }),
            Some((other, _)) => refused.push(Refused {
                file,
                why: Refusal::Overlaps {
                    other: other.clone(),
                },
            }),
            None => {
                let same = last.is_some_and(|i| once[i].1.service.replica == a.service.replica);
                let later = last.is_none_or(|i| a.window_end > once[i].1.window_end);
                once.push((file, a));
                if !same || later {
                    last = Some(once.len() - 1);
                }
            }
        }
    }
    let windows: Vec<RuntimeStatsArtifact> = once.into_iter().map(|(_, a)| a).collect();
    let (merged, unmergeable) = match merge(&windows) {
        Ok(m) => (Some(m), None),
        Err(MergeError::Empty) => (None, None),
        Err(e) => (None, Some(e)),
    };
    Accepted {
        merged,
        refused,
        unmergeable,
    }
}

/// What a request's status says about refused files (`runtime statistics refused: <file>:
/// <why>`): the suspect ones ([`Refusal::is_suspect`]), at most `max`, then how many more.
pub fn refusal_notes(refused: &[Refused], max: usize) -> Vec<String> {
    let suspect: Vec<&Refused> = refused.iter().filter(|r| r.why.is_suspect()).collect();
    let mut notes: Vec<String> = suspect
        .iter()
        .take(max)
        .map(|r| format!("runtime statistics refused: {r}"))
        .collect();
    if suspect.len() > max {
        notes.push(format!(
            "runtime statistics refused: {} more files (the operator's log names each)",
            suspect.len() - max
        ));
    }
    notes
}

/// Why one verified file does not count for `want`; `None` when it does.
fn refusal(a: &RuntimeStatsArtifact, want: &Wanted<'_>, now: DateTime<Utc>) -> Option<Refusal> {
    if let Err(e) = check_signature(a, want.key) {
        return Some(e.into());
    }
    if a.candidate != want.candidate {
        return Some(Refusal::OtherCandidate(a.candidate.clone()));
    }
    if a.stage != want.stage {
        return Some(Refusal::OtherStage(a.stage.clone()));
    }
    if a.model_sha256 != *want.model_sha256 {
        return Some(Refusal::OtherModel {
            served: a.model_sha256.clone(),
            wanted: want.model_sha256.clone(),
        });
    }
    if let Some(r) = want.promotion_request.filter(|r| *r != a.promotion_request) {
        return Some(Refusal::OtherRequest {
            served: a.promotion_request.clone(),
            wanted: r.to_string(),
        });
    }
    if a.source == StatsSource::Simulation && !want.allow_simulation {
        return Some(Refusal::Simulation(want.stage.to_string()));
    }
    if a.window_end > now + crate::identity::MAX_CLOCK_SKEW {
        return Some(Refusal::Future {
            end: a.window_end,
            now,
        });
    }
    inconsistency(a).map(Refusal::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }
    fn served(stage: &str) -> Served {
        Served {
            promotion_request: "p1".into(),
            candidate: "c1".into(),
            stage: stage.into(),
            model_sha256: Sha256Hex::of_bytes(b"model"),
            config_hash: Sha256Hex::of_bytes(stage.as_bytes()),
        }
    }
    fn obs<'a>(id: &'a str, symbol: &'a str, source: Source, reason: &'a str) -> Observation<'a> {
        Observation {
            event_id: id,
            repeat: false,
            symbol,
            null: false,
            source,
            reason,
            latency_ms: 3.0,
            staleness_ms: 700.0,
        }
    }
    fn recorder() -> Recorder {
        Recorder::new(
            StatsSource::DecisionService,
            ServiceIdentity {
                replica: "r1".into(),
                namespace: None,
                service_account: None,
            },
        )
    }

    #[test]
    fn quantiles_are_bucket_upper_edges() {
        // 1..=100 ms: 50 values ≤ 50 (the 50th lands in the (20, 50] bucket), 95th and 99th in
        // (50, 100]; counted by hand from BUCKET_BOUNDS_MS.
        let mut h = Histogram::default();
        (1..=100).for_each(|v| h.record(v as f64));
        assert_eq!(h.quantile(0.5), Some(50.0));
        assert_eq!(h.quantile(0.95), Some(100.0));
        assert_eq!(h.quantile(0.99), Some(100.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
        h.record(f64::NAN);
        h.record(-1.0);
        assert_eq!(h.counts.last(), Some(&2), "never reported as fast");
        let mut other = Histogram::default();
        other.bounds_ms.pop();
        assert_eq!(
            h.merge(&other),
            Err(HistogramMergeError::DifferentBuckets),
            "different buckets do not merge"
        );
    }

    #[test]
    fn every_event_is_counted_once_in_contiguous_windows() {
        let mut r = recorder();
        let s = served("shadow");
        assert!(r.serving(&s, at(0)).is_none());
        r.record(&s, &obs("a", "X", Source::Model, "shadow"), at(1));
        r.record(
            &s,
            &obs("b", "Y", Source::Fallback, "inference_timeout"),
            at(2),
        );
        let repeat = Observation {
            repeat: true,
            ..obs("a", "X", Source::Model, "shadow")
        };
        r.record(&s, &repeat, at(3));
        r.record(&s, &obs("c", "Z", Source::Halted, "kill_switch"), at(4));
        let first = r.close(at(10)).unwrap();
        assert_eq!((first.window_start, first.window_end), (at(0), at(10)));
        let c = &first.counts;
        // The repeat is an event and a duplicate, not a second decision.
        assert_eq!((c.events, c.decisions, c.halts), (4, 2, 1));
        assert_eq!((c.timeouts, c.fallbacks, c.duplicate_event_ids), (1, 1, 1));
        assert_eq!(first.symbols_seen, ["X", "Y", "Z"]);
        assert_eq!(first.symbols_decided, ["X", "Y"]);
        // The next window starts where the last ended and holds only what came after.
        r.record(
            &s,
            &obs("d", "X", Source::Model, "max_gross_notional_reduced"),
            at(11),
        );
        // What is served changes: the shadow window closes there, a paper one starts.
        let paper = served("paper");
        let second = r
            .record(&paper, &obs("e", "X", Source::Model, "ok"), at(12))
            .unwrap();
        assert_eq!((second.window_start, second.window_end), (at(10), at(12)));
        assert_eq!(
            (second.counts.events, second.counts.canary_reductions),
            (1, 1)
        );
        let third = r.close(at(20)).unwrap();
        assert_eq!((third.stage.as_str(), third.counts.events), ("paper", 1));
        assert_eq!(third.window_start, at(12));
        // An empty instant writes nothing.
        assert!(r.close(at(20)).is_none());
        // Stopped (no usable configuration) at 30 and serving again at 50: [30, 50) is in no
        // window.
        assert_eq!(r.stop(at(30)).map(|a| a.window_start), Some(at(20)));
        assert!(r.close(at(40)).is_none(), "nothing served, nothing written");
        assert!(r.serving(&paper, at(50)).is_none());
        assert_eq!(r.close(at(60)).map(|a| a.window_start), Some(at(50)));
    }

    #[test]
    fn merging_adds_counts_and_reports_gaps_without_bridging_them() {
        let mut r1 = recorder();
        let s = served("shadow");
        let mut files = Vec::new();
        r1.serving(&s, at(0));
        r1.record(&s, &obs("a", "X", Source::Model, "shadow"), at(1));
        files.push(r1.close(at(100)).unwrap());
        r1.record(&s, &obs("b", "Y", Source::Model, "shadow"), at(101));
        files.push(r1.close(at(200)).unwrap());
        // A second replica, overlapping: merged, not a gap.
        let mut r2 = recorder();
        r2.serving(&s, at(50));
        r2.record(
            &s,
            &obs("c", "Y", Source::Fallback, "inference_error"),
            at(60),
        );
        files.push(r2.close(at(150)).unwrap());
        let m = merge(&files).unwrap();
        assert!(m.gaps.is_empty());
        assert_eq!((m.stats.window_start, m.stats.window_end), (at(0), at(200)));
        assert_eq!(m.stats.decisions, 3);
        assert_eq!(m.stats.error_ratio, Some(1.0 / 3.0));
        assert_eq!(m.stats.fallback_ratio, Some(1.0 / 3.0));
        assert_eq!(m.stats.symbol_coverage, Some(1.0));
        assert_eq!(m.stats.latency_p95_ms, Some(5.0), "3 ms lies in (2, 5]");
        assert_eq!(
            m.stats.staleness_p95_ms,
            Some(1000.0),
            "700 ms lies in (500, 1000]"
        );
        assert!(m.stats.invalid_fields().is_empty());
        // A window lost (killed before its flush): a gap, and only what follows it counts.
        r1.record(&s, &obs("d", "Z", Source::Model, "shadow"), at(201));
        r1.close(at(300)).unwrap(); // never written
        r1.record(&s, &obs("e", "Z", Source::Model, "shadow"), at(301));
        files.push(r1.close(at(400)).unwrap());
        let m = merge(&files).unwrap();
        assert_eq!(
            m.gaps,
            [Gap {
                from: at(200),
                to: at(300)
            }]
        );
        assert_eq!(
            (m.stats.window_start, m.stats.decisions, m.files),
            (at(300), 1, 1)
        );
    }

    #[test]
    fn only_verified_statistics_of_the_request_stage_and_model_count() {
        let key = SigningKey::new(b"statistics-key-0123456789").unwrap();
        let signed = |mut a: RuntimeStatsArtifact| {
            sign(&mut a, &key).unwrap();
            a
        };
        let mut r = recorder();
        let s = served("shadow");
        r.record(&s, &obs("a", "X", Source::Model, "shadow"), at(1));
        let unsigned = r.close(at(10)).unwrap();
        let good = signed(unsigned.clone());
        let mut sim = unsigned.clone();
        sim.source = StatsSource::Simulation;
        // Another replica's: the same replica's window over the same time counts once.
        sim.service.replica = "r2".into();
        let mut other_model = unsigned.clone();
        other_model.model_sha256 = Sha256Hex::of_bytes(b"other");
        let mut other_request = unsigned.clone();
        other_request.promotion_request = "p2".into();
        let model = Sha256Hex::of_bytes(b"model");
        let want = Wanted {
            candidate: "c1",
            stage: "shadow",
            model_sha256: &model,
            promotion_request: Some("p1"),
            allow_simulation: false,
            key: Some(&key),
        };
        let files = || {
            vec![
                ("good".to_string(), Ok(good.clone())),
                ("sim".to_string(), Ok(sim.clone())),
                ("model".to_string(), Ok(signed(other_model.clone()))),
                ("request".to_string(), Ok(signed(other_request.clone()))),
                (
                    "edited".to_string(),
                    Err("changed after it was sealed".to_string()),
                ),
                ("unsigned".to_string(), Ok(unsigned.clone())),
            ]
        };
        let a = accept(files(), &want, at(3600));
        assert_eq!(a.merged.as_ref().unwrap().files, 1);
        let refused: Vec<&str> = a.refused.iter().map(|r| r.file.as_str()).collect();
        assert_eq!(refused, ["sim", "model", "request", "edited", "unsigned"]);
        assert_eq!(a.refused[0].why, Refusal::Simulation("shadow".into()));
        assert!(matches!(a.refused[2].why, Refusal::OtherRequest { .. }));
        assert!(!a.refused[2].why.is_suspect() && a.refused[1].why.is_suspect());
        assert_eq!(
            a.refused[4].why,
            Refusal::Signature(SignatureError::Unsigned)
        );
        assert!(a.refused[4].to_string().starts_with("unsigned: unsigned"));
        let a = accept(
            files(),
            &Wanted {
                allow_simulation: true,
                ..want
            },
            at(3600),
        );
        let m = a.merged.unwrap();
        assert_eq!((m.files, m.source), (2, StatsSource::Simulation));
        // Without the key nothing the decision service signed counts.
        // Suspect here: model, edited, unsigned (the simulation was accepted; another
        // request's window is never suspect); two named, then a count.
        let notes = refusal_notes(&a.refused, 2);
        assert_eq!(
            notes,
            [
                format!(
                    "runtime statistics refused: model: served model {}, not the candidate's {model}",
                    Sha256Hex::of_bytes(b"other")
                ),
                "runtime statistics refused: edited: does not verify: changed after it was sealed"
                    .to_string(),
                "runtime statistics refused: 1 more files (the operator's log names each)"
                    .to_string(),
            ]
        );
        let a = accept(files(), &Wanted { key: None, ..want }, at(3600));
        assert!(a.merged.is_none());
        assert_eq!(a.refused[0].why, Refusal::Signature(SignatureError::NoKey));
    }

    #[test]
    fn a_signature_binds_every_field_to_the_key() {
        let key = SigningKey::new(b"statistics-key-0123456789").unwrap();
        let mut r = recorder();
        let s = served("paper");
        r.record(&s, &obs("a", "X", Source::Model, "ok"), at(1));
        let mut a = r.close(at(10)).unwrap();
        assert_eq!(
            check_signature(&a, Some(&key)),
            Err(SignatureError::Unsigned)
        );
        sign(&mut a, &key).unwrap();
        assert_eq!(check_signature(&a, Some(&key)), Ok(()));
        // Sealing afterwards (the manifest hash) leaves the signature valid.
        let mut sealed = a.clone();
        crate::contracts::seal(&mut sealed).unwrap();
        assert_eq!(check_signature(&sealed, Some(&key)), Ok(()));
        // Stretched to a 72 h window, or one decision more: no longer the service's.
        let mut stretched = a.clone();
        stretched.window_start = at(-72 * 3600);
        assert_eq!(
            check_signature(&stretched, Some(&key)),
            Err(SignatureError::Invalid)
        );
        let mut more = a.clone();
        more.counts.decisions += 1;
        assert_eq!(
            check_signature(&more, Some(&key)),
            Err(SignatureError::Invalid)
        );
        // Relabelled a simulation, a signature still has to verify.
        let mut relabelled = a.clone();
        relabelled.source = StatsSource::Simulation;
        assert_eq!(
            check_signature(&relabelled, Some(&key)),
            Err(SignatureError::Invalid)
        );
        // Another key does not verify; after a rotation the previous key still does.
        let other = SigningKey::new(b"another-key-0123456789").unwrap();
        assert_eq!(
            check_signature(&a, Some(&other)),
            Err(SignatureError::Invalid)
        );
        let rotated = SigningKey::new(b"the-next-key-0123456789")
            .unwrap()
            .with_previous([key.clone()]);
        assert_eq!(check_signature(&a, Some(&rotated)), Ok(()));
        assert_eq!(check_signature(&a, None), Err(SignatureError::NoKey));
        // A garbled tag is refused, never a panic.
        a.signature = Some("zz".into());
        assert_eq!(
            check_signature(&a, Some(&key)),
            Err(SignatureError::Invalid)
        );
    }
}
