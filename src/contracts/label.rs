//! The vocabulary shared by labels, model outputs, evaluation and the decision service.

use crate::taxonomy::EventType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Sign of an event's CAR: positive, negative, or neutral inside the dead band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sign {
    Positive,
    Negative,
    Neutral,
}

/// Whether |CAR| reaches the strong threshold τ (label), or whether the model calls it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    Strong,
    Weak,
}

/// A trading direction: what the model says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Long,
    Short,
    Hold,
}

impl Direction {
    /// +1 long, −1 short, 0 hold.
    pub fn position(self) -> f64 {
        match self {
            Direction::Long => 1.0,
            Direction::Short => -1.0,
            Direction::Hold => 0.0,
        }
    }

    /// The direction that profits from a CAR of this sign.
    pub fn for_sign(sign: Sign) -> Self {
        match sign {
            Sign::Positive => Direction::Long,
            Sign::Negative => Direction::Short,
            Sign::Neutral => Direction::Hold,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::Long => "long",
            Direction::Short => "short",
            Direction::Hold => "hold",
        }
    }
}

/// The label tuple y = {c, d, s, e} of DESIGN §3.2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// c: cumulative abnormal return over the event window (neutralized when factors were given).
    pub car: f64,
    /// d: sign of `car`, neutral inside the dead band.
    pub direction: Sign,
    /// e: the normalized event type.
    pub event_type: EventType,
    /// s: strong when |car| ≥ τ.
    pub strength: Strength,
}

/// A model's structured prediction for one event (the model output contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    /// ĉ: the model's CAR estimate.
    pub car_estimate: f64,
    pub direction: Direction,
    /// `None` when the model gave no event type.
    pub event_type: Option<EventType>,
    pub strength: Strength,
}
