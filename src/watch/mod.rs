//! `WATCH`: live query results. A watch first yields the current result (`initial` events,
//! then `ready`), then, for each commit that changes it, `insert` / `update` (the new row and
//! the fields that changed) / `delete` (also by expiry) events, each with the versionstamp of
//! the commit it reflects, in versionstamp order. The query is evaluated again at the latest
//! snapshot when the hub marks the watch dirty, and diffed against what was delivered: rows
//! entering or leaving a filter, an order or a limit come out as inserts and deletes, and
//! rapid changes coalesce into the latest state (never lost: the final state is delivered).
//! Dropping the [`Watch`] unregisters it.

mod hub;
mod route;
pub mod sse;
#[cfg(feature = "async")]
mod stream;

#[cfg(feature = "async")]
pub use stream::WatchStream;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvm_lang::ast::{Ident, Include, Path, Projection, Select, SelectItem, WatchTarget};
use kvm_lang::{Expr, ExprKind, Statement};
use kvm_planner::Catalog;
use kvm_storage::Versionstamp;

pub(crate) use hub::{Hub, Notifying};
pub(crate) use route::RecordFilter;

use crate::error::{Error, Result};
use crate::keyspace::{key_part, Key};
use crate::{Database, Output, Params, Value};

/// What happened to a row of a watched result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchOp {
    /// A row of the result when the watch started.
    Initial,
    /// The initial result is complete (no row).
    Ready,
    /// A row entered the result.
    Insert,
    /// A row of the result changed.
    Update,
    /// A row left the result (deleted, expired, or no longer matching).
    Delete,
}

impl WatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchOp::Initial => "initial",
            WatchOp::Ready => "ready",
            WatchOp::Insert => "insert",
            WatchOp::Update => "update",
            WatchOp::Delete => "delete",
        }
    }
}

/// One change of a watched result.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub op: WatchOp,
    /// The commit the result reflects.
    pub versionstamp: Versionstamp,
    /// The row's primary key (null for `ready`).
    pub key: Value,
    /// The row as it is now (`initial`, `insert`, `update`) or was (`delete`): an object.
    pub row: Option<Value>,
    /// For `update`: the fields whose values changed.
    pub changed: Vec<String>,
    /// For `initial`, `insert`, `update`: the row's position in the result.
    pub position: Option<usize>,
    /// For `delete`: the record expired (its TTL passed) rather than being deleted or
    /// leaving the filter.
    pub expired: bool,
}

impl std::fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.versionstamp)?;
        if self.op == WatchOp::Ready {
            return Ok(());
        }
        write!(f, " {}", crate::display_value(&self.key))?;
        if let Some(r) = &self.row {
            write!(f, " {}", crate::display_value(r))?;
        }
        if !self.changed.is_empty() {
            write!(f, " changed: {}", self.changed.join(", "))?;
        }
        if self.expired {
            f.write_str(" (expired)")?;
        }
        Ok(())
    }
}

/// What a watch evaluates and how it finds each row's key.
enum Target {
    /// A query; the key is column `key` (dropped from rows when `hidden`).
    Query { select: Statement, key_model: String, key: String, hidden: bool },
    /// The related records (`column`) of the parents a query selects; the key is the
    /// related model's primary key field `key`.
    Related { select: Statement, column: String, key_model: String, key: String },
}

const HIDDEN_KEY: &str = "__watch_key";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn path(name: &str) -> Expr {
    Expr::new(ExprKind::Path(Path::single(Ident::new(name))))
}

fn select(
    projection: Projection,
    from: Ident,
    filter: Option<Expr>,
    span: kvm_lang::Span,
) -> Select {
    Select {
        distinct: false,
        projection,
        from,
        filter,
        group_by: Vec::new(),
        having: None,
        order_by: Vec::new(),
        limit: None,
        offset: None,
        after: None,
        include: Vec::new(),
        span,
    }
}

