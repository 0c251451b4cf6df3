//! The decision service end to end over HTTP on 127.0.0.1, with a model trained here: model
//! decisions, malformed requests, stale events, canary limits, a model whose digest does not
//! match (refused, fallback, counted), forced fallback, the kill switch taking effect on the
//! next decision, and an inference slower than its budget.

mod common;

use common::http;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const JANUS: &str = env!("CARGO_BIN_EXE_janus");

fn janus(args: &[&str]) {
    let out = Command::new(JANUS).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "janus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small dataset, its labels and an SFT model with its ONNX export, in `dir`.
fn train(dir: &Path) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    janus(&[
        "scenario",
        "--seed",
        "5",
        "--symbols",
        "60",
        "--days",
        "260",
        "--events",
        "2500",
        "--out",
        &p("data"),
    ]);
    janus(&["label", "--dataset", &p("data"), "--out", &p(".")]);
    janus(&[
        "train",
        "sft",
        "--event-car",
        &p("event-car.json"),
        "--out",
        &p("model"),
    ]);
}

fn sha256(path: &Path) -> String {
    janus::contracts::Sha256Hex::of_bytes(&std::fs::read(path).unwrap()).to_string()
}

struct Runtime {
    stage: &'static str,
    trading: bool,
    fallback: bool,
    sha: String,
}

fn write_runtime(dir: &Path, r: &Runtime) {
    let limits = serde_json::json!({"symbols": ["600000.SH", "600004.SH", "600006.SH", "600007.SH"],
        "maxOrderNotional": 100000.0, "maxGrossNotional": 250000.0, "maxNetNotional": 150000.0});
    let data = serde_json::json!({
        "stage": r.stage, "candidate": "c1", "promotionRequest": "p1",
        "modelUri": "model/model.onnx", "modelSha256": r.sha, "historyUri": "event-car.json",
        "tradingEnabled": r.trading.to_string(), "forceFallback": r.fallback.to_string(),
        "canaryLimits": limits.to_string(),
    });
    let mut data = data;
    if r.stage != "canary" {
        data.as_object_mut().unwrap().remove("canaryLimits");
    }
    let tmp = dir.join("runtime.json.tmp");
    std::fs::write(&tmp, data.to_string()).unwrap();
    std::fs::rename(tmp, dir.join("runtime.json")).unwrap();
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, extra: &[&str]) -> Server {
    start_with_env(dir, extra, &[])
}

fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, String)]) -> Server {
    let mut child = Command::new(JANUS)
        .args([
            "serve",
            "--runtime-file",
            dir.join("runtime.json").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--unit-notional",
            "1000000",
            "--log-format",
            "text",
        ])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    let server = Server { child, addr };
    // Settled: loaded, or refused (not before the first read, nor while loading).
    wait_until(|| {
        let r = runtime(&server);
        r["model"] == "loaded"
            || r["model_error"]
                .as_str()
                .is_some_and(|e| e != "loading the model" && e != "no model loaded yet")
    });
    server
}

