//! Lineage enforced, not only recorded: whether an artifact agrees with itself (its summary
//! with the records it summarizes, its recorded configuration with its `run_config_hash`) and
//! with the parents a reader was given (each recorded parent's manifest hash, and every count
//! the artifact copied from a parent).
//!
//! One function per artifact kind ([`event_car`], [`reward`], [`evidence`]), reached through
//! [`Artifact::mismatches`]: the fail-closed reader (`verify_value`, so `janus verify` and every
//! consumer of `read_artifact`) calls it with no parents; a reader that holds the parents
//! (`janus evaluate`, `janus verify` on a chain of files, `janus gates --event-car --rewards`,
//! the operator's evidence reader) calls it through [`check`] with them. Nothing here trusts a
//! count the records can give: it is recounted with the very function the writer used
//! ([`EventCarSummary::of`], [`RewardSummary::of`]).

use super::artifact::{Artifact, ArtifactKind, ContractError};
use super::event_car::{EventCarArtifact, EventCarSummary};
use super::evidence::EvidenceArtifact;
use super::hash::canonical_hash;
use super::lineage::ArtifactRef;
use super::reward::{HgrmRewardArtifact, RewardSummary};
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// A field whose recorded value is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field as the file spells it: `summary.events`, `lineage.run_config_hash`,
    /// `lineage.parents[0].manifest_hash`, `records[12].unlabelled_reason`.
    pub field: String,
    /// The value the artifact records (JSON text).
    pub recorded: String,
    /// The value it should have, and where that comes from (recounted from the records,
    /// recomputed, or read from a parent file).
    pub actual: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "field `{}`: recorded {}, actual {}",
            self.field, self.recorded, self.actual
        )
    }
}

/// A parent artifact a reader holds, and the file it came from (named in mismatches).
#[derive(Debug)]
pub struct Parent<'a, T> {
    pub path: &'a Path,
    pub artifact: &'a T,
}

// Two references: copied whatever `T` is (a derive would ask `T: Copy`).
impl<T> Clone for Parent<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Parent<'_, T> {}

/// The parents a reader was given; `None` = not given, so not checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Given<'a> {
    pub event_car: Option<Parent<'a, EventCarArtifact>>,
    pub rewards: Option<Parent<'a, HgrmRewardArtifact>>,
}

/// Checks `artifact` (read from `path`) against itself and the parents given; the error names
/// the file and every field that disagrees with its recorded and actual value.
pub fn check<T: Artifact>(
    path: &Path,
    artifact: &T,
    given: &Given<'_>,
) -> Result<(), ContractError> {
    let mismatches = artifact.mismatches(given);
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(ContractError::Mismatch {
            path: path.to_path_buf(),
            mismatches,
        })
    }
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<unserializable: {e}>"))
}

/// Pushes a mismatch when the recorded and recounted values differ.
fn compare<T: Serialize + PartialEq + ?Sized>(
    out: &mut Vec<Mismatch>,
    field: &str,
    recorded: &T,
    actual: &T,
    source: &str,
) {
    if recorded != actual {
        out.push(Mismatch {
            field: field.to_string(),
            recorded: json(recorded),
            actual: format!("{} ({source})", json(actual)),
        });
    }
}

/// The recorded parent of `kind` must be the artifact given (by manifest hash), and there must
/// be exactly one of that kind.
fn parent_is<T: Artifact>(out: &mut Vec<Mismatch>, parents: &[ArtifactRef], given: Parent<'_, T>) {
    let of_kind: Vec<(usize, &ArtifactRef)> = parents
        .iter()
        .enumerate()
        .filter(|(_, r)| ArtifactKind::for_version(&r.schema_version) == Some(T::KIND))
        .collect();
    let actual = format!(
        "{} (manifest_hash of {})",
        given.artifact.manifest_hash(),
        given.path.display()
    );
    match of_kind.as_slice() {
        [(i, r)] => {
            if &r.manifest_hash != given.artifact.manifest_hash() {
                out.push(Mismatch {
                    field: format!("lineage.parents[{i}].manifest_hash"),
                    recorded: r.manifest_hash.to_string(),
                    actual,
                });
            }
        }
        refs => out.push(Mismatch {
            field: "lineage.parents".into(),
            recorded: format!("{} {} references", refs.len(), T::KIND.family()),
            actual: format!("one: {actual}"),
        }),
    }
}

