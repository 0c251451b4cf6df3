//! The decision service's Prometheus metrics, with the names of the production plan.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::operator::metrics::{Labels, labels, openmetrics};

pub struct ServeMetrics {
    registry: Registry,
    events: Counter,
    decisions: Family<Labels, Counter>,
    latency: Histogram,
    fallback_ratio: Gauge<f64, AtomicU64>,
    model_errors: Family<Labels, Counter>,
    limit_actions: Family<Labels, Counter>,
    trading_enabled: Gauge,
    config_valid: Gauge,
    config_refused: Counter,
    kill_switch_latched: Gauge,
    kill_switch_release_ignored: Counter,
    overloaded: Counter,
    duplicates: Counter,
    confirmation_failures: Family<Labels, Counter>,
    decided: AtomicU64,
    fell_back: AtomicU64,
}

impl Default for ServeMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let events = Counter::default();
        let decisions = Family::<Labels, Counter>::default();
        // 0.05 ms to ~100 ms: the budget is 50 ms by default.
        let latency = Histogram::new([0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        let fallback_ratio = Gauge::<f64, AtomicU64>::default();
        let model_errors = Family::<Labels, Counter>::default();
        let limit_actions = Family::<Labels, Counter>::default();
        let trading_enabled = Gauge::default();
        let config_valid = Gauge::default();
        let config_refused = Counter::default();
        let kill_switch_latched = Gauge::default();
        let kill_switch_release_ignored = Counter::default();
        let overloaded = Counter::default();
        let duplicates = Counter::default();
        let confirmation_failures = Family::<Labels, Counter>::default();
        registry.register("janus_event_count", "Events received", events.clone());
        registry.register(
            "janus_decisions",
            "Decisions by source (model, fallback, suppressed, halted) and reason",
            decisions.clone(),
        );
        registry.register(
            "autonomy_inference_latency_ms",
            "Time from request to decision, in milliseconds",
            latency.clone(),
        );
        registry.register(
            "autonomy_fallback_ratio",
            "Fallback decisions over model and fallback decisions since start",
            fallback_ratio.clone(),
        );
        registry.register(
            "janus_model_errors",
            "Model load and inference failures by reason (digest_mismatch, load_failed, inference_timeout, inference_error)",
            model_errors.clone(),
        );
        registry.register(
            "janus_limit_actions",
            "Orders reduced or refused by a canary limit",
            limit_actions.clone(),
        );
        registry.register(
            "janus_trading_enabled",
            "1 while the service trades: the runtime configuration allows it and nothing halts it (kill switch latch, missing request, stale configuration, older lease epoch)",
            trading_enabled.clone(),
        );
        registry.register(
            "janus_runtime_config_valid",
            "1 while the last runtime configuration read was usable; 0 when it was refused (the reason is on /v1/runtime)",
            config_valid.clone(),
        );
        registry.register(
            "janus_runtime_config_refused",
            "Runtime configurations refused (duplicate or unknown keys, bad values, shadow with trading, another request's ConfigMap)",
            config_refused.clone(),
        );
        registry.register(
            "janus_kill_switch_latched",
            "1 once the PromotionRequest's kill switch was seen engaged: trading stays halted until the process restarts",
            kill_switch_latched.clone(),
        );
        registry.register(
            "janus_kill_switch_release_ignored",
            "Times the kill switch was seen off again after it latched (ignored)",
            kill_switch_release_ignored.clone(),
        );
        registry.register(
            "janus_inference_overloaded",
            "Events answered by the fallback at once because every inference slot was taken",
            overloaded.clone(),
        );
        registry.register(
            "janus_duplicate_events",
            "Events whose event_id was already decided under the configuration in force: answered with the first decision again, never decided twice",
            duplicates.clone(),
        );
        registry.register(
            "janus_config_confirmation_failures",
            "Periodic reads of the PromotionRequest or the runtime ConfigMap that failed or disagreed with the watch, by object",
            confirmation_failures.clone(),
        );
        Self {
            registry,
            events,
            decisions,
            latency,
            fallback_ratio,
            model_errors,
            limit_actions,
            trading_enabled,
            config_valid,
            config_refused,
            kill_switch_latched,
            kill_switch_release_ignored,
            overloaded,
            duplicates,
            confirmation_failures,
            decided: AtomicU64::new(0),
            fell_back: AtomicU64::new(0),
        }
    }
}

impl ServeMetrics {
    pub fn event(&self) {
        self.events.inc();
    }
    pub fn decision(&self, source: &str, reason: &str, latency_ms: f64) {
        self.decisions
            .get_or_create(&labels(&[("source", source), ("reason", reason)]))
            .inc();
        self.latency.observe(latency_ms);
        if source == "model" || source == "fallback" {
            let n = self.decided.fetch_add(1, Ordering::Relaxed) + 1;
            let f = self.fell_back.load(Ordering::Relaxed) + u64::from(source == "fallback");
            if source == "fallback" {
                self.fell_back.fetch_add(1, Ordering::Relaxed);
            }
            self.fallback_ratio.set(f as f64 / n as f64);
        }
    }
    pub fn model_error(&self, reason: &str) {
        self.model_errors
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }
    pub fn limit(&self, limit: &str, action: &str) {
        self.limit_actions
            .get_or_create(&labels(&[("limit", limit), ("action", action)]))
            .inc();
    }
    pub fn trading(&self, enabled: bool) {
        self.trading_enabled.set(i64::from(enabled));
    }
    /// A runtime configuration was read: usable or refused.
    pub fn config_valid(&self, valid: bool) {
        self.config_valid.set(i64::from(valid));
        if !valid {
            self.config_refused.inc();
        }
    }
    pub fn kill_switch_latched(&self, latched: bool) {
        self.kill_switch_latched.set(i64::from(latched));
    }
    pub fn kill_switch_release_ignored(&self) {
        self.kill_switch_release_ignored.inc();
    }
    pub fn overloaded(&self) {
        self.overloaded.inc();
    }
    /// An event answered again with its first decision.
    pub fn duplicate(&self) {
        self.duplicates.inc();
    }
    /// `object`: `promotion_request` or `config_map`.
    pub fn confirmation_failed(&self, object: &str) {
        self.confirmation_failures
            .get_or_create(&labels(&[("object", object)]))
            .inc();
    }
    pub fn response(&self) -> impl axum::response::IntoResponse + use<> {
        openmetrics(&self.registry)
    }
}
