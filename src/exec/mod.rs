//! The executor: runs one statement against one snapshot and one write buffer, then commits
//! it as one batch, retrying the whole statement on a conflict (bounded). Reads go through
//! the plan's operators (`read`), writes through the model transaction (`write`), schema
//! changes through the catalog (`ddl`).

mod aggregate;
mod attach;
mod check;
mod ddl;
mod queue;
pub mod read;
pub mod refs;
mod via;
mod write;

use std::sync::Arc;

use kvm_lang::ast::{Ident, Statement};
use kvm_planner::{Catalog, Model, Plan, PlanError};
use kvm_storage::{Engine, KeyRange, Value};

use crate::error::{Error, Result};
use crate::eval::{Env, Ids, Row};
use crate::keyspace::{Key, KeyPrefix};
use crate::model_txn::{pk_part, ModelTxn, Ttl};
use crate::params::Params;
use crate::{catalog_store, Output};

/// Everything a statement runs with.
pub struct Cx<'a> {
    pub mtx: &'a ModelTxn<'a>,
    pub catalog: &'a Catalog,
    pub params: &'a Params,
    pub ids: &'a dyn Ids,
    /// Whether the statement was interrupted; checked per row read.
    pub stop: crate::interrupt::Stop<'a>,
    /// The most an in-memory sort may hold, in bytes ([`crate::Options::sort_budget`]).
    pub sort_budget: usize,
}

impl<'a> Cx<'a> {
    /// A statement's context: its transaction, the catalog of its snapshot, its parameters,
    /// and the database's ids, interrupt and sort budget.
    pub fn new(
        host: &'a dyn Host,
        mtx: &'a ModelTxn<'a>,
        catalog: &'a Catalog,
        params: &'a Params,
    ) -> Cx<'a> {
        Cx {
            mtx,
            catalog,
            params,
            ids: host.ids(),
            stop: host.interrupt().watch(),
            sort_budget: host.sort_budget(),
        }
    }

    /// This context with other parameters (the statement's, and its subqueries' results).
    pub fn with_params<'p>(&'p self, params: &'p Params) -> Cx<'p>
    where
        'a: 'p,
    {
        Cx {
            mtx: self.mtx,
            catalog: self.catalog,
            params,
            ids: self.ids,
            stop: self.stop,
            sort_budget: self.sort_budget,
        }
    }

    pub fn env(&self, row: Option<&'a Row>) -> Env<'a> {
        Env { params: self.params, ids: self.ids, row }
    }

    /// The value of `e`, an operand of a statement that is not planned (queues, `LINK`):
    /// lowered here, as the planner lowers a plan's values, and evaluated with no row.
    pub fn value(&self, e: &kvm_lang::Expr) -> Result<Value> {
        self.env(None).eval(&kvm_planner::Scope::none().lower(e)?)
    }

    pub fn model(&self, name: &str) -> Result<&'a Model> {
        self.catalog
            .models
            .get(name)
            .ok_or_else(|| Error::catalog("kvm.unknown_model", format!("unknown model `{name}`")))
    }

    pub(crate) fn unknown_field(&self, model: &Model, id: &Ident) -> Error {
        let mut e = PlanError::new(
            "kvm.unknown_field",
            format!("model `{}` has no field `{}`", model.name, id.name),
        )
        .at(id.span);
        if let Some(s) = kvm_planner::did_you_mean(&id.name, model.fields.iter().map(|f| &f.name)) {
            e = e.help(format!("did you mean `{s}`?"));
        }
        e.into()
    }
}

/// Plans a data statement against `catalog`.
pub fn plan(catalog: &Catalog, stmt: &Statement) -> Result<Option<Plan>> {
    if !crate::statement::kind_of(stmt).planned {
        return Ok(None);
    }
    Ok(Some(match stmt {
        Statement::Select(s) => kvm_planner::plan_select(catalog, s)?,
        Statement::Insert(s) => kvm_planner::plan_insert(catalog, s)?,
        Statement::Update(s) => kvm_planner::plan_update(catalog, s)?,
        Statement::Delete(s) => kvm_planner::plan_delete(catalog, s)?,
        Statement::Upsert(s) => kvm_planner::plan_upsert(catalog, s)?,
        _ => return Ok(None),
    }))
}

/// How many times an autocommit statement (or a `Database::transaction` closure) is tried
/// before [`Error::Conflict`] is returned.
pub const MAX_ATTEMPTS: usize = 100;

/// After this many conflicts a statement (or transaction) retries holding the database's
/// escalation lock, so writers of this process that keep colliding on one key take turns
/// instead of starving each other (optimistic concurrency alone is not fair).
pub const ESCALATE_AFTER: usize = 4;

