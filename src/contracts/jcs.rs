//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! Hashes of our artifacts are taken over this encoding so that any JCS implementation, in any
//! language, recomputes the same bytes: object members sorted by the UTF-16 code units of their
//! names, no insignificant whitespace, strings escaped as ECMAScript's `JSON.stringify` does, and
//! numbers formatted as ECMAScript's `Number.prototype.toString` (shortest round-trip digits).
//! Values JCS cannot represent (NaN, infinities, integers beyond 2^53) are errors, never guesses.

use serde::ser::{self, Serialize};
use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt::Write as _;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("number {0} is not finite; JSON (I-JSON) has no representation for it")]
    NonFinite(String),
    #[error("integer {0} is outside the safe integer range of I-JSON (|n| <= 2^53 - 1)")]
    IntegerOutOfRange(String),
    #[error("value cannot be represented as JSON: {0}")]
    NotJson(String),
}

impl ser::Error for CanonicalError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CanonicalError::NotJson(msg.to_string())
    }
}

/// Largest integer magnitude in I-JSON's safe domain (2^53 − 1): every JCS implementation reads
/// it back as the same double. Larger integer tokens are refused, as other implementations do.
const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// The canonical (RFC 8785) serialization of anything serializable: a `serde_json::Value` or a
/// typed artifact, straight from its fields (non-finite floats are errors here, where
/// `serde_json` would silently write `null`).
pub fn to_canonical_string<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    let bytes = to_canonical_vec(value, None)?;
    Ok(String::from_utf8(bytes).expect("the canonical writer emits UTF-8"))
}

/// As [`to_canonical_string`], as bytes; `omit_top_level` leaves out one member of the
/// top-level object (the seal, when hashing an artifact).
pub fn to_canonical_vec<T: Serialize + ?Sized>(
    value: &T,
    omit_top_level: Option<&str>,
) -> Result<Vec<u8>, CanonicalError> {
    match omit_top_level {
        Some(key) => Ok(to_canonical_without(value, key)?.0),
        None => {
            let mut out = String::with_capacity(1024);
            value.serialize(Canonical {
                out: &mut out,
                omit: None,
            })?;
            Ok(out.into_bytes())
        }
    }
}

/// Where a member left out of the top-level object belongs in its canonical text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Byte offset: right after the preceding member, or right after `{`.
    pub offset: usize,
    /// Members precede the gap (the inserted member needs a leading comma).
    pub after_member: bool,
    /// Members follow the gap (with none before, the inserted member needs a trailing comma).
    pub before_member: bool,
}

/// The canonical text of `value` without its top-level member `key`, and where that member
/// goes, so a seal computed over the text can be inserted without serializing twice.
pub fn to_canonical_without<T: Serialize + ?Sized>(
    value: &T,
    key: &str,
) -> Result<(Vec<u8>, Option<Gap>), CanonicalError> {
    let gap = Cell::new(None);
    let mut out = String::with_capacity(1 << 16);
    value.serialize(Canonical {
        out: &mut out,
        omit: Some((key, &gap)),
    })?;
    Ok((out.into_bytes(), gap.get()))
}

/// Inserts `"key":value_json` at `gap` of a canonical text made by [`to_canonical_without`];
/// the result is the canonical text of the object with that member.
pub fn insert_member(text: &[u8], gap: Gap, key: &str, value_json: &str) -> Vec<u8> {
    let member = member_at_gap(gap, key, value_json);
    let mut out = Vec::with_capacity(text.len() + member.len());
    out.extend_from_slice(&text[..gap.offset]);
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(&text[gap.offset..]);
    out
}

/// The text to splice in at `gap` for the member `"key":value_json`, commas included.
pub fn member_at_gap(gap: Gap, key: &str, value_json: &str) -> String {
    let mut member = String::with_capacity(key.len() + value_json.len() + 4);
    if gap.after_member {
        member.push(',');
    }
    write_string(&mut member, key);
    member.push(':');
    member.push_str(value_json);
    if !gap.after_member && gap.before_member {
        member.push(',');
    }
    member
}

/// Order of member names required by RFC 8785 §3.2.3: by UTF-16 code units, not by bytes.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn write_u64(out: &mut String, u: u64, negative: bool) -> Result<(), CanonicalError> {
    if u > MAX_EXACT_INTEGER {
        let sign = if negative { "-" } else { "" };
        return Err(CanonicalError::IntegerOutOfRange(format!("{sign}{u}")));
    }
    if negative && u != 0 {
        out.push('-');
    }
    let _ = write!(out, "{u}");
    Ok(())
}

