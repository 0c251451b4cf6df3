//! Labeling against hand computation, planted truth, and its failure modes.

use chrono::NaiveDate;
use janus::contracts::event_car::UnlabelledReason;
use janus::contracts::label::{Sign, Strength};
use janus::labeling::input::{Dataset, Sources};
use janus::labeling::{LabelingConfig, label, neutralize, returns};
use janus::scenario::{ScenarioConfig, generate, trading_days};
use janus::taxonomy::EventType;
use std::fmt::Write as _;

struct Files {
    prices: String,
    indices: String,
    universe: String,
    factors: Option<String>,
    events: String,
}

impl Files {
    fn parse(&self) -> Dataset {
        Dataset::parse(
            &Sources {
                prices: ("prices.csv", self.prices.as_bytes()),
                indices: ("indices.csv", self.indices.as_bytes()),
                universe: ("universe.csv", self.universe.as_bytes()),
                factors: self.factors.as_ref().map(|f| ("factors.csv", f.as_bytes())),
                events: ("events.csv", self.events.as_bytes()),
                events_format: None,
            },
            true,
        )
        .unwrap()
    }
}

/// One stock and its index over 200 weekdays from 2024-01-01, with a halt and two events.
fn hand_made() -> (Files, Vec<NaiveDate>, Vec<f64>, Vec<Option<f64>>) {
    let dates = trading_days(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(), 200);
    let index: Vec<f64> = (0..200)
        .map(|t| 100.0 * (1.0 + 0.01 * ((t as f64) * 0.7).sin()) + t as f64 * 0.05)
        .collect();
    let halted = [150usize, 151];
    let stock: Vec<Option<f64>> = (0..200)
        .map(|t| {
            (!halted.contains(&t)).then(|| {
                20.0 * (1.0 + 0.015 * ((t as f64) * 0.7).sin() + 0.004 * ((t as f64) * 1.9).cos())
                    + t as f64 * 0.01
            })
        })
        .collect();
    let mut prices = String::from("date,symbol,open,close\n");
    let mut indices = String::from("date,index,close\n");
    for t in 0..200 {
        writeln!(indices, "{},IDX,{}", dates[t], index[t]).unwrap();
        if let Some(c) = stock[t] {
            writeln!(prices, "{},AAA,{},{}", dates[t], c * 0.999, c).unwrap();
        }
    }
    // Event 1 at 10:00 local on day 170: d0 = day 171. Event 2 (same symbol) on day 140 at
    // 08:00 local: d0 = day 140; its window days are excluded from event 1's estimation window.
    let events = format!(
        "event_id,timestamp,symbol,event_type,title\n\
         e1,{}T10:00:00+08:00,AAA,分红转送,t\n\
         e2,{}T00:00:00Z,AAA,violation,t\n",
        dates[170], dates[140]
    );
    (
        Files {
            prices,
            indices,
            universe: "symbol,index,industry\nAAA,IDX,bank\n".into(),
            factors: None,
            events,
        },
        dates,
        index,
        stock,
    )
}

