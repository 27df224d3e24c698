//! The public entry point: [`Database`] opens a file (LMDB) or memory, runs KQL with
//! parameters, prepares statements, and runs whole scripts statement by statement.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use kvm_lang::{Span, Statement};
use kvm_planner::{Catalog, Plan};
use kvm_storage::{Clock, Engine, LmdbEngine, LmdbOptions, MemoryEngine, Versionstamp};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::eval::Ids;
use crate::exec::{self, Host};
use crate::keyspace::Key;
use crate::model_txn::ModelTxn;
use crate::params::{IntoParams, Params};
use crate::{catalog_store, Output, Rows};

/// How a database is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// The clock for `now()`, timestamps, ULIDs and expiry.
    pub clock: Arc<dyn Clock>,
    /// Seeds the generator behind `ulid()`/`uuid()`; `None` seeds from the OS. Tests fix
    /// it (with a `ManualClock`) to get the same ids every run.
    pub seed: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options { clock: kvm_storage::clock::system(), seed: None }
    }
}

struct DefaultIds {
    clock: Arc<dyn Clock>,
    state: Mutex<u64>,
}

impl DefaultIds {
    fn next(&self) -> u64 {
        // xorshift64*: fast, and deterministic under a fixed seed.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Ids for DefaultIds {
    fn now_micros(&self) -> i64 {
        i64::try_from(self.clock.now_millis()).unwrap_or(i64::MAX).saturating_mul(1000)
    }
    fn ulid(&self) -> String {
        let random =
            (u128::from(self.next()) << 64 | u128::from(self.next())) & ((1u128 << 80) - 1);
        ulid::Ulid::from_parts(self.clock.now_millis(), random).to_string()
    }
    fn uuid(&self) -> String {
        let bytes = (u128::from(self.next()) << 64 | u128::from(self.next())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
    }
}

struct Inner {
    engine: Arc<dyn Engine>,
    ids: DefaultIds,
    catalog: RwLock<(Option<Versionstamp>, Arc<Catalog>)>,
}

impl Host for Inner {
    fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }
    fn ids(&self) -> &dyn Ids {
        &self.ids
    }
    fn catalog(&self, mtx: &ModelTxn) -> Result<Arc<Catalog>> {
        let vs = mtx.txn.snapshot_versionstamp(&Key::CatalogVersion.encode())?;
        {
            let cached = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            if cached.0 == vs {
                return Ok(cached.1.clone());
            }
        }
        let fresh = Arc::new(catalog_store::load(&mtx.txn)?);
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = (vs, fresh.clone());
        Ok(fresh)
    }
}

/// An open database. Cheap to clone; clones share the engine and the catalog cache.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

/// One statement of a script and how it went.
#[derive(Debug)]
pub struct StatementOutcome {
    /// Where the statement (or the parse error) is in the script.
    pub span: Span,
    pub result: Result<Output>,
}

impl Database {
    /// Opens (or creates) the database file at `path` on LMDB.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, Options::default())
    }

