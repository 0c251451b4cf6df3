//! The audit trail: one JSON line per transition of a PromotionRequest (promotion, block, halt,
//! rollback), per signed record the webhook stamped (approval, drill, runbook validation, kill
//! switch, creator: appended by the operator once per record, when it first sees the record
//! verified on a stored object) and per refused change (appended by the webhook), each line the RFC
//! 8785 canonical JSON of an [`Entry`] carrying the SHA-256 of the line before it (`prev`) and
//! of itself without `hash` (`hash`): a hash chain. Editing, deleting, inserting or reordering
//! a line breaks the chain at the first line that changed or follows the change, and
//! [`verify`] names it. The chain logic here is pure; [`file`] appends to and reads files.
//!
//! A plain chain can be recomputed by anyone who can write the file, so lines are keyed
//! (`version: 2`): each carries `mac`, an HMAC-SHA256 under an [`AuditKey`] (derived from the
//! webhook signing key, which only the operator reads) over the line's canonical JSON without
//! `hash` and `mac` (so over `prev` too). An edit re-sealed without the key fails the MAC
//! ([`verify`] with the key). Lines without `version` (written before keying, or by an operator
//! without a key) are version 1: chain only. Every field is bounded ([`MAX_FIELD`],
//! [`MAX_REASON`]): a longer value is kept as an excerpt naming its length and SHA-256.
//!
//! What a chain cannot show on its own: a cut-off tail. The operator logs each appended
//! line's hash (`audit appended`), so the log pipeline holds an anchor for the head.

pub mod file;

use crate::contracts::Sha256Hex;
use crate::contracts::jcs::to_canonical_vec;
use crate::promotion::{Phase, Stage, Transition};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `prev` of the first line of a file.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// When it happened (RFC 3339, UTC).
    pub time: DateTime<Utc>,
    /// What: `transition`, `approval`, `rollback-drill`, `kill-switch-drill`,
    /// `runbook-validation`, `kill-switch`, `created-by` or `refused`.
    pub event: String,
    pub namespace: String,
    /// The PromotionRequest's name.
    pub request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uid: Option<String>,
    pub candidate: String,
    /// The candidate's model digest, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub reason: String,
    /// Who: an authenticated username (from the API server's `userInfo`, or a verified stamped
    /// record), or what the operator could tell (`unverified:<field manager>`: a name the client
    /// typed).
    pub actor: String,
    /// A record's line: the record's signature (`crate::identity::Record::sig`), which names
    /// the record — one line per record however often the operator sees it
    /// ([`file::append_records`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_sig: Option<String>,
    /// SHA-256 of the previous line's bytes ([`GENESIS`] on the first line).
    pub prev: String,
    /// `2` on a keyed line (it carries `mac`); absent on an unkeyed (version 1) line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// HMAC-SHA256 (hex) under the [`AuditKey`] of this entry's canonical JSON with `hash`
    /// empty and no `mac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// SHA-256 of this entry's canonical JSON without `hash`.
    pub hash: String,
}

/// The most bytes a field of an entry keeps (all but `reason`).
pub const MAX_FIELD: usize = 512;
/// The most bytes `reason` keeps.
pub const MAX_REASON: usize = 4096;

