//! The hierarchical gated reward model, HGRM (DESIGN §3.3, paper Eq. 6-10, Alg. 1). Higher
//! levels gate lower ones: a format failure gets only the format penalty; an opposite direction
//! gets only −λ_dir; otherwise the event-type gate, the cost-aware PnL with its strength
//! regularizer, magnitude shaping and the process reward are summed with their weights, then
//! clipped to the configured bounds. Every number is finite whatever the input.

pub mod output;

use crate::config::{Validate, check};
use crate::contracts::label::{Direction, Label, Prediction, Sign, Strength};
use crate::contracts::reward::{FormatFailure, RewardComponents, RewardDecomposition, TypeGate};
use output::ParsedOutput;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every constant of the reward, with documented defaults (`config/hgrm.yaml`,
/// docs/methodology.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HgrmConfig {
    /// λ_dir (> 1): the reward of an opposite direction is −λ_dir.
    pub lambda_dir: f64,
    /// λ_hold (0 ≤ λ_hold ≤ λ_dir): the direction term of a `hold` on a label that has a
    /// direction. Not a gate — the terms below still count. At 0 (the paper read literally)
    /// abstaining is free while a wrong call costs λ_dir, so on weak signals GRPO learns to
    /// hold everything; the default λ_dir / 2 prices abstaining at a coin flip's expected
    /// penalty, so the policy holds only where it has no edge (docs/methodology.md §2).
    pub lambda_hold: f64,
    /// λ_evt: penalty for a wrong event type.
    pub lambda_evt: f64,
    /// λ_miss: penalty for a missing event type.
    pub lambda_miss: f64,
    /// m_evt ∈ (0, 1): PnL discount when the type is wrong or missing.
    pub m_evt: f64,
    /// κ: transaction cost charged on a traded (strong) call, in return units.
    pub kappa: f64,
    /// ρ: the PnL term is clipped to [−ρ, ρ].
    pub rho: f64,
    /// Strength regularizer: penalty for trading (strong) when the label is weak.
    pub eta_trade_when_weak: f64,
    /// Strength regularizer: penalty for not trading (weak) when the label is strong.
    pub eta_idle_when_strong: f64,
    /// σ of the magnitude term exp(−(ĉ − c)² / 2σ²).
    pub sigma: f64,
    /// Process reward for well-formed reasoning (length within bounds).
    pub process_bonus: f64,
    /// Reasoning shorter than this (characters) earns no process bonus.
    pub reasoning_min_chars: usize,
    /// Reasoning longer than this (characters) is verbose.
    pub reasoning_max_chars: usize,
    /// Penalty for verbose reasoning.
    pub verbose_penalty: f64,
    /// Text outside the JSON object beyond this many characters is irrelevant text.
    pub extra_text_max_chars: usize,
    /// Penalty for irrelevant text around the object.
    pub irrelevant_text_penalty: f64,
    /// The reward of a malformed completion is −format_penalty.
    pub format_penalty: f64,
    pub weights: HgrmWeights,
    /// The final reward is clipped to [min, max].
    pub bounds: Bounds,
    /// One switch per component, for the paper's ablations.
    pub enabled: HgrmSwitches,
}

/// Weights of the final sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HgrmWeights {
    pub direction: f64,
    pub event_type: f64,
    pub pnl: f64,
    pub strength: f64,
    pub magnitude: f64,
    pub process: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    pub min: f64,
    pub max: f64,
}

/// Component switches: `false` removes the component (and, for a gate, its gating).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HgrmSwitches {
    /// The hard direction gate ("w/o direction gate" when false).
    pub direction_gate: bool,
    /// The soft event-type gate ("w/o event-type gate").
    pub event_type_gate: bool,
    /// The cost-aware PnL term and its strength regularizer ("w/o PnL").
    pub pnl: bool,
    /// Magnitude shaping ("w/o magnitude").
    pub magnitude: bool,
    /// The process reward.
    pub process: bool,
}

impl Default for HgrmConfig {
    fn default() -> Self {
        Self {
            lambda_dir: 1.5,
            lambda_hold: 0.75,
            lambda_evt: 0.2,
            lambda_miss: 0.3,
            m_evt: 0.5,
            kappa: 0.0015,
            rho: 0.1,
            eta_trade_when_weak: 0.2,
            eta_idle_when_strong: 0.1,
            sigma: 0.02,
            process_bonus: 0.1,
            reasoning_min_chars: 20,
            reasoning_max_chars: 800,
            verbose_penalty: 0.1,
            extra_text_max_chars: 200,
            irrelevant_text_penalty: 0.05,
            format_penalty: 1.0,
            weights: HgrmWeights::default(),
            bounds: Bounds {
                min: -1.5,
                max: 1.5,
            },
            enabled: HgrmSwitches::default(),
        }
    }
}

