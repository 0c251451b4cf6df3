//! The decision service's safety (issue 15), end to end over HTTP on 127.0.0.1: the kill switch
//! never waits for a model load (a model file nobody writes to, a slow load), doubtful
//! configurations and requests are refused, inference work is bounded, idle connections cannot
//! hold either service, and older lease epochs may not trade. The API modes (PromotionRequest
//! kill switch latch, stale configuration) run against a fake API server in
//! `serve_api.rs`. Timings are printed, never asserted beyond generous liveness bounds.

mod common;

use common::http;
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
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

/// One small dataset, its labels and a trained model, shared by the tests of this file.
fn trained() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let p = |f: &str| tmp.path().join(f).to_str().unwrap().to_string();
        janus(&[
            "scenario",
            "--seed",
            "5",
            "--symbols",
            "40",
            "--days",
            "260",
            "--events",
            "1500",
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
        tmp
    })
    .path()
}

pub struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `janus ARGS` and reads the address from its first line.
fn spawn(args: &[&str]) -> Server {
    let mut child = Command::new(JANUS)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    Server { child, addr }
}

fn serve(runtime_file: &Path, extra: &[&str]) -> Server {
    let file = runtime_file.to_str().unwrap();
    let mut args = vec![
        "serve",
        "--runtime-file",
        file,
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "text",
    ];
    args.extend_from_slice(extra);
    spawn(&args)
}

/// A runtime configuration with trading on at the canary stage (no limits), for `model`.
fn config(model: &str, sha: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::json!({
        "stage": "canary", "candidate": "c1", "promotionRequest": "p1",
        "modelUri": model, "modelSha256": sha,
        "tradingEnabled": "true", "forceFallback": "false",
    })
    .as_object()
    .unwrap()
    .clone()
}

fn write_text(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn write(path: &Path, c: &serde_json::Map<String, serde_json::Value>) {
    write_text(path, &serde_json::Value::Object(c.clone()).to_string());
}

fn event_object(id: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": id, "timestamp": chrono::Utc::now().to_rfc3339(), "symbol": "600000.SH",
        "event_type": "dividend", "title": "dividend raised"
    })
}

fn event(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "event": event_object(id) })).unwrap()
}

