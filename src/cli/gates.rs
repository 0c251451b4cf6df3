use super::{CliError, CliResult};
use crate::cli::output::outln;
use crate::contracts::consistency::read_evidence_with_parents;
use crate::contracts::evidence::EvidenceArtifact;
use crate::gates::policy::GatePolicy;
use crate::gates::{Approval, GateInputs, GateStatus, Operations, RuntimeStats, Target, evaluate};
use chrono::{DateTime, Utc};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct GatesArgs {
    /// The candidate's evidence (janus-q-evidence-v1).
    #[arg(long)]
    pub evidence: PathBuf,
    /// The labels the evidence was computed from (janus-event-car-v1): when given, it must be
    /// the evidence's recorded parent and its counts the evidence's, or the gates are blocked.
    #[arg(long)]
    pub event_car: Option<PathBuf>,
    /// The rewards the evidence was computed from (janus-hgrm-reward-v1): when given, they
    /// must be the evidence's recorded parent (and scored on --event-car's labels).
    #[arg(long)]
    pub rewards: Option<PathBuf>,
    /// Gate policy (config/gate-policy.json); the built-in defaults when omitted.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub target: TargetArg,
    /// Shadow or paper runtime statistics (JSON).
    #[arg(long)]
    pub runtime_stats: Option<PathBuf>,
    /// Operations record: runbook validation and drill times (JSON).
    #[arg(long)]
    pub operations: Option<PathBuf>,
    /// The human who approved (canary).
    #[arg(long)]
    pub approved_by: Option<String>,
    /// The approval token (canary).
    #[arg(long)]
    pub approval_token: Option<String>,
    /// Reference to a recalibration plan (needed when gate7 degrades or abstains).
    #[arg(long)]
    pub recalibration_ref: Option<String>,
    /// Evaluate as of this time (RFC 3339) instead of now.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TargetArg {
    Paper,
    Canary,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CliError> {
    let bytes = std::fs::read(path).map_err(|source| CliError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes)).map_err(
        |e| {
            CliError::Usage(format!(
                "{}: field `{}`: {}",
                path.display(),
                e.path(),
                e.inner()
            ))
        },
    )
}

pub fn load_policy(path: Option<&Path>) -> Result<GatePolicy, CliError> {
    Ok(match path {
        Some(p) => crate::config::load(p)?,
        None => GatePolicy::default(),
    })
}

pub fn run(args: GatesArgs) -> CliResult {
    let policy = load_policy(args.policy.as_deref())?;
    // Evidence (or a parent given) that cannot be read or parsed is a usage error (exit 2): it
    // says nothing about the candidate. Evidence that parses but fails verification (tampered:
    // its manifest hash does not match; its summary or a parent disagrees) is a gate failure
    // with its reason (BLOCKED, exit 1).
    let read = read_evidence_with_parents(
        &args.evidence,
        args.event_car.as_deref(),
        args.rewards.as_deref(),
    );
    let evidence: Result<EvidenceArtifact, String> = match read {
        Ok(e) => Ok(e),
        Err(e) if e.is_unreadable() => return Err(e.into()),
        Err(e) => Err(e.to_string()),
    };
    let runtime: Option<RuntimeStats> = args.runtime_stats.as_deref().map(read_json).transpose()?;
    let operations: Option<Operations> = args.operations.as_deref().map(read_json).transpose()?;
    let approval = match (&args.approved_by, &args.approval_token) {
        (None, None) => None,
        (by, token) => Some(Approval {
            approved_by: by.clone().unwrap_or_default(),
            token: token.clone().unwrap_or_default(),
        }),
    };
    let target = match args.target {
        TargetArg::Paper => Target::Paper,
        TargetArg::Canary => Target::Canary,
    };
    let decision = evaluate(
        target,
        &GateInputs {
            evidence: evidence.as_ref().map_err(Clone::clone),
            runtime: runtime.as_ref().ok_or("none given (--runtime-stats)"),
            operations: operations.as_ref(),
            approval: approval.as_ref(),
            recalibration_ref: args.recalibration_ref.as_deref(),
            now: args.now.unwrap_or_else(Utc::now),
        },
        &policy,
    );
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&decision).expect("serializes")
        );
    } else {
        outln!(
            "target {:?}: {}",
            target,
            if decision.allowed {
                "ALLOWED"
            } else {
                "BLOCKED"
            }
        );
        for g in &decision.gates {
            let status = serde_json::to_value(g.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            outln!("  {:<6} {:<24} {status}", g.id, g.name);
            if g.status != GateStatus::Pass {
                for r in &g.reasons {
                    outln!("           - {} ({})", r.message, r.code);
                }
            }
        }
        if !decision.missing.is_empty() {
            outln!("  missing: {}", decision.missing.join(", "));
        }
        outln!("  policy {}", decision.policy_hash);
    }
    Ok(if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
