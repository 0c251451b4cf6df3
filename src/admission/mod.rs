//! The admission webhook's decisions, as plain functions (no I/O): a Kubernetes AdmissionReview
//! v1 request (operation, authenticated `userInfo`, object, oldObject) and the configuration in;
//! allowed or denied — every denial naming its [`Rule`] — and, when mutating, a JSONPatch
//! (RFC 6902) that replaces a human's ask with a signed record (`crate::identity`) out.
//!
//! How a human asks (docs/gates.md): `kubectl annotate promotionrequest X
//! janus.torghut.io/approve=true` (approver group), `janus.torghut.io/record-rollback-drill=now`,
//! `janus.torghut.io/record-kill-switch-drill=now` (or an RFC 3339 time not in the future),
//! `janus.torghut.io/validate-runbook=true` (on-call group). The mutating webhook checks who
//! asks and replaces the ask with the stamped record; the validating webhook checks the final
//! object again, so a stamped annotation set by anything but the webhook is refused.
//!
//! An approval covers the spec it approved (the canary's risk limits included, see
//! `crate::crd::PromotionRequestSpec::approved_terms_sha256`): an update that changes the spec
//! of an approved request is admitted, but the mutating webhook removes the approval with a
//! warning, and the operator never believes an approval whose bound spec differs from the
//! spec (the case where the webhook was down). Nothing here refuses an update that only turns
//! the kill switch on, and nothing here writes the audit trail for a record: the operator
//! records a record once it sees it on a persisted object; only refusals are audited here
//! (they happened here).

use crate::audit::Entry;
use crate::crd::STAMP_CREATED_BY;
use crate::gates::Target;
use crate::identity::{Binding, Kind, Record, SigningKey};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

// ---------- AdmissionReview v1 (the fields used) ----------

/// `admission.k8s.io/v1` AdmissionReview: a request in, the same kind with a response out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    #[serde(default)]
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    /// CREATE, UPDATE, DELETE or CONNECT.
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

/// Who the API server authenticated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A ServiceAccount or any other `system:` identity: never a human.
    pub fn is_machine(&self) -> bool {
        self.username.starts_with("system:")
            || self.groups.iter().any(|g| g == "system:serviceaccounts")
    }
    fn in_group(&self, group: &str) -> bool {
        !group.is_empty() && self.groups.iter().any(|g| g == group)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Base64 of the JSONPatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResponseStatus {
    pub code: u16,
    pub message: String,
}

// ---------- configuration and verdicts ----------

/// What the webhook enforces.
#[derive(Debug, Clone)]
pub struct Config {
    /// Members may approve (`--approver-group`).
    pub approver_group: String,
    /// Members may record drills and runbook validation (`--oncall-group`).
    pub oncall_group: String,
    /// The operator's ServiceAccount username (`system:serviceaccount:<ns>:<name>`): the only
    /// identity that may create or change JanusCandidates.
    pub operator_username: String,
    /// How long an approval counts (`--approval-max-age-hours`, default 24 h).
    pub approval_ttl: Duration,
    pub key: SigningKey,
}

/// The rules; each refusal names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Approvals come from the approver group.
    ApproverGroup,
    /// Approvals come from humans, never a ServiceAccount or other `system:` identity.
    HumanApprover,
    /// The request's creator may not approve it.
    SeparationOfDuties,
    /// An approval needs the request's creator on record (stamped at creation).
    CreatorOnRecord,
    /// Drills and runbook validation come from the on-call group.
    OncallGroup,
    /// A drill is never dated in the future.
    NoFutureDrills,
    /// `spec.candidate` and `spec.target` never change.
    ImmutableCandidateAndTarget,
    /// `spec.killSwitch` may go to true, never back.
    KillSwitchLatches,
    /// Stamped records are written by the webhook only, for the user making the change.
    StampsAreWebhookOnly,
    /// Approvals and drills are recorded on an existing request, not at creation.
    RecordsNeedAnExistingRequest,
    /// JanusCandidates are created and changed by the operator only.
    CandidatesAreOperatorOnly,
    /// An ask reached the validating webhook unstamped (the mutating one did not run).
    AsksGoThroughTheMutatingWebhook,
    /// The plain approval, drill and runbook annotations of earlier versions are refused: they
    /// were never authenticated.
    NoUnsignedApprovals,
    /// An approval covers the spec it approved (the canary's risk limits included): a changed
    /// spec removes it (a warning names this rule; nothing is refused).
    ApprovalCoversTheSpec,
    /// An approval is bound to the candidate's model: refused while its digest cannot be read.
    ApprovalBindsTheModel,
    /// On a dry run the webhook signs nothing (records come back unsigned): a dry run must not
    /// yield a record that could be put on the request later.
    DryRunSignsNothing,
    /// The object or the ask could not be read.
    Malformed,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::ApproverGroup => "approver-group",
            Rule::HumanApprover => "human-approver",
            Rule::SeparationOfDuties => "separation-of-duties",
            Rule::CreatorOnRecord => "creator-on-record",
            Rule::OncallGroup => "oncall-group",
            Rule::NoFutureDrills => "no-future-drills",
            Rule::ImmutableCandidateAndTarget => "immutable-candidate-and-target",
            Rule::KillSwitchLatches => "kill-switch-latches",
            Rule::StampsAreWebhookOnly => "stamps-are-webhook-only",
            Rule::RecordsNeedAnExistingRequest => "records-need-an-existing-request",
            Rule::CandidatesAreOperatorOnly => "candidates-are-operator-only",
            Rule::AsksGoThroughTheMutatingWebhook => "asks-go-through-the-mutating-webhook",
            Rule::NoUnsignedApprovals => "no-unsigned-approvals",
            Rule::ApprovalCoversTheSpec => "approval-covers-the-spec",
            Rule::ApprovalBindsTheModel => "approval-binds-the-model",
            Rule::DryRunSignsNothing => "dry-run-signs-nothing",
            Rule::Malformed => "malformed",
        }
    }
}

