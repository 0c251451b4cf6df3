//! Bounding text that comes from users or from other processes before it goes into a status,
//! an audit line or a log: one rule for every such cut, so none of them can be made unbounded
//! and every cut says it is one.

use crate::contracts::Sha256Hex;

/// `text` unchanged when it is at most `max` bytes; longer, the longest prefix ending at a
/// character boundary followed by `… [cut: <bytes> bytes, sha256 <hex>]` naming the original's
/// length and SHA-256, the whole at most `max` bytes (for `max` ≥ 100, the length of the note).
/// Two different long inputs stay distinguishable by their digest.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let note = format!(
        "… [cut: {} bytes, sha256 {}]",
        text.len(),
        Sha256Hex::of_bytes(text.as_bytes())
    );
    // `str::floor_char_boundary` needs Rust 1.91; the crate's MSRV is 1.85.
    let mut end = max.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_at_a_char_boundary_within_the_bound() {
        assert_eq!(bounded("abc", 3), "abc");
        // 'é' is two bytes: a cut may not split it.
        let long = "é".repeat(1000);
        let cut = bounded(&long, 300);
        assert!(cut.len() <= 300, "{}", cut.len());
        assert!(cut.starts_with("éé"));
        assert!(cut.contains("[cut: 2000 bytes, sha256 "), "{cut}");
        // sha256 of 1000 × "é" (U+00E9), computed with python3 hashlib.
        assert!(
            cut.ends_with(
                "sha256 75628d88c411e2c7a3e1cbb3f0eb5498e51455875142fedd62677987cdecf107]"
            )
        );
    }
}
