//! Appends to the audit trail (`crate::audit`) off the async runtime: the file's lock and
//! `fsync` block. Lines are MACed under the audit key (`crate::audit::AuditKey`, derived from
//! the webhook signing key) when the operator has one.
//!
//! An entry that cannot be written (the audit folder unwritable, the volume full) is not lost:
//! it waits in a bounded queue ([`MAX_PENDING`] entries, `janus_audit_pending_entries`, a
//! warning per failed attempt) and is written, with its original time and in order, by the
//! next append or by [`Trail::retry_forever`] (every [`RETRY_EVERY`]). When the queue is full
//! the newest entries are dropped and counted (`janus_audit_lost_entries`); the next successful
//! append writes, after what was kept, a `gap` entry saying how many were lost between which
//! times, so `janus audit verify` and a reader see the gap. What is pending when the process
//! stops is lost (logged as an error at shutdown); the transitions among it remain in the
//! requests' status history.

use crate::audit::{AuditKey, Entry, file};
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The most entries waiting, over all files.
pub const MAX_PENDING: usize = 10_000;
/// How often pending entries are retried.
pub const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Entries of one file not yet written, and what was dropped.
#[derive(Debug, Default)]
struct Backlog {
    entries: VecDeque<Entry>,
    lost: u64,
    lost_first: Option<DateTime<Utc>>,
    lost_last: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct State {
    backlogs: HashMap<PathBuf, Backlog>,
    /// What has been read of each file's record lines (`file::Recorded`).
    recorded: HashMap<PathBuf, file::Recorded>,
}

impl State {
    fn pending(&self) -> usize {
        self.backlogs.values().map(|b| b.entries.len()).sum()
    }
}

/// The audit trails under one artifacts root, as the operator (and its webhook) write them.
pub struct Trail {
    root: PathBuf,
    key: Option<AuditKey>,
    state: Mutex<State>,
    pending: Gauge,
    lost: Counter,
}

impl Trail {
    /// The trails under `root`, MACed under `key`; `pending` and `lost` are the metrics
    /// (`crate::operator::metrics::Metrics::audit_pending`, `audit_lost`).
    pub fn new(root: PathBuf, key: Option<AuditKey>, pending: Gauge, lost: Counter) -> Trail {
        Trail {
            root,
            key,
            state: Mutex::default(),
            pending,
            lost,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `entries` behind what is pending for `path` (dropping and counting what does not
    /// fit).
    fn enqueue(&self, state: &mut State, path: &Path, entries: Vec<Entry>) {
        let mut room = MAX_PENDING.saturating_sub(state.pending());
        let backlog = state.backlogs.entry(path.to_path_buf()).or_default();
        for e in entries {
            if room == 0 {
                backlog.lost += 1;
                backlog.lost_first.get_or_insert(e.time);
                backlog.lost_last = Some(e.time);
                self.lost.inc();
                tracing::error!(path = %path.display(), request = %e.request, event = %e.event,
                    "audit entry dropped: the pending queue is full");
            } else {
                room -= 1;
                backlog.entries.push_back(e);
            }
        }
    }

    /// Writes what is pending for `path` (then a gap entry when some was dropped). Returns
    /// whether nothing is left pending for it.
    fn flush(&self, state: &mut State, path: &Path) -> bool {
        let Some(backlog) = state.backlogs.get_mut(path) else {
            return true;
        };
        if backlog.entries.is_empty() && backlog.lost == 0 {
            return true;
        }
        let mut entries: Vec<Entry> = backlog.entries.iter().cloned().collect();
        if backlog.lost > 0 {
            entries.push(gap(
                path,
                backlog.lost,
                backlog.lost_first,
                backlog.lost_last,
                Utc::now(),
            ));
        }
        let written = file::append(path, entries.clone(), self.key.as_ref());
        let ok = match written {
            Ok(hashes) => {
                for (e, hash) in entries.iter().zip(hashes) {
                    tracing::info!(path = %path.display(), request = %e.request, event = %e.event,
                        time = %e.time.to_rfc3339(), %hash, "audit appended");
                }
                state.backlogs.remove(path);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, pending = backlog.entries.len(), lost = backlog.lost,
                    "audit trail unwritable: entries kept pending, retried");
                false
            }
        };
        self.pending.set(state.pending() as i64);
        ok
    }

    /// Retries every file with entries pending.
    fn flush_all(&self) {
        let mut state = self.lock();
        let paths: Vec<PathBuf> = state.backlogs.keys().cloned().collect();
        for path in paths {
            self.flush(&mut state, &path);
        }
    }

    /// Appends `entries` to `<root>/audit/<namespace>.jsonl` behind anything pending for it;
    /// logs each line's hash (an anchor for the trail's head outside the file). Returns whether
    /// everything was written (`false`: pending, retried).
    pub async fn append(self: &Arc<Self>, namespace: &str, entries: Vec<Entry>) -> bool {
        let path = file::path_for(&self.root, namespace);
        let this = self.clone();
        let run = tokio::task::spawn_blocking(move || {
            let mut state = this.lock();
            if !entries.is_empty() {
                this.enqueue(&mut state, &path, entries);
            }
            this.flush(&mut state, &path)
        });
        run.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the audit append task failed");
            false
        })
    }

