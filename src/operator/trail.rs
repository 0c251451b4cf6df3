//! Appends to the audit trail (`crate::audit`) off the async runtime: the file's lock and
//! `fsync` block. A failed append is logged as an error and counted; the transition it records
//! has already happened and is not undone.

use crate::audit::{Entry, file};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Appends `entries` to `<artifacts_root>/audit/<namespace>.jsonl`; logs each line's hash (an
/// anchor for the trail's head outside the file).
pub async fn append(artifacts_root: &Path, namespace: &str, entries: Vec<Entry>) -> bool {
    if entries.is_empty() {
        return true;
    }
    let path = file::path_for(artifacts_root, namespace);
    let described: Vec<(String, String)> = entries
        .iter()
        .map(|e| (e.request.clone(), e.event.clone()))
        .collect();
    let p = path.clone();
    match tokio::task::spawn_blocking(move || file::append(&p, entries)).await {
        Ok(Ok(hashes)) => {
            for ((request, event), hash) in described.iter().zip(hashes) {
                tracing::info!(path = %path.display(), %request, %event, %hash, "audit appended");
            }
            true
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot append to the audit trail");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "the audit append task failed");
            false
        }
    }
}

/// What the operator has read of each audit file's record lines (`audit::file::Recorded`), so
/// that offering the same record on every reconcile costs a read of the lines appended since.
#[derive(Debug, Default)]
pub struct RecordedTrails(std::sync::Mutex<std::collections::HashMap<PathBuf, file::Recorded>>);

/// Appends the lines of stamped records (`Entry::stamped`) not yet in
/// `<artifacts_root>/audit/<namespace>.jsonl`: once per record (keyed by its signature), across
/// reconciles, restarts and replicas (`audit::file::append_records`). Called with the records
/// verified on a request as the API server stored it, so the trail never names a record that
/// was refused after the webhook stamped it. Logs each line's hash.
pub async fn append_records(
    trails: Arc<RecordedTrails>,
    artifacts_root: &Path,
    namespace: &str,
    entries: Vec<Entry>,
) -> bool {
    let path = file::path_for(artifacts_root, namespace);
    // Known on record already (the common case, every reconcile): no file access at all.
    let known = |all: &std::collections::HashMap<PathBuf, file::Recorded>| {
        all.get(&path).is_some_and(|seen| {
            entries
                .iter()
                .all(|e| e.record_sig.as_deref().is_some_and(|s| seen.contains(s)))
        })
    };
    if entries.is_empty() || known(&trails.0.lock().unwrap_or_else(|e| e.into_inner())) {
        return true;
    }
    let p = path.clone();
    let described: Vec<(String, String)> = entries
        .iter()
        .map(|e| (e.request.clone(), e.event.clone()))
        .collect();
    let appended = tokio::task::spawn_blocking(move || {
        let mut all = trails.0.lock().unwrap_or_else(|e| e.into_inner());
        file::append_records(&p, entries, all.entry(p.clone()).or_default())
    })
    .await;
    match appended {
        Ok(Ok(appended)) => {
            for (i, hash) in appended {
                let (request, event) = &described[i];
                tracing::info!(path = %path.display(), %request, %event, %hash, "audit appended");
            }
            true
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot append to the audit trail");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "the audit append task failed");
            false
        }
    }
}
