//! The audit trail: one JSON line per transition of a PromotionRequest (promotion, block, halt,
//! rollback), per signed record the webhook stamped (approval, drill, runbook validation, kill
//! switch, creator: appended by the operator once per record, when it first sees the record
//! verified on a stored object) and per refused change (appended by the webhook), each line the RFC
//! 8785 canonical JSON of an [`Entry`] carrying the SHA-256 of the line before it (`prev`) and
//! of itself without `hash` (`hash`): a hash chain. Editing, deleting, inserting or reordering
//! a line breaks the chain at the first line that changed or follows the change, and
//! [`verify`] names it. The chain logic here is pure; [`file`] appends to and reads files.
//!
//! What a chain cannot show on its own: a cut-off tail, or a last line rewritten with its hash
//! recomputed. The operator logs each appended line's hash (`audit appended`), so the log
//! pipeline holds an anchor for the head.

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
    /// record), or what the operator could tell (`unverified: <field manager>`).
    pub actor: String,
    /// A record's line: the record's signature (`crate::identity::Record::sig`), which names
    /// the record — one line per record however often the operator sees it
    /// ([`file::append_records`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_sig: Option<String>,
    /// SHA-256 of the previous line's bytes ([`GENESIS`] on the first line).
    pub prev: String,
    /// SHA-256 of this entry's canonical JSON without `hash`.
    pub hash: String,
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
            hash: String::new(),
        }
    }

    fn own_hash(&self) -> Result<String, AuditError> {
        let bytes =
            to_canonical_vec(self, Some("hash")).map_err(|e| AuditError::Encode(e.to_string()))?;
        Ok(Sha256Hex::of_bytes(&bytes).to_string())
    }

    /// Chains the entry after the line whose hash is `prev` and returns its line (without the
    /// newline).
    pub fn seal(mut self, prev: &str) -> Result<String, AuditError> {
        self.prev = prev.to_string();
        self.hash = String::new();
        self.hash = self.own_hash()?;
        let bytes = to_canonical_vec(&self, None).map_err(|e| AuditError::Encode(e.to_string()))?;
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
    #[error("{path}:{line}: {why}")]
    Broken {
        path: std::path::PathBuf,
        line: usize,
        why: String,
    },
}

/// The first line where a chain breaks: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub line: usize,
    pub why: String,
}

/// Checks a whole file's text: every line an entry in canonical form whose `hash` is its own
/// and whose `prev` is the previous line's hash (the first: [`GENESIS`]). Returns the number of
/// lines, or the first break. An empty text is an empty, valid trail.
pub fn verify(text: &str) -> Result<usize, Break> {
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    if text.is_empty() {
        return Ok(0);
    }
    let body = match text.strip_suffix('\n') {
        Some(b) => b,
        None => {
            let n = text.split('\n').count();
            return Err(Break {
                line: n,
                why: "the last line is not terminated (a torn write)".into(),
            });
        }
    };
    for (i, line) in body.split('\n').enumerate() {
        let n = i + 1;
        let bad = |why: String| Break { line: n, why };
        let entry: Entry =
            serde_json::from_str(line).map_err(|e| bad(format!("not an audit entry: {e}")))?;
        let canonical =
            to_canonical_vec(&entry, None).map_err(|e| bad(format!("not canonical JSON: {e}")))?;
        if canonical != line.as_bytes() {
            return Err(bad(
                "not in canonical form (RFC 8785): the line was rewritten".into(),
            ));
        }
        let own = entry.own_hash().map_err(|e| bad(e.to_string()))?;
        if own != entry.hash {
            return Err(bad(format!(
                "its content does not match its hash {} (edited)",
                entry.hash
            )));
        }
        if entry.prev != prev {
            return Err(bad(format!(
                "prev {} is not the hash of the line before ({prev}): a line before it was edited, deleted, inserted or moved",
                entry.prev
            )));
        }
        prev = line_hash(line);
        count = n;
    }
    Ok(count)
}

/// The hash a line appended after `text` must carry as `prev`: the hash of its last complete
/// line, or [`GENESIS`] when there is none.
pub fn head(text: &str) -> String {
    let Some(end) = text.rfind('\n') else {
        return GENESIS.to_string();
    };
    match text[..end].rsplit('\n').next() {
        Some(last) if !last.is_empty() => line_hash(last),
        _ => GENESIS.to_string(),
    }
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
            hash: String::new(),
        }
    }

    fn chain(n: u32) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (0..n)
            .map(|i| {
                let line = entry(i).seal(&prev).unwrap();
                prev = line_hash(&line);
                line
            })
            .collect()
    }

    fn text(lines: &[String]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_resumes_from_its_last_line() {
        let lines = chain(4);
        assert_eq!(verify(&text(&lines)), Ok(4));
        assert_eq!(verify(""), Ok(0));
        assert_eq!(head(""), GENESIS);
        // Appending after the head continues the chain.
        let t = text(&lines);
        let more = entry(9).seal(&head(&t)).unwrap();
        assert_eq!(verify(&format!("{t}{more}\n")), Ok(5));
    }

    #[test]
    fn edits_deletions_insertions_and_reorders_name_the_first_bad_line() {
        let lines = chain(5);
        // Edited (the hash not recomputed): that line.
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("alice", "mallo");
        assert_eq!(verify(&text(&edited)).unwrap_err().line, 3);
        // Edited with its own hash recomputed: the next line.
        let mut resealed = lines.clone();
        let mut e: Entry = serde_json::from_str(&lines[2]).unwrap();
        e.actor = "mallory".into();
        let prev = e.prev.clone();
        resealed[2] = e.seal(&prev).unwrap();
        assert_eq!(verify(&text(&resealed)).unwrap_err().line, 4);
        // Deleted.
        let mut deleted = lines.clone();
        deleted.remove(1);
        assert_eq!(verify(&text(&deleted)).unwrap_err().line, 2);
        // Inserted (even chained correctly after its predecessor).
        let mut inserted = lines.clone();
        inserted.insert(2, entry(7).seal(&line_hash(&lines[1])).unwrap());
        assert_eq!(verify(&text(&inserted)).unwrap_err().line, 4);
        // Reordered.
        let mut reordered = lines.clone();
        reordered.swap(1, 3);
        assert_eq!(verify(&text(&reordered)).unwrap_err().line, 2);
        // The first line deleted.
        assert_eq!(verify(&text(&lines[1..])).unwrap_err().line, 1);
        // Reformatted (same content, other whitespace).
        let mut spaced = lines.clone();
        spaced[0] = spaced[0].replacen(':', ": ", 1);
        assert_eq!(verify(&text(&spaced)).unwrap_err().line, 1);
        // Junk and a torn tail.
        assert_eq!(verify("{\n").unwrap_err().line, 1);
        assert_eq!(
            verify(&format!("{}{}", text(&lines[..2]), &lines[2][..10]))
                .unwrap_err()
                .line,
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
