//! `janus paper`: replays an event stream through a running decision service as a paper broker.
//! Each event is sent as if it arrived now; a decision that trades is filled at the open of the
//! event's first tradable day (d0) and closed at the close `holding_days` later, with costs, as
//! the backtest does. It writes the paper window's runtime statistics (the runtime-stats
//! contract gate0 and gate3 read), a report with PnL and limit actions, and every decision.

use super::http_client::{Conn, percentile};
use super::{CliError, CliResult};
use crate::cli::output::outln;
use crate::contracts::artifact::write_atomically;
use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::{ArtifactKind, read_artifact};
use crate::gates::RuntimeStats;
use crate::labeling::input::parse_price_panel;
use chrono::{NaiveDate, Utc};
use clap::Args;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct PaperArgs {
    /// The decision service, e.g. http://127.0.0.1:8090.
    #[arg(long)]
    pub service: String,
    /// The events to replay: a labelled event-car artifact (janus-event-car-v1), which carries
    /// each event's first tradable day.
    #[arg(long)]
    pub events: PathBuf,
    /// prices.csv (date,symbol,open,close) for the fills.
    #[arg(long)]
    pub prices: PathBuf,
    /// Replay only events whose first tradable day is on or after this date.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Events sent per second (the replay's pace).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Cost per side, in basis points of the notional (the backtest's default).
    #[arg(long, default_value_t = 10.0)]
    pub cost_bps: f64,
    /// Trading days a position is held (open of d0 to the close of d0 + holding − 1).
    #[arg(long, default_value_t = 2)]
    pub holding_days: u32,
    /// Output directory: runtime-paper.json, paper-report.json, decisions.jsonl.
    #[arg(long)]
    pub out: PathBuf,
}