/// A refusal: the rule and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub rule: Rule,
    pub why: String,
}

impl Denial {
    fn new(rule: Rule, why: impl Into<String>) -> Self {
        Self {
            rule,
            why: why.into(),
        }
    }
    /// The message the API server shows the user.
    pub fn message(&self) -> String {
        format!(
            "janus admission: denied by rule `{}`: {}",
            self.rule.name(),
            self.why
        )
    }
}

/// What the webhook answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub denial: Option<Denial>,
    /// JSONPatch operations (mutating only).
    pub patch: Vec<Value>,
    /// For the audit trail: the refusal (a stamped record is audited by the operator once it
    /// is persisted, never here, where a later webhook or the API server may still refuse it).
    pub audit: Vec<Entry>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }

    /// The AdmissionReview response for request `uid`.
    pub fn response(&self, uid: &str) -> AdmissionResponse {
        use base64::Engine;
        let patch = (!self.patch.is_empty()).then(|| {
            base64::engine::general_purpose::STANDARD
                .encode(Value::Array(self.patch.clone()).to_string())
        });
        AdmissionResponse {
            uid: uid.to_string(),
            allowed: self.allowed(),
            status: self.denial.as_ref().map(|d| ResponseStatus {
                code: 403,
                message: d.message(),
            }),
            patch_type: patch.as_ref().map(|_| "JSONPatch".to_string()),
            patch,
            warnings: self.warnings.clone(),
        }
    }
}

/// Mutating (stamps) or validating (checks the final object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Mutate,
    Validate,
}

// ---------- reading objects ----------

/// The parts of a PromotionRequest the rules read, from untyped JSON (the mutating webhook sees
/// objects before schema validation).
#[derive(Debug, Clone)]
struct Request {
    name: String,
    namespace: String,
    uid: String,
    created: Option<DateTime<Utc>>,
    candidate: String,
    target: Option<Target>,
    kill_switch: bool,
    /// `spec` read as a PromotionRequest spec: its approved-terms digest, or why it cannot be
    /// read.
    spec_sha256: Result<String, String>,
    annotations: BTreeMap<String, String>,
    has_annotations: bool,
}

