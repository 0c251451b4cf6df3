//! The numbers behind the charts a researcher looks at beside the metrics: the reliability of
//! the candidate's direction probabilities, the bootstrap distribution of ΔSR, and the mean
//! cumulative abnormal return around the event window by event type. Pure: values in, values
//! out; [`super::charts`] draws them.

use super::report::EvaluationInput;
use crate::contracts::event_car::EventCarRecord;
use crate::contracts::label::{Direction, Prediction};
use crate::taxonomy::EventType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One probability bin of a reliability diagram: the calls whose probability p lies in
/// `[lower, upper)` (the last bin also holds p = 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    /// Calls in the bin.
    pub calls: u64,
    /// Mean stated probability of those calls; `None` for an empty bin.
    pub mean_probability: Option<f64>,
    /// Share of those calls whose direction matched the label's; `None` for an empty bin.
    pub hit_rate: Option<f64>,
}

/// A reliability (calibration) diagram of the candidate's direction calls: how often a call
/// made with probability p was right (DeGroot & Fienberg 1983; Guo et al. 2017 for the
/// expected calibration error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    pub bins: Vec<ReliabilityBin>,
    /// Calls scored: labelled events of the evaluated window with a call and its probability.
    pub scored: u64,
    /// Calls of those events that state no probability (left out of the diagram).
    pub without_probability: u64,
    /// Expected calibration error Σ_b (n_b / n) · |hit rate_b − mean probability_b|; `None`
    /// when nothing was scored.
    pub ece: Option<f64>,
}

/// Bins `(probability, hit)` pairs into `bins` equal-width bins over [0, 1]. Pairs whose
/// probability is not a finite number in [0, 1] are left out.
pub fn reliability_bins(points: &[(f64, bool)], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut acc = vec![(0u64, 0.0f64, 0u64); bins];
    for &(p, hit) in points {
        if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
            continue;
        }
        let b = ((p * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += p;
        acc[b].2 += hit as u64;
    }
    acc.into_iter()
        .enumerate()
        .map(|(b, (n, sum_p, hits))| ReliabilityBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            calls: n,
            mean_probability: (n > 0).then(|| sum_p / n as f64),
            hit_rate: (n > 0).then(|| hits as f64 / n as f64),
        })
        .collect()
}

/// The reliability of `calls` (aligned with `input.events`) whose stated probability of the
/// called direction is `probability[i]`, over the labelled events of the evaluated window: a
/// call is a hit when its direction is the label's (long: positive CAR, short: negative, hold:
/// inside the dead band), as in DA.
pub fn reliability(
    input: &EvaluationInput<'_>,
    calls: &[Option<Prediction>],
    probability: &[Option<f64>],
    bins: usize,
) -> Reliability {
    let mut points = Vec::new();
    let mut without_probability = 0;
    for (i, event) in input.events.iter().enumerate() {
        let (Some(call), Some(label)) = (&calls[i], &input.labels[i]) else {
            continue;
        };
        if event.d0 < input.start {
            continue;
        }
        match probability.get(i).copied().flatten() {
            Some(p) => points.push((p, call.direction == Direction::for_sign(label.direction))),
            None => without_probability += 1,
        }
    }
    let bins = reliability_bins(&points, bins);
    let scored: u64 = bins.iter().map(|b| b.calls).sum();
    let ece = (scored > 0).then(|| {
        bins.iter()
            .filter_map(|b| {
                Some(b.calls as f64 / scored as f64 * (b.hit_rate? - b.mean_probability?).abs())
            })
            .sum()
    });
    Reliability {
        bins,
        scored,
        without_probability,
        ece,
    }
}

/// Counts of values in equal-width bins between the smallest and the largest finite value.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Left edge of the first bin.
    pub lower: f64,
    /// Width of every bin (> 0).
    pub width: f64,
    pub counts: Vec<u64>,
}

/// A histogram of the finite `values` in `bins` bins (the largest value falls in the last);
/// `None` without a finite value. All values equal: one bin of width 1e-9 around them.
pub fn histogram(values: &[f64], bins: usize) -> Option<Histogram> {
    let finite = || values.iter().copied().filter(|v| v.is_finite());
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return None;
    }
    let (bins, width) = if hi > lo {
        (bins.max(1), (hi - lo) / bins.max(1) as f64)
    } else {
        (1, 1e-9)
    };
    let mut counts = vec![0u64; bins];
    for v in finite() {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    Some(Histogram {
        lower: lo,
        width,
        counts,
    })
}

