//! `janus demo`: the whole lifecycle on one machine, on its embedded default (the paper-scale
//! generated scenario) or on the user's data: label, train SFT then GRPO on the history before a
//! held-out window, score the GRPO policy's outputs with the HGRM reward, evaluate both models
//! against the baseline on the held-out window with bootstrap intervals, and evaluate the gates
//! for paper. Every artifact, the reports and a summary land in the output directory.

use super::evaluate::{EvaluateArgs, compare_predictions, evaluate_files};
use super::label::{DatasetFiles, label_files};
use super::reward::{BatchArgs, score_files};
use super::train::{Checkpoint, completions_jsonl, predictions_jsonl, write_outputs};
use super::{CliError, CliResult};
use crate::cli::output::outln;
use crate::contracts::artifact::write_atomically;
use crate::contracts::event_car::EventCarRecord;
use crate::contracts::runtime_stats::StatsSource;
use crate::contracts::{Artifact, verify_bytes};
use crate::evaluation::present;
use crate::evaluation::report::Evaluation;
use crate::gates::policy::GatePolicy;
use crate::gates::{GateInputs, RuntimeStats, Target, evaluate as evaluate_gates};
use crate::labeling::LabelingConfig;
use crate::reward::HgrmConfig;
use crate::runtime::stats;
use crate::scenario::{ScenarioConfig, generate};
use crate::training::examples;
use crate::training::grpo::{self, GrpoConfig};
use crate::training::sft::{self, SftConfig};
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "janus-demo")]
    pub out: PathBuf,
    /// Run on this dataset (docs/data-formats.md) instead of a generated scenario.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seed of the scenario and of training.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of the trading calendar held out for evaluation (the most recent days).
    #[arg(long, default_value_t = 0.3)]
    pub holdout: f64,
    /// Scale of the generated scenario (default: the paper's 5,282 symbols).
    #[arg(long, default_value_t = 5282)]
    pub symbols: usize,
    /// Trading days of the generated scenario (the paper: 520).
    #[arg(long, default_value_t = 520)]
    pub days: usize,
    /// Events of the generated scenario (the paper: 62,400).
    #[arg(long, default_value_t = 62_400)]
    pub events: usize,
    /// Gate policy (config/gate-policy.json); the shipped defaults when omitted.
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn run(args: DemoArgs) -> CliResult {
    if !(0.05..=0.9).contains(&args.holdout) {
        return Err(CliError::Usage(
            "--holdout must lie between 0.05 and 0.9".into(),
        ));
    }
    let bar = super::progress::stages(9, "demo");
    // Everything is written under a staging folder beside `--out`, put in place at the end.
    let final_out = args.out.clone();
    // Read first: a policy that cannot be used fails before any work.
    let mut policy = super::gates::load_policy(args.policy.as_deref())?;
    // The generated scenario under the shipped policy (see the freshness note before the gates).
    let generated_under_shipped_policy = args.data.is_none() && args.policy.is_none();
    let staged = staging(&final_out)?;
    let out = &staged;
    let data = match &args.data {
        Some(d) => d.clone(),
        None => {
            let dir = out.join("data");
            bar.set_message("generating the paper-scale scenario");
            outln!(
                "[1/9] generating a scenario of {} symbols × {} days, {} events (seed {}) in {}",
                args.symbols,
                args.days,
                args.events,
                args.seed,
                dir.display()
            );
            let scenario = generate(&ScenarioConfig {
                seed: args.seed,
                symbols: args.symbols,
                days: args.days,
                events: args.events,
                factors: true,
            });
            super::scenario::write_scenario(&dir, &scenario)?;
            dir
        }
    };
    bar.inc(1);
    // What the numbers mean when the data is the generated scenario, printed where they are.
    let note = args.data.is_none().then(|| synthetic_note(args.seed));
    let files = DatasetFiles::in_dir(&data)?;
    let prices = files.prices.clone();

    bar.set_message("labeling");
    outln!("[2/9] labeling events");
    let event_car_path = out.join("event-car.json");
    let event_car = label_files(
        &files.inputs(None),
        &LabelingConfig::default(),
        false,
        None,
        &event_car_path,
    )?;
    outln!(
        "      {} events, {} labelled",
        event_car.summary.events,
        event_car.summary.labelled
    );
    bar.inc(1);

    // The held-out window: the most recent `holdout` share of the days with labels.
    let mut days: Vec<chrono::NaiveDate> = event_car.records.iter().filter_map(|r| r.d0).collect();
    days.sort_unstable();
    days.dedup();
    if days.len() < 20 {
        return Err(CliError::Usage("too few event days to hold any out".into()));
    }
    let held_out_from = days[((days.len() as f64) * (1.0 - args.holdout)) as usize];

    bar.set_message("training SFT and GRPO");
    outln!("[3/9] training on labels known before {held_out_from}: SFT, then GRPO under HGRM");
    let sft_config = SftConfig {
        seed: args.seed,
        ..SftConfig::default()
    };
    let train = examples(&event_car, sft_config.buckets, Some(held_out_from));
    if train.is_empty() {
        return Err(CliError::Usage(
            "no labelled events before the held-out window".into(),
        ));
    }
    let (sft_model, sft_trace) = sft::train(&train, &sft_config);
    let sft_dir = out.join("models/sft");
    let sft_digest = write_outputs(
        &sft_dir,
        &sft_model,
        |d| Checkpoint {
            stage: "sft",
            model_sha256: d,
            onnx_sha256: None,
            parent_model_sha256: None,
            dataset_manifest_hash: event_car.manifest_hash().clone(),
            seed: args.seed,
            until: Some(held_out_from),
            hyperparameters: serde_json::to_value(&sft_config).expect("serializes"),
            examples: train.len(),
        },
        &sft_trace,
    )?;
    let reward_config = HgrmConfig::default();
    let grpo_config = GrpoConfig {
        seed: args.seed.wrapping_add(1),
        ..GrpoConfig::default()
    };
    let (grpo_model, grpo_trace) = grpo::train(&sft_model, &train, &reward_config, &grpo_config);
    let grpo_dir = out.join("models/grpo");
    let grpo_digest = write_outputs(
        &grpo_dir,
        &grpo_model,
        |d| Checkpoint {
            stage: "grpo",
            model_sha256: d,
            onnx_sha256: None,
            parent_model_sha256: Some(sft_digest.clone()),
            dataset_manifest_hash: event_car.manifest_hash().clone(),
            seed: grpo_config.seed,
            until: Some(held_out_from),
            hyperparameters: serde_json::json!({"grpo": &grpo_config, "reward": &reward_config}),
            examples: train.len(),
        },
        &grpo_trace,
    )?;
    outln!(
        "      {} training events; SFT {}\n      SFT {sft_digest}; GRPO {grpo_digest}",
        train.len(),
        sft::describe_kept(&sft_trace)
    );
    bar.inc(1);

    bar.set_message("predicting");
    outln!("[4/9] predicting every event with both models");
    let sft_predictions = out.join("predictions-sft.jsonl");
    let grpo_predictions = out.join("predictions-grpo.jsonl");
    write_atomically(&sft_predictions, &predictions_jsonl(&sft_model, &event_car))?;
    write_atomically(
        &grpo_predictions,
        &predictions_jsonl(&grpo_model, &event_car),
    )?;
    bar.inc(1);

    bar.set_message("scoring with HGRM");
    outln!("[5/9] scoring the GRPO policy's outputs with the HGRM reward");
    // The policy's structured outputs, as the completions an LLM would write.
    let completions = out.join("completions-grpo.jsonl");
    write_atomically(&completions, &completions_jsonl(&grpo_model, &event_car))?;
    let rewards = score_files(&BatchArgs {
        event_car: event_car_path.clone(),
        completions: completions.clone(),
        config: None,
        strict: false,
        generated_at: None,
        out: out.clone(),
        // Counted by reason in one line (and in the summary), not one line per event.
        name_skipped: 0,
    })?;
    outln!(
        "      {} samples, mean reward {:+.4}",
        rewards.summary.samples,
        rewards.summary.mean_final_reward
    );
    bar.inc(1);

    bar.set_message("evaluating on the held-out window");
    outln!("[6/9] evaluating both models against the baseline from {held_out_from}");
    let args = |predictions: &Path,
                dir: &str,
                name: &str,
                with_rewards: bool,
                model: &crate::contracts::Sha256Hex,
                model_dir: &Path| {
        EvaluateArgs {
            name: name.to_string(),
            event_car: event_car_path.clone(),
            predictions: predictions.to_path_buf(),
            prices: prices.clone(),
            config: None,
            rewards: with_rewards.then(|| out.join("reward.json")),
            from: Some(held_out_from),
            regimes: None,
            indices: None,
            index: None,
            model_sha256: Some(model.to_string()),
            model: None,
            checkpoint: Some(model_dir.join("checkpoint.json")),
            generated_at: None,
            out: out.join(dir),
            note: note.clone(),
        }
    };
    let (sft_eval, _) = evaluate_files(&args(
        &sft_predictions,
        "evaluation-sft",
        "SFT",
        false,
        &sft_digest,
        &sft_dir,
    ))?;
    let grpo_args = args(
        &grpo_predictions,
        "evaluation-grpo",
        "SFT → GRPO",
        true,
        &grpo_digest,
        &grpo_dir,
    );
    let (grpo_eval, evidence) = evaluate_files(&grpo_args)?;
    // Does GRPO improve on its own SFT parent? Paired on the same days and events.
    let grpo_vs_sft = compare_predictions(&grpo_args, &sft_predictions)?;
    // SFT, GRPO and the baseline on one chart, over the same dates.
    let together = crate::evaluation::charts::lines(
        "NAV of the three models over the held-out window (start = 1)",
        "NAV (multiple of the starting capital)",
        &grpo_eval.nav_dates,
        &[
            ("baseline (type sign)", &grpo_eval.baseline.nav),
            ("SFT", &sft_eval.candidate.nav),
            ("SFT → GRPO", &grpo_eval.candidate.nav),
        ],
    )
    .map_err(CliError::Usage)?;
    write_atomically(&out.join("nav-all.svg"), together.as_bytes())?;
    let mut comparison = serde_json::to_vec_pretty(&grpo_vs_sft).expect("serializes");
    comparison.push(b'\n');
    write_atomically(&out.join("comparison-grpo-vs-sft.json"), &comparison)?;
    bar.inc(1);

    // [7/9] The GRPO candidate in shadow, through the decision service's own code.
    bar.set_message("serving the candidate in shadow");
    let onnx = std::fs::read(grpo_dir.join("model.onnx")).map_err(io(&grpo_dir))?;
    let config = |stage: &str| crate::runtime::config::RuntimeConfig {
        stage: stage.into(),
        candidate: CANDIDATE.into(),
        promotion_request: PAPER_REQUEST.into(),
        model_uri: "models/grpo/model.onnx".into(),
        model_sha256: crate::contracts::Sha256Hex::of_bytes(&onnx),
        history_uri: Some("event-car.json".into()),
        // Shadow: the model decides, nothing trades; paper: orders placed on paper.
        trading_enabled: stage != "shadow",
        force_fallback: false,
        policy_hash: None,
        canary_limits: None,
        lease_epoch: None,
    };
    // The runtime configuration of the candidate in shadow, for `janus serve --runtime-file`.
    let mut runtime_bytes =
        serde_json::to_vec_pretty(&config("shadow").to_data()).expect("serializes");
    runtime_bytes.push(b'\n');
    write_atomically(&out.join("runtime.json"), &runtime_bytes)?;
    let mut held_out: Vec<&EventCarRecord> = event_car
        .records
        .iter()
        .filter(|r| r.d0.is_some_and(|d| d >= held_out_from))
        .collect();
    held_out.sort_by_key(|r| r.timestamp);
    outln!(
        "[7/9] serving the GRPO candidate in shadow through the decision service: {} held-out events replayed through /v1/decide",
        held_out.len()
    );
    let service = DemoService::start(out)?;
    service.apply(&config("shadow"))?;
    let shadow_replay = service.replay(&held_out)?;
    let shadow = service.stats(
        "shadow",
        Some(PAPER_REQUEST),
        policy.gate0_data_integrity.allow_simulation,
    )?;
    let shadow_file = shadow.newest.as_ref().ok_or_else(|| {
        CliError::Runtime("the decision service wrote no shadow statistics".into())
    })?;
    std::fs::copy(shadow_file, out.join("runtime-shadow.json")).map_err(io(shadow_file))?;
    outln!("      {}", shadow_replay.line());
    bar.inc(1);

    // Gates for paper on the evidence and the service's own statistics.
    let evidence_path = out.join("evaluation-grpo/evidence.json");
    let bytes = std::fs::read(&evidence_path).map_err(io(&evidence_path))?;
    verify_bytes(&evidence_path, &bytes)?;
    // The generated scenario has a fixed calendar (same seed, same bytes), so its evidence is as
    // old as that calendar: under the shipped policy only, the demo accepts that age for gate1's
    // freshness rule, and says so; `--policy` or `--data` get the rule as written.
    if generated_under_shipped_policy {
        let age_days = (chrono::Utc::now() - evidence.generated_at).num_days() as f64 + 1.0;
        let rule = &mut policy.gate1_statistics.max_evidence_age_days;
        if age_days > *rule {
            outln!(
                "      the generated scenario ends {}: the demo accepts evidence {age_days} days \
                 old for gate1 (the shipped policy: {} days; on your data, or with --policy, the \
                 rule applies as written)",
                evidence.generated_at.date_naive(),
                *rule
            );
            *rule = age_days;
        }
    }
    let gates = |target: Target, runtime: Option<&RuntimeStats>| {
        evaluate_gates(
            target,
            &GateInputs {
                evidence: Ok(&evidence),
                runtime: runtime.ok_or("no runtime statistics count: see the refused files above"),
                operations: None,
                approval: None,
                recalibration_ref: None,
                now: chrono::Utc::now(),
            },
            &policy,
        )
    };
    let paper_decision = gates(Target::Paper, shadow.accepted.as_ref());
    write_decision(&out.join("gates-paper.json"), &paper_decision)?;
    outln!(
        "      gates for shadow → paper: {}",
        if paper_decision.allowed {
            "allowed"
        } else {
            "blocked"
        }
    );

    // [8/9] Promoted to paper when the gates allow: the paper window, replayed.
    let mut paper = None;
    if paper_decision.allowed {
        bar.set_message("paper window");
        outln!(
            "[8/9] promoted to paper: the paper window, the same events replayed (a simulation)"
        );
        service.apply(&config("paper"))?;
        let replay = service.replay(&held_out)?;
        // Under the shipped policy, as the operator reads it for paper → canary (gate3 decides
        // whether a simulation may stand for the paper window), and as measured, whatever the
        // policy says (for the summary).
        let read = service.stats("paper", None, policy.gate3_paper_trading.allow_simulation)?;
        let measured = service.stats("paper", None, true)?;
        if let Some(f) = &read.newest {
            std::fs::copy(f, out.join("runtime-paper.json")).map_err(io(f))?;
        }
        outln!("      {}", replay.line());
        paper = Some((replay, read, measured));
    } else {
        outln!("[8/9] not promoted to paper: the gates block it (below)");
    }
    bar.inc(1);

    // [9/9] Gates for canary.
    bar.set_message("gates for canary");
    let canary_decision = paper
        .as_ref()
        .map(|(_, read, _)| gates(Target::Canary, read.accepted.as_ref()));
    if let Some(d) = &canary_decision {
        write_decision(&out.join("gates-canary.json"), d)?;
        outln!(
            "[9/9] gates for paper → canary: {}",
            if d.allowed { "allowed" } else { "blocked" }
        );
    }
    bar.inc(1);
    bar.finish_and_clear();

    let stage = match (&canary_decision, paper_decision.allowed) {
        (Some(d), _) if d.allowed => "canary (allowed)",
        (_, true) => "paper",
        (_, false) => "shadow",
    };
    let lifecycle = Lifecycle {
        stage,
        shadow_replay: &shadow_replay,
        shadow: &shadow,
        paper_decision: &paper_decision,
        paper: paper
            .as_ref()
            .map(|(r, read, measured)| (r, read, measured)),
        canary_decision: canary_decision.as_ref(),
        policy: &policy,
        unscored: &rewards.summary.unscored_by_reason,
    };
    let summary = summary_markdown(
        held_out_from,
        &sft_eval,
        &grpo_eval,
        &grpo_vs_sft,
        &lifecycle,
        note.as_deref(),
    );
    write_atomically(&out.join("summary.md"), summary.as_bytes())?;
    commit(out, &final_out)?;
    outln!("\n{summary}");
    outln!(
        "artifacts, reports and charts are in {}",
        final_out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The candidate's name in the demo's runtime configurations and statistics.
const CANDIDATE: &str = "demo-grpo";
/// The PromotionRequest (target paper) that serves the candidate in shadow, then at paper.
const PAPER_REQUEST: &str = "demo-grpo-paper";

fn write_decision(path: &Path, decision: &crate::gates::Decision) -> Result<(), CliError> {
    let mut bytes = serde_json::to_vec_pretty(decision).expect("serializes");
    bytes.push(b'\n');
    Ok(write_atomically(path, &bytes)?)
}

/// The demo's output folder is built under a staging folder beside it, then put in place at
/// once: a reader finds the previous run's outputs, or none, or this run's, never a mix. An
/// existing `--out` must be empty or a previous demo's (it holds `summary.md`): it is replaced.
fn staging(out: &Path) -> Result<PathBuf, CliError> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map_err(io(out))?.next().is_none();
        if !empty && !out.join("summary.md").exists() {
            return Err(CliError::Usage(format!(
                "--out {}: exists and is not a previous demo's output (no summary.md); choose another folder",
                out.display()
            )));
        }
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "janus-demo".into());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = parent.join(format!(".{name}.staging.{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// Puts the staged folder in place of `out` (the previous run's is moved aside first, then
/// removed).
fn commit(staged: &Path, out: &Path) -> Result<(), CliError> {
    let old = staged.with_extension("old");
    if out.exists() {
        std::fs::rename(out, &old).map_err(io(out))?;
    }
    std::fs::rename(staged, out).map_err(io(out))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// What a replay through `/v1/decide` got back.
#[derive(Debug, Default)]
struct Replay {
    sent: u64,
    /// Answers by `source` (`model`, `fallback`, `halted`, `suppressed`).
    by_source: BTreeMap<String, u64>,
    /// Requests the service refused (not 200), by status.
    refused: BTreeMap<u16, u64>,
    traded: u64,
}

impl Replay {
    fn line(&self) -> String {
        let sources: Vec<String> = self
            .by_source
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let refused: u64 = self.refused.values().sum();
        format!(
            "{} events: {}; {} orders; {refused} requests refused",
            self.sent,
            sources.join(", "),
            self.traded
        )
    }
}

/// Statistics the service wrote for one stage, read back as the operator reads them.
#[derive(Debug)]
struct StageStats {
    /// The merged figures of the files that count (`runtime::stats::accept`).
    accepted: Option<RuntimeStats>,
    /// Files refused, with the reason.
    refused: Vec<String>,
    /// The sealed file holding the newest window.
    newest: Option<PathBuf>,
    source: Option<StatsSource>,
}

/// `janus serve`'s service and router, in-process: events go through the router's
/// `/v1/decide` without a socket, and the service writes its sealed statistics under the
/// demo's folder (its artifacts root), marked `source: simulation`.
struct DemoService {
    runtime: tokio::runtime::Runtime,
    service: std::sync::Arc<crate::serve::Service>,
    router: axum::Router,
    root: PathBuf,
}

impl DemoService {
    fn start(root: &Path) -> Result<Self, CliError> {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: crate::serve::ServeArgs,
        }
        let runtime_file = root.join("runtime.json");
        let args: Vec<std::ffi::OsString> = vec![
            "janus-serve".into(),
            "--runtime-file".into(),
            runtime_file.into_os_string(),
            // One window per stage: flushed when the replay ends.
            "--stats-interval".into(),
            "86400".into(),
            "--replica".into(),
            "demo".into(),
            "--simulation".into(),
        ];
        let serve = <Serve as clap::Parser>::try_parse_from(args)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let service =
            std::sync::Arc::new(crate::serve::Service::new(&serve.args).map_err(CliError::Usage)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| CliError::Runtime(format!("cannot start the runtime: {e}")))?;
        let router = crate::serve::router(service.clone());
        Ok(Self {
            runtime,
            service,
            router,
            root: root.to_path_buf(),
        })
    }

    /// One request through the router: (status, body).
    async fn call(
        router: &axum::Router,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), CliError> {
        use tower::ServiceExt as _;
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .map_err(|e| CliError::Runtime(format!("{method} {path}: {e}")))?;
        let response = router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| CliError::Runtime(format!("{method} {path}: {e}")))?;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .map_err(|e| CliError::Runtime(format!("{method} {path}: {e}")))?;
        Ok((status, bytes.to_vec()))
    }

    /// Applies a runtime configuration and waits until its model has settled (loaded, or
    /// refused with a reason).
    fn apply(&self, config: &crate::runtime::config::RuntimeConfig) -> Result<(), CliError> {
        let (service, router) = (self.service.clone(), self.router.clone());
        let data = config.to_data();
        self.runtime.block_on(async move {
            service.apply(Ok(data));
            let started = std::time::Instant::now();
            loop {
                let (_, body) = Self::call(&router, "GET", "/v1/runtime", Vec::new()).await?;
                let r: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                match (r["model"].as_str(), r["model_error"].as_str()) {
                    (Some("loaded"), _) => return Ok(()),
                    (_, Some(e)) if e != "loading the model" && e != "no model loaded yet" => {
                        return Err(CliError::Runtime(format!(
                            "the decision service refused the demo's model: {e}"
                        )));
                    }
                    _ if started.elapsed() > std::time::Duration::from_secs(60) => {
                        return Err(CliError::Runtime(
                            "the decision service did not load the model within 60 s".into(),
                        ));
                    }
                    _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            }
        })
    }

    /// Sends every event to `/v1/decide` as if it arrived now, in order, one at a time.
    fn replay(&self, events: &[&EventCarRecord]) -> Result<Replay, CliError> {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let mut replay = Replay::default();
            for r in events {
                let body = serde_json::to_vec(&serde_json::json!({"event": {
                    "event_id": r.event_id, "timestamp": chrono::Utc::now().to_rfc3339(),
                    "symbol": r.symbol, "event_type": r.source_event_type, "title": r.title}}))
                .expect("serializes");
                replay.sent += 1;
                let (status, body) = Self::call(&router, "POST", "/v1/decide", body).await?;
                if status != 200 {
                    *replay.refused.entry(status).or_default() += 1;
                    continue;
                }
                let d: crate::runtime::decision::Decision =
                    serde_json::from_slice(&body).map_err(|e| {
                        CliError::Runtime(format!("a decision that does not parse: {e}"))
                    })?;
                *replay
                    .by_source
                    .entry(d.source.name().to_string())
                    .or_default() += 1;
                replay.traded += u64::from(d.notional != 0.0);
            }
            Ok(replay)
        })
    }

    /// Closes the service's window and reads every sealed file of `stage` back through the
    /// artifact reader, kept or refused as the operator does (`runtime::stats::accept`).
    fn stats(
        &self,
        stage: &str,
        request: Option<&str>,
        allow_simulation: bool,
    ) -> Result<StageStats, CliError> {
        let now = chrono::Utc::now();
        self.service.flush_stats(now);
        let dir = self.root.join(stats::stage_dir(CANDIDATE, stage));
        let mut files = Vec::new();
        let mut newest: Option<(chrono::DateTime<chrono::Utc>, PathBuf)> = None;
        // Named relative to the demo's folder (the staging folder is renamed at the end).
        for (p, name, read) in stats::read_stage(&self.root, CANDIDATE, stage).map_err(io(&dir))? {
            if let Ok(a) = &read
                && a.counts.events > 0
                && newest.as_ref().is_none_or(|(t, _)| a.window_end > *t)
            {
                newest = Some((a.window_end, p));
            }
            files.push((name, read));
        }
        let model = crate::contracts::Sha256Hex::of_bytes(
            &std::fs::read(self.root.join("models/grpo/model.onnx")).map_err(io(&self.root))?,
        );
        let accepted = stats::accept(
            files,
            &stats::Wanted {
                candidate: CANDIDATE,
                stage,
                model_sha256: &model,
                promotion_request: request,
                allow_simulation,
                // A replay's statistics are simulations, unsigned: no key is needed to read them.
                key: None,
            },
            now,
        );
        let mut refused: Vec<String> = accepted.refused.iter().map(|r| r.to_string()).collect();
        refused.extend(accepted.unmergeable.map(|e| e.to_string()));
        Ok(StageStats {
            source: accepted.merged.as_ref().map(|m| m.source),
            accepted: accepted.merged.map(|m| m.stats),
            refused,
            newest: newest.map(|(_, p)| p),
        })
    }
}

/// What the lifecycle reached, for the summary.
struct Lifecycle<'a> {
    stage: &'a str,
    shadow_replay: &'a Replay,
    shadow: &'a StageStats,
    paper_decision: &'a crate::gates::Decision,
    /// The paper replay, its statistics as the operator reads them, and as measured.
    paper: Option<(&'a Replay, &'a StageStats, &'a StageStats)>,
    canary_decision: Option<&'a crate::gates::Decision>,
    policy: &'a GatePolicy,
    /// Completions the reward could not score, by reason.
    unscored: &'a BTreeMap<String, u64>,
}

/// The paragraph that says, beside every figure of a run on the generated scenario, that the
/// data is synthetic and what its ceiling is (figures from docs/performance.md, seed 42).
pub fn synthetic_note(seed: u64) -> String {
    format!(
        "**Synthetic data.** These figures come from a generated scenario (seed {seed}), not \
         from markets. Planted effects are a quarter of the paper's mean |CAR| per type; a \
         headline names its event's polarity 80 % of the time and its type 80 % of the time \
         (the models read only the headline, never the type label). The ceiling: reading every \
         headline's polarity right and trading every event gives DA ≈ 0.56 and SR ≈ 6.7 on \
         seed 42's window, and naming the type whenever the headline does (else guessing the commonest) ETA ≈ 0.84 \
         (docs/performance.md). Thousands of small independent bets a day diversify almost \
         all risk away, so an SR near 6 with a max drawdown under 1 % is expected here; real \
         event strategies are far noisier, and no real-market claim follows from these numbers."
    )
}

fn summary_markdown(
    from: chrono::NaiveDate,
    sft: &Evaluation,
    grpo: &Evaluation,
    grpo_vs_sft: &Evaluation,
    lifecycle: &Lifecycle<'_>,
    note: Option<&str>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Janus demo summary\n\nHeld-out window from {from}: {} return days.\n",
        grpo.trading_days
    );
    if let Some(note) = note {
        let _ = writeln!(md, "{note}\n");
    }
    let _ = writeln!(
        md,
        "| model | SR | MDD | ARR | DA | ETA | trades |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for (name, m) in [
        ("baseline (type sign)", &grpo.baseline),
        ("SFT", &sft.candidate),
        ("SFT → GRPO", &grpo.candidate),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            present::metric("sr", m.metrics.sr),
            present::metric("mdd", Some(m.metrics.mdd)),
            present::metric("arr", m.metrics.arr),
            present::metric("da", m.da),
            present::metric("eta", m.eta),
            present::count(m.trades as u64)
        );
    }
    let _ = writeln!(md, "\n![NAV of the three models](nav-all.svg)\n");
    // Every n/a in the table, with its reason.
    for (name, m) in [
        ("baseline", &grpo.baseline),
        ("SFT", &sft.candidate),
        ("GRPO", &grpo.candidate),
    ] {
        for key in ["sr", "mdd", "arr", "da", "eta"] {
            if let Some(why) = m.null_reasons.get(key) {
                let _ = writeln!(md, "- {name} {}: n/a — {why}", key.to_uppercase());
            }
        }
    }
    let conf = grpo.significance.confidence * 100.0;
    let _ = writeln!(
        md,
        "\nDeltas ({conf:.0}% bootstrap intervals, one-sided p of Δ ≤ 0; paired on the same days and events):\n\n| comparison | ΔSR | ΔDA | ΔETA |\n| --- | --- | --- | --- |"
    );
    let mut delta_reasons: Vec<(String, String)> = Vec::new();
    for (name, e) in [
        ("SFT − baseline", sft),
        ("GRPO − baseline", grpo),
        ("GRPO − SFT", grpo_vs_sft),
    ] {
        // An n/a cell's reason is listed once under the table.
        let mut cell = |d: Option<&crate::contracts::evidence::Delta>, key: &str| match d {
            Some(d) => present::delta(d),
            None => {
                let why = e.null_reasons.get(key).map_or("undefined", String::as_str);
                if !delta_reasons.iter().any(|(_, w)| w == why) {
                    delta_reasons.push((
                        key.trim_end_matches("_delta").to_uppercase(),
                        why.to_string(),
                    ));
                }
                format!(
                    "n/a ({})",
                    delta_reasons
                        .iter()
                        .position(|(_, w)| w == why)
                        .unwrap_or(0)
                        + 1
                )
            }
        };
        let (sr, da, eta) = (
            cell(e.sr_delta.as_ref(), "sr_delta"),
            cell(e.da_delta.as_ref(), "da_delta"),
            cell(e.eta_delta.as_ref(), "eta_delta"),
        );
        let _ = writeln!(md, "| {name} | {} | {} | {} |", sr, da, eta);
    }
    for (i, (what, why)) in delta_reasons.iter().enumerate() {
        let _ = writeln!(md, "\n({}) Δ{what} n/a: {why}", i + 1);
    }
    lifecycle_markdown(&mut md, lifecycle);
    md
}

