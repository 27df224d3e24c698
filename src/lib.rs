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
//! One row with typed getters, streaming, and the application's own errors in a
//! transaction:
//!
//! ```
//! use kvm::{params, Database};
//!
//! let db = Database::memory()?;
//! db.execute("DEFINE MODEL users (id INT PRIMARY KEY, email STRING NOT NULL, age INT)", ())?;
//! db.execute("INSERT INTO users [{id: 1, email: 'ann@x.com', age: 31}, {id: 2, email: 'bo@x.com'}]", ())?;
//! let row = db.query_row("SELECT email, age FROM users WHERE id = $1", params![1])?;
//! assert_eq!(row.get::<String>("email")?, "ann@x.com");
//! assert_eq!(row.get::<Option<i64>>("age")?, Some(31));
//! assert_eq!(db.query_opt("SELECT * FROM users WHERE id = 9", ())?, None);
//! let mut n = 0;
//! for row in db.query_iter("SELECT id FROM users", ())? {
//!     n += row?.get::<i64>(0)?;
//! }
//! assert_eq!(n, 3);
//! # Ok::<(), kvm::Error>(())
//! ```
//!
//! # The public API
//!
//! [`Database`] (open, execute, query, prepare, transactions, sessions, scripts),
//! [`Prepared`], [`Transaction`], [`Rows`] / [`Row`] / [`RowStream`] (results), [`Value`]
//! and the conversions in and out ([`IntoValue`], [`FromValue`], [`to_value`]),
//! [`Error`], queues ([`Queue`], [`Worker`]), watches ([`Watch`]), the query
//! [`builder`]. The schema is readable as [`schema::Catalog`]; `lang` is the KQL parser
//! and AST (for [`Database::run_statement`]); `storage` is the storage engine interface,
//! for plugging in a backend with [`Database::with_engine`]. Nothing public writes around
//! validation, indexes and relations. How a query and a write travel through the engine
//! is in `docs/architecture.md`.

pub mod builder;
mod catalog_store;
mod database;
#[cfg(any(feature = "chrono", feature = "time"))]
mod datetime;
mod error;
mod eval;
mod exec;
mod interrupt;
pub mod json;
mod keyspace;
mod model_txn;
mod output;
mod params;
pub mod queue;
mod record;
mod row;
mod slots;
mod statement;
mod stream;
mod txn;
mod values;
pub mod watch;

/// The schema as the catalog holds it: models, their fields and indexes (read-only: a
/// change is DDL through [`Database::execute`]).
pub mod schema {
    pub use kvm_planner::catalog::{Catalog, Field, Index, Model};
}

pub use kvm_lang as lang;
pub use kvm_storage as storage;
pub use kvm_storage::Value;

pub use database::{Database, Options, Prepared, Session, StatementOutcome, Transaction, TxError};
pub use error::{CheckProblem, CheckProblemKind, CheckReport, Error, Result};
pub use interrupt::Interrupt;
pub use json::to_value;
pub use output::{Output, Rows};
pub use params::{IntoParams, IntoValue, Params};
pub use queue::{Enqueue, Job, Queue, Worker, WorkerEvent};
pub use row::{ColumnIndex, FromValue, Row};
pub use stream::RowStream;
pub use values::{display as display_value, format_timestamp};
pub use watch::{Watch, WatchEvent, WatchOp};
