//! The audit trail on disk: `<artifacts-root>/audit/<namespace>.jsonl`. Appends take an
//! exclusive `flock` on the file, resume the chain from its last complete line (so a restarted
//! or newly elected operator continues it), write each line with one `write` on an `O_APPEND`
//! descriptor and `fsync` before returning.

use super::{AuditError, AuditKey, Entry, Report, head, verify};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The audit file of a namespace under the artifacts root.
pub fn path_for(artifacts_root: &Path, namespace: &str) -> PathBuf {
    artifacts_root
        .join("audit")
        .join(format!("{namespace}.jsonl"))
}

/// The end of the file from its last complete line on: the last 64 KiB, widened (×4 at a time)
/// until a complete line is in it — a line longer than the window (a refusal quoting a long
/// annotation) must not make the next line chain from nothing.
fn tail(file: &mut std::fs::File) -> std::io::Result<(String, u64)> {
    let len = file.metadata()?.len();
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if start > 0 {
            // Drop the partial first line; a complete one must remain.
            match bytes.iter().position(|b| *b == b'\n') {
                Some(i) if bytes[i + 1..].contains(&b'\n') => {
                    bytes.drain(..=i);
                }
                _ => {
                    window = window.saturating_mul(4);
                    continue;
                }
            }
        }
        return Ok((String::from_utf8_lossy(&bytes).into_owned(), len));
    }
}

/// Opens (creating) the file and its folder for appending, under an exclusive `flock`
/// (released when the file is closed).
fn open_locked(path: &Path) -> Result<std::fs::File, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor this function owns; released when the file is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Writes entries chained after the locked file's last line, MACed under `key` when there is
/// one; `fsync`s. Returns each line's hash.
fn write_chained(
    file: &mut std::fs::File,
    path: &Path,
    entries: Vec<Entry>,
    key: Option<&AuditKey>,
) -> Result<Vec<String>, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (mut text, len) = tail(file).map_err(io)?;
    if len > 0 && !text.ends_with('\n') {
        // A torn write before (a crash mid-line): end it and chain after it like after any
        // line (it stays visible to `janus audit verify`, which reports it as torn).
        file.write_all(b"\n").map_err(io)?;
        text.push('\n');
    }
    let mut prev = head(&text);
    let mut hashes = Vec::with_capacity(entries.len());
    for entry in entries {
        let line = entry.seal(&prev, key)?;
        prev = super::line_hash(&line);
        file.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        hashes.push(prev.clone());
    }
    file.sync_data().map_err(io)?;
    Ok(hashes)
}

/// Appends entries to the file, chained after its last line (MACed under `key` when there is
/// one). Returns each appended line's hash (the next `prev`).
pub fn append(
    path: &Path,
    entries: Vec<Entry>,
    key: Option<&AuditKey>,
) -> Result<Vec<String>, AuditError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut file = open_locked(path)?;
    write_chained(&mut file, path, entries, key)
}

/// The record signatures (`Entry::record_sig`) a trail file holds, read incrementally: the
/// bytes up to `offset` (the end of its last complete line read) have been read.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    offset: u64,
    sigs: std::collections::HashSet<String>,
}

impl Recorded {
    /// Whether a line for the record with this signature is in the file (as last read).
    pub fn contains(&self, sig: &str) -> bool {
        self.sigs.contains(sig)
    }

    /// Reads the complete lines appended since the last call (all of them the first time, or
    /// when the file shrank: replaced). Lines that do not parse are skipped: `verify` is what
    /// judges them.
    fn catch_up(&mut self, file: &mut std::fs::File) -> std::io::Result<()> {
        let len = file.metadata()?.len();
        if len < self.offset {
            *self = Recorded::default();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        for line in bytes[..end].split(|b| *b == b'\n') {
            if let Ok(Entry {
                record_sig: Some(sig),
                ..
            }) = serde_json::from_slice::<Entry>(line)
            {
                self.sigs.insert(sig);
            }
        }
        self.offset += end as u64 + 1;
        Ok(())
    }
}

/// Appends the entries for records (`Entry::record_sig`) the file does not hold yet, so each
/// record gets one line however often it is offered, across restarts and replicas: under the
/// file's lock, `seen` catches up with the lines appended since it last read (the whole file
/// the first time), the entries already there (or twice in `entries`) are dropped and the rest
/// appended. An entry without `record_sig` is always appended. Returns, for each appended
/// line, the index of its entry in `entries` and the line's hash.
pub fn append_records(
    path: &Path,
    entries: Vec<Entry>,
    seen: &mut Recorded,
    key: Option<&AuditKey>,
) -> Result<Vec<(usize, String)>, AuditError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_locked(path)?;
    seen.catch_up(&mut file).map_err(io)?;
    let mut batch = std::collections::HashSet::new();
    let (indices, new): (Vec<usize>, Vec<Entry>) = entries
        .into_iter()
        .enumerate()
        .filter(|(_, e)| match &e.record_sig {
            Some(sig) => !seen.contains(sig) && batch.insert(sig.clone()),
            None => true,
        })
        .unzip();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = write_chained(&mut file, path, new, key)?;
    seen.catch_up(&mut file).map_err(io)?;
    Ok(indices.into_iter().zip(hashes).collect())
}

