//! KVM: an embedded KV-model database with an ORM-grade data model and the KQL query language.
//!
//! The engine (catalog, executor, model transactions, watch, queues) grows here; the crate
//! re-exports the layers below it so that applications and `kvmsh` depend on `kvm` alone.

mod output;

pub use kvm_lang as lang;
pub use kvm_storage as storage;
pub use kvm_storage::Value;
pub use output::{Output, Rows};