    /// Appends the lines of stamped records (`Entry::stamped`) not yet in
    /// `<root>/audit/<namespace>.jsonl`, after anything pending for it: once per record (keyed
    /// by its signature), across reconciles, restarts and replicas
    /// (`audit::file::append_records`). Called with the records verified on a request as the
    /// API server stored it, so the trail never names a record refused after the webhook
    /// stamped it; a record not written now is offered again by the next reconcile.
    pub async fn append_records(self: &Arc<Self>, namespace: &str, entries: Vec<Entry>) -> bool {
        let path = file::path_for(&self.root, namespace);
        {
            // Known on record already (the common case, every reconcile): no file access.
            let state = self.lock();
            let known = state.recorded.get(&path).is_some_and(|seen| {
                entries
                    .iter()
                    .all(|e| e.record_sig.as_deref().is_some_and(|s| seen.contains(s)))
            });
            if entries.is_empty() || (known && !state.backlogs.contains_key(&path)) {
                return true;
            }
        }
        let this = self.clone();
        let run = tokio::task::spawn_blocking(move || {
            let mut state = this.lock();
            if !this.flush(&mut state, &path) {
                return false;
            }
            let described: Vec<(String, String)> = entries
                .iter()
                .map(|e| (e.request.clone(), e.event.clone()))
                .collect();
            let seen = state.recorded.entry(path.clone()).or_default();
            match file::append_records(&path, entries, seen, this.key.as_ref()) {
                Ok(appended) => {
                    for (i, hash) in appended {
                        let (request, event) = &described[i];
                        tracing::info!(path = %path.display(), %request, %event, %hash, "audit appended");
                    }
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot append records to the audit trail (offered again next reconcile)");
                    false
                }
            }
        });
        run.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the audit append task failed");
            false
        })
    }

    /// Retries pending entries every [`RETRY_EVERY`], forever.
    pub async fn retry_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(RETRY_EVERY).await;
            if self.lock().backlogs.is_empty() {
                continue;
            }
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.flush_all()).await;
        }
    }

    /// Entries still pending.
    pub fn pending(&self) -> usize {
        self.lock().pending()
    }

    /// At shutdown: one last try, then an error naming what is lost with the process.
    pub fn report_pending_at_shutdown(&self) {
        self.flush_all();
        let state = self.lock();
        for (path, b) in &state.backlogs {
            tracing::error!(path = %path.display(), pending = b.entries.len(), dropped = b.lost,
                first = ?b.entries.front().map(|e| e.time.to_rfc3339()),
                "audit entries lost at shutdown: the trail was unwritable");
        }
    }
}

