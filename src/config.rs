//! Loading configuration files (YAML, or JSON as its subset) into typed, validated config with
//! errors that name the file and the key.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A configuration that can say what is wrong with its values.
pub trait Validate {
    /// `Err((key, message))` for the first out-of-range or inconsistent value.
    fn validate(&self) -> Result<(), (String, String)>;
}

/// Reads a YAML/JSON configuration file; unknown keys and bad values are errors naming the key.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// As [`load`], from text; `path` names the source in errors.
pub fn parse<T: DeserializeOwned + Validate>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    let config: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let message = e.inner().to_string();
        if key == "." || key.is_empty() {
            ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            }
        } else {
            ConfigError::Key {
                path: path.to_path_buf(),
                key,
                message,
            }
        }
    })?;
    config
        .validate()
        .map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        })?;
    Ok(config)
}

/// Helpers for `Validate` implementations.
pub fn check(ok: bool, key: &str, message: impl Into<String>) -> Result<(), (String, String)> {
    if ok {
        Ok(())
    } else {
        Err((key.to_string(), message.into()))
    }
}
