//! The decision service's rules as plain functions: which events may trade at all (kill switch,
//! staleness, session), how a call becomes an order (the backtest's rules: strong calls trade a
//! unit notional, weak ones do not unless configured), the deterministic fallback (the
//! evaluation's baseline, the same code), and the canary limits over the open positions.

use super::config::RuntimeConfig;
use crate::contracts::label::{Direction, Prediction, Strength};
use crate::crd::CanaryLimits;
use crate::evaluation::baseline::TypeTable;
use crate::taxonomy::EventType;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

/// An event as the trading lane sends it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub event_id: String,
    pub timestamp: DateTime<Utc>,
    pub symbol: String,
    /// The source's event type, when known (normalized like the labels').
    #[serde(default)]
    pub event_type: Option<String>,
    pub title: String,
    /// Extra features; the reference policy reads none of them.
    #[serde(default)]
    pub features: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    pub event: Event,
}

impl Event {
    /// Field checks beyond the JSON shape; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let text = |name: &str, v: &str, max: usize| {
            if v.trim().is_empty() {
                Err(format!("event.{name} is empty"))
            } else if v.len() > max {
                Err(format!("event.{name} is longer than {max} bytes"))
            } else {
                Ok(())
            }
        };
        text("event_id", &self.event_id, 256)?;
        text("symbol", &self.symbol, 64)?;
        text("title", &self.title, 4096)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Model,
    Fallback,
    Suppressed,
    Halted,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Model => "model",
            Source::Fallback => "fallback",
            Source::Suppressed => "suppressed",
            Source::Halted => "halted",
        }
    }
}

/// The answer to one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub event_id: String,
    pub direction: Direction,
    /// Signed: positive buys, negative sells, 0 trades nothing.
    pub notional: f64,
    pub source: Source,
    /// A short code (`ok`, `kill_switch`, `stale_event`, `inference_timeout`, ...).
    pub reason: String,
    /// What happened, in words.
    pub detail: String,
    pub stage: Option<String>,
    pub candidate: Option<String>,
    pub model_sha256: Option<String>,
    pub latency_ms: f64,
}

/// A trading session in UTC (start inclusive, end exclusive); may wrap midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Session {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("session `{text}`: expected HH:MM-HH:MM (UTC)"))?;
        let t = |s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map_err(|e| format!("session `{text}`: `{s}`: {e}"))
        };
        Ok(Self {
            start: t(a)?,
            end: t(b)?,
        })
    }
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let time = at.time();
        if self.start <= self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }
}

/// How the service turns calls into orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Events older than this (by their timestamp) are suppressed.
    pub max_event_age: Duration,
    /// Events timestamped further ahead than this are suppressed (clock skew or bad data).
    pub max_clock_skew: Duration,
    /// Trading sessions (any of them); none means always open.
    pub sessions: Vec<Session>,
    /// Notional of a strong call.
    pub unit_notional: f64,
    /// Trade weak calls too (as the backtest's `trade_weak`), at half the unit.
    pub trade_weak: bool,
    /// How long a position counts against the limits after it is opened.
    pub holding: Duration,
    /// The fallback's parameters, as the evaluation's baseline uses them.
    pub strong_threshold: f64,
    pub min_type_history: u64,
}

impl Default for Rules {
    fn default() -> Self {
        let backtest = crate::evaluation::backtest::BacktestConfig::default();
        Self {
            max_event_age: Duration::seconds(300),
            max_clock_skew: Duration::seconds(5),
            sessions: Vec::new(),
            unit_notional: 10_000.0,
            trade_weak: backtest.trade_weak,
            holding: Duration::days(backtest.holding_days as i64),
            strong_threshold: crate::evaluation::report::EvaluationConfig::default()
                .strong_threshold,
            min_type_history: backtest.min_type_history,
        }
    }
}

/// Whether decisions are computed but not traded: the shadow stage, unless the kill switch
/// forced the fallback.
pub fn is_shadow(config: &RuntimeConfig) -> bool {
    config.stage == "shadow" && !config.trading_enabled && !config.force_fallback
}

