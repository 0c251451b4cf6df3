//! The contracts' promises: canonical hashing is layout-independent and content-sensitive,
//! artifacts round-trip byte-identically, an independent RFC 8785 implementation agrees, and
//! readers (and `janus verify`) fail closed with messages that name the file and the field.

mod common;

use janus::contracts::artifact::manifest_hash_of;
use janus::contracts::jcs::to_canonical_string;
use janus::contracts::{
    Artifact, ArtifactKind, ContractError, canonical_hash, read_artifact, verify_bytes,
    write_artifact,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------- property tests of the canonical hash ----------

/// Doubles whose ECMAScript form is an integer token beyond 2^53 − 1 (magnitudes in
/// [2^53, 10^21)) canonicalize fine but cannot be read back by any JCS implementation as
/// integers; they are left out of the round-trip properties.
fn reads_back_as_double(f: f64) -> bool {
    f.is_finite() && !(9007199254740992.0..1e21).contains(&f.abs())
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-((1i64 << 53) - 1)..(1i64 << 53)).prop_map(Value::from),
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("reads back as a double", |f| reads_back_as_double(*f))
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Writes `value` as JSON text with object members in a seed-dependent order and arbitrary
/// insignificant whitespace.
fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn scrambled(value: &Value, seed: &mut u64, out: &mut String) {
    let next = |s: &mut u64| xorshift(s);
    let ws = [" ", "\n", "\t", "\r\n  ", ""];
    out.push_str(ws[(next(seed) % 5) as usize]);
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                scrambled(item, seed, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            let rot = (next(seed) as usize) % members.len().max(1);
            members.rotate_left(rot);
            if next(seed) % 2 == 0 {
                members.reverse();
            }
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(ws[(next(seed) % 5) as usize]);
                out.push(':');
                scrambled(v, seed, out);
            }
            out.push('}');
        }
        // Non-shortest but equal spellings of the same double.
        Value::Number(n) if n.is_f64() => out.push_str(&format!("{:e}", n.as_f64().unwrap())),
        other => out.push_str(&other.to_string()),
    }
    out.push_str(ws[(next(seed) % 5) as usize]);
}

/// Paths to every leaf of `value`.
fn leaf_paths(value: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match value {
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(PathStep::Index(i));
                leaf_paths(item, prefix, out);
                prefix.pop();
            }
        }
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(PathStep::Key(k.clone()));
                leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Index(usize),
    Key(String),
}

fn at_mut<'a>(value: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(value, |v, step| match step {
        PathStep::Index(i) => &mut v[*i],
        PathStep::Key(k) => &mut v[k.as_str()],
    })
}

/// A different value of the same leaf.
fn mutated(leaf: &Value) -> Value {
    match leaf {
        Value::Null => json!(0),
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap();
            let g = if f == 0.0 {
                5e-324
            } else {
                f64::from_bits(f.to_bits() ^ 1)
            };
            json!(g)
        }
        Value::Number(n) => json!(n.as_i64().unwrap() ^ 1),
        Value::String(s) => Value::String(format!("{s}x")),
        Value::Array(_) => json!([null]),
        Value::Object(_) => json!({"": null}),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hash_ignores_member_order_whitespace_and_number_spelling(value in json_value(), seed in 1u64..) {
        let mut text = String::new();
        let mut s = seed;
        scrambled(&value, &mut s, &mut text);
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(canonical_hash(&reparsed).unwrap(), canonical_hash(&value).unwrap());
        let pretty: Value = serde_json::from_str(&serde_json::to_string_pretty(&value).unwrap()).unwrap();
        prop_assert_eq!(canonical_hash(&pretty).unwrap(), canonical_hash(&value).unwrap());
        // The canonical form is a fixed point.
        let canon = to_canonical_string(&value).unwrap();
        let again: Value = serde_json::from_str(&canon).unwrap();
        prop_assert_eq!(to_canonical_string(&again).unwrap(), canon);
    }

    #[test]
    fn hash_changes_when_any_value_changes(value in json_value(), pick in any::<prop::sample::Index>()) {
        let mut paths = Vec::new();
        leaf_paths(&value, &mut Vec::new(), &mut paths);
        let path = &paths[pick.index(paths.len())];
        let mut changed = value.clone();
        let leaf = at_mut(&mut changed, path);
        *leaf = mutated(leaf);
        prop_assert_ne!(canonical_hash(&changed).unwrap(), canonical_hash(&value).unwrap());
    }
}