/// A gate status as the decision spells it.
fn status_name(status: crate::gates::GateStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Every gate of a decision: each number it compared with its threshold, and every reason.
fn gates_table(md: &mut String, decision: &crate::gates::Decision) {
    use crate::gates::Bound;
    let _ = writeln!(
        md,
        "| gate | status | measured | threshold |\n| --- | --- | --- | --- |"
    );
    for g in &decision.gates {
        let status = status_name(g.status);
        let mut rows: Vec<(String, String)> = g
            .measured
            .iter()
            .map(|m| {
                let bound = match m.bound {
                    Bound::AtMost => "≤",
                    Bound::AtLeast => "≥",
                    Bound::Above => ">",
                };
                let mark = if m.passed { "" } else { " ✗" };
                (
                    format!("{} {}{mark}", m.code, num(m.measured)),
                    format!("{bound} {}", num(m.threshold)),
                )
            })
            .collect();
        // Reasons without a number (missing inputs, switches) in the measured column.
        for r in g.reasons.iter().filter(|r| r.measured.is_none()) {
            rows.push((format!("✗ {}", r.message), String::new()));
        }
        if rows.is_empty() {
            rows.push(("—".into(), String::new()));
        }
        for (i, (measured, threshold)) in rows.iter().enumerate() {
            let (gate, status) = if i == 0 {
                (format!("{} {}", g.id, g.name), status.as_str())
            } else {
                (String::new(), "")
            };
            let _ = writeln!(md, "| {gate} | {status} | {measured} | {threshold} |");
        }
    }
}

/// Shadow → paper → canary: what each stage measured, every gate, and for canary why it is
/// blocked and what would unblock it on a cluster.
fn lifecycle_markdown(md: &mut String, l: &Lifecycle<'_>) {
    let _ = writeln!(md, "\n## The lifecycle: stage reached **{}**\n", l.stage);
    let unscored: Vec<String> = l.unscored.iter().map(|(r, n)| format!("{r} {n}")).collect();
    if !unscored.is_empty() {
        let _ = writeln!(
            md,
            "Completions the HGRM reward did not score (counted in `reward.json`): {}.\n",
            unscored.join(", ")
        );
    }
    let source = |s: &StageStats| s.source.map_or("none", StatsSource::name);
    let _ = writeln!(
        md,
        "**Shadow.** The GRPO candidate was served in shadow by the decision service's own code \
         (`janus serve`'s router, in-process): {}. Its sealed statistics are \
         `runtime-shadow.json` (`source: {}`: a replay, which the policy accepts for \
         shadow → paper, `gate0_data_integrity.allow_simulation: {}`).\n",
        l.shadow_replay.line(),
        source(l.shadow),
        l.policy.gate0_data_integrity.allow_simulation
    );
    for why in &l.shadow.refused {
        let _ = writeln!(md, "- refused: {why}");
    }
    let verdict = |d: &crate::gates::Decision| if d.allowed { "allowed" } else { "blocked" };
    let _ = writeln!(
        md,
        "### Gates for shadow → paper: **{}** (`gates-paper.json`)\n",
        verdict(l.paper_decision)
    );
    gates_table(md, l.paper_decision);
    let Some((replay, read, measured)) = l.paper else {
        let _ = writeln!(
            md,
            "\nNot promoted to paper: the gates above block it. Fix what they name and run again."
        );
        return;
    };
    let _ = writeln!(
        md,
        "\n**Paper.** Promoted to paper, the same held-out events were replayed through the \
         service with trading on (paper orders): {}. Its sealed statistics are \
         `runtime-paper.json` (`source: {}`).",
        replay.line(),
        source(measured)
    );
    let window_hours = measured
        .accepted
        .as_ref()
        .map(|s| (s.window_end - s.window_start).num_milliseconds() as f64 / 3.6e6);
    if let Some(s) = &measured.accepted {
        let _ = writeln!(
            md,
            "Measured over that window: {:.4} h, latency p95 {} ms, error ratio {}, fallback \
             ratio {}, timeout ratio {}, symbol coverage {}.\n",
            window_hours.unwrap_or(0.0),
            s.latency_p95_ms.map_or("n/a".into(), num),
            s.error_ratio.map_or("n/a".into(), num),
            s.fallback_ratio.map_or("n/a".into(), num),
            s.timeout_ratio.map_or("n/a".into(), num),
            s.symbol_coverage.map_or("n/a".into(), num),
        );
    }
    let Some(canary) = l.canary_decision else {
        return;
    };
    let _ = writeln!(
        md,
        "### Gates for paper → canary: **{}** (`gates-canary.json`)\n",
        verdict(canary)
    );
    gates_table(md, canary);
    if canary.allowed {
        return;
    }
    let _ = writeln!(
        md,
        "\nWhy canary is blocked, and what would give each on a cluster:\n"
    );
    let failed = |code: &str| {
        canary
            .failed()
            .any(|g| g.reasons.iter().any(|r| r.code == code))
    };
    if failed("live_disabled") {
        let _ = writeln!(
            md,
            "- **Live trading is off in the shipped policy** (`gate5_live.live_enabled: false`, the \
             plan's \"no unbounded live rollout\"). Turning it on is a reviewed change in Git: set it \
             to `true` in `config/gate-policy.json`, `cp config/gate-policy.json \
             charts/janus-operator/files/gate-policy.json`, commit, and let Argo CD sync \
             (`argocd app sync janus`)."
        );
    }
    if failed("missing_paper_window") || read.accepted.is_none() {
        let _ = writeln!(
            md,
            "- **The paper window is a simulation{}.** The policy does not let a replay stand for \
             it (`gate3_paper_trading.allow_simulation: {}`), and the window must run {} h or more \
             (this replay ran {:.4} h). On a cluster, the chart's decision service serves the paper \
             request on live events (`janus serve --promotion-request janus/{PAPER_REQUEST}`, \
             writing its own windows under `candidates/{CANDIDATE}/runtime/paper/`) for 72 h: \
             `kubectl -n janus get promotionrequest {PAPER_REQUEST} -o jsonpath='{{.status.phase}}'` \
             says `Promoted`, then wait.",
            if window_hours.is_some_and(|h| h < l.policy.gate3_paper_trading.min_window_hours) {
                " and shorter than the policy's window"
            } else {
                ""
            },
            l.policy.gate3_paper_trading.allow_simulation,
            l.policy.gate3_paper_trading.min_window_hours,
            window_hours.unwrap_or(0.0)
        );
        for why in &read.refused {
            let _ = writeln!(md, "  - refused: {why}");
        }
    }
    if failed("missing_approval") {
        let _ = writeln!(
            md,
            "- **No human approval.** An approver records it on the canary request: \
             `kubectl -n janus annotate promotionrequest {CANDIDATE}-canary janus.torghut.io/approve=true`."
        );
    }
    if failed("missing_operations") {
        let _ = writeln!(
            md,
            "- **No drill or runbook validation on record.** On-call rehearses and records them: \
             `kubectl -n janus annotate promotionrequest {CANDIDATE}-canary \
             janus.torghut.io/record-rollback-drill=now janus.torghut.io/record-kill-switch-drill=now \
             janus.torghut.io/validate-runbook=true` (docs/runbooks/rollback-drill.md)."
        );
    }
}

/// A measured value or threshold: integers as integers, small values in scientific notation.
fn num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}