/// A member name to leave out of the top-level object, and where to report its gap.
type Omit<'a> = Option<(&'a str, &'a Cell<Option<Gap>>)>;

/// The serde serializer that writes RFC 8785 text.
struct Canonical<'a> {
    out: &'a mut String,
    omit: Omit<'a>,
}

/// An object being written: members go straight to the output as they come (`"key":value`),
/// and are re-laid in sorted order when the object ends only if they did not come sorted.
struct Members<'a> {
    out: &'a mut String,
    omit: Omit<'a>,
    /// Where this object's first member starts in `out` (just after `{`).
    start: usize,
    /// Each member's name and its byte range in `out`, from the name's quote to the value's end.
    members: Vec<(Cow<'static, str>, usize, usize)>,
    pending_key: Option<String>,
    /// The object is the payload of a struct variant, `{"variant":{...}}`: close both.
    wrapped: bool,
}

impl Members<'_> {
    fn push(
        &mut self,
        key: Cow<'static, str>,
        value: &(impl Serialize + ?Sized),
    ) -> Result<(), CanonicalError> {
        if self.omit.is_some_and(|(omitted, _)| omitted == key) {
            return Ok(());
        }
        if !self.members.is_empty() {
            self.out.push(',');
        }
        let from = self.out.len();
        write_string(self.out, &key);
        self.out.push(':');
        value.serialize(Canonical {
            out: self.out,
            omit: None,
        })?;
        self.members.push((key, from, self.out.len()));
        Ok(())
    }

    fn finish(mut self) -> Result<(), CanonicalError> {
        let sorted = self
            .members
            .windows(2)
            .all(|w| cmp_utf16(&w[0].0, &w[1].0) == Ordering::Less);
        if !sorted {
            let written = self.out.split_off(self.start);
            self.members.sort_by(|a, b| cmp_utf16(&a.0, &b.0));
            for (i, (_, from, to)) in self.members.iter_mut().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let new_from = self.out.len();
                self.out
                    .push_str(&written[*from - self.start..*to - self.start]);
                (*from, *to) = (new_from, self.out.len());
            }
        }
        if let Some((omitted, report)) = self.omit {
            let next = self
                .members
                .iter()
                .position(|(key, _, _)| cmp_utf16(omitted, key) == Ordering::Less)
                .unwrap_or(self.members.len());
            report.set(Some(Gap {
                offset: if next == 0 {
                    self.start
                } else {
                    self.members[next - 1].2
                },
                after_member: next > 0,
                before_member: next < self.members.len(),
            }));
        }
        self.out.push('}');
        if self.wrapped {
            self.out.push('}');
        }
        Ok(())
    }
}

/// Writes an array's elements as they come.
struct Elements<'a> {
    out: &'a mut String,
    first: bool,
    /// Closing text: `]`, or `]}` for a tuple variant.
    close: &'static str,
}

impl Elements<'_> {
    fn push(&mut self, value: &(impl Serialize + ?Sized)) -> Result<(), CanonicalError> {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        value.serialize(Canonical {
            out: self.out,
            omit: None,
        })
    }
}

macro_rules! via_u64 {
    ($($name:ident: $t:ty),*) => {$(
        fn $name(self, v: $t) -> Result<(), CanonicalError> {
            write_u64(self.out, v as u64, false)
        }
    )*};
}
macro_rules! via_i64 {
    ($($name:ident: $t:ty),*) => {$(
        fn $name(self, v: $t) -> Result<(), CanonicalError> {
            write_u64(self.out, (v as i64).unsigned_abs(), v < 0)
        }
    )*};
}

