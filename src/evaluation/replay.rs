//! Reproducibility: two independent evaluations of the same candidate must agree. The verdict
//! names every difference: lineage hashes that differ, metrics or deltas beyond the tolerance,
//! metrics present in one but not the other.

use crate::contracts::evidence::EvidenceArtifact;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub matched: bool,
    pub tolerance: f64,
    pub differences: Vec<String>,
}

pub fn compare(a: &EvidenceArtifact, b: &EvidenceArtifact, tolerance: f64) -> Verdict {
    let mut differences = Vec::new();
    let (la, lb) = (&a.lineage, &b.lineage);
    for (name, x, y) in [
        (
            "lineage.dataset_snapshot_hash",
            &la.dataset_snapshot_hash,
            &lb.dataset_snapshot_hash,
        ),
        (
            "lineage.run_config_hash",
            &la.run_config_hash,
            &lb.run_config_hash,
        ),
        ("lineage.schema_hash", &la.schema_hash, &lb.schema_hash),
    ] {
        if x != y {
            differences.push(format!("{name}: {x} vs {y}"));
        }
    }
    if a.model_sha256 != b.model_sha256 {
        differences.push("model_sha256 differs".into());
    }
    let mut numbers = |prefix: &str,
                       x: &std::collections::BTreeMap<String, f64>,
                       y: &std::collections::BTreeMap<String, f64>| {
        let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        for k in keys {
            match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) if (p - q).abs() <= tolerance => {}
                (Some(p), Some(q)) => differences.push(format!(
                    "{prefix}.{k}: {p} vs {q} (|Δ| {} > {tolerance})",
                    (p - q).abs()
                )),
                (Some(_), None) => differences.push(format!("{prefix}.{k}: only in the first")),
                (None, Some(_)) => differences.push(format!("{prefix}.{k}: only in the second")),
                (None, None) => {}
            }
        }
    };
    numbers("metrics", &a.metrics, &b.metrics);
    numbers("baseline_metrics", &a.baseline_metrics, &b.baseline_metrics);
    let flat = |e: &EvidenceArtifact| -> std::collections::BTreeMap<String, f64> {
        e.deltas
            .iter()
            .flat_map(|(k, d)| {
                [
                    (format!("{k}.value"), d.value),
                    (format!("{k}.ci_lower"), d.ci_lower),
                    (format!("{k}.ci_upper"), d.ci_upper),
                    (format!("{k}.p_value"), d.p_value),
                ]
            })
            .collect()
    };
    numbers("deltas", &flat(a), &flat(b));
    Verdict {
        matched: differences.is_empty(),
        tolerance,
        differences,
    }
}
