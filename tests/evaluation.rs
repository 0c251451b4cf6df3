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
        check("ARR", m.arr, "arr");
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
        );
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
    let a = sharpe_delta(&cand, &base, &config);
    let b = sharpe_delta(&cand, &base, &config);
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
    );
    assert_ne!(a.ci_lower, other.ci_lower);
    // No edge: the same series against itself.
    let none = sharpe_delta(&base, &base, &config);
    assert_eq!(none.value, 0.0);
    assert!(none.p_value > 0.5);

    let hits: Vec<PairedHit> = (0..5000)
        .map(|i| PairedHit {
            candidate_direction: i % 10 < 6,
            baseline_direction: i % 10 < 5,
            candidate_type: i % 10 < 8,
            baseline_type: i % 10 < 8,
        })
        .collect();
    let (da, eta) = accuracy_deltas(&hits, &config);
    assert!((da.value - 0.1).abs() < 1e-12);
    assert!(
        da.ci_lower > 0.08 && da.ci_upper < 0.12 && da.p_value < 0.001,
        "{da:?}"
    );
    assert_eq!(eta.value, 0.0);
    assert_eq!((eta.ci_lower, eta.ci_upper), (0.0, 0.0));
    assert_eq!(accuracy_deltas(&hits, &config), (da, eta));
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
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3: nav `abc` is not a number"));
}
