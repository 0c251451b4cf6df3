//! The runtime configuration: what the operator tells the decision service through the runtime
//! ConfigMap (and `janus demo` through `runtime.json`). One type writes it (the PromotionRequest
//! reconcile) and reads it (`janus serve`), so the two cannot drift apart.

use crate::contracts::Sha256Hex;
use crate::crd::CanaryLimits;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// `shadow`, `paper` or `canary`.
    pub stage: String,
    pub candidate: String,
    pub promotion_request: String,
    /// The ONNX model: a path relative to the artifacts root, or absolute.
    pub model_uri: String,
    pub model_sha256: Sha256Hex,
    /// The run's labelled events (event-car artifact), which the fallback's per-type
    /// statistics come from; relative like `model_uri`.
    pub history_uri: Option<String>,
    pub trading_enabled: bool,
    pub force_fallback: bool,
    pub policy_hash: Option<Sha256Hex>,
    pub canary_limits: Option<CanaryLimits>,
    /// The operator leader's lease epoch (the Lease's `leaseTransitions`) this configuration
    /// was written under; the decision service refuses to trade on a configuration from an
    /// older epoch than one it has already seen (two leaders' writes never interleave).
    /// Absent in files written without an operator (`janus demo`).
    pub lease_epoch: Option<u64>,
}

/// Every key a runtime configuration may carry; any other key is refused (a misspelt
/// `tradingEnabled` must not leave a default in charge).
pub const KEYS: [&str; 11] = [
    "stage",
    "candidate",
    "promotionRequest",
    "modelUri",
    "modelSha256",
    "historyUri",
    "tradingEnabled",
    "forceFallback",
    "policyHash",
    "canaryLimits",
    "leaseEpoch",
];

/// Reads a runtime file: one JSON object whose values are strings, the ConfigMap's data. A
/// member name given twice (`tradingEnabled` false, then true) is refused: parsers disagree on
/// which one counts, so neither may.
pub fn data_from_json(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let value = crate::contracts::strict_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            other => Err(format!("`{k}` is {other}, not a string")),
        })
        .collect()
}

