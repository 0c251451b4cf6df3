//! Per-type statistics of labelled history, used twice on purpose by the same code: as the
//! capital weights of the backtest (mean |CAR| per type) and as the deterministic baseline that
//! is also the decision service's fallback (per type: the sign of the mean CAR, strong when the
//! type's mean |CAR| reaches τ). Only history whose labels were known in time is used.

use crate::contracts::label::{Direction, Prediction, Strength};
use crate::taxonomy::EventType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Sums over the labelled events of one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TypeStats {
    pub count: u64,
    pub sum_car: f64,
    pub sum_abs_car: f64,
}

impl TypeStats {
    pub fn mean_car(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_car / self.count as f64
        }
    }
    pub fn mean_abs_car(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_abs_car / self.count as f64
        }
    }
}

/// Statistics for each of the ten types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TypeTable {
    pub stats: [TypeStats; 10],
}

impl TypeTable {
    pub fn add(&mut self, t: EventType, car: f64) {
        if let Some(i) = t.index() {
            let s = &mut self.stats[i];
            s.count += 1;
            s.sum_car += car;
            s.sum_abs_car += car.abs();
        }
    }

    pub fn remove(&mut self, t: EventType, car: f64) {
        if let Some(i) = t.index() {
            let s = &mut self.stats[i];
            s.count -= 1;
            s.sum_car -= car;
            s.sum_abs_car -= car.abs();
            if s.count == 0 {
                *s = TypeStats::default();
            }
        }
    }

    /// The type's capital weight: its mean |CAR| with at least `min_history` events, else the
    /// paper's published weight as a prior; 0 for `unknown`.
    pub fn weight(&self, t: EventType, min_history: u64) -> f64 {
        match t.index() {
            Some(i) if self.stats[i].count >= min_history => self.stats[i].mean_abs_car(),
            _ => t.paper_weight(),
        }
    }

    /// The baseline's call for an event of type `t`: hold without enough history or for an
    /// unknown type. The call states no event type (`event_type: None`): the baseline is
    /// *given* the type (from upstream: the events file, the trading lane's request), so echoing
    /// it back as a prediction would score a perfect, meaningless event-type accuracy. Its ETA
    /// is therefore undefined (null with a reason), not 1.
    pub fn baseline(&self, t: EventType, strong_threshold: f64, min_history: u64) -> Prediction {
        let hold = Prediction {
            direction: Direction::Hold,
            event_type: None,
            strength: Strength::Weak,
            car_estimate: 0.0,
        };
        let Some(i) = t.index() else { return hold };
        let s = &self.stats[i];
        if s.count < min_history || s.mean_car() == 0.0 {
            return hold;
        }
        Prediction {
            direction: if s.mean_car() > 0.0 {
                Direction::Long
            } else {
                Direction::Short
            },
            event_type: None,
            strength: if s.mean_abs_car() >= strong_threshold {
                Strength::Strong
            } else {
                Strength::Weak
            },
            car_estimate: s.mean_car(),
        }
    }
}

/// Sweeps events in time, keeping the statistics of labels known by each day within a
/// trailing window: an event with first day d0 and an H-day window is known from day d0 + H
/// and leaves the window at day d0 + H + W.
pub struct TrailingTypes {
    /// (day known, type, car) sorted by day known.
    known: Vec<(usize, EventType, f64)>,
    window: usize,
    next_in: usize,
    next_out: usize,
    table: TypeTable,
}

impl TrailingTypes {
    /// `labelled`: (d0, type, car) of every labelled event; `horizon` the label window H;
    /// `window` W in trading days.
    pub fn new(
        labelled: impl IntoIterator<Item = (usize, EventType, f64)>,
        horizon: usize,
        window: usize,
    ) -> Self {
        let mut known: Vec<_> = labelled
            .into_iter()
            .map(|(d0, t, car)| (d0 + horizon, t, car))
            .collect();
        known.sort_by_key(|k| k.0);
        Self {
            known,
            window,
            next_in: 0,
            next_out: 0,
            table: TypeTable::default(),
        }
    }

    /// The table as of the open of `day` (days must not decrease).
    pub fn at(&mut self, day: usize) -> &TypeTable {
        while self.next_in < self.known.len() && self.known[self.next_in].0 <= day {
            let (_, t, car) = self.known[self.next_in];
            self.table.add(t, car);
            self.next_in += 1;
        }
        while self.next_out < self.next_in && self.known[self.next_out].0 + self.window <= day {
            let (_, t, car) = self.known[self.next_out];
            self.table.remove(t, car);
            self.next_out += 1;
        }
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_labels_known_in_time_and_inside_the_window_count() {
        let events = vec![
            (0, EventType::Dividend, 0.04),
            (1, EventType::Dividend, 0.02),
            (5, EventType::Violation, -0.03),
        ];
        let mut trail = TrailingTypes::new(events, 2, 4);
        assert_eq!(
            trail.at(1).stats[EventType::Dividend.index().unwrap()].count,
            0
        );
        assert_eq!(
            trail.at(2).stats[EventType::Dividend.index().unwrap()].count,
            1
        );
        let t = trail.at(3);
        assert_eq!(t.stats[EventType::Dividend.index().unwrap()].count, 2);
        assert!((t.stats[EventType::Dividend.index().unwrap()].mean_car() - 0.03).abs() < 1e-15);
        // Known at day 2 and 3, window 4: gone by day 6 and 7.
        assert_eq!(
            trail.at(6).stats[EventType::Dividend.index().unwrap()].count,
            1
        );
        let t = trail.at(7);
        assert_eq!(t.stats[EventType::Dividend.index().unwrap()].count, 0);
        assert_eq!(t.stats[EventType::Violation.index().unwrap()].count, 1);
    }

    #[test]
    fn the_baseline_follows_the_sign_of_the_mean_car() {
        let mut table = TypeTable::default();
        for car in [0.03, 0.01, 0.05] {
            table.add(EventType::Dividend, car);
        }
        let p = table.baseline(EventType::Dividend, 0.02, 3);
        assert_eq!(p.direction, Direction::Long);
        assert_eq!(p.strength, Strength::Strong);
        assert!((p.car_estimate - 0.03).abs() < 1e-15);
        // Given the type, it does not claim to have inferred it.
        assert_eq!(p.event_type, None);
        assert_eq!(
            table.baseline(EventType::Dividend, 0.02, 4).direction,
            Direction::Hold
        );
        assert_eq!(
            table.baseline(EventType::Unknown, 0.02, 0).direction,
            Direction::Hold
        );
        assert_eq!(
            table.weight(EventType::Violation, 1),
            EventType::Violation.paper_weight()
        );
    }
}
