//! `janus train sft|grpo` and `janus predict`: the reference trainer behind the trainer
//! contract (docs/trainer-contract.md).

use super::{CliError, CliResult};
use crate::cli::output::outln;
use crate::contracts::artifact::write_atomically;
use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::{Artifact, Sha256Hex, read_artifact};
use crate::reward::HgrmConfig;
use crate::training::grpo::{self, GrpoConfig};
use crate::training::policy::PolicyModel;
use crate::training::sft::{self, SftConfig};
use crate::training::{encode_all, examples};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub stage: TrainStage,
}

#[derive(Debug, Args)]
pub struct Common {
    /// The labelled dataset (janus-event-car-v1).
    #[arg(long)]
    pub event_car: PathBuf,
    /// Train only on events whose label window ends before this date (held-out window after).
    #[arg(long)]
    pub until: Option<NaiveDate>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output directory: model.json, checkpoint.json, training-trace.jsonl, result.json.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum TrainStage {
    /// Supervised fit to the labels.
    Sft {
        #[command(flatten)]
        common: Common,
        /// The most epochs; training stops earlier when the validation loss stops falling.
        #[arg(long, default_value_t = SftConfig::default().epochs)]
        epochs: u32,
        #[arg(long, default_value_t = SftConfig::default().learning_rate)]
        learning_rate: f32,
        /// Decoupled weight decay on the weight matrices.
        #[arg(long, default_value_t = SftConfig::default().weight_decay)]
        weight_decay: f32,
        /// Share of the training events (the most recent) held back to choose the epoch; 0
        /// trains on all of them for --epochs.
        #[arg(long, default_value_t = SftConfig::default().validation_fraction)]
        validation_fraction: f64,
        /// Stop after this many epochs without a lower validation loss.
        #[arg(long, default_value_t = SftConfig::default().patience)]
        patience: u32,
    },
    /// GRPO from an SFT policy under the HGRM reward.
    Grpo {
        #[command(flatten)]
        common: Common,
        /// The SFT model.json (also the KL reference).
        #[arg(long)]
        init: PathBuf,
        /// HGRM configuration (config/hgrm.yaml); defaults when omitted.
        #[arg(long)]
        reward_config: Option<PathBuf>,
        #[arg(long, default_value_t = GrpoConfig::default().steps)]
        steps: u32,
        /// Events per step.
        #[arg(long, default_value_t = GrpoConfig::default().batch_size)]
        batch_size: usize,
        /// G: sampled outputs per event.
        #[arg(long, default_value_t = GrpoConfig::default().group_size)]
        group_size: usize,
        #[arg(long, default_value_t = GrpoConfig::default().learning_rate)]
        learning_rate: f32,
        /// β of the KL penalty to the SFT reference.
        #[arg(long, default_value_t = GrpoConfig::default().kl_coef)]
        kl_coef: f32,
        #[arg(long, default_value_t = GrpoConfig::default().clip_range)]
        clip_range: f32,
        #[arg(long, default_value_t = GrpoConfig::default().max_grad_norm)]
        max_grad_norm: f32,
    },
}

/// The checkpoint lineage record: SFT → GRPO → parent digests.
#[derive(Debug, Serialize)]
pub struct Checkpoint {
    pub stage: &'static str,
    pub model_sha256: Sha256Hex,
    /// SHA-256 of `model.onnx`, the exported graph the decision service runs.
    pub onnx_sha256: Option<Sha256Hex>,
    pub parent_model_sha256: Option<Sha256Hex>,
    pub dataset_manifest_hash: Sha256Hex,
    pub seed: u64,
    pub until: Option<NaiveDate>,
    pub hyperparameters: serde_json::Value,
    pub examples: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn load_model(path: &Path) -> Result<(PolicyModel, Sha256Hex), CliError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let model: PolicyModel = serde_json::from_slice(&bytes).map_err(|e| {
        CliError::Usage(format!(
            "{}: not a reference policy model: {e}",
            path.display()
        ))
    })?;
    model
        .validate()
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    Ok((model, Sha256Hex::of_bytes(&bytes)))
}

/// Writes the model and its lineage; returns the model's digest.
pub fn write_outputs(
    out: &Path,
    model: &PolicyModel,
    checkpoint: impl FnOnce(Sha256Hex) -> Checkpoint,
    trace: &[impl Serialize],
) -> Result<Sha256Hex, CliError> {
    let mut bytes = serde_json::to_vec(model).expect("model serializes");
    bytes.push(b'\n');
    let digest = Sha256Hex::of_bytes(&bytes);
    let onnx = crate::training::onnx::export(model);
    let mut cp = checkpoint(digest.clone());
    cp.onnx_sha256 = Some(Sha256Hex::of_bytes(&onnx));
    let mut cp_bytes = serde_json::to_vec_pretty(&cp).expect("serializes");
    cp_bytes.push(b'\n');
    let mut lines = Vec::new();
    for t in trace {
        serde_json::to_writer(&mut lines, t).expect("serializes");
        lines.push(b'\n');
    }
    let result = serde_json::json!({"stage": cp.stage, "model_sha256": digest, "onnx_sha256": cp.onnx_sha256, "parent_model_sha256": cp.parent_model_sha256, "examples": cp.examples});
    let result_text = serde_json::to_string(&result).expect("serializes");
    // Committed as a set (see `write_set`), the checkpoint that names the model's digests and
    // the result last: a crash never pairs a new model with an old checkpoint.
    crate::contracts::artifact::write_set(
        out,
        &[
            ("model.json", &bytes),
            ("model.onnx", &onnx),
            ("training-trace.jsonl", &lines),
            ("checkpoint.json", &cp_bytes),
            ("result.json", result_text.as_bytes()),
        ],
    )?;
    super::termination_message(&result_text);
    Ok(digest)
}

pub fn run(args: TrainArgs) -> CliResult {
    match args.stage {
        TrainStage::Sft {
            common,
            epochs,
            learning_rate,
            weight_decay,
            validation_fraction,
            patience,
        } => {
            if !(0.0..=0.5).contains(&validation_fraction) {
                return Err(CliError::Usage(
                    "--validation-fraction must lie between 0 and 0.5".into(),
                ));
            }
            let artifact: EventCarArtifact = read_artifact(&common.event_car)?;
            let config = SftConfig {
                seed: common.seed,
                epochs,
                learning_rate,
                weight_decay,
                validation_fraction,
                patience,
                ..SftConfig::default()
            };
            let data = examples(&artifact, config.buckets, common.until);
            if data.is_empty() {
                return Err(CliError::Usage(
                    "no labelled events to train on (check --until)".into(),
                ));
            }
            let (model, trace) = sft::train(&data, &config);
            let digest = write_outputs(
                &common.out,
                &model,
                |d| Checkpoint {
                    stage: "sft",
                    model_sha256: d,
                    onnx_sha256: None,
                    parent_model_sha256: None,
                    dataset_manifest_hash: artifact.manifest_hash().clone(),
                    seed: common.seed,
                    until: common.until,
                    hyperparameters: serde_json::to_value(&config).expect("serializes"),
                    examples: data.len(),
                },
                &trace,
            )?;
            outln!(
                "SFT on {} events: {}; model {digest}",
                data.len(),
                sft::describe_kept(&trace)
            );
        }
        TrainStage::Grpo {
            common,
            init,
            reward_config,
            steps,
            batch_size,
            group_size,
            learning_rate,
            kl_coef,
            clip_range,
            max_grad_norm,
        } => {
            let artifact: EventCarArtifact = read_artifact(&common.event_car)?;
            let (sft_model, parent) = load_model(&init)?;
            let reward: HgrmConfig = match &reward_config {
                Some(p) => crate::config::load(p)?,
                None => HgrmConfig::default(),
            };
            let config = GrpoConfig {
                seed: common.seed,
                steps,
                batch_size,
                group_size,
                learning_rate,
                kl_coef,
                clip_range,
                max_grad_norm,
                ..GrpoConfig::default()
            };
            let data = examples(&artifact, sft_model.buckets, common.until);
            let (model, trace) = grpo::train(&sft_model, &data, &reward, &config);
            let digest = write_outputs(
                &common.out,
                &model,
                |d| Checkpoint {
                    stage: "grpo",
                    model_sha256: d,
                    onnx_sha256: None,
                    parent_model_sha256: Some(parent),
                    dataset_manifest_hash: artifact.manifest_hash().clone(),
                    seed: common.seed,
                    until: common.until,
                    hyperparameters: serde_json::json!({"grpo": &config, "reward": &reward}),
                    examples: data.len(),
                },
                &trace,
            )?;
            let tail = &trace[trace.len().saturating_sub(20)..];
            let head = &trace[..trace.len().min(20)];
            let mean = |t: &[grpo::GrpoStep]| {
                t.iter().map(|s| s.mean_reward).sum::<f64>() / t.len().max(1) as f64
            };
            outln!(
                "GRPO {} steps: mean sampled reward {:.4} (first 20 steps) → {:.4} (last 20); model {digest}",
                trace.len(),
                mean(head),
                mean(tail)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub event_car: PathBuf,
    /// Output JSON Lines of predictions (the format `janus evaluate` reads).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the predictions as model completions (`{"event_id", "completion"}` lines, the
    /// format `janus reward` scores).
    #[arg(long)]
    pub completions: Option<PathBuf>,
}

/// Predictions of a model for every event of an artifact, as JSON Lines, each with the
/// probability the direction head gave the called direction (`direction_probability`).
pub fn predictions_jsonl(model: &PolicyModel, artifact: &EventCarArtifact) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, x) in encode_all(artifact, model.buckets) {
        let f = model.forward(&x);
        let mut v = serde_json::to_value(f.prediction()).expect("serializes");
        v["event_id"] = serde_json::Value::String(id);
        v["direction_probability"] = serde_json::json!(f.direction_probability());
        serde_json::to_writer(&mut out, &v).expect("serializes");
        out.push(b'\n');
    }
    out
}

/// The same predictions as the completions a language model would write under the output
/// contract (docs/model-output.md), so the HGRM reward scores the policy like any other model.
pub fn completions_jsonl(model: &PolicyModel, artifact: &EventCarArtifact) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, x) in encode_all(artifact, model.buckets) {
        let mut v = serde_json::to_value(model.predict(&x)).expect("serializes");
        v["reasoning"] = serde_json::json!("Reference policy: event type and headline tokens.");
        let line = serde_json::json!({"event_id": id, "completion": v.to_string()});
        serde_json::to_writer(&mut out, &line).expect("serializes");
        out.push(b'\n');
    }
    out
}

pub fn predict(args: PredictArgs) -> CliResult {
    let (model, _) = load_model(&args.model)?;
    let artifact: EventCarArtifact = read_artifact(&args.event_car)?;
    write_atomically(&args.out, &predictions_jsonl(&model, &artifact))?;
    if let Some(path) = &args.completions {
        write_atomically(path, &completions_jsonl(&model, &artifact))?;
    }
    outln!(
        "wrote {} predictions to {}",
        artifact.records.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
