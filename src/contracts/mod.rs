//! Versioned JSON artifacts (DESIGN §4): their types, canonical hashing, lineage, schemas and
//! the fail-closed reader.

pub mod artifact;
pub mod consistency;
pub mod event_car;
pub mod evidence;
pub mod field_docs;
pub mod hash;
pub mod jcs;
pub mod label;
pub mod lineage;
pub mod reward;
pub mod runtime_stats;
pub mod strict_json;

pub use artifact::{
    Artifact, ArtifactKind, ContractError, Verified, read_artifact, seal, verify_bytes,
    write_artifact,
};
pub use hash::{Sha256Hex, canonical_hash};
pub use lineage::{ArtifactRef, FileDigest, Inputs, Lineage};

use chrono::{DateTime, Utc};

/// The `generated_at` of an artifact. It is an input like the seed, so that a rerun on the same
/// inputs is byte-identical: an explicit time wins, then `SOURCE_DATE_EPOCH` (the
/// reproducible-builds convention, seconds since the epoch), then the inputs' own as-of time.
pub fn generated_at(
    explicit: Option<DateTime<Utc>>,
    inputs_as_of: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    if let Some(t) = explicit {
        return Ok(t);
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .ok_or_else(|| {
                format!("SOURCE_DATE_EPOCH='{s}' is not a number of seconds since 1970")
            }),
        _ => Ok(inputs_as_of),
    }
}
