//! Adversary for issue 18 (runtime statistics written by the decision service, verified and
//! merged by the operator). Each `#[ignore]`d test is a finding: it asserts the behaviour the
//! issue / docs/serving.md / docs/gates.md call for and fails on main today. Expected values are
//! counted by hand from the windows each test builds.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use janus::contracts::Sha256Hex;
use janus::contracts::runtime_stats::{RuntimeStatsArtifact, ServiceIdentity, StatsSource};
use janus::identity::SigningKey;
use janus::runtime::decision::Source;
use janus::runtime::stats::{Observation, Recorder, Served, Wanted, accept, merge, sign};

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

/// The operator's clock in these tests: after every genuine window built here.
fn now() -> DateTime<Utc> {
    at(3600)
}

fn key() -> SigningKey {
    SigningKey::new(b"adversary18-statistics-key").unwrap()
}

fn model() -> Sha256Hex {
    Sha256Hex::of_bytes(b"model")
}

fn served(stage: &str) -> Served {
    Served {
        promotion_request: "p1".into(),
        candidate: "c1".into(),
        stage: stage.into(),
        model_sha256: model(),
        config_hash: Sha256Hex::of_bytes(stage.as_bytes()),
    }
}

fn recorder(replica: &str, source: StatsSource) -> Recorder {
    Recorder::new(
        source,
        ServiceIdentity {
            replica: replica.into(),
            namespace: None,
            service_account: None,
        },
    )
}

/// One window of `replica` over [from, to) s, with `ok` model decisions and `errors` fallback
/// decisions after an inference error, signed with the statistics key.
fn window(
    replica: &str,
    stage: &str,
    from: i64,
    to: i64,
    ok: u64,
    errors: u64,
) -> RuntimeStatsArtifact {
    let mut r = recorder(replica, StatsSource::DecisionService);
    let s = served(stage);
    r.serving(&s, at(from));
    let mut n = 0;
    for (count, source, reason) in [
        (ok, Source::Model, "ok"),
        (errors, Source::Fallback, "inference_error"),
    ] {
        for _ in 0..count {
            let id = format!("{replica}-{from}-{n}");
            n += 1;
            r.record(
                &s,
                &Observation {
                    event_id: &id,
                    repeat: false,
                    symbol: "600000.SH",
                    null: false,
                    source,
                    reason,
                    latency_ms: 3.0,
                    staleness_ms: 700.0,
                },
                at(from),
            );
        }
    }
    let mut a = r.close(at(to)).unwrap();
    sign(&mut a, &key()).unwrap();
    a
}

fn want<'a>(stage: &'a str, k: &'a SigningKey, m: &'a Sha256Hex, sim: bool) -> Wanted<'a> {
    Wanted {
        candidate: "c1",
        stage,
        model_sha256: m,
        promotion_request: Some("p1"),
        allow_simulation: sim,
        key: Some(k),
    }
}

fn named(files: Vec<RuntimeStatsArtifact>) -> Vec<(String, Result<RuntimeStatsArtifact, String>)> {
    files
        .into_iter()
        .enumerate()
        .map(|(i, a)| (format!("f{i}.json"), Ok(a)))
        .collect()
}

/// Finding 1. A genuine signed window copied under other names (anyone with write access to
/// `candidates/`: no key needed) is counted once per copy. Copying the clean window dilutes
/// a failing error ratio below gate3's 0.1: 30 errors in 200 decisions (0.15) becomes 30 in
/// 700 (0.043). Expected: a window already counted (same replica, overlapping time, or the same
/// manifest hash) is refused, and the figures stay those of the two genuine windows.
#[test]
fn a_copied_signed_window_is_counted_once_per_copy_and_dilutes_the_error_ratio() {
    let clean = window("r1", "paper", 0, 100, 100, 0);
    let bad = window("r1", "paper", 100, 200, 70, 30);
    let mut files = vec![clean.clone(), bad];
    files.extend(std::iter::repeat_n(clean, 5));
    let (k, m) = (key(), model());
    let a = accept(named(files), &want("paper", &k, &m, false), now());
    let stats = a.merged.unwrap().stats;
    assert_eq!(stats.decisions, 200, "each genuine decision counted once");
    assert_eq!(
        stats.error_ratio,
        Some(30.0 / 200.0),
        "0.15 fails gate3's 0.1"
    );
}

