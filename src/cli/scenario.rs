use super::{CliError, CliResult};
use crate::cli::output::outln;
use crate::contracts::artifact::write_atomically;
use crate::scenario::{ScenarioConfig, generate};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of symbols (the paper: 5282).
    #[arg(long, default_value_t = 5282)]
    pub symbols: usize,
    /// Trading days (the paper: 520).
    #[arg(long, default_value_t = 520)]
    pub days: usize,
    /// Number of news events (the paper: 62400).
    #[arg(long, default_value_t = 62_400)]
    pub events: usize,
    /// Do not write factor exposures.
    #[arg(long)]
    pub no_factors: bool,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: ScenarioArgs) -> CliResult {
    if args.symbols == 0 || args.days < 2 {
        return Err(CliError::Usage(
            "--symbols must be at least 1 and --days at least 2".into(),
        ));
    }
    let scenario = generate(&ScenarioConfig {
        seed: args.seed,
        symbols: args.symbols,
        days: args.days,
        events: args.events,
        factors: !args.no_factors,
    });
    write_scenario(&args.out, &scenario)?;
    outln!(
        "wrote {} symbols × {} days, {} events to {}",
        args.symbols,
        args.days,
        args.events,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the scenario's files into `dir`.
pub fn write_scenario(
    dir: &std::path::Path,
    s: &crate::scenario::Scenario,
) -> Result<(), CliError> {
    let mut truth = serde_json::to_vec_pretty(&s.truth).expect("truth serializes");
    truth.push(b'\n');
    let mut files: Vec<(&str, &[u8])> = vec![
        ("prices.csv", s.prices_csv.as_bytes()),
        ("indices.csv", s.indices_csv.as_bytes()),
        ("universe.csv", s.universe_csv.as_bytes()),
        ("events.csv", s.events_csv.as_bytes()),
        ("truth.json", &truth),
    ];
    if let Some(f) = &s.factors_csv {
        files.push(("factors.csv", f.as_bytes()));
    }
    for (name, bytes) in files {
        write_atomically(&dir.join(name), bytes)?;
    }
    Ok(())
}
