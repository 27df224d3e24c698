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
    /// A record patch the record's value refuses (see `Mutation::Patch`): field `field`.
    PatchRefused { key: Vec<u8>, field: u32 },
    /// The change feed no longer holds the requested start; re-read a snapshot.
    FeedTruncated { requested: String, oldest: String },
    /// Bytes that should have been written by this crate could not be decoded.
    Corrupt(String),
    /// The database file is full and could not be grown (see the message).
    MapFull(String),
    /// The disk (or file system quota) has no room for the write; nothing was written.
    DiskFull(String),
    /// The database was opened read-only (or its file is not writable) and a write came.
    ReadOnly(String),
    /// The database is open elsewhere and the operation needs it to itself (`vacuum`).
    InUse(String),
    /// The backend failed (I/O, LMDB error, lock poisoned, ...).
    Backend(String),
    /// A remote backend (etcd) did not answer: unreachable, timed out, or without a
    /// leader. Try again later; a commit that failed so may or may not have been applied.
    Unavailable(String),
    /// The caller of [`crate::Engine::write_direct`] stopped its write (it holds the
    /// reason); nothing was written.
    Aborted,
}

impl Error {
    /// A stable, machine-readable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Conflict { .. } => "storage.conflict",
            Error::KeyTooLarge { .. } => "storage.key_too_large",
            Error::NotACounter { .. } => "storage.not_a_counter",
            Error::CounterOutOfRange { .. } => "storage.counter_out_of_range",
            Error::PatchRefused { .. } => "storage.patch_refused",
            Error::FeedTruncated { .. } => "storage.feed_truncated",
            Error::Corrupt(_) => "storage.corrupt",
            Error::MapFull(_) => "storage.map_full",
            Error::DiskFull(_) => "storage.disk_full",
            Error::ReadOnly(_) => "storage.read_only",
            Error::InUse(_) => "storage.in_use",
            Error::Backend(_) => "storage.backend",
            Error::Unavailable(_) => "storage.unavailable",
            Error::Aborted => "storage.aborted",
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
            Error::PatchRefused { key, field } => write!(
                f,
                "the record at {} refuses the patch of its field #{field}",
                format_key(key)
            ),
            Error::FeedTruncated { requested, oldest } => write!(
                f,
                "change feed no longer holds commits after {requested} (oldest kept: {oldest}); \
                 read a fresh snapshot and follow the feed from there"
            ),
            Error::Corrupt(msg) => write!(f, "corrupt data: {msg}"),
            Error::MapFull(msg) => write!(f, "database is full: {msg}"),
            Error::DiskFull(msg) => write!(f, "no space left on the disk: {msg}"),
            Error::ReadOnly(msg) => write!(f, "the database is read-only: {msg}"),
            Error::InUse(msg) => write!(f, "the database is in use: {msg}"),
            Error::Backend(msg) => write!(f, "storage backend error: {msg}"),
            Error::Unavailable(msg) => write!(f, "the storage cluster is unavailable: {msg}"),
            Error::Aborted => write!(f, "the write was stopped by its caller; nothing was written"),
        }
    }
}

impl std::error::Error for Error {}

impl From<heed::Error> for Error {
    fn from(e: heed::Error) -> Self {
        use heed::MdbError;
        match e {
            heed::Error::Io(io) => io.into(),
            heed::Error::Mdb(MdbError::Other(code)) if code == ENOSPC || code == EDQUOT => {
                Error::DiskFull(format!("lmdb: {}", std::io::Error::from_raw_os_error(code)))
            }
            heed::Error::Mdb(MdbError::Other(code)) if code == EACCES || code == EROFS => {
                Error::ReadOnly(format!("lmdb: {}", std::io::Error::from_raw_os_error(code)))
            }
            heed::Error::Mdb(MdbError::Corrupted | MdbError::PageNotFound | MdbError::Invalid) => {
                Error::Corrupt(format!("lmdb: {e}"))
            }
            e => Error::Backend(format!("lmdb: {e}")),
        }
    }
}

// errno values (Linux and the BSDs agree on these).
const EACCES: i32 = 13;
const ENOSPC: i32 = 28;
const EROFS: i32 = 30;
const EDQUOT: i32 = 122;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                return Error::DiskFull(format!("io: {e}"))
            }
            std::io::ErrorKind::ReadOnlyFilesystem => return Error::ReadOnly(format!("io: {e}")),
            _ => {}
        }
        Error::Backend(format!("io: {e}"))
    }
}