/// Any finite double, drawn over its whole bit range, plus the range [2^53, 1e21) that RFC 8785
/// writes as integer tokens.
fn any_finite_double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |x| x.is_finite()),
        (9007199254740992.0f64..1e21).prop_map(|x| x.trunc()),
        (-1e21f64..-9007199254740992.0).prop_map(|x| x.trunc()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// canonicalize(parse(canonical text)) is the identity for every double, and the text reads
    /// back as the same double (jcs_roundtrip_large_double: 1e17 was written as
    /// `100000000000000000` and then refused by the reader).
    #[test]
    fn canonical_numbers_read_back_as_the_same_double(x in any_finite_double()) {
        let canon = to_canonical_string(&json!([x])).unwrap();
        let parsed = janus::contracts::strict_json::from_slice(canon.as_bytes()).unwrap();
        prop_assert_eq!(to_canonical_string(&parsed).unwrap(), canon.clone());
        let back = parsed[0].as_f64().unwrap();
        prop_assert!(back == x, "{} read back as {} from {}", x, back, canon);
    }
}

// ---------- artifacts ----------

fn write_samples(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut a = common::event_car();
    let p = dir.join("event-car.json");
    write_artifact(&p, &mut a).unwrap();
    paths.push(p);
    let mut r = common::reward();
    let p = dir.join("reward.json");
    write_artifact(&p, &mut r).unwrap();
    paths.push(p);
    let mut e = common::evidence();
    let p = dir.join("evidence.json");
    write_artifact(&p, &mut e).unwrap();
    paths.push(p);
    paths
}

#[test]
fn artifacts_round_trip_and_rewrite_byte_identically() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_samples(dir.path());
    let first: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();

    let again = tempfile::tempdir().unwrap();
    let paths_again = write_samples(again.path());
    for (a, b) in first.iter().zip(&paths_again) {
        assert_eq!(
            a,
            &std::fs::read(b).unwrap(),
            "rewrite of {} differs",
            b.display()
        );
    }

    let car: janus::contracts::event_car::EventCarArtifact = read_artifact(&paths[0]).unwrap();
    let mut expected = common::event_car();
    janus::contracts::seal(&mut expected).unwrap();
    assert_eq!(car, expected);
    let reward: janus::contracts::reward::HgrmRewardArtifact = read_artifact(&paths[1]).unwrap();
    assert_eq!(reward.lineage.parents, vec![car.reference()]);
}

#[test]
fn independent_rfc8785_implementation_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = write_samples(dir.path());
    let mut ours: Vec<String> = files
        .iter()
        .map(|p| {
            verify_bytes(p, &std::fs::read(p).unwrap())
                .unwrap()
                .manifest_hash
                .to_string()
        })
        .collect();
    // Plus random documents with awkward numbers and strings.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for i in 0..300 {
        let value = json_value().new_tree(&mut runner).unwrap().current();
        let p = dir.path().join(format!("random-{i}.json"));
        std::fs::write(&p, serde_json::to_vec(&value).unwrap()).unwrap();
        ours.push(manifest_hash_of(&value).unwrap().to_string());
        files.push(p);
    }
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/jcs_crosscheck.py"
        ))
        .args(&files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(theirs.len(), ours.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "hash of {} differs", files[i].display());
    }
}

fn sample_value() -> Value {
    let mut a = common::event_car();
    serde_json::from_slice(&janus::contracts::seal(&mut a).unwrap()).unwrap()
}

fn verify_err(value: &Value) -> ContractError {
    verify_bytes(
        Path::new("x/event-car.json"),
        &serde_json::to_vec(value).unwrap(),
    )
    .unwrap_err()
}

#[test]
fn values_json_cannot_carry_are_refused_when_sealing() {
    let mut a = common::event_car();
    a.records[0].car_market_model = Some(f64::NAN);
    let err = janus::contracts::seal(&mut a).unwrap_err().to_string();
    assert!(err.contains("NaN is not finite"), "{err}");
}

