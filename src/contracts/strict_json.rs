//! JSON parsing that refuses duplicate object member names (RFC 7493, I-JSON). A document with
//! duplicates means different things to different parsers (first wins, last wins), so an
//! audited artifact must not contain any.
//!
//! Numbers are IEEE-754 doubles, as RFC 8785 (JCS) and every JCS implementation read them: an
//! integer token beyond 2^53 − 1 is read as the double it denotes (RFC 8785 writes a double in
//! [2^53, 1e21) as an integer token, e.g. 1e17 as `100000000000000000`), so
//! canonicalize(parse(canonical text)) is the identity for every double.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Parses `bytes` like `serde_json::from_slice::<Value>`, but a repeated member name is an error
/// that names it.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct StrictValue;

/// 2^53 − 1: integers up to this magnitude are exact doubles and stay integers.
const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        if v.unsigned_abs() > MAX_EXACT_INTEGER {
            return self.visit_f64(v as f64);
        }
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        if v > MAX_EXACT_INTEGER {
            // The nearest double, exactly as a decimal-to-double parse of the token rounds.
            return self.visit_f64(v as f64);
        }
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("number {v} is not finite")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictValue)?;
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate member name \"{key}\" (I-JSON forbids duplicates)"
                )));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 1e300}"#;
        assert_eq!(
            from_slice(text.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn duplicate_names_are_refused_with_the_name_and_position() {
        let err = from_slice(br#"{"a": {"x": 1, "x": 2}}"#).unwrap_err();
        assert!(
            err.to_string().contains("duplicate member name \"x\""),
            "{err}"
        );
        assert_eq!(err.line(), 1);
    }

    #[test]
    fn integer_tokens_beyond_2_53_are_the_doubles_they_denote() {
        // RFC 8785 writes 1e17 as an integer token; reading it back must give the same double
        // and the same canonical text (Python's rfc8785 and cyberphone's parsers read doubles).
        let v = from_slice(b"[100000000000000000, -100000000000000000, 9007199254740993]").unwrap();
        assert_eq!(v[0].as_f64(), Some(1e17));
        assert_eq!(v[1].as_f64(), Some(-1e17));
        // 2^53 + 1 is not a double: it reads as its nearest, 2^53 (ties to even).
        assert_eq!(v[2].as_f64(), Some(9007199254740992.0));
        assert_eq!(
            crate::contracts::jcs::to_canonical_string(&v).unwrap(),
            "[100000000000000000,-100000000000000000,9007199254740992]"
        );
        // Beyond u64 serde_json already yields a double: the same rule on both sides of 2^64.
        let big = from_slice(b"[18446744073709551616]").unwrap();
        assert_eq!(
            crate::contracts::jcs::to_canonical_string(&big).unwrap(),
            "[18446744073709552000]"
        );
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(from_slice(b"{} x").is_err());
    }
}
