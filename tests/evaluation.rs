//! Metrics against the paper's published figures, and the bootstrap's coverage.

use janus::evaluation::bootstrap::{
    BootstrapConfig, PairedHit, accuracy_deltas, sharpe_delta, sharpe_interval,
};
use janus::evaluation::metrics::NavMetrics;
use janus::rng::Rng;

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[test]
fn reproduces_the_papers_table_2_for_all_17_series() {
    let nav: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/nav_timeseries.json")).unwrap();
    let table: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/unified_backtest.json")).unwrap();
    let rows = table.as_array().unwrap();
    assert_eq!(rows.len(), 17);
    for row in rows {
        let name = row["name"].as_str().unwrap();
        let series: Vec<f64> = nav["series"][name]
            .as_array()
            .unwrap_or_else(|| panic!("no NAV series for {name}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let m = NavMetrics::from_nav(&series).unwrap();
        let published = &row["metrics"];
        let check = |what: &str, ours: f64, key: &str| {
            let theirs = published[key].as_f64().unwrap();
            assert_eq!(
                round4(ours),
                round4(theirs),
                "{name} {what}: ours {ours}, paper {theirs}"
            );
        };
        check("SR", m.sr.unwrap(), "sr");
        check("MDD", m.mdd, "mdd");
        check("ARR", m.arr.unwrap(), "arr");
        check("Calmar", m.calmar.unwrap(), "cr");
        check("total return", m.total_return, "totalReturn");
        assert_eq!(
            m.days as u64,
            published["days"].as_u64().unwrap(),
            "{name} days"
        );
    }
}

/// Share of seeds whose 95% interval covers the true Sharpe ratio.
fn coverage(phi: f64, block_length: f64) -> f64 {
    let (mu, sigma, n, seeds) = (0.0005, 0.01, 520, 400);
    // Stationary AR(1): r_t = μ + u_t, u_t = φ u_{t−1} + ε_t, sd(u) = σ.
    let innovation = sigma * (1.0 - phi * phi).sqrt();
    let true_sr = mu / sigma * 252f64.sqrt();
    let mut covered = 0;
    for seed in 0..seeds {
        let mut rng = Rng::derive(99, seed);
        let mut u = sigma * rng.normal();
        let returns: Vec<f64> = (0..n)
            .map(|_| {
                u = phi * u + innovation * rng.normal();
                mu + u
            })
            .collect();
        let ci = sharpe_interval(
            &returns,
            &BootstrapConfig {
                resamples: 1000,
                block_length,
                seed,
                confidence: 0.95,
            },
        )
        .unwrap();
        if ci.ci_lower <= true_sr && true_sr <= ci.ci_upper {
            covered += 1;
        }
    }
    covered as f64 / seeds as f64
}

#[test]
fn sharpe_intervals_have_nominal_coverage() {
    let iid = coverage(0.0, 1.0);
    let ar1 = coverage(0.2, 10.0);
    eprintln!("coverage of the 95% interval over 400 seeds: iid {iid:.4}, AR(1) φ=0.2 {ar1:.4}");
    assert!((0.93..=0.97).contains(&iid), "iid coverage {iid}");
    assert!((0.90..=0.97).contains(&ar1), "AR(1) coverage {ar1}");
}

#[test]
fn bootstrap_is_deterministic_for_a_seed_and_detects_a_real_edge() {
    let mut rng = Rng::new(5);
    let base: Vec<f64> = (0..520).map(|_| 0.01 * rng.normal()).collect();
    let cand: Vec<f64> = base
        .iter()
        .map(|b| b * 0.5 + 0.002 + 0.004 * rng.normal())
        .collect();
    let config = BootstrapConfig {
        resamples: 2000,
        ..BootstrapConfig::default()
    };
    let a = sharpe_delta(&cand, &base, &config).unwrap();
    let b = sharpe_delta(&cand, &base, &config).unwrap();
    assert_eq!(a, b);
    assert!(
        a.value > 0.0 && a.ci_lower > 0.0 && a.p_value < 0.01,
        "{a:?}"
    );
    let other = sharpe_delta(
        &cand,
        &base,
        &BootstrapConfig {
            seed: 7,
            ..config.clone()
        },
    )
    .unwrap();
    assert_ne!(a.ci_lower, other.ci_lower);
    // No edge: the same series against itself.
    let none = sharpe_delta(&base, &base, &config).unwrap();
    assert_eq!(none.value, 0.0);
    assert!(none.p_value > 0.5);

    let hits: Vec<PairedHit> = (0..5000)
        .map(|i| PairedHit {
            candidate_direction: i % 10 < 6,
            baseline_direction: i % 10 < 5,
            type_known: true,
            candidate_type: i % 10 < 8,
            baseline_type: i % 10 < 8,
        })
        .collect();
    let (da, eta) = accuracy_deltas(&hits, &config);
    let (da, eta) = (da.unwrap(), eta.unwrap());
    assert!((da.value - 0.1).abs() < 1e-12);
    assert!(
        da.ci_lower > 0.08 && da.ci_upper < 0.12 && da.p_value < 0.001,
        "{da:?}"
    );
    assert_eq!(eta.value, 0.0);
    assert_eq!((eta.ci_lower, eta.ci_upper), (0.0, 0.0));
    assert_eq!(accuracy_deltas(&hits, &config), (Ok(da), Ok(eta)));

    // The ETA delta is over the events of a known type only. Of 1,000 events, the even ones
    // have a known type; the candidate names every one of them, the baseline every other one
    // (i % 4 == 0): by hand, (500 − 250) / 500 = 0.5 (over all 1,000 events it would read 0.25).
    let hits: Vec<PairedHit> = (0..1000)
        .map(|i| PairedHit {
            candidate_direction: true,
            baseline_direction: true,
            type_known: i % 2 == 0,
            candidate_type: i % 2 == 0,
            baseline_type: i % 4 == 0,
        })
        .collect();
    let (da, eta) = accuracy_deltas(&hits, &config);
    assert_eq!(da.unwrap().value, 0.0);
    assert!((eta.unwrap().value - 0.5).abs() < 1e-12);
    // Nothing of a known type, or nothing at all: refused with the reason, never 0.
    let unknown: Vec<PairedHit> = hits
        .iter()
        .map(|h| PairedHit {
            type_known: false,
            ..*h
        })
        .collect();
    let (da, eta) = accuracy_deltas(&unknown, &config);
    assert!(da.is_ok());
    assert_eq!(eta, Err(janus::evaluation::metrics::Undefined::NoKnownType));
    let (da, eta) = accuracy_deltas(&[], &config);
    assert!(
        da.unwrap_err()
            .to_string()
            .starts_with("no labelled events")
    );
    assert!(eta.is_err());
}

#[test]
fn janus_metrics_reports_the_paper_figures_and_deltas_as_json() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nav_timeseries.json"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_janus"))
        .args([
            "metrics",
            "--nav",
            fixture,
            "--series",
            "Janus-Q",
            "--baseline-nav",
            fixture,
        ])
        .args([
            "--baseline-series",
            "QwQ-32B",
            "--bootstrap",
            "500",
            "--seed",
            "9",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(round4(v["sr"].as_f64().unwrap()), 1.3088);
    assert_eq!(round4(v["baseline"]["sr"].as_f64().unwrap()), 0.6481);
    let d = &v["delta"]["sr"];
    assert_eq!(
        round4(d["value"].as_f64().unwrap()),
        round4(1.3088233624922734 - v["baseline"]["sr"].as_f64().unwrap())
    );
    assert!(d["ci_lower"].as_f64().unwrap() < d["ci_upper"].as_f64().unwrap());
    assert!((0.0..=1.0).contains(&d["p_value"].as_f64().unwrap()));
    // Every delta has a value here, so the delta's reasons (beside its figures) are empty.
    assert_eq!(v["delta"]["null_reasons"], serde_json::json!({}));
    assert_eq!(v["bootstrap"]["method"], "stationary_bootstrap");
    assert_eq!(v["bootstrap"]["resamples"], 500);
    assert_eq!(v["bootstrap"]["seed"], 9);

    // A CSV NAV with a bad value is refused with its line.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nav.csv");
    std::fs::write(&csv, "date,nav\n2024-01-02,1\n2024-01-03,abc\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_janus"))
        .args(["metrics", "--nav", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an input that cannot be parsed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nav.csv:3: nav `abc` is not a number"));
}

#[test]
fn janus_evaluate_writes_verified_evidence_and_a_report_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let janus = env!("CARGO_BIN_EXE_janus");
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(janus)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(&[
        "scenario",
        "--seed",
        "21",
        "--symbols",
        "150",
        "--days",
        "320",
        "--events",
        "4000",
        "--out",
        &p(""),
    ]);
    run(&[
        "label",
        "--prices",
        &p("prices.csv"),
        "--indices",
        &p("indices.csv"),
        "--universe",
        &p("universe.csv"),
        "--factors",
        &p("factors.csv"),
        "--events",
        &p("events.csv"),
        "--out",
        &p(""),
    ]);

    // A candidate that calls the label's direction right 70% of the time.
    let artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("event-car.json")).unwrap()).unwrap();
    let mut rng = Rng::new(1);
    let mut lines = String::new();
    for r in artifact["records"].as_array().unwrap() {
        let Some(label) = r["label"].as_object() else {
            continue;
        };
        let mut up = label["car"].as_f64().unwrap() > 0.0;
        if rng.bernoulli(0.3) {
            up = !up;
        }
        lines.push_str(&format!(
            "{{\"event_id\": \"{}\", \"direction\": \"{}\", \"event_type\": null, \"strength\": \"strong\", \"car_estimate\": {}}}\n",
            r["event_id"].as_str().unwrap(),
            if up { "long" } else { "short" },
            if up { 0.01 } else { -0.01 }
        ));
    }
    std::fs::write(d.join("predictions.jsonl"), lines).unwrap();
    let args = |out: &str| {
        vec![
            "evaluate".to_string(),
            "--event-car".into(),
            p("event-car.json"),
            "--predictions".into(),
            p("predictions.jsonl"),
            "--prices".into(),
            p("prices.csv"),
            "--from".into(),
            "2023-08-01".into(),
            "--out".into(),
            p(out),
        ]
    };
    let as_str = |v: &Vec<String>| {
        v.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{0}")
    };
    let a = args("a");
    let out = run(&as_str(&a).split('\u{0}').collect::<Vec<_>>());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("ΔSR"), "{table}");
    for f in [
        "evaluation.json",
        "evidence.json",
        "report.md",
        "nav.svg",
        "drawdown.svg",
        "folds.svg",
        "regimes.svg",
        "bootstrap-sr.svg",
        "reliability.svg",
        "car-by-type.svg",
    ] {
        assert!(d.join("a").join(f).exists(), "{f}");
    }
    // Each new chart is in report.md with a line on how to read it (these predictions state no
    // direction probability, and the report says so).
    let md = std::fs::read_to_string(d.join("a/report.md")).unwrap();
    for chart in ["bootstrap-sr.svg", "reliability.svg", "car-by-type.svg"] {
        let at = md
            .find(&format!("({chart})"))
            .unwrap_or_else(|| panic!("{chart}: {md}"));
        let caption = md[at..].lines().nth(2).unwrap_or_default();
        assert!(caption.starts_with('*'), "{chart}: {caption}");
    }
    assert!(md.contains("state no `direction_probability`"), "{md}");
    run(&["verify", &p("a/evidence.json")]);
    let b = args("b");
    run(&as_str(&b).split('\u{0}').collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(d.join("a/evidence.json")).unwrap(),
        std::fs::read(d.join("b/evidence.json")).unwrap()
    );

    let evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("a/evidence.json")).unwrap()).unwrap();
    let m = &evidence["metrics"];
    // The evaluated window's direction accuracy is the candidate's 70% (standard error ≈ 0.01).
    let da = m["da"].as_f64().unwrap();
    assert!((0.66..0.74).contains(&da), "{m}");
    // Calling the realized direction 70% of the time is worth a lot more than the baseline.
    assert!(evidence["deltas"]["da"]["ci_lower"].as_f64().unwrap() > 0.0);
    assert!(
        evidence["deltas"]["sr"]["ci_lower"].as_f64().unwrap()
            <= evidence["deltas"]["sr"]["value"].as_f64().unwrap()
    );
    assert!(evidence["walk_forward"]["folds"].as_u64().unwrap() >= 2);
    // No rewards were given: the evidence says what is missing.
    assert_eq!(evidence["summary"]["complete"], false);
    assert!(
        evidence["summary"]["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "hgrm_rewards")
    );
    // Positions are written out, every one inside the evaluated window.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("a/evaluation.json")).unwrap()).unwrap();
    let positions = report["candidate"]["positions"].as_array().unwrap();
    assert_eq!(
        positions.len() as u64,
        report["candidate"]["trades"].as_u64().unwrap()
    );
    assert!(
        positions
            .iter()
            .all(|p| p["exit_day"].as_u64() >= p["entry_day"].as_u64())
    );

    // Regimes from a file replace the default classification.
    let prices = std::fs::read_to_string(d.join("prices.csv")).unwrap();
    let mut dates: Vec<&str> = prices.lines().skip(1).map(|l| &l[..10]).collect();
    dates.dedup();
    let regimes: String = std::iter::once("date,regime".to_string())
        .chain(
            dates
                .iter()
                .enumerate()
                .map(|(i, day)| format!("{day},{}", if i % 3 == 0 { "stress" } else { "calm" })),
        )
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("regimes.csv"), regimes).unwrap();
    let mut c = args("c");
    c.extend(["--regimes".to_string(), p("regimes.csv")]);
    run(&as_str(&c).split('\u{0}').collect::<Vec<_>>());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("c/evaluation.json")).unwrap()).unwrap();
    let names: Vec<&str> = report["regimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["regime"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["calm", "stress"]);
    let days: u64 = report["regimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["days"].as_u64().unwrap())
        .sum();
    assert_eq!(days, report["trading_days"].as_u64().unwrap());

    // Regimes by a named market index; several indices without a name are refused.
    let mut e = args("e");
    e.extend([
        "--indices".to_string(),
        p("indices.csv"),
        "--index".to_string(),
        "CSI300".to_string(),
    ]);
    run(&as_str(&e).split('\u{0}').collect::<Vec<_>>());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("e/evaluation.json")).unwrap()).unwrap();
    let names: Vec<&str> = report["regimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["regime"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "low_volatility",
            "mid_volatility",
            "high_volatility",
            "trend_up",
            "trend_down"
        ]
    );
    let mut f = args("f");
    f.extend(["--indices".to_string(), p("indices.csv")]);
    let out = std::process::Command::new(janus)
        .args(as_str(&f).split('\u{0}'))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose one with --index"));

    // Nothing NaN anywhere in the report.
    let report = std::fs::read_to_string(d.join("a/evaluation.json")).unwrap();
    assert!(!report.contains("NaN") && !report.contains("null,\n  \"mdd\""));
}