/// Why an event may not trade at all, before any model runs: (source, reason, detail).
pub fn admission(
    config: Result<&RuntimeConfig, &str>,
    event: &Event,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Option<(Source, &'static str, String)> {
    let config = match config {
        Err(why) => {
            return Some((
                Source::Halted,
                "no_runtime_config",
                format!("no usable runtime configuration: {why}"),
            ));
        }
        Ok(c) => c,
    };
    // Shadow: the model decides, nothing trades (the stage's runtime statistics come from it).
    if !config.trading_enabled && !is_shadow(config) {
        return Some((
            Source::Halted,
            "trading_disabled",
            format!(
                "tradingEnabled=false for {} (kill switch, rollback or not promoted)",
                config.promotion_request
            ),
        ));
    }
    let age = now - event.timestamp;
    if age > rules.max_event_age {
        return Some((
            Source::Suppressed,
            "stale_event",
            format!(
                "event is {} s old (max {} s)",
                age.num_seconds(),
                rules.max_event_age.num_seconds()
            ),
        ));
    }
    if -age > rules.max_clock_skew {
        return Some((
            Source::Suppressed,
            "future_event",
            format!("event is timestamped {} s ahead", (-age).num_seconds()),
        ));
    }
    if !rules.sessions.is_empty() && !rules.sessions.iter().any(|s| s.contains(event.timestamp)) {
        return Some((
            Source::Suppressed,
            "outside_session",
            format!("{} is outside the trading session", event.timestamp),
        ));
    }
    None
}

/// The deterministic fallback: the evaluation's baseline for the event's type.
pub fn fallback(table: &TypeTable, event_type: EventType, rules: &Rules) -> Prediction {
    table.baseline(event_type, rules.strong_threshold, rules.min_type_history)
}

/// The order a call asks for, before limits (signed notional).
pub fn order(p: &Prediction, rules: &Rules) -> f64 {
    let size = match p.strength {
        Strength::Strong => rules.unit_notional,
        Strength::Weak if rules.trade_weak => rules.unit_notional / 2.0,
        Strength::Weak => 0.0,
    };
    match p.direction {
        Direction::Long => size,
        Direction::Short => -size,
        Direction::Hold => 0.0,
    }
}

/// One action a limit took on an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitAction {
    /// `symbol_allowlist`, `max_order_notional`, `max_gross_notional`, `max_net_notional`.
    pub limit: &'static str,
    /// `reduced` or `refused`.
    pub action: &'static str,
}

/// The positions the service opened that still count against the limits: (symbol, signed
/// notional, expiry). Bounded by what one holding period can open: every placement first drops
/// the expired ones, with or without limits.
#[derive(Debug, Default)]
pub struct Book {
    positions: Vec<(String, f64, DateTime<Utc>)>,
}

impl Book {
    /// Drops the positions whose holding period has ended by `now`.
    fn prune(&mut self, now: DateTime<Utc>) {
        self.positions.retain(|p| p.2 > now);
    }

    /// Positions held (open or not yet pruned).
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// (gross, net) notional of the positions open at `now`.
    pub fn exposure(&mut self, now: DateTime<Utc>) -> (f64, f64) {
        self.prune(now);
        let gross = self.positions.iter().map(|p| p.1.abs()).sum();
        let net = self.positions.iter().map(|p| p.1).sum();
        (gross, net)
    }

