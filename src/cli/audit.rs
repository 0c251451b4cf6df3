//! `janus audit verify FILE...`: checks the hash chain of audit logs (`crate::audit`).

use super::CliResult;
use crate::audit::AuditError;
use crate::audit::file::verify_file;
use crate::cli::output::outln;
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
    /// chains to the one before it; exit 1 naming the first bad line (FILE:LINE) of each file
    /// that does not (an edited, deleted, inserted or reordered line).
    Verify {
        /// The audit log(s).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(args: AuditArgs) -> CliResult {
    match args.command {
        AuditCommand::Verify { files } => {
            let mut ok = true;
            for file in files {
                match verify_file(&file) {
                    Ok(n) => outln!("{}: {n} lines, chain intact", file.display()),
                    Err(AuditError::Io { path, source }) => {
                        return Err(super::CliError::Io { path, source });
                    }
                    Err(e) => {
                        ok = false;
                        eprintln!("janus: {e}");
                    }
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
