//! The HGRM reward: hand-computed decompositions, its invariants under any input, and the
//! reward service under malformed load.

mod common;

use common::http;
use janus::contracts::label::{Direction, Label, Prediction, Sign, Strength};
use janus::contracts::reward::TypeGate;
use janus::reward::output::{ParsedOutput, parse_completion};
use janus::reward::{HgrmConfig, score};
use janus::taxonomy::EventType;
use proptest::prelude::*;

fn label(car: f64, t: EventType) -> Label {
    Label {
        car,
        direction: if car > 0.0 {
            Sign::Positive
        } else if car < 0.0 {
            Sign::Negative
        } else {
            Sign::Neutral
        },
        strength: if car.abs() >= 0.02 {
            Strength::Strong
        } else {
            Strength::Weak
        },
        event_type: t,
    }
}

fn output(d: Direction, t: Option<EventType>, s: Strength, c: f64) -> ParsedOutput {
    ParsedOutput {
        prediction: Prediction {
            direction: d,
            event_type: t,
            strength: s,
            car_estimate: c,
        },
        reasoning_chars: 42,
        extra_chars: 0,
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

#[test]
fn golden_decompositions() {
    let c = HgrmConfig::default();
    let dividend = label(0.05, EventType::Dividend);

    // Right call: PnL 0.05 − 0.0015, magnitude exp(−0.02²/(2·0.02²)) = e^−½, process bonus.
    let r = score(
        "a",
        Ok(&output(
            Direction::Long,
            Some(EventType::Dividend),
            Strength::Strong,
            0.03,
        )),
        &dividend,
        &c,
    );
    close(r.components.pnl, 0.0485);
    close(r.components.magnitude, (-0.5f64).exp());
    close(r.components.process, 0.1);
    close(r.final_reward, 10.0 * 0.0485 + 0.5 * (-0.5f64).exp() + 0.1);
    assert!(r.direction_gate_passed && !r.clipped && r.gated_out.is_empty());
    assert_eq!(r.event_type_gate, TypeGate::Match);

    // Opposite direction: −λ_dir and nothing else.
    let r = score(
        "b",
        Ok(&output(
            Direction::Short,
            Some(EventType::Dividend),
            Strength::Strong,
            0.05,
        )),
        &dividend,
        &c,
    );
    close(r.final_reward, -1.5);
    assert!(!r.direction_gate_passed);
    assert_eq!(
        r.gated_out,
        vec!["event_type", "pnl", "strength", "magnitude", "process"]
    );

    // Wrong type: −λ_evt, the gain discounted by m_evt.
    let r = score(
        "c",
        Ok(&output(
            Direction::Long,
            Some(EventType::Violation),
            Strength::Strong,
            0.05,
        )),
        &dividend,
        &c,
    );
    assert_eq!(r.event_type_gate, TypeGate::Wrong);
    close(r.components.pnl, 0.0485 * 0.5);
    close(r.final_reward, -0.2 + 10.0 * 0.02425 + 0.5 + 0.1);

    // Missing type, hold on a strong label: −λ_hold (not a gate: the rest counts), −λ_miss,
    // no trade, idle penalty — whatever strength a hold claims, it does not trade.
    for strength in [Strength::Weak, Strength::Strong] {
        let r = score(
            "d",
            Ok(&output(Direction::Hold, None, strength, 0.0)),
            &dividend,
            &c,
        );
        assert!(r.direction_gate_passed && r.gated_out.is_empty());
        assert_eq!(r.event_type_gate, TypeGate::Missing);
        close(r.components.direction, -0.75);
        close(r.components.pnl, 0.0);
        close(r.components.strength, -0.1);
        close(r.components.magnitude, (-3.125f64).exp());
        close(
            r.final_reward,
            -0.75 - 0.3 - 0.1 + 0.5 * (-3.125f64).exp() + 0.1,
        );
    }

    // A hold that claims strength on a weak label trades nothing, so it is not penalized for
    // trading; on a neutral label a hold is the right call and costs nothing.
    let r = score(
        "d2",
        Ok(&output(
            Direction::Hold,
            Some(EventType::Dividend),
            Strength::Strong,
            0.005,
        )),
        &label(0.005, EventType::Dividend),
        &c,
    );
    close(r.components.strength, 0.0);
    close(r.final_reward, -0.75 + 0.5 + 0.1);
    let r = score(
        "d3",
        Ok(&output(
            Direction::Hold,
            Some(EventType::Dividend),
            Strength::Weak,
            0.0,
        )),
        &label(0.0, EventType::Dividend),
        &c,
    );
    close(r.components.direction, 0.0);
    close(r.final_reward, 0.5 + 0.1);
    // λ_hold = 0 is the paper read literally: abstaining is free.
    let literal = HgrmConfig {
        lambda_hold: 0.0,
        ..HgrmConfig::default()
    };
    let r = score(
        "d4",
        Ok(&output(Direction::Hold, None, Strength::Weak, 0.0)),
        &dividend,
        &literal,
    );
    close(r.components.direction, 0.0);

    // A loss after costs is not discounted by a wrong type; trading a weak label is penalized.
    let weak = label(0.001, EventType::Dividend);
    let r = score(
        "e",
        Ok(&output(
            Direction::Long,
            Some(EventType::Industry),
            Strength::Strong,
            0.001,
        )),
        &weak,
        &c,
    );
    close(r.components.pnl, -0.0005);
    close(r.final_reward, -0.2 + 10.0 * -0.0005 - 0.2 + 0.5 + 0.1);

    // Format failure: the penalty alone.
    let failure = parse_completion("no answer").unwrap_err();
    let r = score("f", Err(&failure), &dividend, &c);
    close(r.final_reward, -1.0);
    assert_eq!(r.format_failure.unwrap().kind, "no_json_object");

    // Clipping is flagged exactly when it changes the value.
    let tight = HgrmConfig {
        bounds: janus::reward::Bounds {
            min: -0.5,
            max: 0.5,
        },
        ..HgrmConfig::default()
    };
    let r = score(
        "g",
        Ok(&output(
            Direction::Long,
            Some(EventType::Dividend),
            Strength::Strong,
            0.03,
        )),
        &dividend,
        &tight,
    );
    assert!(r.clipped);
    close(r.final_reward, 0.5);
}

#[test]
fn ablation_switches_remove_their_component() {
    let dividend = label(0.05, EventType::Dividend);
    let wrong = output(
        Direction::Short,
        Some(EventType::Violation),
        Strength::Strong,
        0.05,
    );
    let mut c = HgrmConfig::default();
    c.enabled.direction_gate = false;
    let r = score("a", Ok(&wrong), &dividend, &c);
    // Without the gate an opposite call is scored on: its PnL is a loss.
    close(r.components.direction, 0.0);
    assert!(r.components.pnl < 0.0);
    assert!(r.gated_out.contains(&"direction".to_string()));

    for (switch, name) in [
        ("event_type_gate", "event_type"),
        ("pnl", "pnl"),
        ("magnitude", "magnitude"),
        ("process", "process"),
    ] {
        let mut c = HgrmConfig::default();
        match switch {
            "event_type_gate" => c.enabled.event_type_gate = false,
            "pnl" => c.enabled.pnl = false,
            "magnitude" => c.enabled.magnitude = false,
            _ => c.enabled.process = false,
        }
        let r = score(
            "b",
            Ok(&output(
                Direction::Long,
                Some(EventType::Violation),
                Strength::Strong,
                0.05,
            )),
            &dividend,
            &c,
        );
        assert!(r.gated_out.contains(&name.to_string()), "{switch}");
        let v = match name {
            "event_type" => r.components.event_type,
            "pnl" => r.components.pnl,
            "magnitude" => r.components.magnitude,
            _ => r.components.process,
        };
        assert_eq!(v, 0.0, "{switch}");
    }
}

fn any_type() -> impl Strategy<Value = Option<EventType>> {
    prop_oneof![
        Just(None),
        prop::sample::select(EventType::KNOWN.to_vec()).prop_map(Some)
    ]
}

fn any_estimate() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1.0f64..1.0,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        any::<f64>(),
    ]
}

