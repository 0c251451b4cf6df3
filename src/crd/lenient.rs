//! [`Lenient<K>`]: one of our resources as the API server lists it, read even when its content
//! does not fit `K`. The operator watches every kind through it, so one object the Rust types
//! refuse (a value stored under an older CRD, a hand edit) never fails a watcher's list: that
//! object arrives with `parsed: Err(..)` naming the refused field, and everything else reads on.

use super::{Condition, Conditions};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;

/// Why an object does not read as its kind: where (a JSON path such as
/// `spec.evaluation.backtest.holding_days`, from serde_path_to_error) and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Unreadable {
    /// The JSON path of the refused value; `.` for the object as a whole.
    pub path: String,
    /// What the types said about it.
    pub message: String,
}

/// An object of kind `K`, read leniently: its metadata always, `K` itself when it reads, and its
/// stored `status.conditions` on their own (so a condition can be added to an unreadable object
/// without losing the others). As a [`Resource`] it is `K`'s kind, group, version and plural, so
/// `Api<Lenient<K>>` and `Controller<Lenient<K>>` address exactly what `Api<K>` does.
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient<K> {
    pub metadata: ObjectMeta,
    /// The object as `K`, or why it does not read.
    pub parsed: Result<K, Unreadable>,
    /// `status.conditions` as stored; empty when absent or unreadable themselves.
    pub conditions: Conditions,
}

impl<K> Lenient<K> {
    /// The object as `K`, when it reads.
    pub fn readable(&self) -> Option<&K> {
        self.parsed.as_ref().ok()
    }
}

impl<K: DeserializeOwned> Lenient<K> {
    /// Reads a JSON object; never fails: what does not fit `K` is recorded in `parsed`.
    pub fn from_value(value: serde_json::Value) -> Self {
        let conditions = value
            .pointer("/status/conditions")
            .and_then(|c| Vec::<Condition>::deserialize(c).ok())
            .map(Conditions)
            .unwrap_or_default();
        let metadata = value
            .get("metadata")
            .map(|m| ObjectMeta::deserialize(m).unwrap_or_else(|_| identity(m)))
            .unwrap_or_default();
        let parsed = serde_path_to_error::deserialize::<_, K>(value).map_err(|e| {
            let path = e.path().to_string();
            Unreadable {
                path,
                message: e.into_inner().to_string(),
            }
        });
        Lenient {
            metadata,
            parsed,
            conditions,
        }
    }
}

