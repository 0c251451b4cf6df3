use super::{CliError, CliResult};
use crate::cli::output::{out, outln};
use crate::contracts::ArtifactKind;
use crate::contracts::artifact::write_atomically;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// A contract version (e.g. janus-event-car-v1); all of them when omitted.
    pub name: Option<String>,
    /// Write `<name>.schema.json` files (and, for all schemas, the `fields.md` reference
    /// rendered from them) into this directory instead of printing.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Schemas of the documents that are not sealed artifacts: the gate policy. (The runtime
/// statistics are the sealed `janus-runtime-stats-v1` artifact.) (name, schema)
pub fn document_schemas() -> Vec<(&'static str, serde_json::Value)> {
    use crate::contracts::artifact::schema_with_id;
    let id = |name: &str| format!("https://janus.torghut.io/contracts/{name}.schema.json");
    vec![(
        "janus-gate-policy-v1",
        schema_with_id::<crate::gates::policy::GatePolicy>(
            &id("janus-gate-policy-v1"),
            "janus-gate-policy-v1",
        ),
    )]
}

/// Every generated schema: (file name, pretty JSON with a trailing newline).
pub fn all_schemas() -> Vec<(String, String)> {
    ArtifactKind::ALL
        .iter()
        .map(|k| (k.schema_file_name(), pretty(k.schema())))
        .chain(
            document_schemas()
                .into_iter()
                .map(|(n, s)| (format!("{n}.schema.json"), pretty(&s))),
        )
        .collect()
}

/// The field reference rendered from every schema.
pub fn field_reference() -> String {
    let documents = document_schemas();
    let schemas: Vec<(&str, &serde_json::Value)> = ArtifactKind::ALL
        .iter()
        .map(|k| (k.version(), k.schema()))
        .chain(documents.iter().map(|(n, s)| (*n, s)))
        .collect();
    crate::contracts::field_docs::render(&schemas)
}

fn pretty(value: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("schemas serialize");
    s.push('\n');
    s
}

pub fn run(args: SchemaArgs) -> CliResult {
    let mut schemas = all_schemas();
    if let Some(name) = &args.name {
        let wanted = format!("{}.schema.json", name.trim_end_matches(".schema.json"));
        schemas.retain(|(file, _)| *file == wanted);
        if schemas.is_empty() {
            let known: Vec<String> = all_schemas()
                .into_iter()
                .map(|(f, _)| f.trim_end_matches(".schema.json").to_string())
                .collect();
            return Err(CliError::Usage(format!(
                "unknown contract '{name}'; known: {}",
                known.join(", ")
            )));
        }
    }
    match args.out {
        Some(dir) => {
            if args.name.is_none() {
                schemas.push(("fields.md".to_string(), field_reference()));
            }
            for (file, text) in &schemas {
                write_atomically(&dir.join(file), text.as_bytes())?;
                outln!("{}", dir.join(file).display());
            }
        }
        None if schemas.len() == 1 => out!("{}", schemas[0].1),
        None => {
            let all: serde_json::Map<String, serde_json::Value> = ArtifactKind::ALL
                .iter()
                .map(|k| (k.version().to_string(), k.schema().clone()))
                .chain(
                    document_schemas()
                        .into_iter()
                        .map(|(n, s)| (n.to_string(), s)),
                )
                .collect();
            out!("{}", pretty(&serde_json::Value::Object(all)));
        }
    }
    Ok(ExitCode::SUCCESS)
}