#[test]
fn replay_comparison_names_every_difference() {
    use janus::contracts::evidence::EvidenceArtifact;
    use janus::evaluation::replay::compare;
    let base: EvidenceArtifact = serde_json::from_value(serde_json::json!({
        "artifacts": [], "baseline_metrics": {"sr": 0.5}, "calibration": null,
        "counts": {"events": 1, "labelled_events": 1, "rewards": 0, "predictions": 1, "trades": 1, "trading_days": 2},
        "deltas": {"sr": {"value": 0.1, "ci_lower": -0.1, "ci_upper": 0.3, "p_value": 0.2}},
        "generated_at": "2025-01-01T00:00:00Z",
        "lineage": {"dataset_snapshot_hash": "0".repeat(64), "schema_hash": "1".repeat(64), "generation_code_hash": "2".repeat(64),
                    "generation_code": "x", "run_config_hash": "3".repeat(64), "inputs": {}, "parents": []},
        "manifest_hash": "4".repeat(64), "metrics": {"sr": 0.6, "da": 0.55}, "model_sha256": null,
        "reproducibility_hashes": [], "schema_version": "janus-q-evidence-v1", "significance": null,
        "summary": {"complete": true, "missing": []}, "walk_forward": null
    }))
    .unwrap();
    assert!(compare(&base, &base, 0.0).matched);
    let mut other = base.clone();
    other.metrics.insert("sr".into(), 0.6 + 1e-12);
    assert!(compare(&base, &other, 1e-9).matched);
    other.metrics.insert("da".into(), 0.56);
    other.metrics.remove("sr");
    other.lineage.run_config_hash = janus::contracts::Sha256Hex::parse(&"5".repeat(64)).unwrap();
    let v = compare(&base, &other, 1e-9);
    assert!(!v.matched);
    assert_eq!(v.differences.len(), 3, "{:?}", v.differences);
    assert!(v.differences[0].starts_with("lineage.run_config_hash"));
    assert!(
        v.differences
            .iter()
            .any(|d| d.starts_with("metrics.da: 0.55 vs 0.56"))
    );
    assert!(
        v.differences
            .iter()
            .any(|d| d == "metrics.sr: only in the first")
    );
}