/// `janus-event-car-v1`: each record has a label or a reason (never both, never neither) and
/// the label's type is the record's; the summary is the recount of the records (`bad_rows`
/// excepted: input rows are not in the artifact).
pub fn event_car(a: &EventCarArtifact) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (i, r) in a.records.iter().enumerate() {
        match (&r.label, r.unlabelled_reason) {
            (Some(_), Some(reason)) => out.push(Mismatch {
                field: format!("records[{i}].unlabelled_reason"),
                recorded: json(&reason),
                actual: "null (the record has a label)".into(),
            }),
            (None, None) => out.push(Mismatch {
                field: format!("records[{i}].unlabelled_reason"),
                recorded: "null".into(),
                actual: "a reason (the record has no label)".into(),
            }),
            _ => {}
        }
        if let Some(l) = r.label.as_ref().filter(|l| l.event_type != r.event_type) {
            out.push(Mismatch {
                field: format!("records[{i}].label.event_type"),
                recorded: json(&l.event_type),
                actual: format!("{} (the record's event_type)", json(&r.event_type)),
            });
        }
    }
    let s = &a.summary;
    let n = EventCarSummary::of(&a.records, &s.bad_rows);
    let from = "recounted from records";
    compare(&mut out, "summary.events", &s.events, &n.events, from);
    compare(&mut out, "summary.labelled", &s.labelled, &n.labelled, from);
    compare(
        &mut out,
        "summary.by_event_type",
        &s.by_event_type,
        &n.by_event_type,
        from,
    );
    compare(
        &mut out,
        "summary.unlabelled_by_reason",
        &s.unlabelled_by_reason,
        &n.unlabelled_by_reason,
        from,
    );
    compare(
        &mut out,
        "summary.unknown_event_types",
        &s.unknown_event_types,
        &n.unknown_event_types,
        from,
    );
    compare(
        &mut out,
        "summary.mean_car_by_type",
        &s.mean_car_by_type,
        &n.mean_car_by_type,
        from,
    );
    out
}

/// `janus-hgrm-reward-v1`: `lineage.run_config_hash` is the canonical hash of `config`; the
/// summary is the recount of the records (`unscored_by_reason` excepted: unscored lines are not
/// in the artifact); exactly one event-car parent. Given the event-car: it is that parent, and
/// every record scores one of its labelled events.
pub fn reward(a: &HgrmRewardArtifact, given: &Given<'_>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    match canonical_hash(&a.config) {
        Ok(h) => compare(
            &mut out,
            "lineage.run_config_hash",
            &a.lineage.run_config_hash,
            &h,
            "canonical hash of `config`",
        ),
        Err(e) => out.push(Mismatch {
            field: "config".into(),
            recorded: "a configuration".into(),
            actual: format!("one that cannot be hashed: {e}"),
        }),
    }
    let s = &a.summary;
    let n = RewardSummary::of(&a.records, &s.unscored_by_reason);
    let from = "recounted from records";
    compare(&mut out, "summary.samples", &s.samples, &n.samples, from);
    compare(
        &mut out,
        "summary.format_failures",
        &s.format_failures,
        &n.format_failures,
        from,
    );
    compare(
        &mut out,
        "summary.hard_gate_failures",
        &s.hard_gate_failures,
        &n.hard_gate_failures,
        from,
    );
    compare(&mut out, "summary.clipped", &s.clipped, &n.clipped, from);
    compare(
        &mut out,
        "summary.direction_gate_pass_ratio",
        &s.direction_gate_pass_ratio,
        &n.direction_gate_pass_ratio,
        from,
    );
    compare(
        &mut out,
        "summary.type_match_ratio",
        &s.type_match_ratio,
        &n.type_match_ratio,
        from,
    );
    compare(
        &mut out,
        "summary.mean_final_reward",
        &s.mean_final_reward,
        &n.mean_final_reward,
        from,
    );
    compare(
        &mut out,
        "summary.mean_pnl_reward",
        &s.mean_pnl_reward,
        &n.mean_pnl_reward,
        from,
    );
    match given.event_car {
        Some(car) => {
            parent_is(&mut out, &a.lineage.parents, car);
            let labelled: HashSet<&str> = car
                .artifact
                .records
                .iter()
                .filter(|r| r.label.is_some())
                .map(|r| r.event_id.as_str())
                .collect();
            if let Some((i, r)) = a
                .records
                .iter()
                .enumerate()
                .find(|(_, r)| !labelled.contains(r.event_id.as_str()))
            {
                out.push(Mismatch {
                    field: format!("records[{i}].event_id"),
                    recorded: json(&r.event_id),
                    actual: format!("no labelled event of {}", car.path.display()),
                });
            }
        }
        None => {
            let n = a
                .lineage
                .parents
                .iter()
                .filter(|r| {
                    ArtifactKind::for_version(&r.schema_version) == Some(ArtifactKind::EventCar)
                })
                .count();
            if n != 1 {
                out.push(Mismatch {
                    field: "lineage.parents".into(),
                    recorded: format!("{n} janus-event-car references"),
                    actual: "one (the labels the rewards were scored against)".into(),
                });
            }
        }
    }
    out
}

