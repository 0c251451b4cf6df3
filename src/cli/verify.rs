use super::CliResult;
use crate::cli::output::{errln, outln};
use crate::contracts::consistency::{self, Given, Parent};
use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::evidence::EvidenceArtifact;
use crate::contracts::reward::HgrmRewardArtifact;
use crate::contracts::{Artifact, ArtifactKind, ContractError, Verified, verify_bytes};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Artifact files to verify. Given together, an artifact and its parents (event-car,
    /// rewards, evidence) are also checked as a chain: each recorded parent must be the file
    /// given, and each count copied from a parent must be the parent's.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// The files of one kind that verified on their own, typed.
struct Chain<'a> {
    event_cars: Vec<(&'a Path, EventCarArtifact)>,
    rewards: Vec<(&'a Path, HgrmRewardArtifact)>,
}

/// The parent of kind `T` given for `child`: the file whose manifest hash the child records,
/// else the first given (which then fails the check, naming both); `None` when none was given
/// or the child records no parent of that kind (an SFT model's evidence has no rewards).
fn pick<'a, T: Artifact>(
    child: &impl Artifact,
    files: &'a [(&'a Path, T)],
) -> Option<Parent<'a, T>> {
    let records_kind = child
        .lineage()
        .parents
        .iter()
        .any(|r| ArtifactKind::for_version(&r.schema_version) == Some(T::KIND));
    if !records_kind {
        return None;
    }
    let recorded = |a: &T| {
        child
            .lineage()
            .parents
            .iter()
            .any(|r| &r.manifest_hash == a.manifest_hash())
    };
    files
        .iter()
        .find(|(_, a)| recorded(a))
        .or(files.first())
        .map(|(path, artifact)| Parent { path, artifact })
}

impl Chain<'_> {
    /// Checks a verified artifact against the parents among the files given.
    fn check(&self, path: &Path, v: &Verified) -> Result<(), ContractError> {
        let typed = |e: serde_json::Error| ContractError::Field {
            path: path.to_path_buf(),
            field: String::new(),
            version: v.schema_version.clone(),
            message: e.to_string(),
        };
        match v.kind {
            ArtifactKind::HgrmReward => {
                let r: HgrmRewardArtifact =
                    serde_json::from_value(v.value.clone()).map_err(typed)?;
                let given = Given {
                    event_car: pick(&r, &self.event_cars),
                    rewards: None,
                };
                consistency::check(path, &r, &given)
            }
            ArtifactKind::Evidence => {
                let e: EvidenceArtifact = serde_json::from_value(v.value.clone()).map_err(typed)?;
                let given = Given {
                    event_car: pick(&e, &self.event_cars),
                    rewards: pick(&e, &self.rewards),
                };
                consistency::check(path, &e, &given)
            }
            ArtifactKind::EventCar | ArtifactKind::RuntimeStats => Ok(()),
        }
    }
}

pub fn run(args: VerifyArgs) -> CliResult {
    let (mut failed, mut unreadable) = (0usize, 0usize);
    // Each file alone first: read, parse, schema, seal, and agreement with itself.
    let mut outcomes: Vec<(&Path, Result<Verified, String>)> = Vec::new();
    for path in &args.files {
        let outcome = std::fs::read(path)
            .map_err(|e| {
                unreadable += 1;
                format!("{}: cannot read: {e}", path.display())
            })
            .and_then(|bytes| {
                verify_bytes(path, &bytes).map_err(|e| {
                    unreadable += usize::from(e.is_unreadable());
                    e.to_string()
                })
            });
        outcomes.push((path, outcome));
    }
    // Then the chain: the parents among the files that verified.
    let typed = |kind: ArtifactKind| {
        outcomes.iter().filter_map(move |(p, o)| {
            o.as_ref()
                .ok()
                .filter(|v| v.kind == kind)
                .map(|v| (*p, v.value.clone()))
        })
    };
    let chain = Chain {
        event_cars: typed(ArtifactKind::EventCar)
            .filter_map(|(p, v)| Some((p, serde_json::from_value(v).ok()?)))
            .collect(),
        rewards: typed(ArtifactKind::HgrmReward)
            .filter_map(|(p, v)| Some((p, serde_json::from_value(v).ok()?)))
            .collect(),
    };
    for (path, outcome) in &outcomes {
        let outcome = outcome.as_ref().map_err(Clone::clone).and_then(|v| {
            chain.check(path, v).map_err(|e| e.to_string())?;
            Ok(v)
        });
        match outcome {
            Ok(v) => outln!(
                "OK      {} ({}, manifest_hash {})",
                path.display(),
                v.schema_version,
                v.manifest_hash
            ),
            Err(message) => {
                failed += 1;
                outln!("FAILED  {message}");
            }
        }
    }
    if failed > 0 {
        errln!(
            "janus verify: {failed} of {} artifacts failed",
            args.files.len()
        );
        // A file that cannot be read or parsed is a usage error (2); one that parses but fails
        // verification (its hash, its lineage, its summary, its parents) is a failed check (1).
        Ok(ExitCode::from(if unreadable > 0 { 2 } else { 1 }))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
