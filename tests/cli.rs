//! The `janus` binary as a user (or CI) meets it: exit codes, closed and full standard output,
//! bad lines in batch inputs. Expected codes are the README's table ("Exit codes").

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

const JANUS: &str = env!("CARGO_BIN_EXE_janus");

fn janus(args: &[&str]) -> Output {
    Command::new(JANUS).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sealed_evidence(dir: &Path) -> String {
    let path = dir.join("evidence.json");
    janus::contracts::write_artifact(&path, &mut common::good_evidence()).unwrap();
    path.to_str().unwrap().to_string()
}

/// An input that cannot be read is a usage error (2), not four failing gates (1); a tampered
/// one parses but fails verification: BLOCKED, 1.
#[test]
fn gates_tell_an_unreadable_input_from_a_refusal() {
    let out = janus(&["gates", "--target", "paper", "--evidence", "nope.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nope.json: cannot read"),
        "{}",
        stderr(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "no gate report for an unreadable input"
    );

    let dir = tempfile::tempdir().unwrap();
    let not_json = dir.path().join("evidence.json");
    std::fs::write(&not_json, "{\"schema_version\": ").unwrap();
    let out = janus(&[
        "gates",
        "--target",
        "paper",
        "--evidence",
        not_json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let evidence = sealed_evidence(dir.path());
    let text = std::fs::read_to_string(&evidence).unwrap();
    // Change a value without resealing: the manifest hash no longer matches.
    let tampered = text.replacen("\"complete\":true", "\"complete\":false", 1);
    assert_ne!(tampered, text, "the fixture has the field");
    std::fs::write(&evidence, tampered).unwrap();
    let out = janus(&["gates", "--target", "paper", "--evidence", &evidence]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BLOCKED"));
}

#[test]
fn missing_and_unparsable_inputs_exit_2_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    std::fs::write(d("garbage.json"), "not json").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["verify".into(), d("missing.json")],
        vec!["verify".into(), d("garbage.json")],
        vec!["compare".into(), d("missing.json"), d("garbage.json")],
        vec!["metrics".into(), "--nav".into(), d("missing.csv")],
        vec![
            "label".into(),
            "--dataset".into(),
            d("no-such-dir"),
            "--out".into(),
            d("out"),
        ],
        vec![
            "reward".into(),
            "--event-car".into(),
            d("garbage.json"),
            "--completions".into(),
            d("missing.jsonl"),
            "--out".into(),
            d("out"),
        ],
        vec!["audit".into(), "verify".into(), d("missing.log")],
        vec!["schema".into(), "janus-nope-v1".into()],
        vec!["gates".into(), "--target".into(), "paper".into()],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = janus(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

/// Runs `janus args` with its standard output a pipe whose reading end is already closed, so
/// the first write fails with EPIPE.
fn with_closed_stdout(args: &[&str]) -> Output {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills both descriptors on success; each is owned exactly once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    Command::new(JANUS)
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn with_full_stdout(args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    Command::new(JANUS)
        .args(args)
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// `janus gates --json | head -1` and friends used to panic (exit 101). A closed output ends
/// the command quietly with its own exit code; a full disk is an error, exit 1.
#[test]
fn a_closed_or_full_stdout_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let evidence = sealed_evidence(dir.path());
    // `gates` exits 1 here (the fixture lacks what a canary needs): its own answer, kept.
    let gates = [
        "gates",
        "--target",
        "canary",
        "--json",
        "--evidence",
        evidence.as_str(),
    ];
    let expected_gates = janus(&gates).status.code();
    let commands: Vec<(Vec<&str>, Option<i32>)> = vec![
        (vec!["crd"], Some(0)),
        (vec!["schema"], Some(0)),
        (vec!["verify", evidence.as_str()], Some(0)),
        (gates.to_vec(), expected_gates),
    ];
    for (args, code) in &commands {
        let closed = with_closed_stdout(args);
        assert_eq!(closed.status.code(), *code, "{args:?}: {}", stderr(&closed));
        assert!(stderr(&closed).is_empty(), "{args:?}: {}", stderr(&closed));

        let full = with_full_stdout(args);
        assert_eq!(full.status.code(), Some(1), "{args:?}: {}", stderr(&full));
        assert!(
            stderr(&full).contains("cannot write to standard output: No space left on device"),
            "{args:?}: {}",
            stderr(&full)
        );
        assert!(!stderr(&full).contains("panicked"));
    }
}

/// A completions file with a non-UTF-8 line: that line is a named, counted bad line; the rest
/// is scored; only `--strict` makes it fatal (and then as an unparsable input, exit 2).
#[test]
fn a_non_utf8_completion_line_is_a_bad_line_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    janus::contracts::write_artifact(Path::new(&p("event-car.json")), &mut common::event_car())
        .unwrap();
    let good = serde_json::json!({"event_id": "e1", "completion": "{\"direction\": \"long\", \"event_type\": \"dividend\", \"strength\": \"strong\", \"car_estimate\": 0.01, \"reasoning\": \"Dividends up.\"}"});
    let mut bytes = format!("{good}\n").into_bytes();
    bytes.extend_from_slice(b"{\"event_id\": \"e2\", \"completion\": \"caf\xe9\"}\n");
    bytes.extend_from_slice(b"[1]\n");
    std::fs::write(p("completions.jsonl"), &bytes).unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "reward".to_string(),
            "--event-car".into(),
            p("event-car.json"),
            "--completions".into(),
            p("completions.jsonl"),
            "--out".into(),
            p("out"),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        janus(&a)
    };
    let out = run(args(&[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("completions.jsonl:2: ") && err.contains("not valid UTF-8"),
        "{err}"
    );
    assert!(
        err.contains("completions.jsonl:3: ") && err.contains("not a JSON object"),
        "{err}"
    );
    let reward: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p("out/reward.json")).unwrap()).unwrap();
    assert_eq!(reward["summary"]["samples"], 1);
    assert_eq!(reward["summary"]["unscored_by_reason"]["bad_line"], 2);

    let strict = run(args(&["--strict"]));
    assert_eq!(strict.status.code(), Some(2), "{}", stderr(&strict));
    assert!(stderr(&strict).contains("completions.jsonl:2: "));
}

/// Runs `janus args` with its standard error a pipe whose reading end is already closed, so
/// every diagnostic fails with EPIPE (`janus ... 2>&-` under a shell that keeps fd 2 as a dead
/// pipe).
fn with_closed_stderr(args: &[&str]) -> Output {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills both descriptors on success; each is owned exactly once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    Command::new(JANUS)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(writer))
        .output()
        .unwrap()
}

/// `eprintln!` panics (exit 101) when stderr is closed. Every diagnostic goes through the
/// checked writer instead: the command ends with its own exit code, whether it fails (the
/// final error, exit 2) or succeeds after warning (skipped lines, exit 0, output written).
#[test]
fn a_closed_stderr_never_panics() {
    let out = with_closed_stderr(&["gates", "--target", "paper", "--evidence", "nope.json"]);
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    janus::contracts::write_artifact(Path::new(&p("event-car.json")), &mut common::event_car())
        .unwrap();
    let good = serde_json::json!({"event_id": "e1", "completion": "{\"direction\": \"long\", \"event_type\": \"dividend\", \"strength\": \"strong\", \"car_estimate\": 0.01, \"reasoning\": \"Dividends up.\"}"});
    std::fs::write(p("completions.jsonl"), format!("{good}\n[1]\n")).unwrap();
    let args = [
        "reward",
        "--event-car",
        &p("event-car.json"),
        "--completions",
        &p("completions.jsonl"),
        "--out",
        &p("out"),
    ];
    // With a readable stderr the bad line is reported there: the run does write to stderr.
    let open = janus(&args);
    assert_eq!(open.status.code(), Some(0), "{}", stderr(&open));
    assert!(stderr(&open).contains("completions.jsonl:2: "));
    std::fs::remove_dir_all(p("out")).unwrap();
    let closed = with_closed_stderr(&args);
    assert_eq!(closed.status.code(), Some(0));
    assert!(Path::new(&p("out/reward.json")).exists());
}
