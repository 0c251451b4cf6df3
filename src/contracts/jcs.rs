//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! Hashes of our artifacts are taken over this encoding so that any JCS implementation, in any
//! language, recomputes the same bytes: object members sorted by the UTF-16 code units of their
//! names, no insignificant whitespace, strings escaped as ECMAScript's `JSON.stringify` does, and
//! numbers formatted as ECMAScript's `Number.prototype.toString` (shortest round-trip digits).
//! Values JCS cannot represent (NaN, infinities, integers beyond 2^53) are errors, never guesses.

use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::fmt::Write as _;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("number {0} is not finite; JSON (I-JSON) has no representation for it")]
    NonFinite(String),
    #[error(
        "integer {0} is outside the IEEE-754 double range that JCS can represent exactly (|n| <= 2^53)"
    )]
    IntegerOutOfRange(String),
    #[error("value cannot be represented as JSON: {0}")]
    NotJson(String),
}

/// Largest integer magnitude in I-JSON's safe domain (2^53 − 1): every JCS implementation reads
/// it back as the same double. Larger integer tokens are refused, as other implementations do.
const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// The canonical (RFC 8785) serialization of `value`.
pub fn to_canonical_string(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), CanonicalError> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| cmp_utf16(a.0, b.0));
    out.push('{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

/// Order of member names required by RFC 8785 §3.2.3: by UTF-16 code units, not by bytes.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) -> Result<(), CanonicalError> {
    if let Some(u) = n.as_u64() {
        if u > MAX_EXACT_INTEGER {
            return Err(CanonicalError::IntegerOutOfRange(u.to_string()));
        }
        let _ = write!(out, "{u}");
        return Ok(());
    }
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_EXACT_INTEGER {
            return Err(CanonicalError::IntegerOutOfRange(i.to_string()));
        }
        let _ = write!(out, "{i}");
        return Ok(());
    }
    match n.as_f64() {
        Some(f) => write_f64(out, f),
        None => Err(CanonicalError::NonFinite(n.to_string())),
    }
}

/// Splits a decimal rendering (`123.45`, `1.5e-7`, `1e21`) of a positive number into its
/// significant digits d1..dk and ECMAScript's n, where the value is 0.d1..dk × 10^n.
fn decimal_digits(text: &str) -> (String, i32) {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (
            m,
            e.parse::<i32>()
                .expect("float renderings have decimal exponents"),
        ),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut point = int_part.len() as i32 + exponent;
    let all = format!("{int_part}{frac_part}");
    let trimmed_leading = all.trim_start_matches('0');
    point -= (all.len() - trimmed_leading.len()) as i32;
    (trimmed_leading.trim_end_matches('0').to_string(), point)
}

/// Formats a double as ECMAScript `Number.prototype.toString` does (ECMA-262 §6.1.6.1.20).
pub fn format_f64(value: f64) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_f64(&mut out, value)?;
    Ok(out)
}

fn write_f64(out: &mut String, value: f64) -> Result<(), CanonicalError> {
    if !value.is_finite() {
        return Err(CanonicalError::NonFinite(value.to_string()));
    }
    if value == 0.0 {
        // Both +0 and -0 print as "0".
        out.push('0');
        return Ok(());
    }
    if value < 0.0 {
        out.push('-');
    }
    // Ryu gives the shortest digits that round-trip, closest to the exact value and, on a tie,
    // the even one: exactly ECMAScript's choice. Only the layout differs, so re-lay it out.
    let mut buffer = ryu::Buffer::new();
    let (digits, n) = decimal_digits(buffer.format_finite(value.abs()));
    let k = digits.len() as i32;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(json: &str) -> String {
        to_canonical_string(&serde_json::from_str(json).unwrap()).unwrap()
    }

    /// RFC 8785 §3.2.2: the sample input and its canonical form.
    #[test]
    fn rfc8785_sample_input() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        assert_eq!(
            canon(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    /// RFC 8785 §3.2.3: member sorting by UTF-16 code units.
    #[test]
    fn rfc8785_sorting_example() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
            \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
            \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(input), expected);
    }

    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their ECMAScript forms.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, expected) in cases {
            assert_eq!(
                format_f64(f64::from_bits(*bits)).unwrap(),
                *expected,
                "bits {bits:016x}"
            );
        }
        for bits in [0x7fffffffffffffffu64, 0x7ff0000000000000] {
            assert!(format_f64(f64::from_bits(bits)).is_err());
        }
    }

    #[test]
    fn integers_beyond_2_pow_53_are_refused() {
        let err = to_canonical_string(&serde_json::json!(9007199254740992u64)).unwrap_err();
        assert_eq!(
            err,
            CanonicalError::IntegerOutOfRange("9007199254740992".into())
        );
        assert_eq!(
            canon("[9007199254740991, -9007199254740991, 1.0, -0.0, 9007199254740992.0]"),
            "[9007199254740991,-9007199254740991,1,0,9007199254740992]"
        );
    }

    #[test]
    fn control_characters_use_lowercase_unicode_escapes() {
        assert_eq!(
            canon(r#""\u001f\u007f\u2028""#),
            "\"\\u001f\u{7f}\u{2028}\""
        );
    }
}