fn runtime(s: &Server) -> serde_json::Value {
    let (status, body) = http(&s.addr, "GET", "/v1/runtime", b"");
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn event(id: &str, symbol: &str, age_s: i64, event_type: &str, title: &str) -> Vec<u8> {
    let ts = chrono::Utc::now() - chrono::Duration::seconds(age_s);
    serde_json::to_vec(&serde_json::json!({"event": {
        "event_id": id, "timestamp": ts.to_rfc3339(), "symbol": symbol,
        "event_type": event_type, "title": title, "features": {"ret_5d": 0.01}
    }}))
    .unwrap()
}

fn decide(s: &Server, body: &[u8]) -> serde_json::Value {
    let (status, text) = http(&s.addr, "POST", "/v1/decide", body);
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The dataset's own events (type and title), which the model learned to call.
fn dataset_events(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("data/events.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let (t, title) = (col("event_type"), col("title"));
    reader
        .records()
        .take(300)
        .map(|r| {
            let r = r.unwrap();
            (r[t].to_string(), r[title].to_string())
        })
        .collect()
}

fn metric(s: &Server, prefix: &str) -> f64 {
    let (_, text) = http(&s.addr, "GET", "/metrics", b"");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_decision_service_obeys_its_runtime_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    train(&dir);
    let sha = sha256(&dir.join("model/model.onnx"));
    write_runtime(
        &dir,
        &Runtime {
            stage: "canary",
            trading: true,
            fallback: false,
            sha: sha.clone(),
        },
    );
    // A generous budget here: on a loaded machine a 50 ms budget can be missed, and these
    // checks are about the rules, not speed (the timeout has its own check at the end).
    let s = start(&dir, &["--timeout-ms", "5000"]);
    assert_eq!(runtime(&s)["model"], "loaded", "{}", runtime(&s));
    assert_eq!(http(&s.addr, "GET", "/readyz", b"").0, 200);

    // Malformed requests: 4xx with the reason.
    for (body, status, says) in [
        (b"not json".to_vec(), 400, "not JSON"),
        (b"{}".to_vec(), 422, "event"),
        (br#"{"event": {"event_id": "x"}}"#.to_vec(), 422, "missing field"),
        (
            br#"{"event": {"event_id": "x", "timestamp": "yesterday", "symbol": "A", "title": "t"}}"#.to_vec(),
            422,
            "event.timestamp",
        ),
        (
            br#"{"event": {"event_id": "x", "timestamp": "2026-11-28T00:00:00Z", "symbol": "A", "title": "t", "size": 1}}"#.to_vec(),
            422,
            "unknown field",
        ),
        (event("", "600000.SH", 0, "dividend", "t"), 422, "event.event_id is empty"),
        (vec![b' '; 70 * 1024], 413, ""),
    ] {
        let (got, text) = http(&s.addr, "POST", "/v1/decide", &body);
        assert_eq!(got, status, "{text}");
        assert!(text.contains(says), "{says}: {text}");
    }

    // The model decides; every order stays within the canary limits.
    let events = dataset_events(&dir);
    let symbols = [
        "600000.SH",
        "600004.SH",
        "600006.SH",
        "600007.SH",
        "000001.SZ",
    ];
    let (mut gross, mut net, mut trades, mut reduced, mut refused_symbol) = (0.0, 0.0, 0, 0, 0);
    for (i, (t, title)) in events.iter().enumerate() {
        let symbol = symbols[i % symbols.len()];
        let d = decide(&s, &event(&format!("e{i}"), symbol, 1, t, title));
        assert_eq!(d["source"], "model", "{d}");
        assert_eq!(d["model_sha256"], sha.as_str());
        assert_eq!(d["candidate"], "c1");
        let n = d["notional"].as_f64().unwrap();
        let reason = d["reason"].as_str().unwrap();
        if symbol == "000001.SZ" {
            assert_eq!(n, 0.0, "{d}");
            refused_symbol += usize::from(reason == "symbol_allowlist_refused");
            continue;
        }
        assert!(n.abs() <= 100_000.0, "{d}");
        reduced += usize::from(reason.ends_with("_reduced"));
        if n != 0.0 {
            trades += 1;
            gross += n.abs();
            net += n;
        }
        assert!(
            gross <= 250_000.0 + 1e-6 && net.abs() <= 150_000.0 + 1e-6,
            "{d}"
        );
    }
    assert!(trades > 0, "the model never traded");
    assert!(reduced > 0, "a 1,000,000 order was never reduced");
    assert!(
        refused_symbol > 0,
        "a call on a symbol outside the allowlist was never refused"
    );
    assert!(metric(&s, "janus_limit_actions_total") > 0.0);

    // Shadow: the model decides, nothing is placed.
    write_runtime(
        &dir,
        &Runtime {
            stage: "shadow",
            trading: false,
            fallback: false,
            sha: sha.clone(),
        },
    );
    wait_until(|| decide(&s, &event("s", "600000.SH", 1, "dividend", "t"))["stage"] == "shadow");
    for (i, (t, title)) in events.iter().take(40).enumerate() {
        let d = decide(&s, &event(&format!("s{i}"), "600000.SH", 1, t, title));
        assert_eq!(
            (
                d["source"].as_str(),
                d["reason"].as_str(),
                d["notional"].as_f64()
            ),
            (Some("model"), Some("shadow"), Some(0.0)),
            "{d}"
        );
    }
    write_runtime(
        &dir,
        &Runtime {
            stage: "canary",
            trading: true,
            fallback: false,
            sha: sha.clone(),
        },
    );
    wait_until(|| decide(&s, &event("c", "600000.SH", 1, "dividend", "t"))["stage"] == "canary");

    // Paper: replay the dataset's events through the service (paper stage: no canary limits)
    // as a paper broker.
    write_runtime(
        &dir,
        &Runtime {
            stage: "paper",
            trading: true,
            fallback: false,
            sha: sha.clone(),
        },
    );
    wait_until(|| decide(&s, &event("p", "600000.SH", 1, "dividend", "t"))["stage"] == "paper");
    let paper = dir.join("paper");
    janus(&[
        "paper",
        "--service",
        &format!("http://{}", s.addr),
        "--events",
        dir.join("event-car.json").to_str().unwrap(),
        "--prices",
        dir.join("data/prices.csv").to_str().unwrap(),
        "--from",
        "2023-09-01",
        "--rate",
        "2000",
        "--out",
        paper.to_str().unwrap(),
    ]);
    let stats: janus::gates::RuntimeStats =
        serde_json::from_slice(&std::fs::read(paper.join("runtime-paper.json")).unwrap()).unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(paper.join("paper-report.json")).unwrap()).unwrap();
    let replayed = report["events"].as_u64().unwrap();
    assert!(replayed > 100, "{report}");
    assert_eq!(stats.stage, "paper");
    assert_eq!(stats.decisions, replayed);
    assert_eq!(stats.error_ratio, Some(0.0));
    // Every symbol-day that could trade was decided (halted days are left out).
    assert_eq!(stats.symbol_coverage, Some(1.0));
    assert!(stats.latency_p95_ms.unwrap() > 0.0);
    assert!(report["fills"].as_u64().unwrap() > 0, "{report}");
    assert!(report["pnl"].as_f64().unwrap().is_finite());
    let decisions = std::fs::read_to_string(paper.join("decisions.jsonl")).unwrap();
    assert_eq!(decisions.lines().count() as u64, replayed);
    // gate3 reads it: a replay of minutes is not the 72-hour stability window the policy asks for.
    let evidence = dir.join("evidence.json");
    janus::contracts::write_artifact(&evidence, &mut common::good_evidence()).unwrap();
    let out = Command::new(JANUS)
        .args([
            "gates",
            "--target",
            "canary",
            "--evidence",
            evidence.to_str().unwrap(),
        ])
        .args([
            "--runtime-stats",
            paper.join("runtime-paper.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gate3") && text.contains("window"), "{text}");

    // Stale and future events are suppressed.
    let d = decide(&s, &event("old", "600000.SH", 3600, "dividend", "t"));
    assert_eq!(
        (d["source"].as_str(), d["reason"].as_str()),
        (Some("suppressed"), Some("stale_event"))
    );
    let d = decide(&s, &event("future", "600000.SH", -600, "dividend", "t"));
    assert_eq!(d["reason"], "future_event");

    // Forced fallback: the baseline decides.
    write_runtime(
        &dir,
        &Runtime {
            stage: "canary",
            trading: true,
            fallback: true,
            sha: sha.clone(),
        },
    );
    wait_until(|| decide(&s, &event("f", "600000.SH", 1, "dividend", "t"))["source"] == "fallback");
    let d = decide(&s, &event("f2", "600000.SH", 1, "dividend", "t"));
    assert_eq!(d["reason"], "force_fallback");

    // The kill switch: the next decision after the change is seen is halted.
    write_runtime(
        &dir,
        &Runtime {
            stage: "canary",
            trading: false,
            fallback: true,
            sha: sha.clone(),
        },
    );
    let flipped = Instant::now();
    wait_until(|| decide(&s, &event("k", "600000.SH", 1, "dividend", "t"))["source"] == "halted");
    eprintln!(
        "kill switch seen after {:?} (file polled every 50 ms)",
        flipped.elapsed()
    );
    let d = decide(&s, &event("k2", "600000.SH", 1, "dividend", "t"));
    assert_eq!(
        (d["notional"].as_f64(), d["reason"].as_str()),
        (Some(0.0), Some("trading_disabled"))
    );
    assert!(metric(&s, "janus_trading_enabled") == 0.0);

    // A model whose digest is not the pinned one is refused: fallback, with the reason, counted.
    let wrong = janus::contracts::Sha256Hex::of_bytes(b"another model").to_string();
    write_runtime(
        &dir,
        &Runtime {
            stage: "canary",
            trading: true,
            fallback: false,
            sha: wrong,
        },
    );
    wait_until(|| {
        runtime(&s)["model_error"]
            .as_str()
            .is_some_and(|e| e.contains("hashes to"))
    });
    let d = decide(&s, &event("m", "600000.SH", 1, "dividend", "t"));
    assert_eq!(
        (d["source"].as_str(), d["reason"].as_str()),
        (Some("fallback"), Some("model_unavailable"))
    );
    assert!(d["detail"].as_str().unwrap().contains("refused"), "{d}");
    assert!(metric(&s, "janus_model_errors_total{reason=\"digest_mismatch\"}") >= 1.0);

    // A broken runtime file halts trading rather than guessing.
    std::fs::write(dir.join("runtime.json"), "{\"stage\": \"canary\"").unwrap();
    wait_until(|| {
        decide(&s, &event("b", "600000.SH", 1, "dividend", "t"))["reason"] == "no_runtime_config"
    });
    drop(s);

    // An inference slower than its budget: the fallback answers within the budget.
    write_runtime(
        &dir,
        &Runtime {
            stage: "canary",
            trading: true,
            fallback: false,
            sha,
        },
    );
    let slow = start(
        &dir,
        &["--timeout-ms", "20", "--inject-inference-delay-ms", "300"],
    );
    let d = decide(&slow, &event("slow", "600000.SH", 1, "dividend", "t"));
    assert_eq!(
        (d["source"].as_str(), d["reason"].as_str()),
        (Some("fallback"), Some("inference_timeout")),
        "{d}"
    );
    assert!(d["latency_ms"].as_f64().unwrap() < 300.0, "{d}");
    assert!(
        metric(
            &slow,
            "janus_model_errors_total{reason=\"inference_timeout\"}"
        ) >= 1.0
    );
    assert!(metric(&slow, "autonomy_fallback_ratio") > 0.0);
}

/// A stand-in OTLP/HTTP collector: records (path, body) of every request and answers 200.
fn fake_collector() -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let body = buf[end + 4..end + 4 + length].to_vec();
                    buf.drain(..end + 4 + length);
                    let _ = tx.send((path, body));
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    (addr, rx)
}

#[test]
fn decisions_are_traced_over_otlp_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    train(&dir);
    let sha = sha256(&dir.join("model/model.onnx"));
    write_runtime(
        &dir,
        &Runtime {
            stage: "paper",
            trading: true,
            fallback: false,
            sha,
        },
    );
    let (collector, received) = fake_collector();
    let s = start_with_env(
        &dir,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ],
    );
    wait_until(|| runtime(&s)["model"] == "loaded");
    decide(
        &s,
        &event("traced-1", "600000.SH", 1, "dividend", "dividend raised"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (path, body) = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no OTLP export arrived");
        let text = String::from_utf8_lossy(&body);
        if path == "/v1/traces" && text.contains("traced-1") {
            assert!(
                text.contains("janus-decision-service"),
                "the resource names the service"
            );
            assert!(text.contains("decide"));
            break;
        }
    }
}

/// The service's own statistics: sealed windows under the candidate's folder, written on every
/// `--stats-interval` and on SIGTERM, which together hold every event answered exactly once, in
/// contiguous windows; an edited file no longer verifies. (No model: the digest pinned matches
/// nothing, so the fallback decides, which is all the counting needs.)
#[test]
fn the_decision_service_records_sealed_statistics_and_loses_nothing_on_sigterm() {
    use janus::contracts::runtime_stats::{RuntimeStatsArtifact, StatsSource};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sha = "0".repeat(64);
    write_runtime(
        dir,
        &Runtime {
            stage: "shadow",
            trading: false,
            fallback: false,
            sha: sha.clone(),
        },
    );
    let mut s = start(dir, &["--stats-interval", "1", "--replica", "r1"]);
    for id in ["a", "b", "a"] {
        let d = decide(&s, &event(id, "600000.SH", 1, "dividend", "t"));
        assert_eq!(d["source"], "fallback", "{d}");
    }
    std::thread::sleep(Duration::from_millis(1300)); // at least one periodic flush
    for id in ["c", "d"] {
        decide(&s, &event(id, "600004.SH", 1, "dividend", "t"));
    }
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(s.child.wait().unwrap().success());

    let folder = dir.join("candidates/c1/runtime/shadow");
    let mut files: Vec<RuntimeStatsArtifact> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| janus::contracts::read_artifact(&e.unwrap().path()).unwrap())
        .collect();
    assert!(files.len() >= 2, "a periodic file and the one on shutdown");
    files.sort_by_key(|a| a.window_start);
    for w in files.windows(2) {
        assert_eq!(w[0].window_end, w[1].window_start, "contiguous");
    }
    let sum = |f: fn(&RuntimeStatsArtifact) -> u64| files.iter().map(f).sum::<u64>();
    // "a" sent twice: one decision, one duplicate.
    assert_eq!(sum(|a| a.counts.events), 5);
    assert_eq!(sum(|a| a.counts.decisions), 4);
    assert_eq!(sum(|a| a.counts.fallbacks), 4);
    assert_eq!(sum(|a| a.counts.duplicate_event_ids), 1);
    for a in &files {
        assert_eq!(a.source, StatsSource::DecisionService);
        assert_eq!(
            (
                a.service.replica.as_str(),
                a.promotion_request.as_str(),
                a.stage.as_str()
            ),
            ("r1", "p1", "shadow")
        );
        assert_eq!(a.model_sha256.to_string(), sha);
    }
    let merged = janus::runtime::stats::merge(&files).unwrap();
    assert!(merged.gaps.is_empty());
    assert_eq!(merged.stats.symbol_coverage, Some(1.0));

    // An edited count is refused by the same reader.
    let path = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"decisions\":", "\"decisions\":1", 1);
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    let err = janus::contracts::read_artifact::<RuntimeStatsArtifact>(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed after it was sealed"), "{err}");
}

/// With `--stats-key`, every file the service writes carries a signature the operator's key
/// verifies, checked through the operator's own filter (`runtime::stats::accept`). The same file
/// with a count raised and its content hash recomputed still reads as an artifact, and is
/// refused as badly signed; without its signature it is refused as unsigned.
#[test]
fn the_decision_service_signs_its_statistics_and_a_resealed_edit_is_refused() {
    use janus::contracts::runtime_stats::RuntimeStatsArtifact;
    use janus::runtime::stats::{Refusal, SignatureError, Wanted, accept};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sha = "0".repeat(64);
    write_runtime(
        dir,
        &Runtime {
            stage: "shadow",
            trading: false,
            fallback: false,
            sha: sha.clone(),
        },
    );
    let key_file = dir.join("stats.key");
    std::fs::write(&key_file, "e2e-statistics-key-0123456789\n").unwrap();
    let key = janus::identity::SigningKey::from_file(&key_file).unwrap();
    let mut s = start(
        dir,
        &[
            "--stats-interval",
            "3600",
            "--replica",
            "r1",
            "--stats-key",
            key_file.to_str().unwrap(),
        ],
    );
    for id in ["a", "b"] {
        decide(&s, &event(id, "600000.SH", 1, "dividend", "t"));
    }
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(s.child.wait().unwrap().success());

    let folder = dir.join("candidates/c1/runtime/shadow");
    let read = |p: &Path| {
        janus::contracts::read_artifact::<RuntimeStatsArtifact>(p).map_err(|e| e.to_string())
    };
    let written: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "one window, flushed on SIGTERM");
    let original = read(&written[0]).unwrap();
    assert!(original.signature.is_some());
    let model = janus::contracts::Sha256Hex::parse(&sha).unwrap();
    let want = Wanted {
        candidate: "c1",
        stage: "shadow",
        model_sha256: &model,
        promotion_request: Some("p1"),
        allow_simulation: false,
        key: Some(&key),
    };
    let a = accept(
        vec![("written".into(), read(&written[0]))],
        &want,
        chrono::Utc::now(),
    );
    assert!(a.refused.is_empty(), "{:?}", a.refused);
    assert_eq!(a.merged.unwrap().stats.decisions, 2);

    let mut edited = original.clone();
    edited.counts.decisions = 500;
    edited.counts.events = 500;
    let edited_path = folder.join("r1-edited.json");
    janus::contracts::write_artifact(&edited_path, &mut edited).unwrap();
    let mut unsigned = original.clone();
    unsigned.signature = None;
    let unsigned_path = folder.join("r1-unsigned.json");
    janus::contracts::write_artifact(&unsigned_path, &mut unsigned).unwrap();
    let a = accept(
        vec![
            ("edited".into(), read(&edited_path)),
            ("unsigned".into(), read(&unsigned_path)),
        ],
        &want,
        chrono::Utc::now(),
    );
    assert!(a.merged.is_none());
    let why: Vec<&Refusal> = a.refused.iter().map(|r| &r.why).collect();
    assert_eq!(
        why,
        [
            &Refusal::Signature(SignatureError::Invalid),
            &Refusal::Signature(SignatureError::Unsigned)
        ]
    );
}