fn decide(s: &Server, id: &str) -> serde_json::Value {
    let (status, text) = http(&s.addr, "POST", "/v1/decide", &event(id));
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn runtime(s: &Server) -> serde_json::Value {
    let (status, body) = http(&s.addr, "GET", "/v1/runtime", b"");
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

fn metric(s: &Server, prefix: &str) -> f64 {
    let (_, text) = http(&s.addr, "GET", "/metrics", b"");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(30), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn reason(d: &serde_json::Value) -> (&str, &str) {
    (
        d["source"].as_str().unwrap_or(""),
        d["reason"].as_str().unwrap_or(""),
    )
}

/// Writes trading off while a model load is under way, and returns how long until the first
/// halted decision (decisions are asked back to back).
fn kill_during_load(
    s: &Server,
    file: &Path,
    c: &serde_json::Map<String, serde_json::Value>,
) -> Duration {
    let mut off = c.clone();
    off.insert("tradingEnabled".into(), "false".into());
    off.insert("forceFallback".into(), "true".into());
    write(file, &off);
    let written = Instant::now();
    let mut n = 0;
    loop {
        let d = decide(s, &format!("k{n}"));
        n += 1;
        if d["source"] == "halted" {
            assert_eq!(d["reason"], "trading_disabled", "{d}");
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "the kill switch did not apply while the model loads: {d}"
        );
    }
    let latency = written.elapsed();
    // It stays halted while the load goes on.
    for i in 0..20 {
        assert_eq!(decide(s, &format!("after{i}"))["source"], "halted");
    }
    latency
}

#[test]
fn the_kill_switch_never_waits_for_a_model_load() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("runtime.json");
    let sha = janus::contracts::Sha256Hex::of_bytes(b"a model").to_string();

    // (a) The model is a FIFO nobody writes to: its read never ends.
    let fifo = tmp.path().join("model.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let c = config(fifo.to_str().unwrap(), &sha);
    write(&file, &c);
    let s = serve(&file, &[]);
    wait_until("the configuration is read", || {
        runtime(&s)["model_error"] == "loading the model"
    });
    // Trading on, the fallback decides while the model loads.
    let d = decide(&s, "before");
    assert_eq!(reason(&d), ("fallback", "model_unavailable"), "{d}");
    let hung = kill_during_load(&s, &file, &c);
    assert_eq!(
        runtime(&s)["model_error"],
        "loading the model",
        "the read still hangs"
    );
    // And back on: the flags still apply at once.
    write(&file, &c);
    wait_until("trading resumes", || {
        decide(&s, "again")["source"] == "fallback"
    });
    drop(s);

    // (b) A slow load (10 s of injected delay) of a real model: the switch applies at once, and
    // the model, once loaded, is still installed (the configuration still wants it).
    let dir = trained();
    let model = dir.join("model/model.onnx");
    let sha = janus::contracts::Sha256Hex::of_bytes(&std::fs::read(&model).unwrap()).to_string();
    let c = config(model.to_str().unwrap(), &sha);
    write(&file, &c);
    let s = serve(&file, &["--inject-model-load-delay-ms", "10000"]);
    wait_until("the load starts", || {
        runtime(&s)["model_error"] == "loading the model"
    });
    let slow = kill_during_load(&s, &file, &c);
    wait_until("the model is installed", || {
        runtime(&s)["model"] == "loaded"
    });
    eprintln!(
        "kill switch → first halted decision during a model load: FIFO {hung:?}, slow load {slow:?} (file polled every 50 ms)"
    );
}

#[test]
fn doubtful_configurations_and_requests_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("runtime.json");
    let sha = janus::contracts::Sha256Hex::of_bytes(b"a model").to_string();
    let c = config("missing.onnx", &sha);
    write(&file, &c);
    let s = serve(&file, &[]);
    wait_until("trading", || decide(&s, "ok")["source"] == "fallback");
    assert_eq!(metric(&s, "janus_runtime_config_valid"), 1.0);

    // The same key twice: false then true. Neither counts; trading halts.
    let text = serde_json::Value::Object(c.clone()).to_string();
    let doubled = text.replacen(
        "\"tradingEnabled\":\"true\"",
        "\"tradingEnabled\":\"false\",\"tradingEnabled\":\"true\"",
        1,
    );
    assert_ne!(doubled, text);
    let mut refused = vec![doubled];
    // An unknown key, shadow with trading on.
    let mut unknown = c.clone();
    unknown.insert("tradingEnabledd".into(), "false".into());
    refused.push(serde_json::Value::Object(unknown).to_string());
    let mut shadow = c.clone();
    shadow.insert("stage".into(), "shadow".into());
    refused.push(serde_json::Value::Object(shadow).to_string());
    for (text, says) in refused.iter().zip([
        "duplicate member name",
        "unknown keys",
        "shadow never trades",
    ]) {
        write_text(&file, text);
        wait_until("refused", || {
            reason(&decide(&s, "r")) == ("halted", "no_runtime_config")
        });
        let r = runtime(&s);
        assert!(r["config_error"].as_str().unwrap().contains(says), "{r}");
        assert_eq!(metric(&s, "janus_runtime_config_valid"), 0.0);
        assert_eq!(metric(&s, "janus_trading_enabled"), 0.0);
        // Back to a good one between cases.
        write(&file, &c);
        wait_until("trading again", || decide(&s, "ok")["source"] == "fallback");
    }
    assert!(metric(&s, "janus_runtime_config_refused_total") >= 3.0);

    // A request with two `event` members is refused, not answered for one of them.
    let two = format!(
        "{{\"event\": {}, \"event\": {}}}",
        event_object("one"),
        event_object("two")
    );
    let (status, text) = http(&s.addr, "POST", "/v1/decide", two.as_bytes());
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("duplicate member name"), "{text}");
}

#[test]
fn an_older_lease_epoch_may_not_trade() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("runtime.json");
    let sha = janus::contracts::Sha256Hex::of_bytes(b"a model").to_string();
    let s = {
        let mut c = config("missing.onnx", &sha);
        c.insert("leaseEpoch".into(), "5".into());
        write(&file, &c);
        serve(&file, &[])
    };
    wait_until("epoch 5 trades", || {
        decide(&s, "e5")["source"] == "fallback"
    });
    for (epoch, halted) in [
        (Some("4"), true),
        (None, true),
        (Some("6"), false),
        (Some("5"), true),
    ] {
        let mut c = config("missing.onnx", &sha);
        if let Some(e) = epoch {
            c.insert("leaseEpoch".into(), e.into());
        }
        write(&file, &c);
        wait_until("applied", || {
            runtime(&s)["config"]["leaseEpoch"].as_str() == epoch
        });
        let d = decide(&s, "e");
        if halted {
            assert_eq!(reason(&d), ("halted", "stale_epoch"), "{epoch:?}: {d}");
        } else {
            assert_eq!(d["source"], "fallback", "{epoch:?}: {d}");
        }
    }
    assert_eq!(runtime(&s)["highest_lease_epoch"], 6);
}

/// Threads of a process, from /proc.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

