use super::{CliError, CliResult};
use crate::cli::output::{errln, outln};
use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::label::Label;
use crate::contracts::lineage::digest_file;
use crate::contracts::reward::{HgrmRewardArtifact, HgrmRewardVersion};
use crate::contracts::{
    Artifact, ArtifactKind, Lineage, artifact, generated_at, read_artifact, write_artifact,
};
use crate::reward::{HgrmConfig, output::parse_completion, score, summarize};
use crate::reward_service::{self, RewardService};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RewardArgs {
    #[command(subcommand)]
    pub command: Option<RewardCommand>,
    #[command(flatten)]
    pub batch: Option<BatchArgs>,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The labelled events (janus-event-car-v1).
    #[arg(long, required = true)]
    pub event_car: PathBuf,
    /// JSON Lines: {"event_id": ..., "completion": "..."} per line.
    #[arg(long, required = true)]
    pub completions: PathBuf,
    /// HGRM configuration (YAML or JSON; see config/hgrm.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Fail on the first unscorable line instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
    #[arg(long)]
    pub generated_at: Option<DateTime<Utc>>,
    /// Output directory; the artifact is DIR/reward.json.
    #[arg(long, required = true)]
    pub out: PathBuf,
    /// Skipped lines named one by one on stderr; the rest are counted by reason in one line.
    #[arg(long, default_value_t = SKIPPED_NAMED)]
    pub name_skipped: u64,
}

#[derive(Debug, Subcommand)]
pub enum RewardCommand {
    /// Serve the reward over HTTP for GRPO trainers (POST /v1/rewards).
    Serve {
        #[arg(long)]
        event_car: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8090.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Every decomposition is appended to this JSON Lines file.
        #[arg(long)]
        trace: PathBuf,
        /// Largest request body in bytes.
        #[arg(long, default_value_t = reward_service::DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
        #[command(flatten)]
        http: crate::http_server::HttpLimits,
    },
}

fn load_config(path: &Option<PathBuf>) -> Result<HgrmConfig, CliError> {
    Ok(match path {
        Some(p) => crate::config::load(p)?,
        None => HgrmConfig::default(),
    })
}

/// Labels by event id, and the ids of events without a label.
fn labels_of(a: &EventCarArtifact) -> (HashMap<String, Label>, HashSet<String>) {
    let mut labels = HashMap::new();
    let mut unlabelled = HashSet::new();
    for r in &a.records {
        match &r.label {
            Some(l) => {
                labels.insert(r.event_id.clone(), l.clone());
            }
            None => {
                unlabelled.insert(r.event_id.clone());
            }
        }
    }
    (labels, unlabelled)
}