/// Sleeps a random, growing time before retry `attempt` (1-based), so that writers that
/// keep colliding on one key spread out instead of retrying in lockstep.
pub fn backoff(attempt: usize) {
    use std::cell::Cell;
    thread_local!(static RNG: Cell<u64> = const { Cell::new(0) });
    if attempt <= 2 {
        std::thread::yield_now();
        return;
    }
    let r = RNG.with(|c| {
        let mut x = c.get();
        if x == 0 {
            let local = 0u8;
            x = (&local as *const u8 as u64) ^ 0x9e37_79b9_7f4a_7c15;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    });
    let cap_micros = (8u64 << attempt.min(8)).min(2000);
    std::thread::sleep(std::time::Duration::from_micros(r % cap_micros + 1));
}

thread_local!(static HOLDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

/// A turn under the escalation lock (none when this thread already holds it, e.g. an
/// autocommit statement run from inside a retrying transaction closure): first this
/// process's, then the storage engine's across processes.
pub struct Turn<'a> {
    /// Declared first: given back before the process lock, so the next writer of this
    /// process does not wait on another process for nothing.
    _across: Option<kvm_storage::WriterTurn<'a>>,
    _guard: Option<std::sync::MutexGuard<'a, ()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self._guard.is_some() {
            HOLDING.with(|h| h.set(false));
        }
    }
}

/// Before a write's first attempt: while another writer of this process, or of another
/// process, is retrying under its turn (the key is contended), wait for it instead of
/// racing it — so the retrying writer cannot be starved by a stream of fresh attempts.
/// Waiting is all: the turn is taken only by a writer that keeps conflicting
/// ([`ESCALATE_AFTER`]), never held by one that merely arrived (a long read-only
/// transaction holding it would stop every writer of every process).
pub fn queue_if_contended(host: &dyn Host) -> Result<()> {
    if HOLDING.with(|h| h.get()) {
        return Ok(());
    }
    drop(host.escalation().lock().unwrap_or_else(|p| p.into_inner()));
    host.engine().await_writer_turn()?;
    Ok(())
}

/// The pause before retry `attempt`: a writer holding the turn retries at once (sleeping
/// would hand its turn's time to writers that race it); others back off.
pub fn retry_pause(attempt: usize, holding_turn: bool) {
    if holding_turn {
        std::thread::yield_now();
    } else {
        backoff(attempt);
    }
}

/// Takes the escalation lock for the rest of a retry loop: this process's, then the
/// engine's writer turn, so writers of several processes that keep colliding on one key
/// take turns too (a counter incremented by four processes must never fail).
pub fn escalate(host: &dyn Host) -> Result<Turn<'_>> {
    if HOLDING.with(|h| h.get()) {
        return Ok(Turn { _across: None, _guard: None });
    }
    let guard = host.escalation().lock().unwrap_or_else(|p| p.into_inner());
    HOLDING.with(|h| h.set(true));
    let mut turn = Turn { _across: None, _guard: Some(guard) };
    turn._across = host.engine().writer_turn()?;
    Ok(turn)
}

/// The shared state a statement needs from the database.
pub trait Host {
    fn engine(&self) -> &dyn Engine;
    fn ids(&self) -> &dyn Ids;
    /// The catalog as of the snapshot of `txn` (reloaded when its version moved); `txn`
    /// then checks at commit that the catalog did not change.
    fn catalog(&self, mtx: &ModelTxn) -> Result<Arc<Catalog>>;
    /// The lock writers take after [`ESCALATE_AFTER`] conflicts.
    fn escalation(&self) -> &std::sync::Mutex<()>;
    /// The database's interrupt handle.
    fn interrupt(&self) -> &crate::Interrupt;
    /// The most an in-memory sort may hold, in bytes.
    fn sort_budget(&self) -> usize;
}