#[test]
fn inference_work_is_bounded() {
    let dir = trained();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("runtime.json");
    let model = dir.join("model/model.onnx");
    let sha = janus::contracts::Sha256Hex::of_bytes(&std::fs::read(&model).unwrap()).to_string();
    write(&file, &config(model.to_str().unwrap(), &sha));
    let s = serve(
        &file,
        &[
            "--timeout-ms",
            "20",
            "--inject-inference-delay-ms",
            "300",
            "--max-inferences-in-flight",
            "4",
        ],
    );
    wait_until("the model loads", || runtime(&s)["model"] == "loaded");
    let before = threads(s.pid());
    let addr = s.addr.clone();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(before));
    let pid = s.pid();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(threads(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut reasons = Vec::new();
                for i in 0..75 {
                    let (status, text) =
                        http(&addr, "POST", "/v1/decide", &event(&format!("c{c}-{i}")));
                    assert_eq!(status, 200, "{text}");
                    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
                    reasons.push(d["reason"].as_str().unwrap().to_string());
                }
                reasons
            })
        })
        .collect();
    let reasons: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(600));
    let after = threads(s.pid());
    let count = |r: &str| reasons.iter().filter(|x| x.as_str() == r).count();
    eprintln!(
        "600 decisions: {} overloaded, {} timed out, {} other; threads {before} before, {peak} at the peak, {after} after",
        count("overloaded"),
        count("inference_timeout"),
        reasons.len() - count("overloaded") - count("inference_timeout"),
    );
    assert_eq!(reasons.len(), 600);
    assert!(count("overloaded") > 0, "never overloaded");
    assert!(count("inference_timeout") > 0, "never timed out");
    assert!(
        reasons
            .iter()
            .all(|r| r == "overloaded" || r == "inference_timeout"),
        "every inference takes 300 ms against a 20 ms budget"
    );
    // At most 4 inferences hold a blocking thread; without the bound there would be hundreds.
    assert!(
        peak <= before + 4 + 8,
        "threads: {before} before, {peak} at the peak"
    );
    assert!(after <= peak);
    assert!(metric(&s, "janus_inference_overloaded_total") >= count("overloaded") as f64);
}

/// Opens `n` connections that send nothing or half a request's headers.
fn hogs(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            if i % 2 == 1 {
                s.write_all(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Le")
                    .unwrap();
            }
            s
        })
        .collect()
}

/// Every hog is closed by the server (end of stream or reset) within the liveness bound.
fn all_closed(hogs: Vec<std::net::TcpStream>) -> Duration {
    let t0 = Instant::now();
    for mut h in hogs {
        h.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match h.read(&mut buf) {
                Ok(0) | Err(_) if t0.elapsed() < Duration::from_secs(20) => break,
                Ok(0) | Err(_) => panic!("a connection without headers was held for 20 s"),
                Ok(_) => {} // a 408 answer before the close
            }
        }
    }
    t0.elapsed()
}

fn answered_despite_hogs(addr: &str, checks: &[(&str, &str, Vec<u8>, u16)]) -> Duration {
    let held = hogs(addr, 150);
    let t0 = Instant::now();
    for (method, path, body, status) in checks {
        let (got, text) = http(addr, method, path, body);
        assert_eq!(got, *status, "{method} {path}: {text}");
    }
    let answered = t0.elapsed();
    let closed = all_closed(held);
    eprintln!(
        "{addr}: answered {answered:?} after 150 idle connections; all of them closed within {closed:?} more"
    );
    answered
}

#[test]
fn idle_connections_cannot_hold_either_service() {
    // A cap below the number of idle clients, so the header timeout has to free the slots.
    let limits = [
        "--max-connections",
        "100",
        "--header-read-timeout-ms",
        "1000",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("runtime.json");
    let sha = janus::contracts::Sha256Hex::of_bytes(b"a model").to_string();
    write(&file, &config("missing.onnx", &sha));
    let s = serve(&file, &limits);
    wait_until("ready", || http(&s.addr, "GET", "/readyz", b"").0 == 200);
    answered_despite_hogs(
        &s.addr,
        &[
            ("GET", "/healthz", vec![], 200),
            ("POST", "/v1/decide", event("x"), 200),
        ],
    );

    let event_car = trained().join("event-car.json");
    let trace = tmp.path().join("trace.jsonl");
    let mut args = vec![
        "reward",
        "serve",
        "--event-car",
        event_car.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--trace",
        trace.to_str().unwrap(),
    ];
    args.extend_from_slice(&limits);
    let r = spawn(&args);
    answered_despite_hogs(
        &r.addr,
        &[
            ("GET", "/healthz", vec![], 200),
            (
                "POST",
                "/v1/rewards",
                br#"{"completions": []}"#.to_vec(),
                200,
            ),
        ],
    );
}