/// `janus-q-evidence-v1`: `summary.complete` exactly when nothing is missing; `artifacts` are
/// the lineage's parents; no more labelled events than events. Given the event-car: it is the
/// recorded parent and `counts.events`, `counts.labelled_events` are its summary's. Given the
/// rewards: they are the recorded parent and `counts.rewards` is their `summary.samples`.
pub fn evidence(a: &EvidenceArtifact, given: &Given<'_>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    compare(
        &mut out,
        "summary.complete",
        &a.summary.complete,
        &a.summary.missing.is_empty(),
        "whether summary.missing is empty",
    );
    compare(
        &mut out,
        "artifacts",
        &a.artifacts,
        &a.lineage.parents,
        "lineage.parents",
    );
    if a.counts.labelled_events > a.counts.events {
        out.push(Mismatch {
            field: "counts.labelled_events".into(),
            recorded: a.counts.labelled_events.to_string(),
            actual: format!("at most counts.events, {}", a.counts.events),
        });
    }
    if let Some(car) = given.event_car {
        parent_is(&mut out, &a.lineage.parents, car);
        let s = &car.artifact.summary;
        let from = format!("summary of {}", car.path.display());
        compare(
            &mut out,
            "counts.events",
            &a.counts.events,
            &s.events,
            &from,
        );
        compare(
            &mut out,
            "counts.labelled_events",
            &a.counts.labelled_events,
            &s.labelled,
            &from,
        );
    }
    if let Some(r) = given.rewards {
        parent_is(&mut out, &a.lineage.parents, r);
        compare(
            &mut out,
            "counts.rewards",
            &a.counts.rewards,
            &r.artifact.summary.samples,
            &format!("summary.samples of {}", r.path.display()),
        );
    }
    out
}

/// Reads evidence with the parents a reader holds (`janus gates --event-car --rewards`, the
/// operator's reader of a run's evidence): each is read and verified alone, the rewards are
/// checked against the event-car, and the evidence against both. An error names the file and
/// the field; a missing or unparsable parent is [`ContractError::is_unreadable`].
pub fn read_evidence_with_parents(
    evidence: &Path,
    event_car: Option<&Path>,
    rewards: Option<&Path>,
) -> Result<EvidenceArtifact, ContractError> {
    let e: EvidenceArtifact = super::read_artifact(evidence)?;
    let car: Option<EventCarArtifact> = event_car.map(super::read_artifact).transpose()?;
    let r: Option<HgrmRewardArtifact> = rewards.map(super::read_artifact).transpose()?;
    let car = car
        .as_ref()
        .zip(event_car)
        .map(|(artifact, path)| Parent { path, artifact });
    let r = r
        .as_ref()
        .zip(rewards)
        .map(|(artifact, path)| Parent { path, artifact });
    if let Some(r) = r {
        let given = Given {
            event_car: car,
            rewards: None,
        };
        check(r.path, r.artifact, &given)?;
    }
    let given = Given {
        event_car: car,
        rewards: r,
    };
    check(evidence, &e, &given)?;
    Ok(e)
}