/// Runs one statement in autocommit mode. `prepared` is a plan made earlier against
/// `prepared_for`; it is used when the catalog is still that one. A conflict at commit
/// runs the whole statement again on a fresh snapshot, at most [`MAX_ATTEMPTS`] times.
pub fn run(
    host: &dyn Host,
    stmt: &Statement,
    params: &Params,
    prepared: Option<(&Arc<Catalog>, &Plan)>,
) -> Result<Output> {
    let mut attempt = 0;
    let writes = crate::statement::kind_of(stmt).writes;
    if let Statement::Check(_) = stmt {
        // The storage's own structures first, walked safely, before any tree is read
        // through LMDB (which trusts its pages): damage is `storage.corrupt`, not a crash.
        host.engine().check_pages()?;
    }
    if writes {
        queue_if_contended(host)?;
        if let Some(out) = run_direct(host, stmt, params, prepared)? {
            return Ok(out);
        }
    }
    // A schema change first finishes the removals earlier drops left (cut short by a
    // crash, or another process's): a model or index of a removed name must not be
    // created while the old one's keys are still there.
    let schema = matches!(
        stmt,
        Statement::DefineModel(_) | Statement::AlterModel(_) | Statement::DropModel(_)
    );
    let mut _turn = None;
    // Whether the statement may patch records (a counter increment applied at commit): not
    // again after a patch was refused — the statement then runs as a read-modify-write,
    // which reports why, as it would have.
    let mut patches = true;
    loop {
        attempt += 1;
        if _turn.is_none() && attempt >= ESCALATE_AFTER {
            _turn = Some(escalate(host)?);
        }
        if schema {
            finish_removals(host)?;
        }
        let (out, backfill, batch) = {
            let first = prepared
                .map(|(catalog, plan)| read::first_record_keys(catalog, plan, params))
                .unwrap_or_default();
            let mtx = ModelTxn::new_reading(host.engine(), &first)?;
            mtx.allow_patches(patches);
            let (out, backfill) = run_in(host, &mtx, stmt, params, prepared)?;
            (out, backfill, mtx.txn().is_dirty().then(|| mtx.into_batch()))
        };
        // The statement's snapshot is closed before it commits (and before a backfill
        // starts): LMDB can grow its map, and reuse freed pages, only when no transaction
        // of this process still reads an old state.
        if let Some(batch) = batch {
            within_limits(host.engine(), &batch)?;
            match host.engine().commit(&batch) {
                Ok(_) => {}
                Err(kvm_storage::Error::PatchRefused { .. }) if patches => {
                    patches = false;
                    continue;
                }
                Err(e) if e.is_retryable() => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(Error::Conflict { attempts: attempt });
                    }
                    retry_pause(attempt, _turn.is_some());
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if schema {
            finish_removals(host)?;
        }
        for (model, indexes) in backfill {
            backfill_indexes(host, &model, &indexes)?;
        }
        return Ok(out);
    }
}

/// Records from which an `INSERT` is written directly (see [`run_direct`]): below it, a
/// statement's batch is better off sharing a group commit with others.
pub const DIRECT_MIN_RECORDS: usize = 64;

/// Runs an autocommit `INSERT` of at least [`DIRECT_MIN_RECORDS`] records straight into the
/// storage's write transaction (`Engine::write_direct`): its keys are checked absent where
/// nothing can change underneath, and written as the statement goes — no write buffer, no
/// copy into a batch, no second read at commit. The writer is held for the statement's run
/// (as SQLite holds its lock). `None` when the statement or the backend does not take this
/// path, or the statement needed a read the direct mode does not do (a range read): it then
/// runs the ordinary way, and nothing of the direct attempt is kept.
fn run_direct(
    host: &dyn Host,
    stmt: &Statement,
    params: &Params,
    prepared: Option<(&Arc<Catalog>, &Plan)>,
) -> Result<Option<Output>> {
    let Statement::Insert(ins) = stmt else { return Ok(None) };
    let kvm_lang::ast::InsertSource::Batch(records) = &ins.source else { return Ok(None) };
    if records.len() < DIRECT_MIN_RECORDS {
        return Ok(None);
    }
    // What the records take (for the storage to grow ahead): the parameters' sizes (where
    // bulk records come from) and a guess per record, times three for keys and index
    // entries.
    let bytes = params
        .positional
        .iter()
        .chain(params.named.values())
        .map(approx_size)
        .sum::<usize>()
        .saturating_add(records.len() * 64)
        .saturating_mul(3);
    let run = &mut |mtx: &ModelTxn| run_in(host, mtx, stmt, params, prepared);
    let Some((out, backfill)) = in_direct_write(host, bytes, run)? else { return Ok(None) };
    for (model, indexes) in backfill {
        backfill_indexes(host, &model, &indexes)?;
    }
    Ok(Some(out))
}

/// Runs `run` on a model transaction over one direct write (`Engine::write_direct`) and
/// commits what it wrote; `run` is called again from the start when the write must run
/// again (the map had to grow). `None` when the backend has no direct path, or a statement
/// needed what the direct mode does not do (a range read, a patch): the caller then takes
/// the ordinary road, and nothing of the direct attempt is kept. An error of `run` (a
/// refused record) or of the store discards everything.
fn in_direct_write<T>(
    host: &dyn Host,
    bytes: usize,
    run: &mut dyn FnMut(&ModelTxn) -> Result<T>,
) -> Result<Option<T>> {
    // The catalog read first, on a snapshot: loading it is a range read, which the direct
    // mode does not do (the direct statement then finds it cached at its version).
    host.catalog(&ModelTxn::new(host.engine())?)?;
    let mut done: Option<Result<T>> = None;
    let mut fallback = false;
    let committed = host.engine().write_direct(bytes, &mut |view| {
        done = None;
        let mtx = ModelTxn::direct(view);
        let result = run(&mtx);
        let (failed, unsupported) = mtx.txn().direct_outcome();
        if unsupported {
            fallback = true;
            return Err(kvm_storage::Error::Aborted);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let stop = result.is_err();
        done = Some(result);
        if stop {
            Err(kvm_storage::Error::Aborted)
        } else {
            Ok(())
        }
    });
    match committed {
        Ok(None) => Ok(None),
        Err(kvm_storage::Error::Aborted) if fallback => Ok(None),
        Ok(Some(_)) | Err(kvm_storage::Error::Aborted) => match done {
            Some(result) => result.map(Some),
            None => Err(kvm_storage::Error::Aborted.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Inserts `records` into `model` — pulled `chunk` at a time into `INSERT` statements
/// ([`crate::builder::insert_records`]) — in one direct write: all of them or none, none of them held in a write
/// buffer. Each chunk, once inserted, is kept in `pulled` in its compact stored form
/// (about the size of the records' data) so that the write can run again when the map had
/// to grow; when the backend has no direct path, or a statement needed the ordinary road,
/// the answer is `None` and the records already pulled are in `pulled`, in order (see
/// [`decode_chunk`]), for the caller to insert the ordinary way.
pub fn run_direct_chunks(
    host: &dyn Host,
    model: &str,
    records: &mut dyn Iterator<Item = Value>,
    chunk: usize,
    pulled: &mut Vec<Vec<u8>>,
) -> Result<Option<usize>> {
    let first: Vec<Value> = (&mut *records).take(chunk).collect();
    if first.is_empty() {
        return Ok(Some(0));
    }
    // What the records take, from the first chunk and the iterator's own estimate.
    let per_record = first.iter().map(approx_size).sum::<usize>() / first.len() + 64;
    let expected = records.size_hint().0.saturating_add(first.len());
    let bytes = per_record.saturating_mul(expected).saturating_mul(3);
    let mut first = Some(first);
    let inserted = in_direct_write(host, bytes, &mut |mtx| {
        let mut inserted = 0;
        for k in 0.. {
            let positional = match pulled.get(k) {
                Some(kept) => decode_chunk(kept)?,
                None => match first.take() {
                    Some(f) => f,
                    None => (&mut *records).take(chunk).collect(),
                },
            };
            if positional.is_empty() {
                break;
            }
            let params = Params { positional, ..Params::default() };
            let n = params.positional.len();
            let insert = crate::builder::insert_records(model, n);
            let result = run_in(host, mtx, &insert, &params, None);
            if k == pulled.len() {
                pulled.push(Value::Array(params.positional).encode());
            }
            result?;
            if mtx.txn().direct_stopped() {
                // A write refused (the map full): no more chunks pulled before the rerun.
                return Err(kvm_storage::Error::Aborted.into());
            }
            inserted += n;
        }
        Ok(inserted)
    })?;
    if let Some(f) = first {
        pulled.push(Value::Array(f).encode()); // never reached the write
    }
    Ok(inserted)
}

/// The records of a chunk kept by [`run_direct_chunks`].
pub fn decode_chunk(kept: &[u8]) -> kvm_storage::Result<Vec<Value>> {
    match Value::decode(kept) {
        Ok(Value::Array(records)) => Ok(records),
        _ => Err(kvm_storage::Error::Corrupt("a kept chunk of records is malformed".into())),
    }
}

/// About how many bytes `v` takes stored.
fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Bytes(b) => b.len() + 2,
        Value::Array(a) => a.iter().map(approx_size).sum::<usize>() + 2,
        Value::Object(o) => {
            o.iter().map(|(k, v)| k.len().min(8) + approx_size(v)).sum::<usize>() + 2
        }
        _ => 9,
    }
}

/// Refuses a batch larger than the backend's commit limit (never split: a split statement
/// would not be atomic).
pub fn within_limits(engine: &dyn Engine, batch: &kvm_storage::AtomicBatch) -> Result<()> {
    if let Some(l) = engine.commit_limits() {
        let (ops, bytes) = batch.size();
        if ops > l.max_ops || bytes > l.max_bytes {
            return Err(Error::TooLarge {
                backend: engine.name(),
                ops,
                bytes,
                max_ops: l.max_ops,
                max_bytes: l.max_bytes,
            });
        }
    }
    Ok(())
}

/// Runs one statement inside `mtx` without committing (the caller commits: autocommit or
/// a transaction's `COMMIT`).
pub fn run_in(
    host: &dyn Host,
    mtx: &ModelTxn,
    stmt: &Statement,
    params: &Params,
    prepared: Option<(&Arc<Catalog>, &Plan)>,
) -> Result<(Output, Backfill)> {
    // (Checked at commit: a schema change since the snapshot conflicts.)
    let catalog = host.catalog(mtx)?;
    let cx = Cx::new(host, mtx, &catalog, params);
    let plan_ref = prepared.filter(|(c, _)| Arc::ptr_eq(c, &catalog)).map(|(_, p)| p);
    once(&cx, stmt, plan_ref)
}

/// Runs a query on a fresh snapshot: its output and the versionstamp of the commit it read.
pub fn query_at(
    host: &dyn Host,
    stmt: &Statement,
    params: &Params,
) -> Result<(Output, kvm_storage::Versionstamp)> {
    let mtx = ModelTxn::new(host.engine())?;
    let (out, _) = run_in(host, &mtx, stmt, params, None)?;
    Ok((out, mtx.txn().read_versionstamp()))
}

/// Runs a `SELECT` in `mtx` (a fresh snapshot's, or an open transaction's: its own writes
/// seen), streaming: its column names go to `head` before the first row, then each row to
/// `sink` as it is produced ([`read::emit`]); either returns `false` to stop. Returns the
/// cursor after a full page.
pub fn stream_in(
    host: &dyn Host,
    mtx: &ModelTxn,
    stmt: &Statement,
    params: &Params,
    prepared: Option<(&Arc<Catalog>, &Plan)>,
    head: &mut dyn FnMut(Vec<String>) -> bool,
    sink: &mut read::Sink,
) -> Result<Option<String>> {
    let catalog = host.catalog(mtx)?;
    let cx = Cx::new(host, mtx, &catalog, params);
    let owned;
    let plan = match prepared.filter(|(c, _)| Arc::ptr_eq(c, &catalog)) {
        Some((_, p)) => p,
        None => {
            owned = plan(&catalog, stmt)?.ok_or_else(|| Error::Internal("no plan".into()))?;
            &owned
        }
    };
    let Plan::Select { root } = plan else {
        return Err(Error::Internal("a stream of a statement that is not a SELECT".into()));
    };
    if !head(read::columns(root)) {
        return Ok(None);
    }
    match subqueries(&cx, plan)? {
        None => read::emit(&cx, root, sink),
        Some(params) => read::emit(&cx.with_params(&params), root, sink),
    }
}

/// Runs the plan's uncorrelated subqueries (inner ones first), each once: the statement's
/// parameters with their results bound ([`kvm_planner::ir::subquery_param`]), or `None`
/// when it has none. `IN`'s values are sorted and deduplicated (a binary search per row),
/// and held within the sort budget (`kvm.subquery_too_large` past it).
fn subqueries(cx: &Cx, plan: &Plan) -> Result<Option<Params>> {
    let subs = plan.subqueries();
    if subs.is_empty() {
        return Ok(None);
    }
    let mut params = cx.params.clone();
    for (key, node, exists) in subs {
        let inner = cx.with_params(&params);
        let value = if exists {
            let mut any = false;
            read::emit(&inner, node, &mut |_| {
                any = true;
                Ok(false)
            })?;
            Value::Bool(any)
        } else {
            let mut values: Vec<Value> = Vec::new();
            let mut held = 0usize;
            read::emit(&inner, node, &mut |row| {
                let v = row.into_iter().next().unwrap_or(Value::Null);
                held += read::value_size(&v);
                if held > cx.sort_budget {
                    return Err(Error::Invalid {
                        code: "kvm.subquery_too_large",
                        message: format!(
                            "IN ({key}) would hold more than {} MiB of values",
                            cx.sort_budget >> 20
                        ),
                        span: None,
                        help: Some("narrow the subquery's WHERE, or relate the models and use EXISTS relation (WHERE …)".into()),
                    });
                }
                values.push(v);
                Ok(true)
            })?;
            values.sort_by(crate::values::total_cmp);
            values.dedup_by(|a, b| crate::values::total_cmp(a, b) == std::cmp::Ordering::Equal);
            Value::Array(values)
        };
        if let kvm_lang::ast::Param::Named(name) = kvm_planner::ir::subquery_param(key) {
            params.named.insert(name, value);
        }
    }
    Ok(Some(params))
}

/// What a query depends on: the models its plan reads, and — when it reads records by
/// primary key only (`WHERE id = …` / `IN (…)`, no relation) — the record keys it reads;
/// else, when its plan allows, the filter a changed record of its model must pass to
/// matter ([`crate::watch::RecordFilter`]).
pub struct Dependencies {
    pub models: Vec<String>,
    pub keys: Option<Vec<Vec<u8>>>,
    pub filter: Option<crate::watch::RecordFilter>,
}

/// A query's [`Dependencies`] under the current catalog.
pub fn dependencies(host: &dyn Host, stmt: &Statement, params: &Params) -> Result<Dependencies> {
    let mtx = ModelTxn::new(host.engine())?;
    let catalog = host.catalog(&mtx)?;
    let Some(Plan::Select { root }) = plan(&catalog, stmt)? else {
        return Err(Error::Internal("a watch of a statement that is not a query".into()));
    };
    let cx = Cx::new(host, &mtx, &catalog, params);
    let keys = read::point_keys(&cx, &root)?;
    let filter = match keys {
        Some(_) => None,
        None => crate::watch::RecordFilter::for_plan(&catalog, &root, params),
    };
    Ok(Dependencies { models: root.models(), keys, filter })
}

/// Indexes a schema change added to models with records, to fill after its commit.
pub type Backfill = Vec<(String, Vec<String>)>;

fn once(cx: &Cx, stmt: &Statement, prepared: Option<&Plan>) -> Result<(Output, Backfill)> {
    let out = match stmt {
        Statement::Select(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Upsert(_) => {
            let owned;
            let plan = match prepared {
                Some(p) => p,
                None => {
                    owned =
                        plan(cx.catalog, stmt)?.ok_or_else(|| Error::Internal("no plan".into()))?;
                    &owned
                }
            };
            if !matches!(stmt, Statement::Select(_)) {
                cx.mtx.txn().track_reads(true);
            }
            // Uncorrelated subqueries run first; the statement reads their results.
            let bound;
            let with_subqueries;
            let cx = match subqueries(cx, plan)? {
                None => cx,
                Some(params) => {
                    bound = params;
                    with_subqueries = cx.with_params(&bound);
                    &with_subqueries
                }
            };
            let ttl = match stmt {
                Statement::Insert(i) => ttl(cx, &i.expire)?,
                Statement::Update(u) => ttl(cx, &u.expire)?,
                Statement::Upsert(u) => ttl(cx, &u.expire)?,
                _ => Ttl::Keep,
            };
            match plan {
                Plan::Select { root } => Output::Rows(read::table(cx, root)?),
                Plan::Insert { model, records, returning } => {
                    write::insert(cx, model, records, returning, ttl)?
                }
                Plan::Update { model, source, assignments, returning } => {
                    write::update(cx, model, source, assignments, returning, ttl)?
                }
                Plan::Delete { model, source, returning } => {
                    write::delete(cx, model, source, returning)?
                }
                Plan::Upsert { model, on, index, value, update, returning } => {
                    let how =
                        write::UpsertBy { on, index: index.as_deref(), update: update.as_deref() };
                    write::upsert(cx, value, model, &how, returning, ttl)?
                }
            }
        }
        Statement::Explain(e) => match plan(cx.catalog, &e.statement)? {
            Some(p) => Output::Plan(p.to_string()),
            None => {
                Output::Plan(format!("{} (runs directly, no access path)", e.statement.kind_name()))
            }
        },
        Statement::DefineModel(d) => return ddl::define(cx, d),
        Statement::DropModel(d) => ddl::drop(cx, d)?,
        Statement::AlterModel(a) => {
            let (model, backfill) = ddl::alter(cx, a)?;
            return Ok((Output::Message(format!("altered model {}", model.name)), backfill));
        }
        Statement::Relate(r) => {
            cx.mtx.txn().track_reads(true);
            refs::relate(cx, r, true)?
        }
        Statement::Unrelate(r) => {
            cx.mtx.txn().track_reads(true);
            refs::relate(cx, r, false)?
        }
        Statement::Show(kvm_lang::ast::Show { what: kvm_lang::ast::ShowWhat::Queues, .. })
        | Statement::DefineQueue(_)
        | Statement::DropQueue(_)
        | Statement::Enqueue(_)
        | Statement::Dequeue(_)
        | Statement::Ack(_)
        | Statement::Nack(_)
        | Statement::QueueStats(_)
        | Statement::RetryDead(_)
        | Statement::Purge(_) => queue::run(cx, stmt)?,
        Statement::Show(s) => ddl::show(cx.catalog, &s.what)?,
        Statement::Describe(d) => {
            if d.queue {
                return queue::run(cx, stmt).map(|o| (o, Vec::new()));
            }
            Output::Message(cx.catalog.model(&d.name.name, d.name.span)?.to_kql())
        }
        Statement::Check(c) => {
            let models: Vec<&Model> = match &c.model {
                Some(m) => vec![cx.catalog.model(&m.name, m.span)?],
                None => cx.catalog.models.values().collect(),
            };
            Output::Message(check::check(cx, &models)?)
        }
        Statement::Kv(kv) => kv_statement(cx, kv)?,
        other => {
            return Err(Error::unsupported(
                &format!("{} statement", other.kind_name()),
                other.span(),
            ))
        }
    };
    Ok((out, Vec::new()))
}

/// `KV GET/SET/DELETE/LIST`: raw keys of the user area (`['__kv', …]` in storage), apart
/// from every model's records and index entries and from the system's keys, so no raw
/// write can corrupt them. A key is an array of strings, numbers, booleans or bytes.
fn kv_statement(cx: &Cx, kv: &kvm_lang::ast::Kv) -> Result<Output> {
    use kvm_lang::ast::{KvOp, KvRange};
    let key = |e: &kvm_lang::Expr| -> Result<Vec<kvm_storage::tuple::KeyPart>> {
        let bad = |got: String| Error::Invalid {
            code: "kvm.invalid_key",
            message: format!(
                "a KV key is an array of strings, numbers, booleans or bytes, got {got}"
            ),
            span: Some(e.span),
            help: Some("write a key as a tuple: ['config', 'theme']".into()),
        };
        match cx.value(e)? {
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|v| crate::keyspace::user_part(v).ok_or_else(|| bad(crate::values::kql(v))))
                .collect(),
            other => Err(bad(crate::values::kql(&other))),
        }
    };
    let rows = |found: Vec<(Vec<Value>, Value)>| {
        let mut out = crate::Rows::new(vec!["key".into(), "value".into()]);
        out.rows = found.into_iter().map(|(k, v)| vec![Value::Array(k), v]).collect();
        Output::Rows(out)
    };
    Ok(match &kv.op {
        KvOp::Get(k) => {
            let parts = key(k)?;
            let shown = parts.iter().map(crate::keyspace::part_value).collect();
            rows(cx.mtx.kv_get(parts)?.map(|v| (shown, v)).into_iter().collect())
        }
        KvOp::Set { key: k, value, expire } => {
            let parts = key(k)?;
            let v = cx.value(value)?;
            let expire_at = match ttl(cx, expire)? {
                Ttl::At(at) => Some(at),
                Ttl::Keep | Ttl::Clear => None,
            };
            cx.mtx.kv_set(parts, &v, expire_at)?;
            Output::Affected { verb: "set", count: 1 }
        }
        KvOp::Delete(k) => {
            let found = cx.mtx.kv_delete(key(k)?)?;
            Output::Affected { verb: "deleted", count: u64::from(found) }
        }
        KvOp::List { range, reverse, limit } => {
            let limit = match limit {
                Some(l) => match cx.value(l)? {
                    Value::Int(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                    other => {
                        return Err(Error::Invalid {
                            code: "kvm.invalid_limit",
                            message: format!(
                                "LIMIT takes a non-negative integer, got {}",
                                crate::values::kql(&other)
                            ),
                            span: Some(l.span),
                            help: None,
                        })
                    }
                },
                None => usize::MAX,
            };
            let (prefix, start, end) = match range {
                KvRange::All => (None, None, None),
                KvRange::Prefix(p) => (Some(key(p)?), None, None),
                KvRange::Range { start, end } => {
                    (None, Some(key(start)?), end.as_ref().map(key).transpose()?)
                }
            };
            rows(cx.mtx.kv_list(prefix, start, end, *reverse, limit)?)
        }
    })
}

/// The time to live an `EXPIRE IN` clause asks for: none keeps a record's expiry (a new
/// record has none), a duration expires it that long after the statement's clock time, a
/// parameter bound to a duration string does the same and one bound to `NULL` clears it.
pub fn ttl(cx: &Cx, expire: &Option<kvm_lang::ast::Expire>) -> Result<Ttl> {
    use kvm_lang::ast::Expire;
    let now = cx.mtx.txn().now_millis();
    let bad = |message: String, span| Error::Invalid {
        code: "kvm.invalid_duration",
        message,
        span: Some(span),
        help: Some("delete the record with DELETE, or clear an expiry with EXPIRE NEVER".into()),
    };
    Ok(match expire {
        None => Ttl::Keep,
        Some(Expire::Never) => Ttl::Clear,
        Some(Expire::In(d)) => match duration_ms(cx.params, d, "EXPIRE IN", true)? {
            None => Ttl::Clear,
            Some(0) => {
                return Err(bad(
                    "EXPIRE IN a zero duration would expire the record at once".into(),
                    d.span,
                ))
            }
            Some(ms) => Ttl::At(now.saturating_add(ms)),
        },
        Some(Expire::At(e)) => {
            let v = cx.value(e)?;
            let micros = match &v {
                Value::Null => return Ok(Ttl::Clear),
                Value::Timestamp(t) => *t,
                Value::String(s) => crate::values::parse_timestamp(s).ok_or_else(|| {
                    bad(format!("EXPIRE AT needs a timestamp, got '{s}'"), e.span)
                })?,
                other => {
                    let shown = crate::values::kql(other);
                    return Err(bad(format!("EXPIRE AT needs a timestamp, got {shown}"), e.span));
                }
            };
            let at = u64::try_from(micros.div_euclid(1000)).unwrap_or(0);
            if at <= now {
                let shown = crate::values::format_timestamp(micros);
                return Err(bad(format!("EXPIRE AT {shown} is not in the future"), e.span));
            }
            Ttl::At(at)
        }
    })
}

/// A duration clause's milliseconds: a literal, or a parameter bound to a duration string
/// (`'30s'`, `'1h30m'`); a parameter bound to `NULL` gives `None` where `null_ok`.
pub fn duration_ms(
    params: &Params,
    d: &kvm_lang::ast::DurationValue,
    clause: &str,
    null_ok: bool,
) -> Result<Option<u64>> {
    use kvm_lang::ast::DurationKind;
    let p = match &d.kind {
        DurationKind::Millis(ms) => return Ok(Some(*ms)),
        DurationKind::Param(p) => p,
    };
    let help = if null_ok {
        "bind a string such as '30s', '5m', '1h30m', or NULL to clear"
    } else {
        "bind a string such as '500ms', '30s', '5m' or '1h30m'"
    };
    let bad = |message: String| Error::Invalid {
        code: "kvm.invalid_duration",
        message,
        span: Some(d.span),
        help: Some(help.into()),
    };
    match params.get(p)? {
        Value::Null if null_ok => Ok(None),
        Value::String(text) => kvm_lang::parse_duration(text)
            .map(Some)
            .map_err(|why| bad(format!("{clause} {p}: invalid duration '{text}': {why}"))),
        other => Err(bad(format!(
            "{clause} {p}: expected a duration string, got {}",
            crate::values::kql(other)
        ))),
    }
}

/// Records per backfill commit: a few milliseconds of work, so writers are not held up
/// long, and few enough commits (each a sync) that a million records take a few seconds
/// (256 took 31 s for a million on this machine, most of it in syncs).
pub const BACKFILL_BATCH: usize = 2048;

/// Continues the backfill of every index left building (a process killed or stopped during
/// its backfill), from where it stopped. An index whose records turn out to break its
/// UNIQUE is dropped, as the interrupted `ALTER` would have done.
pub fn resume_backfills(host: &dyn Host) -> Result<()> {
    for (model, building) in building_indexes(host)? {
        match backfill_indexes(host, &model, &building) {
            Ok(()) | Err(Error::UniqueViolation { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every model with indexes still building, and their names.
pub fn building_indexes(host: &dyn Host) -> Result<Vec<(String, Vec<String>)>> {
    let mtx = ModelTxn::new(host.engine())?;
    let catalog = host.catalog(&mtx)?;
    Ok(catalog
        .models
        .values()
        .filter_map(|m| {
            let building: Vec<String> =
                m.indexes.iter().filter(|i| !i.ready).map(|i| i.name.clone()).collect();
            (!building.is_empty()).then(|| (m.name.clone(), building))
        })
        .collect())
}

/// Keys deleted per commit when a dropped model's or index's keys are removed.
pub const REMOVE_BATCH: usize = 4096;

/// Removes the keys of dropped models and indexes ([`ModelTxn::remove_step`]), one batch
/// of [`REMOVE_BATCH`] per commit, until none is pending: other writers go between the
/// batches, and a removal stopped anywhere goes on from where it stopped.
pub fn finish_removals(host: &dyn Host) -> Result<()> {
    while removal_step(host)? {}
    Ok(())
}

/// One committed batch of the first pending removal; `false` when none was pending.
pub fn removal_step(host: &dyn Host) -> Result<bool> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mtx = ModelTxn::new(host.engine())?;
        if !mtx.remove_step(REMOVE_BATCH)? {
            return Ok(false);
        }
        match host.engine().commit(&mtx.into_batch()) {
            Ok(_) => return Ok(true),
            // Another remover (another process) took this batch: go on from what is left.
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => backoff(attempt),
            Err(e) if e.is_retryable() => return Err(Error::Conflict { attempts: attempt }),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether a removal is pending (to resume one when a database is opened).
pub fn removal_pending(host: &dyn Host) -> Result<bool> {
    ModelTxn::new(host.engine())?.removal_pending()
}

/// Whether a backfill has more to do after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    More,
    Done,
}

/// Fills new indexes from existing records, `BACKFILL_BATCH` records per commit, then marks
/// them ready. A unique index that meets a duplicate is dropped again and the duplicate
/// reported.
pub fn backfill_indexes(host: &dyn Host, model_name: &str, indexes: &[String]) -> Result<()> {
    while backfill_step(host, model_name, indexes)? == Step::More {}
    Ok(())
}

/// One batch of a backfill, in its own snapshot and commit: the next `BACKFILL_BATCH`
/// records after the stored progress key get their entries, and the progress key moves
/// past them in the same commit — so a backfill stopped anywhere (a crash, a closed
/// database) resumes where it stopped, and no snapshot lives longer than one batch (LMDB
/// reuses the pages earlier batches freed).
pub fn backfill_step(host: &dyn Host, model_name: &str, indexes: &[String]) -> Result<Step> {
    loop {
        let mtx = ModelTxn::new(host.engine())?;
        let catalog = host.catalog(&mtx)?;
        let Some(model) = catalog.models.get(model_name) else { return Ok(Step::Done) };
        // Only those still building: another process may have finished (or dropped) some.
        let indexes: Vec<String> =
            indexes.iter().filter(|n| model.index(n).is_some_and(|i| !i.ready)).cloned().collect();
        if indexes.is_empty() {
            return Ok(Step::Done);
        }
        // Two backfillers of one model (two processes) conflict on it; one redoes its batch.
        let after = mtx.backfill_progress(model_name)?;
        let resumed = after.is_some();
        mtx.txn().track_reads(true);
        mtx.txn().track_ranges(false);
        let prefix = KeyPrefix::Model(model_name).encode();
        let mut range = KeyRange::prefix(&prefix);
        if let Some(a) = after {
            range.start = std::ops::Bound::Excluded(a);
        }
        let rows: Vec<Row> =
            mtx.scan(model, range, false)?.take(BACKFILL_BATCH).collect::<Result<_>>()?;
        let done = rows.len() < BACKFILL_BATCH;
        let mut last = None;
        let mut failure = None;
        for row in &rows {
            let pk = pk_part(model, row.get(&model.pk().name).unwrap_or(&Value::Null))?;
            last = Some(Key::Record { model: model_name, pk }.encode());
            match mtx.index_record(model, row, &indexes) {
                Ok(()) => {}
                Err(e @ Error::UniqueViolation { .. }) => {
                    failure = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = failure {
            drop(mtx);
            return Err(undo_backfill(host, model_name, &indexes, e));
        }
        if done {
            let mut m = model.clone();
            for ix in &mut m.indexes {
                if indexes.contains(&ix.name) {
                    ix.ready = true;
                }
            }
            catalog_store::save(mtx.txn(), &m)?;
            if resumed {
                mtx.set_backfill_progress(model_name, None);
            }
        } else if last.is_some() {
            mtx.set_backfill_progress(model_name, last);
        }
        let batch = mtx.into_batch();
        match host.engine().commit(&batch) {
            Ok(_) => return Ok(if done { Step::Done } else { Step::More }),
            // Redo this batch from a fresh snapshot (the progress key says where).
            Err(e) if e.is_retryable() => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Drops half-built indexes whose backfill met `e` (a duplicate under a UNIQUE index) —
/// their entries and their definitions — and returns the error to report. Built as an
/// AST, not as text, so names that need backticks survive; an undo that fails is reported,
/// never ignored.
fn undo_backfill(host: &dyn Host, model_name: &str, indexes: &[String], e: Error) -> Error {
    // Another backfiller of the same indexes (the background one resumed on open, another
    // process) may have met the duplicate first and dropped them already.
    let still_there = |host: &dyn Host| -> Result<Vec<String>> {
        let mtx = ModelTxn::new(host.engine())?;
        let catalog = host.catalog(&mtx)?;
        Ok(catalog.models.get(model_name).map_or_else(Vec::new, |m| {
            indexes.iter().filter(|n| m.index(n).is_some()).cloned().collect()
        }))
    };
    let indexes = match still_there(host) {
        Ok(left) if left.is_empty() => return e,
        Ok(left) => left,
        Err(err) => return err,
    };
    let span = kvm_lang::Span::new(0, 0);
    let ident = |name: &str| Ident { name: name.to_string(), span };
    let undo = kvm_lang::ast::AlterModel {
        name: ident(model_name),
        actions: indexes.iter().map(|i| kvm_lang::ast::AlterAction::DropIndex(ident(i))).collect(),
        span,
    };
    match run(host, &Statement::AlterModel(undo), &Params::default(), None) {
        Ok(_) => e,
        // Dropped by the other backfiller between the look and the drop.
        Err(undo_err) if undo_err.code() == "kvm.unknown_index" => e,
        Err(undo_err) => Error::catalog(
            "kvm.backfill_undo",
            format!(
                "{e}; dropping the half-built index(es) {} failed too: {undo_err}",
                indexes.join(", ")
            ),
        ),
    }
}
