//! The storage layer's one error type, grouped by what the caller can do about it.

use std::fmt;

/// The result type of every storage operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the storage layer. Each variant has a stable [`Error::code`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A check of the batch failed: the key changed (or appeared) since it was read.
    /// Retry the read-modify-write from a fresh snapshot.
    Conflict { key: Vec<u8> },
    /// A key is longer than [`crate::MAX_KEY_LEN`] bytes.
    KeyTooLarge { len: usize, max: usize },
    /// `sum`/`min`/`max` met a stored value that is not a u64 counter.
    NotACounter { key: Vec<u8> },
    /// `sum` would take a counter below 0 or above `u64::MAX`.
    CounterOutOfRange { key: Vec<u8>, current: u64, delta: i64 },
    /// The change feed no longer holds the requested start; re-read a snapshot.
    FeedTruncated { requested: String, oldest: String },
    /// Bytes that should have been written by this crate could not be decoded.
    Corrupt(String),
    /// The database file is full and could not be grown (see the message).
    MapFull(String),
    /// The backend failed (I/O, LMDB error, lock poisoned, ...).
    Backend(String),
}

impl Error {
    /// A stable, machine-readable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Conflict { .. } => "storage.conflict",
            Error::KeyTooLarge { .. } => "storage.key_too_large",
            Error::NotACounter { .. } => "storage.not_a_counter",
            Error::CounterOutOfRange { .. } => "storage.counter_out_of_range",
            Error::FeedTruncated { .. } => "storage.feed_truncated",
            Error::Corrupt(_) => "storage.corrupt",
            Error::MapFull(_) => "storage.map_full",
            Error::Backend(_) => "storage.backend",
        }
    }

    /// True when running the same operation again from a fresh snapshot may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::format::format_key;
        match self {
            Error::Conflict { key } => {
                write!(f, "write conflict on key {}: it changed since it was read", format_key(key))
            }
            Error::KeyTooLarge { len, max } => {
                write!(f, "key is {len} bytes long; keys are limited to {max} bytes")
            }
            Error::NotACounter { key } => {
                write!(f, "key {} does not hold a u64 counter", format_key(key))
            }
            Error::CounterOutOfRange { key, current, delta } => write!(
                f,
                "adding {delta} to counter {} (now {current}) leaves the range 0..=u64::MAX",
                format_key(key)
            ),
            Error::FeedTruncated { requested, oldest } => write!(
                f,
                "change feed no longer holds commits after {requested} (oldest kept: {oldest}); \
                 read a fresh snapshot and follow the feed from there"
            ),
            Error::Corrupt(msg) => write!(f, "corrupt data: {msg}"),
            Error::MapFull(msg) => write!(f, "database is full: {msg}"),
            Error::Backend(msg) => write!(f, "storage backend error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<heed::Error> for Error {
    fn from(e: heed::Error) -> Self {
        Error::Backend(format!("lmdb: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Backend(format!("io: {e}"))
    }
}
