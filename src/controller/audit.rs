//! The gate-bypass audit: every runtime ConfigMap that lets the decision service trade must be
//! the one a promoted PromotionRequest wrote, for that request's stage, candidate and model.
//! The operator reverts edits to the ConfigMaps it owns, but a ConfigMap made by hand (or
//! left behind by a request the operator no longer sees) would be served as readily — this
//! is what finds it. The SLO "zero unreviewed gate bypasses" is this audit's count.

use super::promotion::runtime_config_map_name;
use crate::contracts::Sha256Hex;
use crate::promotion::{Phase, Stage};
use crate::runtime::config::RuntimeConfig;
use std::collections::BTreeMap;

/// A PromotionRequest as the audit needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestView {
    pub name: String,
    pub candidate: String,
    pub kill_switch: bool,
    pub stage: Option<Stage>,
    pub phase: Option<Phase>,
    /// The model digest on the request's candidate (`None` when the candidate is missing).
    pub model_sha256: Option<Sha256Hex>,
}

/// A ConfigMap that lets the decision service trade without a promotion behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbacked {
    pub config_map: String,
    pub reason: String,
}

/// The ConfigMaps (name, data) that enable trading without a promoted request to back them.
/// ConfigMaps that are not runtime configurations, or that do not enable trading, are fine:
/// the decision service refuses the first and halts on the second.
pub fn unbacked_trading<'a>(
    config_maps: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
    requests: &[RequestView],
) -> Vec<Unbacked> {
    let mut found = Vec::new();
    for (name, data) in config_maps {
        let Ok(config) = RuntimeConfig::from_data(data) else {
            continue;
        };
        if !config.trading_enabled {
            continue;
        }
        if let Err(reason) = backed(name, &config, requests) {
            found.push(Unbacked {
                config_map: name.to_string(),
                reason,
            });
        }
    }
    found
}

fn backed(name: &str, config: &RuntimeConfig, requests: &[RequestView]) -> Result<(), String> {
    let request_name = &config.promotion_request;
    let Some(request) = requests.iter().find(|r| &r.name == request_name) else {
        return Err(format!(
            "names PromotionRequest `{request_name}`, which does not exist"
        ));
    };
    let expected = runtime_config_map_name(request_name);
    if name != expected {
        return Err(format!(
            "PromotionRequest `{request_name}` writes `{expected}`, not this ConfigMap"
        ));
    }
    if request.kill_switch {
        return Err(format!(
            "PromotionRequest `{request_name}` has its kill switch on"
        ));
    }
    if request.phase != Some(Phase::Promoted) {
        return Err(format!(
            "PromotionRequest `{request_name}` is {}, not Promoted",
            request
                .phase
                .map_or("without a status".to_string(), |p| format!("{p:?}"))
        ));
    }
    let stage = request.stage.map(|s| format!("{s:?}").to_lowercase());
    if stage.as_deref() != Some(config.stage.as_str()) {
        return Err(format!(
            "stage `{}`, but PromotionRequest `{request_name}` is at {}",
            config.stage,
            stage.as_deref().unwrap_or("no stage")
        ));
    }
    if config.candidate != request.candidate {
        return Err(format!(
            "candidate `{}`, but PromotionRequest `{request_name}` promotes `{}`",
            config.candidate, request.candidate
        ));
    }
    if request.model_sha256.as_ref() != Some(&config.model_sha256) {
        return Err(format!(
            "model {} is not the model of candidate `{}`",
            config.model_sha256, request.candidate
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Sha256Hex {
        Sha256Hex::of_bytes(b"model")
    }

    fn runtime(request: &str, stage: &str, trading: bool) -> BTreeMap<String, String> {
        RuntimeConfig {
            stage: stage.into(),
            candidate: "c1".into(),
            promotion_request: request.into(),
            model_uri: "runs/r1/model.onnx".into(),
            model_sha256: digest(),
            history_uri: None,
            trading_enabled: trading,
            force_fallback: !trading,
            policy_hash: None,
            canary_limits: None,
            lease_epoch: None,
        }
        .to_data()
    }

    fn promoted(name: &str, stage: Stage) -> RequestView {
        RequestView {
            name: name.into(),
            candidate: "c1".into(),
            kill_switch: false,
            stage: Some(stage),
            phase: Some(Phase::Promoted),
            model_sha256: Some(digest()),
        }
    }

    fn audit(cms: &[(&str, BTreeMap<String, String>)], requests: &[RequestView]) -> Vec<String> {
        unbacked_trading(cms.iter().map(|(n, d)| (*n, d)), requests)
            .into_iter()
            .map(|u| format!("{}: {}", u.config_map, u.reason))
            .collect()
    }

    #[test]
    fn a_promoted_requests_own_runtime_is_backed() {
        let requests = [promoted("pr1", Stage::Paper)];
        let cms = [
            ("pr1-runtime", runtime("pr1", "paper", true)),
            // Not runtime configurations, or not trading: nothing to audit.
            ("janus-gate-policy", BTreeMap::new()),
            ("pr2-runtime", runtime("pr2", "canary", false)),
        ];
        assert!(audit(&cms, &requests).is_empty());
    }

    #[test]
    fn trading_without_a_promotion_behind_it_is_found() {
        let mut halted = promoted("halted", Stage::Canary);
        halted.phase = Some(Phase::Halted);
        let mut switched = promoted("switched", Stage::Canary);
        switched.kill_switch = true;
        let mut other_model = promoted("retrained", Stage::Paper);
        other_model.model_sha256 = Some(Sha256Hex::of_bytes(b"another model"));
        let requests = [promoted("pr1", Stage::Paper), halted, switched, other_model];
        let mut wrong_candidate = runtime("pr1", "paper", true);
        wrong_candidate.insert("candidate".into(), "c9".into());
        let cms = [
            ("ghost-runtime", runtime("ghost", "canary", true)),
            ("copy-of-pr1", runtime("pr1", "paper", true)),
            ("halted-runtime", runtime("halted", "canary", true)),
            ("switched-runtime", runtime("switched", "canary", true)),
            ("retrained-runtime", runtime("retrained", "paper", true)),
            ("pr1-runtime", runtime("pr1", "canary", true)),
        ];
        assert_eq!(
            audit(&cms, &requests),
            vec![
                "ghost-runtime: names PromotionRequest `ghost`, which does not exist",
                "copy-of-pr1: PromotionRequest `pr1` writes `pr1-runtime`, not this ConfigMap",
                "halted-runtime: PromotionRequest `halted` is Halted, not Promoted",
                "switched-runtime: PromotionRequest `switched` has its kill switch on",
                format!(
                    "retrained-runtime: model {} is not the model of candidate `c1`",
                    digest()
                )
                .as_str(),
                "pr1-runtime: stage `canary`, but PromotionRequest `pr1` is at paper",
            ]
        );
        let cms = [("pr1-runtime", wrong_candidate)];
        assert_eq!(
            audit(&cms, &requests),
            vec!["pr1-runtime: candidate `c9`, but PromotionRequest `pr1` promotes `c1`"]
        );
    }
}
