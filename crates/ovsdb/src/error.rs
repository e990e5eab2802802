//! Error types.
//!
//! Two kinds exist because they travel differently: [`OvsdbError`] is the RFC 7047
//! `{"error": ..., "details": ...}` object that goes back to a client inside a
//! reply, while [`Error`] is what the embedding API returns when the database or
//! server itself cannot be set up (bad schema file, I/O failure, corrupt log).

use serde_json::{json, Map, Value};
use std::fmt;

/// An RFC 7047 error object. `error` is the short machine-readable tag
/// ("constraint violation", "referential integrity violation", ...) that OvS
/// clients match on; `details` is free text for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsdbError {
    /// The RFC 7047 error tag.
    pub error: String,
    /// Optional human-readable explanation.
    pub details: Option<String>,
}

impl OvsdbError {
    /// An error with a tag and details.
    pub fn new(error: &str, details: impl Into<String>) -> Self {
        OvsdbError { error: error.to_string(), details: Some(details.into()) }
    }

    /// An error with only a tag (e.g. "aborted", "timed out").
    pub fn bare(error: &str) -> Self {
        OvsdbError { error: error.to_string(), details: None }
    }

    /// "syntax error" with details.
    pub fn syntax(details: impl Into<String>) -> Self {
        Self::new("syntax error", details)
    }

    /// "constraint violation" with details.
    pub fn constraint(details: impl Into<String>) -> Self {
        Self::new("constraint violation", details)
    }

    /// The JSON error object sent to clients.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("error".into(), json!(self.error));
        if let Some(d) = &self.details {
            m.insert("details".into(), json!(d));
        }
        Value::Object(m)
    }
}

impl fmt::Display for OvsdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.details {
            Some(d) => write!(f, "{}: {}", self.error, d),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for OvsdbError {}

/// Shorthand for results carrying an [`OvsdbError`].
pub type OResult<T> = Result<T, OvsdbError>;

/// Errors of the embedding API (opening databases, starting servers).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The schema text is not a valid OVSDB schema.
    #[error("invalid schema: {0}")]
    Schema(String),
    /// The database file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File concerned.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The database file holds data we cannot interpret (checksummed but invalid).
    #[error("database file {path} is unusable: {reason}")]
    Corrupt {
        /// File concerned.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// An OVSDB-level error while applying data (e.g. replaying the log).
    #[error("{0}")]
    Ovsdb(#[from] OvsdbError),
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { path: path.display().to_string(), source }
    }
}
