use super::{CliError, CliResult, progress};
use crate::cli::output::{errln, outln};
use crate::contracts::event_car::{EventCarArtifact, EventCarVersion};
use crate::contracts::{ArtifactKind, Inputs, Lineage, artifact, generated_at, write_artifact};
use crate::labeling::input::{Dataset, Sources};
use crate::labeling::{LabelingConfig, label};
use crate::records::Format;
use chrono::{DateTime, NaiveTime, Utc};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// A dataset directory with the standard file names (prices.csv, indices.csv,
    /// universe.csv, events.csv or events.jsonl, optional factors.csv) instead of the files.
    #[arg(long, conflicts_with_all = ["prices", "indices", "universe", "factors", "events"])]
    pub dataset: Option<PathBuf>,
    /// prices.csv: date,symbol,open,close
    #[arg(long, required_unless_present = "dataset")]
    pub prices: Option<PathBuf>,
    /// indices.csv: date,index,close (its dates are the trading calendar)
    #[arg(long, required_unless_present = "dataset")]
    pub indices: Option<PathBuf>,
    /// universe.csv: symbol,index,industry
    #[arg(long, required_unless_present = "dataset")]
    pub universe: Option<PathBuf>,
    /// factors.csv: date,symbol,<factor>... (optional; enables neutralization)
    #[arg(long)]
    pub factors: Option<PathBuf>,
    /// events.csv or events.jsonl: event_id,timestamp,symbol,event_type,title
    #[arg(long, required_unless_present = "dataset")]
    pub events: Option<PathBuf>,
    /// The events file's format, when its name does not end in .csv or .jsonl.
    #[arg(long, value_enum)]
    pub events_format: Option<Format>,
    /// Labeling configuration (YAML or JSON); defaults as documented in docs/methodology.md.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Fail on the first bad input row instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
    /// `generated_at` of the artifact (RFC 3339); see docs/contracts/README.md.
    #[arg(long)]
    pub generated_at: Option<DateTime<Utc>>,
    /// Refuse to label unless the inputs' dataset snapshot hash (the lineage's
    /// `dataset_snapshot_hash`) is this one: how a run pins its dataset.
    #[arg(long)]
    pub expect_dataset_hash: Option<crate::contracts::Sha256Hex>,
    /// Output directory; the artifact is DIR/event-car.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// The input files of a dataset, by role.
#[derive(Debug, Clone)]
pub struct DatasetFiles {
    pub prices: PathBuf,
    pub indices: PathBuf,
    pub universe: PathBuf,
    pub factors: Option<PathBuf>,
    pub events: PathBuf,
}

impl DatasetFiles {
    /// The standard file names in `dir` (docs/data-formats.md); missing required files are
    /// named.
    pub fn in_dir(dir: &Path) -> Result<Self, CliError> {
        let file = |name: &str| dir.join(name);
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
                    dir.display()
                ))
            })?;
        Ok(Self {
            prices: file("prices.csv"),
            indices: file("indices.csv"),
            universe: file("universe.csv"),
            factors: Some(file("factors.csv")).filter(|f| f.exists()),
            events,
        })
    }

    pub fn inputs<'a>(
        &'a self,
        expected_dataset_hash: Option<&'a crate::contracts::Sha256Hex>,
    ) -> LabelInputs<'a> {
        LabelInputs {
            prices: &self.prices,
            indices: &self.indices,
            universe: &self.universe,
            factors: self.factors.as_deref(),
            events: &self.events,
            events_format: None,
            expected_dataset_hash,
        }
    }
}

/// The input files of a labeling run, by role.
pub struct LabelInputs<'a> {
    pub prices: &'a Path,
    pub indices: &'a Path,
    pub universe: &'a Path,
    pub factors: Option<&'a Path>,
    pub events: &'a Path,
    /// The events' format; `None`: from the file name.
    pub events_format: Option<Format>,
    /// The dataset snapshot hash the inputs must have, when pinned.
    pub expected_dataset_hash: Option<&'a crate::contracts::Sha256Hex>,
}

