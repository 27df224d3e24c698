//! KVM: an embedded KV-model database with an ORM-grade data model and the KQL query language.
//!
//! ```
//! use kvm::{params, Database};
//!
//! let db = Database::memory()?;
//! db.execute("DEFINE MODEL users (id INT PRIMARY KEY, email STRING UNIQUE LOWERCASE NOT NULL, age INT)", ())?;
//! db.execute("INSERT INTO users [{id: 1, email: 'Ann@X.com', age: 31}, {id: 2, email: 'bo@x.com', age: 17}]", ())?;
//! let rows = db.query("SELECT email FROM users WHERE age >= $1", params![18])?;
//! assert_eq!(rows.rows, vec![vec![kvm::Value::String("ann@x.com".into())]]);
//! #[derive(serde::Deserialize)] struct User { id: i64, email: String }
//! let users: Vec<User> = db.query_as("SELECT id, email FROM users WHERE email = $e", params!{"e" => "bo@x.com"})?;
//! assert_eq!((users[0].id, users[0].email.as_str()), (2, "bo@x.com"));
//! # Ok::<(), kvm::Error>(())
//! ```
//!
//! # The life of a query
//!
//! 1. [`Database::execute`] (or [`Database::execute_script`], or [`Prepared::execute`])
//!    parses the text with `kvm_lang::parse_script` into `Statement`s.
//! 2. `exec::run` opens a [`model_txn::ModelTxn`] — one storage snapshot plus a write buffer
//!    (`txn::Txn`) — and gets the catalog for that snapshot (`Host::catalog`, which reloads
//!    it through `catalog_store::load` when the catalog version key moved).
//! 3. `exec::plan` calls the planner (`kvm_planner::plan_select`, `plan_insert`,
//!    `plan_update`, `plan_delete`): names are bound against the catalog, comparisons type
//!    checked, and `access::choose` picks the access path; the result is a
//!    `kvm_planner::Plan` whose `Display` is `EXPLAIN`.
//! 4. `exec::read::table` / `exec::read::rows` turn plan nodes into pulled row iterators:
//!    the leaf reads keys through the model transaction (`ModelTxn::get`, `index_scan`,
//!    `scan`), virtual fields are computed (`record::materialize`), then filter, sort
//!    (top-n under a limit), limit and project.
//! 5. Writes (`exec::write`) validate and coerce records (`record::for_insert`,
//!    `record::for_update`) and hand them to `ModelTxn::insert/update/delete`, which keep
//!    index entries and unique checks in the same buffer.
//! 6. The buffer becomes one `AtomicBatch` (`Txn::batch`: checks on every key read by the
//!    write and on the catalog version, then the writes) and `Engine::commit` applies it
//!    all or nothing; a conflict re-runs the statement from step 2 (at most
//!    `exec::MAX_ATTEMPTS` times).
//!
//! The keyspace (every key the engine writes) is [`keyspace`].

pub mod builder;
mod catalog_store;
mod database;
mod error;
mod eval;
mod exec;
mod interrupt;
pub mod json;
pub mod keyspace;
pub mod model_txn;
mod output;
mod params;
pub mod queue;
mod record;
mod txn;
mod values;
pub mod watch;

pub use kvm_lang as lang;
pub use kvm_planner as planner;
pub use kvm_storage as storage;
pub use kvm_storage::Value;

pub use database::{Database, Options, Prepared, Session, StatementOutcome, Transaction};
pub use error::{CheckProblem, CheckProblemKind, CheckReport, Error, Result};
pub use interrupt::Interrupt;
pub use output::{Output, Rows};
pub use params::{IntoParams, IntoValue, Params};
pub use queue::{Enqueue, Job, Queue, Worker, WorkerEvent};
pub use values::{display as display_value, format_timestamp};
pub use watch::{Watch, WatchEvent, WatchOp};
