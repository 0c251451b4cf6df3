//! Adversary findings for issue 17 ("Numbers a quant can trust"). Each test states the expected
//! behaviour with its independent source (a hand computation, the methodology text, or a
//! figure computed in Python from the product's own reported positions) and fails today; they
//! are `#[ignore]`d so the branch stays green. Run them with
//! `cargo test --test adversary17 -- --ignored`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const JANUS: &str = env!("CARGO_BIN_EXE_janus");

fn janus(args: &[&str]) -> Output {
    Command::new(JANUS).args(args).output().expect("runs janus")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adversary17/wipeout")
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn write_nav(dir: &Path, name: &str, navs: &[f64]) -> PathBuf {
    let mut text = String::from("date,nav\n");
    for (i, v) in navs.iter().enumerate() {
        text.push_str(&format!("2024-01-{:02},{v:?}\n", i + 1));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// NAV of a noisy series: 60 returns from a fixed LCG, mean ≈ 0.001, std ≈ 0.01.
fn noisy_nav() -> Vec<f64> {
    let mut state: u64 = 12345;
    let mut nav = vec![1.0];
    for _ in 0..60 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (state >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let r = 0.001 + 0.02 * (u - 0.5) * 1.7;
        nav.push(nav.last().unwrap() * (1.0 + r));
    }
    nav
}

/// Labels and evaluates the fixture (a short leg that loses 9.19× its notional: ruin) with
/// `predictions` and optional evaluation config; returns the output directory.
fn evaluate_wipeout(dir: &Path, predictions: &str, config: Option<&str>) -> PathBuf {
    let data = fixture();
    let label = dir.join("label");
    let out = janus(&[
        "label",
        "--dataset",
        data.to_str().unwrap(),
        "--out",
        label.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preds = dir.join("predictions.jsonl");
    std::fs::write(&preds, predictions).unwrap();
    let eval = dir.join("eval");
    let car = label.join("event-car.json");
    let prices = data.join("prices.csv");
    let mut args = vec![
        "evaluate",
        "--event-car",
        car.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
        "--prices",
        prices.to_str().unwrap(),
        "--out",
        eval.to_str().unwrap(),
    ];
    let cfg = dir.join("eval-config.yaml");
    if let Some(c) = config {
        std::fs::write(&cfg, c).unwrap();
        args.extend(["--config", cfg.to_str().unwrap()]);
    }
    let out = janus(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eval
}

fn wipeout_predictions() -> String {
    std::fs::read_to_string(fixture().join("predictions.jsonl")).unwrap()
}

/// Finding 1. methodology §3: a ruined series has no SR, and "such a series has no SR, no
/// bootstrap interval". NAV 1 → 0.5 → −0.3 (ruin on day 2): `janus metrics --json` prints
/// `sr: null` (reason ruin) yet `sr_ci: {ci_lower: -30.3, ci_upper: 0.0, p_value: 1.0}` and the
/// table says "SR n/a ... SR 95% CI [-30.3059, 0.0000]".
#[test]
fn ruined_series_has_no_sharpe_interval() {
    let dir = tempfile::tempdir().unwrap();
    let nav = write_nav(dir.path(), "nav.csv", &[1.0, 0.5, -0.3]);
    let out = janus(&[
        "metrics",
        "--nav",
        nav.to_str().unwrap(),
        "--bootstrap",
        "200",
        "--json",
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["sr"].is_null(), "{v}");
    assert!(
        v["sr_ci"].is_null(),
        "a ruined series got an SR interval: {}",
        v["sr_ci"]
    );
    assert!(
        v["null_reasons"]["sr_ci"]
            .as_str()
            .is_some_and(|r| r.starts_with("ruin")),
        "{}",
        v["null_reasons"]
    );
}

/// Finding 2a. `--block-length NaN` is accepted (the check `block_length < 1.0` is false for
/// NaN) and silently runs the i.i.d. bootstrap; a NaN setting must be a usage error (exit 2),
/// as `--confidence NaN` already is.
#[test]
fn nan_block_length_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let nav = write_nav(dir.path(), "nav.csv", &noisy_nav());
    let out = janus(&[
        "metrics",
        "--nav",
        nav.to_str().unwrap(),
        "--bootstrap",
        "200",
        "--block-length",
        "NaN",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Finding 2b. A block length at or beyond the series' length makes every stationary-bootstrap
/// resample a rotation of the series, whose SR equals the original: the interval collapses to
/// the point estimate and p = 1/(B+1). Evaluate accepts `bootstrap.block_length: 1.0e9` and on
/// the demo's small scenario (seed 1) turns ΔSR p = 0.058 into p < 0.001, CI [2.1992, 2.1992],
/// so gate1's significance check passes on a degenerate bootstrap. Expected: refused (exit 2)
/// or an interval of positive width whose p-value is not the minimum possible.
#[test]
fn block_length_beyond_the_series_gives_no_false_significance() {
    let dir = tempfile::tempdir().unwrap();
    let nav = write_nav(dir.path(), "nav.csv", &noisy_nav());
    let out = janus(&[
        "metrics",
        "--nav",
        nav.to_str().unwrap(),
        "--bootstrap",
        "200",
        "--block-length",
        "1e9",
        "--json",
    ]);
    if out.status.code() == Some(2) {
        return;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ci = &v["sr_ci"];
    let width = ci["ci_upper"].as_f64().unwrap() - ci["ci_lower"].as_f64().unwrap();
    assert!(
        width > 1e-6,
        "degenerate interval {ci} for a series with dispersion"
    );
    assert!(
        ci["p_value"].as_f64().unwrap() > 1.0 / 201.0 + 1e-12,
        "{ci}"
    );
}

/// Finding 3. methodology §3 lists turnover as null on "no evaluated day, or ruin"; on the
/// wipe-out fixture (ruin on the last day) evaluation.json has turnover 0.016111… with no reason.
#[test]
fn turnover_is_null_with_reason_on_ruin() {
    let dir = tempfile::tempdir().unwrap();
    let eval = evaluate_wipeout(dir.path(), &wipeout_predictions(), None);
    let e = json(&eval.join("evaluation.json"));
    let c = &e["candidate"];
    assert!(!c["metrics"]["ruin"].is_null(), "fixture must be ruined");
    assert!(
        c["turnover"].is_null(),
        "turnover {} on a ruined book",
        c["turnover"]
    );
    assert!(
        c["null_reasons"]["turnover"]
            .as_str()
            .is_some_and(|r| r.contains("ruin"))
    );
}

/// Finding 4. The wipe-out book opened two positions of notional 0.25 each (evaluation.json's
/// own `positions`) at NAV 1: gross exposure 0.5 × NAV at least, 2.80 at the close before the
/// exits (0.2545 + 2.5484, from the fixture's opens and closes in Python). The report prints
/// "max gross exposure (× NAV) 0.0000": the ruin day's exposure is skipped because equity ≤ 0.
/// Expected: at least 0.5, or null with the reason ruin — never 0 for a book that traded.
#[test]
fn gross_exposure_of_a_ruined_book_is_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let eval = evaluate_wipeout(dir.path(), &wipeout_predictions(), None);
    let c = &json(&eval.join("evaluation.json"))["candidate"];
    match c["gross_exposure_max"].as_f64() {
        None => assert!(c["null_reasons"]["gross_exposure_max"].is_string()),
        Some(g) => assert!(
            g >= 0.5,
            "max gross exposure {g} for a book holding 0.5 × NAV"
        ),
    }
}

/// Finding 5. Counts print as integers (issue 17): report.md's ruin row reads
/// `| ruin (NAV ≤ 0) | 1.0000 | 0.0000 |`.
#[test]
fn ruin_count_prints_as_an_integer() {
    let dir = tempfile::tempdir().unwrap();
    let eval = evaluate_wipeout(dir.path(), &wipeout_predictions(), None);
    let report = std::fs::read_to_string(eval.join("report.md")).unwrap();
    let row = report
        .lines()
        .find(|l| l.starts_with("| ruin"))
        .expect("ruin row");
    assert!(!row.contains("1.0000") && !row.contains("0.0000"), "{row}");
}

/// Finding 6. Regime slices of a ruined book: the `low_volatility` slice holds the ruin day's
/// return of −229.7 % (NAV 1 → −1.297) and is reported as SR −1.9394, a Sharpe ratio of a series
/// the methodology says has none; and the walk-forward reports "negative-fold ratio 0.00" for a
/// book that lost 2.3× its capital (the ruin day falls in no fold). Expected: the slice holding
/// the ruin has SR null (reason ruin), and a ruined book's walk-forward is not a clean pass.
#[test]
fn regime_and_fold_figures_of_a_ruined_book_are_not_reported_as_sharpe_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let eval = evaluate_wipeout(dir.path(), &wipeout_predictions(), None);
    let e = json(&eval.join("evaluation.json"));
    let text = e["regimes"].to_string();
    assert!(
        text.contains("ruin"),
        "no regime slice says ruin: {}",
        &text[..text.len().min(600)]
    );
    let wf = &e["walk_forward"];
    assert!(
        wf["negative_fold_ratio"].as_f64() != Some(0.0),
        "ruined book, walk-forward {wf}"
    );
}

/// Finding 7. Zero walk-forward folds (evaluated window shorter than train + test days) are
/// reported as `negative_fold_ratio: 1`, `fold_pnl_cv: 1000000` in the evidence with no
/// null reason (report.md: "0 folds; negative-fold ratio 1.00; coefficient of variation of fold
/// returns 1000000.00"). With no fold both are undefined: null with a reason.
#[test]
fn zero_folds_have_null_walk_forward_statistics() {
    let dir = tempfile::tempdir().unwrap();
    // Only the long leg trades: no ruin.
    let preds = concat!(
        r#"{"event_id":"sq-long","direction":"long","event_type":"dividend","strength":"strong","car_estimate":0.03}"#,
        "\n",
        r#"{"event_id":"sq-short","direction":"hold","event_type":"dividend","strength":"weak","car_estimate":0.0}"#,
        "\n"
    );
    let eval = evaluate_wipeout(
        dir.path(),
        preds,
        Some("walk_forward:\n  train_days: 10000\n"),
    );
    let ev = json(&eval.join("evidence.json"));
    let wf = &ev["walk_forward"];
    assert_eq!(wf["folds"], 0, "{wf}");
    assert!(wf["negative_fold_ratio"].is_null(), "{wf}");
    assert!(wf["fold_pnl_cv"].is_null(), "{wf}");
    let reasons = ev["null_reasons"].to_string();
    assert!(reasons.contains("negative_fold_ratio"), "{reasons}");
}

/// Finding 8. `janus demo` wrote its files one at a time, so an interrupted re-run into the
/// same directory left the new run's evaluation-grpo/ beside the previous run's summary.md
/// (observed with kill -9 after ~11 s: new evidence SR −0.164 beside an old summary saying
/// 0.7325). Expected (issue 17: "a set of outputs is committed as a set"): whenever the re-run
/// is killed, the folder holds one run's set — the old one whole, or the new one whole.
#[test]
fn an_interrupted_demo_leaves_no_mixed_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let small = ["--symbols", "200", "--days", "300", "--events", "3000"];
    let args = |seed: &'static str| {
        let mut args = vec![
            "demo".to_string(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--seed".into(),
            seed.into(),
        ];
        args.extend(small.iter().map(|a| a.to_string()));
        args
    };
    assert!(
        Command::new(JANUS)
            .args(args("1"))
            .output()
            .unwrap()
            .status
            .success()
    );
    let old_summary = std::fs::read(out.join("summary.md")).unwrap();
    let old_evidence = std::fs::read(out.join("evaluation-grpo/evidence.json")).unwrap();
    // Killed at several points of the re-run (SIGKILL: nothing of it runs after the signal).
    for after_ms in [1_500u64, 4_000, 8_000] {
        let mut child = Command::new(JANUS)
            .args(args("2"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        let _ = child.kill();
        let _ = child.wait();
        let evidence = std::fs::read(out.join("evaluation-grpo/evidence.json")).unwrap();
        let summary = std::fs::read(out.join("summary.md")).unwrap();
        assert_eq!(
            evidence == old_evidence,
            summary == old_summary,
            "killed after {after_ms} ms: evaluation-grpo/evidence.json and summary.md come from \
             different runs"
        );
    }
}

/// Finding 9. The issue asks for charts a researcher expects: CAR around the event window by
/// event type, a calibration (reliability) diagram and the bootstrap distribution of ΔSR. The
/// demo writes only nav-all.svg and, per model, nav/drawdown/folds/regimes.svg.
#[test]
fn demo_draws_car_calibration_and_bootstrap_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = janus(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--symbols",
        "200",
        "--days",
        "300",
        "--events",
        "3000",
    ]);
    assert!(o.status.success());
    let mut svgs = Vec::new();
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "svg") {
                svgs.push(p.file_name().unwrap().to_string_lossy().to_lowercase());
            }
        }
    }
    // The calibration diagram is drawn as a reliability diagram (its standard name).
    for kind in ["car", "reliability", "bootstrap"] {
        assert!(
            svgs.iter().any(|s| s.contains(kind)),
            "no {kind} chart among {svgs:?}"
        );
    }
}

/// Finding 10. docs/data-formats.md: "A `janus label` run that labels none of its events writes
/// the artifact for inspection and exits 1". A header-only events.csv labels none and exits 0
/// ("events 0  labelled 0").
#[test]
fn label_with_no_events_does_not_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["prices.csv", "indices.csv", "universe.csv"] {
        std::fs::copy(fixture().join(f), data.join(f)).unwrap();
    }
    std::fs::write(
        data.join("events.csv"),
        "event_id,timestamp,symbol,event_type,title\n",
    )
    .unwrap();
    let out = janus(&[
        "label",
        "--dataset",
        data.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Finding 11. An unterminated quoted field (`"long, leg` — the record's closing quote
/// missing) is accepted as the title `long, leg`; RFC 4180 and docs/data-formats.md ("fields
/// may be quoted", "a record is one line") make it a malformed row, fatal under --strict.
#[test]
fn unterminated_quote_is_a_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["prices.csv", "indices.csv", "universe.csv"] {
        std::fs::copy(fixture().join(f), data.join(f)).unwrap();
    }
    std::fs::write(
        data.join("events.csv"),
        "event_id,timestamp,symbol,event_type,title\n\
         sq-long,2023-10-16T08:00:00+08:00,600000.SH,dividend,\"long, leg\n",
    )
    .unwrap();
    let out = janus(&[
        "label",
        "--dataset",
        data.to_str().unwrap(),
        "--strict",
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Finding 12. A malformed prediction line is named by file and line but not by field, and the
/// message carries serde's own "line 1 column 104" for file line 2 ("skipped p.jsonl:2: invalid
/// number at line 1 column 104"). Issue 17: errors name file, line and field.
#[test]
fn malformed_prediction_error_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let preds = wipeout_predictions().replace("\"car_estimate\":-0.03", "\"car_estimate\":NaN");
    let data = fixture();
    let label = dir.path().join("label");
    assert!(
        janus(&[
            "label",
            "--dataset",
            data.to_str().unwrap(),
            "--out",
            label.to_str().unwrap()
        ])
        .status
        .success()
    );
    let p = dir.path().join("p.jsonl");
    std::fs::write(&p, preds).unwrap();
    let out = janus(&[
        "evaluate",
        "--event-car",
        label.join("event-car.json").to_str().unwrap(),
        "--predictions",
        p.to_str().unwrap(),
        "--prices",
        data.join("prices.csv").to_str().unwrap(),
        "--out",
        dir.path().join("eval").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("p.jsonl:2"))
        .expect("line 2 named");
    assert!(line.contains("car_estimate"), "{line}");
    assert!(!line.contains("line 1 column"), "{line}");
}

/// Finding 13. `janus metrics --bootstrap 1` prints a "95% CI" from a single resample
/// ([1.1843, 1.1843], p 0.5) while `evaluate` refuses fewer than 100 resamples
/// (`bootstrap.resamples must be at least 100`). Same rule for both: exit 2.
#[test]
fn metrics_refuses_too_few_resamples_like_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let nav = write_nav(dir.path(), "nav.csv", &noisy_nav());
    let out = janus(&[
        "metrics",
        "--nav",
        nav.to_str().unwrap(),
        "--bootstrap",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
