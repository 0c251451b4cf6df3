//! The paper's trading protocol (DESIGN §3.4): each traded call enters at the open of its
//! event's first tradable day d0 and exits at the close of day d0 + h − 1. Every day, a 1/h
//! share of NAV is committed to the day's new positions: split across event types by weight
//! (trailing mean |CAR|, no look-ahead), then equally among a type's positions. Positions are
//! marked to market daily; costs are charged on entry and exit notional.
//!
//! Ruin is ruin: when NAV closes at or below 0 (losses beyond capital), every open position is
//! closed at that close, trading stops, and the NAV series ends there with its true value (≤ 0);
//! nothing is floored, so no later gain can make a wiped-out book look solvent.

use super::baseline::TrailingTypes;
use super::metrics::Undefined;
use crate::contracts::label::{Direction, Prediction, Strength};
use crate::taxonomy::EventType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Backtest parameters, with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BacktestConfig {
    /// Holding period h in trading days (1-10).
    pub holding_days: u32,
    /// Cost per side in basis points of notional.
    pub cost_bps: f64,
    /// Cap on gross exposure as a multiple of NAV (1, 2, 3); none when absent.
    pub gross_cap: Option<f64>,
    /// Trailing window of labelled history for type weights and the baseline, in trading days.
    pub weight_window: u32,
    /// Fewest labelled events of a type before its own statistics replace the paper's weight.
    pub min_type_history: u64,
    /// Trade weak calls too (by default only strong, non-hold calls trade).
    pub trade_weak: bool,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        Self {
            holding_days: 2,
            cost_bps: 10.0,
            gross_cap: None,
            weight_window: 250,
            min_type_history: 20,
            trade_weak: false,
        }
    }
}

/// What a backtest needs of an event.
#[derive(Debug, Clone)]
pub struct EventSlot {
    pub symbol: usize,
    pub d0: usize,
    pub event_type: EventType,
}

/// Open and close panels (symbol-major, NaN when missing) over `days` trading days.
pub struct PricePanel<'a> {
    pub days: usize,
    pub open: &'a [f64],
    pub close: &'a [f64],
}

/// One executed position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub event: usize,
    pub entry_day: usize,
    pub exit_day: usize,
    /// +1 long, −1 short.
    pub side: f64,
    pub notional: f64,
    pub pnl: f64,
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestResult {
    /// NAV at the close of each day, after a starting value of 1 before the first open:
    /// `days + 1` points, or fewer when the book was ruined (the last point is then ≤ 0).
    pub nav: Vec<f64>,
    /// Calendar day at whose close NAV fell to 0 or below; trading stopped there.
    pub ruin_day: Option<usize>,
    pub trades: Vec<Trade>,
    /// Calls that could not trade: no open price at d0.
    pub untradable: usize,
    pub cost_paid: f64,
    pub traded_notional: f64,
    /// Largest gross exposure at a close (before that day's exits), as a multiple of that
    /// close's NAV; on the day of ruin, whose closing NAV is ≤ 0, as a multiple of the NAV the
    /// day opened with (the previous close, which the positions were sized against), so a book
    /// that traded its way to ruin never shows 0.
    pub max_gross_exposure: f64,
}

impl BacktestResult {
    pub fn daily_returns(&self) -> Vec<f64> {
        self.nav.windows(2).map(|w| w[1] / w[0] - 1.0).collect()
    }
    /// Share of trades with a positive net PnL; `None` without trades.
    pub fn hit_rate(&self) -> Option<f64> {
        (!self.trades.is_empty()).then(|| {
            self.trades.iter().filter(|t| t.pnl - t.cost > 0.0).count() as f64
                / self.trades.len() as f64
        })
    }
    /// Daily turnover over the evaluated days from calendar day `start` on: traded notional
    /// (entries and exits, all of which fall in that window) per evaluated day, as a multiple
    /// of the window's mean NAV. The divisor is the number of evaluated return days, not the
    /// whole calendar (history before `start` trades nothing). Undefined without an evaluated
    /// day, and on ruin (docs/methodology.md §3): a per-day average of a book whose NAV fell to
    /// 0 or below has no meaningful NAV to divide by (the mean of a series that ends ≤ 0, or of
    /// its solvent days only, would understate the trading that ruined it).
    pub fn turnover(&self, start: usize) -> Result<f64, Undefined> {
        let window = self
            .nav
            .get(start..)
            .filter(|w| w.len() >= 2)
            .ok_or(Undefined::Side(
                "evaluated window",
                Box::new(Undefined::NoReturns),
            ))?;
        if self.ruin_day.is_some() {
            return Err(Undefined::Ruin {
                day: window.len() - 1,
                nav: window[window.len() - 1] / window[0],
            });
        }
        let mean_nav = window.iter().sum::<f64>() / window.len() as f64;
        let days = (window.len() - 1) as f64;
        Ok(self.traded_notional / mean_nav / days)
    }
    /// Costs as basis points of traded notional; `None` when nothing was traded.
    pub fn cost_in_bps(&self) -> Option<f64> {
        (self.traded_notional > 0.0).then(|| self.cost_paid / self.traded_notional * 1e4)
    }
}