/// Finding 2. Replica r1 is SIGKILLed and loses its window [100, 200) (its events are lost);
/// replica r2's window [50, 250) overlaps that time, so the merge reports no gap and the lost
/// decisions vanish silently. docs/serving.md: "A SIGKILL loses at most the open window, which
/// the merge then reports as a gap". Expected: continuity per replica; r1's hole is a gap.
#[test]
fn a_lost_window_hidden_by_another_replicas_overlap_is_not_reported_as_a_gap() {
    let files = vec![
        window("r1", "shadow", 0, 100, 10, 0),
        // r1's [100, 200) was never written (SIGKILL).
        window("r1", "shadow", 200, 300, 10, 0),
        window("r2", "shadow", 50, 250, 10, 0),
    ];
    let m = merge(&files).unwrap();
    assert!(
        !m.gaps.is_empty(),
        "r1 lost [100, 200): expected a gap, got none"
    );
}

/// Finding 3. One replica whose clock runs a day ahead writes a genuine, signed window dated
/// tomorrow. The merge sees a "gap" between the others and it, keeps only the future window, and
/// every genuine window of the other replicas is discarded (the gates then refuse the lot as
/// `window_in_future`). Expected: the future-dated file is refused with its reason (the merge
/// or accept knows `now`), and the two genuine windows (20 decisions) still count.
#[test]
fn a_window_from_a_skewed_clock_discards_every_genuine_window() {
    let files = vec![
        window("r1", "shadow", 0, 100, 10, 0),
        window("r1", "shadow", 100, 200, 10, 0),
        window("r2", "shadow", 86_400, 86_500, 1, 0),
    ];
    let (k, m) = (key(), model());
    let a = accept(named(files), &want("shadow", &k, &m, false), now());
    let merged = a.merged.unwrap();
    assert_eq!(
        (merged.stats.window_start, merged.stats.decisions),
        (at(0), 20),
        "the genuine stretch [0, 200) with its 20 decisions"
    );
}

/// Finding 4. Counts are summed with unchecked `+=`. One sealed file may carry counts up to
/// 2^53 - 1 (RFC 8785's exact-integer limit, which the reader enforces), so 2049 contiguous
/// `simulation` files (unsigned, which the shipped policy accepts for gate0 on shadow → paper,
/// and which anyone who can write `candidates/` can seal) add past u64::MAX: the merge — the
/// operator's reconcile — panics in the dev profile (overflow checks; e2e runs it) and wraps
/// silently in release. Expected: no panic; the sum is checked and refused as impossible.
#[test]
fn counts_that_add_past_u64_max_do_not_panic_the_merge() {
    const MAX_EXACT: u64 = (1 << 53) - 1;
    let mut r = recorder("sim", StatsSource::Simulation);
    r.serving(&served("shadow"), at(0));
    let mut one = r.close(at(1)).unwrap();
    one.counts.events = MAX_EXACT;
    one.counts.decisions = MAX_EXACT;
    one.latency_ms.counts[0] = MAX_EXACT;
    one.staleness_ms.counts[0] = MAX_EXACT;
    // Sealed like any artifact, it reads back through the fail-closed reader.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sim.json");
    janus::contracts::write_artifact(&p, &mut one).unwrap();
    let one = janus::contracts::read_artifact::<RuntimeStatsArtifact>(&p).unwrap();
    let files: Vec<RuntimeStatsArtifact> = (0..2049)
        .map(|i| {
            let mut a = one.clone();
            (a.window_start, a.window_end) = (at(i), at(i + 1));
            a
        })
        .collect();
    let (k, m) = (key(), model());
    let w = want("shadow", &k, &m, true);
    let outcome = std::panic::catch_unwind(|| accept(named(files), &w, now()));
    assert!(outcome.is_ok(), "the merge panicked on a u64 overflow");
    let merged = outcome.unwrap().merged;
    assert!(
        merged.is_none_or(|m| m.stats.decisions >= MAX_EXACT),
        "the sum wrapped to a small number"
    );
}

/// Finding 5. Nothing checks a file's numbers against each other: a window whose decided
/// symbols were never seen (coverage should be 0/2) reads as coverage 1.0, and one with 1000
/// decisions among 1 event answered, a latency histogram of 1 value, passes as well.
/// Expected: decided ⊆ seen, decisions + halts + suppressed = events, histogram totals =
/// events; otherwise refused as impossible. (Reaches the gates through a simulation at gate0, or
/// through any bug in the recorder at gate3.)
#[test]
fn counts_symbols_and_histograms_that_contradict_each_other_are_refused() {
    let mut r = recorder("sim", StatsSource::Simulation);
    let s = served("shadow");
    r.serving(&s, at(0));
    r.record(
        &s,
        &Observation {
            event_id: "e",
            repeat: false,
            symbol: "A",
            null: false,
            source: Source::Model,
            reason: "ok",
            latency_ms: 1.0,
            staleness_ms: 1.0,
        },
        at(1),
    );
    let mut a = r.close(at(100)).unwrap();
    a.symbols_seen = vec!["A".into(), "B".into()];
    a.symbols_decided = vec!["C".into(), "D".into()];
    a.counts.decisions = 1000;
    let (k, m) = (key(), model());
    let acc = accept(named(vec![a]), &want("shadow", &k, &m, true), now());
    let refused_or_zero = acc.merged.as_ref().is_none_or(|m| {
        m.stats.symbol_coverage == Some(0.0) || !m.stats.invalid_fields().is_empty()
    });
    assert!(
        refused_or_zero,
        "accepted with coverage {:?} and {} decisions of 1 event",
        acc.merged.as_ref().unwrap().stats.symbol_coverage,
        acc.merged.as_ref().unwrap().stats.decisions
    );
}

