use super::CliResult;
use crate::cli::output::{out, outln};
use crate::contracts::artifact::write_atomically;
use crate::crd::definitions_yaml;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one `<name>.yaml` per CRD into this directory instead of printing them.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: CrdArgs) -> CliResult {
    let crds = definitions_yaml();
    match args.out {
        Some(dir) => {
            for (file, yaml) in &crds {
                write_atomically(&dir.join(file), yaml.as_bytes())?;
                outln!("{}", dir.join(file).display());
            }
        }
        None => {
            let docs: Vec<&str> = crds.iter().map(|(_, y)| y.as_str()).collect();
            out!("{}", docs.join("---\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