impl Default for HgrmWeights {
    fn default() -> Self {
        Self {
            direction: 1.0,
            event_type: 1.0,
            pnl: 10.0,
            strength: 1.0,
            magnitude: 0.5,
            process: 1.0,
        }
    }
}

impl Default for Bounds {
    fn default() -> Self {
        HgrmConfig::default().bounds
    }
}

impl Default for HgrmSwitches {
    fn default() -> Self {
        Self {
            direction_gate: true,
            event_type_gate: true,
            pnl: true,
            magnitude: true,
            process: true,
        }
    }
}

impl Validate for HgrmConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let finite_non_negative = [
            ("lambda_evt", self.lambda_evt),
            ("lambda_miss", self.lambda_miss),
            ("kappa", self.kappa),
            ("eta_trade_when_weak", self.eta_trade_when_weak),
            ("eta_idle_when_strong", self.eta_idle_when_strong),
            ("process_bonus", self.process_bonus),
            ("verbose_penalty", self.verbose_penalty),
            ("irrelevant_text_penalty", self.irrelevant_text_penalty),
            ("format_penalty", self.format_penalty),
            ("weights.direction", self.weights.direction),
            ("weights.event_type", self.weights.event_type),
            ("weights.pnl", self.weights.pnl),
            ("weights.strength", self.weights.strength),
            ("weights.magnitude", self.weights.magnitude),
            ("weights.process", self.weights.process),
        ];
        for (key, v) in finite_non_negative {
            check(
                v.is_finite() && v >= 0.0,
                key,
                "must be a finite number ≥ 0",
            )?;
        }
        check(
            self.lambda_dir.is_finite() && self.lambda_dir > 1.0,
            "lambda_dir",
            "must be a finite number > 1",
        )?;
        check(
            self.lambda_hold.is_finite() && (0.0..=self.lambda_dir).contains(&self.lambda_hold),
            "lambda_hold",
            "must be a finite number between 0 and lambda_dir",
        )?;
        check(
            self.m_evt > 0.0 && self.m_evt < 1.0,
            "m_evt",
            "must lie strictly between 0 and 1",
        )?;
        check(
            self.rho.is_finite() && self.rho > 0.0,
            "rho",
            "must be a finite number > 0",
        )?;
        check(
            self.sigma.is_finite() && self.sigma > 0.0,
            "sigma",
            "must be a finite number > 0",
        )?;
        check(
            self.reasoning_min_chars <= self.reasoning_max_chars,
            "reasoning_min_chars",
            "must not exceed reasoning_max_chars",
        )?;
        check(
            self.bounds.min.is_finite()
                && self.bounds.max.is_finite()
                && self.bounds.min < self.bounds.max,
            "bounds",
            "min and max must be finite with min < max",
        )
    }
}