fn case(path: &str) -> String {
    format!("{}/tests/fixtures/cases/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn janus(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_janus"))
        .args(args)
        .output()
        .unwrap()
}

/// const-return-sharpe: a NAV compounding at exactly 0.1 % a day has no Sharpe ratio
/// (docs/methodology.md §3); the float residue of its returns (std ≈ 1.2e-16) is not risk. The
/// SR, its interval and p-value are null, each with its reason beside it.
#[test]
fn a_constant_return_series_has_no_sharpe_ratio() {
    let out = janus(&[
        "metrics",
        "--nav",
        &case("const-return-sharpe/nav.csv"),
        "--bootstrap",
        "1000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["sr"].is_null() && v["sr_ci"].is_null(), "{v}");
    for key in ["sr", "sr_ci"] {
        let why = v["null_reasons"][key].as_str().unwrap();
        assert!(why.starts_with("no dispersion"), "{key}: {why}");
    }
    // ARR is still defined: 1.001^252 − 1 over 252 return days.
    let arr = v["arr"].as_f64().unwrap();
    assert!((arr - (1.001f64.powi(252) - 1.0)).abs() < 1e-12, "{arr}");

    // The same series with a real (if tiny) dispersion keeps its SR: returns alternating
    // 0.001 ± 1e-6 have mean 0.001 and population std 1e-6, so SR = 1000 √252.
    let mut nav = vec![1.0];
    for t in 0..252 {
        let r = if t % 2 == 0 {
            0.001 + 1e-6
        } else {
            0.001 - 1e-6
        };
        nav.push(nav[t] * (1.0 + r));
    }
    let sr = NavMetrics::from_nav(&nav).unwrap().sr.unwrap();
    assert!((sr / (1000.0 * 252f64.sqrt()) - 1.0).abs() < 1e-6, "{sr}");
    // And an undefined point estimate is never given an interval by the bootstrap.
    let flat: Vec<f64> = vec![0.001; 100];
    assert!(sharpe_interval(&flat, &BootstrapConfig::default()).is_err());
    assert!(sharpe_delta(&flat, &flat, &BootstrapConfig::default()).is_err());
}

/// short-wipeout-nav-floor: a short leg that rises 919 % into the close loses 2.3× the
/// capital. The NAV is not floored: the series ends at its true value (≤ 0), the metrics say
/// ruin, and neither an SR nor an SR delta is given. Expected NAV from the case's raw prices:
/// budget 1/h = 0.5 split over the two dividend calls (0.25 each), 10 bps on entry and on the
/// liquidation at that close.
#[test]
fn a_wiped_out_book_is_ruined_not_floored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let data = case("short-wipeout-nav-floor/data");
    let out = janus(&["label", "--dataset", &data, "--out", &p("label")]);
    assert!(out.status.success());
    let out = janus(&[
        "evaluate",
        "--event-car",
        &p("label/event-car.json"),
        "--predictions",
        &case("short-wipeout-nav-floor/predictions.jsonl"),
        "--prices",
        &format!("{data}/prices.csv"),
        "--out",
        &p("eval"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 2023-10-16: 600000.SH open 20.5767 close 20.9493 (long), 000001.SZ open 31.1295 close
    // 317.3210 (short).
    let (long, short) = (0.25 * 20.9493 / 20.5767, 0.25 * 317.3210 / 31.1295);
    let expected = 1.0 - 2.0 * 0.25 * 1e-3 + (long - 0.25) - (short - 0.25) - 1e-3 * (long + short);
    assert!(expected < -1.29, "{expected}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("eval/evaluation.json")).unwrap()).unwrap();
    let c = &report["candidate"];
    let nav = c["nav"].as_array().unwrap();
    let last = nav.last().unwrap().as_f64().unwrap();
    assert!(
        (last - expected).abs() < 1e-9,
        "NAV {last}, expected {expected}"
    );
    assert!(
        nav[..nav.len() - 1]
            .iter()
            .all(|v| v.as_f64().unwrap() > 0.0)
    );
    let m = &c["metrics"];
    assert!((m["total_return"].as_f64().unwrap() - (expected - 1.0)).abs() < 1e-9);
    assert!(m["mdd"].as_f64().unwrap() > 2.0, "{m}");
    assert_eq!(m["ruin"]["day"].as_u64().unwrap() as usize, nav.len() - 1);
    for key in ["sr", "arr", "calmar"] {
        assert!(m[key].is_null(), "{key}");
        assert!(c["null_reasons"][key].as_str().unwrap().starts_with("ruin"));
    }
    assert!(report["sr_delta"].is_null());

    let evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("eval/evidence.json")).unwrap()).unwrap();
    assert_eq!(evidence["metrics"]["ruin"], 1.0);
    assert!(evidence["metrics"].get("sr").is_none());
    assert!(evidence["deltas"].get("sr").is_none());
    assert!(
        evidence["null_reasons"]["delta.sr"]
            .as_str()
            .unwrap()
            .contains("ruin")
    );
    let md = std::fs::read_to_string(d.join("eval/report.md")).unwrap();
    assert!(md.contains("`sr`: ruin"), "{md}");
}

/// car-estimate-overflow-rmse: a finite ĉ of 1e200 (valid per the reward contract) gives
/// RMSE √((1e200² + ~0²) / 2) = 1e200 / √2 and MAE 5e199 without overflowing, and every
/// output is written and verifies.
#[test]
fn huge_car_estimates_do_not_overflow_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let data = case("car-estimate-overflow-rmse/data");
    assert!(
        janus(&["label", "--dataset", &data, "--out", &p("label")])
            .status
            .success()
    );
    let out = janus(&[
        "evaluate",
        "--event-car",
        &p("label/event-car.json"),
        "--predictions",
        &case("car-estimate-overflow-rmse/predictions.jsonl"),
        "--prices",
        &format!("{data}/prices.csv"),
        "--out",
        &p("eval"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("eval/evaluation.json")).unwrap()).unwrap();
    let rmse = report["candidate"]["rmse"].as_f64().unwrap();
    let mae = report["candidate"]["mae"].as_f64().unwrap();
    assert!((rmse / (1e200 / 2f64.sqrt()) - 1.0).abs() < 1e-12, "{rmse}");
    assert!((mae / 5e199 - 1.0).abs() < 1e-12, "{mae}");
    assert!(
        janus(&["verify", &p("eval/evidence.json")])
            .status
            .success()
    );
}

/// The turnover divisor: traded notional per *evaluated* day. One symbol at a flat price 10
/// over 10 days; the evaluated window starts at day 5; one long call at d0 = 6 held 2 days.
/// By hand: notional 0.5 in and 0.5 out; NAV 1 until the entry cost (0.0005) on day 6 and the
/// exit cost (0.0005) on day 7, so the window's NAV points are [1, 1, 0.9995, 0.999, 0.999,
/// 0.999] (5 return days): turnover = 1.0 / mean(NAV) / 5.
#[test]
fn turnover_divides_by_evaluated_days() {
    use janus::contracts::label::{Direction, Prediction, Strength};
    use janus::evaluation::backtest::{BacktestConfig, EventSlot, PricePanel, run};
    use janus::taxonomy::EventType;
    let flat = [10.0; 10];
    let prices = PricePanel {
        days: 10,
        open: &flat,
        close: &flat,
    };
    let events = [EventSlot {
        symbol: 0,
        d0: 6,
        event_type: EventType::Dividend,
    }];
    let call = Some(Prediction {
        direction: Direction::Long,
        event_type: Some(EventType::Dividend),
        strength: Strength::Strong,
        car_estimate: 0.01,
    });
    let bt = run(
        &prices,
        &events,
        &[call],
        &[],
        2,
        &BacktestConfig::default(),
    );
    let window = [1.0, 1.0, 0.9995, 0.999, 0.999, 0.999];
    let mean_nav = window.iter().sum::<f64>() / 6.0;
    let expected = 1.0 / mean_nav / 5.0;
    let turnover = bt.turnover(5).unwrap();
    assert!(
        (turnover - expected).abs() < 1e-12,
        "{turnover} vs {expected}"
    );
    // Over the whole calendar (start 0) the same trades are spread over 10 days.
    let whole = bt.turnover(0).unwrap();
    let all = [1.0; 7].iter().sum::<f64>() + 0.9995 + 3.0 * 0.999;
    assert!((whole - 1.0 / (all / 11.0) / 10.0).abs() < 1e-12);
    assert!(bt.turnover(10).is_err(), "no evaluated day, no turnover");
}

/// Silent drops (issue 17): every record the evaluation leaves out is counted by reason, and
/// those that lose something scorable make the evidence incomplete. Built by hand from the
/// car-estimate case: a second symbol 000012.SZ (a copy of 000011.SZ's prices) with one event
/// e3, labelled with both symbols' prices, then evaluated on prices that lack 000012.SZ. The
/// predictions file holds e1, e2 and e3, one malformed line, one line for an id no event has,
/// and a repeat of e1: by construction one of each drop reason below.
#[test]
fn dropped_records_are_counted_by_reason_and_make_the_evidence_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let src = case("car-estimate-overflow-rmse/data");
    let data = d.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(format!("{src}/indices.csv"), data.join("indices.csv")).unwrap();
    let prices = std::fs::read_to_string(format!("{src}/prices.csv")).unwrap();
    let copy: String = prices
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", l.replace("000011.SZ", "000012.SZ")))
        .collect();
    std::fs::write(data.join("prices.csv"), format!("{prices}{copy}")).unwrap();
    std::fs::write(
        data.join("universe.csv"),
        "symbol,index,industry\n000011.SZ,CSI1000,steel\n000012.SZ,CSI1000,steel\n",
    )
    .unwrap();
    let events = std::fs::read_to_string(format!("{src}/events.csv")).unwrap();
    std::fs::write(
        data.join("events.csv"),
        format!("{events}e3,2023-10-23T08:00:00+08:00,000012.SZ,dividend,a third event\n"),
    )
    .unwrap();
    let out = janus(&[
        "label",
        "--dataset",
        data.to_str().unwrap(),
        "--out",
        &p("label"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |id: &str| {
        format!(
            r#"{{"event_id": "{id}", "direction": "long", "event_type": "dividend", "strength": "strong", "car_estimate": 0.01}}"#
        )
    };
    let predictions = [
        line("e1"),
        line("e2"),
        line("e3"),
        "{not json".to_string(),
        line("ghost"),
        line("e1"),
    ]
    .join("\n");
    std::fs::write(d.join("pred.jsonl"), predictions).unwrap();
    let evaluate = |pred: &str, out_dir: &str| {
        let out = janus(&[
            "evaluate",
            "--event-car",
            &p("label/event-car.json"),
            "--predictions",
            &p(pred),
            "--prices",
            &format!("{src}/prices.csv"),
            "--out",
            &p(out_dir),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |f: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(d.join(out_dir).join(f)).unwrap()).unwrap()
        };
        (read("evaluation.json"), read("evidence.json"))
    };
    let (report, evidence) = evaluate("pred.jsonl", "eval");
    let label: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("label/event-car.json")).unwrap()).unwrap();
    assert_eq!(
        label["summary"]["labelled"], 3,
        "all three events are labelled"
    );
    let expected = serde_json::json!({
        "labelled_event_without_prices": 1,
        "prediction_for_dropped_event": 1,
        "prediction_malformed": 1,
        "prediction_unknown_event": 1,
        "prediction_duplicate": 1,
    });
    assert_eq!(evidence["counts"]["dropped"], expected);
    assert_eq!(report["dropped"], expected);
    assert_eq!(evidence["summary"]["complete"], false);
    let missing: Vec<&str> = evidence["summary"]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for reason in [
        "labelled_event_without_prices",
        "prediction_malformed",
        "prediction_unknown_event",
        "prediction_duplicate",
    ] {
        assert!(
            missing.contains(&format!("dropped.{reason}").as_str()),
            "{missing:?}"
        );
    }
    // Predictions for an event that was itself dropped lose nothing more.
    assert!(!missing.contains(&"dropped.prediction_for_dropped_event"));
    // Two predictions used (e1, e2), not three.
    assert_eq!(evidence["counts"]["predictions"], 2);

    // The baseline is given the type: its ETA (and so the ETA delta) is null with the reason,
    // never 1.0; the candidate named the type of both labelled dividend events: ETA 2/2.
    assert_eq!(evidence["metrics"]["eta"], 1.0);
    assert!(evidence["baseline_metrics"].get("eta").is_none());
    let reasons = &evidence["null_reasons"];
    assert!(
        reasons["baseline.eta"]
            .as_str()
            .unwrap()
            .starts_with("no call states an event type")
    );
    assert!(
        reasons["delta.eta"]
            .as_str()
            .unwrap()
            .starts_with("the baseline has none")
    );
    assert!(evidence["deltas"].get("eta").is_none());

    // Nothing scored at all: DA and ETA are null with the reason, not 0.
    std::fs::write(d.join("ghost.jsonl"), line("ghost")).unwrap();
    let (report, evidence) = evaluate("ghost.jsonl", "none");
    for key in ["da", "eta"] {
        assert!(report["candidate"][key].is_null(), "{key}");
        assert!(evidence["metrics"].get(key).is_none(), "{key}");
    }
    assert_eq!(
        evidence["null_reasons"]["da"],
        "no labelled events with a call to score"
    );
    assert_eq!(
        evidence["null_reasons"]["eta"],
        "no labelled events of a known type with a call to score"
    );
    assert_eq!(
        evidence["counts"]["dropped"]["labelled_event_without_call"],
        2
    );
    let md = std::fs::read_to_string(d.join("none/report.md")).unwrap();
    assert!(
        md.contains("`da`: no labelled events with a call to score"),
        "{md}"
    );
}
