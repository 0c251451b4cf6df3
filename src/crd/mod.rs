//! The custom resources (group `janus.torghut.io`, version `v1alpha1`, namespaced): `JanusRun`
//! runs the steps and records lineage, `JanusCandidate` holds a trained model with its evidence
//! and gate report, `PromotionRequest` asks for paper or canary and carries the kill switch.
//! `janus crd` prints the CustomResourceDefinitions generated from these types; `crds/` holds
//! them, checked in CI. The step configurations inside a run (`labeling`, `reward`,
//! `evaluation`) are the config-file types themselves, with their file's field names, so a
//! config file pastes in unchanged.

use crate::contracts::Sha256Hex;
use crate::evaluation::report::EvaluationConfig;
use crate::gates::{Decision, Target};
use crate::labeling::LabelingConfig;
use crate::promotion::{Phase, Stage, Transition};
use crate::reward::HgrmConfig;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub const GROUP: &str = "janus.torghut.io";

/// Annotations a human sets on a PromotionRequest.
pub const APPROVED_BY: &str = "janus.torghut.io/approved-by";
pub const APPROVAL_TOKEN: &str = "janus.torghut.io/approval-token";
pub const ROLLBACK_DRILL_AT: &str = "janus.torghut.io/rollback-drill-at";
/// Annotations a human sets to ask the admission webhook for a signed record (docs/gates.md).
/// The webhook replaces each with its stamped record, or refuses the change naming the rule.
/// `approve: "true"`: approver group, not the creator, not a ServiceAccount.
pub const ASK_APPROVE: &str = "janus.torghut.io/approve";
/// `record-rollback-drill: now` or an RFC 3339 time not in the future (on-call group).
pub const ASK_ROLLBACK_DRILL: &str = "janus.torghut.io/record-rollback-drill";
/// `record-kill-switch-drill: now` or an RFC 3339 time not in the future (on-call group).
pub const ASK_KILL_SWITCH_DRILL: &str = "janus.torghut.io/record-kill-switch-drill";
/// `validate-runbook: "true"` (on-call group).
pub const ASK_VALIDATE_RUNBOOK: &str = "janus.torghut.io/validate-runbook";

/// Annotations only the admission webhook writes: a signed record each (`crate::identity`).
pub const STAMP_CREATED_BY: &str = "janus.torghut.io/created-by";
pub const STAMP_APPROVAL: &str = "janus.torghut.io/approval";
pub const STAMP_ROLLBACK_DRILL: &str = "janus.torghut.io/rollback-drill";
pub const STAMP_KILL_SWITCH_DRILL: &str = "janus.torghut.io/kill-switch-drill";
pub const STAMP_RUNBOOK_VALIDATION: &str = "janus.torghut.io/runbook-validation";
pub const STAMP_KILL_SWITCH: &str = "janus.torghut.io/kill-switch-by";
/// The webhook's signed record of who asked for a rollback (set `rollback-reason`).
pub const STAMP_ROLLBACK: &str = "janus.torghut.io/rollback-by";

/// The longest PromotionRequest name the operator serves: its runtime ConfigMap is
/// `<name>-runtime`, which must fit a 63-character name without shortening, so the chart (which
/// renders the decision service's RBAC from the name) and the operator derive the same name.
pub const MAX_PROMOTION_REQUEST_NAME: usize = 63 - "-runtime".len();
/// Set on a promoted request to roll it back one stage (the value is the reason, recorded).
pub const ROLLBACK_REASON: &str = "janus.torghut.io/rollback-reason";

pub mod lenient;

pub use lenient::{Lenient, Unreadable};

// ---------- status vocabulary ----------