/// The key audit lines are MACed with: HMAC-SHA256 keyed by the HMAC-SHA256, under the webhook
/// signing key (the Secret only the operator reads), of `janus audit trail v2` — so the MAC key
/// is not the signing key itself, and the signing key file is what `janus audit verify --key`
/// takes.
#[derive(Clone)]
pub struct AuditKey(ring::hmac::Key);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// The audit key derived from signing key bytes (at least 16 after trimming whitespace, as
    /// `crate::identity::SigningKey` requires).
    pub fn from_signing_key(bytes: &[u8]) -> Option<AuditKey> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < 16 {
            return None;
        }
        let outer = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, trimmed);
        let derived = ring::hmac::sign(&outer, b"janus audit trail v2");
        Some(AuditKey(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            derived.as_ref(),
        )))
    }

    /// The audit key derived from a signing key file (a mounted Secret).
    pub fn from_file(path: &std::path::Path) -> Result<AuditKey, AuditError> {
        let bytes = std::fs::read(path).map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        AuditKey::from_signing_key(&bytes).ok_or_else(|| AuditError::Key {
            path: path.to_path_buf(),
        })
    }

    fn tag(&self, bytes: &[u8]) -> String {
        ring::hmac::sign(&self.0, bytes)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn valid(&self, bytes: &[u8], mac: &str) -> bool {
        let Some(tag) = unhex(mac) else {
            return false;
        };
        ring::hmac::verify(&self.0, bytes, &tag).is_ok()
    }
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

impl Entry {
    /// An entry for one history transition of a request.
    pub fn transition(
        namespace: &str,
        request: &str,
        request_uid: Option<&str>,
        candidate: &str,
        model_sha256: Option<&Sha256Hex>,
        t: &Transition,
    ) -> Entry {
        Entry {
            time: t.at,
            event: "transition".into(),
            namespace: namespace.into(),
            request: request.into(),
            request_uid: request_uid.map(str::to_string),
            candidate: candidate.into(),
            model_sha256: model_sha256.map(|m| m.to_string()),
            from: Some(t.from),
            to: Some(t.to),
            phase: Some(t.phase),
            reason: t.reason.clone(),
            actor: t.actor.clone(),
            record_sig: None,
            prev: String::new(),
            version: None,
            mac: None,
            hash: String::new(),
        }
    }

    /// An entry for a signed record the webhook stamped (`crate::identity`), verified by the
    /// operator on the stored request at `seen`: event = the record's kind, actor = its `by`.
    pub fn stamped(record: &crate::identity::Record, seen: DateTime<Utc>) -> Entry {
        Entry {
            time: seen,
            event: record.kind.name().to_string(),
            namespace: record.namespace.clone(),
            request: record.request.clone(),
            request_uid: Some(record.request_uid.clone()).filter(|u| !u.is_empty()),
            candidate: record.candidate.clone(),
            model_sha256: record.model_sha256.clone(),
            from: None,
            to: None,
            phase: None,
            reason: format!(
                "{} by {} (groups: {}) at {}, stamped {}; seen on the stored request",
                record.kind.name(),
                record.by,
                record.groups.join(", "),
                record.at.to_rfc3339(),
                record.recorded_at.to_rfc3339(),
            ),
            actor: record.by.clone(),
            record_sig: Some(record.sig.clone()),
            prev: String::new(),
            version: None,
            mac: None,
            hash: String::new(),
        }
    }

    fn own_hash(&self) -> Result<String, AuditError> {
        let bytes =
            to_canonical_vec(self, Some("hash")).map_err(|e| AuditError::Encode(e.to_string()))?;
        Ok(Sha256Hex::of_bytes(&bytes).to_string())
    }

    /// The bytes the MAC covers: the canonical JSON with `hash` empty and no `mac`.
    fn mac_bytes(&self) -> Result<Vec<u8>, AuditError> {
        let mut bare = self.clone();
        bare.hash = String::new();
        bare.mac = None;
        to_canonical_vec(&bare, None).map_err(|e| AuditError::Encode(e.to_string()))
    }

    /// Every field cut to its bound ([`bounded`]).
    fn bound(mut self) -> Entry {
        for field in [
            &mut self.event,
            &mut self.namespace,
            &mut self.request,
            &mut self.candidate,
            &mut self.actor,
        ] {
            *field = crate::text::bounded(field, MAX_FIELD);
        }
        for field in [
            &mut self.request_uid,
            &mut self.model_sha256,
            &mut self.record_sig,
        ]
        .into_iter()
        .flatten()
        {
            *field = crate::text::bounded(field, MAX_FIELD);
        }
        self.reason = crate::text::bounded(&self.reason, MAX_REASON);
        self
    }

    /// Chains the entry after the line whose hash is `prev`, its fields bounded, MACed under
    /// `key` when there is one (version 2), and returns its line (without the newline).
    pub fn seal(self, prev: &str, key: Option<&AuditKey>) -> Result<String, AuditError> {
        let mut e = self.bound();
        e.prev = prev.to_string();
        e.hash = String::new();
        e.mac = None;
        e.version = key.map(|_| 2);
        if let Some(key) = key {
            e.mac = Some(key.tag(&e.mac_bytes()?));
        }
        e.hash = e.own_hash()?;
        let bytes = to_canonical_vec(&e, None).map_err(|e| AuditError::Encode(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| AuditError::Encode(e.to_string()))
    }
}

/// The hash the next line must carry as `prev`: the SHA-256 of this line's bytes.
pub fn line_hash(line: &str) -> String {
    Sha256Hex::of_bytes(line.as_bytes()).to_string()
}

/// Why the audit trail could not be written or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot encode an audit entry: {0}")]
    Encode(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a signing key (at least 16 bytes after trimming whitespace)")]
    Key { path: std::path::PathBuf },
}

/// A line where the trail breaks: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub line: usize,
    pub why: String,
}

/// What [`verify`] found in a whole trail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Lines read (complete or not).
    pub lines: usize,
    /// Lines that carry a MAC (version 2).
    pub keyed: usize,
    /// Whether MACs were checked (a key was given).
    pub macs_checked: bool,
    /// Every break, in line order (empty: intact).
    pub breaks: Vec<Break>,
}

