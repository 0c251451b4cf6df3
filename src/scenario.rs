//! Synthetic but realistic datasets in the input formats of docs/data-formats.md, with every
//! planted quantity written to `truth.json` so tests can check that labeling recovers it.
//!
//! Returns follow r_i,t = α_i + β_i·r_m(i),t + x_i,tᵀ f_t + g_ind(i),t + σ_i ε_i,t + e_i,t where
//! e_i,t is the abnormal effect of the symbol's events on their first two tradable days. Each
//! event type has a typical sign and size; an event's own polarity agrees with its type's sign
//! with probability `polarity_agreement`, and its title names that polarity with probability
//! `title_accuracy` — so the type alone predicts direction only weakly, and reading the title
//! helps, as with real news. The title names the event's type (its Chinese name) with
//! probability `title_names_type`; otherwise it says only "announcement" (公告), so a model
//! that infers the type from the headline (the reference policy never sees the type label) is
//! right on about 0.8 + 0.2 × 0.18 ≈ 0.84 of events at best (0.18: the commonest type's share).

use crate::rng::Rng;
use crate::taxonomy::EventType;
use chrono::{Datelike, Days, NaiveDate, Weekday};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioConfig {
    pub seed: u64,
    pub symbols: usize,
    pub days: usize,
    pub events: usize,
    /// Write factor exposures (and plant factor returns).
    pub factors: bool,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        // The paper's scale.
        Self {
            seed: 42,
            symbols: 5282,
            days: 520,
            events: 62_400,
            factors: true,
        }
    }
}

pub const STYLE_FACTORS: [&str; 5] = ["size", "liquidity", "volatility", "momentum", "reversal"];
const INDICES: [&str; 3] = ["CSI300", "CSI500", "CSI1000"];
const INDUSTRIES: [&str; 28] = [
    "agriculture",
    "mining",
    "chemicals",
    "steel",
    "nonferrous_metals",
    "electronics",
    "autos",
    "household_appliances",
    "food_beverage",
    "textiles",
    "light_manufacturing",
    "pharmaceuticals",
    "utilities",
    "transportation",
    "real_estate",
    "retail",
    "leisure",
    "banking",
    "non_bank_finance",
    "conglomerates",
    "building_materials",
    "building_decoration",
    "electrical_equipment",
    "machinery",
    "defense",
    "computers",
    "media",
    "telecom",
];
const POSITIVE_WORDS: [&str; 6] = ["超预期", "增持", "回购", "中标", "上调", "大幅增长"];
const NEGATIVE_WORDS: [&str; 6] = ["不及预期", "减持", "处罚", "下调", "亏损", "诉讼"];
const FILLER_WORDS: [&str; 8] = [
    "公告",
    "董事会",
    "披露",
    "关于",
    "进展",
    "事项",
    "说明",
    "年度",
];
/// Source spellings that map to no type: labelled `unknown`, counted.
const UNMAPPED_TYPES: [&str; 3] = ["并购重组", "litigation", "other"];

/// Everything planted, for tests and for readers of the scenario.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Truth {
    pub seed: u64,
    pub start: NaiveDate,
    pub dates: Vec<NaiveDate>,
    /// Per symbol: α, β, idiosyncratic daily volatility, index, industry.
    pub symbols: BTreeMap<String, SymbolTruth>,
    pub style_factors: Vec<String>,
    /// Planted style-factor returns per day (empty without factors).
    pub factor_returns: Vec<Vec<f64>>,
    /// Planted industry returns per day, in the order of `industries`.
    pub industry_returns: Vec<Vec<f64>>,
    pub industries: Vec<String>,
    /// Per event type: the planted effect.
    pub event_types: BTreeMap<String, TypeTruth>,
    /// Probability that an event's polarity matches its type's typical sign.
    pub polarity_agreement: f64,
    /// Probability that an event's title names its true polarity.
    pub title_accuracy: f64,
    /// Probability that an event's title names its type (else it reads 公告, "announcement").
    pub title_names_type: f64,
    /// Share of the effect on d0 (the rest on d0+1); a quarter of d0's share is in the opening gap.
    pub day0_share: f64,
    /// Trading days the abnormal effect spans (the default event window).
    pub effect_days: usize,
    /// Per event id: the planted CAR (sum of effects over the effect days), for events the
    /// generator could place.
    pub event_effects: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SymbolTruth {
    pub alpha: f64,
    pub beta: f64,
    pub sigma: f64,
    pub index: String,
    pub industry: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TypeTruth {
    /// +1 or −1: the direction events of this type usually move prices.
    pub typical_sign: f64,
    /// Mean |effect| of an event of this type.
    pub mean_abs_effect: f64,
    /// Expected planted CAR of an event of this type: sign × size × (2·agreement − 1).
    pub expected_car: f64,
    /// Share of events of this type.
    pub frequency: f64,
}

/// The generated files and the truth.
pub struct Scenario {
    pub prices_csv: String,
    pub indices_csv: String,
    pub universe_csv: String,
    pub factors_csv: Option<String>,
    pub events_csv: String,
    pub truth: Truth,
}

/// Typical sign and event frequency of each type (sizes come from the paper's weights).
fn type_profile(t: EventType) -> (f64, f64) {
    match t {
        EventType::RiskWarning => (-1.0, 0.06),
        EventType::Violation => (-1.0, 0.08),
        EventType::EquityChange => (-1.0, 0.14),
        EventType::AssetChange => (1.0, 0.12),
        EventType::FinancialStatus => (1.0, 0.18),
        EventType::Dividend => (1.0, 0.10),
        EventType::Financing => (-1.0, 0.09),
        EventType::Industry => (1.0, 0.11),
        EventType::PersonalBehavior => (-1.0, 0.05),
        EventType::RatingAdjustment => (1.0, 0.06),
        EventType::Unknown => (0.0, 0.01),
    }
}

pub fn trading_days(start: NaiveDate, n: usize) -> Vec<NaiveDate> {
    let mut dates = Vec::with_capacity(n);
    let mut d = start;
    while dates.len() < n {
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            dates.push(d);
        }
        d = d.succ_opt().expect("dates stay in range");
    }
    dates
}