    /// Fits `wanted` within the canary limits (when there are any), records the position, and
    /// says what the limits did. A refused order is 0.
    pub fn place(
        &mut self,
        limits: Option<&CanaryLimits>,
        symbol: &str,
        wanted: f64,
        now: DateTime<Utc>,
        holding: Duration,
    ) -> (f64, Vec<LimitAction>) {
        self.prune(now);
        let mut actions = Vec::new();
        let mut x = wanted;
        if x == 0.0 {
            return (0.0, actions);
        }
        if let Some(l) = limits {
            let refuse = |actions: &mut Vec<LimitAction>, limit| {
                actions.push(LimitAction {
                    limit,
                    action: "refused",
                });
                0.0
            };
            if !l.symbols.iter().any(|s| s == symbol) {
                return (refuse(&mut actions, "symbol_allowlist"), actions);
            }
            if x.abs() > l.max_order_notional {
                x = x.signum() * l.max_order_notional;
                actions.push(LimitAction {
                    limit: "max_order_notional",
                    action: "reduced",
                });
            }
            let (gross, net) = self.exposure(now);
            let room = (l.max_gross_notional - gross).max(0.0);
            if x.abs() > room {
                x = x.signum() * room;
                actions.push(LimitAction {
                    limit: "max_gross_notional",
                    action: "reduced",
                });
            }
            // Keep |net + x| within the limit, never flipping the order's side.
            let allowed = if x > 0.0 {
                (l.max_net_notional - net).max(0.0)
            } else {
                (l.max_net_notional + net).max(0.0)
            };
            if x.abs() > allowed {
                x = x.signum() * allowed;
                actions.push(LimitAction {
                    limit: "max_net_notional",
                    action: "reduced",
                });
            }
            if x == 0.0 {
                if let Some(last) = actions.last_mut() {
                    last.action = "refused";
                }
                return (0.0, actions);
            }
        }
        self.positions.push((symbol.to_string(), x, now + holding));
        (x, actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CanaryLimits {
        CanaryLimits {
            symbols: vec!["A".into(), "B".into()],
            max_order_notional: 100.0,
            max_gross_notional: 250.0,
            max_net_notional: 150.0,
        }
    }

    #[test]
    fn limits_reduce_then_refuse_and_positions_expire() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T02:00:00Z")
            .unwrap()
            .to_utc();
        let hold = Duration::days(2);
        let mut book = Book::default();
        let l = limits();
        assert_eq!(
            book.place(Some(&l), "C", 50.0, now, hold).1[0].limit,
            "symbol_allowlist"
        );
        let (x, a) = book.place(Some(&l), "A", 500.0, now, hold);
        assert_eq!(
            (x, a[0].limit, a[0].action),
            (100.0, "max_order_notional", "reduced")
        );
        let (x, a) = book.place(Some(&l), "B", 100.0, now, hold);
        assert_eq!((x, a.len()), (50.0, 1), "net 100 + 50 reaches 150: {a:?}");
        assert_eq!(a[0].limit, "max_net_notional");
        let (x, a) = book.place(Some(&l), "A", 10.0, now, hold);
        assert_eq!((x, a[0].action), (0.0, "refused"));
        // Selling is still allowed: it reduces net; gross has 100 of room.
        let (x, a) = book.place(Some(&l), "A", -100.0, now, hold);
        assert_eq!((x, a.is_empty()), (-100.0, true));
        assert_eq!(book.exposure(now), (250.0, 50.0));
        let (x, a) = book.place(Some(&l), "B", -100.0, now, hold);
        assert_eq!(
            (x, a[0].limit, a[0].action),
            (0.0, "max_gross_notional", "refused")
        );
        // Two days later everything has expired.
        assert_eq!(book.exposure(now + hold), (0.0, 0.0));
        // No limits (paper): anything goes.
        assert_eq!(book.place(None, "Z", 1e9, now, hold).0, 1e9);
    }

    #[test]
    fn the_book_stays_bounded_without_limits() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-28T02:00:00Z")
            .unwrap()
            .to_utc();
        let hold = Duration::days(2);
        let mut book = Book::default();
        // A month of paper trading, one order a minute, no limits: only the positions of the
        // last holding period are kept.
        let per_period = (hold.num_minutes()) as usize;
        for minute in 0..(30 * 24 * 60) {
            let now = t0 + Duration::minutes(minute);
            assert_eq!(book.place(None, "A", 1.0, now, hold).0, 1.0);
            assert!(
                book.len() <= per_period,
                "{} at minute {minute}",
                book.len()
            );
        }
        assert_eq!(book.len(), per_period);
        // A placement that trades nothing prunes too.
        book.place(None, "A", 0.0, t0 + Duration::days(60), hold);
        assert!(book.is_empty());
    }

    #[test]
    fn sessions_may_wrap_midnight() {
        let s = Session::parse("01:30-07:00").unwrap();
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        assert!(s.contains(at("2026-11-28T01:30:00Z")));
        assert!(!s.contains(at("2026-11-28T07:00:00Z")));
        let night = Session::parse("22:00-02:00").unwrap();
        assert!(night.contains(at("2026-11-28T23:00:00Z")));
        assert!(night.contains(at("2026-11-28T01:00:00Z")));
        assert!(!night.contains(at("2026-11-28T12:00:00Z")));
        assert!(Session::parse("9-5").is_err());
    }
}
