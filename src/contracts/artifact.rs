//! The artifact envelope shared by every contract: sealing (`manifest_hash`), schema generation,
//! writing, and the reader that an auditor's `janus verify` and every consumer use. Readers fail
//! closed: an unknown version, a schema violation, a broken lineage or a hash that does not match
//! the content is an error naming the file and the field.

use super::consistency::{self, Given, Mismatch};
use super::event_car::EventCarArtifact;
use super::evidence::EvidenceArtifact;
use super::hash::{Sha256Hex, canonical_hash};
use super::jcs::{CanonicalError, member_at_gap, to_canonical_vec, to_canonical_without};
use super::lineage::{ArtifactRef, Lineage};
use super::reward::HgrmRewardArtifact;
use super::runtime_stats::RuntimeStatsArtifact;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The member every artifact is sealed with; excluded from its own hash.
pub const MANIFEST_HASH: &str = "manifest_hash";

/// The artifact families this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    EventCar,
    HgrmReward,
    Evidence,
    RuntimeStats,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 4] = [
        ArtifactKind::EventCar,
        ArtifactKind::HgrmReward,
        ArtifactKind::Evidence,
        ArtifactKind::RuntimeStats,
    ];

    /// The family prefix shared by all versions, e.g. `janus-event-car`.
    pub fn family(self) -> &'static str {
        match self {
            ArtifactKind::EventCar => "janus-event-car",
            ArtifactKind::HgrmReward => "janus-hgrm-reward",
            ArtifactKind::Evidence => "janus-q-evidence",
            ArtifactKind::RuntimeStats => "janus-runtime-stats",
        }
    }

    /// The version this build writes.
    pub fn version(self) -> &'static str {
        match self {
            ArtifactKind::EventCar => "janus-event-car-v1",
            ArtifactKind::HgrmReward => "janus-hgrm-reward-v1",
            ArtifactKind::Evidence => "janus-q-evidence-v1",
            ArtifactKind::RuntimeStats => "janus-runtime-stats-v1",
        }
    }

    /// Versions this build reads. Older compatible versions are listed here explicitly when
    /// they exist; anything else is refused.
    pub fn accepted_versions(self) -> &'static [&'static str] {
        match self {
            ArtifactKind::EventCar => &["janus-event-car-v1"],
            ArtifactKind::HgrmReward => &["janus-hgrm-reward-v1"],
            ArtifactKind::Evidence => &["janus-q-evidence-v1"],
            ArtifactKind::RuntimeStats => &["janus-runtime-stats-v1"],
        }
    }

    /// The kind whose family a `schema_version` string belongs to.
    pub fn for_version(version: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| {
            version
                .strip_prefix(k.family())
                .is_some_and(|rest| rest.starts_with("-v"))
        })
    }

    /// File name of the JSON Schema under `docs/contracts/`.
    pub fn schema_file_name(self) -> String {
        format!("{}.schema.json", self.version())
    }

    /// The JSON Schema of the version this build writes, generated from the Rust types.
    pub fn schema(self) -> &'static Value {
        static SCHEMAS: OnceLock<[Value; 4]> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            [
                generate_schema::<EventCarArtifact>(ArtifactKind::EventCar),
                generate_schema::<HgrmRewardArtifact>(ArtifactKind::HgrmReward),
                generate_schema::<EvidenceArtifact>(ArtifactKind::Evidence),
                generate_schema::<RuntimeStatsArtifact>(ArtifactKind::RuntimeStats),
            ]
        });
        &all[self as usize]
    }

    /// Canonical hash of [`Self::schema`]: the `lineage.schema_hash` of artifacts of this version.
    pub fn schema_hash(self) -> Sha256Hex {
        canonical_hash(self.schema()).expect("generated schemas are canonicalizable")
    }

    fn validator(self) -> &'static jsonschema::Validator {
        static VALIDATORS: OnceLock<Vec<jsonschema::Validator>> = OnceLock::new();
        let all = VALIDATORS.get_or_init(|| {
            Self::ALL
                .iter()
                .map(|k| jsonschema::validator_for(k.schema()).expect("generated schemas compile"))
                .collect()
        });
        &all[self as usize]
    }
}

/// A JSON Schema (draft 2020-12) for `T`, with an `$id` naming the contract version.
pub fn generate_schema<T: JsonSchema>(kind: ArtifactKind) -> Value {
    schema_with_id::<T>(
        &format!(
            "https://janus.torghut.io/contracts/{}",
            kind.schema_file_name()
        ),
        kind.version(),
    )
}

/// A JSON Schema for any of our documents (artifacts, policies), with the given `$id` and title.
pub fn schema_with_id<T: JsonSchema>(id: &str, title: &str) -> Value {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert("$id".into(), Value::String(id.to_string()));
    schema.insert("title".into(), Value::String(title.to_string()));
    schema.to_value()
}

