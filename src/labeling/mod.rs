//! Event/CAR labeling (DESIGN §3.2, paper Eq. 1-5): align each event to its first tradable day,
//! fit the market model on an estimation window, neutralize abnormal returns against factor
//! returns, sum them over the event window, and derive the label tuple {c, d, s, e}. Events that
//! cannot be labelled keep their record with the reason.

pub mod input;
pub mod market_model;
pub mod neutralize;

use crate::config::{Validate, check};
use crate::contracts::event_car::{
    EventCarRecord, EventCarSummary, LabelingMethod, MarketModelFit, UnlabelledReason, WindowDay,
};
use crate::contracts::label::{Label, Sign, Strength};
use crate::taxonomy::{EventType, Normalizer};
use chrono::{Days, NaiveTime};
use input::Dataset;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Parameters of the event study, with the defaults documented in docs/methodology.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LabelingConfig {
    /// Trading days in the estimation window.
    pub estimation_window: u32,
    /// Trading days between the estimation window and d0.
    pub buffer: u32,
    /// Fewest estimation days with both returns present.
    pub min_observations: u32,
    /// Trading days H in the event window d0 .. d0+H−1.
    pub event_window: u32,
    /// |car| at or below this is neutral.
    pub dead_band: f64,
    /// τ: |car| ≥ τ is strong.
    pub strong_threshold: f64,
    /// Session open, HH:MM, exchange time.
    pub session_open: String,
    /// IANA time zone of the exchange.
    pub timezone: String,
    /// Neutralize against factor returns when exposures are given.
    pub neutralize: bool,
    /// Keep other events' window days of the same stock out of each estimation window
    /// (default). `false` keeps them: the classic event study (MacKinlay 1997), where the
    /// estimation window is every trading day of `(T0, T1]`.
    pub exclude_other_events: bool,
    /// Extra spellings of event types (source string → type).
    pub aliases: BTreeMap<String, EventType>,
}

impl Default for LabelingConfig {
    fn default() -> Self {
        Self {
            estimation_window: 120,
            buffer: 10,
            min_observations: 60,
            event_window: 2,
            dead_band: 0.0,
            strong_threshold: 0.02,
            session_open: "09:30".into(),
            timezone: "Asia/Shanghai".into(),
            neutralize: true,
            exclude_other_events: true,
            aliases: BTreeMap::new(),
        }
    }
}

impl Validate for LabelingConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        check(
            self.estimation_window >= 3,
            "estimation_window",
            "must be at least 3 days",
        )?;
        check(
            (3..=self.estimation_window).contains(&self.min_observations),
            "min_observations",
            format!(
                "must be between 3 and estimation_window ({})",
                self.estimation_window
            ),
        )?;
        check(
            self.event_window >= 1,
            "event_window",
            "must be at least 1 day",
        )?;
        check(
            self.dead_band.is_finite() && self.dead_band >= 0.0,
            "dead_band",
            "must be a finite number ≥ 0",
        )?;
        check(
            self.strong_threshold.is_finite() && self.strong_threshold > 0.0,
            "strong_threshold",
            "must be a finite number > 0",
        )?;
        check(
            self.session_open_time().is_some(),
            "session_open",
            format!("`{}` is not a time HH:MM", self.session_open),
        )?;
        check(
            self.timezone.parse::<chrono_tz::Tz>().is_ok(),
            "timezone",
            format!("`{}` is not an IANA time zone", self.timezone),
        )
    }
}

impl LabelingConfig {
    fn session_open_time(&self) -> Option<NaiveTime> {
        NaiveTime::parse_from_str(&self.session_open, "%H:%M").ok()
    }
}

/// What labeling produced: the records in input order, their summary and the method applied.
#[derive(Debug, Clone)]
pub struct Labeled {
    pub records: Vec<EventCarRecord>,
    pub summary: EventCarSummary,
    pub method: LabelingMethod,
}

/// Close-to-close simple returns of each row of a row-major panel; NaN where today's or the
/// previous trading day's close is missing (a halt never yields a multi-day return).
pub fn returns(closes: &[f64], days: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; closes.len()];
    for (row, out_row) in closes.chunks_exact(days).zip(out.chunks_exact_mut(days)) {
        for t in 1..days {
            out_row[t] = row[t] / row[t - 1] - 1.0;
        }
    }
    out
}