impl Report {
    /// No break.
    pub fn intact(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// Checks a whole file's text and reports every break, not only the first: every line must be
/// an entry in canonical form whose `hash` is its own and whose `prev` is the hash of the line
/// before it ([`GENESIS`] for the first) — a torn line (a crash mid-write, which the next
/// append ends and chains after) is reported as torn, and after any break checking resumes
/// from the line that broke, so each later edit is reported on its own line. With `keys`, every line must also carry a MAC valid under one of them (an
/// unkeyed line, or one re-sealed without the key, is a break); without, MACs are not checked
/// (`macs_checked: false`): only the unkeyed chain was. An empty text is an empty, valid trail.
pub fn verify(text: &str, keys: &[AuditKey]) -> Report {
    let mut report = Report {
        macs_checked: !keys.is_empty(),
        ..Report::default()
    };
    if text.is_empty() {
        return report;
    }
    let (body, torn_tail) = match text.strip_suffix('\n') {
        Some(b) => (b, false),
        None => (text, true),
    };
    let mut prev = GENESIS.to_string();
    let lines: Vec<&str> = body.split('\n').collect();
    let last = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let n = i + 1;
        report.lines = n;
        let mut bad = |why: String| report.breaks.push(Break { line: n, why });
        if torn_tail && n == last {
            bad("the last line is not terminated (a torn write)".into());
            break;
        }
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                bad(format!("not an audit entry (a torn write, or junk): {e}"));
                // Appends chain after whatever line is last, so the next line's `prev` is
                // this line's hash.
                prev = line_hash(line);
                continue;
            }
        };
        match to_canonical_vec(&entry, None) {
            Ok(c) if c == line.as_bytes() => {}
            Ok(_) => bad("not in canonical form (RFC 8785): the line was rewritten".into()),
            Err(e) => bad(format!("not canonical JSON: {e}")),
        }
        match entry.own_hash() {
            Ok(own) if own == entry.hash => {}
            Ok(_) => bad(format!(
                "its content does not match its hash {} (edited)",
                entry.hash
            )),
            Err(e) => bad(e.to_string()),
        }
        if entry.prev != prev {
            bad(format!(
                "prev {} is not the hash of the line before ({prev}): a line before it was edited, deleted, inserted or moved",
                entry.prev
            ));
        }
        if entry.mac.is_some() {
            report.keyed += 1;
        }
        if !keys.is_empty() {
            match (&entry.version, &entry.mac) {
                (Some(2), Some(mac)) => {
                    let valid = entry
                        .mac_bytes()
                        .is_ok_and(|b| keys.iter().any(|k| k.valid(&b, mac)));
                    if !valid {
                        bad("its MAC is not valid under the key: edited and re-sealed, or written under another key".into());
                    }
                }
                _ => bad("it carries no MAC (an unkeyed version 1 line: written before the trail was keyed, or re-sealed without the key)".into()),
            }
        }
        prev = line_hash(line);
    }
    report
}

/// The hash a line appended after `text` must carry as `prev`: the hash of its last complete
/// line, whatever it holds (as [`verify`] expects), or [`GENESIS`] when there is none.
pub fn head(text: &str) -> String {
    let Some(end) = text.rfind('\n') else {
        return GENESIS.to_string();
    };
    let last = text[..end].rsplit('\n').next().unwrap_or_default();
    line_hash(last)
}