fn any_config() -> impl Strategy<Value = HgrmConfig> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(a, b, c, d, e)| {
            let mut config = HgrmConfig::default();
            config.enabled.direction_gate = a;
            config.enabled.event_type_gate = b;
            config.enabled.pnl = c;
            config.enabled.magnitude = d;
            config.enabled.process = e;
            config
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rewards_are_finite_and_bounded_for_any_text(text in ".{0,400}", car in -0.5f64..0.5, config in any_config()) {
        let l = label(car, EventType::Dividend);
        let parsed = parse_completion(&text);
        let r = score("x", parsed.as_ref(), &l, &config);
        prop_assert!(r.final_reward.is_finite());
        prop_assert!(r.final_reward >= config.bounds.min && r.final_reward <= config.bounds.max);
        prop_assert_eq!(r.clipped, r.final_reward != r.unclipped_reward);
    }

    #[test]
    fn near_valid_outputs_never_break_the_parser(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..4), car in -0.5f64..0.5) {
        let mut text: Vec<char> = r#"Answer: {"direction": "long", "event_type": "dividend", "strength": "strong", "car_estimate": 0.031, "reasoning": "Dividend raised."}"#.chars().collect();
        for (at, c) in edits {
            let i = at.index(text.len());
            text[i] = c;
        }
        let text: String = text.into_iter().collect();
        let r = score("x", parse_completion(&text).as_ref(), &label(car, EventType::Dividend), &HgrmConfig::default());
        prop_assert!(r.final_reward.is_finite());
    }

    #[test]
    fn invariants_hold_for_any_prediction(
        car in prop_oneof![-0.3f64..-1e-9, 1e-9f64..0.3],
        label_type in prop::sample::select(EventType::KNOWN.to_vec()),
        t in any_type(),
        strong in any::<bool>(),
        estimate in any_estimate(),
        reasoning in 0usize..2000,
        extra in 0usize..1000,
        config in any_config(),
    ) {
        let l = label(car, label_type);
        let s = if strong { Strength::Strong } else { Strength::Weak };
        let make = |d: Direction, t: Option<EventType>, c: f64| ParsedOutput {
            prediction: Prediction { direction: d, event_type: t, strength: s, car_estimate: c },
            reasoning_chars: reasoning,
            extra_chars: extra,
        };
        let right = if car > 0.0 { Direction::Long } else { Direction::Short };
        let opposite = if car > 0.0 { Direction::Short } else { Direction::Long };
        let r_right = score("x", Ok(&make(right, t, estimate)), &l, &config);
        let r_wrong = score("x", Ok(&make(opposite, t, estimate)), &l, &config);
        for r in [&r_right, &r_wrong] {
            prop_assert!(r.final_reward.is_finite());
            prop_assert!(r.final_reward >= config.bounds.min && r.final_reward <= config.bounds.max);
            prop_assert_eq!(r.clipped, r.final_reward != r.unclipped_reward);
        }
        // A wrong direction never scores above a right one, nor above abstaining.
        prop_assert!(r_wrong.final_reward <= r_right.final_reward);
        let r_hold = score("x", Ok(&make(Direction::Hold, t, estimate)), &l, &config);
        prop_assert!(r_wrong.final_reward <= r_hold.final_reward);

        // The right type scores at least as much as a missing or wrong one.
        let wrong_type = EventType::KNOWN.into_iter().find(|x| *x != label_type).unwrap();
        let typed = |t| score("x", Ok(&make(right, t, estimate)), &l, &config).final_reward;
        prop_assert!(typed(Some(label_type)) >= typed(None));
        prop_assert!(typed(Some(label_type)) >= typed(Some(wrong_type)));
    }

    #[test]
    fn magnitude_falls_as_the_estimate_moves_away(car in -0.2f64..0.2, a in 0.0f64..0.5, b in 0.0f64..0.5) {
        let l = label(car, EventType::Dividend);
        let c = HgrmConfig::default();
        let (near, far) = if a <= b { (a, b) } else { (b, a) };
        let m = |delta: f64| score("x", Ok(&output(Direction::Hold, None, Strength::Weak, car + delta)), &l, &c).components.magnitude;
        prop_assert!(m(near) >= m(far));
        prop_assert!(m(-near) >= m(-far));
    }
}