/// A versioned, sealed JSON artifact.
pub trait Artifact: Serialize + DeserializeOwned + JsonSchema {
    const KIND: ArtifactKind;
    fn manifest_hash(&self) -> &Sha256Hex;
    fn set_manifest_hash(&mut self, hash: Sha256Hex);
    fn lineage(&self) -> &Lineage;

    /// Fields that disagree with the records they summarize, the configuration they hash, or
    /// the parents given (`super::consistency`, one function per kind). Empty when consistent.
    fn mismatches(&self, given: &Given<'_>) -> Vec<Mismatch>;

    /// A reference to this artifact for another's lineage.
    fn reference(&self) -> ArtifactRef {
        ArtifactRef {
            schema_version: Self::KIND.version().to_string(),
            manifest_hash: self.manifest_hash().clone(),
        }
    }
}

macro_rules! impl_artifact {
    ($ty:ty, $kind:expr, $check:expr) => {
        impl Artifact for $ty {
            const KIND: ArtifactKind = $kind;
            fn manifest_hash(&self) -> &Sha256Hex {
                &self.manifest_hash
            }
            fn set_manifest_hash(&mut self, hash: Sha256Hex) {
                self.manifest_hash = hash;
            }
            fn lineage(&self) -> &Lineage {
                &self.lineage
            }
            fn mismatches(&self, given: &Given<'_>) -> Vec<Mismatch> {
                $check(self, given)
            }
        }
    };
}
impl_artifact!(
    EventCarArtifact,
    ArtifactKind::EventCar,
    |a, _: &Given<'_>| { consistency::event_car(a) }
);
impl_artifact!(
    HgrmRewardArtifact,
    ArtifactKind::HgrmReward,
    consistency::reward
);
impl_artifact!(
    EvidenceArtifact,
    ArtifactKind::Evidence,
    consistency::evidence
);
// Runtime statistics carry their own checks (`runtime::stats::accept`).
impl_artifact!(
    RuntimeStatsArtifact,
    ArtifactKind::RuntimeStats,
    |_, _: &Given<'_>| Vec::new()
);

/// A placeholder for an artifact that is about to be sealed.
pub fn unsealed() -> Sha256Hex {
    Sha256Hex::of_bytes(b"")
}

/// The manifest hash of an artifact (typed or as JSON): SHA-256 of the RFC 8785 encoding of
/// the object without its `manifest_hash` member.
pub fn manifest_hash_of<T: Serialize + ?Sized>(artifact: &T) -> Result<Sha256Hex, CanonicalError> {
    Ok(Sha256Hex::of_bytes(&to_canonical_vec(
        artifact,
        Some(MANIFEST_HASH),
    )?))
}

/// Errors reading, verifying or writing an artifact. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON (line {line}, column {column}): {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: the top level is not a JSON object")]
    NotAnObject { path: PathBuf },
    #[error("{path}: missing field `schema_version` (expected one of: {expected})")]
    MissingVersion { path: PathBuf, expected: String },
    #[error("{path}: field `schema_version` is {found}; this build reads {expected}")]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: is a {found} artifact, but {expected} was expected")]
    WrongKind {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: does not conform to {version}:\n{}", .errors.join("\n"))]
    Schema {
        path: PathBuf,
        version: String,
        errors: Vec<String>,
    },
    #[error("{path}: field `{field}` is invalid for {version}: {message}")]
    Field {
        path: PathBuf,
        field: String,
        version: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Integrity { path: PathBuf, message: String },
    /// Parses and is sealed, but disagrees with its own records, its configuration or the
    /// parents it was given (`contracts::consistency`).
    #[error("{path}: {}", .mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Mismatch {
        path: PathBuf,
        mismatches: Vec<Mismatch>,
    },
    #[error("{path}: cannot canonicalize: {source}")]
    Canonical {
        path: PathBuf,
        source: CanonicalError,
    },
}

impl ContractError {
    /// Whether the input could not be read or parsed as the expected artifact (missing, not
    /// JSON, no or an unknown version, another kind, not conforming to the schema): a usage
    /// error (exit 2). `false` for an artifact that parsed but failed verification (its
    /// manifest hash or lineage) and for failures to write or canonicalize (exit 1).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            ContractError::Read { .. }
                | ContractError::Json { .. }
                | ContractError::NotAnObject { .. }
                | ContractError::MissingVersion { .. }
                | ContractError::UnsupportedVersion { .. }
                | ContractError::WrongKind { .. }
                | ContractError::Schema { .. }
                | ContractError::Field { .. }
        )
    }
}

