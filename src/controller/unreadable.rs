//! What an object gets when it cannot be read as its kind (see [`crate::crd::Lenient`]), as a
//! plain function: the `InvalidSpec` condition naming the refused field, one Warning Event when
//! that condition changes, and — for a PromotionRequest — its runtime ConfigMap switched off,
//! every time: a request whose content nobody can read backs no trading. Nothing else acts on
//! an unreadable object; its reconcile then waits for a change.
//! And once it reads again, `InvalidSpec` turns False.

use super::promotion::runtime_config_map_name;
use crate::crd::{ConditionStatus, ConditionType, Conditions, Reason, StatusEvent, Unreadable};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The kinds the operator reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    JanusRun,
    JanusCandidate,
    PromotionRequest,
}

impl Kind {
    /// The kind as Kubernetes names it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::JanusRun => "JanusRun",
            Kind::JanusCandidate => "JanusCandidate",
            Kind::PromotionRequest => "PromotionRequest",
        }
    }

    /// The kind of a Kubernetes kind name, if it is one of ours.
    pub fn from_name(kind: &str) -> Option<Kind> {
        [Kind::JanusRun, Kind::JanusCandidate, Kind::PromotionRequest]
            .into_iter()
            .find(|k| k.name() == kind)
    }
}

/// A runtime ConfigMap to switch off with [`halt_merge`] (a missing ConfigMap is fine: there is
/// nothing to switch off).
#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    pub config_map: String,
}

/// What the reconcile of an unreadable object does.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadablePlan {
    /// The `status.conditions` to write, when they change.
    pub conditions: Option<Conditions>,
    /// A Warning Event, when the condition changes.
    pub event: Option<StatusEvent>,
    /// The runtime ConfigMap to switch off (a PromotionRequest's), on every reconcile.
    pub halt: Option<Halt>,
}

/// The runtime ConfigMap data that stops trading: trading off, the deterministic fallback
/// forced and, when this replica leads, its lease epoch (a halt is a write of this leadership:
/// a stale leader's later write at an older epoch must not count as newer than it).
pub fn halted_runtime_data(lease_epoch: Option<u64>) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([
        ("tradingEnabled".to_string(), "false".to_string()),
        ("forceFallback".to_string(), "true".to_string()),
    ]);
    if let Some(epoch) = lease_epoch {
        data.insert("leaseEpoch".to_string(), epoch.to_string());
    }
    data
}

/// What a halt merges into a runtime ConfigMap whose data is `current` (JSON merge patch of
/// `data`, touching no other key): [`halted_runtime_data`], or `None` when the ConfigMap says
/// all of it already (nothing to write, nothing changed). The one decision behind every halt:
/// the kill switch's fast path, a reconcile that stops serving, an unreadable request.
pub fn halt_merge(
    current: &BTreeMap<String, String>,
    lease_epoch: Option<u64>,
) -> Option<BTreeMap<String, String>> {
    let want = halted_runtime_data(lease_epoch);
    (!want.iter().all(|(k, v)| current.get(k) == Some(v))).then_some(want)
}

