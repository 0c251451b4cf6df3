//! The `janus` command line: one binary, one subcommand per step or service.

mod audit;
mod bench;
mod bench_serve;
mod compare;
mod crd;
mod demo;
pub mod evaluate;
mod gates;
mod http_client;
pub mod label;
mod metrics;
pub mod output;
mod paper;
pub mod progress;
pub mod reward;
pub mod scenario;
mod schema;
pub mod train;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "janus", version = version_string(), about = "Janus-Q: from research to paper trading to a gated live canary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the JSON Schemas of the versioned contracts.
    Schema(schema::SchemaArgs),
    /// Verify artifacts: known version, schema, lineage and manifest hash. Exit 0 only if all pass.
    Verify(verify::VerifyArgs),
    /// Generate a synthetic dataset with planted effects (and truth.json).
    Scenario(scenario::ScenarioArgs),
    /// Label events with cumulative abnormal returns: writes DIR/event-car.json.
    Label(label::LabelArgs),
    /// Score model completions with the HGRM reward (batch), or serve it (`reward serve`).
    Reward(reward::RewardArgs),
    /// Evaluate predictions against the baseline: backtest, metrics, walk-forward, regimes,
    /// bootstrap significance; writes the evidence (janus-q-evidence-v1) and a report.
    Evaluate(evaluate::EvaluateArgs),
    /// Compare two evaluations (evidence artifacts) for reproducibility; exit 1 on any difference.
    Compare(compare::CompareArgs),
    /// Evaluate the promotion gates for a target; exit 1 when the target is not allowed.
    Gates(gates::GatesArgs),
    /// Metrics of a NAV series (the paper's conventions), with bootstrap intervals and deltas
    /// against a baseline.
    Metrics(metrics::MetricsArgs),
    /// Train the reference policy: `sft` on the labels, then `grpo` under the HGRM reward.
    Train(train::TrainArgs),
    /// Predictions of a trained model for every event of an event-car artifact.
    Predict(train::PredictArgs),
    /// Print (or write with --out) the CustomResourceDefinitions.
    Crd(crd::CrdArgs),
    /// The audit trail: `janus audit verify FILE` checks an audit log's hash chain.
    Audit(audit::AuditArgs),
    /// Benchmarks: median wall time and peak memory of a command over repeated runs.
    Bench(bench::BenchArgs),
    /// Run the lifecycle end to end on one machine (default: a generated scenario).
    Demo(demo::DemoArgs),
    /// Run the operator: reconcile JanusRuns, JanusCandidates and PromotionRequests.
    Controller(crate::operator::ControllerArgs),
    /// The decision service: the promoted model behind a time budget, the fallback, the kill
    /// switch and canary limits (POST /v1/decide).
    Serve(crate::serve::ServeArgs),
    /// Replay events through a running decision service as a paper broker: fills, PnL, and the
    /// paper window's runtime statistics (runtime-paper.json, for `janus gates --runtime-stats`;
    /// the operator reads only the decision service's signed files).
    Paper(paper::PaperArgs),
}

pub use crate::version_string;

/// Parses the command line and runs it. Errors print as one precise message; the exit code
/// says which kind (README, "Exit codes"): 0 success; 1 not allowed, checks failed, an input
/// that parses but fails verification, or a runtime failure (cannot write, cannot reach the
/// API server); 2 usage errors and inputs that are missing or cannot be parsed (clap's
/// convention for usage errors).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schema(args) => schema::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Scenario(args) => scenario::run(args),
        Command::Label(args) => label::run(args),
        Command::Reward(args) => reward::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Gates(args) => gates::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Train(args) => train::run(args),
        Command::Predict(args) => train::predict(args),
        Command::Crd(args) => crd::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Controller(args) => crate::operator::run(args),
        Command::Serve(args) => crate::serve::run(args),
        Command::Paper(args) => paper::run(args),
    };
    // Output that could not be written (other than to a closed pipe) fails a command that
    // otherwise succeeded; a command's own error comes first.
    let result = result.and_then(|code| output::finish().map(|()| code));
    match result {
        Ok(code) => code,
        Err(e) => {
            output::errln!("janus: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes a step's compact result where Kubernetes reads a container's termination message
/// (`TERMINATION_MESSAGE_PATH`, default `/dev/termination-log` when it exists); a no-op elsewhere.
pub fn termination_message(result: &str) {
    let path = std::env::var_os("TERMINATION_MESSAGE_PATH")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(std::path::PathBuf::from("/dev/termination-log")).filter(|p| p.exists()));
    if let Some(p) = path {
        // Kubernetes keeps at most 4096 bytes of it.
        let text: String = result.chars().take(4000).collect();
        if let Err(e) = std::fs::write(&p, text) {
            output::errln!(
                "janus: cannot write the termination message to {}: {e}",
                p.display()
            );
        }
    }
}

/// A command's failure: a message that says what was wrong and where.
pub type CliResult = Result<ExitCode, CliError>;

/// A command's failure. Each variant belongs to one exit code ([`CliError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input parsed but failed a check it must pass (a pinned hash, a lineage): exit 1.
    #[error("{0}")]
    Refused(String),
    /// A failure of the run itself, not of its inputs (the API server unreachable, a listener
    /// that cannot bind): exit 1.
    #[error("{0}")]
    Runtime(String),
    /// Standard output could not be written (a full disk, an I/O error; a closed pipe is not
    /// an error, see [`output`]): exit 1.
    #[error("cannot write to standard output: {0}")]
    Output(std::io::Error),
    #[error(transparent)]
    Contract(#[from] crate::contracts::ContractError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Table(#[from] crate::records::TableError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl CliError {
    /// 2 for usage errors and inputs that are missing or cannot be parsed; 1 for everything
    /// else (verification refused, runtime and output failures).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Table(_) | CliError::Config(_) | CliError::Io { .. } => {
                2
            }
            CliError::Contract(e) if e.is_unreadable() => 2,
            CliError::Contract(_)
            | CliError::Refused(_)
            | CliError::Runtime(_)
            | CliError::Output(_) => 1,
        }
    }
}