#[test]
fn typed_and_parsed_forms_hash_the_same() {
    let mut a = common::evidence();
    let text = janus::contracts::seal(&mut a).unwrap();
    let parsed: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(
        manifest_hash_of(&parsed).unwrap(),
        manifest_hash_of(&a).unwrap()
    );
    assert_eq!(to_canonical_string(&parsed).unwrap().as_bytes(), &text[..]);
}

#[test]
fn tampering_with_any_value_is_detected() {
    let mut v = sample_value();
    v["records"][0]["label"]["car"] = json!(0.5);
    let msg = verify_err(&v).to_string();
    assert!(
        msg.starts_with("x/event-car.json: manifest_hash is "),
        "{msg}"
    );
    assert!(msg.contains("changed after it was sealed"), "{msg}");
}

#[test]
fn unknown_versions_are_refused_naming_the_expected_one() {
    let mut v = sample_value();
    v["schema_version"] = json!("janus-event-car-v2");
    let msg = verify_err(&v).to_string();
    assert_eq!(
        msg,
        "x/event-car.json: field `schema_version` is 'janus-event-car-v2'; this build reads janus-event-car-v1"
    );
    v.as_object_mut().unwrap().remove("schema_version");
    let msg = verify_err(&v).to_string();
    assert!(
        msg.starts_with(
            "x/event-car.json: missing field `schema_version` (expected one of: janus-event-car-v1"
        ),
        "{msg}"
    );
}

#[test]
fn missing_and_malformed_fields_are_named() {
    let mut v = sample_value();
    v["lineage"]
        .as_object_mut()
        .unwrap()
        .remove("run_config_hash");
    let msg = verify_err(&v).to_string();
    assert!(
        msg.contains("does not conform to janus-event-car-v1"),
        "{msg}"
    );
    assert!(
        msg.contains("at /lineage: \"run_config_hash\" is a required property"),
        "{msg}"
    );

    let mut v = sample_value();
    v["records"][1]["event_type"] = json!("merger");
    let msg = verify_err(&v).to_string();
    assert!(msg.contains("at /records/1/event_type"), "{msg}");

    let mut v = sample_value();
    v["manifest_hash"] = json!("ABC");
    assert!(verify_err(&v).to_string().contains("at /manifest_hash"));
}

#[test]
fn inconsistent_lineage_is_refused() {
    let mut v = sample_value();
    v["lineage"]["inputs"]["prices"]["bytes"] = json!(7);
    v["manifest_hash"] = json!(manifest_hash_of(&v).unwrap().to_string());
    let msg = verify_err(&v).to_string();
    assert!(msg.contains("lineage.dataset_snapshot_hash is"), "{msg}");
    assert!(
        !msg.contains("manifest_hash is"),
        "resealed, so only the lineage is wrong: {msg}"
    );
}

#[test]
fn garbage_is_refused_without_panicking() {
    let p = Path::new("bad.json");
    for bytes in [
        &b""[..],
        b"{",
        b"[]",
        b"null",
        b"{\"schema_version\": 1}",
        b"\xff\xfe",
        b"{\"a\":1,\"a\":2}",
    ] {
        let err = verify_bytes(p, bytes).unwrap_err().to_string();
        assert!(err.starts_with("bad.json: "), "{err}");
    }
    let err = verify_bytes(
        p,
        b"{\n  \"schema_version\": \"janus-event-car-v1\",\n  oops}",
    )
    .unwrap_err();
    assert!(matches!(err, ContractError::Json { line: 3, .. }), "{err}");
}

#[test]
fn reading_the_wrong_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_samples(dir.path());
    let err = read_artifact::<janus::contracts::evidence::EvidenceArtifact>(&paths[0]).unwrap_err();
    assert!(
        err.to_string()
            .contains("is a janus-event-car-v1 artifact, but janus-q-evidence-v1 was expected"),
        "{err}"
    );
}