    /// [`Database::open`] with options.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Database> {
        let lmdb = LmdbOptions { clock: options.clock.clone(), ..LmdbOptions::default() };
        Database::with_engine(Arc::new(LmdbEngine::open(path, lmdb)?), options)
    }

    /// A fresh in-memory database (`Result` like [`Database::open`], so both open the same
    /// way; it does not fail today).
    pub fn memory() -> Result<Database> {
        Database::memory_with(Options::default())
    }

    /// [`Database::memory`] with options.
    pub fn memory_with(options: Options) -> Result<Database> {
        let engine = Arc::new(MemoryEngine::with_clock(options.clock.clone()));
        Ok(Database::build(engine, options))
    }

    /// A database over any storage engine (a test wrapper, a future backend). Loads the
    /// catalog.
    pub fn with_engine(engine: Arc<dyn Engine>, options: Options) -> Result<Database> {
        let db = Database::build(engine, options);
        {
            let mtx = ModelTxn::new(db.inner.engine.as_ref())?;
            db.inner.catalog(&mtx)?;
        }
        Ok(db)
    }

    fn build(engine: Arc<dyn Engine>, options: Options) -> Database {
        let seed = options.seed.unwrap_or_else(|| {
            let r = uuid::Uuid::new_v4().as_u128();
            (r as u64) ^ ((r >> 64) as u64)
        });
        let ids = DefaultIds { clock: options.clock, state: Mutex::new(seed | 1) };
        let catalog = RwLock::new((None, Arc::new(Catalog::default())));
        Database { inner: Arc::new(Inner { engine, ids, catalog }) }
    }

    /// The schema as of the latest commit: every model with its fields and indexes (what
    /// the shell completes names from).
    pub fn catalog(&self) -> Result<Arc<Catalog>> {
        let mtx = ModelTxn::new(self.inner.engine.as_ref())?;
        self.inner.catalog(&mtx)
    }

    /// The storage engine underneath.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.inner.engine
    }

    /// Runs every statement of `kql` in order (each its own commit) and returns the last
    /// one's output; stops at the first error.
    pub fn execute(&self, kql: &str, params: impl IntoParams) -> Result<Output> {
        let params = params.into_params();
        let script = kvm_lang::parse_script("<kql>", kql);
        if let Some(d) = script.diagnostics.into_iter().next() {
            return Err(Error::Parse(d));
        }
        let mut last = Output::Message(String::new());
        for stmt in &script.statements {
            last = self.run_statement(stmt, &params)?;
        }
        Ok(last)
    }

    /// Runs one parsed statement.
    pub fn run_statement(&self, stmt: &Statement, params: &Params) -> Result<Output> {
        exec::run(self.inner.as_ref(), stmt, params, None)
    }

    /// Runs a query and returns its rows.
    pub fn query(&self, kql: &str, params: impl IntoParams) -> Result<Rows> {
        match self.execute(kql, params)? {
            Output::Rows(r) => Ok(r),
            other => Err(Error::Param(format!("the statement returned {other:?}, not rows"))),
        }
    }

    /// Runs a query and deserializes each row (an object of its columns) into `T`.
    pub fn query_as<T: DeserializeOwned>(
        &self,
        kql: &str,
        params: impl IntoParams,
    ) -> Result<Vec<T>> {
        let rows = self.query(kql, params)?;
        crate::json::rows_as(&rows)
    }

    /// Parses and plans `kql` (one statement) once, for many executions.
    pub fn prepare(&self, kql: &str) -> Result<Prepared> {
        let stmt = kvm_lang::parse_statement(kql)?;
        let mtx = ModelTxn::new(self.inner.engine.as_ref())?;
        let catalog = self.inner.catalog(&mtx)?;
        let plan = exec::plan(&catalog, &stmt)?;
        Ok(Prepared { db: self.clone(), stmt, planned: plan.map(|p| (catalog, p)) })
    }

    /// Runs a script lazily: each item is one statement's outcome (or a parse error), in
    /// source order. Stop at the first `Err` to get "stop at the first error".
    pub fn execute_script<'s>(
        &'s self,
        file: &'s str,
        source: &'s str,
    ) -> impl Iterator<Item = StatementOutcome> + 's {
        let script = kvm_lang::parse_script(file, source);
        let mut items: Vec<(u32, Result<Statement, kvm_lang::Diagnostic>)> =
            script.statements.into_iter().map(|s| (s.span().start, Ok(s))).collect();
        items.extend(script.diagnostics.into_iter().map(|d| (d.span.start, Err(d))));
        items.sort_by_key(|(start, _)| *start);
        items.into_iter().map(move |(_, item)| match item {
            Ok(stmt) => StatementOutcome {
                span: stmt.span(),
                result: self.run_statement(&stmt, &Params::default()),
            },
            Err(d) => StatementOutcome { span: d.span, result: Err(Error::Parse(d)) },
        })
    }
}

/// A statement parsed and planned once; [`Prepared::execute`] binds new parameters. When
/// the schema changed since it was planned, it is planned again.
pub struct Prepared {
    db: Database,
    stmt: Statement,
    planned: Option<(Arc<Catalog>, Plan)>,
}

impl Prepared {
    pub fn execute(&self, params: impl IntoParams) -> Result<Output> {
        let params = params.into_params();
        let prepared = self.planned.as_ref().map(|(c, p)| (c, p));
        exec::run(self.db.inner.as_ref(), &self.stmt, &params, prepared)
    }

    pub fn query(&self, params: impl IntoParams) -> Result<Rows> {
        match self.execute(params)? {
            Output::Rows(r) => Ok(r),
            other => Err(Error::Param(format!("the statement returned {other:?}, not rows"))),
        }
    }

    /// The plan, as `EXPLAIN` prints it.
    pub fn explain(&self) -> String {
        self.planned.as_ref().map(|(_, p)| p.to_string()).unwrap_or_default()
    }
}