/// A closed set of CamelCase words the status and Events use, each written as the variant's
/// name (`as_str`), so a typo is a compile error and `kubectl wait --for=condition=<Type>` and
/// alerting rules can rely on the spelling.
macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every word, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$v),+];
            /// The word as the status and Events hold it.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$v => stringify!($v)),+ }
            }
            /// The word's variant, if it is one of them.
            pub fn from_word(word: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == word)
            }
        }
        /// Compares with the word as written (tests and readers of raw statuses).
        impl PartialEq<&str> for $name {
            fn eq(&self, word: &&str) -> bool {
                self.as_str() == *word
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// Condition types (`status.conditions[].type`) the controllers set.
    ConditionType {
        /// JanusCandidate: its evidence verifies and is complete.
        EvidenceComplete,
        /// JanusCandidate: every recorded hash is present and consistent.
        Reproducible,
        /// JanusCandidate (paper gates) and PromotionRequest (the target's gates): all passed.
        GatesPassed,
        /// PromotionRequest: a verified human approval binds this spec and model.
        Approved,
        /// PromotionRequest: a verified rollback drill within the policy's age.
        RollbackDrillFresh,
        /// PromotionRequest: promoted to its target.
        Promoted,
        /// PromotionRequest: the kill switch is on, or was seen on and stays latched.
        KillSwitchEngaged,
        /// JanusRun: the spec changed after the run started; nothing more starts.
        SpecChangeRefused,
        /// JanusRun: a Job, ConfigMap or candidate under the run's names belongs to another
        /// object (a deleted run of the same name, or none); the run waits until it is gone.
        PreviousChildren,
        /// JanusRun: every step succeeded (`Unknown` while running).
        Succeeded,
        /// Any kind: the object cannot be read as its Rust type (a value the types refuse,
        /// written under an older CRD or by hand). True while unreadable; nothing acts on it.
        InvalidSpec,
    }
}

vocabulary! {
    /// Reasons of conditions and of the Kubernetes Events the controllers publish.
    Reason {
        EvidenceComplete,
        EvidenceIncomplete,
        HashesConsistent,
        HashesMissingOrInconsistent,
        PaperGatesPassed,
        GateFailed,
        /// The gate policy cannot be read: no gate can pass.
        PolicyUnavailable,
        AllGatesPassed,
        ApprovalOnRecord,
        NoApproval,
        DrillFresh,
        DrillMissingOrStale,
        Promoted,
        NotPromoted,
        KillSwitchOn,
        /// The kill switch was seen on and cleared since, which resumes nothing.
        KillSwitchLatched,
        KillSwitchOff,
        /// PromotionRequest Event: halted by the kill switch.
        KillSwitchEngaged,
        /// PromotionRequest Event: halted because its candidate, evidence or policy can no
        /// longer be read or verified ([`HaltReason::BackingLost`]).
        BackingLost,
        /// PromotionRequest Event: halted because its candidate or target changed
        /// ([`HaltReason::SpecChanged`]).
        SpecChanged,
        /// PromotionRequest Event: halted because its promoted status is not sealed
        /// ([`HaltReason::StatusNotSealed`]).
        StatusNotSealed,
        Halted,
        Blocked,
        RolledBack,
        Pending,
        InputsChanged,
        InputsUnchanged,
        /// `PreviousChildren=True`, and the Event published with it.
        WaitingForPreviousChildren,
        /// `PreviousChildren=False`: nothing of another object is in the way any more.
        PreviousChildrenGone,
        StepStarted,
        StepRunning,
        StepSucceeded,
        StepFailed,
        RunSucceeded,
        RunFailed,
        AllStepsSucceeded,
        Running,
        /// Event when an object cannot be read as its kind (`InvalidSpec` turns True).
        InvalidSpec,
        /// `InvalidSpec=True`: the message names the JSON path of the value and why it was
        /// refused.
        Unreadable,
        /// `InvalidSpec=False`: the object reads again.
        Readable,
        /// Event on an unreadable PromotionRequest whose runtime ConfigMap was switched off.
        TradingHaltedUnreadable,
    }
}

/// A Kubernetes Event a reconcile asks the glue to publish on the object it reconciled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    pub reason: Reason,
    /// Free text; the glue bounds it to the API server's 1 KiB.
    pub message: String,
    /// `Warning` rather than `Normal`.
    pub warning: bool,
}

vocabulary! {
    /// Phase of a JanusRun and of each of its steps.
    RunPhase {
        Pending,
        Running,
        Succeeded,
        Failed,
    }
}

impl RunPhase {
    /// Succeeded or Failed: nothing more happens.
    pub fn finished(self) -> bool {
        matches!(self, RunPhase::Succeeded | RunPhase::Failed)
    }
}

impl Serialize for RunPhase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RunPhase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        RunPhase::from_word(&word).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown phase `{word}` (Pending, Running, Succeeded, Failed)"
            ))
        })
    }
}

