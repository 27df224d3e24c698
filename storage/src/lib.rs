//! KVM's storage layer: the ordered-bytes [`Engine`] trait with snapshot reads, atomic
//! check-guarded commits, versionstamps, expiry and a change feed; the order-preserving
//! [`tuple`](mod@tuple) key codec; the [`value`] codec; and the backends ([`MemoryEngine`],
//! [`LmdbEngine`], and [`FaultyEngine`] for testing code above the trait).
//!
//! Only this crate names LMDB. The engine above sees [`Engine`] and nothing else.

mod apply;
pub mod backend;
pub mod clock;
pub mod counting;
mod engine;
pub mod entry;
mod error;
pub mod faulty;
pub mod feed;
pub mod format;
pub mod group;
pub mod tuple;
pub mod value;
mod versionstamp;

#[cfg(feature = "etcd")]
pub use backend::etcd::{EtcdEngine, EtcdOptions};
#[cfg(feature = "etcd")]
pub use backend::etcd_testing;
pub use backend::lmdb::{vacuum, LmdbEngine, LmdbOptions, Vacuumed};
pub use backend::memory::MemoryEngine;
pub use clock::{Clock, ManualClock, SystemClock};
pub use counting::{CountingEngine, ReadCounts};
pub use engine::{
    transact, AtomicBatch, Check, CommitLimits, Direct, DirectEntry, Durability, Engine,
    FieldPatch, KeyRange, KvRef, Mutation, PatchOp, RangeCheck, ScanIter, ScanOptions, Snapshot,
    WriterTurn, MAX_KEY_LEN,
};
pub use entry::Entry;
pub use error::{Error, Result};
pub use faulty::FaultyEngine;
pub use feed::{Change, ChangeKind, ChangeSet};
pub use tuple::KeyPart;
pub use value::Value;
pub use versionstamp::Versionstamp;
