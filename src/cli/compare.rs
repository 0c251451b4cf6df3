use super::CliResult;
use crate::cli::output::outln;
use crate::contracts::evidence::EvidenceArtifact;
use crate::contracts::read_artifact;
use crate::evaluation::replay::compare;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Evidence of the original evaluation.
    pub first: PathBuf,
    /// Evidence of the replay.
    pub second: PathBuf,
    /// Largest absolute difference allowed in any metric or delta.
    #[arg(long, default_value_t = 1e-9)]
    pub tolerance: f64,
}

/// Compares two evaluations; exit 0 when they match, 1 with every difference otherwise.
pub fn run(args: CompareArgs) -> CliResult {
    let a: EvidenceArtifact = read_artifact(&args.first)?;
    let b: EvidenceArtifact = read_artifact(&args.second)?;
    let verdict = compare(&a, &b, args.tolerance);
    super::termination_message(
        &serde_json::json!({
            "step": "replay",
            "matched": verdict.matched,
            "evidence_manifest_hash": b.manifest_hash,
        })
        .to_string(),
    );
    outln!(
        "{}",
        serde_json::to_string_pretty(&verdict).expect("serializes")
    );
    Ok(if verdict.matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
