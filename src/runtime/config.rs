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
    /// the caller keeps trading off.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, String> {
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
                serde_json::from_str::<CanaryLimits>(text)
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
        Ok(Self {
            stage,
            candidate: get("candidate")?,
            promotion_request: data.get("promotionRequest").cloned().unwrap_or_default(),
            model_uri: get("modelUri")?,
            model_sha256: Sha256Hex::parse(&get("modelSha256")?)
                .map_err(|e| format!("runtime config `modelSha256`: {e}"))?,
            history_uri: data.get("historyUri").cloned(),
            trading_enabled: flag("tradingEnabled")?,
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
