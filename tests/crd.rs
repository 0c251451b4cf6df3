//! The CustomResourceDefinitions: structural schemas the API server accepts, strict enough to
//! refuse nonsense, with the columns and conditions users rely on; checked in as generated.

use serde_json::Value;

fn crds() -> Vec<Value> {
    janus::crd::definitions()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect()
}

fn schema_of(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

/// Structural-schema rules of apiextensions/v1: every node has a type (or preserves unknown
/// fields), and there are no references or type unions.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{path}: not an object schema"));
        return;
    };
    for banned in [
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "const",
        "definitions",
        "$defs",
    ] {
        if obj.contains_key(banned) {
            problems.push(format!("{path}: has {banned}"));
        }
    }
    let preserves = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    match obj.get("type") {
        Some(Value::String(_)) => {}
        None if preserves => {}
        other => problems.push(format!("{path}: type is {other:?}")),
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_structural(v, &format!("{path}.{k}"), problems);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{path}[]"), problems);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        check_structural(extra, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn schemas_are_structural() {
    for crd in crds() {
        let mut problems = Vec::new();
        check_structural(
            schema_of(&crd),
            crd["metadata"]["name"].as_str().unwrap(),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn nonsense_is_refused_by_the_schema_itself() {
    let all = crds();
    let find = |kind: &str| {
        all.iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .unwrap()
            .clone()
    };
    let promo = find("PromotionRequest");
    let spec = &schema_of(&promo)["properties"]["spec"];
    assert_eq!(
        spec["properties"]["target"]["enum"],
        serde_json::json!(["paper", "canary"])
    );
    for limit in ["maxOrderNotional", "maxGrossNotional", "maxNetNotional"] {
        assert_eq!(
            spec["properties"]["canary"]["properties"][limit]["minimum"], 0.0,
            "{limit}"
        );
    }
    assert_eq!(spec["properties"]["killSwitch"]["default"], false);
    assert_eq!(spec["properties"]["killSwitch"]["type"], "boolean");

    let run = find("JanusRun");
    let dataset = &schema_of(&run)["properties"]["spec"]["properties"]["dataset"];
    assert_eq!(dataset["properties"]["sha256"]["pattern"], "^[0-9a-f]{64}$");
    assert!(
        dataset["required"]
            .as_array()
            .unwrap()
            .contains(&"sha256".into())
    );
    let cand = find("JanusCandidate");
    let model = &schema_of(&cand)["properties"]["spec"]["properties"]["model"];
    assert_eq!(model["properties"]["sha256"]["pattern"], "^[0-9a-f]{64}$");
    assert_eq!(
        model["properties"]["format"]["enum"],
        serde_json::json!(["onnx"])
    );
}

#[test]
fn conditions_are_list_maps_and_kubectl_shows_phase_and_stage() {
    for crd in crds() {
        let conditions = &schema_of(&crd)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], serde_json::json!({}));
        assert!(
            crd["spec"]["names"]["shortNames"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
        );
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["group"], "janus.torghut.io");
    }
    let promo = crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == "PromotionRequest")
        .unwrap();
    let columns: Vec<&str> = promo["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(columns.contains(&"Stage") && columns.contains(&"Phase") && columns.contains(&"Kill"));
}

#[test]
fn checked_in_crds_are_what_this_build_generates() {
    for (file, yaml) in janus::crd::definitions_yaml() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crds")
            .join(&file);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == yaml,
            "{} is stale: run `janus crd --out crds`",
            path.display()
        );
    }
}

/// The range a Rust integer of the schema's `format` holds, limited to what every JSON reader
/// holds exactly (±(2^53 − 1)): written out from the type widths, not taken from the code.
fn range_of(format: Option<&str>) -> (f64, f64) {
    let safe = 9_007_199_254_740_991_f64; // 2^53 − 1
    match format {
        Some("uint8") => (0.0, 255.0),
        Some("uint16") => (0.0, 65_535.0),
        Some("uint32") => (0.0, 4_294_967_295.0),
        Some("uint64") | Some("uint") => (0.0, safe),
        Some("int8") => (-128.0, 127.0),
        Some("int16") => (-32_768.0, 32_767.0),
        Some("int32") => (-2_147_483_648.0, 2_147_483_647.0),
        _ => (-safe, safe),
    }
}

fn check_integers(node: &Value, path: &str, found: &mut usize, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else { return };
    if obj.get("type") == Some(&Value::from("integer")) {
        *found += 1;
        let format = obj.get("format").and_then(Value::as_str);
        let (lo, hi) = range_of(format);
        match (
            obj.get("minimum").and_then(Value::as_f64),
            obj.get("maximum").and_then(Value::as_f64),
        ) {
            (Some(min), Some(max)) => {
                if min < lo || max > hi || min > max {
                    problems.push(format!(
                        "{path} ({format:?}): [{min}, {max}] does not fit [{lo}, {hi}]"
                    ));
                }
            }
            other => problems.push(format!("{path} ({format:?}): bounds {other:?}")),
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_integers(v, &format!("{path}.{k}"), found, problems);
        }
    }
    if let Some(items) = obj.get("items") {
        check_integers(items, &format!("{path}[]"), found, problems);
    }
    if let Some(extra) = obj.get("additionalProperties") {
        check_integers(extra, &format!("{path}{{}}"), found, problems);
    }
}