/// What identifies an object whose metadata as a whole does not read (name, namespace, uid,
/// resourceVersion, generation), so it can still be addressed and reported.
fn identity(meta: &serde_json::Value) -> ObjectMeta {
    let text = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_string);
    ObjectMeta {
        name: text("name"),
        namespace: text("namespace"),
        uid: text("uid"),
        resource_version: text("resourceVersion"),
        generation: meta.get("generation").and_then(|g| g.as_i64()),
        ..Default::default()
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    /// Any JSON object reads; only something that is not an object at all is an error.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(D::Error::custom(
                "expected a Kubernetes object (a JSON object)",
            ));
        }
        Ok(Self::from_value(value))
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{JanusRun, PromotionRequest};
    use kube::core::ObjectList;

    fn run(name: &str, holding_days: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "janus.torghut.io/v1alpha1",
            "kind": "JanusRun",
            "metadata": {"name": name, "namespace": "janus", "uid": format!("uid-{name}"), "resourceVersion": "7"},
            "spec": {
                "dataset": {"uri": "datasets/d1", "sha256": "a".repeat(64)},
                "training": {
                    "promptTemplate": {"uri": "config/prompt-template.txt", "sha256": "b".repeat(64)},
                    "sft": {"seed": 7, "epochs": 2, "learningRate": 0.005},
                    "grpo": {"seed": 8, "steps": 20, "groupSize": 4, "learningRate": 0.002,
                             "klCoef": 0.04, "clipRange": 0.2, "maxGradNorm": 1.0}
                },
                "evaluation": {"backtest": {"holding_days": holding_days}},
                "artifacts": {"claimName": "janus-artifacts"},
                "heldOutFrom": "2023-09-01"
            },
            "status": {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running",
                                        "lastTransitionTime": "2026-11-28T08:00:00Z"}]}
        })
    }

    #[test]
    fn a_list_with_one_malformed_object_still_yields_the_others() {
        let list = serde_json::json!({
            "apiVersion": "janus.torghut.io/v1alpha1",
            "kind": "JanusRunList",
            "metadata": {"resourceVersion": "9"},
            "items": [run("good-1", 2.into()), run("bad", 4294967296u64.into()), run("good-2", 3.into())]
        });
        // The strict type fails the whole list: the failure this wrapper exists for.
        assert!(serde_json::from_value::<ObjectList<JanusRun>>(list.clone()).is_err());
        let list: ObjectList<Lenient<JanusRun>> = serde_json::from_value(list).unwrap();
        let names: Vec<_> = list
            .items
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["good-1", "bad", "good-2"]);
        let good = list.items[0].readable().expect("reads");
        assert_eq!(
            good.spec.evaluation.as_ref().unwrap().backtest.holding_days,
            2
        );
        assert_eq!(
            list.items[2].readable().unwrap().metadata.name.as_deref(),
            Some("good-2")
        );
        let why = list.items[1].parsed.as_ref().unwrap_err();
        assert_eq!(why.path, "spec.evaluation.backtest.holding_days");
        assert!(why.message.contains("4294967296"), "{why}");
        // The unreadable object is still addressable, with its stored conditions.
        assert_eq!(list.items[1].metadata.uid.as_deref(), Some("uid-bad"));
        assert_eq!(
            list.items[1].metadata.resource_version.as_deref(),
            Some("7")
        );
        assert_eq!(list.items[1].conditions.0[0].type_, "Succeeded");
    }

    #[test]
    fn a_fixed_object_whose_status_holds_only_the_invalid_spec_condition_reads() {
        // What the operator leaves on an object that was unreadable before its first status:
        // `status.conditions` alone. Once the spec is fixed, the object must read again.
        let mut fixed = run("r", 2.into());
        fixed["status"] = serde_json::json!({"conditions": [{"type": "InvalidSpec",
            "status": "True", "reason": "Unreadable", "message": "m",
            "lastTransitionTime": "2026-11-28T08:00:00Z"}]});
        let obj = Lenient::<JanusRun>::from_value(fixed);
        let status = obj.readable().expect("reads").status.clone().unwrap();
        assert!(status.steps.is_empty());
        assert_eq!(status.conditions.0.len(), 1);
        let pr = serde_json::json!({"metadata": {"name": "p"}, "spec": {"candidate": "c", "target": "paper"},
            "status": {"conditions": []}});
        assert!(
            Lenient::<PromotionRequest>::from_value(pr)
                .readable()
                .is_some()
        );
        let cand = serde_json::json!({"metadata": {"name": "c"}, "spec": {"runRef": "r",
            "model": {"uri": "m", "sha256": "a".repeat(64), "format": "onnx"}, "lineage": {}},
            "status": {"conditions": []}});
        assert!(
            Lenient::<crate::crd::JanusCandidate>::from_value(cand)
                .readable()
                .is_some()
        );
    }

    #[test]
    fn a_watch_event_of_a_malformed_object_reads() {
        let event = serde_json::json!({"type": "MODIFIED", "object": run("bad", "two".into())});
        let event: kube::core::WatchEvent<Lenient<JanusRun>> =
            serde_json::from_value(event).unwrap();
        let kube::core::WatchEvent::Modified(obj) = event else {
            panic!("not a modification")
        };
        assert_eq!(
            obj.parsed.unwrap_err().path,
            "spec.evaluation.backtest.holding_days"
        );
    }

    #[test]
    fn an_unknown_enum_member_names_its_field_and_bad_metadata_keeps_the_name() {
        let pr = serde_json::json!({
            "metadata": {"name": "p", "namespace": "janus", "uid": "u", "generation": "not a number"},
            "spec": {"candidate": "c", "target": "live"},
            "status": {"conditions": "not a list"}
        });
        let obj: Lenient<PromotionRequest> = serde_json::from_value(pr).unwrap();
        let why = obj.parsed.unwrap_err();
        assert_eq!(why.path, "metadata.generation");
        assert_eq!(obj.metadata.name.as_deref(), Some("p"));
        assert_eq!(obj.metadata.uid.as_deref(), Some("u"));
        assert!(obj.conditions.0.is_empty());
        let pr = serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"candidate": "c", "target": "live"}
        });
        let why = serde_json::from_value::<Lenient<PromotionRequest>>(pr)
            .unwrap()
            .parsed
            .unwrap_err();
        assert_eq!(why.path, "spec.target");
        assert!(why.message.contains("live"), "{why}");
    }

    #[test]
    fn only_a_non_object_is_refused_and_the_kind_is_the_wrapped_kind() {
        assert!(serde_json::from_value::<Lenient<JanusRun>>(serde_json::json!([1])).is_err());
        assert_eq!(Lenient::<JanusRun>::kind(&()), "JanusRun");
        assert_eq!(Lenient::<JanusRun>::plural(&()), "janusruns");
        assert_eq!(
            Lenient::<PromotionRequest>::api_version(&()),
            "janus.torghut.io/v1alpha1"
        );
        assert_eq!(
            Lenient::<JanusRun>::url_path(&(), Some("janus")),
            JanusRun::url_path(&(), Some("janus"))
        );
    }
}