#[test]
fn car_market_model_matches_an_independent_computation() {
    let (files, _, index, stock) = hand_made();
    let config = LabelingConfig {
        estimation_window: 60,
        buffer: 5,
        min_observations: 30,
        event_window: 3,
        ..LabelingConfig::default()
    };
    let labeled = label(&files.parse(), &config);
    let e1 = &labeled.records[0];

    // Straightforward recomputation: d0 = 171, window [171−5−60, 171−5) = [106, 166), minus the
    // days of e2's event window (140, 141, 142), minus returns touching the halt (150, 151, 152).
    let r = |t: usize| -> Option<f64> { Some(stock[t]? / stock[t - 1]? - 1.0) };
    let rm = |t: usize| index[t] / index[t - 1] - 1.0;
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for t in 106..166 {
        if (140..143).contains(&t) {
            continue;
        }
        if let Some(y) = r(t) {
            let x = rm(t);
            n += 1.0;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
    }
    assert_eq!(n, 54.0);
    let beta = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    let alpha = (sy - beta * sx) / n;
    let car: f64 = (171..174)
        .map(|t| r(t).unwrap() - alpha - beta * rm(t))
        .sum();

    let fit = e1.fit.as_ref().unwrap();
    assert_eq!(fit.observations, 54);
    assert!((fit.beta - beta).abs() < 1e-9, "{} vs {beta}", fit.beta);
    assert!((fit.alpha - alpha).abs() < 1e-9);
    assert!((e1.car_market_model.unwrap() - car).abs() < 1e-9);
    let label = e1.label.as_ref().unwrap();
    assert_eq!(
        label.car,
        e1.car_market_model.unwrap(),
        "no factors: car = car_market_model"
    );
    assert_eq!(label.event_type, EventType::Dividend);
    assert_eq!(
        label.direction,
        if car > 0.0 {
            Sign::Positive
        } else {
            Sign::Negative
        }
    );
    assert_eq!(
        label.strength,
        if car.abs() >= 0.02 {
            Strength::Strong
        } else {
            Strength::Weak
        }
    );
    assert_eq!(e1.window.len(), 3);
    assert_eq!(e1.d0, Some(e1.window[0].date));
    assert!(!labeled.method.neutralized);
}

#[test]
fn alignment_uses_the_session_open_in_exchange_time() {
    let (mut files, dates, _, _) = hand_made();
    // dates[4] is a Friday (2024-01-05); the next trading day is Monday dates[5].
    let friday = dates[4];
    files.events = format!(
        "event_id,timestamp,symbol,event_type,title\n\
         before,{friday}T09:29:59+08:00,AAA,x,t\n\
         at,{friday}T09:30:00+08:00,AAA,x,t\n\
         utc,{friday}T01:29:00Z,AAA,x,t\n\
         weekend,2024-01-06T12:00:00+08:00,AAA,x,t\n\
         newyork,{}T21:00:00-05:00,AAA,x,t\n",
        dates[3]
    );
    let labeled = label(&files.parse(), &LabelingConfig::default());
    let d0: Vec<_> = labeled.records.iter().map(|r| r.d0.unwrap()).collect();
    // 21:00 New York on Thursday is 10:00 Friday in Shanghai: after the open, so Monday.
    assert_eq!(d0, vec![friday, dates[5], friday, dates[5], dates[5]]);
}

#[test]
fn unlabelled_events_keep_their_record_and_reason() {
    let (mut files, dates, _, _) = hand_made();
    files.universe.push_str("FLAT,IDX2,bank\n");
    for d in &dates {
        writeln!(files.indices, "{d},IDX2,100").unwrap();
        writeln!(files.prices, "{d},FLAT,10,10").unwrap();
    }
    // A day whose prices sort after the halt keeps them in order per symbol; rows per symbol
    // must increase, so FLAT rows are appended after AAA's.
    files.events = format!(
        "event_id,timestamp,symbol,event_type,title\n\
         unknown,{}T10:00:00+08:00,ZZZ,dividend,t\n\
         early,{}T10:00:00+08:00,AAA,dividend,t\n\
         halted,{}T10:00:00+08:00,AAA,dividend,t\n\
         late,{}T10:00:00+08:00,AAA,dividend,t\n\
         flat,{}T10:00:00+08:00,FLAT,并购,t\n",
        dates[100], dates[20], dates[149], dates[199], dates[100]
    );
    let labeled = label(&files.parse(), &LabelingConfig::default());
    let reasons: Vec<_> = labeled
        .records
        .iter()
        .map(|r| r.unlabelled_reason)
        .collect();
    assert_eq!(
        reasons,
        vec![
            Some(UnlabelledReason::UnknownSymbol),
            Some(UnlabelledReason::InsufficientHistory),
            Some(UnlabelledReason::MissingPrices),
            Some(UnlabelledReason::OutsideCalendar),
            Some(UnlabelledReason::DegenerateRegression),
        ]
    );
    assert!(labeled.records.iter().all(|r| r.label.is_none()));
    let s = &labeled.summary;
    assert_eq!(s.events, 5);
    assert_eq!(s.labelled, 0);
    assert_eq!(s.unlabelled_by_reason["unknown_symbol"], 1);
    assert_eq!(s.unknown_event_types["并购"], 1);
    assert_eq!(s.by_event_type["dividend"], 4);
}

fn scenario_files(cfg: &ScenarioConfig) -> (Files, janus::scenario::Truth) {
    let s = generate(cfg);
    (
        Files {
            prices: s.prices_csv,
            indices: s.indices_csv,
            universe: s.universe_csv,
            factors: s.factors_csv,
            events: s.events_csv,
        },
        s.truth,
    )
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn labeling_recovers_what_the_scenario_planted() {
    let cfg = ScenarioConfig {
        seed: 11,
        symbols: 800,
        days: 400,
        events: 12_000,
        factors: true,
    };
    let (files, truth) = scenario_files(&cfg);
    let data = files.parse();
    let labeled = label(&data, &LabelingConfig::default());

    // α and β: event-window fits over ~120 days have a sampling error of about 0.2 in β (noise
    // ≈ 2.5% a day against an index moving ≈ 1.1%); over thousands of fits the mean error
    // vanishes and the estimates track the truth.
    let (mut beta_hat, mut beta_true, mut alpha_err) = (Vec::new(), Vec::new(), Vec::new());
    for r in &labeled.records {
        if let (Some(fit), Some(t)) = (&r.fit, truth.symbols.get(&r.symbol)) {
            beta_hat.push(fit.beta);
            beta_true.push(t.beta);
            alpha_err.push(fit.alpha - t.alpha);
        }
    }
    let n = beta_hat.len() as f64;
    assert!(n > 5000.0);
    let beta_bias = beta_hat
        .iter()
        .zip(&beta_true)
        .map(|(h, t)| h - t)
        .sum::<f64>()
        / n;
    let alpha_bias = alpha_err.iter().sum::<f64>() / n;
    eprintln!(
        "fits {n}: mean β error {beta_bias:.4}, mean α error {alpha_bias:.6}, corr(β̂, β) {:.3}",
        correlation(&beta_hat, &beta_true)
    );
    assert!(beta_bias.abs() < 0.02, "mean β error {beta_bias}");
    assert!(alpha_bias.abs() < 0.0003, "mean α error {alpha_bias}");
    assert!(correlation(&beta_hat, &beta_true) > 0.6);

    // Factor returns: 800 stocks a day pin each style return to ≈ 0.0009 (noise / √800).
    let days = data.calendar.len();
    let r = returns(&data.prices.close, days);
    let index_r: Vec<Vec<f64>> = data.index_close.iter().map(|c| returns(c, days)).collect();
    let exposures = data.exposures.as_ref().unwrap();
    let f = neutralize::factor_returns(
        &r,
        &index_r,
        &data.universe.index_of,
        days,
        &data.universe.industry_of,
        data.universe.industries.len(),
        exposures,
        60,
    );
    for (k, name) in truth.style_factors.iter().enumerate() {
        let est: Vec<f64> = (1..days).map(|t| f.style_at(t)[k]).collect();
        let planted: Vec<f64> = (1..days).map(|t| truth.factor_returns[t][k]).collect();
        let rmse = (est
            .iter()
            .zip(&planted)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / est.len() as f64)
            .sqrt();
        eprintln!(
            "{name}: rmse {rmse:.5}, corr {:.3}",
            correlation(&est, &planted)
        );
        assert!(rmse < 0.0015, "{name}: rmse {rmse}");
        assert!(correlation(&est, &planted) > 0.9, "{name}");
    }

    // Per-type mean CAR: the planted expectation, within 4 standard errors of the noise.
    for t in EventType::KNOWN {
        let cars: Vec<f64> = labeled
            .records
            .iter()
            .filter_map(|r| r.label.as_ref())
            .filter(|l| l.event_type == t)
            .map(|l| l.car)
            .collect();
        let m = cars.len() as f64;
        let mean = cars.iter().sum::<f64>() / m;
        let sd = (cars.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (m - 1.0)).sqrt();
        let expected = truth.event_types[t.name()].expected_car;
        eprintln!(
            "{t}: mean CAR {mean:+.5} planted {expected:+.5} se {:.5}",
            sd / m.sqrt()
        );
        assert!(
            (mean - expected).abs() < 4.0 * sd / m.sqrt(),
            "{t}: mean CAR {mean:.5}, planted {expected:.5}, se {:.5}",
            sd / m.sqrt()
        );
    }
    // And per event: the label's CAR tracks the planted effect.
    let (planted, measured): (Vec<f64>, Vec<f64>) = labeled
        .records
        .iter()
        .filter_map(|r| {
            Some((
                *truth.event_effects.get(&r.event_id)?,
                r.label.as_ref()?.car,
            ))
        })
        .unzip();
    eprintln!(
        "corr(planted, label CAR) {:.3}",
        correlation(&planted, &measured)
    );
    // Planted effects (sd ≈ 0.007) against two days of residual noise (sd ≈ 0.028) bound the
    // correlation near 0.24; a misaligned window or a wrong sign would put it near 0.
    assert!(correlation(&planted, &measured) > 0.18);
    assert!(labeled.method.neutralized);
}

#[test]
fn configuration_errors_name_the_key() {
    let path = std::path::Path::new("labeling.yaml");
    let err = janus::config::parse::<LabelingConfig>(path, "estimation_window: 100\nbufer: 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("labeling.yaml: "), "{err}");
    assert!(err.contains("unknown field `bufer`"), "{err}");
    let err = janus::config::parse::<LabelingConfig>(path, "min_observations: 500\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "labeling.yaml: key `min_observations`: must be between 3 and estimation_window (120)"
    );
    let err = janus::config::parse::<LabelingConfig>(path, "timezone: Mars/Olympus\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("key `timezone`"), "{err}");
    let ok =
        janus::config::parse::<LabelingConfig>(path, "aliases: {M&A: asset_change}\n").unwrap();
    assert_eq!(ok.aliases["M&A"], EventType::AssetChange);
}

fn janus(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_janus"))
        .args(args)
        .output()
        .unwrap()
}

fn label_dir(dir: &std::path::Path, out: &str, extra: &[&str]) -> std::process::Output {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let mut args = vec![
        "label".to_string(),
        "--prices".into(),
        p("prices.csv"),
        "--indices".into(),
        p("indices.csv"),
        "--universe".into(),
        p("universe.csv"),
        "--factors".into(),
        p("factors.csv"),
        "--events".into(),
        p("events.csv"),
        "--out".into(),
        p(out),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    janus(&args)
}

#[test]
fn replays_are_identical_and_any_input_change_shows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = janus(&[
        "scenario",
        "--seed",
        "5",
        "--symbols",
        "60",
        "--days",
        "260",
        "--events",
        "400",
        "--out",
        d,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let first = label_dir(dir.path(), "a", &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = label_dir(dir.path(), "b", &[]);
    assert!(second.status.success());
    let a = std::fs::read(dir.path().join("a/event-car.json")).unwrap();
    let b = std::fs::read(dir.path().join("b/event-car.json")).unwrap();
    assert_eq!(a, b, "two runs on the same inputs are byte-identical");
    let verified = janus(&[
        "verify",
        dir.path().join("a/event-car.json").to_str().unwrap(),
    ]);
    assert!(verified.status.success());

    // Change one close by one tick.
    let prices = std::fs::read_to_string(dir.path().join("prices.csv")).unwrap();
    let mut lines: Vec<String> = prices.lines().map(str::to_string).collect();
    let fields: Vec<&str> = lines[1000].split(',').collect();
    let close: f64 = fields[3].parse().unwrap();
    lines[1000] = format!(
        "{},{},{},{:.4}",
        fields[0],
        fields[1],
        fields[2],
        close + 0.0001
    );
    std::fs::write(dir.path().join("prices.csv"), lines.join("\n") + "\n").unwrap();
    let changed = label_dir(dir.path(), "c", &[]);
    assert!(changed.status.success());
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("c/event-car.json")).unwrap())
            .unwrap();
    let a: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_ne!(c["manifest_hash"], a["manifest_hash"]);
    assert_ne!(
        c["lineage"]["dataset_snapshot_hash"],
        a["lineage"]["dataset_snapshot_hash"]
    );
    assert_eq!(
        c["lineage"]["run_config_hash"],
        a["lineage"]["run_config_hash"]
    );
}

#[test]
fn bad_rows_are_skipped_and_counted_or_fatal_in_strict_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = janus(&[
        "scenario",
        "--seed",
        "6",
        "--symbols",
        "20",
        "--days",
        "200",
        "--events",
        "50",
        "--out",
        d,
    ]);
    assert!(out.status.success());
    let mut prices = std::fs::read_to_string(dir.path().join("prices.csv")).unwrap();
    prices.push_str("2023-01-03,600000.SH,abc,1\n");
    std::fs::write(dir.path().join("prices.csv"), prices).unwrap();

    let lenient = label_dir(dir.path(), "out", &[]);
    let stderr = String::from_utf8_lossy(&lenient.stderr);
    // This small scenario labels none of its events (too little history and factor coverage):
    // the artifact is written for inspection, but such a run never exits 0 quietly.
    assert_eq!(lenient.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("labelled none of 50 events"), "{stderr}");
    assert!(
        stderr.contains("prices.csv:") && stderr.contains("open `abc` is not a finite number"),
        "{stderr}"
    );
    let artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/event-car.json")).unwrap())
            .unwrap();
    assert_eq!(artifact["summary"]["bad_rows"]["prices"], 1);

    let strict = label_dir(dir.path(), "strict", &["--strict"]);
    assert_eq!(
        strict.status.code(),
        Some(2),
        "an input that cannot be parsed"
    );
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(
        stderr.contains("strict mode stops at the first bad row"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("strict/event-car.json").exists(),
        "nothing written on failure"
    );
}

#[test]
fn a_pinned_dataset_hash_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = janus(&[
        "scenario",
        "--seed",
        "2",
        "--symbols",
        "30",
        "--days",
        "200",
        "--events",
        "100",
        "--out",
        d,
    ]);
    assert!(out.status.success());
    let first = janus(&["label", "--dataset", d, "--out", &format!("{d}/a")]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a/event-car.json")).unwrap())
            .unwrap();
    let pinned = artifact["lineage"]["dataset_snapshot_hash"]
        .as_str()
        .unwrap();
    let ok = janus(&[
        "label",
        "--dataset",
        d,
        "--expect-dataset-hash",
        pinned,
        "--out",
        &format!("{d}/b"),
    ]);
    assert!(ok.status.success());
    let wrong = "0".repeat(64);
    let refused = janus(&[
        "label",
        "--dataset",
        d,
        "--expect-dataset-hash",
        &wrong,
        "--out",
        &format!("{d}/c"),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "dataset snapshot hash is {pinned}, not the pinned {wrong}"
        )),
        "{stderr}"
    );
    assert!(!dir.path().join("c/event-car.json").exists());
    let malformed = janus(&[
        "label",
        "--dataset",
        d,
        "--expect-dataset-hash",
        "abc",
        "--out",
        &format!("{d}/e"),
    ]);
    assert_eq!(malformed.status.code(), Some(2), "a usage error from clap");
}

fn case_file(case: &str, name: &str) -> String {
    format!(
        "{}/tests/fixtures/cases/{case}/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn label_case(case: &str, out: &std::path::Path, strict: bool) -> std::process::Output {
    let f = |n: &str| case_file(case, n);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_janus"));
    cmd.args(["label", "--prices", &f("prices.csv"), "--indices"])
        .args([&f("indices.csv"), "--universe", &f("universe.csv")])
        .args(["--events", &f("events.csv"), "--config", &f("config.json")])
        .args(["--out", out.to_str().unwrap()]);
    if strict {
        cmd.arg("--strict");
    }
    cmd.output().unwrap()
}

/// newest_first_rows: real AAPL/SPY 2019 exports, newest first. Rows are placed by date (and
/// the run says so), so the event is labelled exactly as from the same rows oldest first: CAR
/// 0.03921974744839971 from an independent numpy market model (case README), to 1e-12.
#[test]
fn newest_first_files_label_like_sorted_ones() {
    for strict in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let out = label_case("newest_first_rows", dir.path(), strict);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "strict {strict}: {stderr}");
        assert!(
            stderr.contains("prices.csv: 250 row(s)") && stderr.contains("newest first"),
            "{stderr}"
        );
        let a: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("event-car.json")).unwrap())
                .unwrap();
        assert_eq!(a["summary"]["labelled"], 1);
        assert!(a["summary"]["bad_rows"].as_object().unwrap().is_empty());
        let r = &a["records"][0];
        assert_eq!(r["d0"], "2019-10-31");
        let car = r["label"]["car"].as_f64().unwrap();
        assert!((car - 0.03921974744839971).abs() < 1e-12, "CAR {car}");
    }
}

/// A repeated (symbol, date) stays a bad row whatever the order, naming the first line.
#[test]
fn duplicate_dates_are_refused_in_any_order() {
    let prices = std::fs::read_to_string(case_file("newest_first_rows", "prices.csv")).unwrap();
    let mut lines: Vec<&str> = prices.lines().collect();
    let dup = lines[5];
    lines.push(dup);
    let dataset = Dataset::parse(
        &Sources {
            prices: ("prices.csv", lines.join("\n").as_bytes()),
            indices: (
                "indices.csv",
                std::fs::read(case_file("newest_first_rows", "indices.csv"))
                    .unwrap()
                    .as_slice(),
            ),
            universe: (
                "universe.csv",
                std::fs::read(case_file("newest_first_rows", "universe.csv"))
                    .unwrap()
                    .as_slice(),
            ),
            factors: None,
            events: (
                "events.csv",
                std::fs::read(case_file("newest_first_rows", "events.csv"))
                    .unwrap()
                    .as_slice(),
            ),
            events_format: None,
        },
        false,
    )
    .unwrap();
    assert_eq!(dataset.bad_rows.total(), 1);
    let row = &dataset.bad_rows.examples[0];
    assert!(
        row.reason.contains("duplicate row for `AAPL`") && row.reason.contains("first on line 6"),
        "{row}"
    );
}

/// jcs_roundtrip_large_double: a CAR of 1e17 (real AAPL data with two valid but extreme
/// closes) is written as RFC 8785 requires, `100000000000000000`, and `janus verify` accepts
/// the file `janus label` just sealed.
#[test]
fn an_artifact_with_a_double_beyond_2_53_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = label_case("jcs_roundtrip_large_double", dir.path(), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.path().join("event-car.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"car\":100000000000000000"), "{text}");
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_janus"))
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Parses the hand-made files with one file replaced; strict.
fn parse_with(role: &str, text: &str) -> Result<Dataset, janus::labeling::input::InputError> {
    let (files, ..) = hand_made();
    let factors = "date,symbol,size\n2024-01-01,AAA,1.5\n".to_string();
    let pick = |r: &str, own: &str| {
        if r == role {
            text.to_string()
        } else {
            own.to_string()
        }
    };
    let (prices, indices, universe, factors, events) = (
        pick("prices", &files.prices),
        pick("indices", &files.indices),
        pick("universe", &files.universe),
        pick("factors", &factors),
        pick("events", &files.events),
    );
    Dataset::parse(
        &Sources {
            prices: ("prices.csv", prices.as_bytes()),
            indices: ("indices.csv", indices.as_bytes()),
            universe: ("universe.csv", universe.as_bytes()),
            factors: Some(("factors.csv", factors.as_bytes())),
            events: ("events.csv", events.as_bytes()),
            events_format: None,
        },
        true,
    )
}

/// The `1,124.20` case of the issue: a row with more (or fewer) fields than the header is a bad
/// row naming file and line in every labeling input, never a shifted reading (close 1.0).
#[test]
fn rows_whose_width_differs_from_the_header_are_refused_in_every_input() {
    let (files, ..) = hand_made();
    // Line 3 of each file gets one field too many; line numbers count the header as line 1.
    let widen = |text: &str, extra: &str| -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[2].push_str(extra);
        lines.join("\n") + "\n"
    };
    let cases = [
        ("prices", widen(&files.prices, ",124.20")),
        ("indices", widen(&files.indices, ",5")),
        (
            "universe",
            "symbol,index,industry\nBBB,IDX,bank\nAAA,IDX,bank,x\n".to_string(),
        ),
        (
            "factors",
            "date,symbol,size\n2024-01-01,AAA,1.5\n2024-01-02,AAA,1,5\n".to_string(),
        ),
        ("events", widen(&files.events, ",extra")),
    ];
    for (role, text) in cases {
        let err = parse_with(role, &text).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{role}.csv:3: ")) && err.contains("where the header has"),
            "{role}: {err}"
        );
    }
    // Too few fields too (the date alone).
    let mut prices = files.prices.clone();
    prices.push_str("2024-01-05\n");
    let line = prices.lines().count();
    let err = parse_with("prices", &prices).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "prices.csv:{line}: 1 field(s) where the header has 4"
        )),
        "{err}"
    );
    // Quoted, the same value is one field: a number with a separator, refused as such.
    let first = files.prices.lines().nth(1).unwrap().to_string();
    let quoted = files.prices.replacen(
        &first,
        &format!("{},\"1,124.20\",\"1,124.20\"", &first[..14]),
        1,
    );
    let err = parse_with("prices", &quoted).unwrap_err().to_string();
    assert!(
        err.starts_with("prices.csv:2: open `1,124.20` is not a finite number"),
        "{err}"
    );
}