impl RuntimeConfig {
    /// The ConfigMap's data.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::from([
            ("stage".to_string(), self.stage.clone()),
            ("candidate".to_string(), self.candidate.clone()),
            (
                "promotionRequest".to_string(),
                self.promotion_request.clone(),
            ),
            ("modelUri".to_string(), self.model_uri.clone()),
            ("modelSha256".to_string(), self.model_sha256.to_string()),
            (
                "tradingEnabled".to_string(),
                self.trading_enabled.to_string(),
            ),
            ("forceFallback".to_string(), self.force_fallback.to_string()),
        ]);
        if let Some(h) = &self.history_uri {
            data.insert("historyUri".into(), h.clone());
        }
        if let Some(h) = &self.policy_hash {
            data.insert("policyHash".into(), h.to_string());
        }
        if let Some(e) = self.lease_epoch {
            data.insert("leaseEpoch".into(), e.to_string());
        }
        if let Some(c) = &self.canary_limits {
            data.insert(
                "canaryLimits".into(),
                serde_json::to_string(c).expect("limits serialize"),
            );
        }
        data
    }

    /// Reads the ConfigMap's data. Any doubt about whether trading is allowed is an error, so
    /// the caller keeps trading off: a missing or unknown key, a flag that is not `true` or
    /// `false`, limits that do not parse strictly, or the shadow stage with trading enabled
    /// (shadow never trades).
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, String> {
        let unknown: Vec<&str> = data
            .keys()
            .map(String::as_str)
            .filter(|k| !KEYS.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "runtime config has unknown keys {unknown:?} (known: {KEYS:?})"
            ));
        }
        let get = |k: &str| {
            data.get(k)
                .map(|v| v.trim().to_string())
                .ok_or_else(|| format!("runtime config lacks `{k}`"))
        };
        let flag = |k: &str| -> Result<bool, String> {
            match get(k)?.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(format!("runtime config `{k}` is `{other}`, not true/false")),
            }
        };
        let stage = get("stage")?;
        if !matches!(stage.as_str(), "shadow" | "paper" | "canary") {
            return Err(format!("runtime config `stage` is `{stage}`"));
        }
        let canary_limits = match data.get("canaryLimits") {
            None => None,
            Some(text) => Some(
                crate::contracts::strict_json::from_slice(text.as_bytes())
                    .and_then(serde_json::from_value::<CanaryLimits>)
                    .map_err(|e| format!("runtime config `canaryLimits`: {e}"))?,
            ),
        };
        if let Some(c) = &canary_limits {
            for (name, v) in [
                ("maxOrderNotional", c.max_order_notional),
                ("maxGrossNotional", c.max_gross_notional),
                ("maxNetNotional", c.max_net_notional),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("runtime config canaryLimits.{name} is {v}"));
                }
            }
        }
        let trading_enabled = flag("tradingEnabled")?;
        if stage == "shadow" && trading_enabled {
            return Err(
                "runtime config has `stage: shadow` with `tradingEnabled: true`: shadow never trades"
                    .into(),
            );
        }
        Ok(Self {
            stage,
            candidate: get("candidate")?,
            promotion_request: data.get("promotionRequest").cloned().unwrap_or_default(),
            model_uri: get("modelUri")?,
            model_sha256: Sha256Hex::parse(&get("modelSha256")?)
                .map_err(|e| format!("runtime config `modelSha256`: {e}"))?,
            history_uri: data.get("historyUri").cloned(),
            trading_enabled,
            force_fallback: flag("forceFallback")?,
            policy_hash: data
                .get("policyHash")
                .map(|h| Sha256Hex::parse(h))
                .transpose()
                .map_err(|e| format!("runtime config `policyHash`: {e}"))?,
            canary_limits,
            lease_epoch: data
                .get("leaseEpoch")
                .map(|e| {
                    e.trim()
                        .parse::<u64>()
                        .map_err(|err| format!("runtime config `leaseEpoch` is `{e}`: {err}"))
                })
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> BTreeMap<String, String> {
        RuntimeConfig {
            stage: "canary".into(),
            candidate: "c".into(),
            promotion_request: "p".into(),
            model_uri: "m.onnx".into(),
            model_sha256: Sha256Hex::of_bytes(b"m"),
            history_uri: Some("h.json".into()),
            trading_enabled: true,
            force_fallback: false,
            policy_hash: Some(Sha256Hex::of_bytes(b"p")),
            canary_limits: Some(CanaryLimits {
                symbols: vec!["A".into()],
                max_order_notional: 1.0,
                max_gross_notional: 2.0,
                max_net_notional: 1.0,
            }),
            lease_epoch: Some(3),
        }
        .to_data()
    }

    #[test]
    fn what_the_operator_writes_reads_back() {
        let d = data();
        assert_eq!(RuntimeConfig::from_data(&d).unwrap().to_data(), d);
    }

    #[test]
    fn doubt_is_refused() {
        let with = |k: &str, v: &str| {
            let mut d = data();
            d.insert(k.into(), v.into());
            RuntimeConfig::from_data(&d).unwrap_err()
        };
        assert!(with("tradingEnable", "true").contains("unknown keys"));
        assert!(with("tradingEnabled", "yes").contains("not true/false"));
        assert!(with("leaseEpoch", "-1").contains("leaseEpoch"));
        let mut shadow = data();
        shadow.insert("stage".into(), "shadow".into());
        assert!(
            RuntimeConfig::from_data(&shadow)
                .unwrap_err()
                .contains("shadow never trades")
        );
        shadow.insert("tradingEnabled".into(), "false".into());
        assert!(RuntimeConfig::from_data(&shadow).is_ok());
        // Limits with a member twice, or an unknown one.
        assert!(
            with(
                "canaryLimits",
                r#"{"symbols": ["A"], "maxOrderNotional": 1, "maxOrderNotional": 1e9, "maxGrossNotional": 1, "maxNetNotional": 1}"#
            )
            .contains("duplicate")
        );
        assert!(
            with(
                "canaryLimits",
                r#"{"symbols": ["A"], "maxOrderNotional": 1, "maxGrossNotional": 1, "maxNetNotional": 1, "x": 1}"#
            )
            .contains("unknown field")
        );
    }

    #[test]
    fn a_runtime_file_with_a_key_twice_is_refused() {
        let err = data_from_json(br#"{"tradingEnabled": "false", "tradingEnabled": "true"}"#)
            .unwrap_err();
        assert!(
            err.contains("duplicate member name \"tradingEnabled\""),
            "{err}"
        );
        assert!(data_from_json(br#"{"tradingEnabled": false}"#).is_err());
        assert!(data_from_json(b"[]").is_err());
        let text = serde_json::to_vec(&data()).unwrap();
        assert_eq!(data_from_json(&text).unwrap(), data());
    }
}