impl JsonSchema for RunPhase {
    fn schema_name() -> Cow<'static, str> {
        "RunPhase".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let words: Vec<&str> = RunPhase::ALL.iter().map(|p| p.as_str()).collect();
        json_schema!({"type": "string", "enum": words})
    }
}

// ---------- shared ----------

/// A status condition, as `kubectl wait --for=condition=<type>` reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// One word, CamelCase.
    pub reason: String,
    /// Empty messages are left out: the 1.20 API server's server-side apply reads an empty
    /// string in an apply patch as null and refuses it for a string field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Conditions as a list-map keyed by `type`, so server-side apply merges them one by one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Conditions(pub Vec<Condition>);

impl Conditions {
    /// The condition of this type, if set.
    pub fn get(&self, type_: ConditionType) -> Option<&Condition> {
        self.0.iter().find(|c| c.type_ == type_.as_str())
    }

    /// Whether the condition of this type is set and `True`.
    pub fn is_true(&self, type_: ConditionType) -> bool {
        self.get(type_)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }

    /// Sets a condition, keeping its transition time when its status does not change; the list
    /// stays sorted by type (so equal statuses serialize to equal bytes). `now` is the
    /// reconcile's clock (RFC 3339, seconds).
    pub fn set(
        &mut self,
        type_: ConditionType,
        status: ConditionStatus,
        reason: Reason,
        message: String,
        now: chrono::DateTime<chrono::Utc>,
        generation: Option<i64>,
    ) {
        let time = self
            .get(type_)
            .filter(|c| c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        self.0.retain(|c| c.type_ != type_.as_str());
        self.0.push(Condition {
            type_: type_.as_str().to_string(),
            status,
            reason: reason.as_str().to_string(),
            message,
            last_transition_time: time,
            observed_generation: generation,
        });
        self.0.sort_by(|a, b| a.type_.cmp(&b.type_));
    }
}

impl JsonSchema for Conditions {
    fn schema_name() -> Cow<'static, str> {
        "Conditions".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let item = generator.subschema_for::<Condition>();
        json_schema!({
            "type": "array",
            "items": item,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"]
        })
    }
}

/// A file or object the operator reads, pinned by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PinnedObject {
    /// Where it is: a path on the artifacts volume, or an object-store URI.
    #[schemars(length(min = 1, max = 4096))]
    pub uri: String,
    /// Its SHA-256; the step refuses content that does not match.
    pub sha256: Sha256Hex,
}

// ---------- JanusRun ----------

