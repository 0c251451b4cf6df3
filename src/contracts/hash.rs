//! SHA-256 digests as lowercase hex, and the canonical hash every artifact and lineage field uses:
//! SHA-256 over the RFC 8785 encoding of a JSON value.

use super::jcs::{CanonicalError, to_canonical_vec};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt;
use std::io::Read;

/// A SHA-256 digest written as 64 lowercase hex characters. Parsing refuses anything else, so a
/// value of this type is always a well-formed digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_digest(Sha256::digest(bytes).as_slice())
    }

    /// Streams a reader through SHA-256, returning the digest and the byte count.
    pub fn of_reader(mut reader: impl Read) -> std::io::Result<(Self, u64)> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        Ok((Self::from_digest(hasher.finalize().as_slice()), total))
    }

    fn from_digest(digest: &[u8]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in digest {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 0xf) as usize] as char);
        }
        Self(s)
    }

    pub fn parse(s: &str) -> Result<Self, InvalidDigest> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidDigest(s.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a SHA-256 digest (64 lowercase hex characters)")]
pub struct InvalidDigest(pub String);

impl std::str::FromStr for Sha256Hex {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, InvalidDigest> {
        Self::parse(s)
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The regular expression the JSON Schemas (and the CRDs) use for a digest.
pub const SHA256_PATTERN: &str = "^[0-9a-f]{64}$";

impl JsonSchema for Sha256Hex {
    fn schema_name() -> Cow<'static, str> {
        "Sha256Hex".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": SHA256_PATTERN,
            "description": "SHA-256 digest, 64 lowercase hex characters"
        })
    }
}

/// SHA-256 of the RFC 8785 canonical encoding of `value` (a JSON value, a config, a schema, an
/// artifact: anything serializable).
pub fn canonical_hash<T: Serialize + ?Sized>(value: &T) -> Result<Sha256Hex, CanonicalError> {
    Ok(Sha256Hex::of_bytes(&to_canonical_vec(value, None)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sha256_vectors() {
        assert_eq!(
            Sha256Hex::of_bytes(b"").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Sha256Hex::of_bytes(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (streamed, n) = Sha256Hex::of_reader(&b"abc"[..]).unwrap();
        assert_eq!(streamed, Sha256Hex::of_bytes(b"abc"));
        assert_eq!(n, 3);
    }

    #[test]
    fn digest_parsing_is_strict() {
        assert!(Sha256Hex::parse(&"a".repeat(64)).is_ok());
        assert!(Sha256Hex::parse(&"A".repeat(64)).is_err());
        assert!(Sha256Hex::parse(&"a".repeat(63)).is_err());
        assert!(Sha256Hex::parse(&"g".repeat(64)).is_err());
        assert!(serde_json::from_str::<Sha256Hex>("\"abc\"").is_err());
    }

    #[test]
    fn canonical_hash_ignores_layout() {
        use serde_json::Value;
        let a: Value = serde_json::from_str(r#"{"b": 1.50, "a": [1, 2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":[1,2],"b":1.5}"#).unwrap();
        assert_eq!(canonical_hash(&a).unwrap(), canonical_hash(&b).unwrap());
    }
}