fn target(catalog: &Catalog, stmt: &Statement) -> Result<Target> {
    let (w, span) = match stmt {
        Statement::Watch(w) => (&w.target, w.span),
        Statement::Select(s) => {
            return query_target(catalog, s.clone());
        }
        other => {
            return Err(Error::Param(format!("WATCH needs a query, got {}", other.kind_name())))
        }
    };
    match w {
        WatchTarget::Query(s) => query_target(catalog, (**s).clone()),
        WatchTarget::Model { model, relation: None, filter } => {
            query_target(catalog, select(Projection::All, model.clone(), filter.clone(), span))
        }
        WatchTarget::Model { model, relation: Some(r), filter } => {
            let m = catalog.model(&model.name, model.span)?;
            let rel = catalog.relation(m, &r.name, r.span)?;
            let target = catalog.model(&rel.target, r.span)?;
            let mut s = select(
                Projection::Items(vec![SelectItem { expr: path(&m.pk().name), alias: None }]),
                model.clone(),
                filter.clone(),
                span,
            );
            s.include.push(Include {
                relation: Path::single(r.clone()),
                filter: None,
                order_by: Vec::new(),
                limit: None,
                offset: None,
                include: Vec::new(),
                span: r.span,
            });
            Ok(Target::Related {
                select: Statement::Select(s),
                column: r.name.clone(),
                key_model: target.name.clone(),
                key: target.pk().name.clone(),
            })
        }
    }
}

fn query_target(catalog: &Catalog, mut s: Select) -> Result<Target> {
    let m = catalog.model(&s.from.name, s.from.span)?;
    if let Some(f) = s.filter.as_ref().filter(|f| kvm_planner::aggregate::has_subquery(f)) {
        return Err(kvm_planner::PlanError::unsupported("WATCH of a query with a subquery", f.span)
            .help("a subquery runs once; watch its model separately, or relate the models and use EXISTS relation (WHERE …)")
            .into());
    }
    if kvm_planner::aggregate::is_grouped(m, &s) {
        return Err(kvm_planner::PlanError::unsupported(
            "WATCH of a grouped query (GROUP BY, aggregates, DISTINCT)",
            s.span,
        )
        .help(
            "watch the records (`WATCH SELECT … FROM model WHERE …`) and aggregate as \
             events arrive, or run the query again on each event",
        )
        .into());
    }
    let pk = m.pk().name.clone();
    let key_model = m.name.clone();
    let (key, hidden) = match &mut s.projection {
        Projection::All => (pk, false),
        Projection::Items(items) => {
            let named = items.iter().find(|i| {
                kvm_planner::column_name(&i.expr, i.alias.as_ref().map(|a| a.name.as_str())) == pk
                    && i.expr
                        .as_path()
                        .is_some_and(|p| p.segments.len() == 1 && p.segments[0].name == pk)
            });
            match named {
                Some(_) => (pk, false),
                None => {
                    items.push(SelectItem { expr: path(&pk), alias: Some(Ident::new(HIDDEN_KEY)) });
                    (HIDDEN_KEY.to_string(), true)
                }
            }
        }
    };
    Ok(Target::Query { select: Statement::Select(s), key_model, key, hidden })
}

/// One row of a delivered result: its key (encoded, for lookups), key value and row.
struct Item {
    id: Vec<u8>,
    key: Value,
    row: BTreeMap<String, Value>,
}

/// A live query: an iterator of [`WatchEvent`]s that blocks until the next change.
pub struct Watch {
    db: Database,
    hub: Arc<Hub>,
    id: u64,
    slot: Arc<hub::Slot>,
    target: Target,
    params: Params,
    catalog: Arc<Catalog>,
    last: Vec<Item>,
    pending: VecDeque<WatchEvent>,
    started: bool,
    done: bool,
    interrupt: crate::Interrupt,
    interrupts_at: u64,
}

impl Database {
    /// Watches a query (`WATCH …` or a `SELECT`): the current result, then every change
    /// of it as it commits (see [`crate::watch`]). Blocks in `next()` until a change; the
    /// database's [`crate::Interrupt`] ends a waiting watch with `kvm.interrupted`.
    pub fn watch(&self, kql: &str, params: impl crate::IntoParams) -> Result<Watch> {
        let stmt = kvm_lang::parse_statement(kql)?;
        self.watch_statement(&stmt, params.into_params())
    }