impl<'a> ser::Serializer for Canonical<'a> {
    type Ok = ();
    type Error = CanonicalError;
    type SerializeSeq = Elements<'a>;
    type SerializeTuple = Elements<'a>;
    type SerializeTupleStruct = Elements<'a>;
    type SerializeTupleVariant = Elements<'a>;
    type SerializeMap = Members<'a>;
    type SerializeStruct = Members<'a>;
    type SerializeStructVariant = Members<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), CanonicalError> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    via_u64!(serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    via_i64!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64);
    fn serialize_u128(self, v: u128) -> Result<(), CanonicalError> {
        let v = u64::try_from(v).map_err(|_| CanonicalError::IntegerOutOfRange(v.to_string()))?;
        write_u64(self.out, v, false)
    }
    fn serialize_i128(self, v: i128) -> Result<(), CanonicalError> {
        let m = u64::try_from(v.unsigned_abs())
            .map_err(|_| CanonicalError::IntegerOutOfRange(v.to_string()))?;
        write_u64(self.out, m, v < 0)
    }
    fn serialize_f32(self, v: f32) -> Result<(), CanonicalError> {
        self.serialize_f64(v as f64)
    }
    fn serialize_f64(self, v: f64) -> Result<(), CanonicalError> {
        write_f64(self.out, v)
    }
    fn serialize_char(self, v: char) -> Result<(), CanonicalError> {
        write_string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), CanonicalError> {
        write_string(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonicalError> {
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.push(b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<(), CanonicalError> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CanonicalError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), CanonicalError> {
        self.out.push_str("null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), CanonicalError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), CanonicalError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), CanonicalError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), CanonicalError> {
        let mut members = self.serialize_map(Some(1))?;
        members.push(Cow::Borrowed(variant), value)?;
        members.finish()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Elements<'a>, CanonicalError> {
        self.out.push('[');
        Ok(Elements {
            out: self.out,
            first: true,
            close: "]",
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Elements<'a>, CanonicalError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Elements<'a>, CanonicalError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Elements<'a>, CanonicalError> {
        self.out.push('{');
        write_string(self.out, variant);
        self.out.push_str(":[");
        Ok(Elements {
            out: self.out,
            first: true,
            close: "]}",
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Members<'a>, CanonicalError> {
        self.out.push('{');
        let start = self.out.len();
        Ok(Members {
            out: self.out,
            omit: self.omit,
            start,
            members: Vec::with_capacity(len.unwrap_or(0)),
            pending_key: None,
            wrapped: false,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Members<'a>, CanonicalError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Members<'a>, CanonicalError> {
        // Written as {"variant": {...}}: the inner object is collected, then wrapped.
        self.out.push('{');
        write_string(self.out, variant);
        self.out.push_str(":{");
        let start = self.out.len();
        Ok(Members {
            out: self.out,
            omit: None,
            start,
            members: Vec::with_capacity(len),
            pending_key: None,
            wrapped: true,
        })
    }
}

impl ser::SerializeSeq for Elements<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_element<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), CanonicalError> {
        self.push(value)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.out.push_str(self.close);
        Ok(())
    }
}
impl ser::SerializeTuple for Elements<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_element<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), CanonicalError> {
        self.push(value)
    }
    fn end(self) -> Result<(), CanonicalError> {
        ser::SerializeSeq::end(self)
    }
}
impl ser::SerializeTupleStruct for Elements<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonicalError> {
        self.push(value)
    }
    fn end(self) -> Result<(), CanonicalError> {
        ser::SerializeSeq::end(self)
    }
}
impl ser::SerializeTupleVariant for Elements<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonicalError> {
        self.push(value)
    }
    fn end(self) -> Result<(), CanonicalError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for Members<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonicalError> {
        self.pending_key = Some(key.serialize(KeyName)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonicalError> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| CanonicalError::NotJson("map value without a key".into()))?;
        self.push(Cow::Owned(key), value)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}
impl ser::SerializeStruct for Members<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonicalError> {
        self.push(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}
impl ser::SerializeStructVariant for Members<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonicalError> {
        self.push(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}

/// Serializes a map key: JSON member names are strings; unit enum variants (our enums used as
/// keys) and integers are written as their string forms, as serde_json does.
struct KeyName;

macro_rules! key_via_display {
    ($($name:ident: $t:ty),*) => {$(
        fn $name(self, v: $t) -> Result<String, CanonicalError> {
            Ok(v.to_string())
        }
    )*};
}

impl ser::Serializer for KeyName {
    type Ok = String;
    type Error = CanonicalError;
    type SerializeSeq = ser::Impossible<String, CanonicalError>;
    type SerializeTuple = ser::Impossible<String, CanonicalError>;
    type SerializeTupleStruct = ser::Impossible<String, CanonicalError>;
    type SerializeTupleVariant = ser::Impossible<String, CanonicalError>;
    type SerializeMap = ser::Impossible<String, CanonicalError>;
    type SerializeStruct = ser::Impossible<String, CanonicalError>;
    type SerializeStructVariant = ser::Impossible<String, CanonicalError>;

    fn serialize_str(self, v: &str) -> Result<String, CanonicalError> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, CanonicalError> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, CanonicalError> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, CanonicalError> {
        value.serialize(self)
    }
    key_via_display!(
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_bool: bool
    );
    fn serialize_f32(self, _: f32) -> Result<String, CanonicalError> {
        Err(not_a_key("a float"))
    }
    fn serialize_f64(self, _: f64) -> Result<String, CanonicalError> {
        Err(not_a_key("a float"))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, CanonicalError> {
        Err(not_a_key("bytes"))
    }
    fn serialize_none(self) -> Result<String, CanonicalError> {
        Err(not_a_key("null"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, CanonicalError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, CanonicalError> {
        Err(not_a_key("null"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, CanonicalError> {
        Err(not_a_key("a unit struct"))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, CanonicalError> {
        Err(not_a_key("an enum with data"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, CanonicalError> {
        Err(not_a_key("an array"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, CanonicalError> {
        Err(not_a_key("an array"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, CanonicalError> {
        Err(not_a_key("an array"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, CanonicalError> {
        Err(not_a_key("an array"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, CanonicalError> {
        Err(not_a_key("an object"))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, CanonicalError> {
        Err(not_a_key("an object"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, CanonicalError> {
        Err(not_a_key("an object"))
    }
}

fn not_a_key(what: &str) -> CanonicalError {
    CanonicalError::NotJson(format!("{what} cannot be an object member name"))
}

/// Significant digits d1..dk of a positive number and ECMAScript's n (the value is
/// 0.d1..dk × 10^n), read off a decimal rendering such as `123.45`, `1.5e-7` or `1e21`.
struct Digits {
    buf: [u8; 32],
    len: usize,
    n: i32,
}

impl Digits {
    fn parse(text: &str) -> Digits {
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((m, e)) => (
                m,
                e.parse::<i32>()
                    .expect("float renderings have decimal exponents"),
            ),
            None => (text, 0),
        };
        let mut d = Digits {
            buf: [0; 32],
            len: 0,
            n: exponent,
        };
        let mut seen_point = false;
        for b in mantissa.bytes() {
            match b {
                b'.' => seen_point = true,
                b'0' if d.len == 0 => {
                    // A leading zero: before the point it is not a digit of the value; after
                    // the point it shifts the value right.
                    if seen_point {
                        d.n -= 1;
                    }
                }
                digit => {
                    d.buf[d.len] = digit;
                    d.len += 1;
                    if !seen_point {
                        d.n += 1;
                    }
                }
            }
        }
        // Zeros inside the integer part were counted in n; trailing zeros are not significant.
        while d.len > 1 && d.buf[d.len - 1] == b'0' {
            d.len -= 1;
        }
        d
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("ASCII digits")
    }
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
    let text = buffer.format_finite(value.abs());
    // Ryu writes plain decimals only where ECMAScript does too, and then in the same layout but
    // for a trailing ".0" on integers: the common case needs no re-layout.
    if !text.contains('e') {
        out.push_str(text.strip_suffix(".0").unwrap_or(text));
        return Ok(());
    }
    let parsed = Digits::parse(text);
    let (digits, n) = (parsed.as_str(), parsed.n);
    let k = digits.len() as i32;
    if k <= n && n <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
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
        to_canonical_string(&serde_json::from_str::<serde_json::Value>(json).unwrap()).unwrap()
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
    fn a_member_inserted_at_the_gap_gives_the_canonical_text() {
        for doc in [
            r#"{"a": 1, "m": 2, "z": [3]}"#,
            r#"{"m": 2, "z": {"m": 1}}"#,
            r#"{"a": 1, "m": 2}"#,
            r#"{"m": 2}"#,
            r#"{"n": 1, "o": 2}"#,
            r#"{"a": 1}"#,
            r#"{}"#,
        ] {
            let full: serde_json::Value = serde_json::from_str(doc).unwrap();
            let mut with: serde_json::Value = full.clone();
            with["m"] = serde_json::json!("seal");
            let (without, gap) = to_canonical_without(&full, "m").unwrap();
            let inserted = insert_member(&without, gap.unwrap(), "m", "\"seal\"");
            assert_eq!(
                String::from_utf8(inserted).unwrap(),
                to_canonical_string(&with).unwrap(),
                "{doc}"
            );
        }
    }

    #[test]
    fn control_characters_use_lowercase_unicode_escapes() {
        assert_eq!(
            canon(r#""\u001f\u007f\u2028""#),
            "\"\\u001f\u{7f}\u{2028}\""
        );
    }
}