#[test]
fn every_schema_field_is_documented_or_self_describing() {
    // Every artifact property carries a description, except those whose name and type say all.
    fn walk(schema: &Value, path: &str, undocumented: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let self_describing = matches!(
                    name.as_str(),
                    "event_id"
                        | "symbol"
                        | "title"
                        | "date"
                        | "alpha"
                        | "beta"
                        | "r_squared"
                        | "samples"
                        | "events"
                        | "labelled_events"
                        | "rewards"
                        | "predictions"
                        | "trades"
                        | "trading_days"
                        | "value"
                        | "ci_lower"
                        | "ci_upper"
                        | "p_value"
                        | "seed"
                        | "resamples"
                        | "folds"
                        | "complete"
                        | "lineage"
                        | "summary"
                        | "generated_at"
                        | "config"
                        | "method"
                        | "records"
                        | "counts"
                        | "prediction"
                        | "direction"
                        | "strength"
                        | "mean_final_reward"
                        | "mean_pnl_reward"
                        | "window_start"
                        | "window_end"
                        | "final_reward"
                        | "clipped"
                );
                if prop.get("description").is_none() && !self_describing {
                    undocumented.push(format!("{path}.{name}"));
                }
            }
        }
        if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
            for (name, def) in defs {
                walk(def, name, undocumented);
            }
        }
    }
    let mut undocumented = Vec::new();
    for kind in ArtifactKind::ALL {
        walk(kind.schema(), kind.version(), &mut undocumented);
    }
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
}

#[test]
fn checked_in_schemas_are_what_this_build_generates() {
    for kind in ArtifactKind::ALL {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/contracts")
            .join(kind.schema_file_name());
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let mut generated = serde_json::to_string_pretty(kind.schema()).unwrap();
        generated.push('\n');
        assert!(
            on_disk == generated,
            "{} is stale: run `janus schema --out docs/contracts`",
            path.display()
        );
    }
}

// ---------- the CLI ----------

fn janus(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_janus"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn janus_verify_says_ok_or_exactly_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_samples(dir.path());
    let args: Vec<&str> = std::iter::once("verify")
        .chain(paths.iter().map(|p| p.to_str().unwrap()))
        .collect();
    let out = janus(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("OK ").count(),
        3
    );

    let text = std::fs::read_to_string(&paths[0]).unwrap().replacen(
        "\"symbol\":\"600000.SH\"",
        "\"symbol\":\"600001.SH\"",
        1,
    );
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, text).unwrap();
    let out = janus(&[
        "verify",
        paths[1].to_str().unwrap(),
        tampered.to_str().unwrap(),
        "/nonexistent.json",
    ]);
    // A missing file among them: a usage error (2), not only a failed check.
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("OK      {}", paths[1].display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("tampered.json: manifest_hash is"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/nonexistent.json: cannot read"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 3 artifacts failed"));
}

#[test]
fn janus_schema_prints_and_writes_schemas() {
    let out = janus(&["schema", "janus-q-evidence-v1"]);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(&printed, ArtifactKind::Evidence.schema());

    let out = janus(&["schema", "janus-nope-v1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown contract 'janus-nope-v1'"));
}

/// Outputs of one run are committed as a set: a crash injected between two renames leaves part
/// of the new set and nothing of the old one beside it, and no temporaries.
#[test]
fn an_output_set_never_mixes_runs() {
    use janus::contracts::artifact::{write_set, write_set_with};
    let dir = tempfile::tempdir().unwrap();
    let names = ["report.md", "evaluation.json", "evidence.json"];
    let old: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, b"old".as_slice())).collect();
    write_set(dir.path(), &old).unwrap();
    let new: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, b"new".as_slice())).collect();
    for crash_after in 0..names.len() - 1 {
        write_set(dir.path(), &old).unwrap();
        let err = write_set_with(dir.path(), &new, |i| {
            if i == crash_after {
                Err(std::io::Error::other("injected crash"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("injected crash"), "{err}");
        let mut listing: Vec<(String, String)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        listing.sort();
        let mut expected: Vec<(String, String)> = names[..=crash_after]
            .iter()
            .map(|n| (n.to_string(), "new".to_string()))
            .collect();
        expected.sort();
        assert_eq!(listing, expected, "crash after rename {crash_after}");
    }
    write_set(dir.path(), &new).unwrap();
    for n in names {
        assert_eq!(std::fs::read(dir.path().join(n)).unwrap(), b"new");
    }
}
