//! The storage backends: each implements [`crate::Engine`] and passes the conformance suite.

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "etcd")]
#[doc(hidden)]
pub mod etcd_testing;
pub mod lmdb;
mod lmdb_pages;
pub mod memory;