/// A training-and-evaluation run: label → sft → grpo → evaluate → replay, as Jobs.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "janus.torghut.io",
    version = "v1alpha1",
    kind = "JanusRun",
    namespaced,
    status = "JanusRunStatus",
    shortname = "jrun",
    category = "janus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"string","jsonPath":".status.currentStep"}"#,
    printcolumn = r#"{"name":"Candidate","type":"string","jsonPath":".status.candidate"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JanusRunSpec {
    /// The dataset snapshot (a directory in the formats of docs/data-formats.md, or its archive).
    pub dataset: PinnedObject,
    /// Labeling configuration (the fields of a labeling config file); defaults when absent.
    pub labeling: Option<LabelingConfig>,
    /// HGRM reward configuration (the fields of config/hgrm.yaml); defaults when absent.
    pub reward: Option<HgrmConfig>,
    pub training: TrainingSpec,
    /// Evaluation configuration (walk-forward, bootstrap, backtest); defaults when absent.
    pub evaluation: Option<EvaluationConfig>,
    /// The volume the steps share artifacts on.
    pub artifacts: ArtifactsVolume,
    /// Re-run the evaluation independently and require it to match.
    #[serde(default = "default_true")]
    pub replay: bool,
    /// First date of the held-out evaluation window (YYYY-MM-DD).
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub held_out_from: String,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainingSpec {
    /// A trainer image following docs/trainer-contract.md; the operator's own image otherwise.
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,
    /// The frozen prompt template.
    pub prompt_template: PinnedObject,
    pub sft: SftSpec,
    pub grpo: GrpoSpec,
    /// Container resources of the training Jobs.
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SftSpec {
    #[schemars(range(min = 0, max = 9007199254740991u64))]
    pub seed: u64,
    /// The most epochs: the reference trainer stops earlier once its validation loss stops
    /// falling, and keeps the best epoch's model.
    #[schemars(range(min = 1, max = 1000))]
    pub epochs: u32,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub learning_rate: f64,
    /// Decoupled weight decay on the weight matrices (trainer default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub weight_decay: Option<f64>,
    /// Share of the training events, the most recent, held back to choose the epoch; 0 trains
    /// on all of them for `epochs` (trainer default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 0.5))]
    pub validation_fraction: Option<f64>,
    /// Epochs without a lower validation loss before training stops (trainer default when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub patience: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpoSpec {
    #[schemars(range(min = 0, max = 9007199254740991u64))]
    pub seed: u64,
    #[schemars(range(min = 1, max = 1000000))]
    pub steps: u32,
    /// Events per step (trainer default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: Option<u32>,
    /// G: the paper's grid is 2, 4, 8.
    #[schemars(range(min = 2, max = 64))]
    pub group_size: u32,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub learning_rate: f64,
    #[schemars(range(min = 0.0))]
    pub kl_coef: f64,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub clip_range: f64,
    #[schemars(range(min = 0.0))]
    pub max_grad_norm: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// e.g. `2`, `500m`.
    #[schemars(length(min = 1, max = 64))]
    pub cpu: Option<String>,
    /// e.g. `4Gi`.
    #[schemars(length(min = 1, max = 64))]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactsVolume {
    /// A PersistentVolumeClaim in the run's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JanusRunStatus {
    pub phase: Option<RunPhase>,
    pub current_step: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    /// Lineage hashes recorded from the steps' results.
    pub lineage: Option<RunLineage>,
    /// The JanusCandidate created at the end.
    pub candidate: Option<String>,
    #[serde(default)]
    pub conditions: Conditions,
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// label, sft, grpo, evaluate, replay.
    pub name: String,
    /// Empty until the step's Job is created (and then left out, see `Condition::message`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job: String,
    pub phase: RunPhase,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Digest of the step's main output, from its termination message.
    pub result_digest: Option<Sha256Hex>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunLineage {
    pub dataset_snapshot_hash: Option<Sha256Hex>,
    pub event_car_manifest_hash: Option<Sha256Hex>,
    pub reward_manifest_hash: Option<Sha256Hex>,
    pub evidence_manifest_hash: Option<Sha256Hex>,
    pub run_config_hash: Option<Sha256Hex>,
    pub generation_code: Option<String>,
}

// ---------- JanusCandidate ----------

/// A trained model with its evidence; status is written only by the operator.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "janus.torghut.io",
    version = "v1alpha1",
    kind = "JanusCandidate",
    namespaced,
    status = "JanusCandidateStatus",
    shortname = "jcand",
    category = "janus",
    printcolumn = r#"{"name":"Run","type":"string","jsonPath":".spec.runRef"}"#,
    printcolumn = r#"{"name":"Evidence","type":"string","jsonPath":".status.conditions[?(@.type==\"EvidenceComplete\")].status"}"#,
    printcolumn = r#"{"name":"Gates","type":"string","jsonPath":".status.conditions[?(@.type==\"GatesPassed\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JanusCandidateSpec {
    /// The JanusRun that produced it.
    #[schemars(length(min = 1, max = 253))]
    pub run_ref: String,
    pub model: ModelRef,
    /// Lineage hashes of the run (copied by the operator when it creates the candidate).
    pub lineage: RunLineage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelRef {
    #[schemars(length(min = 1, max = 4096))]
    pub uri: String,
    pub sha256: Sha256Hex,
    pub format: ModelFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    Onnx,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JanusCandidateStatus {
    /// Manifest hash of the evidence the gates read.
    pub evidence_manifest_hash: Option<Sha256Hex>,
    /// What the evidence says, in brief.
    pub evidence_summary: Option<EvidenceBrief>,
    /// Gate decisions by target.
    #[serde(default)]
    pub gate_reports: Vec<GateReport>,
    /// Hash of the gate policy the decisions were made under.
    pub policy_hash: Option<Sha256Hex>,
    /// EvidenceComplete, Reproducible, GatesPassed.
    #[serde(default)]
    pub conditions: Conditions,
    pub observed_generation: Option<i64>,
}

/// The evidence's headline numbers, for `kubectl get -o yaml` readers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceBrief {
    pub complete: bool,
    pub missing: Vec<String>,
    /// Candidate metrics by short name (sr, mdd, da, eta, ...).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Candidate − baseline deltas with bootstrap intervals and p-values.
    pub deltas: std::collections::BTreeMap<String, crate::contracts::evidence::Delta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateReport {
    pub target: Target,
    pub decision: Decision,
}

// ---------- PromotionRequest ----------

/// A request to move a candidate one stage up; carries the kill switch.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "janus.torghut.io",
    version = "v1alpha1",
    kind = "PromotionRequest",
    namespaced,
    status = "PromotionRequestStatus",
    shortname = "promo",
    category = "janus",
    printcolumn = r#"{"name":"Candidate","type":"string","jsonPath":".spec.candidate"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.target"}"#,
    printcolumn = r#"{"name":"Stage","type":"string","jsonPath":".status.stage"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Kill","type":"boolean","jsonPath":".spec.killSwitch"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromotionRequestSpec {
    /// The JanusCandidate to promote.
    #[schemars(length(min = 1, max = 253))]
    pub candidate: String,
    pub target: Target,
    /// Limits of a canary (required for target canary).
    pub canary: Option<CanaryLimits>,
    /// Stop trading at once: halted, trading disabled, fallback forced. On-call patches it.
    #[serde(default)]
    pub kill_switch: bool,
}

impl PromotionRequestSpec {
    /// What an approval covers: the SHA-256 (lowercase hex) of the RFC 8785 canonical JSON of
    /// this spec without `killSwitch` — the candidate, the target, the canary's risk limits and
    /// any field added later. The kill switch is left out because it can only stop trading (it
    /// latches on), so turning it on never voids an approval. An approval record carries this
    /// digest (`crate::identity::Record::approved_spec_sha256`) and counts only while the spec
    /// still has it (docs/gates.md). Errors only on a non-finite number, which no stored object
    /// holds.
    pub fn approved_terms_sha256(
        &self,
    ) -> Result<Sha256Hex, crate::contracts::jcs::CanonicalError> {
        let bytes = crate::contracts::jcs::to_canonical_vec(self, Some("killSwitch"))?;
        Ok(Sha256Hex::of_bytes(&bytes))
    }
}

/// The most symbols a canary may name (`spec.canary.symbols`, `maxItems`).
pub const MAX_CANARY_SYMBOLS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryLimits {
    /// Symbols the canary may trade: 1 to [`MAX_CANARY_SYMBOLS`], each 1 to 32 characters
    /// (`600000.SH`). A canary trades a few names; the bound keeps the runtime ConfigMap that
    /// carries them far below the API server's 1 MiB.
    #[schemars(length(min = 1, max = 1000), inner(length(min = 1, max = 32)))]
    pub symbols: Vec<String>,
    #[schemars(range(min = 0.0))]
    pub max_order_notional: f64,
    #[schemars(range(min = 0.0))]
    pub max_gross_notional: f64,
    #[schemars(range(min = 0.0))]
    pub max_net_notional: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRequestStatus {
    pub stage: Option<Stage>,
    pub phase: Option<Phase>,
    pub gate_report: Option<Decision>,
    /// Why it is blocked or halted.
    #[serde(default)]
    pub blockers: Vec<String>,
    pub approval: Option<ApprovalRecord>,
    /// Append-only.
    #[serde(default)]
    pub history: Vec<Transition>,
    /// GatesPassed, Approved, RollbackDrillFresh, Promoted, KillSwitchEngaged.
    #[serde(default)]
    pub conditions: Conditions,
    pub observed_generation: Option<i64>,
    /// The runtime ConfigMap the operator writes for this request (in its namespace), once it
    /// has written one; the decision service (`janus serve --promotion-request`) follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config_map: Option<String>,
    /// The candidate and target the request was first reconciled with: fixed for its life (a
    /// change halts it with reason `SpecChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<BoundSpec>,
    /// The model the request was promoted with; while it serves, the candidate must still name
    /// exactly this model, else the request halts (`SpecChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_model: Option<ModelRef>,
    /// The canary limits the request was promoted with, pinned with `servedModel`; a changed
    /// `spec.canary` afterwards halts it (`SpecChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_limits: Option<CanaryLimits>,
    /// Approvals stamped (`recordedAt`) at or before this time (RFC 3339) never count again:
    /// the operator saw an approval of this request withdrawn (its record removed) that it had
    /// first recorded then, so a saved copy put back later is void. Written by the operator only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub approvals_void_through: Option<String>,
    /// The operator's seal over what this status says it serves (`crate::identity::status_seal`,
    /// over [`PromotionRequestStatus::seal_fields`], which include the served model and limits):
    /// a promoted status without a valid seal was not written by the operator, and halts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

impl PromotionRequestStatus {
    /// The fields [`PromotionRequestStatus::seal`] covers, for request `uid`.
    pub fn seal_fields(&self, uid: &str) -> Vec<String> {
        let mut fields = vec![
            uid.to_string(),
            self.stage.map(|s| format!("{s:?}")).unwrap_or_default(),
            self.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
            self.bound
                .as_ref()
                .map(|b| format!("{}/{}", b.candidate, b.target.name()))
                .unwrap_or_default(),
            self.served_model
                .as_ref()
                .map(|m| format!("{}@{}", m.uri, m.sha256))
                .unwrap_or_default(),
            self.served_limits
                .as_ref()
                .and_then(|l| serde_json::to_string(l).ok())
                .unwrap_or_default(),
        ];
        // Only when set, so seals made before the field existed still verify.
        if let Some(t) = &self.approvals_void_through {
            fields.push(format!("approvalsVoidThrough={t}"));
        }
        fields
    }
}

/// A request's identity, pinned at its first reconcile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoundSpec {
    pub candidate: String,
    pub target: Target,
}

/// Why a request was halted other than by its kill switch; the first word of the halt's
/// history reason and its Event's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltReason {
    /// `spec.candidate` or `spec.target` changed after creation, or the candidate now names
    /// another model than the one promoted.
    SpecChanged,
    /// The candidate, its evidence or the gate policy can no longer be read or verified.
    BackingLost,
    /// A promoted status whose seal verifies with neither the current signing key nor a listed
    /// previous one: not written by the operator, or the key was replaced without keeping the
    /// old one (docs/gitops.md, rotating the signing key).
    StatusNotSealed,
}

impl HaltReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HaltReason::SpecChanged => "SpecChanged",
            HaltReason::BackingLost => "BackingLost",
            HaltReason::StatusNotSealed => "StatusNotSealed",
        }
    }

    /// The reason of the Event that announces this halt.
    pub fn reason(self) -> Reason {
        match self {
            HaltReason::SpecChanged => Reason::SpecChanged,
            HaltReason::BackingLost => Reason::BackingLost,
            HaltReason::StatusNotSealed => Reason::StatusNotSealed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    pub approved_by: String,
    /// SHA-256 of the approval token (the token itself is not echoed).
    pub token_sha256: Sha256Hex,
    pub rollback_drill_at: Option<String>,
    /// When the operator first recorded it (RFC 3339, seconds).
    pub recorded_at: String,
    /// The approval record's own `recordedAt` (when the webhook stamped it, RFC 3339 to the
    /// nanosecond): once the approval is seen withdrawn, approvals stamped at or before the
    /// later of the two times are void (`status.approvalsVoidThrough`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub stamped_at: Option<String>,
}

/// The three CRDs, in the order they are applied.
pub fn definitions()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        JanusRun::crd(),
        JanusCandidate::crd(),
        PromotionRequest::crd(),
    ]
    .into_iter()
    .map(|crd| {
        let mut value = serde_json::to_value(&crd).expect("CRDs serialize");
        drop_null_enum_members(&mut value);
        if let Some(versions) = value["spec"]["versions"].as_array_mut() {
            for version in versions {
                bound_integers(&mut version["schema"]["openAPIV3Schema"]);
                bound_sizes(&mut version["schema"]["openAPIV3Schema"]);
            }
        }
        serde_json::from_value(value).expect("still a CRD")
    })
    .collect()
}

