//! KVM: an embedded KV-model database with an ORM-grade data model and the KQL query language.
//!
//! The engine (catalog, executor, model transactions, watch, queues) grows here; for now the
//! crate re-exports the layers below it so that applications and `kvmsh` depend on `kvm` alone.

pub use kvm_lang as lang;
pub use kvm_storage as storage;