/// Scores one sample against its label.
pub fn score(
    event_id: &str,
    output: Result<&ParsedOutput, &FormatFailure>,
    label: &Label,
    config: &HgrmConfig,
) -> RewardDecomposition {
    let mut components = RewardComponents {
        direction: 0.0,
        event_type: 0.0,
        pnl: 0.0,
        strength: 0.0,
        magnitude: 0.0,
        process: 0.0,
    };
    let mut gated_out: Vec<String> = Vec::new();
    let w = &config.weights;
    let on = &config.enabled;
    let all_below = |from: usize, gated: &mut Vec<String>| {
        let names = ["event_type", "pnl", "strength", "magnitude", "process"];
        gated.extend(names[from..].iter().map(|s| s.to_string()));
    };

    let parsed = match output {
        Err(failure) => {
            components.process = -config.format_penalty;
            gated_out.push("direction".into());
            all_below(0, &mut gated_out);
            gated_out.retain(|n| n != "process");
            let unclipped = w.process * components.process;
            return finish(
                event_id,
                None,
                Some(failure.clone()),
                false,
                TypeGate::NotApplied,
                1.0,
                components,
                gated_out,
                unclipped,
                config,
            );
        }
        Ok(p) => p,
    };
    let prediction = &parsed.prediction;

    // 1. Hard direction gate.
    let opposite = prediction.direction.position() * sign_value(label.direction) < 0.0;
    let gate_passed = !opposite;
    if on.direction_gate && opposite {
        components.direction = -config.lambda_dir;
        all_below(0, &mut gated_out);
        let unclipped = w.direction * components.direction;
        return finish(
            event_id,
            Some(prediction.clone()),
            None,
            false,
            TypeGate::NotApplied,
            1.0,
            components,
            gated_out,
            unclipped,
            config,
        );
    }
    if !on.direction_gate {
        gated_out.push("direction".into());
    } else if prediction.direction == Direction::Hold && label.direction != Sign::Neutral {
        components.direction = -config.lambda_hold;
    }

    // 2. Soft event-type gate.
    let (type_gate, discount) = if !on.event_type_gate || !label.event_type.is_known() {
        gated_out.push("event_type".into());
        (TypeGate::NotApplied, 1.0)
    } else {
        match prediction.event_type {
            Some(t) if t == label.event_type => (TypeGate::Match, 1.0),
            Some(_) => {
                components.event_type = -config.lambda_evt;
                (TypeGate::Wrong, config.m_evt)
            }
            None => {
                components.event_type = -config.lambda_miss;
                (TypeGate::Missing, config.m_evt)
            }
        }
    };

    // 3. Cost-aware PnL on traded calls (strong, not hold), and the asymmetric strength
    // regularizer on whether the call trades against whether the label says it should.
    if on.pnl {
        let traded =
            prediction.strength == Strength::Strong && prediction.direction != Direction::Hold;
        if traded {
            let raw = prediction.direction.position() * label.car - config.kappa;
            let clipped = raw.clamp(-config.rho, config.rho);
            // m_evt discounts gains only: a loss counts in full, so a wrong or missing type
            // can never score above the right one.
            components.pnl = if clipped > 0.0 {
                clipped * discount
            } else {
                clipped
            };
        }
        let should_trade = label.strength == Strength::Strong && label.direction != Sign::Neutral;
        components.strength = match (traded, should_trade) {
            (true, false) => -config.eta_trade_when_weak,
            (false, true) => -config.eta_idle_when_strong,
            _ => 0.0,
        };
    } else {
        gated_out.extend(["pnl".to_string(), "strength".to_string()]);
    }

    // 4. Magnitude shaping.
    if on.magnitude {
        let err = prediction.car_estimate - label.car;
        let m = (-(err * err) / (2.0 * config.sigma * config.sigma)).exp();
        components.magnitude = if m.is_finite() { m } else { 0.0 };
    } else {
        gated_out.push("magnitude".into());
    }

    // 5. Process reward.
    if on.process {
        let mut p = 0.0;
        if parsed.reasoning_chars > config.reasoning_max_chars {
            p -= config.verbose_penalty;
        } else if parsed.reasoning_chars >= config.reasoning_min_chars {
            p += config.process_bonus;
        }
        if parsed.extra_chars > config.extra_text_max_chars {
            p -= config.irrelevant_text_penalty;
        }
        components.process = p;
    } else {
        gated_out.push("process".into());
    }

    let unclipped = w.direction * components.direction
        + w.event_type * components.event_type
        + w.pnl * components.pnl
        + w.strength * components.strength
        + w.magnitude * components.magnitude
        + w.process * components.process;
    finish(
        event_id,
        Some(prediction.clone()),
        None,
        gate_passed,
        type_gate,
        discount,
        components,
        gated_out,
        unclipped,
        config,
    )
}

fn sign_value(sign: Sign) -> f64 {
    match sign {
        Sign::Positive => 1.0,
        Sign::Negative => -1.0,
        Sign::Neutral => 0.0,
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    event_id: &str,
    prediction: Option<Prediction>,
    format_failure: Option<FormatFailure>,
    direction_gate_passed: bool,
    event_type_gate: TypeGate,
    pnl_discount: f64,
    components: RewardComponents,
    gated_out: Vec<String>,
    unclipped: f64,
    config: &HgrmConfig,
) -> RewardDecomposition {
    // Every term is finite by construction; should one ever not be, fail low, never NaN.
    let unclipped = if unclipped.is_finite() {
        unclipped
    } else {
        config.bounds.min - 1.0
    };
    let final_reward = unclipped.clamp(config.bounds.min, config.bounds.max);
    RewardDecomposition {
        event_id: event_id.to_string(),
        prediction,
        format_failure,
        direction_gate_passed,
        event_type_gate,
        pnl_discount,
        components,
        gated_out,
        unclipped_reward: unclipped,
        final_reward,
        clipped: final_reward != unclipped,
    }
}