/// The entry that says `lost` entries of `path`'s trail, timed `first` to `last`, were dropped.
fn gap(
    path: &Path,
    lost: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Entry {
    let when = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "?".into());
    let namespace = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Entry {
        time: now,
        event: "gap".into(),
        namespace,
        request: String::new(),
        request_uid: None,
        candidate: String::new(),
        model_sha256: None,
        from: None,
        to: None,
        phase: None,
        reason: format!(
            "{lost} audit entries timed {} to {} were lost: the trail was unwritable and its pending queue ({MAX_PENDING} entries) was full; they are not in this trail",
            when(first),
            when(last)
        ),
        actor: "janus-operator".into(),
        record_sig: None,
        prev: String::new(),
        version: None,
        mac: None,
        hash: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promotion::{Phase, Stage, Transition};

    fn entry(i: i64) -> Entry {
        Entry::transition(
            "janus",
            &format!("r{i}"),
            Some("uid"),
            "c1",
            None,
            &Transition {
                at: DateTime::from_timestamp(1_700_000_000 + i, 0).unwrap(),
                from: Stage::Paper,
                to: Stage::Paper,
                phase: Phase::Halted,
                reason: "kill switch".into(),
                actor: "carol".into(),
            },
        )
    }

    fn lines(path: &Path) -> Vec<Entry> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn entries_written_during_an_outage_are_kept_and_written_later_with_their_times() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::from_signing_key(b"0123456789abcdef-audit").unwrap();
        let trail = Arc::new(Trail::new(
            dir.path().to_path_buf(),
            Some(key.clone()),
            Gauge::default(),
            Counter::default(),
        ));
        assert!(trail.append("janus", vec![entry(1)]).await);
        // The folder replaced by a file: every append fails.
        let audit = dir.path().join("audit");
        std::fs::rename(&audit, dir.path().join("saved")).unwrap();
        std::fs::write(&audit, b"").unwrap();
        assert!(!trail.append("janus", vec![entry(2), entry(3)]).await);
        assert_eq!(trail.pending(), 2);
        assert_eq!(trail.pending.get(), 2);
        // Back: the retry writes them, in order, with their original times.
        std::fs::remove_file(&audit).unwrap();
        std::fs::rename(dir.path().join("saved"), &audit).unwrap();
        trail.flush_all();
        assert_eq!(trail.pending(), 0);
        let path = file::path_for(dir.path(), "janus");
        let got: Vec<(String, i64)> = lines(&path)
            .iter()
            .map(|e| (e.request.clone(), e.time.timestamp()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("r1".to_string(), 1_700_000_001),
                ("r2".to_string(), 1_700_000_002),
                ("r3".to_string(), 1_700_000_003)
            ]
        );
        let report = file::verify_file(&path, &[key]).unwrap();
        assert!(report.intact() && report.lines == 3, "{report:?}");
    }

    #[tokio::test]
    async fn entries_dropped_from_a_full_queue_leave_a_gap_entry() {
        let dir = tempfile::tempdir().unwrap();
        let trail = Arc::new(Trail::new(
            dir.path().to_path_buf(),
            None,
            Gauge::default(),
            Counter::default(),
        ));
        std::fs::write(dir.path().join("audit"), b"").unwrap();
        // Fill the queue to one short of full, then offer three: one fits, two are lost.
        {
            let mut state = trail.lock();
            let path = file::path_for(dir.path(), "other");
            let filler: Vec<Entry> = (0..MAX_PENDING as i64 - 1).map(entry).collect();
            trail.enqueue(&mut state, &path, filler);
        }
        assert!(
            !trail
                .append("janus", vec![entry(10), entry(11), entry(12)])
                .await
        );
        assert_eq!(trail.lost.get(), 2);
        std::fs::remove_file(dir.path().join("audit")).unwrap();
        trail.flush_all();
        let path = file::path_for(dir.path(), "janus");
        let got = lines(&path);
        assert_eq!(got.len(), 2, "r10, then the gap");
        assert_eq!(got[0].request, "r10");
        assert_eq!(got[1].event, "gap");
        assert!(
            got[1].reason.starts_with("2 audit entries timed 2023-11-14T22:13:31+00:00 to 2023-11-14T22:13:32+00:00 were lost"),
            "{}",
            got[1].reason
        );
        assert!(file::verify_file(&path, &[]).unwrap().intact());
    }
}