/// An optional enum's schema lists `null` among its values (beside `nullable: true`); API
/// servers before 1.2x and kubectl's validation reject a null enum member, and `nullable`
/// already says it.
fn drop_null_enum_members(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(members)) = map.get_mut("enum") {
                members.retain(|m| !m.is_null());
            }
            map.values_mut().for_each(drop_null_enum_members);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_null_enum_members),
        _ => {}
    }
}

/// The largest integer every reader of our objects and artifacts holds exactly (2^53 − 1):
/// JSON numbers beyond it lose precision in an IEEE double, and the artifacts refuse them.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The range an integer schema of this `format` may hold, for the Rust type behind it:
/// (minimum, maximum). 64-bit and unsized integers stop at ±(2^53 − 1); an integer without a
/// known format gets that range too.
pub fn integer_range(format: Option<&str>) -> (i64, i64) {
    match format {
        Some("uint8") => (0, u8::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        Some("uint64" | "uint") => (0, MAX_SAFE_INTEGER),
        Some("int8") => (i8::MIN.into(), i8::MAX.into()),
        Some("int16") => (i16::MIN.into(), i16::MAX.into()),
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        _ => (-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    }
}

/// Gives every integer schema the bounds its Rust type needs, keeping a tighter bound that is
/// already there: without them the API server stores a value (say `holding_days: 4294967296`
/// for a `u32`) that the operator then cannot read.
fn bound_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("type").and_then(serde_json::Value::as_str) == Some("integer") {
                let (min, max) = integer_range(map.get("format").and_then(|f| f.as_str()));
                let tighter = |v: Option<&serde_json::Value>, keep: &dyn Fn(f64) -> bool| {
                    v.and_then(serde_json::Value::as_f64).is_some_and(keep)
                };
                if !tighter(map.get("minimum"), &|m| m >= min as f64) {
                    map.insert("minimum".into(), min.into());
                }
                if !tighter(map.get("maximum"), &|m| m <= max as f64) {
                    map.insert("maximum".into(), max.into());
                }
            }
            // Into the subschemas only: defaults, enum members and examples are data.
            if let Some(serde_json::Value::Object(props)) = map.get_mut("properties") {
                props.values_mut().for_each(bound_integers);
            }
            for key in ["items", "additionalProperties", "not"] {
                if let Some(sub) = map.get_mut(key) {
                    bound_integers(sub);
                }
            }
            for key in ["allOf", "anyOf", "oneOf"] {
                if let Some(serde_json::Value::Array(subs)) = map.get_mut(key) {
                    subs.iter_mut().for_each(bound_integers);
                }
            }
        }
        // `items` as a list of schemas (a tuple).
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// The longest string, the longest list and the most map entries any field of our objects
/// holds where its type sets no tighter bound (`maxLength`, `maxItems`, `maxProperties`). The
/// fields people write carry their own, tighter bounds (names 253, URIs 4096, canary symbols
/// 1000 × 32); these defaults cover the rest (status messages, history, configuration maps).
/// With them no object the API server admits is one the operator, the webhook or the decision
/// service cannot take whole.
pub const DEFAULT_MAX_LENGTH: u64 = 32 * 1024;
/// See [`DEFAULT_MAX_LENGTH`].
pub const DEFAULT_MAX_ITEMS: u64 = 1024;
/// See [`DEFAULT_MAX_LENGTH`].
pub const DEFAULT_MAX_PROPERTIES: u64 = 1024;

/// Gives every string, list and map schema without a size bound the defaults above (enum
/// strings are bounded by their members), as [`bound_integers`] does for integers.
fn bound_sizes(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let ty = map.get("type").and_then(serde_json::Value::as_str);
            let (key, bound) = match ty {
                Some("string") if !map.contains_key("enum") => {
                    ("maxLength", Some(DEFAULT_MAX_LENGTH))
                }
                Some("array") => ("maxItems", Some(DEFAULT_MAX_ITEMS)),
                Some("object") if map.contains_key("additionalProperties") => {
                    ("maxProperties", Some(DEFAULT_MAX_PROPERTIES))
                }
                _ => ("", None),
            };
            if let Some(bound) = bound {
                map.entry(key).or_insert(bound.into());
            }
            if let Some(serde_json::Value::Object(props)) = map.get_mut("properties") {
                props.values_mut().for_each(bound_sizes);
            }
            for key in ["items", "additionalProperties", "not"] {
                if let Some(sub) = map.get_mut(key) {
                    bound_sizes(sub);
                }
            }
            for key in ["allOf", "anyOf", "oneOf"] {
                if let Some(serde_json::Value::Array(subs)) = map.get_mut(key) {
                    subs.iter_mut().for_each(bound_sizes);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_sizes),
        _ => {}
    }
}

/// The CRDs as one YAML stream each: (file name, YAML).
pub fn definitions_yaml() -> Vec<(String, String)> {
    definitions()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_yaml::to_string(&crd).expect("CRDs serialize");
            (format!("{name}.yaml"), yaml)
        })
        .collect()
}
