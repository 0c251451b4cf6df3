//! Event features of the reference policy: a bias and the title's tokens hashed into a fixed
//! number of buckets (words split on whitespace and punctuation, plus character bigrams of CJK
//! runs, so Chinese headlines need no segmenter). Sparse: a handful of active indices per event.
//!
//! The policy sees only what it would see in production: the headline. Two things are kept out
//! on purpose:
//! - the event type label. The policy *predicts* the type (its type head, scored as ETA and by
//!   the HGRM event-type gate); a policy fed the label could only echo it, so ETA was 1.0 for
//!   every model (issue 17). Where a type comes from upstream in production (the trading lane's
//!   `event.event_type`, the events file's `event_type` column), the deterministic fallback and
//!   the backtest's capital split read it; the model never does.
//! - the event's own symbol, masked out of the title: a stock code identifies the company but
//!   says nothing about the news, and a policy that can see it memorizes each stock's past
//!   returns instead of learning what headlines mean.
//!
//! [`encode`] is the one feature builder: training ([`super::examples`]), prediction for
//! evaluation ([`super::encode_all`]) and the decision service (`serve`) all call it.

/// Which encoding this is. Stamped into every model the trainer writes (model.json's format
/// and the ONNX graph's metadata) and checked when one is loaded, so a model is never fed
/// features it was not trained on. v1 hashed the event's own symbol too; v2 had a one-hot of
/// the event type label in front (11 slots), which v3 drops.
pub const FEATURES_VERSION: &str = "janus-features-v3";

/// Slot 0 is the bias; the hashed tokens follow it.
pub const BIAS_SLOT: usize = 0;
pub const HASH_OFFSET: usize = BIAS_SLOT + 1;

/// Sparse feature vector: (index, value) pairs, indices unique and ascending.
pub type Sparse = Vec<(u32, f32)>;

/// Feature dimension for `buckets` hash buckets.
pub fn dimension(buckets: usize) -> usize {
    HASH_OFFSET + buckets
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// The title's tokens: lowercase words of letters and digits, and bigrams of CJK runs (a lone
/// CJK character is its own token).
pub fn tokens(title: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_cjk = |cjk: &mut Vec<char>, out: &mut Vec<String>| {
        if cjk.len() == 1 {
            out.push(cjk[0].to_string());
        }
        for w in cjk.windows(2) {
            out.push(w.iter().collect());
        }
        cjk.clear();
    };
    for c in title.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            cjk.push(c);
        } else {
            flush_cjk(&mut cjk, &mut out);
            if c.is_alphanumeric() {
                word.extend(c.to_lowercase());
            } else if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    flush_cjk(&mut cjk, &mut out);
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Features of one event about `symbol` with headline `title`, over `buckets` hash buckets
/// (dimension [`dimension`]`(buckets)`). Neither the event type nor the symbol is an input.
pub fn encode(symbol: &str, title: &str, buckets: usize) -> Sparse {
    let mut x: Vec<(u32, f32)> = Vec::with_capacity(16);
    x.push((BIAS_SLOT as u32, 1.0));
    let masked = tokens(symbol);
    let hashed = tokens(title)
        .into_iter()
        .filter(|t| buckets > 0 && !masked.contains(t));
    for t in hashed {
        x.push((
            (HASH_OFFSET as u64 + fnv1a(t.as_bytes()) % buckets as u64) as u32,
            1.0,
        ));
    }
    x.sort_by_key(|e| e.0);
    // Repeated tokens and hash collisions add up in one slot.
    let mut merged: Sparse = Vec::with_capacity(x.len());
    for (i, v) in x {
        match merged.last_mut() {
            Some(last) if last.0 == i => last.1 += v,
            _ => merged.push((i, v)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cover_words_and_cjk_bigrams() {
        assert_eq!(
            tokens("600732.SH 分红转送事项：大幅增长"),
            vec![
                "600732", "sh", "分红", "红转", "转送", "送事", "事项", "大幅", "幅增", "增长"
            ]
        );
        assert_eq!(tokens("Profit Warning!"), vec!["profit", "warning"]);
        assert_eq!(tokens("涨"), vec!["涨"]);
    }

    #[test]
    fn encoding_is_sparse_sorted_and_deterministic() {
        let x = encode("600000.SH", "分红 分红", 64);
        assert_eq!(x, encode("600000.SH", "分红 分红", 64));
        assert!(x.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            x.iter()
                .any(|(i, v)| *i as usize >= HASH_OFFSET && *v == 2.0)
        );
        assert_eq!(x[0], (BIAS_SLOT as u32, 1.0));
        // Bias and one slot holding both "分红" tokens: nothing else (no type label).
        assert_eq!(x.len(), 2);
    }

    #[test]
    fn the_events_own_symbol_is_masked() {
        let plain = encode("600000.SH", "分红：增持", 4096);
        let named = encode("600000.SH", "600000.SH 分红：增持", 4096);
        assert_eq!(plain, named);
        // Another company named in the title is content, not identity.
        let other = encode("600000.SH", "600001.SH 分红：增持", 4096);
        assert_eq!(other.len(), plain.len() + 1);
    }
}
