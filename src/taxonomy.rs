//! The paper's ten event types (DESIGN §3.1) and the normalizer that maps the many ways a feed
//! spells them onto those ten. Anything it cannot map is `unknown`: counted and reported, never
//! guessed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An event type of the Janus-Q taxonomy, or `unknown` when the source's type maps to none.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// 风险警示与消除 — risk warnings and their removal.
    RiskWarning,
    /// 违法违规 — violations of law or regulation.
    Violation,
    /// 股权变动 — changes in shareholding.
    EquityChange,
    /// 资产变动 — changes in assets (acquisitions, disposals, restructuring).
    AssetChange,
    /// 财务状况 — financial condition and results.
    FinancialStatus,
    /// 分红转送 — dividends, bonus shares, capitalization.
    Dividend,
    /// 融资 — financing (issuance, placements, loans).
    Financing,
    /// 行业 — industry news.
    Industry,
    /// 个人言行 — statements and conduct of individuals.
    PersonalBehavior,
    /// 评级调整 — rating changes.
    RatingAdjustment,
    /// The source's type matches none of the ten.
    Unknown,
}

impl EventType {
    /// The ten known types, in the paper's order (by descending weight).
    pub const KNOWN: [EventType; 10] = [
        EventType::RiskWarning,
        EventType::Violation,
        EventType::EquityChange,
        EventType::AssetChange,
        EventType::FinancialStatus,
        EventType::Dividend,
        EventType::Financing,
        EventType::Industry,
        EventType::PersonalBehavior,
        EventType::RatingAdjustment,
    ];

    pub fn is_known(self) -> bool {
        self != EventType::Unknown
    }

    /// The canonical English name, as serialized.
    pub fn name(self) -> &'static str {
        match self {
            EventType::RiskWarning => "risk_warning",
            EventType::Violation => "violation",
            EventType::EquityChange => "equity_change",
            EventType::AssetChange => "asset_change",
            EventType::FinancialStatus => "financial_status",
            EventType::Dividend => "dividend",
            EventType::Financing => "financing",
            EventType::Industry => "industry",
            EventType::PersonalBehavior => "personal_behavior",
            EventType::RatingAdjustment => "rating_adjustment",
            EventType::Unknown => "unknown",
        }
    }

    /// The paper's Chinese name.
    pub fn chinese_name(self) -> Option<&'static str> {
        Some(match self {
            EventType::RiskWarning => "风险警示与消除",
            EventType::Violation => "违法违规",
            EventType::EquityChange => "股权变动",
            EventType::AssetChange => "资产变动",
            EventType::FinancialStatus => "财务状况",
            EventType::Dividend => "分红转送",
            EventType::Financing => "融资",
            EventType::Industry => "行业",
            EventType::PersonalBehavior => "个人言行",
            EventType::RatingAdjustment => "评级调整",
            EventType::Unknown => return None,
        })
    }

    /// The paper's weight: historical mean |CAR| of the type (DESIGN §3.1). Used where no
    /// labelled history is available yet; the evaluation recomputes weights from a trailing window.
    pub fn paper_weight(self) -> f64 {
        match self {
            EventType::RiskWarning => 0.0511,
            EventType::Violation => 0.0308,
            EventType::EquityChange => 0.0287,
            EventType::AssetChange => 0.0257,
            EventType::FinancialStatus => 0.0255,
            EventType::Dividend => 0.0253,
            EventType::Financing => 0.0243,
            EventType::Industry => 0.0243,
            EventType::PersonalBehavior => 0.0197,
            EventType::RatingAdjustment => 0.0194,
            EventType::Unknown => 0.0,
        }
    }

    /// Dense index 0..10 of a known type (for per-type arrays); `None` for unknown.
    pub fn index(self) -> Option<usize> {
        Self::KNOWN.iter().position(|t| *t == self)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Maps raw event-type strings to the taxonomy: canonical English names in any case and with
/// any of the separators ` -_/.`, the Chinese names, and configured synonyms.
#[derive(Debug, Clone)]
pub struct Normalizer {
    lookup: BTreeMap<String, EventType>,
}

impl Default for Normalizer {
    fn default() -> Self {
        Self::new(&BTreeMap::new())
    }
}

impl Normalizer {
    /// `aliases` maps extra spellings to a type; they are normalized like every other key.
    pub fn new(aliases: &BTreeMap<String, EventType>) -> Self {
        let mut lookup = BTreeMap::new();
        for t in EventType::KNOWN {
            lookup.insert(normalize_key(t.name()), t);
            if let Some(zh) = t.chinese_name() {
                lookup.insert(normalize_key(zh), t);
            }
        }
        for (alias, t) in aliases {
            lookup.insert(normalize_key(alias), *t);
        }
        Self { lookup }
    }

    pub fn normalize(&self, raw: &str) -> EventType {
        self.lookup
            .get(&normalize_key(raw))
            .copied()
            .unwrap_or(EventType::Unknown)
    }
}

/// Lowercase, trimmed, with runs of separators collapsed to one underscore.
fn normalize_key(raw: &str) -> String {
    let mut key = String::with_capacity(raw.len());
    let mut pending_sep = false;
    for c in raw.trim().chars() {
        if matches!(c, ' ' | '-' | '_' | '/' | '.' | '\t') {
            pending_sep = !key.is_empty();
        } else {
            if pending_sep {
                key.push('_');
                pending_sep = false;
            }
            key.extend(c.to_lowercase());
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_chinese_and_variant_spellings_map_to_the_same_type() {
        let n = Normalizer::default();
        for t in EventType::KNOWN {
            assert_eq!(n.normalize(t.name()), t);
            assert_eq!(n.normalize(t.chinese_name().unwrap()), t);
            assert_eq!(n.normalize(&t.name().to_uppercase().replace('_', " ")), t);
            assert_eq!(
                n.normalize(&format!("  {}  ", t.name().replace('_', "-"))),
                t
            );
        }
    }

    #[test]
    fn unmapped_types_are_unknown_not_guessed() {
        let n = Normalizer::default();
        assert_eq!(n.normalize("merger"), EventType::Unknown);
        assert_eq!(n.normalize(""), EventType::Unknown);
        assert_eq!(n.normalize("unknown"), EventType::Unknown);
        assert_eq!(n.normalize("risk"), EventType::Unknown);
    }

    #[test]
    fn configured_aliases_extend_the_lookup() {
        let aliases = BTreeMap::from([("M&A".to_string(), EventType::AssetChange)]);
        let n = Normalizer::new(&aliases);
        assert_eq!(n.normalize("m&a"), EventType::AssetChange);
    }

    #[test]
    fn weights_match_the_paper_fixture() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/event_weights.json")).unwrap();
        let n = Normalizer::default();
        for row in fixture.as_array().unwrap() {
            let t = n.normalize(row["eventType"].as_str().unwrap());
            assert!(t.is_known());
            assert_eq!(t.paper_weight(), row["weight"].as_f64().unwrap());
        }
    }
}
