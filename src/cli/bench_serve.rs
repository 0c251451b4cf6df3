//! `janus bench serve`: a bounded open-loop load test of the decision service on 127.0.0.1.
//! It trains the reference model on a small generated dataset, starts `janus serve` as a child
//! process, sends events at a fixed rate over keep-alive connections (each request's latency is
//! measured from when it was *scheduled*, so a slow server cannot hide its queueing), flips the
//! kill switch in the runtime file part-way, and reports latency percentiles, the timeout,
//! fallback and error ratios, and how long after the flip decisions stopped.

use super::http_client::Conn;
use super::{CliError, CliResult};
use crate::cli::output::{errln, outln};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Outcome {
    scheduled: Duration,
    done: Duration,
    status: u16,
    source: String,
    reason: String,
    server_ms: f64,
}

fn fail(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

fn janus(exe: &Path, args: &[&str]) -> Result<(), CliError> {
    let out = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| fail(format!("janus {args:?}: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "janus {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

fn write_runtime(dir: &Path, sha: &str, trading: bool) -> Result<(), CliError> {
    let data = serde_json::json!({
        "stage": "paper", "candidate": "bench", "promotionRequest": "bench",
        "modelUri": "model/model.onnx", "modelSha256": sha, "historyUri": "event-car.json",
        "tradingEnabled": trading.to_string(), "forceFallback": "false",
    });
    let tmp = dir.join("runtime.json.tmp");
    std::fs::write(&tmp, data.to_string()).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, dir.join("runtime.json")).map_err(|e| fail(e.to_string()))
}

use super::http_client::percentile;

pub fn bench_serve(
    rate: u32,
    seconds: u32,
    connections: usize,
    kill_at: Option<f64>,
    timeout_ms: u64,
) -> CliResult {
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let scratch = std::env::temp_dir().join(format!("janus-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| fail(e.to_string()))?;
    let p = |f: &str| scratch.join(f).to_str().unwrap_or_default().to_string();
    errln!("training the reference model in {}", scratch.display());
    janus(
        &exe,
        &[
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
        ],
    )?;
    janus(&exe, &["label", "--dataset", &p("data"), "--out", &p(".")])?;
    janus(
        &exe,
        &[
            "train",
            "sft",
            "--event-car",
            &p("event-car.json"),
            "--out",
            &p("model"),
        ],
    )?;
    let onnx = std::fs::read(scratch.join("model/model.onnx")).map_err(|e| fail(e.to_string()))?;
    let sha = crate::contracts::Sha256Hex::of_bytes(&onnx).to_string();
    write_runtime(&scratch, &sha, true)?;

    let events: Vec<(String, String)> = {
        let text = std::fs::read_to_string(scratch.join("data/events.csv"))
            .map_err(|e| fail(e.to_string()))?;
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        reader
            .records()
            .filter_map(Result::ok)
            .take(2000)
            .map(|r| (r[3].to_string(), r[4].to_string()))
            .collect()
    };
    let mut child = Command::new(&exe)
        .args([
            "serve",
            "--runtime-file",
            &p("runtime.json"),
            "--listen",
            "127.0.0.1:0",
            "--timeout-ms",
            &timeout_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("janus serve: {e}")))?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().ok_or_else(|| fail("no stdout"))?),
        &mut line,
    )
    .map_err(|e| fail(e.to_string()))?;
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap_or_default()
        .to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let result = runtime.block_on(async {
        // Wait for the model.
        let t0 = Instant::now();
        loop {
            if let Ok(mut c) = Conn::open(&addr).await
                && let Ok((200, body)) = c.request("GET", "/v1/runtime", b"").await
                && serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["model"] == "loaded")
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(fail("the service never loaded the model"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let total = rate as usize * seconds as usize;
        let (tx, rx) = async_channel(total);
        let results = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(total)));
        let start = tokio::time::Instant::now();
        let mut workers = Vec::new();
        for _ in 0..connections.max(1) {
            let rx = rx.clone();
            let addr = addr.clone();
            let results = results.clone();
            workers.push(tokio::spawn(async move {
                let mut conn = Conn::open(&addr).await.ok();
                while let Some((scheduled, body)) = recv(&rx).await {
                    let outcome = match conn.as_mut() {
                        None => Err(std::io::Error::other("no connection")),
                        Some(c) => c.request("POST", "/v1/decide", &body).await,
                    };
                    let done = start.elapsed();
                    let o = match outcome {
                        Ok((status, body)) => {
                            let v: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            Outcome {
                                scheduled,
                                done,
                                status,
                                source: v["source"].as_str().unwrap_or("").to_string(),
                                reason: v["reason"].as_str().unwrap_or("").to_string(),
                                server_ms: v["latency_ms"].as_f64().unwrap_or(f64::NAN),
                            }
                        }
                        Err(_) => {
                            conn = Conn::open(&addr).await.ok();
                            Outcome {
                                scheduled,
                                done,
                                status: 0,
                                source: String::new(),
                                reason: String::new(),
                                server_ms: f64::NAN,
                            }
                        }
                    };
                    results.lock().await.push(o);
                }
            }));
        }
        let mut flipped: Option<Duration> = None;
        for i in 0..total {
            let at = Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(start + at).await;
            if flipped.is_none() && kill_at.is_some_and(|k| at.as_secs_f64() >= k) {
                write_runtime(&scratch, &sha, false)?;
                flipped = Some(start.elapsed());
            }
            let (t, title) = &events[i % events.len()];
            let body = serde_json::to_vec(&serde_json::json!({"event": {
                "event_id": format!("b{i}"), "timestamp": chrono::Utc::now().to_rfc3339(),
                "symbol": "600000.SH", "event_type": t, "title": title}}))
            .expect("serializes");
            send(&tx, (at, body));
        }
        close(&tx);
        for w in workers {
            let _ = w.await;
        }
        let results = std::mem::take(&mut *results.lock().await);
        Ok((results, flipped))
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&scratch);
    let (results, flipped) = result?;
    report(&results, flipped, rate, seconds, connections, timeout_ms);
    Ok(ExitCode::SUCCESS)
}

fn report(
    results: &[Outcome],
    flipped: Option<Duration>,
    rate: u32,
    seconds: u32,
    connections: usize,
    timeout_ms: u64,
) {
    let before: Vec<&Outcome> = results
        .iter()
        .filter(|o| flipped.is_none_or(|f| o.scheduled < f))
        .collect();
    let mut client: Vec<f64> = before
        .iter()
        .map(|o| (o.done - o.scheduled).as_secs_f64() * 1e3)
        .collect();
    client.sort_by(f64::total_cmp);
    let mut server: Vec<f64> = before
        .iter()
        .map(|o| o.server_ms)
        .filter(|x| x.is_finite())
        .collect();
    server.sort_by(f64::total_cmp);
    let n = before.len().max(1) as f64;
    let count = |f: &dyn Fn(&Outcome) -> bool| before.iter().filter(|o| f(o)).count();
    let errors = count(&|o| o.status != 200);
    let timeouts = count(&|o| o.reason == "inference_timeout");
    let fallbacks = count(&|o| o.source == "fallback");
    let model = count(&|o| o.source == "model");
    let elapsed = results.iter().map(|o| o.done).max().unwrap_or_default();
    outln!(
        "janus bench serve: {rate} req/s for {seconds} s over {connections} connections, budget {timeout_ms} ms, 127.0.0.1"
    );
    outln!(
        "  sent {} requests in {:.1} s ({:.0} req/s achieved)",
        results.len(),
        elapsed.as_secs_f64(),
        results.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    outln!(
        "  before the kill switch: {} decisions — model {model}, fallback {fallbacks}, errors {errors}",
        before.len()
    );
    outln!(
        "  latency from schedule (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        percentile(&client, 0.5),
        percentile(&client, 0.9),
        percentile(&client, 0.99),
        client.last().copied().unwrap_or(f64::NAN)
    );
    outln!(
        "  service-side latency (ms): p50 {:.3}  p99 {:.3}",
        percentile(&server, 0.5),
        percentile(&server, 0.99)
    );
    outln!(
        "  timeout ratio {:.5}  fallback ratio {:.5}  error ratio {:.5}",
        timeouts as f64 / n,
        fallbacks as f64 / n,
        errors as f64 / n
    );
    if let Some(f) = flipped {
        let first_halt = results
            .iter()
            .filter(|o| o.source == "halted")
            .map(|o| o.done)
            .min();
        match first_halt {
            Some(h) => {
                let trading_after = results
                    .iter()
                    .filter(|o| o.scheduled >= h && o.source != "halted")
                    .count();
                outln!(
                    "  kill switch: runtime file rewritten at {:.3} s; first halted decision {:.1} ms later; {} non-halted decisions scheduled after it",
                    f.as_secs_f64(),
                    (h.saturating_sub(f)).as_secs_f64() * 1e3,
                    trading_after
                );
            }
            None => outln!("  kill switch: no decision was ever halted"),
        }
    }
}

// A multi-consumer queue from tokio's primitives: the scheduler pushes, workers pull.
type Job = (Duration, Vec<u8>);
struct Queue {
    items: std::sync::Mutex<(std::collections::VecDeque<Job>, bool)>,
    notify: tokio::sync::Notify,
}
fn async_channel(capacity: usize) -> (Arc<Queue>, Arc<Queue>) {
    let q = Arc::new(Queue {
        items: std::sync::Mutex::new((std::collections::VecDeque::with_capacity(capacity), false)),
        notify: tokio::sync::Notify::new(),
    });
    (q.clone(), q)
}
fn send(q: &Arc<Queue>, job: Job) {
    q.items.lock().expect("not poisoned").0.push_back(job);
    q.notify.notify_one();
}
fn close(q: &Arc<Queue>) {
    q.items.lock().expect("not poisoned").1 = true;
    q.notify.notify_waiters();
}
async fn recv(q: &Arc<Queue>) -> Option<Job> {
    loop {
        let notified = q.notify.notified();
        {
            let mut items = q.items.lock().expect("not poisoned");
            if let Some(job) = items.0.pop_front() {
                return Some(job);
            }
            if items.1 {
                return None;
            }
        }
        notified.await;
    }
}