/// Verifies a whole file (see [`super::verify`]), MACs under `keys` when any. Bytes that are
/// not UTF-8 are read as U+FFFD, so their line fails its hash. Errors only when the file
/// cannot be read.
pub fn verify_file(path: &Path, keys: &[AuditKey]) -> Result<Report, AuditError> {
    let bytes = std::fs::read(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(verify(&String::from_utf8_lossy(&bytes), keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promotion::{Phase, Stage, Transition};

    /// The number of lines when the file verifies (no key), else `None`.
    fn lines_if_intact(path: &Path) -> Option<usize> {
        let report = verify_file(path, &[]).unwrap();
        report.intact().then_some(report.lines)
    }

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
    fn a_huge_value_is_kept_as_a_bounded_excerpt_and_a_long_foreign_line_still_chains() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        append(&path, vec![entry("short")], None).unwrap();
        // 300 KiB of reason: kept as an excerpt naming its length and SHA-256 (computed with
        // Python's hashlib over b"x" * 307200).
        append(&path, vec![entry(&"x".repeat(300 * 1024))], None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let second = text.lines().nth(1).unwrap();
        assert!(second.len() < 6 * 1024, "{}", second.len());
        assert!(second.contains(
            "[cut: 307200 bytes, sha256 def89517b7d1690aac7628fccbe266a6c5b30c4bc4e4e226b2f32e27a370a588]"
        ));
        // A 300 KiB line written by something else: beyond the 64 KiB first window and one
        // widening; the next append still chains after it, and verify names only it.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(format!("{}\n", "y".repeat(300 * 1024)).as_bytes())
            .unwrap();
        drop(f);
        append(&path, vec![entry("after")], None).unwrap();
        let report = verify_file(&path, &[]).unwrap();
        assert_eq!(report.lines, 4);
        assert_eq!(
            report.breaks.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![3],
            "{report:?}"
        );
    }

    #[test]
    fn keyed_lines_verify_only_under_their_key_and_every_break_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        let key = AuditKey::from_signing_key(b"  0123456789abcdef-signing \n").unwrap();
        // Surrounding whitespace is not part of the key (as for the signing key).
        let same = AuditKey::from_signing_key(b"0123456789abcdef-signing").unwrap();
        let other = AuditKey::from_signing_key(b"0123456789abcdef-other").unwrap();
        assert!(AuditKey::from_signing_key(b"short").is_none());
        let entries = ["a", "b", "c", "d", "e"].map(entry).to_vec();
        append(&path, entries, Some(&key)).unwrap();
        let r = verify_file(&path, std::slice::from_ref(&same)).unwrap();
        assert!(r.intact() && r.macs_checked && r.keyed == 5, "{r:?}");
        let r = verify_file(&path, std::slice::from_ref(&other)).unwrap();
        assert_eq!(r.breaks.len(), 5, "{r:?}");
        // Any of several keys (rotation) will do.
        assert!(verify_file(&path, &[other, same]).unwrap().intact());
        // Two independent edits (hash not recomputed): both reported, by line.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for i in [1, 3] {
            lines[i] = lines[i].replace("\"actor\":\"alice\"", "\"actor\":\"mallo\"");
        }
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let r = verify_file(&path, &[key]).unwrap();
        let bad: Vec<usize> = r.breaks.iter().map(|b| b.line).collect();
        // Lines 2 and 4 edited (hash and MAC), lines 3 and 5 chain to the originals.
        assert_eq!(bad, vec![2, 2, 3, 4, 4, 5], "{r:?}");
        // An unkeyed line appended after keyed ones fails only with the key.
        std::fs::write(&path, text).unwrap();
        append(&path, vec![entry("unkeyed")], None).unwrap();
        assert!(verify_file(&path, &[]).unwrap().intact());
        let r = verify_file(
            &path,
            &[AuditKey::from_signing_key(b"0123456789abcdef-signing").unwrap()],
        )
        .unwrap();
        assert_eq!(r.breaks.iter().map(|b| b.line).collect::<Vec<_>>(), vec![6]);
        assert!(r.breaks[0].why.contains("carries no MAC"), "{r:?}");
    }

    fn record(sig: &str) -> Entry {
        let mut e = entry(sig);
        e.event = "approval".into();
        e.record_sig = Some(sig.into());
        e
    }

    #[test]
    fn a_record_is_appended_once_across_writers_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        let mut seen = Recorded::default();
        // Twice in one batch: once.
        let hashes =
            append_records(&path, vec![record("s1"), record("s1")], &mut seen, None).unwrap();
        assert_eq!(hashes.len(), 1);
        // Another writer (the webhook's refusals) appends in between.
        append(&path, vec![entry("refused")], None).unwrap();
        let hashes =
            append_records(&path, vec![record("s1"), record("s2")], &mut seen, None).unwrap();
        assert_eq!(hashes.len(), 1, "only s2 is new");
        // A restarted operator (nothing seen yet) reads the file and appends nothing again.
        let mut restarted = Recorded::default();
        let hashes = append_records(
            &path,
            vec![record("s2"), record("s1")],
            &mut restarted,
            None,
        )
        .unwrap();
        assert!(hashes.is_empty());
        assert!(restarted.contains("s1") && restarted.contains("s2"));
        // Entries without a record signature are always appended.
        let hashes = append_records(&path, vec![entry("t")], &mut restarted, None).unwrap();
        assert_eq!(hashes.len(), 1);
        assert_eq!(lines_if_intact(&path), Some(4), "s1, refused, s2, t");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("\"recordSig\":\"s1\"").count(), 1);
        assert_eq!(text.matches("\"recordSig\":\"s2\"").count(), 1);
        // A file replaced by a shorter one is read again from its start.
        std::fs::remove_file(&path).unwrap();
        let hashes = append_records(&path, vec![record("s1")], &mut restarted, None).unwrap();
        assert_eq!(hashes.len(), 1);
    }

    #[test]
    fn appends_chain_across_reopens_and_a_torn_tail_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        append(&path, vec![entry("a"), entry("b")], None).unwrap();
        // A new writer (a restart) continues the chain from the file.
        append(&path, vec![entry("c")], None).unwrap();
        assert_eq!(lines_if_intact(&path), Some(3));
        // A torn write: the next append ends it, and verify names it.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"torn").unwrap();
        drop(f);
        append(&path, vec![entry("d")], None).unwrap();
        let report = verify_file(&path, &[]).unwrap();
        assert_eq!(
            report.breaks.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![4],
            "{report:?}"
        );
    }

    // ---------- adversarial (adv16b) ----------

    /// A line longer than the 64 KiB tail window (a refusal whose reason quotes a huge
    /// annotation value: annotations may hold 256 KiB) must not make the next append restart
    /// the chain at GENESIS.
    #[test]
    fn adv_a_line_longer_than_the_tail_window_does_not_break_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        append(&path, vec![entry("a")], None).unwrap();
        append(&path, vec![entry(&"x".repeat(70 * 1024))], None).unwrap();
        append(&path, vec![entry("after the long line")], None).unwrap();
        assert_eq!(
            lines_if_intact(&path),
            Some(3),
            "an untampered trail does not verify"
        );
    }

    /// After one crash mid-line, `janus audit verify` must still catch an edit made later in
    /// the file: today it stops at the torn line and says the same thing, edit or not.
    #[test]
    fn adv_a_torn_line_does_not_hide_later_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "janus");
        append(&path, vec![entry("a"), entry("b")], None).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"torn").unwrap();
        drop(f);
        append(&path, vec![entry("c"), entry("d")], None).unwrap();
        let untampered = format!("{:?}", verify_file(&path, &[]));
        // Line 5 (entry "d") edited: alice becomes mallory.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert!(lines[4].contains("\"actor\":\"alice\""));
        lines[4] = lines[4].replace("\"actor\":\"alice\"", "\"actor\":\"mallo\"");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let tampered = format!("{:?}", verify_file(&path, &[]));
        assert_ne!(
            untampered, tampered,
            "an edit after a torn line is reported exactly like no edit"
        );
    }
}
