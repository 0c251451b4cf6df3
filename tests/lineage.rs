//! Lineage enforced, not only recorded (issue 18): a real chain (scenario → label → SFT →
//! predict → reward → evaluate) verifies and reaches the gates; each attack edits a real
//! artifact and re-seals it with the product's own seal — what an attacker can do — and every
//! reader refuses it with exit 1, naming the file, the field, the recorded and the actual value.

use janus::contracts::consistency::read_evidence_with_parents;
use janus::contracts::event_car::{EventCarArtifact, EventCarSummary};
use janus::contracts::evidence::EvidenceArtifact;
use janus::contracts::label::Sign;
use janus::contracts::reward::HgrmRewardArtifact;
use janus::contracts::{Artifact, ContractError, read_artifact, write_artifact};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

const FROM: &str = "2023-10-02";

fn janus(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_janus"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = janus(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Labels a generated dataset into `dir/event-car.json`.
fn labelled(dir: &Path, seed: &str) {
    let data = dir.join("data");
    ok(&[
        "scenario",
        "--seed",
        seed,
        "--symbols",
        "60",
        "--days",
        "260",
        "--events",
        "600",
        "--out",
        s(&data),
    ]);
    ok(&["label", "--dataset", s(&data), "--out", s(dir)]);
}

/// Predicts with `model` on `dir/event-car.json` and scores the completions into
/// `dir/reward.json`.
fn scored(dir: &Path, model: &Path) {
    let car = dir.join("event-car.json");
    ok(&[
        "predict",
        "--model",
        s(model),
        "--event-car",
        s(&car),
        "--out",
        s(&dir.join("predictions.jsonl")),
        "--completions",
        s(&dir.join("completions.jsonl")),
    ]);
    ok(&[
        "reward",
        "--event-car",
        s(&car),
        "--completions",
        s(&dir.join("completions.jsonl")),
        "--out",
        s(dir),
    ]);
}

/// `janus evaluate` of the chain's predictions (in `d`), with the given event-car and rewards.
fn evaluate_in(
    d: &Path,
    event_car: &Path,
    rewards: &Path,
    checkpoint: &Path,
    out: &Path,
) -> Output {
    janus(&[
        "evaluate",
        "--event-car",
        s(event_car),
        "--predictions",
        s(&d.join("predictions.jsonl")),
        "--prices",
        s(&d.join("data/prices.csv")),
        "--rewards",
        s(rewards),
        "--from",
        FROM,
        "--checkpoint",
        s(checkpoint),
        "--model",
        s(&d.join("sft/model.onnx")),
        "--out",
        s(out),
    ])
}

/// The real chain, built once: labels, an SFT model trained before the held-out window, its
/// rewards and its evidence.
fn chain() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lineage-chain");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        labelled(&d, "3");
        ok(&[
            "train",
            "sft",
            "--event-car",
            s(&d.join("event-car.json")),
            "--until",
            FROM,
            "--epochs",
            "3",
            "--out",
            s(&d.join("sft")),
        ]);
        scored(&d, &d.join("sft/model.json"));
        let out = evaluate_in(
            &d,
            &d.join("event-car.json"),
            &d.join("reward.json"),
            &d.join("sft/checkpoint.json"),
            &d.join("eval"),
        );
        assert!(out.status.success(), "{}", text(&out));
        d
    })
}

/// `janus evaluate` of the chain's predictions, with the given event-car and rewards.
fn evaluate(event_car: &Path, rewards: &Path, checkpoint: &Path, out: &Path) -> Output {
    evaluate_in(chain(), event_car, rewards, checkpoint, out)
}

fn paths() -> (PathBuf, PathBuf, PathBuf) {
    let d = chain();
    (
        d.join("event-car.json"),
        d.join("reward.json"),
        d.join("eval/evidence.json"),
    )
}

