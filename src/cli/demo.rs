//! `janus demo`: the whole lifecycle on one machine, on its embedded default (a generated
//! scenario) or on the user's data. It grows with the project: today it generates the
//! scenario, labels it and verifies the artifact.

use super::label::{LabelInputs, label_files};
use super::{CliError, CliResult};
use crate::labeling::LabelingConfig;
use crate::scenario::{ScenarioConfig, generate};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "janus-demo")]
    pub out: PathBuf,
    /// Run on this dataset (docs/data-formats.md) instead of a generated scenario.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seed of the generated scenario.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn run(args: DemoArgs) -> CliResult {
    let data = match &args.data {
        Some(d) => d.clone(),
        None => {
            let dir = args.out.join("data");
            println!(
                "generating the paper-scale scenario (seed {}) in {}",
                args.seed,
                dir.display()
            );
            let scenario = generate(&ScenarioConfig {
                seed: args.seed,
                ..ScenarioConfig::default()
            });
            super::scenario::write_scenario(&dir, &scenario)?;
            dir
        }
    };
    let file = |name: &str| data.join(name);
    for required in ["prices.csv", "indices.csv", "universe.csv"] {
        if !file(required).exists() {
            return Err(CliError::Usage(format!(
                "{} is missing (see docs/data-formats.md)",
                file(required).display()
            )));
        }
    }
    let events = ["events.csv", "events.jsonl"]
        .into_iter()
        .map(file)
        .find(|p| p.exists())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "no events.csv or events.jsonl in {}",
                data.display()
            ))
        })?;
    let factors = file("factors.csv");
    let (prices, indices, universe) = (
        file("prices.csv"),
        file("indices.csv"),
        file("universe.csv"),
    );
    let inputs = LabelInputs {
        prices: &prices,
        indices: &indices,
        universe: &universe,
        factors: factors.exists().then_some(factors.as_path()),
        events: &events,
    };
    let out = args.out.join("event-car.json");
    println!("labeling events");
    let artifact = label_files(&inputs, &LabelingConfig::default(), false, None, &out)?;
    super::label::print_summary(&artifact);
    let bytes = std::fs::read(&out).map_err(|source| CliError::Io {
        path: out.clone(),
        source,
    })?;
    let verified = crate::contracts::verify_bytes(&out, &bytes)?;
    println!(
        "verified {} ({}, manifest_hash {})",
        out.display(),
        verified.schema_version,
        verified.manifest_hash
    );
    Ok(ExitCode::SUCCESS)
}