/// The history entries of `after` that `before` did not have. History is append-only, but
/// keeps only its newest `crate::promotion::MAX_HISTORY` entries, so `after` is a tail of
/// `before` followed by the new entries: they are what follows the longest prefix of `after`
/// that ends `before`.
pub fn new_transitions<'a>(before: &[Transition], after: &'a [Transition]) -> &'a [Transition] {
    let most = before.len().min(after.len());
    let overlap = (0..=most)
        .rev()
        .find(|&m| after[..m] == before[before.len() - m..])
        .unwrap_or(0);
    &after[overlap..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u32) -> Entry {
        Entry {
            time: DateTime::from_timestamp(1_700_000_000 + i64::from(i), 0).unwrap(),
            event: "transition".into(),
            namespace: "janus".into(),
            request: format!("r{i}"),
            request_uid: Some("u".into()),
            candidate: "c1".into(),
            model_sha256: None,
            from: Some(Stage::Shadow),
            to: Some(Stage::Paper),
            phase: Some(Phase::Promoted),
            reason: "all gates passed, ünïcode \"quoted\"".into(),
            actor: "alice".into(),
            record_sig: None,
            prev: String::new(),
            version: None,
            mac: None,
            hash: String::new(),
        }
    }

    fn chain(n: u32) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (0..n)
            .map(|i| {
                let line = entry(i).seal(&prev, None).unwrap();
                prev = line_hash(&line);
                line
            })
            .collect()
    }

    fn first_break(text: &str) -> usize {
        verify(text, &[]).breaks[0].line
    }

    fn text(lines: &[String]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_resumes_from_its_last_line() {
        let lines = chain(4);
        assert!(verify(&text(&lines), &[]).intact());
        assert_eq!(verify(&text(&lines), &[]).lines, 4);
        assert_eq!(verify("", &[]), Report::default());
        assert_eq!(head(""), GENESIS);
        // Appending after the head continues the chain.
        let t = text(&lines);
        let more = entry(9).seal(&head(&t), None).unwrap();
        let r = verify(&format!("{t}{more}\n"), &[]);
        assert!(r.intact() && r.lines == 5, "{r:?}");
    }

    #[test]
    fn edits_deletions_insertions_and_reorders_name_the_first_bad_line() {
        let lines = chain(5);
        // Edited (the hash not recomputed): that line.
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("alice", "mallo");
        assert_eq!(first_break(&text(&edited)), 3);
        // Edited with its own hash recomputed: the next line.
        let mut resealed = lines.clone();
        let mut e: Entry = serde_json::from_str(&lines[2]).unwrap();
        e.actor = "mallory".into();
        let prev = e.prev.clone();
        resealed[2] = e.seal(&prev, None).unwrap();
        assert_eq!(first_break(&text(&resealed)), 4);
        // Deleted.
        let mut deleted = lines.clone();
        deleted.remove(1);
        assert_eq!(first_break(&text(&deleted)), 2);
        // Inserted (even chained correctly after its predecessor).
        let mut inserted = lines.clone();
        inserted.insert(2, entry(7).seal(&line_hash(&lines[1]), None).unwrap());
        assert_eq!(first_break(&text(&inserted)), 4);
        // Reordered.
        let mut reordered = lines.clone();
        reordered.swap(1, 3);
        assert_eq!(first_break(&text(&reordered)), 2);
        // The first line deleted.
        assert_eq!(first_break(&text(&lines[1..])), 1);
        // Reformatted (same content, other whitespace).
        let mut spaced = lines.clone();
        spaced[0] = spaced[0].replacen(':', ": ", 1);
        assert_eq!(first_break(&text(&spaced)), 1);
        // Junk and a torn tail.
        assert_eq!(first_break("{\n"), 1);
        assert_eq!(
            first_break(&format!("{}{}", text(&lines[..2]), &lines[2][..10])),
            3
        );
    }

    #[test]
    fn only_new_history_entries_are_appended() {
        let t = |i: i64| Transition {
            at: DateTime::from_timestamp(i, 0).unwrap(),
            from: Stage::Shadow,
            to: Stage::Paper,
            phase: Phase::Promoted,
            reason: "r".into(),
            actor: "a".into(),
        };
        let before = vec![t(1), t(2)];
        let after = vec![t(1), t(2), t(3)];
        assert_eq!(new_transitions(&before, &after), &after[2..]);
        assert!(new_transitions(&after, &after).is_empty());
        assert_eq!(new_transitions(&[], &after).len(), 3);
        // The oldest dropped as the newest arrives (history capped): only the newest is new.
        let capped = vec![t(2), t(3), t(4)];
        assert_eq!(new_transitions(&after, &capped), &capped[2..]);
        let capped = vec![t(3), t(4), t(5)];
        assert_eq!(new_transitions(&after, &capped), &capped[1..]);
    }
}
