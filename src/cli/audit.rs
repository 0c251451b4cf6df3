//! `janus audit verify FILE... [--key KEYFILE]`: checks audit logs (`crate::audit`): the hash
//! chain always, each line's MAC when given the key.

use super::CliResult;
use crate::audit::AuditKey;
use crate::audit::file::verify_file;
use crate::cli::output::{errln, outln};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify audit logs (`<artifacts-root>/audit/<namespace>.jsonl`): exit 0 when every line
    /// chains to the one before it (and, with --key, carries a valid MAC); exit 1 naming every
    /// bad line (FILE:LINE: why) of each file that does not: edited, deleted, inserted,
    /// reordered, torn, or re-sealed without the key. Without --key only the unkeyed SHA-256
    /// chain is checked, which whoever can write the file can recompute; it says so.
    Verify {
        /// The audit log(s).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The webhook signing key file (the operator's Secret) the audit key is derived from;
        /// repeat it for the keys of earlier rotations (a line verifies under any of them).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
    },
}

pub fn run(args: AuditArgs) -> CliResult {
    match args.command {
        AuditCommand::Verify { files, keys } => {
            let keys = keys
                .iter()
                .map(|k| AuditKey::from_file(k))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| super::CliError::Usage(e.to_string()))?;
            let mut ok = true;
            for file in files {
                let report = verify_file(&file, &keys).map_err(|e| match e {
                    crate::audit::AuditError::Io { path, source } => {
                        super::CliError::Io { path, source }
                    }
                    other => super::CliError::Usage(other.to_string()),
                })?;
                for b in &report.breaks {
                    errln!("janus: {}:{}: {}", file.display(), b.line, b.why);
                }
                if !report.intact() {
                    ok = false;
                    errln!(
                        "janus: {}: {} lines, {} bad",
                        file.display(),
                        report.lines,
                        report.breaks.len()
                    );
                } else if report.macs_checked {
                    outln!(
                        "{}: {} lines, chain intact, every line's MAC valid",
                        file.display(),
                        report.lines
                    );
                } else {
                    outln!(
                        "{}: {} lines, chain intact; MACs NOT checked (no --key): only the unkeyed SHA-256 chain was verified, which whoever can write the file can recompute ({} of the lines carry a MAC)",
                        file.display(),
                        report.lines,
                        report.keyed
                    );
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