impl Default for Request {
    fn default() -> Self {
        Self {
            name: String::new(),
            namespace: String::new(),
            uid: String::new(),
            created: None,
            candidate: String::new(),
            target: None,
            kill_switch: false,
            spec_sha256: Err("no spec".into()),
            annotations: BTreeMap::new(),
            has_annotations: false,
        }
    }
}

/// The approved-terms digest of an object's `spec` (see
/// `crate::crd::PromotionRequestSpec::approved_terms_sha256`), or why it cannot be read.
fn spec_digest(v: &Value) -> Result<String, String> {
    let spec = v.get("spec").ok_or("the object has no spec")?;
    let spec: crate::crd::PromotionRequestSpec =
        serde_json::from_value(spec.clone()).map_err(|e| format!("spec: {e}"))?;
    spec.approved_terms_sha256()
        .map(|d| d.to_string())
        .map_err(|e| format!("spec: {e}"))
}

fn read_request(v: &Value, fallback_namespace: &str) -> Request {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let annotations = v
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let namespace = Some(s("/metadata/namespace"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| fallback_namespace.to_string());
    Request {
        name: s("/metadata/name"),
        namespace,
        uid: s("/metadata/uid"),
        created: DateTime::parse_from_rfc3339(&s("/metadata/creationTimestamp"))
            .ok()
            .map(|t| t.to_utc()),
        candidate: s("/spec/candidate"),
        target: v
            .pointer("/spec/target")
            .and_then(|t| serde_json::from_value(t.clone()).ok()),
        kill_switch: v.pointer("/spec/killSwitch") == Some(&Value::Bool(true)),
        spec_sha256: spec_digest(v),
        has_annotations: v
            .pointer("/metadata/annotations")
            .is_some_and(Value::is_object),
        annotations,
    }
}

impl Request {
    fn binding<'a>(&'a self, uid: &'a str, model: Option<&'a str>) -> Option<Binding<'a>> {
        Some(Binding {
            namespace: &self.namespace,
            request: &self.name,
            uid,
            candidate: &self.candidate,
            target: self.target?,
            model_sha256: model,
            spec_sha256: self.spec_sha256.as_deref().ok(),
        })
    }
}

/// RFC 6901 escaping of one path segment.
fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The JSONPatch that turns `before` annotations into `after`.
fn annotations_patch(
    had: bool,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<Value> {
    if before == after {
        return Vec::new();
    }
    if !had {
        return vec![json!({"op": "add", "path": "/metadata/annotations", "value": after})];
    }
    let mut ops = Vec::new();
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        ops.push(json!({"op": "remove", "path": format!("/metadata/annotations/{}", pointer_segment(k))}));
    }
    for (k, v) in after {
        if before.get(k) != Some(v) {
            ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", pointer_segment(k)), "value": v}));
        }
    }
    ops
}

// ---------- the rules ----------

/// Who may hold a record of `kind` (the identity rules, shared by both modes). `creator`: the
/// request's verified creator record, `created`: its creationTimestamp.
fn authorize(
    kind: Kind,
    user: &UserInfo,
    cfg: &Config,
    creator: Option<&Record>,
    created: Option<DateTime<Utc>>,
) -> Result<(), Denial> {
    let who = &user.username;
    match kind {
        Kind::Approval => {
            if user.is_machine() {
                return Err(Denial::new(
                    Rule::HumanApprover,
                    format!(
                        "{who} is a ServiceAccount or system identity; approvals come from humans"
                    ),
                ));
            }
            if !user.in_group(&cfg.approver_group) {
                return Err(Denial::new(
                    Rule::ApproverGroup,
                    format!(
                        "{who} is not in the approver group `{}`",
                        cfg.approver_group
                    ),
                ));
            }
            let Some(creator) = creator else {
                return Err(Denial::new(
                    Rule::CreatorOnRecord,
                    "the request's creator was never stamped (created before the webhook, or the record was removed): recreate the request",
                ));
            };
            // A creator record from an earlier object of the same name is not this one's.
            if let Some(created) = created {
                if (creator.at - created).num_seconds().abs() > 120 {
                    return Err(Denial::new(
                        Rule::CreatorOnRecord,
                        format!(
                            "the creator record ({}) is not from this object's creation ({created})",
                            creator.at
                        ),
                    ));
                }
            }
            if &creator.by == who {
                return Err(Denial::new(
                    Rule::SeparationOfDuties,
                    format!("{who} created this request and may not approve it"),
                ));
            }
            Ok(())
        }
        Kind::RollbackDrill | Kind::KillSwitchDrill | Kind::RunbookValidation => {
            if !user.in_group(&cfg.oncall_group) || user.is_machine() {
                return Err(Denial::new(
                    Rule::OncallGroup,
                    format!(
                        "{who} is not a human in the on-call group `{}`; only on-call records drills and runbook validation",
                        cfg.oncall_group
                    ),
                ));
            }
            Ok(())
        }
        Kind::CreatedBy | Kind::KillSwitch | Kind::Rollback => Ok(()),
    }
}

