use super::CliResult;
use crate::cli::output::{errln, outln};
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
    let (mut failed, mut unreadable) = (0usize, 0usize);
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
        // verification (its hash, its lineage) is a failed check (1).
        Ok(ExitCode::from(if unreadable > 0 { 2 } else { 1 }))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
