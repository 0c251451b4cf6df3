//! Appends to the audit trail (`crate::audit`) off the async runtime: the file's lock and
//! `fsync` block. A failed append is logged as an error and counted; the transition it records
//! has already happened and is not undone.

use crate::audit::{Entry, file};
use std::path::Path;

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