/// Labels every event of `data`. `config` must be valid (see [`Validate`]).
pub fn label(data: &Dataset, config: &LabelingConfig) -> Labeled {
    let days = data.calendar.len();
    let symbols = data.universe.symbols.len();
    let tz: chrono_tz::Tz = config.timezone.parse().expect("validated time zone");
    let open = config.session_open_time().expect("validated session open");
    let horizon = config.event_window as usize;

    let stock_returns = returns(&data.prices.close, days);
    let index_returns: Vec<Vec<f64>> = data.index_close.iter().map(|c| returns(c, days)).collect();
    let exposures = data.exposures.as_ref().filter(|_| config.neutralize);
    let factor_returns = exposures.map(|x| {
        neutralize::factor_returns(
            &stock_returns,
            &index_returns,
            &data.universe.index_of,
            days,
            &data.universe.industry_of,
            data.universe.industries.len(),
            x,
            config.min_observations as usize,
        )
    });

    // d0 of each event: the first trading day whose session opens strictly after it. An event
    // before the calendar's first day has none, exactly like one after its last day: its first
    // tradable day is not in the data (the calendar's first day may be weeks later).
    let first_day = data.calendar.dates.first().copied();
    let d0: Vec<Option<usize>> = data
        .events
        .iter()
        .map(|e| {
            let local = e.timestamp.with_timezone(&tz).naive_local();
            let first_open_date = if local.time() < open {
                local.date()
            } else {
                local.date().checked_add_days(Days::new(1))?
            };
            if first_day.is_some_and(|first| first_open_date < first) {
                return None;
            }
            data.calendar.first_on_or_after(first_open_date)
        })
        .collect();
    let symbol_of: Vec<Option<usize>> = data
        .events
        .iter()
        .map(|e| data.universe.lookup.get(&e.symbol).map(|&s| s as usize))
        .collect();

    // Days inside any event window of each symbol: kept out of that symbol's estimation windows
    // (unless the configuration keeps them: the classic event study).
    let mut in_event_window = vec![false; symbols * days];
    let excluded = if config.exclude_other_events {
        symbol_of.as_slice()
    } else {
        &[]
    };
    for (s, d) in excluded.iter().zip(&d0) {
        if let (Some(s), Some(d)) = (s, d) {
            for t in *d..(*d + horizon).min(days) {
                in_event_window[s * days + t] = true;
            }
        }
    }

    let study = Study {
        data,
        config,
        horizon,
        normalizer: Normalizer::new(&config.aliases),
        stock_returns,
        index_returns,
        factor_returns,
        exposures,
        d0,
        symbol_of,
        in_event_window,
    };
    // Events are independent: label them in parallel, in input order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = data.events.len().div_ceil(threads).max(1);
    let records: Vec<EventCarRecord> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..data.events.len())
            .step_by(chunk)
            .map(|from| {
                let study = &study;
                scope.spawn(move || {
                    let mut scratch = (Vec::new(), Vec::new());
                    (from..(from + chunk).min(data.events.len()))
                        .map(|i| study.record(i, &mut scratch))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("labeling does not panic"))
            .collect()
    });

    let summary = EventCarSummary::of(&records, &data.bad_rows.counts);
    let method = LabelingMethod {
        estimation_window: config.estimation_window,
        buffer: config.buffer,
        min_observations: config.min_observations,
        event_window: config.event_window,
        dead_band: config.dead_band,
        strong_threshold: config.strong_threshold,
        session_open: config.session_open.clone(),
        timezone: config.timezone.clone(),
        neutralized: exposures.is_some(),
        factors: exposures.map(|x| x.factors.clone()).unwrap_or_default(),
    };
    Labeled {
        records,
        summary,
        method,
    }
}

/// Everything one event's label is computed from.
struct Study<'a> {
    data: &'a Dataset,
    config: &'a LabelingConfig,
    horizon: usize,
    normalizer: Normalizer,
    /// Symbol-major stock returns.
    stock_returns: Vec<f64>,
    /// Returns of each index.
    index_returns: Vec<Vec<f64>>,
    factor_returns: Option<neutralize::FactorReturns>,
    exposures: Option<&'a input::Exposures>,
    d0: Vec<Option<usize>>,
    symbol_of: Vec<Option<usize>>,
    in_event_window: Vec<bool>,
}