/// The mean cumulative abnormal return of one event type on each day of the event window.
#[derive(Debug, Clone, PartialEq)]
pub struct CarPath {
    pub event_type: EventType,
    /// Labelled events of the type averaged.
    pub events: u64,
    /// Mean CAR at the close of relative day k (day 0 = d0, the first tradable day), as a
    /// fraction; the last value is the mean of the labels' CAR.
    pub mean_car: Vec<f64>,
}

/// Mean CAR paths by event type over the labelled records of an event-car artifact, each day's
/// AR the neutralized one when the labeller neutralized it (as the label's CAR is), else the
/// market model's. Records whose window is shorter than the longest (none, when the labeller
/// wrote them) are left out; types in [`EventType`] order.
pub fn car_paths(records: &[EventCarRecord]) -> Vec<CarPath> {
    let labelled = || records.iter().filter(|r| r.label.is_some());
    let days = labelled().map(|r| r.window.len()).max().unwrap_or(0);
    let mut by_type: BTreeMap<EventType, (u64, Vec<f64>)> = BTreeMap::new();
    for r in labelled().filter(|r| r.window.len() == days && days > 0) {
        let (n, sums) = by_type
            .entry(r.event_type)
            .or_insert_with(|| (0, vec![0.0; days]));
        *n += 1;
        let mut car = 0.0;
        for (sum, day) in sums.iter_mut().zip(&r.window) {
            car += day.neutral_abnormal_return.unwrap_or(day.abnormal_return);
            *sum += car;
        }
    }
    by_type
        .into_iter()
        .filter(|(_, (_, sums))| sums.iter().all(|s| s.is_finite()))
        .map(|(event_type, (n, sums))| CarPath {
            event_type,
            events: n,
            mean_car: sums.into_iter().map(|s| s / n as f64).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reliability_bins_match_a_hand_count() {
        // Five calls: p 0.35 (hit), 0.38 (miss), 0.62 (hit), 0.95 (hit), 1.0 (miss).
        // By hand, with 10 bins: [0.3, 0.4) holds 2 calls, mean p 0.365, hit rate 0.5;
        // [0.6, 0.7) holds 1, mean 0.62, hit 1; [0.9, 1.0] holds 0.95 and 1.0: mean 0.975,
        // hit rate 0.5. A NaN probability is left out.
        let points = [
            (0.35, true),
            (0.38, false),
            (0.62, true),
            (0.95, true),
            (1.0, false),
            (f64::NAN, true),
        ];
        let bins = reliability_bins(&points, 10);
        assert_eq!(bins.len(), 10);
        let counts: Vec<u64> = bins.iter().map(|b| b.calls).collect();
        assert_eq!(counts, vec![0, 0, 0, 2, 0, 0, 1, 0, 0, 2]);
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
        assert!(close(bins[3].mean_probability, 0.365));
        assert!(close(bins[3].hit_rate, 0.5));
        assert!(close(bins[6].mean_probability, 0.62));
        assert!(close(bins[6].hit_rate, 1.0));
        assert!(close(bins[9].mean_probability, 0.975));
        assert!(close(bins[9].hit_rate, 0.5));
        assert_eq!(bins[0].mean_probability, None);
        assert!((bins[3].lower - 0.3).abs() < 1e-12 && (bins[3].upper - 0.4).abs() < 1e-12);
    }

    #[test]
    fn histogram_counts_by_hand() {
        // 0, 0.1, 0.2, 0.9, 1.0 in 4 bins of width 0.25: [0, .25) 3, [.75, 1] 2.
        let h = histogram(&[0.0, 0.1, 0.2, 0.9, 1.0, f64::NAN], 4).unwrap();
        assert_eq!(h.counts, vec![3, 0, 0, 2]);
        assert!((h.width - 0.25).abs() < 1e-15 && h.lower == 0.0);
        assert_eq!(histogram(&[f64::NAN], 4), None);
        assert_eq!(histogram(&[2.0, 2.0], 4).unwrap().counts, vec![2]);
    }
}
