//! Lineage: what an artifact was made from, by which code, under which configuration. Every
//! field is a canonical hash so two artifacts can be compared for reproducibility without
//! trusting anything but the bytes.

use super::hash::{Sha256Hex, canonical_hash};
use super::jcs::CanonicalError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The crate version and the git commit embedded at build time ("unknown" outside a git
/// checkout), e.g. `janus 0.1.0+git.3f2a…`. Changes with every commit, so artifacts name the
/// exact code that made them.
pub fn generation_code() -> String {
    format!(
        "janus {}+git.{}",
        env!("CARGO_PKG_VERSION"),
        env!("JANUS_GIT_COMMIT")
    )
}

/// SHA-256 of [`generation_code`]'s UTF-8 bytes.
pub fn generation_code_hash() -> Sha256Hex {
    Sha256Hex::of_bytes(generation_code().as_bytes())
}

/// Digest and size of one input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Size of the file in bytes.
    pub bytes: u64,
    /// SHA-256 of the file's bytes.
    pub sha256: Sha256Hex,
}

/// The input files of a step, keyed by role (`prices`, `events`, …) rather than by path, so the
/// same data hashes the same wherever it lies.
pub type Inputs = BTreeMap<String, FileDigest>;

/// Hash-locked lineage of an artifact (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// Canonical hash of `inputs`: identifies the dataset snapshot the artifact was made from.
    pub dataset_snapshot_hash: Sha256Hex,
    /// The code that wrote the artifact: `janus <crate version>+git.<commit or "unknown">`.
    pub generation_code: String,
    /// SHA-256 of `generation_code`.
    pub generation_code_hash: Sha256Hex,
    /// Digest of every input file, by role.
    pub inputs: Inputs,
    /// Artifacts this one was derived from, by manifest hash.
    pub parents: Vec<ArtifactRef>,
    /// Canonical hash of the run configuration the step ran with.
    pub run_config_hash: Sha256Hex,
    /// Canonical hash of the JSON Schema of this artifact's `schema_version`.
    pub schema_hash: Sha256Hex,
}

/// A reference to another artifact by its version and manifest hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    /// The referenced artifact's `manifest_hash`.
    pub manifest_hash: Sha256Hex,
    /// The referenced artifact's `schema_version`.
    pub schema_version: String,
}

impl Lineage {
    /// Lineage for an artifact made by this build from `inputs` under `run_config`.
    pub fn new<C: Serialize>(
        schema_hash: Sha256Hex,
        inputs: Inputs,
        run_config: &C,
        parents: Vec<ArtifactRef>,
    ) -> Result<Self, CanonicalError> {
        Ok(Self {
            dataset_snapshot_hash: canonical_hash(&inputs)?,
            schema_hash,
            generation_code_hash: generation_code_hash(),
            generation_code: generation_code(),
            run_config_hash: canonical_hash(run_config)?,
            inputs,
            parents,
        })
    }

    /// Problems with the lineage's internal consistency (hashes that do not match what they
    /// claim to hash). Empty when consistent.
    pub fn inconsistencies(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match canonical_hash(&self.inputs) {
            Ok(h) if h == self.dataset_snapshot_hash => {}
            Ok(h) => problems.push(format!(
                "lineage.dataset_snapshot_hash is {} but the canonical hash of lineage.inputs is {h}",
                self.dataset_snapshot_hash
            )),
            Err(e) => problems.push(format!("lineage.inputs cannot be hashed: {e}")),
        }
        let code_hash = Sha256Hex::of_bytes(self.generation_code.as_bytes());
        if code_hash != self.generation_code_hash {
            problems.push(format!(
                "lineage.generation_code_hash is {} but SHA-256 of lineage.generation_code is {code_hash}",
                self.generation_code_hash
            ));
        }
        problems
    }
}

/// Digest of a file on disk.
pub fn digest_file(path: &std::path::Path) -> std::io::Result<FileDigest> {
    let file = std::fs::File::open(path)?;
    let (sha256, bytes) = Sha256Hex::of_reader(std::io::BufReader::new(file))?;
    Ok(FileDigest { sha256, bytes })
}