/// What a successful verification established.
#[derive(Debug, Clone)]
pub struct Verified {
    pub kind: ArtifactKind,
    pub schema_version: String,
    pub manifest_hash: Sha256Hex,
    pub value: Value,
}

/// Most schema errors listed in one message; the rest are counted.
const MAX_SCHEMA_ERRORS: usize = 20;

/// Verifies the JSON text of an artifact: known version, schema, typed fields, lineage
/// consistency, manifest hash, and agreement with itself (`consistency`: summaries recounted
/// from the records, configuration against its recorded hash). `path` only names the source in errors.
pub fn verify_bytes(path: &Path, bytes: &[u8]) -> Result<Verified, ContractError> {
    let value: Value = super::strict_json::from_slice(bytes).map_err(|e| ContractError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    verify_value(path, value)
}

/// As [`verify_bytes`], for an already parsed document.
pub fn verify_value(path: &Path, value: Value) -> Result<Verified, ContractError> {
    let p = || path.to_path_buf();
    let all_versions = || {
        ArtifactKind::ALL
            .iter()
            .flat_map(|k| k.accepted_versions().iter().copied())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let object = value
        .as_object()
        .ok_or_else(|| ContractError::NotAnObject { path: p() })?;
    let version = match object.get("schema_version") {
        None => {
            return Err(ContractError::MissingVersion {
                path: p(),
                expected: all_versions(),
            });
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ContractError::UnsupportedVersion {
                path: p(),
                found: other.to_string(),
                expected: all_versions(),
            });
        }
    };
    let kind = ArtifactKind::for_version(&version)
        .filter(|k| k.accepted_versions().contains(&version.as_str()))
        .ok_or_else(|| ContractError::UnsupportedVersion {
            path: p(),
            found: format!("'{version}'"),
            expected: ArtifactKind::for_version(&version)
                .map(|k| k.accepted_versions().join(", "))
                .unwrap_or_else(all_versions),
        })?;

    let errors: Vec<String> = kind
        .validator()
        .iter_errors(&value)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("  at {}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if !errors.is_empty() {
        let total = errors.len();
        let mut errors: Vec<String> = errors.into_iter().take(MAX_SCHEMA_ERRORS).collect();
        if total > MAX_SCHEMA_ERRORS {
            errors.push(format!("  ... and {} more", total - MAX_SCHEMA_ERRORS));
        }
        return Err(ContractError::Schema {
            path: p(),
            version,
            errors,
        });
    }

    fn parts<T: Artifact>(a: T) -> (Lineage, Vec<Mismatch>) {
        let mismatches = a.mismatches(&Given::default());
        (a.lineage().clone(), mismatches)
    }
    let (lineage, mismatches) = match kind {
        ArtifactKind::EventCar => parts(typed::<EventCarArtifact>(path, &value, &version)?),
        ArtifactKind::HgrmReward => parts(typed::<HgrmRewardArtifact>(path, &value, &version)?),
        ArtifactKind::Evidence => parts(typed::<EvidenceArtifact>(path, &value, &version)?),
        ArtifactKind::RuntimeStats => parts(typed::<RuntimeStatsArtifact>(path, &value, &version)?),
    };
    let mut problems = lineage.inconsistencies();
    let expected_schema_hash = kind.schema_hash();
    if lineage.schema_hash != expected_schema_hash {
        problems.push(format!(
            "lineage.schema_hash is {} but the {version} schema of this build hashes to {expected_schema_hash}",
            lineage.schema_hash
        ));
    }
    let recorded = object
        .get(MANIFEST_HASH)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let recomputed = manifest_hash_of(&value)
        .map_err(|source| ContractError::Canonical { path: p(), source })?;
    if recorded != recomputed.as_str() {
        problems.push(format!(
            "manifest_hash is {recorded} but the content hashes to {recomputed}: the artifact was changed after it was sealed"
        ));
    }
    if !problems.is_empty() {
        return Err(ContractError::Integrity {
            path: p(),
            message: problems.join("; "),
        });
    }
    if !mismatches.is_empty() {
        return Err(ContractError::Mismatch {
            path: p(),
            mismatches,
        });
    }
    Ok(Verified {
        kind,
        schema_version: version,
        manifest_hash: recomputed,
        value,
    })
}

fn typed<T: DeserializeOwned>(
    path: &Path,
    value: &Value,
    version: &str,
) -> Result<T, ContractError> {
    serde_path_to_error::deserialize(value).map_err(|e| ContractError::Field {
        path: path.to_path_buf(),
        field: e.path().to_string(),
        version: version.to_string(),
        message: e.inner().to_string(),
    })
}

/// Reads and fully verifies an artifact of type `T` (see [`verify_bytes`]).
pub fn read_artifact<T: Artifact>(path: &Path) -> Result<T, ContractError> {
    let bytes = std::fs::read(path).map_err(|source| ContractError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let verified = verify_bytes(path, &bytes)?;
    if verified.kind != T::KIND {
        return Err(ContractError::WrongKind {
            path: path.to_path_buf(),
            found: verified.schema_version,
            expected: T::KIND.version().to_string(),
        });
    }
    typed(path, &verified.value, &verified.schema_version)
}

/// An artifact's canonical text as three slices: before the seal, the seal member, after it.
/// Large artifacts are written from these without being copied into one buffer.
struct SealedText {
    without: Vec<u8>,
    offset: usize,
    member: String,
}

impl SealedText {
    fn parts(&self) -> [&[u8]; 3] {
        [
            &self.without[..self.offset],
            self.member.as_bytes(),
            &self.without[self.offset..],
        ]
    }
}

fn seal_text<T: Artifact>(artifact: &mut T) -> Result<SealedText, ContractError> {
    let canonical = |source| ContractError::Canonical {
        path: PathBuf::from(format!("<{}>", T::KIND.version())),
        source,
    };
    let (without, gap) = to_canonical_without(&*artifact, MANIFEST_HASH).map_err(canonical)?;
    let gap = gap.expect("artifacts are JSON objects");
    let hash = Sha256Hex::of_bytes(&without);
    let member = member_at_gap(gap, MANIFEST_HASH, &format!("\"{hash}\""));
    artifact.set_manifest_hash(hash);
    Ok(SealedText {
        without,
        offset: gap.offset,
        member,
    })
}

/// Seals `artifact` (sets its manifest hash) and returns its canonical JSON text. Fails on
/// values JSON cannot carry (NaN, infinities, integers beyond 2^53 − 1) instead of writing
/// something else.
pub fn seal<T: Artifact>(artifact: &mut T) -> Result<Vec<u8>, ContractError> {
    Ok(seal_text(artifact)?.parts().concat())
}

/// Seals and writes an artifact in its canonical (RFC 8785) form plus a final newline,
/// atomically (a temporary file renamed into place), so a reader never sees half an artifact.
/// Other artifacts refer to it by its manifest hash (see [`Artifact::reference`]).
pub fn write_artifact<T: Artifact>(path: &Path, artifact: &mut T) -> Result<(), ContractError> {
    let sealed = seal_text(artifact)?;
    let [head, member, tail] = sealed.parts();
    write_parts_atomically(path, &[head, member, tail, b"\n"])
}

/// Writes several output files of one run into `dir` as a set, so that no reader ever finds a
/// new file beside the previous run's (a new `evaluation.json` beside an old `evidence.json`):
///
/// 1. every new file is written under a temporary name in `dir` and synced (a failure here
///    leaves the previous set untouched);
/// 2. every file of the set's names already in `dir` is removed;
/// 3. the new files are renamed into place in the order given: put last the file readers act
///    on (the sealed artifact), so its presence means the whole set is there.
///
/// A crash during 2 leaves part of the old set and nothing new; during 3, part of the new set
/// and nothing old. Temporaries are removed on failure.
pub fn write_set(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), ContractError> {
    write_set_with(dir, files, |_| Ok(()))
}

/// [`write_set`] with `after_rename(i)` called once file `i` is in place; an error from it stops
/// the commit there, as a crash would (how tests inject one).
pub fn write_set_with(
    dir: &Path,
    files: &[(&str, &[u8])],
    mut after_rename: impl FnMut(usize) -> std::io::Result<()>,
) -> Result<(), ContractError> {
    use std::io::Write as _;
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContractError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let tmp_of = |name: &str| dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let cleanup = || {
        for (name, _) in files {
            let _ = std::fs::remove_file(tmp_of(name));
        }
    };
    for (name, bytes) in files {
        let tmp = tmp_of(name);
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        });
        if let Err(e) = written {
            cleanup();
            return Err(err(&tmp)(e));
        }
    }
    for (name, _) in files {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                cleanup();
                return Err(err(&path)(e));
            }
        }
    }
    for (i, (name, _)) in files.iter().enumerate() {
        let path = dir.join(name);
        if let Err(e) = std::fs::rename(tmp_of(name), &path).and_then(|()| after_rename(i)) {
            cleanup();
            return Err(err(&path)(e));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ContractError> {
    write_parts_atomically(path, &[bytes])
}

/// Writes the concatenation of `parts` to `path` through a temporary sibling, synced to disk,
/// and a rename: after a crash the path holds the old content or the new, never a mix.
pub fn write_parts_atomically(path: &Path, parts: &[&[u8]]) -> Result<(), ContractError> {
    use std::io::Write as _;
    let err = |source| ContractError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}
