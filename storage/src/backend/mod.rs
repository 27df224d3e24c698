//! The storage backends: each implements [`crate::Engine`] and passes the conformance suite.

pub mod lmdb;
mod lmdb_pages;
pub mod memory;
