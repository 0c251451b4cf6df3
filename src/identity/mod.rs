//! Who did what to a PromotionRequest, as only the admission webhook can say it: records of the
//! creator, an approval, a drill, a runbook validation or a kill switch, each taken from the
//! API server's authenticated `userInfo` (Kubernetes AdmissionReview v1), bound to one request
//! (namespace, name, UID, candidate, target; an approval also to the model and to the spec it
//! approved, canary limits included) and signed with HMAC-SHA256 (RFC 2104) over the
//! record's RFC 8785 canonical JSON, with a key only the operator reads. The operator believes
//! a record only when [`verify`] accepts it; a record typed by hand, or copied from another
//! request, is worth nothing. Pure: the key and the clock are inputs.

use crate::contracts::jcs::to_canonical_vec;
use crate::gates::Target;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a record says happened. Its annotation is [`Kind::annotation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Who created the request (stamped at CREATE).
    CreatedBy,
    /// A human approval (approver group; never the creator, never a ServiceAccount).
    Approval,
    /// A rollback drill was done (on-call group).
    RollbackDrill,
    /// A kill-switch drill was done (on-call group).
    KillSwitchDrill,
    /// The runbook was validated (on-call group).
    RunbookValidation,
    /// Who turned the kill switch on.
    KillSwitch,
    /// Who asked for a rollback (added or changed `janus.torghut.io/rollback-reason`).
    Rollback,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::CreatedBy,
        Kind::Approval,
        Kind::RollbackDrill,
        Kind::KillSwitchDrill,
        Kind::RunbookValidation,
        Kind::KillSwitch,
        Kind::Rollback,
    ];

    /// The annotation the webhook writes the signed record to.
    pub fn annotation(self) -> &'static str {
        match self {
            Kind::CreatedBy => crate::crd::STAMP_CREATED_BY,
            Kind::Approval => crate::crd::STAMP_APPROVAL,
            Kind::RollbackDrill => crate::crd::STAMP_ROLLBACK_DRILL,
            Kind::KillSwitchDrill => crate::crd::STAMP_KILL_SWITCH_DRILL,
            Kind::RunbookValidation => crate::crd::STAMP_RUNBOOK_VALIDATION,
            Kind::KillSwitch => crate::crd::STAMP_KILL_SWITCH,
            Kind::Rollback => crate::crd::STAMP_ROLLBACK,
        }
    }

    /// The annotation a human sets to ask for this record (`None`: stamped on its own).
    pub fn ask(self) -> Option<&'static str> {
        match self {
            Kind::Approval => Some(crate::crd::ASK_APPROVE),
            Kind::RollbackDrill => Some(crate::crd::ASK_ROLLBACK_DRILL),
            Kind::KillSwitchDrill => Some(crate::crd::ASK_KILL_SWITCH_DRILL),
            Kind::RunbookValidation => Some(crate::crd::ASK_VALIDATE_RUNBOOK),
            Kind::CreatedBy | Kind::KillSwitch | Kind::Rollback => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::CreatedBy => "created-by",
            Kind::Approval => "approval",
            Kind::RollbackDrill => "rollback-drill",
            Kind::KillSwitchDrill => "kill-switch-drill",
            Kind::RunbookValidation => "runbook-validation",
            Kind::KillSwitch => "kill-switch",
            Kind::Rollback => "rollback",
        }
    }
}

/// A stamped record, as the annotation's JSON value holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    pub kind: Kind,
    /// The authenticated username (AdmissionReview `userInfo.username`).
    pub by: String,
    /// Its groups (`userInfo.groups`).
    pub groups: Vec<String>,
    pub namespace: String,
    /// The request's name.
    pub request: String,
    /// The request's UID; empty for `created-by` (the API server assigns the UID after
    /// admission of a CREATE).
    #[serde(default)]
    pub request_uid: String,
    pub candidate: String,
    pub target: Target,
    /// The candidate's model digest when the webhook could read it (approvals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    /// Approvals: the digest of the spec approved
    /// (`crate::crd::PromotionRequestSpec::approved_terms_sha256`: everything but the kill
    /// switch, so the canary's risk limits). An approval without it, or with another spec's,
    /// counts for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_spec_sha256: Option<String>,
    /// When it happened (a drill's time; otherwise the time of stamping), RFC 3339.
    pub at: DateTime<Utc>,
    /// When it was stamped.
    pub recorded_at: DateTime<Utc>,
    /// After this it counts for nothing (approvals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// HMAC-SHA256 of the record without `sig` (RFC 8785 canonical JSON), lowercase hex.
    #[serde(default)]
    pub sig: String,
}

/// The HMAC keys: the current one, which signs records and seals, and any previous ones (a
/// rotation in progress), which only verify. A record or seal made with any of them counts, so
/// rotating the key (docs/gitops.md) voids nothing that is on record or served; what is
/// written from then on is signed with the current key only.
#[derive(Clone)]
pub struct SigningKey {
    current: ring::hmac::Key,
    previous: Vec<ring::hmac::Key>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(.., {} previous)", self.previous.len())
    }
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}: the signing key must hold at least 16 bytes (after trimming whitespace)"
    )]
    TooShort {
        path: std::path::PathBuf,
        /// 1-based line of the file.
        line: usize,
    },
    #[error("{0}: no signing key in it")]
    Empty(std::path::PathBuf),
}

impl SigningKey {
    /// A key from its bytes (at least 16), with no previous keys.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= 16).then(|| Self {
            current: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes),
            previous: Vec::new(),
        })
    }

    /// This key, also accepting what `previous` signed (their own previous keys included).
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = SigningKey>) -> Self {
        for p in previous {
            self.previous.push(p.current);
            self.previous.extend(p.previous);
        }
        self
    }

    /// Keys from a file (a mounted Secret): one key per line, surrounding whitespace ignored,
    /// blank lines skipped; the first line is the current key, every further line a previous
    /// key that still verifies (a rotation: put the new key first, keep the old one below it).
    /// A file of one key (as the chart generates it) is the current key alone.
    pub fn from_file(path: &std::path::Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut keys = Vec::new();
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            keys.push(Self::new(text).ok_or_else(|| KeyError::TooShort {
                path: path.to_path_buf(),
                line: i + 1,
            })?);
        }
        let mut keys = keys.into_iter();
        let current = keys
            .next()
            .ok_or_else(|| KeyError::Empty(path.to_path_buf()))?;
        Ok(current.with_previous(keys))
    }

    /// HMAC-SHA256 (RFC 2104) of `bytes` under the current key, lowercase hex. A caller whose
    /// key may sign other things puts a domain prefix in `bytes` (the runtime statistics sign
    /// `janus-runtime-stats-v1\n` + content), so a tag made for one purpose never verifies for
    /// another.
    pub fn sign(&self, bytes: &[u8]) -> String {
        hex(ring::hmac::sign(&self.current, bytes).as_ref())
    }

    /// Whether `tag` is the HMAC of `bytes` under the current or a previous key
    /// (constant-time comparison for each).
    pub fn verifies(&self, bytes: &[u8], tag: &str) -> bool {
        let Some(tag) = unhex(tag) else {
            return false;
        };
        std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|k| ring::hmac::verify(k, bytes, &tag).is_ok())
    }
}

impl SigningKey {
    /// Whether any key of `self` (current or previous) is also one of `other`'s: each of
    /// `self`'s keys MACs a fixed probe and `other` verifies the tag (equal HMAC keys give equal
    /// tags; distinct ones collide with probability 2^-256). Used to refuse one key for two
    /// purposes (the operator's `--stats-key` and `--webhook-signing-key-file`).
    pub fn shares_a_key_with(&self, other: &SigningKey) -> bool {
        const PROBE: &[u8] = b"janus-key-comparison-probe";
        std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|k| other.verifies(PROBE, &hex(ring::hmac::sign(k, PROBE).as_ref())))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Record {
    fn signed_bytes(&self) -> Vec<u8> {
        // The record's fields are strings, times and a closed enum: always canonical.
        to_canonical_vec(self, Some("sig")).unwrap_or_default()
    }

    /// The record with its signature set.
    pub fn signed(mut self, key: &SigningKey) -> Record {
        self.sig = String::new();
        self.sig = key.sign(&self.signed_bytes());
        self
    }

    /// The annotation value: the record's canonical JSON.
    pub fn to_annotation(&self) -> String {
        String::from_utf8(to_canonical_vec(self, None).unwrap_or_default()).unwrap_or_default()
    }

    /// Whether the signature is the key's over this record (constant-time comparison).
    pub fn signature_valid(&self, key: &SigningKey) -> bool {
        key.verifies(&self.signed_bytes(), &self.sig)
    }
}

/// The operator's seal on what a PromotionRequest's status says it serves: HMAC-SHA256 (the
/// webhook's key, which only the operator holds) over `uid`, stage, phase, the bound candidate
/// and target and the served model's digest, joined with newlines; lowercase hex. A status
/// written by anyone else (a hand edit through the status subresource, a restored backup) does
/// not carry a valid seal for what it claims.
pub fn status_seal(key: &SigningKey, fields: &[&str]) -> String {
    key.sign(fields.join("\n").as_bytes())
}

/// Whether `seal` is the seal over `fields` of the current or a previous key (constant-time
/// comparison).
pub fn status_seal_valid(key: &SigningKey, fields: &[&str], seal: &str) -> bool {
    key.verifies(fields.join("\n").as_bytes(), seal)
}

/// The request a record must be bound to.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding<'a> {
    pub namespace: &'a str,
    pub request: &'a str,
    /// The request's UID (`metadata.uid`).
    pub uid: &'a str,
    pub candidate: &'a str,
    pub target: Target,
    /// The candidate's model digest now, when known: an approval for another model is void.
    pub model_sha256: Option<&'a str>,
    /// The digest of the request's spec now
    /// (`crate::crd::PromotionRequestSpec::approved_terms_sha256`; `None` when it cannot be
    /// computed): an approval counts only when it approved exactly this spec.
    pub spec_sha256: Option<&'a str>,
}

/// Why a record does not count; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{kind} record is not a stamped record: {why}")]
    Malformed { kind: &'static str, why: String },
    #[error("{kind} record's signature is not the webhook's (typed by hand or altered)")]
    BadSignature { kind: &'static str },
    #[error(
        "{kind} record was stamped for {what} `{theirs}`, not this request's `{ours}` (copied)"
    )]
    OtherRequest {
        kind: &'static str,
        what: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("{kind} record by {by} expired at {at}")]
    Expired {
        kind: &'static str,
        by: String,
        at: String,
    },
    #[error("{kind} record by {by} is dated in the future ({at})")]
    Future {
        kind: &'static str,
        by: String,
        at: String,
    },
    #[error(
        "approval by {by} does not cover this spec: spec.canary (the risk limits) or another approved field changed after it was approved{detail}; ask an approver again"
    )]
    TermsChanged { by: String, detail: String },
    #[error(
        "approval by {by} binds no model digest (the candidate's model could not be read when it was stamped): it could count for any model; ask an approver again"
    )]
    NoModel { by: String },
    #[error("approval by {by}: separation of duties: the approver created the request")]
    SelfApproval { by: String },
    #[error(
        "approval by {by}: the request's creator is not on record, so separation of duties cannot be shown"
    )]
    CreatorUnknown { by: String },
}

/// How far ahead of the operator's clock a record's `at` and `recordedAt` may be and still
/// count: 5 minutes. The webhook may run on another node whose clock is ahead; a record it just
/// stamped must count at once (a kill switch's actor, an approval). A drill is never dated in
/// the future by the webhook's own clock (rule `no-future-drills`), so this bounds only the
/// skew between the two clocks (docs/gates.md).
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Reads the record of `kind` from the annotations and checks it: well-formed, signed by `key`,
/// bound to `binding` (an approval always to a model digest), not expired and not dated more
/// than [`MAX_CLOCK_SKEW`] after `now`. `Ok(None)` when absent.
pub fn verify(
    annotations: &BTreeMap<String, String>,
    kind: Kind,
    binding: &Binding<'_>,
    key: &SigningKey,
    now: DateTime<Utc>,
) -> Result<Option<Record>, Invalid> {
    let Some(record) = parse(annotations, kind)? else {
        return Ok(None);
    };
    if !record.signature_valid(key) {
        return Err(Invalid::BadSignature { kind: kind.name() });
    }
    check_bound(&record, binding, now)?;
    Ok(Some(record))
}

/// Parses the record of `kind` from the annotations without checking its signature (`Ok(None)`
/// when absent): for the validating webhook on a dry run, whose records the mutating webhook
/// leaves unsigned. Never a reason to believe a record.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    kind: Kind,
) -> Result<Option<Record>, Invalid> {
    let Some(text) = annotations.get(kind.annotation()) else {
        return Ok(None);
    };
    let name = kind.name();
    let record: Record = serde_json::from_str(text).map_err(|e| Invalid::Malformed {
        kind: name,
        why: e.to_string(),
    })?;
    if record.kind != kind {
        return Err(Invalid::Malformed {
            kind: name,
            why: format!("it is a {} record", record.kind.name()),
        });
    }
    Ok(Some(record))
}

/// The checks of [`verify`] after the signature: bound to `binding`, an approval to a model and
/// the spec, not expired, not dated in the future beyond [`MAX_CLOCK_SKEW`].
pub fn check_bound(
    record: &Record,
    binding: &Binding<'_>,
    now: DateTime<Utc>,
) -> Result<(), Invalid> {
    let kind = record.kind;
    let name = kind.name();
    let other = |what, theirs: &str, ours: &str| Invalid::OtherRequest {
        kind: name,
        what,
        theirs: theirs.to_string(),
        ours: ours.to_string(),
    };
    if record.namespace != binding.namespace {
        return Err(other("namespace", &record.namespace, binding.namespace));
    }
    if record.request != binding.request {
        return Err(other("request", &record.request, binding.request));
    }
    // created-by is stamped before the UID exists; the others carry it.
    if kind != Kind::CreatedBy && record.request_uid != binding.uid {
        return Err(other("request UID", &record.request_uid, binding.uid));
    }
    if record.candidate != binding.candidate {
        return Err(other("candidate", &record.candidate, binding.candidate));
    }
    if record.target != binding.target {
        return Err(other("target", record.target.name(), binding.target.name()));
    }
    if kind == Kind::Approval && record.model_sha256.is_none() {
        return Err(Invalid::NoModel {
            by: record.by.clone(),
        });
    }
    if let (Some(theirs), Some(ours)) = (&record.model_sha256, binding.model_sha256) {
        if theirs != ours {
            return Err(other("model", theirs, ours));
        }
    }
    if kind == Kind::Approval
        && (record.approved_spec_sha256.is_none()
            || record.approved_spec_sha256.as_deref() != binding.spec_sha256)
    {
        return Err(Invalid::TermsChanged {
            by: record.by.clone(),
            detail: if record.approved_spec_sha256.is_none() {
                " (the record binds no spec: stamped before approvals bound it)".into()
            } else {
                String::new()
            },
        });
    }
    if record.at > now + MAX_CLOCK_SKEW || record.recorded_at > now + MAX_CLOCK_SKEW {
        return Err(Invalid::Future {
            kind: name,
            by: record.by.clone(),
            at: record.at.to_rfc3339(),
        });
    }
    if let Some(expires) = record.expires_at {
        if now >= expires {
            return Err(Invalid::Expired {
                kind: name,
                by: record.by.clone(),
                at: expires.to_rfc3339(),
            });
        }
    }
    Ok(())
}

/// Shortens `text` to at most `max` bytes, marking the cut ([`crate::text::bounded`]).
pub fn clip(text: &mut String, max: usize) {
    if text.len() > max {
        *text = crate::text::bounded(text, max);
    }
}

/// Everything verified on one request: what the operator may believe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verified {
    pub created_by: Option<Record>,
    pub approval: Option<Record>,
    pub rollback_drill: Option<Record>,
    pub kill_switch_drill: Option<Record>,
    pub runbook_validation: Option<Record>,
    pub kill_switch: Option<Record>,
    pub rollback: Option<Record>,
    /// Why records or plain annotations present were not believed (shown as blockers).
    pub ignored: Vec<String>,
}

impl Verified {
    /// The verified records, creator first.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        [
            &self.created_by,
            &self.approval,
            &self.rollback_drill,
            &self.kill_switch_drill,
            &self.runbook_validation,
            &self.kill_switch,
            &self.rollback,
        ]
        .into_iter()
        .flatten()
    }
}

/// The plain annotations of earlier versions, which count for nothing now.
pub const UNSIGNED_ANNOTATIONS: [(&str, &str); 5] = [
    (crate::crd::APPROVED_BY, "approval"),
    (crate::crd::APPROVAL_TOKEN, "approval"),
    (crate::crd::ROLLBACK_DRILL_AT, "rollback-drill"),
    (
        crate::controller::promotion::KILL_SWITCH_DRILL_AT,
        "kill-switch-drill",
    ),
    (
        crate::controller::promotion::RUNBOOK_VALIDATED,
        "runbook-validation",
    ),
];

/// Verifies every record on a request (see [`verify`]); an approval counts only beside a valid
/// creator record naming someone else (separation of duties). Without a key nothing is
/// believed. Plain annotations of earlier versions and asks the webhook never stamped are
/// named in `ignored`.
pub fn verify_all(
    annotations: &BTreeMap<String, String>,
    binding: &Binding<'_>,
    key: Option<&SigningKey>,
    now: DateTime<Utc>,
) -> Verified {
    let mut out = Verified::default();
    let mut unsigned: Vec<&str> = Vec::new();
    for (annotation, what) in UNSIGNED_ANNOTATIONS {
        if annotations.contains_key(annotation) && !unsigned.contains(&what) {
            unsigned.push(what);
        }
    }
    for what in unsigned {
        out.ignored.push(format!(
            "unsigned {what} annotation ignored: only records the admission webhook stamped count (docs/gates.md)"
        ));
    }
    for kind in Kind::ALL {
        if let Some(ask) = kind.ask() {
            if annotations.contains_key(ask) {
                out.ignored.push(format!(
                    "`{ask}` was never stamped by the admission webhook (it was down or bypassed); set it again"
                ));
            }
        }
    }
    let Some(key) = key else {
        if Kind::ALL
            .iter()
            .any(|k| annotations.contains_key(k.annotation()))
        {
            out.ignored
                .push("stamped records ignored: the operator has no signing key".into());
        }
        return out;
    };
    for kind in Kind::ALL {
        match verify(annotations, kind, binding, key, now) {
            Ok(record) => {
                let slot = match kind {
                    Kind::CreatedBy => &mut out.created_by,
                    Kind::Approval => &mut out.approval,
                    Kind::RollbackDrill => &mut out.rollback_drill,
                    Kind::KillSwitchDrill => &mut out.kill_switch_drill,
                    Kind::RunbookValidation => &mut out.runbook_validation,
                    Kind::KillSwitch => &mut out.kill_switch,
                    Kind::Rollback => &mut out.rollback,
                };
                *slot = record;
            }
            Err(e) => out
                .ignored
                .push(format!("{} ignored: {e}", kind.annotation())),
        }
    }
    // What a forged record says is quoted in these; a status message must stay small.
    for message in &mut out.ignored {
        clip(message, 1024);
    }
    if let Some(approval) = &out.approval {
        let why = match &out.created_by {
            None => Some(Invalid::CreatorUnknown {
                by: approval.by.clone(),
            }),
            Some(c) if c.by == approval.by => Some(Invalid::SelfApproval {
                by: approval.by.clone(),
            }),
            Some(_) => None,
        };
        if let Some(why) = why {
            out.ignored
                .push(format!("{} ignored: {why}", Kind::Approval.annotation()));
            out.approval = None;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::new(b"0123456789abcdef-test-key").unwrap()
    }

    #[test]
    fn a_shared_key_is_found_in_either_place_of_a_rotation() {
        let a = || SigningKey::new(b"key-a-0123456789abcdef").unwrap();
        let b = || SigningKey::new(b"key-b-0123456789abcdef").unwrap();
        assert!(a().shares_a_key_with(&a()));
        assert!(!a().shares_a_key_with(&b()));
        // A previous key on either side is still the same key.
        assert!(b().with_previous([a()]).shares_a_key_with(&a()));
        assert!(a().shares_a_key_with(&b().with_previous([a()])));
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn binding() -> Binding<'static> {
        Binding {
            namespace: "ns",
            request: "r1",
            uid: "uid-1",
            candidate: "c1",
            target: Target::Canary,
            model_sha256: Some("aa"),
            spec_sha256: Some("ss"),
        }
    }

    fn record(kind: Kind, by: &str) -> Record {
        Record {
            kind,
            by: by.into(),
            groups: vec!["approvers".into()],
            namespace: "ns".into(),
            request: "r1".into(),
            request_uid: "uid-1".into(),
            candidate: "c1".into(),
            target: Target::Canary,
            model_sha256: Some("aa".into()),
            approved_spec_sha256: Some("ss".into()),
            at: t("2026-01-01T10:00:00Z"),
            recorded_at: t("2026-01-01T10:00:00Z"),
            expires_at: Some(t("2026-01-02T10:00:00Z")),
            sig: String::new(),
        }
    }

    fn with(records: &[Record]) -> BTreeMap<String, String> {
        records
            .iter()
            .map(|r| (r.kind.annotation().to_string(), r.to_annotation()))
            .collect()
    }

    #[test]
    fn a_signed_record_bound_to_the_request_verifies() {
        let now = t("2026-01-01T12:00:00Z");
        let a = with(&[
            record(Kind::CreatedBy, "bob").signed(&key()),
            record(Kind::Approval, "alice").signed(&key()),
        ]);
        let v = verify_all(&a, &binding(), Some(&key()), now);
        assert_eq!(v.approval.unwrap().by, "alice");
        assert_eq!(v.created_by.unwrap().by, "bob");
        assert!(v.ignored.is_empty(), "{:?}", v.ignored);
    }

    #[test]
    fn forged_copied_expired_and_self_approvals_count_for_nothing() {
        let now = t("2026-01-01T12:00:00Z");
        let creator = record(Kind::CreatedBy, "bob").signed(&key());
        let cases: Vec<(Record, &str)> = vec![
            // Typed by hand: no or a made-up signature.
            (record(Kind::Approval, "alice"), "signature"),
            (
                {
                    let mut r = record(Kind::Approval, "alice").signed(&key());
                    r.by = "mallory".into();
                    r
                },
                "signature",
            ),
            // Signed with another key.
            (
                record(Kind::Approval, "alice").signed(&SigningKey::new(&[7; 32]).unwrap()),
                "signature",
            ),
            // Copied from another request (other UID).
            (
                {
                    let mut r = record(Kind::Approval, "alice");
                    r.request_uid = "uid-0".into();
                    r.signed(&key())
                },
                "request UID",
            ),
            // Bound to another model.
            (
                {
                    let mut r = record(Kind::Approval, "alice");
                    r.model_sha256 = Some("bb".into());
                    r.signed(&key())
                },
                "model",
            ),
            // Approved another spec (the canary's limits widened since), or no spec at all.
            (
                {
                    let mut r = record(Kind::Approval, "alice");
                    r.approved_spec_sha256 = Some("s2".into());
                    r.signed(&key())
                },
                "does not cover this spec",
            ),
            (
                {
                    let mut r = record(Kind::Approval, "alice");
                    r.approved_spec_sha256 = None;
                    r.signed(&key())
                },
                "binds no spec",
            ),
            // Expired.
            (
                {
                    let mut r = record(Kind::Approval, "alice");
                    r.expires_at = Some(t("2026-01-01T11:00:00Z"));
                    r.signed(&key())
                },
                "expired",
            ),
            // By the creator.
            (
                record(Kind::Approval, "bob").signed(&key()),
                "separation of duties",
            ),
        ];
        for (approval, why) in cases {
            let a = with(&[creator.clone(), approval]);
            let v = verify_all(&a, &binding(), Some(&key()), now);
            assert!(v.approval.is_none());
            assert!(
                v.ignored.iter().any(|i| i.contains(why)),
                "{why}: {:?}",
                v.ignored
            );
        }
        // No creator on record: no approval.
        let a = with(&[record(Kind::Approval, "alice").signed(&key())]);
        let v = verify_all(&a, &binding(), Some(&key()), now);
        assert!(v.approval.is_none());
        assert!(v.ignored[0].contains("creator is not on record"));
        // Without a key nothing is believed.
        let a = with(&[creator, record(Kind::Approval, "alice").signed(&key())]);
        let v = verify_all(&a, &binding(), None, now);
        assert!(v.approval.is_none() && v.created_by.is_none());
    }

    #[test]
    fn drills_in_the_future_and_garbage_never_count_and_never_panic() {
        let now = t("2026-01-01T09:00:00Z");
        let a = with(&[record(Kind::RollbackDrill, "carol").signed(&key())]);
        let v = verify_all(&a, &binding(), Some(&key()), now);
        assert!(v.rollback_drill.is_none());
        assert!(v.ignored[0].contains("future"), "{:?}", v.ignored);
        for junk in ["", "{", "null", "[]", "{\"kind\":\"approval\"}", "\u{0}"] {
            let a = BTreeMap::from([(Kind::Approval.annotation().to_string(), junk.to_string())]);
            let v = verify_all(&a, &binding(), Some(&key()), now);
            assert!(v.approval.is_none());
            assert_eq!(v.ignored.len(), 1);
        }
        // A record of one kind under another kind's annotation.
        let mut a = BTreeMap::new();
        a.insert(
            Kind::Approval.annotation().to_string(),
            record(Kind::RunbookValidation, "carol")
                .signed(&key())
                .to_annotation(),
        );
        assert!(
            verify_all(&a, &binding(), Some(&key()), t("2026-01-01T12:00:00Z"))
                .approval
                .is_none()
        );
    }

    #[test]
    fn plain_annotations_are_named_as_ignored() {
        let a = BTreeMap::from([
            (crate::crd::APPROVED_BY.to_string(), "alice".to_string()),
            (crate::crd::APPROVAL_TOKEN.to_string(), "x".to_string()),
            (
                crate::controller::promotion::RUNBOOK_VALIDATED.to_string(),
                "true".to_string(),
            ),
        ]);
        let v = verify_all(&a, &binding(), Some(&key()), t("2026-01-01T12:00:00Z"));
        assert_eq!(
            v.ignored,
            vec![
                "unsigned approval annotation ignored: only records the admission webhook stamped count (docs/gates.md)",
                "unsigned runbook-validation annotation ignored: only records the admission webhook stamped count (docs/gates.md)",
            ]
        );
    }

    #[test]
    fn a_forged_records_text_is_quoted_short() {
        let mut r = record(Kind::Approval, "alice");
        r.candidate = "c".repeat(300_000);
        let a = with(&[
            record(Kind::CreatedBy, "bob").signed(&key()),
            r.signed(&key()),
        ]);
        let v = verify_all(&a, &binding(), Some(&key()), t("2026-01-01T12:00:00Z"));
        assert!(v.approval.is_none());
        assert!(v.ignored[0].len() <= 1024, "{}", v.ignored[0].len());
        assert!(v.ignored[0].contains("[cut: "), "{}", &v.ignored[0][..80]);
    }

    /// A rotation: the new key first, the old one below it. Records and seals of either
    /// verify; what is signed now is the new key's alone (the old key alone rejects it).
    #[test]
    fn a_rotated_key_file_verifies_old_records_and_signs_with_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let old = SigningKey::new(b"old-key-0123456789").unwrap();
        let new = SigningKey::new(b"new-key-0123456789").unwrap();
        std::fs::write(&path, "  new-key-0123456789\n\nold-key-0123456789  \n").unwrap();
        let keys = SigningKey::from_file(&path).unwrap();
        let r = record(Kind::RollbackDrill, "carol");
        assert!(r.clone().signed(&old).signature_valid(&keys));
        let now_signed = r.clone().signed(&keys);
        assert!(now_signed.signature_valid(&new));
        assert!(!now_signed.signature_valid(&old));
        let fields = ["uid-1", "paper", "Promoted"];
        assert!(status_seal_valid(
            &keys,
            &fields,
            &status_seal(&old, &fields)
        ));
        assert!(!status_seal_valid(
            &new,
            &fields,
            &status_seal(&old, &fields)
        ));
        assert!(!status_seal_valid(
            &keys,
            &fields,
            &status_seal(&SigningKey::new(&[9; 16]).unwrap(), &fields)
        ));
        // Errors name the file and line.
        std::fs::write(&path, "new-key-0123456789\nshort\n").unwrap();
        let e = SigningKey::from_file(&path).unwrap_err().to_string();
        assert!(
            e.ends_with(
                ":2: the signing key must hold at least 16 bytes (after trimming whitespace)"
            ),
            "{e}"
        );
        std::fs::write(&path, "\n  \n").unwrap();
        assert!(
            SigningKey::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("no signing key")
        );
    }

    #[test]
    fn keys_must_be_long_enough() {
        assert!(SigningKey::new(b"short").is_none());
        assert!(SigningKey::new(&[0; 16]).is_some());
    }

    /// The webhook's clock a few seconds ahead of the operator's (another node): a record it
    /// just stamped (`at` = its `now`) must count, as `recordedAt` does within five minutes; a
    /// fresh approval or kill-switch record is otherwise ignored as "dated in the future".
    #[test]
    fn adv_a_fresh_record_from_a_webhook_two_seconds_ahead_counts() {
        let operator_now = t("2026-01-01T10:00:00Z");
        let mut approval = record(Kind::Approval, "alice");
        approval.at = t("2026-01-01T10:00:02Z");
        approval.recorded_at = t("2026-01-01T10:00:02Z");
        let a = with(&[
            record(Kind::CreatedBy, "bob").signed(&key()),
            approval.signed(&key()),
        ]);
        let v = verify_all(&a, &binding(), Some(&key()), operator_now);
        assert!(
            v.approval.is_some(),
            "a fresh approval stamped 2 s ahead is ignored: {:?}",
            v.ignored
        );
    }
}