    /// [`Database::watch`] of a parsed statement.
    pub fn watch_statement(&self, stmt: &Statement, params: Params) -> Result<Watch> {
        let catalog = self.catalog()?;
        let target = target(&catalog, stmt)?;
        let select = match &target {
            Target::Query { select, .. } | Target::Related { select, .. } => select,
        };
        let deps = crate::exec::dependencies(self.host(), select, &params)?;
        let hub = self.hub().clone();
        let (id, slot) = hub.register(deps);
        let interrupt = self.interrupt_handle();
        let interrupts_at = interrupt.count();
        Ok(Watch {
            db: self.clone(),
            hub,
            id,
            slot,
            target,
            params,
            catalog,
            last: Vec::new(),
            pending: VecDeque::new(),
            started: false,
            done: false,
            interrupt,
            interrupts_at,
        })
    }
}

impl Watch {
    /// Evaluates the query now: the result's items and the versionstamp read.
    fn evaluate(&mut self) -> Result<(Vec<Item>, Versionstamp)> {
        let catalog = self.db.catalog()?;
        let select = match &self.target {
            Target::Query { select, .. } | Target::Related { select, .. } => select,
        };
        if !Arc::ptr_eq(&catalog, &self.catalog) {
            // A schema change: the plan (and what it depends on) may differ.
            let deps = crate::exec::dependencies(self.db.host(), select, &self.params)?;
            self.hub.update(self.id, deps);
            self.catalog = catalog;
        }
        // While evaluating, the hub wakes this watch for any change of its models: the rows
        // it delivered are about to change (see `route`).
        lock(&self.slot.delivered).evaluating = true;
        let evaluated = crate::exec::query_at(self.db.host(), select, &self.params);
        let items = evaluated.and_then(|(out, vs)| Ok((self.items(out)?, vs)));
        let mut delivered = lock(&self.slot.delivered);
        delivered.evaluating = false;
        if let (Ok((items, _)), Target::Query { key_model, .. }) = (&items, &self.target) {
            delivered.keys = items
                .iter()
                .filter_map(|i| key_part(&i.key))
                .map(|(pk, _)| Key::Record { model: key_model, pk }.encode())
                .collect();
        }
        items
    }

    /// The items of an evaluated result.
    fn items(&self, out: Output) -> Result<Vec<Item>> {
        let Output::Rows(rows) = out else {
            return Err(Error::Internal("a watched query returned no rows".into()));
        };
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        match &self.target {
            Target::Query { key, hidden, .. } => {
                let at = rows.columns.iter().position(|c| c == key);
                for r in rows.rows {
                    let mut row: BTreeMap<String, Value> =
                        rows.columns.iter().cloned().zip(r).collect();
                    let k = match at {
                        Some(_) if *hidden => row.remove(key).unwrap_or(Value::Null),
                        Some(_) => row.get(key).cloned().unwrap_or(Value::Null),
                        None => Value::Null,
                    };
                    let id = k.encode();
                    if seen.insert(id.clone()) {
                        items.push(Item { id, key: k, row });
                    }
                }
            }
            Target::Related { column, key, .. } => {
                let at = rows.columns.iter().position(|c| c == column);
                for r in rows.rows {
                    let related = at.and_then(|i| r.into_iter().nth(i)).unwrap_or(Value::Null);
                    let list = match related {
                        Value::Array(items) => items,
                        Value::Null => Vec::new(),
                        other => vec![other],
                    };
                    for v in list {
                        let Value::Object(row) = v else { continue };
                        let k = row.get(key).cloned().unwrap_or(Value::Null);
                        let id = k.encode();
                        if seen.insert(id.clone()) {
                            items.push(Item { id, key: k, row });
                        }
                    }
                }
            }
        }
        Ok(items)
    }

    fn key_model(&self) -> &str {
        match &self.target {
            Target::Query { key_model, .. } | Target::Related { key_model, .. } => key_model,
        }
    }

