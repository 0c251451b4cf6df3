//! Sample artifacts for the integration tests: small, fully populated, deterministic.
#![allow(dead_code)]

use chrono::{DateTime, NaiveDate, Utc};
use janus::contracts::artifact::unsealed;
use janus::contracts::event_car::*;
use janus::contracts::evidence::*;
use janus::contracts::label::*;
use janus::contracts::lineage::ArtifactRef;
use janus::contracts::reward::*;
use janus::contracts::{Artifact, ArtifactKind, FileDigest, Inputs, Lineage, Sha256Hex};
use janus::taxonomy::EventType;
use std::collections::BTreeMap;

pub fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-24T07:00:00Z")
        .unwrap()
        .to_utc()
}

fn inputs() -> Inputs {
    BTreeMap::from([
        (
            "events".to_string(),
            FileDigest {
                sha256: Sha256Hex::of_bytes(b"events"),
                bytes: 6,
            },
        ),
        (
            "prices".to_string(),
            FileDigest {
                sha256: Sha256Hex::of_bytes(b"prices"),
                bytes: 6,
            },
        ),
    ])
}

pub fn lineage(kind: ArtifactKind) -> Lineage {
    Lineage::new(
        kind.schema_hash(),
        inputs(),
        &serde_json::json!({"seed": 7}),
        vec![],
    )
    .unwrap()
}

pub fn event_car() -> EventCarArtifact {
    let record = |id: &str, car: f64, t: EventType| EventCarRecord {
        event_id: id.into(),
        timestamp: DateTime::parse_from_rfc3339("2024-03-01T10:15:00+08:00").unwrap(),
        symbol: "600000.SH".into(),
        source_event_type: t.chinese_name().unwrap_or("并购").into(),
        event_type: t,
        title: "公告 \"quoted\" \u{1F600} line\nbreak".into(),
        d0: Some(NaiveDate::from_ymd_opt(2024, 3, 4).unwrap()),
        fit: Some(MarketModelFit {
            alpha: 0.000123,
            beta: 1.0912345678901234,
            r_squared: 0.4,
            observations: 118,
            residual_std: 0.0151,
            window_start: NaiveDate::from_ymd_opt(2023, 8, 1).unwrap(),
            window_end: NaiveDate::from_ymd_opt(2024, 2, 5).unwrap(),
        }),
        window: vec![WindowDay {
            date: NaiveDate::from_ymd_opt(2024, 3, 4).unwrap(),
            stock_return: 0.031,
            market_return: -0.002,
            abnormal_return: car,
            neutral_abnormal_return: Some(car * 0.9),
        }],
        car_market_model: Some(car),
        label: t.is_known().then(|| Label {
            car: car * 0.9,
            direction: if car > 0.0 {
                Sign::Positive
            } else {
                Sign::Negative
            },
            strength: if car.abs() >= 0.02 {
                Strength::Strong
            } else {
                Strength::Weak
            },
            event_type: t,
        }),
        unlabelled_reason: None,
    };
    let mut missing = record("e3", 0.0, EventType::Unknown);
    missing.label = None;
    missing.fit = None;
    missing.window.clear();
    missing.car_market_model = None;
    missing.unlabelled_reason = Some(UnlabelledReason::InsufficientHistory);
    EventCarArtifact {
        schema_version: EventCarVersion::V1,
        generated_at: at(),
        lineage: lineage(ArtifactKind::EventCar),
        method: LabelingMethod {
            estimation_window: 120,
            buffer: 10,
            min_observations: 60,
            event_window: 2,
            dead_band: 0.0,
            strong_threshold: 0.02,
            session_open: "09:30".into(),
            timezone: "Asia/Shanghai".into(),
            neutralized: true,
            factors: vec!["size".into(), "momentum".into()],
        },
        summary: EventCarSummary {
            events: 3,
            labelled: 2,
            unlabelled_by_reason: BTreeMap::from([("insufficient_history".into(), 1)]),
            by_event_type: BTreeMap::from([
                ("dividend".into(), 1),
                ("violation".into(), 1),
                ("unknown".into(), 1),
            ]),
            unknown_event_types: BTreeMap::from([("并购".into(), 1)]),
            bad_rows: BTreeMap::new(),
            mean_car_by_type: BTreeMap::from([
                ("dividend".into(), 0.0279),
                ("violation".into(), -1e-7),
            ]),
        },
        records: vec![
            record("e1", 0.031, EventType::Dividend),
            record("e2", -1.1111111111111111e-7, EventType::Violation),
            missing,
        ],
        manifest_hash: unsealed(),
    }
}

