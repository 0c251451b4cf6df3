//! The operator's Prometheus metrics (OpenMetrics text on `/metrics`). Counter names gain the
//! `_total` suffix when encoded: `promotion_attempt` is scraped as `promotion_attempt_total`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A metric's label set.
pub type Labels = Vec<(String, String)>;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A registry as an HTTP response in the OpenMetrics text format.
pub fn openmetrics(registry: &Registry) -> impl axum::response::IntoResponse + use<> {
    let mut text = String::new();
    encode(&mut text, registry).expect("writing to a String cannot fail");
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    reconcile_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    promotion_attempts: Family<Labels, Counter>,
    gate_failures: Family<Labels, Counter>,
    evidence_complete: Family<Labels, Gauge>,
    leader: Gauge,
    unbacked_trading: Gauge,
    kill_switches_latched: Counter,
    /// Audit entries waiting for the trail to be writable (`operator::trail`).
    pub audit_pending: Gauge,
    /// Audit entries dropped because the pending queue was full.
    pub audit_lost: Counter,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<Labels, Counter>::default();
        let reconcile_errors = Family::<Labels, Counter>::default();
        let reconcile_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram,
            );
        let promotion_attempts = Family::<Labels, Counter>::default();
        let gate_failures = Family::<Labels, Counter>::default();
        let evidence_complete = Family::<Labels, Gauge>::default();
        let leader = Gauge::default();
        let unbacked_trading = Gauge::default();
        let kill_switches_latched = Counter::default();
        let audit_pending = Gauge::default();
        let audit_lost = Counter::default();
        registry.register(
            "janus_audit_pending_entries",
            "Audit entries not yet written because the audit trail is unwritable (retried; written with their original times)",
            audit_pending.clone(),
        );
        registry.register(
            "janus_audit_lost_entries",
            "Audit entries dropped because the pending queue was full (a gap entry in the trail says so)",
            audit_lost.clone(),
        );
        registry.register(
            "janus_kill_switch_latched",
            "Kill switches seen on by the leader's fast path (each request once)",
            kill_switches_latched.clone(),
        );
        registry.register("janus_reconcile", "Reconciles by kind", reconciles.clone());
        registry.register(
            "janus_reconcile_errors",
            "Failed reconciles by kind and error",
            reconcile_errors.clone(),
        );
        registry.register(
            "janus_reconcile_duration_seconds",
            "Reconcile durations by kind",
            reconcile_seconds.clone(),
        );
        registry.register(
            "promotion_attempt",
            "Promotion reconciles that changed a request's stage or phase, by target, resulting phase and reason",
            promotion_attempts.clone(),
        );
        registry.register(
            "autonomy_gate_fail",
            "Gate failures by gate and reason, counted when a decision changes",
            gate_failures.clone(),
        );
        registry.register(
            "janus_evidence_complete",
            "1 when a candidate's evidence is complete and verified, 0 otherwise",
            evidence_complete.clone(),
        );
        registry.register(
            "janus_operator_leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register(
            "janus_runtime_unbacked_trading",
            "Runtime ConfigMaps that enable trading without a promoted PromotionRequest behind them (the leader's last audit)",
            unbacked_trading.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_seconds,
            promotion_attempts,
            gate_failures,
            evidence_complete,
            leader,
            unbacked_trading,
            kill_switches_latched,
            audit_pending,
            audit_lost,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &str, seconds: f64) {
        let l = labels(&[("kind", kind)]);
        self.reconciles.get_or_create(&l).inc();
        self.reconcile_seconds.get_or_create(&l).observe(seconds);
    }
    pub fn reconcile_failed(&self, kind: &str, error: &str) {
        self.reconcile_errors
            .get_or_create(&labels(&[("kind", kind), ("error", error)]))
            .inc();
    }
    pub fn promotion_attempt(&self, target: &str, status: &str, reason: &str) {
        self.promotion_attempts
            .get_or_create(&labels(&[
                ("target", target),
                ("status", status),
                ("reason", reason),
            ]))
            .inc();
    }
    pub fn gate_failed(&self, gate_id: &str, reason: &str) {
        self.gate_failures
            .get_or_create(&labels(&[("gate_id", gate_id), ("reason", reason)]))
            .inc();
    }
    pub fn evidence(&self, namespace: &str, candidate: &str, complete: bool) {
        self.evidence_complete
            .get_or_create(&labels(&[
                ("namespace", namespace),
                ("candidate", candidate),
            ]))
            .set(i64::from(complete));
    }
    pub fn set_unbacked_trading(&self, count: usize) {
        self.unbacked_trading.set(count as i64);
    }
    pub fn kill_switch_latched(&self) {
        self.kill_switches_latched.inc();
    }
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
    pub fn response(&self) -> impl axum::response::IntoResponse + use<> {
        openmetrics(&self.registry)
    }
}
