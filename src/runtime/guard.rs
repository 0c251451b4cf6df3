//! What stops the decision service from trading before any rule about the event is asked, as
//! plain data fed by the configuration sources (sans-IO: time is an argument):
//!
//! - the **kill switch latch**: the first time the PromotionRequest is seen with
//!   `spec.killSwitch: true`, trading stops for the rest of the process's life, whatever the
//!   request or the ConfigMap say afterwards;
//! - the **request itself**: deleted, not found or unreadable means halted while it lasts;
//! - **freshness**: in the API modes the configuration must have been confirmed (a watch event or
//!   a successful read) within `max_age`, else `config_stale`;
//! - the **lease epoch**: the highest `leaseEpoch` seen; a configuration that enables trading
//!   under an older epoch (or none, once one was seen) is `stale_epoch`;
//! - **backing** (with `--promotion-request`): a configuration may enable trading only while the
//!   request's status says it is promoted at that stage (`not_promoted`), and only when the
//!   ConfigMap's controller owner is that request, by UID (`foreign_config`): a ConfigMap written
//!   by hand, or left behind by a deleted request of the same name, never trades.

use super::config::RuntimeConfig;
use std::time::{Duration, Instant};

/// A reason to halt every decision, with its code (the decision's `reason`) and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    /// `kill_switch`, `request_unavailable`, `config_stale`, `stale_epoch`, `not_promoted` or
    /// `foreign_config`.
    pub reason: &'static str,
    pub detail: String,
}

/// What the kill-switch latch did with one observation of `spec.killSwitch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latch {
    /// Not engaged, and it never was.
    Open,
    /// Engaged by this observation.
    Engaged,
    /// Already engaged; the observation changes nothing.
    Held,
    /// Already engaged, and this observation says `false`: ignored (logged and counted).
    ReleaseIgnored,
}

/// A configuration source whose freshness is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The runtime ConfigMap.
    ConfigMap,
    /// The PromotionRequest (only with `--promotion-request`).
    Request,
}

/// The state; one per process.
#[derive(Debug, Clone)]
pub struct Guard {
    kill: Option<String>,
    request_problem: Option<String>,
    /// `None`: freshness is not checked (file mode, or `--max-config-age 0`).
    max_age: Option<Duration>,
    started: Instant,
    config_map_confirmed: Option<Instant>,
    /// `None`: the request is not a source (`--runtime-config` mode); `Some(None)`: not yet.
    request_confirmed: Option<Option<Instant>>,
    highest_epoch: Option<u64>,
    /// The request as last seen (`--promotion-request` only): its UID and the stage its status
    /// says it is promoted at (`None` unless `status.phase` is `Promoted`).
    request_backing: Option<(Option<String>, Option<String>)>,
    /// The UID of the runtime ConfigMap's controller owner, as last seen.
    config_owner: Option<String>,
}

impl Guard {
    /// `max_age`: the longest time without a confirmation (None: never stale); `follows_request`:
    /// the PromotionRequest must be confirmed too; `started`: the clock's start, which counts as
    /// the last confirmation until the first one.
    pub fn new(max_age: Option<Duration>, follows_request: bool, started: Instant) -> Self {
        Self {
            kill: None,
            request_problem: None,
            max_age: max_age.filter(|d| !d.is_zero()),
            started,
            config_map_confirmed: None,
            request_confirmed: follows_request.then_some(None),
            highest_epoch: None,
            request_backing: follows_request.then_some((None, None)),
            config_owner: None,
        }
    }

    /// The request's UID and the stage it is promoted at (`None` unless promoted), as last seen.
    pub fn request_backing(&mut self, uid: Option<String>, promoted_stage: Option<String>) {
        if self.request_backing.is_some() {
            self.request_backing = Some((uid, promoted_stage));
        }
    }

    /// The runtime ConfigMap's controller owner UID, as last seen.
    pub fn config_owner(&mut self, uid: Option<String>) {
        self.config_owner = uid;
    }