/// The time an ask names: `now`/`true` or an RFC 3339 time, never in the future.
fn ask_time(kind: Kind, value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Denial> {
    let v = value.trim();
    match kind {
        Kind::Approval | Kind::RunbookValidation => {
            if v == "true" {
                Ok(now)
            } else {
                Err(Denial::new(
                    Rule::Malformed,
                    format!(
                        "`{}` takes \"true\", not `{v}`",
                        kind.ask().unwrap_or_default()
                    ),
                ))
            }
        }
        _ => {
            if v == "now" {
                return Ok(now);
            }
            let t = DateTime::parse_from_rfc3339(v)
                .map_err(|e| {
                    Denial::new(
                        Rule::Malformed,
                        format!(
                            "`{}` takes `now` or an RFC 3339 time, not `{v}`: {e}",
                            kind.ask().unwrap_or_default()
                        ),
                    )
                })?
                .to_utc();
            if t > now {
                return Err(Denial::new(
                    Rule::NoFutureDrills,
                    format!("the drill time {t} is in the future (now {now})"),
                ));
            }
            Ok(t)
        }
    }
}

/// Decides one AdmissionReview request. `model_sha256`: the digest of the request's candidate's
/// model, when the webhook could read it (an approval is bound to it). Never panics.
pub fn review(
    req: &AdmissionRequest,
    cfg: &Config,
    mode: Mode,
    model_sha256: Option<&str>,
    now: DateTime<Utc>,
) -> Verdict {
    let mut verdict = Verdict {
        denial: None,
        patch: Vec::new(),
        audit: Vec::new(),
        warnings: Vec::new(),
    };
    let result = match req.kind.kind.as_str() {
        "JanusCandidate" => candidate_rules(req, cfg),
        "PromotionRequest" => request_rules(req, cfg, mode, model_sha256, now, &mut verdict),
        _ => Ok(()),
    };
    if let Err(denial) = result {
        let object = req.object.as_ref().or(req.old_object.as_ref());
        let r = object
            .map(|o| read_request(o, &req.namespace))
            .unwrap_or_default();
        verdict.patch.clear();
        verdict.audit = vec![Entry {
            time: now,
            event: "refused".into(),
            namespace: req.namespace.clone(),
            request: if r.name.is_empty() {
                req.name.clone()
            } else {
                r.name
            },
            request_uid: Some(r.uid).filter(|u| !u.is_empty()),
            candidate: r.candidate,
            model_sha256: None,
            from: None,
            to: None,
            phase: None,
            reason: format!("{} {}: {}", req.operation, req.kind.kind, denial.message()),
            actor: req.user_info.username.clone(),
            record_sig: None,
            prev: String::new(),
            version: None,
            mac: None,
            hash: String::new(),
        }];
        verdict.denial = Some(denial);
    }
    verdict
}

fn candidate_rules(req: &AdmissionRequest, cfg: &Config) -> Result<(), Denial> {
    if req.operation == "UPDATE" {
        let spec = |o: &Option<Value>| o.as_ref().and_then(|o| o.get("spec")).cloned();
        if spec(&req.object) != spec(&req.old_object) {
            return Err(Denial::new(
                Rule::CandidatesAreOperatorOnly,
                "a JanusCandidate's spec (its model and lineage) is fixed once recorded, even for the operator",
            ));
        }
    }
    if matches!(req.operation.as_str(), "CREATE" | "UPDATE")
        && req.user_info.username != cfg.operator_username
    {
        return Err(Denial::new(
            Rule::CandidatesAreOperatorOnly,
            format!(
                "{} may not {} a JanusCandidate; only the operator ({}) records candidates",
                req.user_info.username,
                req.operation.to_lowercase(),
                cfg.operator_username
            ),
        ));
    }
    Ok(())
}

fn request_rules(
    req: &AdmissionRequest,
    cfg: &Config,
    mode: Mode,
    model: Option<&str>,
    now: DateTime<Utc>,
    verdict: &mut Verdict,
) -> Result<(), Denial> {
    let create = match req.operation.as_str() {
        "CREATE" => true,
        "UPDATE" => false,
        _ => return Ok(()),
    };
    let Some(object) = &req.object else {
        return Err(Denial::new(Rule::Malformed, "the review carries no object"));
    };
    let new = read_request(object, &req.namespace);
    let old = req
        .old_object
        .as_ref()
        .map(|o| read_request(o, &req.namespace));
    if new.name.is_empty() {
        return Err(Denial::new(
            Rule::Malformed,
            "a PromotionRequest needs metadata.name (generateName is not supported)",
        ));
    }
    let user = &req.user_info;
    // The spec rules.
    if let Some(old) = &old {
        if old.candidate != new.candidate || old.target != new.target {
            return Err(Denial::new(
                Rule::ImmutableCandidateAndTarget,
                format!(
                    "spec.candidate and spec.target are fixed at creation (`{}` {}); create a new request",
                    old.candidate,
                    old.target.map(Target::name).unwrap_or("?")
                ),
            ));
        }
        if old.kill_switch && !new.kill_switch {
            return Err(Denial::new(
                Rule::KillSwitchLatches,
                "spec.killSwitch may go to true, never back to false; a halted request stays halted: create a new request",
            ));
        }
    }
    let old_annotations = old
        .as_ref()
        .map(|o| o.annotations.clone())
        .unwrap_or_default();
    for (annotation, what) in crate::identity::UNSIGNED_ANNOTATIONS {
        if let Some(v) = new.annotations.get(annotation) {
            if old_annotations.get(annotation) != Some(v) {
                return Err(Denial::new(
                    Rule::NoUnsignedApprovals,
                    format!(
                        "{annotation} is typed text, not an authenticated {what}; ask the webhook instead (docs/gates.md: {})",
                        match what {
                            "approval" => "janus.torghut.io/approve=true, approver group",
                            "rollback-drill" =>
                                "janus.torghut.io/record-rollback-drill=now, on-call",
                            "kill-switch-drill" =>
                                "janus.torghut.io/record-kill-switch-drill=now, on-call",
                            _ => "janus.torghut.io/validate-runbook=true, on-call",
                        }
                    ),
                ));
            }
        }
    }
    let uid = old.as_ref().map(|o| o.uid.clone()).unwrap_or_default();
    let key = &cfg.key;
    // The verified creator, from the object before this change (at CREATE: none yet).
    let creator = old.as_ref().and_then(|o| {
        let b = o.binding(&o.uid, None)?;
        crate::identity::verify(&o.annotations, Kind::CreatedBy, &b, key, now)
            .ok()
            .flatten()
    });
    let created = old.as_ref().and_then(|o| o.created);
    let old_annotations = old
        .as_ref()
        .map(|o| o.annotations.clone())
        .unwrap_or_default();
    let record = |kind: Kind, at: DateTime<Utc>| Record {
        kind,
        by: user.username.clone(),
        groups: user.groups.clone(),
        namespace: new.namespace.clone(),
        request: new.name.clone(),
        request_uid: if kind == Kind::CreatedBy {
            String::new()
        } else {
            uid.clone()
        },
        candidate: new.candidate.clone(),
        target: new.target.unwrap_or(Target::Paper),
        model_sha256: (kind == Kind::Approval)
            .then(|| model.map(str::to_string))
            .flatten(),
        approved_spec_sha256: (kind == Kind::Approval)
            .then(|| new.spec_sha256.clone().ok())
            .flatten(),
        at,
        recorded_at: now,
        expires_at: (kind == Kind::Approval).then(|| now + cfg.approval_ttl),
        sig: String::new(),
    };
    match mode {
        Mode::Mutate => {
            let mut after = new.annotations.clone();
            let mut stamped: Vec<Record> = Vec::new();
            if create {
                for kind in Kind::ALL {
                    if let Some(ask) = kind.ask() {
                        if after.contains_key(ask) {
                            return Err(Denial::new(
                                Rule::RecordsNeedAnExistingRequest,
                                format!(
                                    "`{ask}` is recorded on an existing request, not at creation"
                                ),
                            ));
                        }
                    }
                    if after.remove(kind.annotation()).is_some() {
                        verdict.warnings.push(format!(
                            "{} dropped: only the webhook stamps it",
                            kind.annotation()
                        ));
                    }
                }
                if new.target.is_some() {
                    stamped.push(record(Kind::CreatedBy, now));
                }
            } else {
                // A changed spec voids the approval of the old one (docs/gates.md): removed
                // here, so what is stored says so; the operator ignores it anyway.
                let terms_changed = match (&old, &new.spec_sha256) {
                    (Some(o), Ok(new_terms)) => o.spec_sha256.as_ref() != Ok(new_terms),
                    _ => true,
                };
                let approval = Kind::Approval.annotation();
                if terms_changed
                    && after.contains_key(approval)
                    && after.get(approval) == old_annotations.get(approval)
                {
                    after.remove(approval);
                    verdict.warnings.push(format!(
                        "{approval} removed: the approval covered the spec as it was approved; spec.canary (the risk limits) or another approved field changed, so an approver must approve again (rule `{}`)",
                        Rule::ApprovalCoversTheSpec.name()
                    ));
                }
                for kind in Kind::ALL {
                    let Some(ask) = kind.ask() else { continue };
                    let Some(value) = after.remove(ask) else {
                        continue;
                    };
                    if new.target.is_none() {
                        return Err(Denial::new(
                            Rule::Malformed,
                            "spec.target is not paper or canary",
                        ));
                    }
                    let at = ask_time(kind, &value, now)?;
                    authorize(kind, user, cfg, creator.as_ref(), created)?;
                    if kind == Kind::Approval {
                        if model.is_none() {
                            return Err(Denial::new(
                                Rule::ApprovalBindsTheModel,
                                format!(
                                    "an approval is bound to the candidate's model, and the model digest of candidate `{}` cannot be read (it does not exist yet, is unreadable, or was not read in time): approve once the candidate exists",
                                    new.candidate
                                ),
                            ));
                        }
                        if let Err(why) = &new.spec_sha256 {
                            return Err(Denial::new(
                                Rule::Malformed,
                                format!("an approval binds the spec, which cannot be read: {why}"),
                            ));
                        }
                    }
                    stamped.push(record(kind, at));
                }
            }
            let switched_on = new.kill_switch && !old.as_ref().is_some_and(|o| o.kill_switch);
            if switched_on && new.target.is_some() {
                stamped.push(record(Kind::KillSwitch, now));
            }
            // Who asked for a rollback: whoever adds or changes the reason (anybody who may
            // update the request may roll it back, as anybody may stop it).
            let reason = |a: &BTreeMap<String, String>| {
                a.get(crate::crd::ROLLBACK_REASON)
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
            };
            if !create
                && new.target.is_some()
                && reason(&after).is_some()
                && reason(&after) != reason(&old_annotations)
            {
                stamped.push(record(Kind::Rollback, now));
            }
            // Stamps changed by hand, other than the ones stamped now: refused below by the
            // validating webhook too; refused here first with the same rule.
            if !create {
                check_hand_edits(&old_annotations, &after, &stamped)?;
            }
            // A dry run persists nothing: its records come back unsigned (worth nothing if
            // put on a request later), with a warning naming the rule.
            let dry_run = req.dry_run == Some(true);
            if dry_run && !stamped.is_empty() {
                verdict.warnings.push(format!(
                    "dry run: the records this change would stamp are shown unsigned (rule `{}`)",
                    Rule::DryRunSignsNothing.name()
                ));
            }
            for r in &stamped {
                let record = if dry_run {
                    r.clone()
                } else {
                    r.clone().signed(key)
                };
                after.insert(r.kind.annotation().to_string(), record.to_annotation());
            }
            verdict.patch = annotations_patch(new.has_annotations, &new.annotations, &after);
            Ok(())
        }
        Mode::Validate => {
            for kind in Kind::ALL {
                if let Some(ask) = kind.ask() {
                    if new.annotations.contains_key(ask) {
                        return Err(Denial::new(
                            Rule::AsksGoThroughTheMutatingWebhook,
                            format!(
                                "`{ask}` reached validation unstamped: the mutating webhook did not run"
                            ),
                        ));
                    }
                }
            }
            // Every stamp that changed must be the webhook's, for this request, by this user,
            // made now, and allowed to this user.
            for kind in Kind::ALL {
                let a = kind.annotation();
                let value = new.annotations.get(a);
                if value == old_annotations.get(a) {
                    continue;
                }
                let Some(value) = value else {
                    if kind == Kind::CreatedBy {
                        return Err(Denial::new(
                            Rule::StampsAreWebhookOnly,
                            format!("{STAMP_CREATED_BY} may not be removed"),
                        ));
                    }
                    continue; // Removing a record withdraws it.
                };
                if create && !matches!(kind, Kind::CreatedBy | Kind::KillSwitch) {
                    return Err(Denial::new(
                        Rule::RecordsNeedAnExistingRequest,
                        format!("{a} is recorded on an existing request, not at creation"),
                    ));
                }
                if !create && kind == Kind::CreatedBy {
                    return Err(Denial::new(
                        Rule::StampsAreWebhookOnly,
                        format!("{STAMP_CREATED_BY} is stamped at creation and never changes"),
                    ));
                }
                let single = BTreeMap::from([(a.to_string(), value.clone())]);
                let binding_uid = if create { String::new() } else { uid.clone() };
                let Some(b) = new.binding(&binding_uid, None) else {
                    return Err(Denial::new(
                        Rule::Malformed,
                        "spec.target is not paper or canary",
                    ));
                };
                // A dry run's records are unsigned (see the mutating side): checked but for
                // the signature; nothing is persisted.
                let checked = if req.dry_run == Some(true) {
                    crate::identity::parse(&single, kind).and_then(|r| match r {
                        Some(r) if r.sig.is_empty() => {
                            crate::identity::check_bound(&r, &b, now).map(|()| Some(r))
                        }
                        _ => crate::identity::verify(&single, kind, &b, key, now),
                    })
                } else {
                    crate::identity::verify(&single, kind, &b, key, now)
                };
                let r = match checked {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(Denial::new(
                            Rule::StampsAreWebhookOnly,
                            format!(
                                "{a} is not a record the webhook stamped for this request: {e}"
                            ),
                        ));
                    }
                };
                if r.by != user.username || (now - r.recorded_at).num_seconds().abs() > 300 {
                    return Err(Denial::new(
                        Rule::StampsAreWebhookOnly,
                        format!(
                            "{a} was stamped for {} at {}, not for {} now: ask the webhook (docs/gates.md)",
                            r.by, r.recorded_at, user.username
                        ),
                    ));
                }
                authorize(kind, user, cfg, creator.as_ref(), created)?;
            }
            if create && !new.annotations.contains_key(STAMP_CREATED_BY) {
                return Err(Denial::new(
                    Rule::StampsAreWebhookOnly,
                    format!("{STAMP_CREATED_BY} was not stamped: the mutating webhook did not run"),
                ));
            }
            Ok(())
        }
    }
}

/// Refuses stamped annotations that were added or changed by hand (removal withdraws a record
/// and is allowed, except the creator's).
fn check_hand_edits(
    old: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    stamped_now: &[Record],
) -> Result<(), Denial> {
    for kind in Kind::ALL {
        if stamped_now.iter().any(|r| r.kind == kind) {
            continue;
        }
        let a = kind.annotation();
        match (old.get(a), after.get(a)) {
            (x, y) if x == y => {}
            (Some(_), None) if kind != Kind::CreatedBy => {}
            _ => {
                return Err(Denial::new(
                    Rule::StampsAreWebhookOnly,
                    format!(
                        "{a} is written by the admission webhook only; ask for it instead (docs/gates.md)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