pub fn run(args: RewardArgs) -> CliResult {
    match (args.command, args.batch) {
        (
            Some(RewardCommand::Serve {
                event_car,
                config,
                listen,
                trace,
                max_body_bytes,
                http,
            }),
            _,
        ) => serve(
            &event_car,
            load_config(&config)?,
            listen,
            &trace,
            max_body_bytes,
            &http,
        ),
        (None, Some(batch)) => run_batch(batch),
        (None, None) => Err(CliError::Usage(
            "janus reward needs --event-car, --completions and --out, or the `serve` subcommand"
                .into(),
        )),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletionLine {
    /// Read as text by [`crate::records::json_line_id`] (a number's raw token), not here.
    #[allow(dead_code)]
    event_id: serde::de::IgnoredAny,
    completion: String,
}

fn run_batch(args: BatchArgs) -> CliResult {
    let artifact = score_files(&args)?;
    let s = &artifact.summary;
    outln!(
        "samples {}  format failures {}  hard-gate failures {}  direction pass {:.3}  type match {:.3}  clipped {}  mean reward {:+.4}  mean PnL term {:+.5}",
        s.samples,
        s.format_failures,
        s.hard_gate_failures,
        s.direction_gate_pass_ratio,
        s.type_match_ratio,
        s.clipped,
        s.mean_final_reward,
        s.mean_pnl_reward
    );
    for (reason, n) in &s.unscored_by_reason {
        outln!("  unscored: {reason} {n}");
    }
    outln!(
        "wrote {} (manifest_hash {})",
        args.out.join("reward.json").display(),
        artifact.manifest_hash
    );
    Ok(ExitCode::SUCCESS)
}

/// How many skipped completion lines are named one by one before they are only counted.
const SKIPPED_NAMED: u64 = 10;

/// Scores a completions file and writes DIR/reward.json.
pub fn score_files(args: &BatchArgs) -> Result<HgrmRewardArtifact, CliError> {
    let config = load_config(&args.config)?;
    let event_car: EventCarArtifact = read_artifact(&args.event_car)?;
    let (labels, unlabelled) = labels_of(&event_car);
    let bytes = std::fs::read(&args.completions).map_err(|source| CliError::Io {
        path: args.completions.clone(),
        source,
    })?;
    let mut records = Vec::new();
    let mut unscored: BTreeMap<String, u64> = BTreeMap::new();
    for (line, text) in crate::records::text_lines(&bytes) {
        let at = format!("{}:{line}", args.completions.display());
        let parsed = text.and_then(|text| {
            let id = crate::records::json_line_id(text)?;
            let item: CompletionLine = crate::records::json_object(text)?;
            Ok((id, item))
        });
        let (reason, detail) = match parsed {
            Err(e) => (
                "bad_line",
                format!("not {{\"event_id\", \"completion\"}}: {e}"),
            ),
            Ok((id, item)) => {
                if let Some(label) = labels.get(&id) {
                    let parsed = parse_completion(&item.completion);
                    records.push(score(&id, parsed.as_ref(), label, &config));
                    continue;
                } else if unlabelled.contains(&id) {
                    (
                        "unlabelled_event",
                        format!(
                            "event `{}` has no label",
                            crate::records::excerpt(id.as_bytes())
                        ),
                    )
                } else {
                    (
                        "unknown_event_id",
                        format!(
                            "event `{}` is not in {}",
                            crate::records::excerpt(id.as_bytes()),
                            args.event_car.display()
                        ),
                    )
                }
            }
        };
        if args.strict {
            return Err(CliError::Usage(format!("{at}: {detail} (strict mode)")));
        }
        // The first few are named; the rest are counted (a replay of every event has many
        // unlabelled ones, and the artifact records the counts by reason either way).
        let skipped: u64 = unscored.values().sum();
        if skipped < args.name_skipped {
            errln!("skipped {at}: {detail}");
        }
        *unscored.entry(reason.to_string()).or_default() += 1;
    }
    let skipped: u64 = unscored.values().sum();
    if skipped > args.name_skipped {
        let by_reason: Vec<String> = unscored.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let named = match args.name_skipped {
            0 => String::new(),
            n => format!("; the first {n} are named above"),
        };
        errln!(
            "skipped {skipped} lines of {} in all ({}){named}",
            args.completions.display(),
            by_reason.join(", ")
        );
    }

    let out = args.out.join("reward.json");
    let digest = |p: &Path| {
        digest_file(p).map_err(|source| CliError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let inputs = BTreeMap::from([
        ("event_car".to_string(), digest(&args.event_car)?),
        ("completions".to_string(), digest(&args.completions)?),
    ]);
    let config_json = serde_json::to_value(&config).expect("config serializes");
    let lineage = Lineage::new(
        ArtifactKind::HgrmReward.schema_hash(),
        inputs,
        &serde_json::json!({"hgrm": &config_json, "strict": args.strict}),
        vec![event_car.reference()],
    )
    .map_err(|source| artifact::ContractError::Canonical {
        path: out.clone(),
        source,
    })?;
    let summary = summarize(&records, &unscored);
    let mut artifact = HgrmRewardArtifact {
        config: config_json,
        generated_at: generated_at(args.generated_at, event_car.generated_at)
            .map_err(CliError::Usage)?,
        lineage,
        manifest_hash: artifact::unsealed(),
        records,
        schema_version: HgrmRewardVersion::V1,
        summary,
    };
    write_artifact(&out, &mut artifact)?;
    Ok(artifact)
}

fn serve(
    event_car: &Path,
    config: HgrmConfig,
    listen: std::net::SocketAddr,
    trace: &Path,
    max_body_bytes: usize,
    http: &crate::http_server::HttpLimits,
) -> CliResult {
    let artifact: EventCarArtifact = read_artifact(event_car)?;
    let (labels, unlabelled) = labels_of(&artifact);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            path: PathBuf::from("tokio runtime"),
            source,
        })?;
    runtime.block_on(async {
        let trace_file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trace)
            .await
            .map_err(|source| CliError::Io {
                path: trace.to_path_buf(),
                source,
            })?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| CliError::Io {
                path: PathBuf::from(listen.to_string()),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| CliError::Io {
            path: PathBuf::from(listen.to_string()),
            source,
        })?;
        let service = Arc::new(RewardService {
            labels,
            unlabelled,
            config,
            trace: tokio::sync::Mutex::new(trace_file),
            metrics: Default::default(),
        });
        outln!(
            "serving HGRM rewards for {} labelled events on http://{local}",
            service.labels.len()
        );
        reward_service::serve(
            listener,
            reward_service::router(service, max_body_bytes),
            http,
        )
        .await
        .map_err(|e| CliError::Usage(format!("serving on {local}: {e}")))?;
        outln!("shut down");
        Ok(ExitCode::SUCCESS)
    })
}