    /// Why `config` may not trade for want of a promoted request that owns it, if so (only
    /// when following a request; a configuration that does not trade needs no backing).
    pub fn unbacked(&self, config: &RuntimeConfig) -> Option<Halt> {
        let (uid, promoted) = self.request_backing.as_ref()?;
        if !config.trading_enabled {
            return None;
        }
        if promoted.as_deref() != Some(config.stage.as_str()) {
            return Some(Halt {
                reason: "not_promoted",
                detail: format!(
                    "the runtime configuration enables {} trading, but the request's status says it is {}",
                    config.stage,
                    promoted.as_ref().map_or_else(
                        || "not promoted".to_string(),
                        |s| format!("promoted at {s}")
                    )
                ),
            });
        }
        if uid.is_none() || self.config_owner != *uid {
            return Some(Halt {
                reason: "foreign_config",
                detail: format!(
                    "the runtime ConfigMap's controller owner ({}) is not this request ({})",
                    self.config_owner.as_deref().unwrap_or("none"),
                    uid.as_deref().unwrap_or("unknown")
                ),
            });
        }
        None
    }

    /// One observation of the request's `spec.killSwitch`; `context` says where it came from.
    pub fn kill_switch(&mut self, engaged: bool, context: &str) -> Latch {
        match (&self.kill, engaged) {
            (None, false) => Latch::Open,
            (None, true) => {
                self.kill = Some(format!(
                    "kill switch engaged ({context}): latched until restart"
                ));
                Latch::Engaged
            }
            (Some(_), true) => Latch::Held,
            (Some(_), false) => Latch::ReleaseIgnored,
        }
    }

    /// Whether the kill switch is latched.
    pub fn killed(&self) -> bool {
        self.kill.is_some()
    }

    /// The request is missing or unreadable (`Some(why)`), or fine again (`None`).
    pub fn request_problem(&mut self, problem: Option<String>) {
        self.request_problem = problem;
    }

    /// A successful read (or watch event) of `source` at `at`.
    pub fn confirm(&mut self, source: Source, at: Instant) {
        match source {
            Source::ConfigMap => self.config_map_confirmed = Some(at),
            Source::Request => {
                if self.request_confirmed.is_some() {
                    self.request_confirmed = Some(Some(at));
                }
            }
        }
    }

    /// The highest lease epoch seen in a configuration, if any.
    pub fn highest_epoch(&self) -> Option<u64> {
        self.highest_epoch
    }

    /// Records a configuration's epoch; call for every configuration read, trading or not.
    pub fn observe_epoch(&mut self, config: &RuntimeConfig) {
        if let Some(e) = config.lease_epoch {
            self.highest_epoch = Some(self.highest_epoch.map_or(e, |h| h.max(e)));
        }
    }

    /// Why `config` may not trade because of its epoch, if so.
    pub fn stale_epoch(&self, config: &RuntimeConfig) -> Option<Halt> {
        let highest = self.highest_epoch?;
        if !config.trading_enabled {
            return None;
        }
        let older = config.lease_epoch.is_none_or(|e| e < highest);
        older.then(|| Halt {
            reason: "stale_epoch",
            detail: format!(
                "the configuration enables trading under lease epoch {}, older than epoch {highest} already seen",
                config
                    .lease_epoch
                    .map_or_else(|| "(none)".to_string(), |e| e.to_string())
            ),
        })
    }

    /// Why the configuration is not fresh at `now`, if so.
    pub fn stale(&self, now: Instant) -> Option<Halt> {
        let max_age = self.max_age?;
        let mut sources = vec![("runtime ConfigMap", self.config_map_confirmed)];
        if let Some(r) = self.request_confirmed {
            sources.push(("PromotionRequest", r));
        }
        for (name, confirmed) in sources {
            let age = now.saturating_duration_since(confirmed.unwrap_or(self.started));
            if age > max_age {
                let last = confirmed.map_or_else(
                    || "never confirmed".to_string(),
                    |_| format!("last confirmed {:.1} s ago", age.as_secs_f64()),
                );
                return Some(Halt {
                    reason: "config_stale",
                    detail: format!(
                        "the {name} could not be confirmed within {} s ({last}): trading halted until a fresh read",
                        max_age.as_secs_f64()
                    ),
                });
            }
        }
        None
    }

