//! The audit trail on disk: `<artifacts-root>/audit/<namespace>.jsonl`. Appends take an
//! exclusive `flock` on the file, resume the chain from its last complete line (so a restarted
//! or newly elected operator continues it), write each line with one `write` on an `O_APPEND`
//! descriptor and `fsync` before returning.

use super::{AuditError, Entry, head, verify};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The audit file of a namespace under the artifacts root.
pub fn path_for(artifacts_root: &Path, namespace: &str) -> PathBuf {
    artifacts_root
        .join("audit")
        .join(format!("{namespace}.jsonl"))
}

/// The last 64 KiB of the file: enough to hold its last complete line.
fn tail(file: &mut std::fs::File) -> std::io::Result<(String, u64)> {
    let len = file.metadata()?.len();
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        // Drop the partial first line.
        text = text
            .split_once('\n')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default();
    }
    Ok((text, len))
}

/// Appends entries to the file, chained after its last line. Returns each appended line's
/// hash (the next `prev`).
pub fn append(path: &Path, entries: Vec<Entry>) -> Result<Vec<String>, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor this function owns; released when the file is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    let (text, len) = tail(&mut file).map_err(io)?;
    if len > 0 && !text.ends_with('\n') {
        // A torn write before (a crash mid-line): end it, so the next line stands alone (the
        // torn one stays visible to `janus audit verify`).
        file.write_all(b"\n").map_err(io)?;
    }
    let mut prev = head(&text);
    let mut hashes = Vec::with_capacity(entries.len());
    for entry in entries {
        let line = entry.seal(&prev)?;
        prev = super::line_hash(&line);
        file.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        hashes.push(prev.clone());
    }
    file.sync_data().map_err(io)?;
    Ok(hashes)
}

/// Verifies a whole file (see [`super::verify`]); the error names `file:line`.
pub fn verify_file(path: &Path) -> Result<usize, AuditError> {
    let bytes = std::fs::read(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| AuditError::Broken {
        path: path.to_path_buf(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        why: "not UTF-8".into(),
    })?;
    verify(&text).map_err(|b| AuditError::Broken {
        path: path.to_path_buf(),
        line: b.line,
        why: b.why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promotion::{Phase, Stage, Transition};

    fn entry(reason: &str) -> Entry {
        Entry::transition(
            "janus",
            "r1",
            Some("uid"),
            "c1",
            None,
            &Transition {
                at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                from: Stage::Shadow,
                to: Stage::Paper,
                phase: Phase::Promoted,
                reason: reason.into(),
                actor: "alice".into(),
            },
        )
    }

    #[test]
    fn appends_chain_across_reopens_and_a_torn_tail_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        append(&path, vec![entry("a"), entry("b")]).unwrap();
        // A new writer (a restart) continues the chain from the file.
        append(&path, vec![entry("c")]).unwrap();
        assert_eq!(verify_file(&path).unwrap(), 3);
        // A torn write: the next append ends it, and verify names it.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"torn").unwrap();
        drop(f);
        append(&path, vec![entry("d")]).unwrap();
        match verify_file(&path) {
            Err(AuditError::Broken { line, .. }) => assert_eq!(line, 4),
            other => panic!("{other:?}"),
        }
    }

    // ---------- adversarial (adv16b) ----------

    /// A line longer than the 64 KiB tail window (a refusal whose reason quotes a huge
    /// annotation value: annotations may hold 256 KiB) must not make the next append restart
    /// the chain at GENESIS.
    #[test]
    fn adv_a_line_longer_than_the_tail_window_does_not_break_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        append(&path, vec![entry("a")]).unwrap();
        append(&path, vec![entry(&"x".repeat(70 * 1024))]).unwrap();
        append(&path, vec![entry("after the long line")]).unwrap();
        assert_eq!(
            verify_file(&path).unwrap(),
            3,
            "an untampered trail does not verify"
        );
    }

    /// After one crash mid-line, `janus audit verify` must still catch an edit made later in
    /// the file: today it stops at the torn line and says the same thing, edit or not.
    #[test]
    fn adv_a_torn_line_does_not_hide_later_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        append(&path, vec![entry("a"), entry("b")]).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"torn").unwrap();
        drop(f);
        append(&path, vec![entry("c"), entry("d")]).unwrap();
        let untampered = format!("{:?}", verify_file(&path));
        // Line 5 (entry "d") edited: alice becomes mallory.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert!(lines[4].contains("\"actor\":\"alice\""));
        lines[4] = lines[4].replace("\"actor\":\"alice\"", "\"actor\":\"mallo\"");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let tampered = format!("{:?}", verify_file(&path));
        assert_ne!(
            untampered, tampered,
            "an edit after a torn line is reported exactly like no edit"
        );
    }
}