    /// Queues the events that turn the delivered result into `new`.
    fn diff(&mut self, new: Vec<Item>, vs: Versionstamp, expired: &HashSet<Vec<u8>>) {
        let old: HashMap<&[u8], &Item> = self.last.iter().map(|i| (i.id.as_slice(), i)).collect();
        let new_ids: HashSet<&[u8]> = new.iter().map(|i| i.id.as_slice()).collect();
        let event = |op, key: &Value, row: Option<Value>| WatchEvent {
            op,
            versionstamp: vs,
            key: key.clone(),
            row,
            changed: Vec::new(),
            position: None,
            expired: false,
        };
        let mut out = Vec::new();
        for gone in self.last.iter().filter(|i| !new_ids.contains(i.id.as_slice())) {
            let mut e = event(WatchOp::Delete, &gone.key, Some(Value::Object(gone.row.clone())));
            e.expired = key_part(&gone.key).is_some_and(|(p, _)| {
                expired.contains(&Key::Record { model: self.key_model(), pk: p }.encode())
            });
            out.push(e);
        }
        for (pos, item) in new.iter().enumerate() {
            match old.get(item.id.as_slice()) {
                None => {
                    let mut e =
                        event(WatchOp::Insert, &item.key, Some(Value::Object(item.row.clone())));
                    e.position = Some(pos);
                    out.push(e);
                }
                Some(before) if before.row != item.row => {
                    let mut changed: Vec<String> = item
                        .row
                        .iter()
                        .filter(|(k, v)| before.row.get(*k) != Some(*v))
                        .map(|(k, _)| k.clone())
                        .collect();
                    changed
                        .extend(before.row.keys().filter(|k| !item.row.contains_key(*k)).cloned());
                    changed.sort();
                    let mut e =
                        event(WatchOp::Update, &item.key, Some(Value::Object(item.row.clone())));
                    e.changed = changed;
                    e.position = Some(pos);
                    out.push(e);
                }
                Some(_) => {}
            }
        }
        self.pending.extend(out);
        self.last = new;
    }

    /// The next event, waiting at most `timeout` for one (`None` on timeout).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<WatchEvent>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            if !self.started {
                self.started = true;
                match self.evaluate() {
                    Ok((items, vs)) => {
                        for (pos, i) in items.iter().enumerate() {
                            self.pending.push_back(WatchEvent {
                                op: WatchOp::Initial,
                                versionstamp: vs,
                                key: i.key.clone(),
                                row: Some(Value::Object(i.row.clone())),
                                changed: Vec::new(),
                                position: Some(pos),
                                expired: false,
                            });
                        }
                        self.pending.push_back(WatchEvent {
                            op: WatchOp::Ready,
                            versionstamp: vs,
                            key: Value::Null,
                            row: None,
                            changed: Vec::new(),
                            position: None,
                            expired: false,
                        });
                        self.last = items;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            let expired = {
                let mut mark = self.slot.mark.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if mark.dirty || mark.closed {
                        break;
                    }
                    if self.interrupt.count() != self.interrupts_at {
                        self.done = true;
                        return Some(Err(Error::Interrupted));
                    }
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    let wait = (deadline - now).min(Duration::from_millis(100));
                    mark = self
                        .slot
                        .cv
                        .wait_timeout(mark, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                if mark.closed {
                    self.done = true;
                    return Some(Err(Error::Corrupt(
                        "the watch could not start its change feed reader".into(),
                    )));
                }
                mark.dirty = false;
                std::mem::take(&mut mark.expired)
            };
            match self.evaluate() {
                Ok((items, vs)) => self.diff(items, vs, &expired),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for Watch {
    type Item = Result<WatchEvent>;

    /// Blocks until the next event (or until the database's interrupt).
    fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                None if !self.done => continue,
                other => return other,
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

/// A started watch inside an [`Output`] (what `WATCH` returns from `execute`): take it
/// once to read its events.
#[derive(Clone)]
pub struct WatchCell(pub Arc<Mutex<Option<Watch>>>);

impl WatchCell {
    /// The watch, the first time.
    pub fn take(&self) -> Option<Watch> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl std::fmt::Debug for WatchCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchCell")
    }
}

impl PartialEq for WatchCell {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