pub fn run(args: LabelArgs) -> CliResult {
    let config = match &args.config {
        Some(path) => crate::config::load::<LabelingConfig>(path)?,
        None => LabelingConfig::default(),
    };
    let files = match &args.dataset {
        Some(dir) => DatasetFiles::in_dir(dir)?,
        None => DatasetFiles {
            prices: args.prices.clone().expect("clap requires it"),
            indices: args.indices.clone().expect("clap requires it"),
            universe: args.universe.clone().expect("clap requires it"),
            factors: args.factors.clone(),
            events: args.events.clone().expect("clap requires it"),
        },
    };
    let mut inputs = files.inputs(args.expect_dataset_hash.as_ref());
    inputs.events_format = args.events_format;
    let out = args.out.join("event-car.json");
    let artifact = label_files(&inputs, &config, args.strict, args.generated_at, &out)?;
    print_summary(&artifact);
    super::termination_message(
        &serde_json::json!({
            "step": "label",
            "event_car_manifest_hash": artifact.manifest_hash,
            "dataset_snapshot_hash": artifact.lineage.dataset_snapshot_hash,
            "events": artifact.summary.events,
            "labelled": artifact.summary.labelled,
        })
        .to_string(),
    );
    outln!(
        "wrote {} (manifest_hash {})",
        out.display(),
        artifact.manifest_hash
    );
    // A run that labels none of its events is not a result, whether it had events or none at
    // all (a header-only file): say so and fail (exit 1; docs/data-formats.md).
    let s = &artifact.summary;
    if s.events == 0 {
        eprintln!(
            "janus: labelled none: the events file holds no event (bad input rows: {}); the \
             artifact is written for inspection",
            s.bad_rows.values().sum::<u64>()
        );
        return Ok(ExitCode::from(1));
    }
    if s.labelled == 0 {
        let reasons: Vec<String> = s
            .unlabelled_by_reason
            .iter()
            .map(|(r, n)| format!("{r} ({n})"))
            .collect();
        errln!(
            "janus: labelled none of {} events (unlabelled: {}; bad input rows: {}); the artifact is written for inspection",
            s.events,
            reasons.join(", "),
            s.bad_rows.values().sum::<u64>()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Labels the files and writes the sealed artifact to `out`.
pub fn label_files(
    inputs: &LabelInputs<'_>,
    config: &LabelingConfig,
    strict: bool,
    explicit_time: Option<DateTime<Utc>>,
    out: &Path,
) -> Result<EventCarArtifact, CliError> {
    let bar = progress::stages(4, "labeling");
    let t0 = std::time::Instant::now();
    let lap = |what: &str| {
        if std::env::var_os("JANUS_TIMINGS").is_some() {
            errln!("{what}: {:.3}s", t0.elapsed().as_secs_f64());
        }
    };
    bar.set_message("reading inputs");
    let mut roles: Vec<(&str, &Path)> = vec![
        ("prices", inputs.prices),
        ("indices", inputs.indices),
        ("universe", inputs.universe),
        ("events", inputs.events),
    ];
    if let Some(f) = inputs.factors {
        roles.push(("factors", f));
    }
    let files = roles
        .iter()
        .map(|(role, path)| Ok((*role, *path, read(path)?)))
        .collect::<Result<Vec<_>, CliError>>()?;
    let get = |role: &'static str| {
        files
            .iter()
            .find(|f| f.0 == role)
            .map(|f| (f.1.to_str().unwrap_or(role), f.2.as_slice()))
    };
    let sources = Sources {
        prices: get("prices").expect("read above"),
        indices: get("indices").expect("read above"),
        universe: get("universe").expect("read above"),
        factors: get("factors"),
        events: get("events").expect("read above"),
        events_format: inputs.events_format,
    };

    lap("read");
    bar.inc(1);
    bar.set_message("parsing and hashing inputs");
    // Hash the inputs while they are parsed.
    let (dataset, digests) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            files
                .iter()
                .map(|(role, _, bytes)| {
                    (
                        role.to_string(),
                        crate::contracts::FileDigest {
                            sha256: crate::contracts::Sha256Hex::of_bytes(bytes),
                            bytes: bytes.len() as u64,
                        },
                    )
                })
                .collect::<Inputs>()
        });
        let dataset = Dataset::parse(&sources, strict);
        (dataset, hashing.join().expect("hashing does not panic"))
    });
    if let Some(expected) = inputs.expected_dataset_hash {
        let actual = crate::contracts::canonical_hash(&digests).map_err(|source| {
            artifact::ContractError::Canonical {
                path: out.to_path_buf(),
                source,
            }
        })?;
        if &actual != expected {
            return Err(CliError::Refused(format!(
                "the inputs' dataset snapshot hash is {actual}, not the pinned {expected}: refusing to label a different dataset"
            )));
        }
    }
    let dataset = dataset.map_err(|e| CliError::Usage(e.to_string()))?;
    for note in &dataset.notes {
        errln!("note: {note}");
    }
    for row in &dataset.bad_rows.examples {
        errln!("skipped {row}");
    }
    if dataset.bad_rows.total() > dataset.bad_rows.examples.len() as u64 {
        errln!(
            "skipped {} bad rows in all (first {} shown)",
            dataset.bad_rows.total(),
            dataset.bad_rows.examples.len()
        );
    }

    lap("parse+hash");
    bar.inc(1);
    bar.set_message("labeling events");
    let labeled = label(&dataset, config);
    lap("label");

    bar.inc(1);
    bar.set_message("writing artifact");
    let tz: chrono_tz::Tz = config.timezone.parse().expect("validated");
    let last_close = dataset
        .calendar
        .dates
        .last()
        .and_then(|d| {
            d.and_time(NaiveTime::from_hms_opt(15, 0, 0).expect("valid"))
                .and_local_timezone(tz)
                .earliest()
        })
        .map(|t| t.to_utc())
        .unwrap_or_default();
    let generated_at = generated_at(explicit_time, last_close).map_err(CliError::Usage)?;
    let run_config = serde_json::json!({"labeling": config, "strict": strict});
    let lineage = Lineage::new(
        ArtifactKind::EventCar.schema_hash(),
        digests,
        &run_config,
        vec![],
    )
    .map_err(|source| artifact::ContractError::Canonical {
        path: out.to_path_buf(),
        source,
    })?;
    let mut artifact = EventCarArtifact {
        schema_version: EventCarVersion::V1,
        generated_at,
        lineage,
        method: labeled.method,
        summary: labeled.summary,
        records: labeled.records,
        manifest_hash: artifact::unsealed(),
    };
    write_artifact(out, &mut artifact)?;
    lap("write");
    bar.finish_and_clear();
    Ok(artifact)
}

pub fn print_summary(a: &EventCarArtifact) {
    let s = &a.summary;
    outln!(
        "events {}  labelled {}  unlabelled {}  bad input rows {}",
        s.events,
        s.labelled,
        s.events - s.labelled,
        s.bad_rows.values().sum::<u64>()
    );
    for (reason, n) in &s.unlabelled_by_reason {
        outln!("  unlabelled: {reason:<26} {n}");
    }
    outln!("  {:<20} {:>7} {:>10}", "event type", "events", "mean CAR");
    for (t, n) in &s.by_event_type {
        let mean = s
            .mean_car_by_type
            .get(t)
            .map_or("-".to_string(), |m| format!("{m:+.4}"));
        outln!("  {t:<20} {n:>7} {mean:>10}");
    }
    if !s.unknown_event_types.is_empty() {
        let unknown: Vec<String> = s
            .unknown_event_types
            .iter()
            .map(|(k, v)| format!("{k} ({v})"))
            .collect();
        outln!("  unmapped source types: {}", unknown.join(", "));
    }
    outln!(
        "  neutralized: {}{}",
        a.method.neutralized,
        if a.method.neutralized {
            format!(" against {}", a.method.factors.join(", "))
        } else {
            String::new()
        }
    );
}