// ---------- the decision service, as a process ----------

const JANUS: &str = env!("CARGO_BIN_EXE_janus");

fn write_runtime(dir: &std::path::Path, data: &str) {
    let tmp = dir.join("runtime.json.tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(tmp, dir.join("runtime.json")).unwrap();
}

fn shadow_runtime() -> String {
    serde_json::json!({
        "stage": "shadow", "candidate": "c1", "promotionRequest": "p1",
        "modelUri": "model/model.onnx", "modelSha256": "0".repeat(64),
        "tradingEnabled": "false", "forceFallback": "false",
    })
    .to_string()
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "timed out"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Finding 6. The service's window keeps running while it has no usable configuration (the
/// runtime ConfigMap gone, unreadable or refused: /readyz 503, every event halted and not
/// counted): the periodic flush writes empty windows over that time, contiguous with the rest,
/// and the merge reads the whole span as served. On a cluster, a paper ConfigMap that was
/// missing for 70 h of a 72 h "window" passes gate3's `min_window_hours` with two hours of
/// serving. Expected: the window closes when the configuration becomes unusable, and the time
/// without one is a gap (docs/serving.md: "a window of what is served").
#[test]
fn time_without_a_usable_configuration_is_not_counted_as_served() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_runtime(dir, &shadow_runtime());
    let mut child = Command::new(JANUS)
        .args(["serve", "--runtime-file"])
        .arg(dir.join("runtime.json"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
        .args(["--stats-interval", "1", "--replica", "r1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    let child = Killed(child);
    let ready = || common::http(&addr, "GET", "/readyz", b"").0;
    wait_until(|| ready() == 200);
    // The configuration becomes unusable (not a configuration at all) for ~2.5 flushes.
    write_runtime(dir, "{}");
    wait_until(|| ready() == 503);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    write_runtime(dir, &shadow_runtime());
    wait_until(|| ready() == 200);
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut child = child;
    assert!(child.0.wait().unwrap().success());

    let folder = dir.join("candidates/c1/runtime/shadow");
    let files: Vec<RuntimeStatsArtifact> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| janus::contracts::read_artifact(&e.unwrap().path()).unwrap())
        .collect();
    let m = merge(&files).unwrap();
    assert!(
        !m.gaps.is_empty(),
        "~2.5 s without a usable configuration merged as served: {} files, window {} .. {}",
        files.len(),
        m.stats.window_start,
        m.stats.window_end
    );
}

/// Finding 7. The operator starts with the same key for statistics and for the webhook's
/// records (`--stats-key K --webhook-signing-key-file K`), without a word. The domain prefix
/// keeps a statistics tag from verifying as a record or a status seal, but the decision service
/// — network-facing, and the only writer of `candidates/` — then holds the key that signs
/// approvals, drills and status seals, and can mint any of them. Expected: refused at start
/// (or at least warned), as an empty or unreadable key file already is. (A kubeconfig naming an
/// unreachable server lets the operator get as far as reading its keys.)
#[test]
fn the_operator_refuses_one_key_for_statistics_and_approvals() {
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let key = tmp.path().join("key");
    std::fs::write(&key, "one-key-for-everything-0123456789\n").unwrap();
    let child = Command::new(JANUS)
        .args(["controller", "--log-format", "text", "--stats-key"])
        .arg(&key)
        .arg("--webhook-signing-key-file")
        .arg(&key)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("JANUS_STATS_KEY_FILE")
        .env_remove("JANUS_WEBHOOK_SIGNING_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    // A refusal at start is immediate; 10 s only bounds the wait for one.
    let t0 = std::time::Instant::now();
    let exited = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break Some(status);
        }
        if t0.elapsed() > std::time::Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.0.kill();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        (exited.is_some_and(|s| !s.success()) && stderr.contains("--stats-key"))
            || stderr.contains("same key"),
        "started with one key for statistics and approvals; stderr tail: {}",
        &stderr[stderr.len().saturating_sub(400)..]
    );
}