/// The end-to-end case: the unquoted separator used to give the event a CAR of +1094.8; now
/// the row is counted as bad (lenient) or stops the run (strict).
#[test]
fn an_unquoted_thousands_separator_is_a_bad_row_not_a_car() {
    let (files, dates, ..) = hand_made();
    let dir = tempfile::tempdir().unwrap();
    let target = format!("{},AAA,", dates[171]);
    let prices: String = files
        .prices
        .lines()
        .map(|l| {
            if l.starts_with(&target) {
                format!("{target}1,124.20,1,124.20\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let line = prices.lines().position(|l| l.starts_with(&target)).unwrap() + 1;
    for (name, text) in [
        ("prices.csv", prices.as_str()),
        ("indices.csv", &files.indices),
        ("universe.csv", &files.universe),
        ("events.csv", &files.events),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(
        dir.path().join("factors.csv"),
        "date,symbol,size\n2024-01-01,AAA,1\n",
    )
    .unwrap();
    let lenient = label_dir(dir.path(), "out", &[]);
    let stderr = String::from_utf8_lossy(&lenient.stderr);
    assert!(
        stderr.contains(&format!(
            "prices.csv:{line}: 6 field(s) where the header has 4"
        )),
        "{stderr}"
    );
    let artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/event-car.json")).unwrap())
            .unwrap();
    assert_eq!(artifact["summary"]["bad_rows"]["prices"], 1);
    let strict = label_dir(dir.path(), "strict", &["--strict"]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&strict.stderr).contains(&format!("prices.csv:{line}: 6 field(s)")),
    );
}

fn events_jsonl(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn parse_events_bytes(
    name: &str,
    bytes: &[u8],
    format: Option<janus::records::Format>,
    strict: bool,
) -> Result<Dataset, janus::labeling::input::InputError> {
    let (files, ..) = hand_made();
    Dataset::parse(
        &Sources {
            prices: ("prices.csv", files.prices.as_bytes()),
            indices: ("indices.csv", files.indices.as_bytes()),
            universe: ("universe.csv", files.universe.as_bytes()),
            factors: None,
            events: (name, bytes),
            events_format: format,
        },
        strict,
    )
}

/// Non-UTF-8 lines, JSON Lines decided by the name, and numeric ids beyond 2^64 kept as
/// written (they used to collapse into one float and be rejected as duplicates).
#[test]
fn event_lines_are_named_bad_lines_and_ids_stay_as_written() {
    let ok = |id: &str| {
        format!(
            r#"{{"event_id": {id}, "timestamp": "2024-06-03T10:00:00+08:00", "symbol": "AAA", "event_type": "dividend"}}"#
        )
    };
    let (a, b) = (ok("18446744073709551617"), ok("18446744073709551618"));
    let bytes = events_jsonl(&[a.as_bytes(), b"{\"event_id\": \"x\xff\"}", b.as_bytes()]);
    let d = parse_events_bytes("events.jsonl", &bytes, None, false).unwrap();
    let ids: Vec<&str> = d.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["18446744073709551617", "18446744073709551618"]);
    assert_eq!(d.bad_rows.counts["events"], 1);
    assert_eq!(d.bad_rows.examples[0].line, 2);
    assert!(d.bad_rows.examples[0].reason.contains("not valid UTF-8"));
    let err = parse_events_bytes("events.jsonl", &bytes, None, true)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("events.jsonl:2: not valid UTF-8"), "{err}");

    // A JSONL file whose first line is not an object: a JSON error for line 1, the rest read.
    let bytes = events_jsonl(&[b"[1, 2]", a.as_bytes()]);
    let d = parse_events_bytes("events.jsonl", &bytes, None, false).unwrap();
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.bad_rows.examples[0].line, 1);
    assert!(
        d.bad_rows.examples[0]
            .reason
            .starts_with("not a JSON object")
    );
    // The same bytes under a name that does not say: refused unless the format is given.
    let err = parse_events_bytes("events.txt", &bytes, None, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot tell CSV from JSON Lines"), "{err}");
    let d = parse_events_bytes(
        "events.txt",
        &bytes,
        Some(janus::records::Format::Jsonl),
        false,
    )
    .unwrap();
    assert_eq!(d.events.len(), 1);
    // A CSV events file with a non-UTF-8 title: one bad line, the others kept.
    let (files, ..) = hand_made();
    let mut csv = files.events.into_bytes();
    csv.extend_from_slice(b"e3,2024-06-03T10:00:00Z,AAA,dividend,caf\xe9\n");
    let d = parse_events_bytes("events.csv", &csv, None, false).unwrap();
    assert_eq!(d.events.len(), 2);
    assert_eq!(d.bad_rows.examples[0].line, 4);
    assert!(
        d.bad_rows.examples[0]
            .reason
            .contains("field 5 is not valid UTF-8")
    );
}

/// A CR-only file is one line of 655 KB: the missing-column error quotes at most ~200 bytes.
#[test]
fn errors_quote_a_bounded_excerpt() {
    let cr_only = "event_id\r".repeat(65_536);
    let err = parse_with("universe", &cr_only).unwrap_err().to_string();
    assert!(err.len() < 600, "{} bytes: {}", err.len(), &err[..300]);
    assert!(err.contains("bytes in all"), "{err}");
    let long_field = format!("{}\n", "9".repeat(1 << 20));
    let mut prices = hand_made().0.prices;
    prices.push_str(&format!("2024-01-05,AAA,1,{long_field}"));
    let err = parse_with("prices", &prices).unwrap_err().to_string();
    assert!(err.len() < 600, "{} bytes", err.len());
}

/// `exclude_other_events: false` is the classic event study: e2's window days (140..143) stay
/// in e1's estimation window. Expected values by the same hand computation as above, without
/// the exclusion: 57 days (60 minus the three returns touching the halt).
#[test]
fn the_classic_event_study_keeps_other_events_days() {
    let (files, _, index, stock) = hand_made();
    let config = |exclude| LabelingConfig {
        estimation_window: 60,
        buffer: 5,
        min_observations: 30,
        event_window: 3,
        exclude_other_events: exclude,
        ..LabelingConfig::default()
    };
    let data = files.parse();
    let classic = label(&data, &config(false));
    let r = |t: usize| -> Option<f64> { Some(stock[t]? / stock[t - 1]? - 1.0) };
    let rm = |t: usize| index[t] / index[t - 1] - 1.0;
    let (xs, ys): (Vec<f64>, Vec<f64>) =
        (106..166).filter_map(|t| r(t).map(|y| (rm(t), y))).unzip();
    assert_eq!(xs.len(), 57);
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let beta = sxy / sxx;
    let alpha = my - beta * mx;
    let car: f64 = (171..174)
        .map(|t| r(t).unwrap() - alpha - beta * rm(t))
        .sum();
    let e1 = &classic.records[0];
    assert_eq!(e1.fit.as_ref().unwrap().observations, 57);
    assert!((e1.car_market_model.unwrap() - car).abs() < 1e-12);
    // The default still leaves them out, and the two CARs differ.
    let default = label(&data, &config(true));
    assert_eq!(default.records[0].fit.as_ref().unwrap().observations, 54);
    assert_ne!(default.records[0].car_market_model, e1.car_market_model);
    assert!(LabelingConfig::default().exclude_other_events);
}

/// An event before the calendar's first day is `outside_calendar` with no d0, exactly like
/// one after its last day (it used to be moved to the first trading day and labelled there).
#[test]
fn events_before_the_calendar_are_outside_it_like_events_after_it() {
    let (mut files, dates, ..) = hand_made();
    files.events = format!(
        "event_id,timestamp,symbol,event_type,title\n\
         before,2023-11-28T10:00:00+08:00,AAA,dividend,t\n\
         eve,2023-12-31T23:00:00+08:00,AAA,dividend,t\n\
         after,{}T10:00:00+08:00,AAA,dividend,t\n",
        dates[199]
    );
    assert_eq!(dates[0], NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
    let labeled = label(&files.parse(), &LabelingConfig::default());
    let (before, eve, after) = (
        &labeled.records[0],
        &labeled.records[1],
        &labeled.records[2],
    );
    for r in [before, after] {
        assert_eq!(
            r.unlabelled_reason,
            Some(UnlabelledReason::OutsideCalendar),
            "{}",
            r.event_id
        );
        assert_eq!(r.d0, None, "{}", r.event_id);
    }
    // The boundary: an event whose first open is the calendar's first day is inside it.
    assert_eq!(eve.d0, Some(dates[0]));
    assert_eq!(
        eve.unlabelled_reason,
        Some(UnlabelledReason::InsufficientHistory)
    );
}

fn gafam(name: &str) -> String {
    format!(
        "{}/tests/fixtures/us-gafam/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Real data: five US stocks and SPY 2000-2019 with 41 10-K dates (tests/fixtures/us-gafam,
/// from the `eventstudy` package's example data; see its README), labelled with its own
/// configuration, against an independent plain-Python market model
/// (tests/market_model_reference.py, no code of ours). Its output is committed as
/// `expected-car.json`; regenerate with
/// `python3 tests/market_model_reference.py tests/fixtures/us-gafam > tests/fixtures/us-gafam/expected-car.json`.
/// Both settings of `exclude_other_events` are checked (with this configuration's
/// `min_observations` = window they coincide), and the three 2020 events are outside the
/// calendar, which ends 2019-12-31.
#[test]
fn real_us_data_matches_an_independent_market_model() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gafam("expected-car.json")).unwrap()).unwrap();
    if let Ok(out) = std::process::Command::new("python3")
        .args([
            &format!(
                "{}/tests/market_model_reference.py",
                env!("CARGO_MANIFEST_DIR")
            ),
            &gafam(""),
        ])
        .output()
    {
        // Where Python is available, the committed expectation is what the script computes.
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fresh: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(fresh, expected, "regenerate expected-car.json (see above)");
    }
    let dir = tempfile::tempdir().unwrap();
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gafam("labeling-10k.json")).unwrap()).unwrap();
    let mut hashes = Vec::new();
    for (variant, exclude) in [("exclude", true), ("classic", false)] {
        let mut config = base.clone();
        config["exclude_other_events"] = serde_json::json!(exclude);
        let config_path = dir.path().join(format!("{variant}.json"));
        std::fs::write(&config_path, config.to_string()).unwrap();
        let out_dir = dir.path().join(variant);
        let out = janus(&[
            "label",
            "--prices",
            &gafam("prices.csv"),
            "--indices",
            &gafam("indices.csv"),
            "--universe",
            &gafam("universe.csv"),
            "--events",
            &gafam("events-10k.csv"),
            "--config",
            config_path.to_str().unwrap(),
            "--strict",
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let artifact: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("event-car.json")).unwrap())
                .unwrap();
        hashes.push(artifact["lineage"]["run_config_hash"].clone());
        let records = artifact["records"].as_array().unwrap();
        assert_eq!(records.len(), 41);
        let mut labelled = 0;
        for r in records {
            let id = r["event_id"].as_str().unwrap();
            let want = &expected[variant][id];
            if let Some(reason) = want["reason"].as_str() {
                assert_eq!(r["unlabelled_reason"], reason, "{id}");
                continue;
            }
            labelled += 1;
            assert_eq!(r["d0"], want["d0"], "{id}");
            let fit = &r["fit"];
            assert_eq!(fit["observations"], want["observations"], "{id}");
            for (got, want, what) in [
                (&fit["alpha"], &want["alpha"], "alpha"),
                (&fit["beta"], &want["beta"], "beta"),
                (&r["car_market_model"], &want["car"], "car"),
                (&r["label"]["car"], &want["car"], "label car"),
            ] {
                let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
                assert!((g - w).abs() <= 1e-12, "{id} {what}: {g} vs {w}");
            }
        }
        assert_eq!(labelled, 38, "{variant}");
        let outside: Vec<&str> = records
            .iter()
            .filter(|r| r["unlabelled_reason"] == "outside_calendar")
            .map(|r| r["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(outside.len(), 3);
        assert!(
            outside.iter().all(|id| id.contains("_2020-")),
            "{outside:?}"
        );
    }
    // The key enters the lineage: the two runs' configurations hash differently.
    assert_ne!(hashes[0], hashes[1]);
}