/// /readyz means "send me events": 503 while no usable configuration is in force (no runtime
/// file: every decision would be halted) and while the model loads; 200 once it has settled
/// (here refused, so the deterministic fallback serves).
#[test]
fn readyz_is_ready_only_with_a_usable_configuration_and_a_settled_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut child = Command::new(JANUS)
        .args(["serve", "--runtime-file"])
        .arg(dir.join("runtime.json"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
        .args([
            "--inject-model-load-delay-ms",
            "1500",
            "--stats-interval",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let s = Server {
        addr: line.trim().rsplit("http://").next().unwrap().to_string(),
        child,
    };
    let ready = || http(&s.addr, "GET", "/readyz", b"");
    wait_until(|| ready().1.contains("no usable runtime configuration"));
    assert_eq!(ready().0, 503);
    write_runtime(
        dir,
        &Runtime {
            stage: "shadow",
            trading: false,
            fallback: false,
            sha: "0".repeat(64),
        },
    );
    wait_until(|| ready().1.contains("loading the model"));
    assert_eq!(ready().0, 503);
    wait_until(|| ready().0 == 200);
    assert!(
        runtime(&s)["model_error"]
            .as_str()
            .unwrap()
            .contains("cannot read")
    );
}

/// The same event id sent again while one configuration is in force gets its first decision
/// again, marked as a duplicate, and opens no second position: the canary book holds it once.
/// The fallback (no model: the pinned digest matches nothing) trades from the labelled history.
#[test]
fn a_duplicate_event_gets_its_first_decision_again_and_never_a_second_position() {
    use janus::contracts::runtime_stats::RuntimeStatsArtifact;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    janus(&[
        "scenario",
        "--seed",
        "5",
        "--symbols",
        "60",
        "--days",
        "260",
        "--events",
        "2500",
        "--out",
        &p("data"),
    ]);
    janus(&["label", "--dataset", &p("data"), "--out", &p(".")]);
    write_runtime(
        dir,
        &Runtime {
            stage: "canary",
            trading: true,
            fallback: false,
            sha: "0".repeat(64),
        },
    );
    // Weak calls trade too (at half the 1,000,000 unit): the small history makes every call weak.
    let mut s = start(
        dir,
        &[
            "--stats-interval",
            "3600",
            "--replica",
            "r1",
            "--trade-weak",
        ],
    );
    let post = |id: &str, event_type: &str| {
        let (status, headers, text) = common::http_with_headers(
            &s.addr,
            "POST",
            "/v1/decide",
            &event(id, "600000.SH", 1, event_type, "t"),
        );
        assert_eq!(status, 200, "{text}");
        let duplicate = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("janus-duplicate"))
            .map(|(_, v)| v.clone());
        (
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            duplicate,
        )
    };
    // A type whose history makes the fallback call it long: an order of 500,000.
    let mut long_type = None;
    for (i, t) in [
        "risk_warning",
        "violation",
        "equity_change",
        "asset_change",
        "financial_status",
        "dividend",
        "financing",
        "industry",
        "personal_behavior",
        "rating_adjustment",
    ]
    .iter()
    .enumerate()
    {
        // A symbol outside the allowlist: refused, so the probe books nothing.
        let (status, text) = http(
            &s.addr,
            "POST",
            "/v1/decide",
            &event(&format!("probe{i}"), "000001.SZ", 1, t, "t"),
        );
        assert_eq!(status, 200);
        let d: serde_json::Value = serde_json::from_str(&text).unwrap();
        if d["reason"] == "symbol_allowlist_refused" && d["direction"] == "long" {
            long_type = Some(*t);
            break;
        }
    }
    let t = long_type.expect("no event type the fallback calls long");

    let (first, dup) = post("e1", t);
    assert_eq!(dup.as_deref(), Some("false"));
    // 500,000 reduced to the 100,000 order limit.
    assert_eq!(
        (first["source"].as_str(), first["notional"].as_f64()),
        (Some("fallback"), Some(100_000.0)),
        "{first}"
    );
    let (again, dup) = post("e1", t);
    assert_eq!(dup.as_deref(), Some("true"));
    assert_eq!(again, first, "the first decision, exactly");
    // A new event on the same symbol, same call: with e1 booked once the net is 100,000, so
    // the 150,000 net limit leaves 50,000; booked twice it would leave nothing (refused).
    let (second, dup) = post("e2", t);
    assert_eq!(dup.as_deref(), Some("false"));
    assert_eq!(second["notional"].as_f64(), Some(50_000.0), "{second}");
    assert_eq!(metric(&s, "janus_duplicate_events_total"), 1.0);

    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(s.child.wait().unwrap().success());
    let files: Vec<RuntimeStatsArtifact> =
        std::fs::read_dir(dir.join("candidates/c1/runtime/canary"))
            .unwrap()
            .map(|e| janus::contracts::read_artifact(&e.unwrap().path()).unwrap())
            .collect();
    let sum = |f: fn(&RuntimeStatsArtifact) -> u64| files.iter().map(f).sum::<u64>();
    // 10 probes at most, e1, e1 again, e2: the repeat is an event and a duplicate only.
    let events = sum(|a| a.counts.events);
    assert_eq!(sum(|a| a.counts.duplicate_event_ids), 1);
    assert_eq!(sum(|a| a.counts.decisions), events - 1);
}

/// Symbol coverage counts only what could trade: a replay of a dataset whose prices lack a row
/// (a planted halt on a replayed event's first tradable day) and whose events include some
/// outside the calendar (no tradable day at all) still has coverage exactly 1 when the service
/// decided every event. Under the previous rule (events with a known symbol and day over all
/// events sent) the events outside the calendar alone made it fall below 1.
#[test]
fn symbol_coverage_leaves_out_what_could_not_trade() {
    use janus::contracts::event_car::EventCarArtifact;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    janus(&[
        "scenario",
        "--seed",
        "7",
        "--symbols",
        "40",
        "--days",
        "200",
        "--events",
        "800",
        "--out",
        &p("data"),
    ]);
    janus(&["label", "--dataset", &p("data"), "--out", &p(".")]);
    let labels: EventCarArtifact =
        janus::contracts::read_artifact(&dir.join("event-car.json")).unwrap();
    assert!(
        labels.records.iter().any(|r| r.d0.is_none()),
        "the scenario should have events after its last trading day"
    );
    // The planted halt: the price row of a replayed event's symbol on its first tradable day.
    let victim = labels.records.iter().find(|r| r.label.is_some()).unwrap();
    let day = victim.d0.unwrap().to_string();
    let prices = std::fs::read_to_string(dir.join("data/prices.csv")).unwrap();
    let kept: Vec<&str> = prices
        .lines()
        .filter(|l| !l.starts_with(&format!("{day},{},", victim.symbol)))
        .collect();
    assert_eq!(kept.len() + 1, prices.lines().count(), "one row removed");
    std::fs::write(dir.join("halted-prices.csv"), kept.join("\n") + "\n").unwrap();

    write_runtime(
        dir,
        &Runtime {
            stage: "paper",
            trading: true,
            fallback: true,
            sha: "0".repeat(64),
        },
    );
    let s = start(dir, &["--stats-interval", "0"]);
    janus(&[
        "paper",
        "--service",
        &format!("http://{}", s.addr),
        "--events",
        &p("event-car.json"),
        "--prices",
        &p("halted-prices.csv"),
        "--rate",
        "5000",
        "--out",
        &p("paper"),
    ]);
    let stats: janus::gates::RuntimeStats =
        serde_json::from_slice(&std::fs::read(dir.join("paper/runtime-paper.json")).unwrap())
            .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("paper/paper-report.json")).unwrap())
            .unwrap();
    assert_eq!(report["events"].as_u64(), Some(labels.records.len() as u64));
    assert_eq!(report["errors"].as_u64(), Some(0));
    assert_eq!(stats.symbol_coverage, Some(1.0));
}