impl Study<'_> {
    /// The record of event `i`; `scratch` holds the estimation sample between calls.
    fn record(&self, i: usize, scratch: &mut (Vec<f64>, Vec<f64>)) -> EventCarRecord {
        let event = &self.data.events[i];
        let event_type = self.normalizer.normalize(&event.event_type);
        let mut record = EventCarRecord {
            event_id: event.event_id.clone(),
            timestamp: event.timestamp,
            symbol: event.symbol.clone(),
            source_event_type: event.event_type.clone(),
            event_type,
            title: event.title.clone(),
            d0: self.d0[i].map(|d| self.data.calendar.dates[d]),
            fit: None,
            window: Vec::new(),
            car_market_model: None,
            label: None,
            unlabelled_reason: None,
        };
        match self.label_into(i, event_type, &mut record, scratch) {
            Ok(label) => record.label = Some(label),
            Err(reason) => record.unlabelled_reason = Some(reason),
        }
        record
    }

    fn label_into(
        &self,
        i: usize,
        event_type: EventType,
        record: &mut EventCarRecord,
        (xs, ys): &mut (Vec<f64>, Vec<f64>),
    ) -> Result<Label, UnlabelledReason> {
        let (data, config, horizon) = (self.data, self.config, self.horizon);
        let days = data.calendar.len();
        let s = self.symbol_of[i].ok_or(UnlabelledReason::UnknownSymbol)?;
        let d = self.d0[i]
            .filter(|d| d + horizon <= days)
            .ok_or(UnlabelledReason::OutsideCalendar)?;
        let r = &self.stock_returns[s * days..(s + 1) * days];
        let m = &self.index_returns[data.universe.index_of[s] as usize];

        // Estimation window: the `estimation_window` days ending `buffer` days before d0.
        let end = d.saturating_sub(config.buffer as usize);
        let start = end.saturating_sub(config.estimation_window as usize);
        xs.clear();
        ys.clear();
        for t in start..end {
            if !self.in_event_window[s * days + t] && r[t].is_finite() && m[t].is_finite() {
                xs.push(m[t]);
                ys.push(r[t]);
            }
        }
        let fit =
            market_model::fit(xs, ys, config.min_observations as usize).map_err(|e| match e {
                market_model::FitError::Insufficient { .. } => {
                    UnlabelledReason::InsufficientHistory
                }
                market_model::FitError::Degenerate => UnlabelledReason::DegenerateRegression,
            })?;
        record.fit = Some(MarketModelFit {
            alpha: fit.alpha,
            beta: fit.beta,
            r_squared: fit.r_squared,
            observations: fit.observations as u32,
            residual_std: fit.residual_std,
            window_start: data.calendar.dates[start],
            window_end: data.calendar.dates[end - 1],
        });

        let mut car_mm = 0.0;
        let mut car = 0.0;
        let mut missing_factors = false;
        for t in d..d + horizon {
            if !(r[t].is_finite() && m[t].is_finite()) {
                record.window.clear();
                return Err(UnlabelledReason::MissingPrices);
            }
            let ar = fit.abnormal(r[t], m[t]);
            let neutral = match (&self.factor_returns, self.exposures) {
                (Some(f), Some(x)) => {
                    let g = f.industry_at(t, data.universe.industry_of[s] as usize);
                    let v = x.at(t, s).map_or(f64::NAN, |exposure| {
                        let explained: f64 =
                            exposure.iter().zip(f.style_at(t)).map(|(e, r)| e * r).sum();
                        ar - explained - g
                    });
                    missing_factors |= !v.is_finite();
                    Some(v)
                }
                _ => None,
            };
            car_mm += ar;
            car += neutral.unwrap_or(ar);
            record.window.push(WindowDay {
                date: data.calendar.dates[t],
                stock_return: r[t],
                market_return: m[t],
                abnormal_return: ar,
                neutral_abnormal_return: neutral.filter(|v| v.is_finite()),
            });
        }
        record.car_market_model = Some(car_mm);
        if missing_factors {
            return Err(UnlabelledReason::MissingFactorExposures);
        }
        Ok(Label {
            car,
            direction: if car > config.dead_band {
                Sign::Positive
            } else if car < -config.dead_band {
                Sign::Negative
            } else {
                Sign::Neutral
            },
            strength: if car.abs() >= config.strong_threshold {
                Strength::Strong
            } else {
                Strength::Weak
            },
            event_type,
        })
    }
}