fn symbol_code(i: usize) -> String {
    if i % 2 == 0 {
        format!("{:06}.SH", 600_000 + i / 2)
    } else {
        format!("{:06}.SZ", 1 + i / 2)
    }
}

/// Generates a scenario; deterministic for a config.
pub fn generate(cfg: &ScenarioConfig) -> Scenario {
    const POLARITY_AGREEMENT: f64 = 0.65;
    const TITLE_ACCURACY: f64 = 0.8;
    const TITLE_NAMES_TYPE: f64 = 0.8;
    const DAY0_SHARE: f64 = 0.6;
    // Planted |effect| as a share of the paper's mean |CAR| per type: small against daily noise, so
    // that a type-only baseline earns a modest Sharpe ratio, as real event strategies do.
    const EFFECT_SCALE: f64 = 0.25;
    const EFFECT_DAYS: usize = 2;
    let start = NaiveDate::from_ymd_opt(2023, 1, 3).expect("valid date");
    let dates = trading_days(start, cfg.days);
    let (n, days) = (cfg.symbols, cfg.days);
    let k = if cfg.factors { STYLE_FACTORS.len() } else { 0 };

    // Market and indices.
    let mut rng = Rng::derive(cfg.seed, 1);
    let market: Vec<f64> = (0..days).map(|_| 0.0002 + 0.011 * rng.normal()).collect();
    let index_loadings = [0.9, 1.0, 1.1];
    let index_returns: Vec<Vec<f64>> = index_loadings
        .iter()
        .map(|b| {
            market
                .iter()
                .map(|m| b * m + 0.004 * rng.normal())
                .collect()
        })
        .collect();

    // Factor and industry returns.
    let mut rng = Rng::derive(cfg.seed, 2);
    let factor_returns: Vec<Vec<f64>> = (0..days)
        .map(|_| (0..k).map(|_| 0.004 * rng.normal()).collect())
        .collect();
    let industry_returns: Vec<Vec<f64>> = (0..days)
        .map(|_| INDUSTRIES.iter().map(|_| 0.005 * rng.normal()).collect())
        .collect();

    // Symbols.
    let mut symbols = BTreeMap::new();
    let mut params = Vec::with_capacity(n);
    let mut rng = Rng::derive(cfg.seed, 3);
    for i in 0..n {
        let tier = if i * 100 < n * 6 {
            0
        } else if i * 100 < n * 16 {
            1
        } else {
            2
        };
        let p = (
            0.0003 * rng.normal(),
            rng.range(0.6, 1.4),
            rng.range(0.012, 0.028),
            tier,
            rng.below(INDUSTRIES.len() as u64) as usize,
        );
        symbols.insert(
            symbol_code(i),
            SymbolTruth {
                alpha: p.0,
                beta: p.1,
                sigma: p.2,
                index: INDICES[tier].into(),
                industry: INDUSTRIES[p.4].into(),
            },
        );
        params.push(p);
    }

    // Exposures, rebalanced every 20 days, AR(1) so they drift but stay standardized.
    const REBALANCE: usize = 20;
    let mut exposures = vec![0.0; n * k];
    let mut exposure_rows: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut rng = Rng::derive(cfg.seed, 4);
    for x in exposures.iter_mut() {
        *x = rng.normal();
    }
    let mut exposure_at = vec![0.0; if cfg.factors { days * n * k } else { 0 }];
    if cfg.factors {
        for t in 0..days {
            if t > 0 && t % REBALANCE == 0 {
                for x in exposures.iter_mut() {
                    *x = 0.9 * *x + (1.0f64 - 0.81).sqrt() * rng.normal();
                }
            }
            if t % REBALANCE == 0 {
                exposure_rows.push((t, exposures.clone()));
            }
            exposure_at[t * n * k..(t + 1) * n * k].copy_from_slice(&exposures);
        }
    }

    // Events: type, polarity, timing and planted effect.
    let mut rng = Rng::derive(cfg.seed, 5);
    // Its own stream, so that every other draw (and so every label) is what it was before titles
    // stopped always naming the type.
    let mut type_word_rng = Rng::derive(cfg.seed, 7);
    let types: Vec<EventType> = EventType::KNOWN
        .into_iter()
        .chain([EventType::Unknown])
        .collect();
    let frequencies: Vec<f64> = types.iter().map(|t| type_profile(*t).1).collect();
    let total_frequency: f64 = frequencies.iter().sum();
    let mut event_types = BTreeMap::new();
    for t in &types {
        let (sign, freq) = type_profile(*t);
        let size = EFFECT_SCALE * t.paper_weight();
        event_types.insert(
            t.name().to_string(),
            TypeTruth {
                typical_sign: sign,
                mean_abs_effect: size,
                expected_car: sign * size * (2.0 * POLARITY_AGREEMENT - 1.0),
                frequency: freq / total_frequency,
            },
        );
    }
    let tz_offset = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
    let mut effects = vec![0.0; n * days];
    let mut gap_effects = vec![0.0; n * days];
    let mut event_effects = BTreeMap::new();
    let mut events_csv = String::from("event_id,timestamp,symbol,event_type,title\n");
    for e in 0..cfg.events {
        let t = types[rng.weighted_index(&frequencies)];
        let (sign, _) = type_profile(t);
        let unknown_symbol = rng.bernoulli(0.002);
        let s = rng.below(n as u64) as usize;
        let symbol = if unknown_symbol {
            "999999.SH".to_string()
        } else {
            symbol_code(s)
        };
        // Publication time: a trading day (sometimes a weekend after it), mostly in the daytime.
        let day = rng.below(days as u64) as usize;
        let mut date = dates[day];
        if rng.bernoulli(0.05) {
            date = date + Days::new(1 + rng.below(2));
        }
        let minute = if rng.bernoulli(0.8) {
            8 * 60 + rng.below(12 * 60) as u32
        } else {
            rng.below(24 * 60) as u32
        };
        let local = date
            .and_hms_opt(minute / 60, minute % 60, rng.below(60) as u32)
            .expect("valid time");
        let stamp = local
            .and_local_timezone(tz_offset)
            .single()
            .expect("fixed offset");
        let timestamp = if rng.bernoulli(0.1) {
            stamp
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        } else {
            stamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        // d0: the first trading day whose 09:30 open is after the publication time.
        let first_open_date = if minute < 9 * 60 + 30 {
            date
        } else {
            date + Days::new(1)
        };
        let d0 = dates.partition_point(|d| *d < first_open_date);

        let polarity = if sign == 0.0 {
            if rng.bernoulli(0.5) { 1.0 } else { -1.0 }
        } else if rng.bernoulli(POLARITY_AGREEMENT) {
            sign
        } else {
            -sign
        };
        let size = event_types[t.name()].mean_abs_effect * rng.range(0.5, 1.5);
        let effect = polarity * size;
        if !unknown_symbol && d0 + EFFECT_DAYS <= days {
            effects[s * days + d0] += effect * DAY0_SHARE;
            gap_effects[s * days + d0] += effect * DAY0_SHARE * 0.25;
            effects[s * days + d0 + 1] += effect * (1.0 - DAY0_SHARE);
        }
        let id = format!("ev-{e:06}");
        if !unknown_symbol && d0 + EFFECT_DAYS <= days {
            event_effects.insert(id.clone(), effect);
        }

        let says_positive = (polarity > 0.0) == rng.bernoulli(TITLE_ACCURACY);
        let words = if says_positive {
            &POSITIVE_WORDS
        } else {
            &NEGATIVE_WORDS
        };
        let word = words[rng.below(words.len() as u64) as usize];
        let filler = FILLER_WORDS[rng.below(FILLER_WORDS.len() as u64) as usize];
        let source_type = match t {
            EventType::Unknown => UNMAPPED_TYPES[rng.below(3) as usize].to_string(),
            known if rng.bernoulli(0.5) => known.chinese_name().unwrap_or_default().to_string(),
            known => known.name().to_string(),
        };
        let type_word = if type_word_rng.bernoulli(TITLE_NAMES_TYPE) {
            t.chinese_name().unwrap_or("其他")
        } else {
            "公告"
        };
        let title = format!("{symbol} {type_word}{filler}：{word}");
        let _ = writeln!(
            events_csv,
            "{id},{timestamp},{symbol},{source_type},{title}"
        );
    }

    // Prices, with halts and late listings.
    let mut rng = Rng::derive(cfg.seed, 6);
    let mut prices_csv = String::with_capacity(n * days * 40);
    prices_csv.push_str("date,symbol,open,close\n");
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::with_capacity(n);
    let mut listed_from = vec![0usize; n];
    let mut halted = vec![false; n * days];
    for s in 0..n {
        let mut srng = Rng::derive(cfg.seed, 1000 + s as u64);
        if srng.bernoulli(0.03) {
            listed_from[s] = srng.below((days / 2).max(1) as u64) as usize;
        }
        if srng.bernoulli(0.15) {
            let from = srng.below(days as u64) as usize;
            let len = 1 + srng.below(10) as usize;
            for t in from..(from + len).min(days) {
                halted[s * days + t] = true;
            }
        }
        let (alpha, beta, sigma, tier, industry) = params[s];
        let mut close = srng.range(4.0, 60.0);
        let mut series = Vec::with_capacity(days);
        for t in 0..days {
            let systematic = alpha
                + beta * index_returns[tier][t]
                + (0..k)
                    .map(|q| exposure_at[(t * n + s) * k + q] * factor_returns[t][q])
                    .sum::<f64>()
                + industry_returns[t][industry];
            let idio = sigma * srng.normal();
            let r = (systematic + idio + effects[s * days + t]).max(-0.5);
            let gap =
                0.25 * (systematic + idio) + gap_effects[s * days + t] + 0.003 * srng.normal();
            let open = close * (1.0 + gap.max(-0.5));
            close *= 1.0 + r;
            series.push((open, close));
        }
        rows.push(series);
    }
    let _ = rng.next_u64();
    for (t, date) in dates.iter().enumerate() {
        for (s, series) in rows.iter().enumerate() {
            if t < listed_from[s] || halted[s * days + t] {
                continue;
            }
            let (open, close) = series[t];
            let _ = writeln!(prices_csv, "{date},{},{open:.4},{close:.4}", symbol_code(s));
        }
    }

    // Indices as closes.
    let mut indices_csv = String::from("date,index,close\n");
    for (i, name) in INDICES.iter().enumerate() {
        let mut level = 1000.0 * (i as f64 + 3.0);
        for (t, date) in dates.iter().enumerate() {
            level *= 1.0 + index_returns[i][t];
            let _ = writeln!(indices_csv, "{date},{name},{level:.6}");
        }
    }

    let mut universe_csv = String::from("symbol,index,industry\n");
    for (code, truth) in &symbols {
        let _ = writeln!(universe_csv, "{code},{},{}", truth.index, truth.industry);
    }

    let factors_csv = cfg.factors.then(|| {
        let mut out = format!("date,symbol,{}\n", STYLE_FACTORS.join(","));
        for (t, x) in &exposure_rows {
            for s in 0..n {
                let _ = write!(out, "{},{}", dates[*t], symbol_code(s));
                for q in 0..k {
                    let _ = write!(out, ",{:.6}", x[s * k + q]);
                }
                out.push('\n');
            }
        }
        out
    });

    Scenario {
        prices_csv,
        indices_csv,
        universe_csv,
        factors_csv,
        events_csv,
        truth: Truth {
            seed: cfg.seed,
            start,
            dates,
            symbols,
            style_factors: STYLE_FACTORS[..k].iter().map(|s| s.to_string()).collect(),
            factor_returns: if cfg.factors {
                factor_returns
            } else {
                Vec::new()
            },
            industry_returns,
            industries: INDUSTRIES.iter().map(|s| s.to_string()).collect(),
            event_types,
            polarity_agreement: POLARITY_AGREEMENT,
            title_accuracy: TITLE_ACCURACY,
            title_names_type: TITLE_NAMES_TYPE,
            day0_share: DAY0_SHARE,
            effect_days: EFFECT_DAYS,
            event_effects,
        },
    }
}