#[test]
fn a_real_chain_verifies_and_reaches_the_gates_with_its_parents() {
    let (car, reward, evidence) = paths();
    let out = janus(&["verify", s(&car), s(&reward), s(&evidence)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("OK ").count(), 3, "{}", text(&out));

    let e = read_evidence_with_parents(&evidence, Some(&car), Some(&reward)).unwrap();
    let c: EventCarArtifact = read_artifact(&car).unwrap();
    let r: HgrmRewardArtifact = read_artifact(&reward).unwrap();
    assert_eq!(e.lineage.parents, vec![c.reference(), r.reference()]);
    assert_eq!(
        (e.counts.events, e.counts.labelled_events, e.counts.rewards),
        (c.summary.events, c.summary.labelled, r.summary.samples)
    );
    // Trained on events whose label windows end before FROM: the embargo holds.
    let w = e.windows.clone().expect("evaluated with --checkpoint");
    assert_eq!(w.held_out_first.to_string(), FROM);
    assert!(w.training_label_end < w.held_out_first, "{w:?}");
    assert!(w.training_cutoff < w.training_label_end, "{w:?}");
    assert_eq!(w.label_horizon_days, c.method.event_window);

    let out = janus(&[
        "gates",
        "--target",
        "paper",
        "--json",
        "--evidence",
        s(&evidence),
        "--event-car",
        s(&car),
        "--rewards",
        s(&reward),
        "--now",
        &e.generated_at.to_rfc3339(),
    ]);
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = decision["gates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["reasons"].as_array().unwrap())
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    for refused in [
        "missing_evidence",
        "contamination",
        "missing_data_windows",
        "evidence_age_days",
    ] {
        assert!(!codes.contains(&refused), "{codes:?}");
    }
}

/// Attack 1: rewards scored on another dataset's labels are refused by `janus evaluate`.
#[test]
fn evaluate_refuses_rewards_scored_on_another_datasets_labels() {
    let (car, _, _) = paths();
    let other = tempfile::tempdir().unwrap();
    labelled(other.path(), "4");
    scored(other.path(), &chain().join("sft/model.json"));
    let other_car: EventCarArtifact = read_artifact(&other.path().join("event-car.json")).unwrap();
    let ours: EventCarArtifact = read_artifact(&car).unwrap();
    let rewards = other.path().join("reward.json");
    let out = evaluate(
        &car,
        &rewards,
        &chain().join("sft/checkpoint.json"),
        &other.path().join("eval"),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!(
        "{}: field `lineage.parents[0].manifest_hash`: recorded {}, actual {} (manifest_hash of {})",
        rewards.display(),
        other_car.manifest_hash(),
        ours.manifest_hash(),
        car.display()
    )), "{t}");
    assert!(!other.path().join("eval/evidence.json").exists());
}

/// Attack 2: a label altered after the rewards were scored, the summary recounted and the
/// artifact re-sealed, agrees with itself, but not with the rewards or the model's checkpoint.
#[test]
fn a_resealed_label_artifact_with_an_altered_label_no_longer_evaluates() {
    let (car, reward, _) = paths();
    let dir = tempfile::tempdir().unwrap();
    let mut a: EventCarArtifact = read_artifact(&car).unwrap();
    let original = a.manifest_hash().clone();
    let label = a
        .records
        .iter_mut()
        .find_map(|r| r.label.as_mut().filter(|l| l.direction == Sign::Positive))
        .unwrap();
    label.car = -label.car;
    label.direction = Sign::Negative;
    a.summary = EventCarSummary::of(&a.records, &a.summary.bad_rows);
    let altered = dir.path().join("event-car.json");
    write_artifact(&altered, &mut a).unwrap();
    // Consistent on its own: the attacker did the bookkeeping.
    let out = janus(&["verify", s(&altered)]);
    assert!(out.status.success(), "{}", text(&out));

    let out = evaluate(
        &altered,
        &reward,
        &chain().join("sft/checkpoint.json"),
        &dir.path().join("e"),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!(
        "{}: field `lineage.parents[0].manifest_hash`: recorded {original}, actual {} (manifest_hash of {})",
        reward.display(),
        a.manifest_hash(),
        altered.display()
    )), "{t}");
    // The model's checkpoint names the original labels too.
    let out = janus(&[
        "evaluate",
        "--event-car",
        s(&altered),
        "--predictions",
        s(&chain().join("predictions.jsonl")),
        "--prices",
        s(&chain().join("data/prices.csv")),
        "--from",
        FROM,
        "--checkpoint",
        s(&chain().join("sft/checkpoint.json")),
        "--out",
        s(&dir.path().join("f")),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("field `dataset_manifest_hash`: recorded"), "{t}");
    // And `janus verify` of the pair names the broken link.
    let out = janus(&["verify", s(&altered), s(&reward)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("lineage.parents[0].manifest_hash"));
}

/// Attack 3: an inflated count, re-sealed: `janus verify` recounts it, `janus evaluate` refuses
/// it, and inflated evidence counts are caught by every reader that holds the parents.
#[test]
fn inflated_counts_are_recounted_and_never_reach_the_gates() {
    let (car, reward, evidence) = paths();
    let dir = tempfile::tempdir().unwrap();
    let mut a: EventCarArtifact = read_artifact(&car).unwrap();
    let n = a.records.len();
    assert_ne!(n, 6000);
    a.summary.events = 6000;
    let inflated = dir.path().join("event-car.json");
    write_artifact(&inflated, &mut a).unwrap();
    let out = janus(&["verify", s(&inflated)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "{}: field `summary.events`: recorded 6000, actual {n} (recounted from records)",
            inflated.display()
        )),
        "{t}"
    );
    let out = evaluate(
        &inflated,
        &reward,
        &chain().join("sft/checkpoint.json"),
        &dir.path().join("e"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("summary.events"));

    // The evidence itself inflated and re-sealed: consistent alone, refused beside its parents.
    let mut e: EvidenceArtifact = read_artifact(&evidence).unwrap();
    let real = e.counts.events;
    e.counts.events = 6000;
    e.counts.labelled_events = 6000;
    let forged = dir.path().join("evidence.json");
    write_artifact(&forged, &mut e).unwrap();
    assert!(janus(&["verify", s(&forged)]).status.success());
    let out = janus(&["verify", s(&car), s(&reward), s(&forged)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let expected = format!(
        "field `counts.events`: recorded 6000, actual {real} (summary of {})",
        car.display()
    );
    assert!(t.contains(&expected), "{t}");
    // The operator's reader and `janus gates` with the parents: unusable evidence.
    match read_evidence_with_parents(&forged, Some(&car), Some(&reward)) {
        Err(ContractError::Mismatch { path, mismatches }) => {
            assert_eq!(path, forged);
            assert!(
                mismatches.iter().any(|m| m.field == "counts.events"),
                "{mismatches:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let out = janus(&[
        "gates",
        "--target",
        "paper",
        "--json",
        "--evidence",
        s(&forged),
        "--event-car",
        s(&car),
        "--rewards",
        s(&reward),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gate6 = decision["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "gate6")
        .unwrap();
    assert_eq!(gate6["reasons"][0]["code"], "missing_evidence");
    assert!(
        gate6["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&expected)
    );
}

/// Attack 4: a reward configuration edited after scoring, re-sealed, no longer matches its
/// recorded `run_config_hash`.
#[test]
fn a_reward_config_that_no_longer_matches_its_hash_is_refused() {
    let (_, reward, _) = paths();
    let dir = tempfile::tempdir().unwrap();
    let mut r: HgrmRewardArtifact = read_artifact(&reward).unwrap();
    let recorded = r.lineage.run_config_hash.clone();
    r.config["kappa"] = serde_json::json!(0.5);
    let actual = janus::contracts::canonical_hash(&r.config).unwrap();
    let edited = dir.path().join("reward.json");
    write_artifact(&edited, &mut r).unwrap();
    let out = janus(&["verify", s(&edited)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!(
        "{}: field `lineage.run_config_hash`: recorded \"{recorded}\", actual \"{actual}\" (canonical hash of `config`)",
        edited.display()
    )), "{t}");
}

/// The embargo through the product: a model trained on every label (no --until) has seen the
/// held-out window's returns, and gate1 says so.
#[test]
fn a_model_trained_into_the_held_out_window_is_refused_by_gate1() {
    let (car, reward, _) = paths();
    let dir = tempfile::tempdir().unwrap();
    let sft = dir.path().join("sft");
    ok(&[
        "train",
        "sft",
        "--event-car",
        s(&car),
        "--epochs",
        "1",
        "--out",
        s(&sft),
    ]);
    let out = janus(&[
        "evaluate",
        "--event-car",
        s(&car),
        "--predictions",
        s(&chain().join("predictions.jsonl")),
        "--prices",
        s(&chain().join("data/prices.csv")),
        "--rewards",
        s(&reward),
        "--from",
        FROM,
        "--checkpoint",
        s(&sft.join("checkpoint.json")),
        "--out",
        s(&dir.path().join("e")),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let evidence = dir.path().join("e/evidence.json");
    let e: EvidenceArtifact = read_artifact(&evidence).unwrap();
    let out = janus(&[
        "gates",
        "--target",
        "paper",
        "--json",
        "--evidence",
        s(&evidence),
        "--now",
        &e.generated_at.to_rfc3339(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gate1 = decision["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "gate1")
        .unwrap();
    assert!(
        gate1["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "contamination"),
        "{gate1}"
    );
}
