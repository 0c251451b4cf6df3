//! The promotion stage machine (DESIGN §5): shadow → paper → canary, one step at a time, only on
//! an allowed gate decision; the kill switch overrides every state at once and clearing it
//! never re-promotes; rollback demotes one stage with a recorded reason. Pure: the caller
//! supplies the clock, the decision and the actor, and persists the returned state.

use crate::gates::{Decision, Target};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Shadow,
    Paper,
    Canary,
}

impl Stage {
    pub fn of(target: Target) -> Stage {
        match target {
            Target::Paper => Stage::Paper,
            Target::Canary => Stage::Canary,
        }
    }
    fn below(self) -> Option<Stage> {
        match self {
            Stage::Shadow => None,
            Stage::Paper => Some(Stage::Shadow),
            Stage::Canary => Some(Stage::Paper),
        }
    }
    fn above(self) -> Option<Stage> {
        match self {
            Stage::Shadow => Some(Stage::Paper),
            Stage::Paper => Some(Stage::Canary),
            Stage::Canary => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    Pending,
    Blocked,
    Promoted,
    Halted,
    RolledBack,
}

/// One entry of the append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub from: Stage,
    pub to: Stage,
    pub phase: Phase,
    pub reason: String,
    pub actor: String,
}

/// The most transitions a request's `status.history` keeps: the newest ones. The status must
/// stay within its CRD's bounds (`crate::crd::DEFAULT_MAX_ITEMS`) and the API server's object
/// size, or no status write would land; the audit trail (`crate::audit`) keeps them all.
pub const MAX_HISTORY: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionState {
    pub stage: Stage,
    pub phase: Phase,
    /// Why the state is what it is (blockers, halt reason).
    pub reasons: Vec<String>,
    pub history: Vec<Transition>,
}

impl Default for PromotionState {
    fn default() -> Self {
        Self {
            stage: Stage::Shadow,
            phase: Phase::Pending,
            reasons: Vec::new(),
            history: Vec::new(),
        }
    }
}

/// What the runtime must do in this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuntimeFlags {
    pub trading_enabled: bool,
    pub force_fallback: bool,
}

impl PromotionState {
    /// Trading only in a promoted paper or canary stage; a halt forces the fallback.
    pub fn runtime_flags(&self) -> RuntimeFlags {
        match self.phase {
            Phase::Halted => RuntimeFlags {
                trading_enabled: false,
                force_fallback: true,
            },
            Phase::Promoted if self.stage != Stage::Shadow => RuntimeFlags {
                trading_enabled: true,
                force_fallback: false,
            },
            _ => RuntimeFlags {
                trading_enabled: false,
                force_fallback: false,
            },
        }
    }

    fn record(&mut self, at: DateTime<Utc>, to: Stage, phase: Phase, reason: String, actor: &str) {
        self.history.push(Transition {
            at,
            from: self.stage,
            to,
            phase,
            reason: reason.clone(),
            actor: actor.to_string(),
        });
        // The status keeps the newest MAX_HISTORY; the audit trail keeps every one.
        let excess = self.history.len().saturating_sub(MAX_HISTORY);
        self.history.drain(..excess);
        self.stage = to;
        self.phase = phase;
        self.reasons = vec![reason];
    }
}

/// One reconcile of a promotion request: the kill switch first, then the stage rules, then the
/// gate decision (required unless the switch or the rules already decided). Idempotent: the
/// same inputs on the resulting state change nothing and append no history.
pub fn step(
    state: &PromotionState,
    target: Target,
    kill_switch: bool,
    decision: Option<&Decision>,
    actor: &str,
    now: DateTime<Utc>,
) -> PromotionState {
    let mut next = state.clone();
    if kill_switch {
        if state.phase != Phase::Halted {
            next.record(
                now,
                state.stage,
                Phase::Halted,
                "kill switch engaged".into(),
                actor,
            );
        }
        return next;
    }
    if state.phase == Phase::RolledBack {
        // Like a halt, a rollback is final for this request.
        next.reasons = vec!["rolled back; resuming needs a new promotion request".into()];
        return next;
    }
    if state.phase == Phase::Halted {
        // Clearing the switch leaves the request halted: resuming takes a new request.
        next.reasons = vec![
            "halted by the kill switch; it was cleared, but resuming needs a new promotion request"
                .into(),
        ];
        return next;
    }
    let wanted = Stage::of(target);
    if state.stage == wanted && state.phase == Phase::Promoted {
        return next;
    }
    if state.stage.above() != Some(wanted) {
        let reason = format!(
            "one stage at a time: the candidate is at {:?}, {:?} is not the next stage",
            state.stage, wanted
        )
        .to_lowercase();
        if state.phase != Phase::Blocked || state.reasons != [reason.clone()] {
            next.phase = Phase::Blocked;
            next.reasons = vec![reason];
        }
        return next;
    }
    match decision {
        Some(d) if d.allowed && d.target == target => {
            next.record(
                now,
                wanted,
                Phase::Promoted,
                format!("all gates passed under policy {}", d.policy_hash),
                actor,
            );
        }
        other => {
            let reasons: Vec<String> = match other {
                None => vec!["no gate decision".into()],
                Some(d) if d.target != target => vec![format!(
                    "the gate decision is for {:?}, not {:?}",
                    d.target, target
                )],
                Some(d) => d
                    .failed()
                    .flat_map(|g| {
                        g.reasons
                            .iter()
                            .map(move |r| format!("{}: {}", g.id, r.message))
                    })
                    .chain(d.missing.iter().map(|m| format!("missing: {m}")))
                    .collect(),
            };
            next.phase = Phase::Blocked;
            next.reasons = reasons;
        }
    }
    next
}

/// Halts a request for a reason other than its kill switch (its identity changed, its backing
/// is gone): trading stops, the fallback is forced, and like a kill switch it is final. A request
/// already halted or rolled back stays as it is (trading is already off).
pub fn halt(
    state: &PromotionState,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> PromotionState {
    let mut next = state.clone();
    if !matches!(state.phase, Phase::Halted | Phase::RolledBack) {
        next.record(now, state.stage, Phase::Halted, reason.to_string(), actor);
    }
    next
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("the candidate is in shadow: there is no stage to roll back to")]
    AtBottom,
    #[error("a rollback needs a reason")]
    NoReason,
}

/// Demotes one stage, recording why and who.
pub fn rollback(
    state: &PromotionState,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<PromotionState, RollbackError> {
    if reason.trim().is_empty() {
        return Err(RollbackError::NoReason);
    }
    let to = state.stage.below().ok_or(RollbackError::AtBottom)?;
    let mut next = state.clone();
    next.record(now, to, Phase::RolledBack, reason.to_string(), actor);
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_transitions_only() {
        let mut state = PromotionState::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for i in 0..(MAX_HISTORY as i64 + 44) {
            state.record(
                t0 + chrono::Duration::seconds(i),
                Stage::Paper,
                Phase::Blocked,
                format!("r{i}"),
                "a",
            );
        }
        assert_eq!(state.history.len(), MAX_HISTORY);
        assert_eq!(state.history[0].reason, "r44");
        assert_eq!(
            state.history.last().unwrap().reason,
            format!("r{}", MAX_HISTORY + 43)
        );
    }
}
