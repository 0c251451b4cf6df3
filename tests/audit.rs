//! `janus audit verify`: exit 0 on an intact trail; exit 1 naming FILE:LINE of every line
//! that was edited, deleted, inserted or moved; with `--key`, also every line re-sealed
//! without the key.

use janus::audit::file::{append, path_for};
use janus::audit::{AuditKey, Entry};
use janus::promotion::{Phase, Stage, Transition};
use std::path::Path;
use std::process::{Command, Output};

fn janus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_janus"))
        .args(args)
        .output()
        .unwrap()
}

fn transition(i: i64, actor: &str) -> Entry {
    Entry::transition(
        "janus",
        &format!("r{i}"),
        Some("uid-1"),
        "cand-1",
        None,
        &Transition {
            at: chrono::DateTime::from_timestamp(1_760_000_000 + i, 0).unwrap(),
            from: Stage::Shadow,
            to: Stage::Paper,
            phase: Phase::Promoted,
            reason: "all gates passed".into(),
            actor: actor.into(),
        },
    )
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    f(&mut lines);
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

#[test]
fn audit_verify_names_the_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_for(dir.path(), "janus");
    append(
        &path,
        (1..=3).map(|i| transition(i, "alice")).collect(),
        None,
    )
    .unwrap();
    // A second writer (an operator restarted) continues the same chain.
    append(
        &path,
        vec![transition(4, "bob"), transition(5, "carol")],
        None,
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let ok = janus(&["audit", "verify", file]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("5 lines, chain intact"));

    type Edit = Box<dyn Fn(&mut Vec<String>)>;
    let cases: Vec<(&str, Edit, usize)> = vec![
        (
            "edited",
            Box::new(|l: &mut Vec<String>| l[2] = l[2].replace("alice", "mallo")),
            3,
        ),
        (
            "deleted",
            Box::new(|l: &mut Vec<String>| drop(l.remove(1))),
            2,
        ),
        ("reordered", Box::new(|l: &mut Vec<String>| l.swap(3, 4)), 4),
        (
            "inserted",
            Box::new(|l: &mut Vec<String>| {
                let copy = l[0].clone();
                l.insert(2, copy)
            }),
            3,
        ),
    ];
    let pristine = std::fs::read(&path).unwrap();
    for (what, edit, line) in cases {
        std::fs::write(&path, &pristine).unwrap();
        rewrite(&path, edit);
        let out = janus(&["audit", "verify", file]);
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{file}:{line}:")),
            "{what}: expected {file}:{line} in {stderr}"
        );
    }
    // A missing file is an error, not a pass.
    let missing = janus(&["audit", "verify", "/nonexistent/audit.jsonl"]);
    assert!(!missing.status.success());
}

// ---------- adversarial (adv16b) ----------

/// The chain is plain SHA-256, keyed by nothing: whoever can write the file (a step Job
/// mounted the whole artifacts volume read-write) edits a line and re-seals every line after
/// it with `Entry::seal`, and `janus audit verify` says "chain intact". A tamper-evident trail
/// must not verify after an edit anybody without the operator's key could make.
///
/// Adjusted by fix16b: the adversary's version wrote the trail unkeyed and verified without a
/// key, where no check can tell a re-sealed chain from an intact one. Now the operator MACs
/// every line under the audit key derived from its signing key, and `--key` checks the MACs;
/// without `--key` verify says plainly it checked only the unkeyed chain.
#[test]
fn adv_an_edited_and_resealed_trail_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("signing.key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef\n").unwrap();
    let key = AuditKey::from_file(&key_file).unwrap();
    let path = path_for(dir.path(), "janus");
    append(
        &path,
        (1..=4).map(|i| transition(i, "alice")).collect(),
        Some(&key),
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let k = key_file.to_str().unwrap();
    let ok = janus(&["audit", "verify", file, "--key", k]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .contains("4 lines, chain intact, every line's MAC valid")
    );
    let pristine = std::fs::read_to_string(&path).unwrap();
    // Line 2's actor rewritten to mallory; lines 2..4 re-sealed in order, without the key and
    // with a key of the forger's own.
    let other = AuditKey::from_signing_key(b"not-the-operators-key").unwrap();
    for forger in [None, Some(&other)] {
        let entries: Vec<Entry> = pristine
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut prev = janus::audit::line_hash(pristine.lines().next().unwrap());
        let mut out = format!("{}\n", pristine.lines().next().unwrap());
        for (i, mut e) in entries.into_iter().enumerate().skip(1) {
            if i == 1 {
                e.actor = "mallory".into();
            }
            let line = e.seal(&prev, forger).unwrap();
            prev = janus::audit::line_hash(&line);
            out.push_str(&line);
            out.push('\n');
        }
        std::fs::write(&path, out).unwrap();
        let v = janus(&["audit", "verify", file, "--key", k]);
        assert_eq!(
            v.status.code(),
            Some(1),
            "a rewritten trail verifies: {}",
            String::from_utf8_lossy(&v.stdout)
        );
        let stderr = String::from_utf8_lossy(&v.stderr);
        for line in 2..=4 {
            assert!(stderr.contains(&format!("{file}:{line}:")), "{stderr}");
        }
        // Without the key the chain holds, and verify says that is all it checked.
        let unkeyed = janus(&["audit", "verify", file]);
        assert!(unkeyed.status.success(), "{unkeyed:?}");
        assert!(
            String::from_utf8_lossy(&unkeyed.stdout).contains("MACs NOT checked (no --key)"),
            "{unkeyed:?}"
        );
    }
}
