//! The Jobs of a JanusRun's steps, built as plain values: deterministic names (so a restarted
//! operator finds the Job it already created instead of making another), an owner reference to
//! the run, labels, the step's image and command, the run's seed and hashes in the environment,
//! `SOURCE_DATE_EPOCH` from the run's creation (so every artifact of a run, and of its replay,
//! carries the same `generated_at`), a deadline, no retries, and the termination message the
//! operator reads the step's result from.

use crate::contracts::{Sha256Hex, canonical_hash};
use crate::crd::JanusRun;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvVar, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// The steps of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Label,
    Sft,
    Grpo,
    Evaluate,
    Replay,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Label,
        Step::Sft,
        Step::Grpo,
        Step::Evaluate,
        Step::Replay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Label => "label",
            Step::Sft => "sft",
            Step::Grpo => "grpo",
            Step::Evaluate => "evaluate",
            Step::Replay => "replay",
        }
    }

    /// How long the step may run before Kubernetes stops it.
    pub fn deadline_seconds(self) -> i64 {
        match self {
            Step::Label | Step::Evaluate | Step::Replay => 3600,
            Step::Sft | Step::Grpo => 6 * 3600,
        }
    }
}

/// Where the artifacts volume is mounted in every step.
pub const ARTIFACTS: &str = "/artifacts";
/// Where the run's configuration ConfigMap is mounted.
pub const RUN_CONFIG: &str = "/etc/janus-run";

/// A Kubernetes name of at most 63 characters: `<base>-<suffix>`, with the base shortened and a
/// hash of it appended when too long, so distinct runs never share a name.
pub fn bounded_name(base: &str, suffix: &str) -> String {
    let full = format!("{base}-{suffix}");
    if full.len() <= 63 {
        return full;
    }
    let hash = &Sha256Hex::of_bytes(base.as_bytes()).to_string()[..8];
    let keep = 63 - suffix.len() - hash.len() - 2;
    let cut: String = base.chars().take(keep).collect();
    format!("{}-{hash}-{suffix}", cut.trim_end_matches('-'))
}

pub fn job_name(run: &str, step: Step) -> String {
    bounded_name(run, step.name())
}

pub fn config_map_name(run: &str) -> String {
    bounded_name(run, "config")
}

/// The run's step configurations, as files for the config volume.
pub fn config_map_data(run: &JanusRun) -> BTreeMap<String, String> {
    let spec = &run.spec;
    let yaml = |v: serde_json::Value| serde_yaml::to_string(&v).expect("configs serialize");
    BTreeMap::from([
        (
            "labeling.yaml".to_string(),
            yaml(
                serde_json::to_value(spec.labeling.clone().unwrap_or_default())
                    .expect("serializes"),
            ),
        ),
        (
            "hgrm.yaml".to_string(),
            yaml(
                serde_json::to_value(spec.reward.clone().unwrap_or_default()).expect("serializes"),
            ),
        ),
        (
            "evaluation.yaml".to_string(),
            yaml(
                serde_json::to_value(spec.evaluation.clone().unwrap_or_default())
                    .expect("serializes"),
            ),
        ),
    ])
}

/// Canonical hash of everything in the spec that determines the run's results.
pub fn run_config_hash(run: &JanusRun) -> Sha256Hex {
    canonical_hash(&run.spec).expect("specs are canonicalizable")
}

/// The step's command line (`janus ...`, or a shell chain of `janus` calls).
/// Appends `flag value` when the value is set.
fn optional_flag<T: ToString>(args: &mut Vec<String>, flag: &str, value: Option<T>) {
    if let Some(v) = value {
        args.extend([flag.to_string(), v.to_string()]);
    }
}