pub fn reward() -> HgrmRewardArtifact {
    HgrmRewardArtifact {
        schema_version: HgrmRewardVersion::V1,
        generated_at: at(),
        lineage: Lineage {
            parents: vec![event_car_sealed().reference()],
            ..lineage(ArtifactKind::HgrmReward)
        },
        config: serde_json::json!({"lambda_dir": 1.5, "kappa": 0.0015}),
        summary: RewardSummary {
            samples: 1,
            format_failures: 0,
            direction_gate_pass_ratio: 1.0,
            hard_gate_failures: 0,
            type_match_ratio: 1.0,
            unscored_by_reason: BTreeMap::new(),
            clipped: 0,
            mean_final_reward: 0.7333333333333333,
            mean_pnl_reward: 0.0295,
        },
        records: vec![RewardDecomposition {
            event_id: "e1".into(),
            prediction: Some(Prediction {
                direction: Direction::Long,
                event_type: Some(EventType::Dividend),
                strength: Strength::Strong,
                car_estimate: 0.025,
            }),
            format_failure: None,
            direction_gate_passed: true,
            event_type_gate: TypeGate::Match,
            pnl_discount: 1.0,
            components: RewardComponents {
                direction: 0.0,
                event_type: 0.0,
                pnl: 0.0295,
                strength: 0.0,
                magnitude: 0.9801986733067553,
                process: 0.1,
            },
            gated_out: vec![],
            unclipped_reward: 0.7333333333333333,
            final_reward: 0.7333333333333333,
            clipped: false,
        }],
        manifest_hash: unsealed(),
    }
}

pub fn evidence() -> EvidenceArtifact {
    EvidenceArtifact {
        schema_version: EvidenceVersion::V1,
        generated_at: at(),
        lineage: lineage(ArtifactKind::Evidence),
        model_sha256: Some(Sha256Hex::of_bytes(b"model")),
        null_reasons: BTreeMap::new(),
        summary: EvidenceSummary {
            complete: true,
            missing: vec![],
        },
        counts: EvidenceCounts {
            events: 3,
            labelled_events: 2,
            rewards: 1,
            predictions: 2,
            trades: 2,
            trading_days: 54,
            dropped: Default::default(),
        },
        metrics: BTreeMap::from([("sr".into(), 1.3088), ("mdd".into(), 0.1196)]),
        baseline_metrics: BTreeMap::from([("sr".into(), 0.6481)]),
        deltas: BTreeMap::from([(
            "sr".into(),
            Delta {
                value: 0.6607,
                ci_lower: -0.2,
                ci_upper: 1.5,
                p_value: 0.0712,
            },
        )]),
        significance: Some(Significance {
            method: "stationary_bootstrap".into(),
            resamples: 10_000,
            block_length: 5.0,
            seed: 42,
            confidence: 0.95,
        }),
        walk_forward: Some(WalkForwardSummary {
            folds: 5,
            negative_fold_ratio: Some(0.2),
            fold_pnl_cv: Some(0.8),
        }),
        calibration: None,
        artifacts: vec![event_car_sealed().reference()],
        reproducibility_hashes: vec![Sha256Hex::of_bytes(b"replay")],
        manifest_hash: unsealed(),
    }
}

pub fn event_car_sealed() -> EventCarArtifact {
    let mut a = event_car();
    janus::contracts::seal(&mut a).unwrap();
    a
}

pub fn gate_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .to_utc()
}