#[test]
fn every_integer_carries_the_bounds_its_rust_type_needs() {
    let mut found = 0;
    let mut problems = Vec::new();
    for crd in crds() {
        check_integers(
            schema_of(&crd),
            crd["metadata"]["name"].as_str().unwrap(),
            &mut found,
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        found > 20,
        "only {found} integer schemas found: is the walk right?"
    );
    // The case that stalled the operator: a u32 the API server stored at 2^32.
    let run = crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == "JanusRun")
        .unwrap();
    let holding = &schema_of(&run)["properties"]["spec"]["properties"]["evaluation"]["properties"]
        ["backtest"]["properties"]["holding_days"];
    assert_eq!(holding["maximum"].as_f64(), Some(4_294_967_295.0));
    // A tighter bound written on the type stays.
    let epochs = &schema_of(&run)["properties"]["spec"]["properties"]["training"]["properties"]["sft"]
        ["properties"]["epochs"];
    assert_eq!(epochs["minimum"].as_f64(), Some(1.0));
    assert_eq!(epochs["maximum"].as_f64(), Some(1000.0));
}

/// The digest an approval binds (docs/gates.md): SHA-256 of the spec's RFC 8785 canonical JSON
/// without `killSwitch`. Expected values: `hashlib.sha256` over the canonical texts written out
/// by hand here (Python one-liner), not over this crate's encoder.
#[test]
fn an_approval_binds_the_spec_without_the_kill_switch() {
    use janus::crd::{CanaryLimits, PromotionRequestSpec};
    use janus::gates::Target;
    let mut spec = PromotionRequestSpec {
        candidate: "c1".into(),
        target: Target::Canary,
        canary: Some(CanaryLimits {
            symbols: vec!["AAPL".into()],
            max_order_notional: 100.0,
            max_gross_notional: 1000.0,
            max_net_notional: 1000.0,
        }),
        kill_switch: false,
    };
    // {"canary":{"maxGrossNotional":1000,"maxNetNotional":1000,"maxOrderNotional":100,
    //  "symbols":["AAPL"]},"candidate":"c1","target":"canary"}
    let narrow = "5d6ddc5be24fa4ac9c97eccf1e0d40b68af9e1a48bb8cb08ed87be11a1531978";
    assert_eq!(spec.approved_terms_sha256().unwrap().as_str(), narrow);
    spec.kill_switch = true;
    assert_eq!(spec.approved_terms_sha256().unwrap().as_str(), narrow);
    spec.canary.as_mut().unwrap().symbols.push("TSLA".into());
    assert_ne!(spec.approved_terms_sha256().unwrap().as_str(), narrow);
    // {"canary":null,"candidate":"c1","target":"paper"}
    let paper = PromotionRequestSpec {
        candidate: "c1".into(),
        target: Target::Paper,
        canary: None,
        kill_switch: false,
    };
    assert_eq!(
        paper.approved_terms_sha256().unwrap().as_str(),
        "4c1b167eb4f6eae5b470905579ba090e7b222ff8bee6e887ca918712ca6694aa"
    );
}

fn check_sizes(node: &Value, path: &str, found: &mut usize, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        return;
    };
    let bounded = |key: &str| obj.get(key).and_then(Value::as_u64).is_some();
    match obj.get("type").and_then(Value::as_str) {
        Some("string") if !obj.contains_key("enum") => {
            *found += 1;
            if !bounded("maxLength") {
                problems.push(format!("{path}: a string without maxLength"));
            }
        }
        Some("array") => {
            *found += 1;
            if !bounded("maxItems") {
                problems.push(format!("{path}: a list without maxItems"));
            }
        }
        Some("object") if obj.contains_key("additionalProperties") => {
            *found += 1;
            if !bounded("maxProperties") {
                problems.push(format!("{path}: a map without maxProperties"));
            }
        }
        _ => {}
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (name, sub) in props {
            check_sizes(sub, &format!("{path}.{name}"), found, problems);
        }
    }
    if let Some(items) = obj.get("items") {
        check_sizes(items, &format!("{path}[]"), found, problems);
    }
    if let Some(extra) = obj.get("additionalProperties") {
        check_sizes(extra, &format!("{path}{{}}"), found, problems);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in obj.get(key).and_then(Value::as_array).into_iter().flatten() {
            check_sizes(sub, path, found, problems);
        }
    }
}

/// No list, string or map of our objects is unbounded (issue 16 review: a PromotionRequest
/// large enough to make the webhook answer 413 slipped past it on UPDATE), and the fields people
/// write carry their own, tighter bounds.
#[test]
fn every_list_string_and_map_is_bounded() {
    let mut found = 0;
    let mut problems = Vec::new();
    for crd in crds() {
        check_sizes(
            schema_of(&crd),
            crd["metadata"]["name"].as_str().unwrap(),
            &mut found,
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        found > 60,
        "only {found} sized schemas found: is the walk right?"
    );
    let promo = crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == "PromotionRequest")
        .unwrap();
    let spec = &schema_of(&promo)["properties"]["spec"]["properties"];
    let symbols = &spec["canary"]["properties"]["symbols"];
    assert_eq!(
        symbols["maxItems"].as_u64(),
        Some(janus::crd::MAX_CANARY_SYMBOLS as u64)
    );
    assert_eq!(symbols["minItems"].as_u64(), Some(1));
    assert_eq!(symbols["items"]["maxLength"].as_u64(), Some(32));
    assert_eq!(spec["candidate"]["maxLength"].as_u64(), Some(253));
    // The status keeps at most MAX_HISTORY transitions, inside its bound.
    let history = &schema_of(&promo)["properties"]["status"]["properties"]["history"];
    assert!(history["maxItems"].as_u64().unwrap() >= janus::promotion::MAX_HISTORY as u64);
}