// ---------- the service ----------

#[test]
fn the_reward_service_survives_malformed_bursts_and_shuts_down_gracefully() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let janus = env!("CARGO_BIN_EXE_janus");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(janus)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    run(&[
        "scenario",
        "--seed",
        "3",
        "--symbols",
        "40",
        "--days",
        "260",
        "--events",
        "300",
        "--no-factors",
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
        "--events",
        &p("events.csv"),
        "--out",
        &p(""),
    ]);
    let artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("event-car.json")).unwrap()).unwrap();
    let records = artifact["records"].as_array().unwrap();
    let labelled: Vec<&str> = records
        .iter()
        .filter(|r| !r["label"].is_null())
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    let unlabelled = records.iter().find(|r| r["label"].is_null()).unwrap()["event_id"]
        .as_str()
        .unwrap();

    // The batch command names the first ten lines it skips and counts the rest by reason.
    let mut lines = vec![serde_json::json!({"event_id": unlabelled, "completion": "{}"})];
    lines.extend(
        (0..12).map(|i| serde_json::json!({"event_id": format!("nope-{i}"), "completion": "{}"})),
    );
    lines.push(serde_json::json!({"event_id": labelled[0], "completion": "{\"direction\": \"long\", \"event_type\": \"dividend\", \"strength\": \"strong\", \"car_estimate\": 0.01, \"reasoning\": \"Dividends up, cash flow strong.\"}"}));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("completions.jsonl"), text).unwrap();
    let out = std::process::Command::new(janus)
        .args([
            "reward",
            "--event-car",
            &p("event-car.json"),
            "--completions",
            &p("completions.jsonl"),
            "--out",
            &p("batch"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("skipped ") && l.contains(".jsonl:"))
            .count(),
        10,
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped 13 lines of")
            && stderr.contains("(unknown_event_id 12, unlabelled_event 1)"),
        "{stderr}"
    );
    let batch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("batch/reward.json")).unwrap()).unwrap();
    assert_eq!(batch["summary"]["samples"], 1);
    assert_eq!(
        batch["summary"]["unscored_by_reason"]["unknown_event_id"],
        12
    );

    let mut child = std::process::Command::new(janus)
        .args([
            "reward",
            "serve",
            "--event-car",
            &p("event-car.json"),
            "--listen",
            "127.0.0.1:0",
            "--trace",
            &p("trace.jsonl"),
            "--max-body-bytes",
            "65536",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();

    let good = |id: &str| serde_json::json!({"event_id": id, "completion": "{\"direction\": \"long\", \"event_type\": \"dividend\", \"strength\": \"strong\", \"car_estimate\": 0.01, \"reasoning\": \"Dividends up, cash flow strong.\"}"});
    let valid = serde_json::to_vec(&serde_json::json!({"completions": [good(labelled[0]), {"event_id": labelled[1], "completion": "garbage"}, good(labelled[2])]})).unwrap();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"not json".to_vec(), 400, "request body is not"),
        (b"{\"completions\": 3}".to_vec(), 400, "request body is not"),
        (
            b"{\"completions\": [], \"extra\": 1}".to_vec(),
            400,
            "unknown field",
        ),
        (
            serde_json::to_vec(&serde_json::json!({"completions": [good("nope")]})).unwrap(),
            422,
            "unknown event_id `nope`",
        ),
        (
            serde_json::to_vec(&serde_json::json!({"completions": [good(unlabelled)]})).unwrap(),
            422,
            "has no label",
        ),
        (vec![b'x'; 200_000], 413, ""),
        (valid.clone(), 200, "\"rewards\""),
    ];
    // A burst: every case many times from parallel clients.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for (body, status, needle) in &cases {
                    let (got, text) = http(&addr, "POST", "/v1/rewards", body);
                    assert_eq!(got, *status, "{text}");
                    assert!(text.contains(needle), "{text}");
                }
            });
        }
    });
    let scored = |addr: &str| -> u64 {
        let (_, text) = http(addr, "GET", "/metrics", b"");
        text.lines()
            .find_map(|l| l.strip_prefix("janus_reward_count_total "))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let before = scored(&addr);
    let (status, body) = http(&addr, "POST", "/v1/rewards", &valid);
    assert_eq!(status, 200);
    assert_eq!(
        scored(&addr),
        before + 3,
        "janus_reward_count counts scored rewards"
    );
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = response["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![labelled[0], labelled[1], labelled[2]],
        "answers keep request order"
    );
    assert_eq!(
        response["rewards"][1]["format_failure"]["kind"],
        "no_json_object"
    );
    assert_eq!(http(&addr, "GET", "/healthz", b"").0, 200);

    // SIGTERM: it finishes and exits cleanly; the trace holds every decomposition served.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success());
    let trace = std::fs::read_to_string(d.join("trace.jsonl")).unwrap();
    assert_eq!(trace.lines().count(), 9 * 3);
    for l in trace.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["final_reward"].is_number());
    }
}

#[test]
fn the_shipped_config_file_is_the_default() {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/hgrm.yaml"));
    let shipped: HgrmConfig = janus::config::load(path).unwrap();
    assert_eq!(shipped, HgrmConfig::default());
    let err = janus::config::parse::<HgrmConfig>(path, "lambda_dir: 0.5\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: key `lambda_dir`: must be a finite number > 1",
            path.display()
        )
    );
    // Abstaining may never cost more than a wrong call.
    let err = janus::config::parse::<HgrmConfig>(path, "lambda_hold: 2.0\n").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("key `lambda_hold`: must be a finite number between 0 and lambda_dir"),
        "{err}"
    );
}