/// What an unreadable object gets. `conditions` are the ones stored on it.
pub fn unreadable(
    kind: Kind,
    name: &str,
    why: &Unreadable,
    conditions: &Conditions,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> UnreadablePlan {
    let message = format!(
        "{} {name} cannot be read: `{}`: {}; nothing acts on it until it is fixed",
        kind.name(),
        why.path,
        why.message
    );
    let recorded = conditions.get(ConditionType::InvalidSpec).is_some_and(|c| {
        c.status == ConditionStatus::True
            && c.reason == Reason::Unreadable.as_str()
            && c.message == message
    });
    let (conditions, event) = if recorded {
        (None, None)
    } else {
        let mut next = conditions.clone();
        next.set(
            ConditionType::InvalidSpec,
            ConditionStatus::True,
            Reason::Unreadable,
            message.clone(),
            now,
            generation,
        );
        (
            Some(next),
            Some(StatusEvent {
                reason: Reason::InvalidSpec,
                message,
                warning: true,
            }),
        )
    };
    let halt = (kind == Kind::PromotionRequest).then(|| Halt {
        config_map: runtime_config_map_name(name),
    });
    UnreadablePlan {
        conditions,
        event,
        halt,
    }
}

/// The Event note that goes with a [`Halt`].
pub fn halt_note(name: &str, halt: &Halt) -> StatusEvent {
    StatusEvent {
        reason: Reason::TradingHaltedUnreadable,
        message: format!(
            "PromotionRequest {name} cannot be read: trading switched off in ConfigMap {} \
             (tradingEnabled=false, forceFallback=true)",
            halt.config_map
        ),
        warning: true,
    }
}

/// The conditions to write when an object reads again after having been unreadable: `InvalidSpec`
/// turns False. None when there is nothing to change.
pub fn readable_again(
    conditions: &Conditions,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Option<Conditions> {
    let flagged = conditions.is_true(ConditionType::InvalidSpec);
    flagged.then(|| {
        let mut next = conditions.clone();
        next.set(
            ConditionType::InvalidSpec,
            ConditionStatus::False,
            Reason::Readable,
            String::new(),
            now,
            generation,
        );
        next
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Condition;

    fn now() -> DateTime<Utc> {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    fn why() -> Unreadable {
        Unreadable {
            path: "spec.evaluation.backtest.holding_days".into(),
            message: "invalid value: integer `4294967296`, expected u32".into(),
        }
    }

    fn running() -> Conditions {
        Conditions(vec![Condition {
            type_: "Succeeded".into(),
            status: ConditionStatus::Unknown,
            reason: "Running".into(),
            message: String::new(),
            last_transition_time: "2026-11-28T08:00:00Z".into(),
            observed_generation: Some(1),
        }])
    }

    #[test]
    fn an_unreadable_run_gets_invalid_spec_naming_the_field_and_one_warning() {
        let plan = unreadable(Kind::JanusRun, "r9", &why(), &running(), Some(2), now());
        let conditions = plan.conditions.clone().expect("written");
        let c = conditions
            .0
            .iter()
            .find(|c| c.type_ == "InvalidSpec")
            .unwrap();
        assert_eq!(c.status, ConditionStatus::True);
        assert_eq!(c.reason, "Unreadable");
        assert!(
            c.message.contains("spec.evaluation.backtest.holding_days"),
            "{}",
            c.message
        );
        assert!(c.message.contains("4294967296"));
        assert_eq!(c.observed_generation, Some(2));
        // The other conditions stay.
        assert!(conditions.0.iter().any(|c| c.type_ == "Succeeded"));
        let event = plan.event.clone().expect("an event");
        assert_eq!(event.reason.as_str(), "InvalidSpec");
        assert!(event.warning);
        assert!(event.message.contains("holding_days"));
        assert_eq!(plan.halt, None, "a run has no trading to stop");
        // Recorded already: nothing more to write or announce.
        let again = unreadable(Kind::JanusRun, "r9", &why(), &conditions, Some(2), now());
        assert_eq!(again.conditions, None);
        assert_eq!(again.event, None);
        // A different refusal is news.
        let other = Unreadable {
            path: "spec.target".into(),
            message: "unknown variant `live`".into(),
        };
        let changed = unreadable(Kind::JanusRun, "r9", &other, &conditions, Some(3), now());
        assert!(changed.conditions.is_some() && changed.event.is_some());
    }

    #[test]
    fn an_unreadable_promotion_request_switches_its_runtime_config_map_off_every_time() {
        let plan = unreadable(
            Kind::PromotionRequest,
            "r1-canary",
            &why(),
            &Conditions::default(),
            None,
            now(),
        );
        let halt = plan.halt.clone().expect("halt");
        assert_eq!(halt.config_map, "r1-canary-runtime");
        // Even when the condition is recorded already, the switch is thrown again.
        let again = unreadable(
            Kind::PromotionRequest,
            "r1-canary",
            &why(),
            &plan.conditions.unwrap(),
            None,
            now(),
        );
        assert_eq!(again.conditions, None);
        assert_eq!(again.halt, Some(halt));
    }

    #[test]
    fn candidates_are_flagged_but_have_nothing_to_halt() {
        let plan = unreadable(
            Kind::JanusCandidate,
            "c",
            &why(),
            &Conditions::default(),
            None,
            now(),
        );
        assert!(plan.conditions.is_some());
        assert_eq!(plan.halt, None);
    }

    #[test]
    fn an_object_that_reads_again_has_invalid_spec_turned_false_once() {
        assert_eq!(readable_again(&running(), Some(1), now()), None);
        let flagged = unreadable(Kind::JanusRun, "r9", &why(), &running(), Some(1), now())
            .conditions
            .unwrap();
        let cleared = readable_again(&flagged, Some(2), now()).expect("cleared");
        let c = cleared.0.iter().find(|c| c.type_ == "InvalidSpec").unwrap();
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(c.reason, "Readable");
        assert_eq!(readable_again(&cleared, Some(2), now()), None);
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for k in [Kind::JanusRun, Kind::JanusCandidate, Kind::PromotionRequest] {
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        assert_eq!(Kind::from_name("Job"), None);
    }

    #[test]
    fn a_halt_writes_the_switches_and_the_epoch_only_when_they_differ() {
        let trading = BTreeMap::from([
            ("stage".to_string(), "canary".to_string()),
            ("tradingEnabled".to_string(), "true".to_string()),
            ("forceFallback".to_string(), "false".to_string()),
            ("leaseEpoch".to_string(), "3".to_string()),
        ]);
        let merge = halt_merge(&trading, Some(4)).expect("a trading ConfigMap is halted");
        assert_eq!(
            merge,
            BTreeMap::from([
                ("tradingEnabled".to_string(), "false".to_string()),
                ("forceFallback".to_string(), "true".to_string()),
                ("leaseEpoch".to_string(), "4".to_string()),
            ]),
            "only the switches and this leader's epoch are touched"
        );
        // Halted already at this epoch: nothing to write.
        let mut halted = trading.clone();
        halted.extend(merge);
        assert_eq!(halt_merge(&halted, Some(4)), None);
        // Halted by an older leader: this leader stamps its epoch.
        assert!(halt_merge(&halted, Some(5)).is_some());
        // Without a lease (one replica, no election): the switches alone.
        assert_eq!(halt_merge(&halted, None), None);
        let merge = halt_merge(&trading, None).unwrap();
        assert_eq!(merge.len(), 2);
        assert!(!merge.contains_key("leaseEpoch"));
    }
}