/// Evidence that passes every gate of the default policy (as of `gate_now()`).
pub fn good_evidence() -> EvidenceArtifact {
    let parents = vec![
        ArtifactRef {
            schema_version: "janus-event-car-v1".into(),
            manifest_hash: Sha256Hex::of_bytes(b"car"),
        },
        ArtifactRef {
            schema_version: "janus-hgrm-reward-v1".into(),
            manifest_hash: Sha256Hex::of_bytes(b"reward"),
        },
    ];
    let delta = |value: f64, lo: f64, p: f64| Delta {
        value,
        ci_lower: lo,
        ci_upper: value * 2.0,
        p_value: p,
    };
    EvidenceArtifact {
        artifacts: parents.clone(),
        baseline_metrics: BTreeMap::from([("sr".into(), 0.5)]),
        calibration: Some(Calibration {
            target_coverage: 0.9,
            observed_coverage: 0.89,
            shift_score: 0.1,
            interval_width_ratio: 1.05,
        }),
        counts: EvidenceCounts {
            events: 62_400,
            labelled_events: 50_000,
            rewards: 40_000,
            predictions: 12_000,
            trades: 9_000,
            trading_days: 250,
            dropped: Default::default(),
        },
        deltas: BTreeMap::from([
            ("sr".into(), delta(0.8, 0.2, 0.01)),
            ("da".into(), delta(0.04, 0.02, 0.001)),
            ("eta".into(), delta(0.0, 0.0, 1.0)),
        ]),
        generated_at: gate_now(),
        lineage: Lineage::new(
            ArtifactKind::Evidence.schema_hash(),
            BTreeMap::new(),
            &0,
            parents.clone(),
        )
        .unwrap(),
        manifest_hash: Sha256Hex::of_bytes(b""),
        metrics: BTreeMap::from([
            ("sr".into(), 1.3),
            ("mdd".into(), 0.12),
            ("total_return".into(), 0.1),
            ("turnover".into(), 0.6),
            ("cost_bps".into(), 10.0),
            ("gross_exposure_max".into(), 1.1),
        ]),
        model_sha256: Some(Sha256Hex::of_bytes(b"model")),
        null_reasons: BTreeMap::new(),
        reproducibility_hashes: parents.iter().map(|p| p.manifest_hash.clone()).collect(),
        schema_version: EvidenceVersion::V1,
        significance: Some(Significance {
            method: "stationary_bootstrap".into(),
            resamples: 10_000,
            block_length: 5.0,
            seed: 1,
            confidence: 0.95,
        }),
        summary: EvidenceSummary {
            complete: true,
            missing: vec![],
        },
        walk_forward: Some(WalkForwardSummary {
            folds: 5,
            negative_fold_ratio: Some(0.2),
            fold_pnl_cv: Some(0.9),
        }),
    }
}

/// A JanusRun as the API server returns it (name, namespace, uid, creation time set).
pub fn janus_run(
    name: &str,
    dataset_sha: janus::contracts::Sha256Hex,
    trainer_image: Option<&str>,
) -> janus::crd::JanusRun {
    let mut run = janus::crd::JanusRun::new(
        name,
        janus::crd::JanusRunSpec {
            dataset: janus::crd::PinnedObject {
                uri: "datasets/d1".into(),
                sha256: dataset_sha,
            },
            labeling: None,
            reward: None,
            training: janus::crd::TrainingSpec {
                image: trainer_image.map(str::to_string),
                prompt_template: janus::crd::PinnedObject {
                    uri: "config/prompt-template.txt".into(),
                    sha256: janus::contracts::Sha256Hex::of_bytes(b"prompt"),
                },
                sft: janus::crd::SftSpec {
                    seed: 7,
                    epochs: 2,
                    learning_rate: 0.005,
                    weight_decay: None,
                    validation_fraction: None,
                    patience: None,
                },
                grpo: janus::crd::GrpoSpec {
                    seed: 8,
                    steps: 20,
                    batch_size: None,
                    group_size: 4,
                    learning_rate: 0.002,
                    kl_coef: 0.04,
                    clip_range: 0.2,
                    max_grad_norm: 1.0,
                },
                resources: None,
            },
            evaluation: None,
            artifacts: janus::crd::ArtifactsVolume {
                claim_name: "janus-artifacts".into(),
            },
            replay: true,
            held_out_from: "2023-11-01".into(),
        },
    );
    run.metadata.namespace = Some("research".into());
    run.metadata.uid = Some("0b1f-uid".into());
    run.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-28T08:00:00Z".parse().unwrap(),
    ));
    run
}

/// A minimal HTTP/1.1 client: one request per connection; returns (status, body).
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let (status, _, body) = http_with_headers(addr, method, path, body);
    (status, body)
}

/// [`http`], with the response's headers as (name, value) pairs.
pub fn http_with_headers(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body); // the server may answer (413) before reading everything
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The shipped policy with live trading switched on: what a platform that has deliberately
/// enabled canaries in Git would run (the shipped file has `gate5_live.live_enabled: false`).
pub fn live_policy() -> janus::gates::policy::GatePolicy {
    let mut p = janus::gates::policy::GatePolicy::default();
    p.gate5_live.live_enabled = true;
    p
}