    /// Why every decision is halted at `now` before the configuration's own flags are read:
    /// the latched kill switch, then a missing request, then staleness.
    pub fn halt(&self, now: Instant) -> Option<Halt> {
        if let Some(k) = &self.kill {
            return Some(Halt {
                reason: "kill_switch",
                detail: k.clone(),
            });
        }
        if let Some(p) = &self.request_problem {
            return Some(Halt {
                reason: "request_unavailable",
                detail: p.clone(),
            });
        }
        self.stale(now)
    }
}

/// What the decision service reads of its PromotionRequest (untyped, so that a malformed
/// object cannot break the watch): the kill switch, the runtime ConfigMap's name, and what is
/// wrong with it, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    /// `spec.killSwitch` is literally `true` (read even when something else is malformed).
    pub kill_switch: bool,
    /// `status.runtimeConfigMap`, when set.
    pub runtime_config_map: Option<String>,
    /// `status.stage` when `status.phase` is `Promoted`.
    pub promoted_stage: Option<String>,
    /// Why the request cannot be trusted (halted while it lasts).
    pub problem: Option<String>,
}

/// Reads a PromotionRequest's `spec` and `status` from its JSON (the object without metadata).
pub fn read_request(object: &serde_json::Value) -> RequestView {
    use serde_json::Value;
    let mut problems = Vec::new();
    let spec = object.get("spec");
    let kill = spec.and_then(|s| s.get("killSwitch"));
    match (spec, kill) {
        (Some(Value::Object(_)), None | Some(Value::Bool(_))) => {}
        (Some(Value::Object(_)), Some(other)) => {
            problems.push(format!("spec.killSwitch is {other}, not a boolean"))
        }
        (None, _) => problems.push("it has no spec".to_string()),
        (Some(other), _) => problems.push(format!("spec is {other}, not an object")),
    }
    let runtime_config_map = match object.get("status").and_then(|s| s.get("runtimeConfigMap")) {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if valid_name(name) => Some(name.clone()),
        Some(other) => {
            problems.push(format!(
                "status.runtimeConfigMap is {other}, not a ConfigMap name"
            ));
            None
        }
    };
    let status = object.get("status");
    let promoted_stage = match (
        status.and_then(|s| s.get("phase")),
        status.and_then(|s| s.get("stage")),
    ) {
        (Some(Value::String(phase)), Some(Value::String(stage))) if phase == "Promoted" => {
            Some(stage.clone())
        }
        _ => None,
    };
    RequestView {
        kill_switch: kill == Some(&Value::Bool(true)),
        runtime_config_map,
        promoted_stage,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// Why a request cannot be trusted because its spec changed more than once since the generation
/// the operator last decided on (`metadata.generation` against `status.observedGeneration`; a
/// request is created at generation 1): while no operator watched, a kill switch set and
/// cleared again cannot be ruled out, and this process may have started after it (the operator
/// halts such a request by the same rule once it runs). `None` otherwise.
pub fn unobserved_changes(generation: Option<i64>, object: &serde_json::Value) -> Option<String> {
    let seen = object
        .pointer("/status/observedGeneration")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(1);
    let now = generation?;
    (now > seen + 1).then(|| {
        format!(
            "the request's spec changed {} times since generation {seen}, which the operator last \
             decided on: a kill switch set and cleared meanwhile cannot be ruled out",
            now - seen
        )
    })
}

/// A DNS-1123 subdomain, as Kubernetes names ConfigMaps.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::Sha256Hex;

    #[test]
    fn unobserved_spec_changes_are_not_trusted() {
        let status = |g: i64| serde_json::json!({"status": {"observedGeneration": g}});
        // Decided on generation 4; one change since (5) is visible to whoever reads it.
        assert_eq!(unobserved_changes(Some(5), &status(4)), None);
        // On, then off again (7) while no operator watched.
        assert!(
            unobserved_changes(Some(6), &status(4))
                .unwrap()
                .contains("2 times")
        );
        // Never decided on: created at 1.
        assert_eq!(unobserved_changes(Some(2), &serde_json::json!({})), None);
        assert!(unobserved_changes(Some(3), &serde_json::json!({})).is_some());
        assert_eq!(unobserved_changes(None, &status(1)), None);
    }

    #[test]
    fn a_configuration_trades_only_for_its_promoted_owner() {
        let t0 = Instant::now();
        let mut g = Guard::new(None, true, t0);
        let trading = config(true, None);
        // Nothing seen of the request yet: not promoted.
        assert_eq!(g.unbacked(&trading).unwrap().reason, "not_promoted");
        g.request_backing(Some("u1".into()), Some("canary".into()));
        // A ConfigMap with no owner, or another object's (a deleted request of the same name).
        assert_eq!(g.unbacked(&trading).unwrap().reason, "foreign_config");
        g.config_owner(Some("u0".into()));
        assert_eq!(g.unbacked(&trading).unwrap().reason, "foreign_config");
        g.config_owner(Some("u1".into()));
        assert_eq!(g.unbacked(&trading), None);
        // Promoted at another stage, or blocked: the configuration may not trade.
        g.request_backing(Some("u1".into()), Some("paper".into()));
        assert_eq!(g.unbacked(&trading).unwrap().reason, "not_promoted");
        g.request_backing(Some("u1".into()), None);
        assert_eq!(g.unbacked(&trading).unwrap().reason, "not_promoted");
        // A configuration that does not trade needs no backing.
        assert_eq!(g.unbacked(&config(false, None)), None);
        // Without a request to follow (--runtime-config, a file) there is nothing to check.
        assert_eq!(Guard::new(None, false, t0).unbacked(&trading), None);
        let view = read_request(&serde_json::json!({
            "spec": {"killSwitch": false},
            "status": {"phase": "Promoted", "stage": "paper"}
        }));
        assert_eq!(view.promoted_stage.as_deref(), Some("paper"));
        let view = read_request(&serde_json::json!({
            "spec": {}, "status": {"phase": "Blocked", "stage": "paper"}
        }));
        assert_eq!(view.promoted_stage, None);
    }

    fn config(trading: bool, epoch: Option<u64>) -> RuntimeConfig {
        RuntimeConfig {
            stage: "canary".into(),
            candidate: "c".into(),
            promotion_request: "p".into(),
            model_uri: "m.onnx".into(),
            model_sha256: Sha256Hex::of_bytes(b"m"),
            history_uri: None,
            trading_enabled: trading,
            force_fallback: false,
            policy_hash: None,
            canary_limits: None,
            lease_epoch: epoch,
        }
    }

    #[test]
    fn the_kill_switch_latches_for_good() {
        let t0 = Instant::now();
        let mut g = Guard::new(None, true, t0);
        assert_eq!(g.kill_switch(false, "watch"), Latch::Open);
        assert_eq!(g.halt(t0), None);
        assert_eq!(g.kill_switch(true, "watch"), Latch::Engaged);
        assert_eq!(g.kill_switch(false, "watch"), Latch::ReleaseIgnored);
        assert_eq!(g.kill_switch(true, "get"), Latch::Held);
        // Nothing afterwards clears it: a fresh read, the request back, a new epoch.
        g.confirm(Source::Request, t0);
        g.request_problem(None);
        g.observe_epoch(&config(true, Some(9)));
        assert_eq!(g.halt(t0).map(|h| h.reason), Some("kill_switch"));
        assert!(g.killed());
    }

    #[test]
    fn a_missing_request_halts_while_it_lasts() {
        let t0 = Instant::now();
        let mut g = Guard::new(None, true, t0);
        g.request_problem(Some("deleted".into()));
        assert_eq!(g.halt(t0).map(|h| h.reason), Some("request_unavailable"));
        g.request_problem(None);
        assert_eq!(g.halt(t0), None);
    }

    #[test]
    fn every_required_source_must_be_fresh() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut g = Guard::new(Some(30 * s), true, t0);
        assert_eq!(g.halt(t0 + 30 * s), None, "the start counts as confirmed");
        let h = g.halt(t0 + 31 * s).unwrap();
        assert_eq!(h.reason, "config_stale");
        assert!(h.detail.contains("never confirmed"), "{}", h.detail);
        g.confirm(Source::ConfigMap, t0 + 40 * s);
        assert_eq!(
            g.halt(t0 + 41 * s).map(|h| h.reason),
            Some("config_stale"),
            "the request is still unconfirmed"
        );
        g.confirm(Source::Request, t0 + 41 * s);
        assert_eq!(g.halt(t0 + 41 * s), None);
        assert_eq!(g.halt(t0 + 70 * s), None);
        assert!(g.halt(t0 + 71 * s).unwrap().detail.contains("ConfigMap"));
        // A fresh read resumes.
        g.confirm(Source::ConfigMap, t0 + 80 * s);
        g.confirm(Source::Request, t0 + 80 * s);
        assert_eq!(g.halt(t0 + 80 * s), None);
    }

    #[test]
    fn no_max_age_never_goes_stale() {
        let t0 = Instant::now();
        let day = Duration::from_secs(86_400);
        assert_eq!(Guard::new(None, false, t0).halt(t0 + day), None);
        assert_eq!(
            Guard::new(Some(Duration::ZERO), true, t0).halt(t0 + day),
            None
        );
        // Without a request to follow, only the ConfigMap counts.
        let mut g = Guard::new(Some(day), false, t0);
        g.confirm(Source::ConfigMap, t0 + day);
        g.confirm(Source::Request, t0);
        assert_eq!(g.halt(t0 + day + day / 2), None);
    }

    #[test]
    fn requests_are_read_without_trusting_them() {
        use serde_json::json;
        let v = read_request(&json!({"spec": {"candidate": "c", "killSwitch": false},
            "status": {"runtimeConfigMap": "p-runtime"}}));
        assert_eq!(
            v,
            RequestView {
                kill_switch: false,
                runtime_config_map: Some("p-runtime".into()),
                promoted_stage: None,
                problem: None
            }
        );
        assert_eq!(read_request(&json!({"spec": {}})).problem, None);
        for bad in [
            json!({}),
            json!({"spec": "x"}),
            json!({"spec": {"killSwitch": "true"}}),
            json!({"spec": {}, "status": {"runtimeConfigMap": "../x"}}),
            json!({"spec": {}, "status": {"runtimeConfigMap": 3}}),
        ] {
            let v = read_request(&bad);
            assert!(v.problem.is_some() && !v.kill_switch, "{bad}");
        }
        // The kill switch is read even when something else is wrong.
        let v =
            read_request(&json!({"spec": {"killSwitch": true}, "status": {"runtimeConfigMap": 1}}));
        assert!(v.kill_switch && v.problem.is_some());
    }

    #[test]
    fn an_older_epoch_may_not_trade() {
        let t0 = Instant::now();
        let mut g = Guard::new(None, false, t0);
        // No epoch seen yet: files without one trade.
        assert_eq!(g.stale_epoch(&config(true, None)), None);
        for (seen, check, stale) in [
            (Some(5), config(true, Some(5)), false),
            (None, config(true, Some(4)), true),
            (None, config(true, None), true),
            (None, config(false, Some(4)), false),
            (Some(3), config(true, Some(5)), false),
            (Some(6), config(true, Some(5)), true),
            (Some(6), config(true, Some(7)), false),
        ] {
            if let Some(e) = seen {
                g.observe_epoch(&config(false, Some(e)));
            }
            assert_eq!(
                g.stale_epoch(&check).map(|h| h.reason),
                stale.then_some("stale_epoch"),
                "{seen:?} {check:?}"
            );
        }
    }
}