pub fn command(run: &JanusRun, step: Step) -> Vec<String> {
    let spec = &run.spec;
    let name = run.metadata.name.as_deref().unwrap_or_default();
    let dir = format!("{ARTIFACTS}/{}", super::run::run_dir(name));
    let dataset = format!("{ARTIFACTS}/{}", spec.dataset.uri.trim_start_matches('/'));
    let s = |v: &str| v.to_string();
    let until = &spec.held_out_from;
    match step {
        Step::Label => vec![
            s("janus"),
            s("label"),
            s("--dataset"),
            dataset,
            s("--expect-dataset-hash"),
            spec.dataset.sha256.to_string(),
            s("--config"),
            format!("{RUN_CONFIG}/labeling.yaml"),
            s("--out"),
            format!("{ARTIFACTS}/{}", output_dir(name, step)),
        ],
        Step::Sft => {
            let t = &spec.training.sft;
            let mut args = vec![
                s("janus"),
                s("train"),
                s("sft"),
                s("--event-car"),
                format!("{dir}/event-car.json"),
                s("--until"),
                until.clone(),
                s("--seed"),
                t.seed.to_string(),
                s("--epochs"),
                t.epochs.to_string(),
                s("--learning-rate"),
                t.learning_rate.to_string(),
            ];
            // Optional hyperparameters are passed only when set, so a trainer image that
            // does not know them still runs a spec that does not use them.
            optional_flag(&mut args, "--weight-decay", t.weight_decay);
            optional_flag(&mut args, "--validation-fraction", t.validation_fraction);
            optional_flag(&mut args, "--patience", t.patience);
            args.extend([
                s("--out"),
                format!("{ARTIFACTS}/{}", output_dir(name, step)),
            ]);
            args
        }
        Step::Grpo => {
            let g = &spec.training.grpo;
            let mut args = vec![
                s("janus"),
                s("train"),
                s("grpo"),
                s("--event-car"),
                format!("{dir}/event-car.json"),
                s("--until"),
                until.clone(),
                s("--init"),
                format!("{dir}/models/sft/model.json"),
                s("--reward-config"),
                format!("{RUN_CONFIG}/hgrm.yaml"),
                s("--seed"),
                g.seed.to_string(),
                s("--steps"),
                g.steps.to_string(),
            ];
            optional_flag(&mut args, "--batch-size", g.batch_size);
            args.extend([
                s("--group-size"),
                g.group_size.to_string(),
                s("--learning-rate"),
                g.learning_rate.to_string(),
                s("--kl-coef"),
                g.kl_coef.to_string(),
                s("--clip-range"),
                g.clip_range.to_string(),
                s("--max-grad-norm"),
                g.max_grad_norm.to_string(),
                s("--out"),
                format!("{ARTIFACTS}/{}", output_dir(name, step)),
            ]);
            args
        }
        Step::Evaluate | Step::Replay => {
            let out = format!("{ARTIFACTS}/{}", output_dir(name, step));
            let mut script = format!(
                "set -e; janus predict --model {dir}/models/grpo/model.json --event-car {dir}/event-car.json \
                 --out {out}/predictions.jsonl --completions {out}/completions.jsonl && \
                 janus reward --event-car {dir}/event-car.json --completions {out}/completions.jsonl \
                 --config {RUN_CONFIG}/hgrm.yaml --out {out} && \
                 janus evaluate --event-car {dir}/event-car.json --predictions {out}/predictions.jsonl --prices {dataset}/prices.csv \
                 --rewards {out}/reward.json --config {RUN_CONFIG}/evaluation.yaml --from {until} \
                 --model {dir}/models/grpo/model.onnx --checkpoint {dir}/models/grpo/checkpoint.json --out {out}"
            );
            if step == Step::Replay {
                script.push_str(&format!(
                    " && janus compare {dir}/evaluation/evidence.json {out}/evidence.json"
                ));
            }
            vec![s("sh"), s("-c"), script]
        }
    }
}

/// The one folder of the artifacts volume (relative to its root) that `step` may write: its
/// `--out`. Every step mounts the volume read-only at [`ARTIFACTS`] and this folder read-write
/// over it (a `subPath` mount), so no step (a researcher's trainer image included) can write
/// the audit trail (`audit/`), any candidate's files (`candidates/`), another run's outputs or
/// another step's.
pub fn output_dir(run: &str, step: Step) -> String {
    let dir = super::run::run_dir(run);
    match step {
        Step::Label => dir,
        Step::Sft => format!("{dir}/models/sft"),
        Step::Grpo => format!("{dir}/models/grpo"),
        Step::Evaluate => format!("{dir}/evaluation"),
        Step::Replay => format!("{dir}/replay"),
    }
}