fn fail(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

pub fn run(args: PaperArgs) -> CliResult {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(fail(format!("--rate {} must be > 0", args.rate)));
    }
    let addr = args
        .service
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let artifact: EventCarArtifact = read_artifact(&args.events)?;
    let price_bytes = std::fs::read(&args.prices).map_err(|source| CliError::Io {
        path: args.prices.clone(),
        source,
    })?;
    let (calendar, universe, prices, _) =
        parse_price_panel((&args.prices.display().to_string(), &price_bytes), false)
            .map_err(|e| fail(e.to_string()))?;
    let mut records: Vec<_> = artifact
        .records
        .iter()
        .filter(|r| match (args.from, r.d0) {
            (Some(from), Some(d0)) => d0 >= from,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .collect();
    records.sort_by_key(|r| r.timestamp);
    if records.is_empty() {
        return Err(fail("no events to replay"));
    }
    std::fs::create_dir_all(&args.out).map_err(|source| CliError::Io {
        path: args.out.clone(),
        source,
    })?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let window_start = Utc::now();
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut lines = String::new();
    let (mut latency, mut lateness) = (Vec::new(), Vec::new());
    let mut by_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let (mut errors, mut nulls, mut filled, mut unfilled) = (0u64, 0u64, 0u64, 0u64);
    // Symbol-days that could trade (priced on the event's first tradable day), and those of them
    // the service decided: symbol coverage (runtime::stats::symbol_coverage).
    let (mut could_trade, mut decided_days) = (BTreeSet::new(), BTreeSet::new());
    let (mut pnl, mut cost, mut gross_traded, mut limit_actions) = (0.0f64, 0.0f64, 0.0f64, 0u64);
    let hold = args.holding_days.max(1) as usize;
    runtime.block_on(async {
        let mut conn = Conn::open(&addr).await.ok();
        for (i, r) in records.iter().enumerate() {
            let scheduled = started + interval * i as u32;
            tokio::time::sleep_until(scheduled.into()).await;
            lateness.push(scheduled.elapsed().as_secs_f64() * 1e3);
            if r.title.trim().is_empty() || r.source_event_type.trim().is_empty() {
                nulls += 1;
            }
            let symbol = universe.lookup.get(&r.symbol).map(|s| *s as usize);
            let d0 = r.d0.and_then(|d| calendar.index(d));
            let tradable = match (symbol, d0) {
                (Some(s), Some(d)) if prices.has_row(s, d) => Some((s, d)),
                _ => None,
            };
            if let Some(key) = tradable {
                could_trade.insert(key);
            }
            let body = serde_json::to_vec(&serde_json::json!({"event": {
                "event_id": r.event_id, "timestamp": Utc::now().to_rfc3339(), "symbol": r.symbol,
                "event_type": r.source_event_type, "title": r.title}}))
            .expect("serializes");
            let sent = Instant::now();
            let answer = match conn.as_mut() {
                Some(c) => c.request("POST", "/v1/decide", &body).await,
                None => Err(std::io::Error::other("not connected")),
            };
            let ms = sent.elapsed().as_secs_f64() * 1e3;
            let decision: Option<serde_json::Value> = match answer {
                Ok((200, bytes)) => serde_json::from_slice(&bytes).ok(),
                Ok(_) | Err(_) => None,
            };
            let Some(d) = decision else {
                errors += 1;
                conn = Conn::open(&addr).await.ok();
                lines.push_str(&format!("{}\n", serde_json::json!({"event_id": r.event_id, "error": true})));
                continue;
            };
            latency.push(ms);
            let source = d["source"].as_str().unwrap_or("").to_string();
            let reason = d["reason"].as_str().unwrap_or("").to_string();
            if reason.ends_with("_reduced") || reason.ends_with("_refused") {
                limit_actions += 1;
            }
            if let (Some(key), "model" | "fallback") = (tradable, source.as_str()) {
                decided_days.insert(key);
            }
            *by_source.entry(source).or_default() += 1;
            *by_reason.entry(reason).or_default() += 1;
            let notional = d["notional"].as_f64().unwrap_or(0.0);
            let mut fill = serde_json::Value::Null;
            if notional != 0.0 {
                let price = |s: usize, day: usize, open: bool| {
                    let series = if open { prices.open_of(s) } else { prices.close_of(s) };
                    series.get(day).copied().filter(|p| p.is_finite() && *p > 0.0)
                };
                match (symbol, d0) {
                    (Some(s), Some(d)) if d + hold - 1 < calendar.len() => {
                        match (price(s, d, true), price(s, d + hold - 1, false)) {
                            (Some(entry), Some(exit)) => {
                                let c = notional.abs() * args.cost_bps / 1e4 * 2.0;
                                let p = notional * (exit / entry - 1.0) - c;
                                pnl += p;
                                cost += c;
                                gross_traded += notional.abs();
                                filled += 1;
                                fill = serde_json::json!({"entry_date": calendar.dates[d], "entry": entry,
                                    "exit_date": calendar.dates[d + hold - 1], "exit": exit, "cost": c, "pnl": p});
                            }
                            _ => unfilled += 1,
                        }
                    }
                    _ => unfilled += 1,
                }
            }
            lines.push_str(&format!("{}\n", serde_json::json!({"decision": d, "latency_ms": ms, "fill": fill})));
        }
    });
    let window_end = Utc::now();
    let sent = records.len() as u64;
    let decided: u64 = by_source.get("model").copied().unwrap_or(0)
        + by_source.get("fallback").copied().unwrap_or(0);
    let ratio = |n: u64, d: u64| {
        if d == 0 {
            None
        } else {
            Some(n as f64 / d as f64)
        }
    };
    latency.sort_by(f64::total_cmp);
    lateness.sort_by(f64::total_cmp);
    let stats = RuntimeStats {
        stage: "paper".into(),
        window_start,
        window_end,
        completed: true,
        decisions: sent - errors,
        feature_schema_version: Some(ArtifactKind::EventCar.version().to_string()),
        null_rate: ratio(nulls, sent),
        staleness_p95_ms: Some(percentile(&lateness, 0.95)),
        symbol_coverage: crate::runtime::stats::symbol_coverage(&could_trade, &decided_days),
        error_ratio: ratio(errors, sent),
        fallback_ratio: ratio(by_source.get("fallback").copied().unwrap_or(0), decided)
            .or(Some(0.0)),
        latency_p95_ms: Some(percentile(&latency, 0.95)),
        timeout_ratio: ratio(
            by_reason.get("inference_timeout").copied().unwrap_or(0),
            decided,
        )
        .or(Some(0.0)),
    };
    let json = |v: &serde_json::Value| {
        let mut b = serde_json::to_vec_pretty(v).expect("serializes");
        b.push(b'\n');
        b
    };
    write_atomically(
        &args.out.join("runtime-paper.json"),
        &json(&serde_json::to_value(&stats).expect("serializes")),
    )?;
    let report = serde_json::json!({
        "events": sent, "errors": errors, "decisions_by_source": by_source, "decisions_by_reason": by_reason,
        "limit_actions": limit_actions, "fills": filled, "unfilled": unfilled,
        "gross_traded": gross_traded, "costs": cost, "pnl": pnl,
        "cost_bps": args.cost_bps, "holding_days": hold,
        "window_start": window_start, "window_end": window_end,
    });
    write_atomically(&args.out.join("paper-report.json"), &json(&report))?;
    write_atomically(&args.out.join("decisions.jsonl"), lines.as_bytes())?;
    outln!(
        "replayed {sent} events: {} decisions ({} model, {} fallback, {} suppressed, {} halted), {errors} errors, {filled} fills, PnL {pnl:.2} after {cost:.2} costs, {limit_actions} limit actions; latency p95 {:.2} ms",
        sent - errors,
        by_source.get("model").copied().unwrap_or(0),
        by_source.get("fallback").copied().unwrap_or(0),
        by_source.get("suppressed").copied().unwrap_or(0),
        by_source.get("halted").copied().unwrap_or(0),
        stats.latency_p95_ms.unwrap_or(f64::NAN),
    );
    outln!("wrote {}", args.out.join("runtime-paper.json").display());
    Ok(ExitCode::SUCCESS)
}