/// Whether a call trades.
fn trades(p: &Prediction, trade_weak: bool) -> bool {
    p.direction != Direction::Hold && (trade_weak || p.strength == Strength::Strong)
}

/// Runs the protocol. `calls[i]` is the prediction for `events[i]` (None: no call);
/// `labelled` gives (event index, car) for the type weights' trailing history.
pub fn run(
    prices: &PricePanel<'_>,
    events: &[EventSlot],
    calls: &[Option<Prediction>],
    labelled: &[(usize, f64)],
    horizon: usize,
    config: &BacktestConfig,
) -> BacktestResult {
    let days = prices.days;
    let h = config.holding_days.max(1) as usize;
    let cost_rate = config.cost_bps / 1e4;
    let mut weights = TrailingTypes::new(
        labelled
            .iter()
            .map(|&(i, car)| (events[i].d0, events[i].event_type, car)),
        horizon,
        config.weight_window as usize,
    );
    // Calls by entry day.
    let mut by_day: Vec<Vec<usize>> = vec![Vec::new(); days];
    for (i, (e, call)) in events.iter().zip(calls).enumerate() {
        if let Some(p) = call
            && trades(p, config.trade_weak)
            && e.d0 < days
        {
            by_day[e.d0].push(i);
        }
    }

    struct Open {
        event: usize,
        symbol: usize,
        side: f64,
        notional: f64,
        /// Last price the position was marked at.
        mark: f64,
        value: f64,
        entry_day: usize,
        exit_day: usize,
        pnl: f64,
        cost: f64,
    }
    let mut open: Vec<Open> = Vec::new();
    let mut nav = vec![1.0; days + 1];
    let mut equity = 1.0;
    let mut result = BacktestResult {
        nav: Vec::new(),
        ruin_day: None,
        trades: Vec::new(),
        untradable: 0,
        cost_paid: 0.0,
        traded_notional: 0.0,
        max_gross_exposure: 0.0,
    };
    for day in 0..days {
        // New positions at today's open.
        let table = weights.at(day);
        let mut entries: Vec<(usize, f64)> = Vec::new(); // (event, type weight)
        for &i in &by_day[day] {
            let e = &events[i];
            if !prices.open[e.symbol * days + day].is_finite() {
                result.untradable += 1;
                continue;
            }
            entries.push((i, table.weight(e.event_type, config.min_type_history)));
        }
        if !entries.is_empty() {
            let mut budget = equity / h as f64;
            if let Some(cap) = config.gross_cap {
                let gross: f64 = open.iter().map(|p| p.value).sum();
                budget = budget.min((cap * equity - gross).max(0.0));
            }
            let mut type_weight = [0.0f64; 11];
            let mut type_count = [0usize; 11];
            for &(i, w) in &entries {
                let k = events[i].event_type.index().unwrap_or(10);
                type_weight[k] = w;
                type_count[k] += 1;
            }
            let total_weight: f64 = type_weight.iter().sum();
            for &(i, _) in &entries {
                let e = &events[i];
                let k = e.event_type.index().unwrap_or(10);
                let share = if total_weight > 0.0 {
                    type_weight[k] / total_weight / type_count[k] as f64
                } else {
                    1.0 / entries.len() as f64
                };
                let notional = budget * share;
                if notional <= 0.0 {
                    continue;
                }
                let cost = notional * cost_rate;
                equity -= cost;
                result.cost_paid += cost;
                result.traded_notional += notional;
                let side = calls[i].as_ref().map_or(0.0, |p| p.direction.position());
                open.push(Open {
                    event: i,
                    symbol: e.symbol,
                    side,
                    notional,
                    mark: prices.open[e.symbol * days + day],
                    value: notional,
                    entry_day: day,
                    exit_day: (day + h - 1).min(days - 1),
                    pnl: 0.0,
                    cost,
                });
            }
        }
        // Mark to today's close (a missing close keeps the last mark).
        for p in open.iter_mut() {
            let close = prices.close[p.symbol * days + day];
            if close.is_finite() {
                let new_value = p.value * close / p.mark;
                let pnl = p.side * (new_value - p.value);
                equity += pnl;
                p.pnl += pnl;
                p.value = new_value;
                p.mark = close;
            }
        }
        let gross: f64 = open.iter().map(|p| p.value).sum();
        // nav[day] is the previous close (> 0: trading stops at the first close ≤ 0).
        let basis = if equity > 0.0 { equity } else { nav[day] };
        result.max_gross_exposure = result.max_gross_exposure.max(gross / basis);
        // Ruin: a NAV at or below zero closes every position at this close and ends trading.
        let ruined = equity <= 0.0;
        // Exit at today's close.
        let mut still_open = Vec::with_capacity(open.len());
        for mut p in open.drain(..) {
            if p.exit_day == day || ruined {
                let cost = p.value * cost_rate;
                equity -= cost;
                p.cost += cost;
                result.cost_paid += cost;
                result.traded_notional += p.value;
                result.trades.push(Trade {
                    event: p.event,
                    entry_day: p.entry_day,
                    exit_day: day,
                    side: p.side,
                    notional: p.notional,
                    pnl: p.pnl,
                    cost: p.cost,
                });
            } else {
                still_open.push(p);
            }
        }
        open = still_open;
        nav[day + 1] = equity;
        if equity <= 0.0 {
            result.ruin_day = Some(day);
            nav.truncate(day + 2);
            break;
        }
    }
    result.nav = nav;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(d: Direction) -> Option<Prediction> {
        Some(Prediction {
            direction: d,
            event_type: Some(EventType::Dividend),
            strength: Strength::Strong,
            car_estimate: 0.0,
        })
    }

    #[test]
    fn one_long_position_earns_the_open_to_close_move_less_costs() {
        // One symbol, 4 days; enter at the open of day 1 (10), exit at the close of day 2 (12).
        let open = [9.0, 10.0, 11.0, 12.0];
        let close = [9.5, 11.0, 12.0, 12.0];
        let prices = PricePanel {
            days: 4,
            open: &open,
            close: &close,
        };
        let events = vec![EventSlot {
            symbol: 0,
            d0: 1,
            event_type: EventType::Dividend,
        }];
        let config = BacktestConfig {
            holding_days: 2,
            cost_bps: 10.0,
            ..BacktestConfig::default()
        };
        let r = run(&prices, &events, &[call(Direction::Long)], &[], 2, &config);
        // Half of NAV (h = 2) goes in: notional 0.5, grows by 12/10.
        let entry_cost = 0.5 * 0.001;
        let exit_cost = 0.6 * 0.001;
        let expected = 1.0 - entry_cost + 0.5 * 0.2 - exit_cost;
        assert!((r.nav[4] - expected).abs() < 1e-12, "{:?}", r.nav);
        assert_eq!(r.trades.len(), 1);
        assert!((r.trades[0].pnl - 0.1).abs() < 1e-12);
        assert!((r.cost_in_bps().unwrap() - 10.0).abs() < 1e-9);

        let short = run(&prices, &events, &[call(Direction::Short)], &[], 2, &config);
        assert!((short.nav[4] - (1.0 - entry_cost - 0.5 * 0.2 - exit_cost)).abs() < 1e-12);
        let hold = run(&prices, &events, &[call(Direction::Hold)], &[], 2, &config);
        assert!(hold.nav.iter().all(|v| *v == 1.0) && hold.trades.is_empty());
    }

    #[test]
    fn a_ruined_book_keeps_its_exposure_and_has_no_turnover() {
        // Short 0.5 of NAV (h = 2) at an open of 10; the close is 40: the short loses
        // 0.5 × 3 = 1.5, NAV closes at 1 − 0.0005 − 1.5 < 0. Gross at that close is the
        // position's value 0.5 × 4 = 2.0, measured against the NAV the day opened with (1).
        let open = [10.0, 10.0, 40.0];
        let close = [10.0, 40.0, 40.0];
        let prices = PricePanel {
            days: 3,
            open: &open,
            close: &close,
        };
        let events = vec![EventSlot {
            symbol: 0,
            d0: 1,
            event_type: EventType::Dividend,
        }];
        let r = run(
            &prices,
            &events,
            &[call(Direction::Short)],
            &[],
            2,
            &BacktestConfig::default(),
        );
        assert_eq!(r.ruin_day, Some(1));
        assert!((r.max_gross_exposure - 2.0).abs() < 1e-12, "{r:?}");
        assert!(matches!(r.turnover(0), Err(Undefined::Ruin { day: 2, .. })));
    }

    #[test]
    fn no_open_price_means_no_trade() {
        let open = [9.0, f64::NAN, 11.0];
        let close = [9.5, 11.0, 12.0];
        let prices = PricePanel {
            days: 3,
            open: &open,
            close: &close,
        };
        let events = vec![EventSlot {
            symbol: 0,
            d0: 1,
            event_type: EventType::Dividend,
        }];
        let r = run(
            &prices,
            &events,
            &[call(Direction::Long)],
            &[],
            2,
            &BacktestConfig::default(),
        );
        assert_eq!(r.untradable, 1);
        assert!(r.trades.is_empty());
    }
}
