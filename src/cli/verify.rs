use super::CliResult;
use crate::contracts::verify_bytes;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Artifact files to verify.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: VerifyArgs) -> CliResult {
    let mut failed = 0usize;
    for path in &args.files {
        let outcome = std::fs::read(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))
            .and_then(|bytes| verify_bytes(path, &bytes).map_err(|e| e.to_string()));
        match outcome {
            Ok(v) => println!(
                "OK      {} ({}, manifest_hash {})",
                path.display(),
                v.schema_version,
                v.manifest_hash
            ),
            Err(message) => {
                failed += 1;
                println!("FAILED  {message}");
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "janus verify: {failed} of {} artifacts failed",
            args.files.len()
        );
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