/// The Job of `step`. `None` when the run lacks the metadata an owned Job needs.
pub fn job(run: &JanusRun, step: Step, operator_image: &str) -> Option<Job> {
    let name = run.metadata.name.clone()?;
    let uid = run.metadata.uid.clone()?;
    let namespace = run.metadata.namespace.clone();
    let spec = &run.spec;
    let image = match step {
        Step::Sft | Step::Grpo => spec
            .training
            .image
            .clone()
            .unwrap_or_else(|| operator_image.to_string()),
        _ => operator_image.to_string(),
    };
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "janus".to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "run-step".to_string(),
        ),
        (
            "janus.torghut.io/run".to_string(),
            bounded_name(&name, "run"),
        ),
        ("janus.torghut.io/step".to_string(), step.name().to_string()),
    ]);
    let created = run
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second().to_string())
        .unwrap_or_else(|| "0".to_string());
    let seed = match step {
        Step::Grpo => spec.training.grpo.seed,
        _ => spec.training.sft.seed,
    };
    let env = vec![
        EnvVar {
            name: "SOURCE_DATE_EPOCH".into(),
            value: Some(created),
            ..Default::default()
        },
        EnvVar {
            name: "JANUS_RUN".into(),
            value: Some(name.clone()),
            ..Default::default()
        },
        EnvVar {
            name: "JANUS_STEP".into(),
            value: Some(step.name().into()),
            ..Default::default()
        },
        EnvVar {
            name: "JANUS_SEED".into(),
            value: Some(seed.to_string()),
            ..Default::default()
        },
        EnvVar {
            name: "JANUS_RUN_CONFIG_HASH".into(),
            value: Some(run_config_hash(run).to_string()),
            ..Default::default()
        },
        EnvVar {
            name: "JANUS_DATASET_SHA256".into(),
            value: Some(spec.dataset.sha256.to_string()),
            ..Default::default()
        },
        EnvVar {
            name: "JANUS_PROMPT_TEMPLATE_SHA256".into(),
            value: Some(spec.training.prompt_template.sha256.to_string()),
            ..Default::default()
        },
    ];
    let resources = spec
        .training
        .resources
        .as_ref()
        .filter(|_| matches!(step, Step::Sft | Step::Grpo))
        .map(|r| {
            let mut requests = BTreeMap::new();
            if let Some(cpu) = &r.cpu {
                requests.insert("cpu".to_string(), Quantity(cpu.clone()));
            }
            if let Some(memory) = &r.memory {
                requests.insert("memory".to_string(), Quantity(memory.clone()));
            }
            ResourceRequirements {
                limits: Some(requests.clone()),
                requests: Some(requests),
                ..Default::default()
            }
        });
    let command = command(run, step);
    let output = output_dir(&name, step);
    Some(Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, step)),
            namespace,
            labels: Some(labels.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "janus.torghut.io/v1alpha1".into(),
                kind: "JanusRun".into(),
                name: name.clone(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(step.deadline_seconds()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: step.name().into(),
                        image: Some(image),
                        command: Some(command),
                        env: Some(env),
                        resources,
                        termination_message_path: Some("/dev/termination-log".into()),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        volume_mounts: Some(vec![
                            VolumeMount {
                                name: "artifacts".into(),
                                mount_path: ARTIFACTS.into(),
                                read_only: Some(true),
                                ..Default::default()
                            },
                            VolumeMount {
                                name: "artifacts".into(),
                                mount_path: format!("{ARTIFACTS}/{output}"),
                                sub_path: Some(output),
                                ..Default::default()
                            },
                            VolumeMount {
                                name: "run-config".into(),
                                mount_path: RUN_CONFIG.into(),
                                read_only: Some(true),
                                ..Default::default()
                            },
                        ]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![
                        Volume {
                            name: "artifacts".into(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: spec.artifacts.claim_name.clone(),
                                read_only: None,
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "run-config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: config_map_name(&name),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    })
}

/// The Job with its pods run as `service_account` (the step ServiceAccount the chart creates,
/// bound to no Role) and no API token mounted: a step reads and writes the artifacts volume,
/// never the API.
pub fn with_service_account(mut job: Job, service_account: &str) -> Job {
    if let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod.service_account_name = Some(service_account.to_string());
        pod.automount_service_account_token = Some(false);
    }
    job
}
