//! The executor: runs one statement against one snapshot and one write buffer, then commits
//! it as one batch, retrying the whole statement on a conflict (bounded). Reads go through
//! the plan's operators (`read`), writes through the model transaction (`write`), schema
//! changes through the catalog (`ddl`).

mod check;
mod ddl;
pub mod read;
mod write;

use std::sync::Arc;

use kvm_lang::ast::{Ident, Statement};
use kvm_planner::{Catalog, Model, Plan, PlanError};
use kvm_storage::{Engine, KeyRange, Value};

use crate::error::{Error, Result};
use crate::eval::{Env, Ids, Row};
use crate::keyspace::{Key, KeyPrefix};
use crate::model_txn::{entry_key, pk_part, ModelTxn};
use crate::params::Params;
use crate::{catalog_store, Output};

/// Everything a statement runs with.
pub struct Cx<'a> {
    pub mtx: &'a ModelTxn<'a>,
    pub catalog: &'a Catalog,
    pub params: &'a Params,
    pub ids: &'a dyn Ids,
}

impl<'a> Cx<'a> {
    pub fn env(&self, row: Option<&'a Row>) -> Env<'a> {
        Env { params: self.params, ids: self.ids, row }
    }

    pub fn model(&self, name: &str) -> Result<&'a Model> {
        self.catalog
            .models
            .get(name)
            .ok_or_else(|| Error::catalog("kvm.unknown_model", format!("unknown model `{name}`")))
    }

    fn unknown_field(&self, model: &Model, id: &Ident) -> Error {
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
    Ok(Some(match stmt {
        Statement::Select(s) => kvm_planner::plan_select(catalog, s)?,
        Statement::Insert(s) => kvm_planner::plan_insert(catalog, s)?,
        Statement::Update(s) => kvm_planner::plan_update(catalog, s)?,
        Statement::Delete(s) => kvm_planner::plan_delete(catalog, s)?,
        _ => return Ok(None),
    }))
}

/// How many times an autocommit statement is tried before a conflict is returned.
pub const MAX_ATTEMPTS: usize = 16;

/// The shared state a statement needs from the database.
pub trait Host {
    fn engine(&self) -> &dyn Engine;
    fn ids(&self) -> &dyn Ids;
    /// The catalog as of the snapshot of `txn` (reloaded when its version moved).
    fn catalog(&self, mtx: &ModelTxn) -> Result<Arc<Catalog>>;
}

/// Runs one statement in autocommit mode. `prepared` is a plan made earlier against
/// `prepared_for`; it is used when the catalog is still that one.
pub fn run(
    host: &dyn Host,
    stmt: &Statement,
    params: &Params,
    prepared: Option<(&Arc<Catalog>, &Plan)>,
) -> Result<Output> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mtx = ModelTxn::new(host.engine())?;
        let catalog = host.catalog(&mtx)?;
        mtx.txn.check_unchanged(&Key::CatalogVersion.encode())?;
        let cx = Cx { mtx: &mtx, catalog: &catalog, params, ids: host.ids() };
        let plan_ref = prepared.filter(|(c, _)| Arc::ptr_eq(c, &catalog)).map(|(_, p)| p);
        let (out, backfill) = once(&cx, stmt, plan_ref)?;
        if mtx.txn.is_dirty() {
            match host.engine().commit(&mtx.txn.batch()) {
                Ok(_) => {}
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    std::thread::yield_now();
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some((model, indexes)) = backfill {
            backfill_indexes(host, &model, &indexes)?;
        }
        return Ok(out);
    }
}

type Backfill = Option<(String, Vec<String>)>;

fn once(cx: &Cx, stmt: &Statement, prepared: Option<&Plan>) -> Result<(Output, Backfill)> {
    let out = match stmt {
        Statement::Select(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_) => {
            let owned;
            let plan = match prepared {
                Some(p) => p,
                None => {
                    owned =
                        plan(cx.catalog, stmt)?.ok_or_else(|| Error::Corrupt("no plan".into()))?;
                    &owned
                }
            };
            if !matches!(stmt, Statement::Select(_)) {
                cx.mtx.txn.track_reads(true);
            }
            let expire_at = match stmt {
                Statement::Insert(i) => match &i.expire {
                    None => None,
                    Some(d) => match &d.kind {
                        kvm_lang::ast::DurationKind::Millis(ms) => {
                            Some(cx.mtx.txn.now_millis().saturating_add(*ms))
                        }
                        kvm_lang::ast::DurationKind::Param(_) => {
                            return Err(Error::unsupported("EXPIRE IN with a parameter", d.span))
                        }
                    },
                },
                Statement::Update(u) => match &u.expire {
                    Some(d) => return Err(Error::unsupported("UPDATE … EXPIRE IN", d.span)),
                    None => None,
                },
                _ => None,
            };
            match plan {
                Plan::Select { root } => Output::Rows(read::table(cx, root)?),
                Plan::Insert { model, records, returning } => {
                    write::insert(cx, model, records, returning, expire_at)?
                }
                Plan::Update { model, source, assignments, returning } => {
                    write::update(cx, model, source, assignments, returning)?
                }
                Plan::Delete { model, source, returning } => {
                    write::delete(cx, model, source, returning)?
                }
            }
        }
        Statement::Explain(e) => match plan(cx.catalog, &e.statement)? {
            Some(p) => Output::Plan(p.to_string()),
            None => {
                Output::Plan(format!("{} (runs directly, no access path)", e.statement.kind_name()))
            }
        },
        Statement::DefineModel(d) => ddl::define(cx, d)?,
        Statement::DropModel(d) => ddl::drop(cx, d)?,
        Statement::AlterModel(a) => {
            let (model, new_indexes) = ddl::alter(cx, a)?;
            let msg = Output::Message(format!("altered model {}", model.name));
            let backfill = (!new_indexes.is_empty()).then(|| (model.name.clone(), new_indexes));
            return Ok((msg, backfill));
        }
        Statement::Show(s) => ddl::show(cx.catalog, &s.what)?,
        Statement::Describe(d) => {
            if d.queue {
                return Err(Error::unsupported("DESCRIBE QUEUE", d.span));
            }
            Output::Message(cx.catalog.model(&d.name.name, d.name.span)?.to_kql())
        }
        Statement::Check(c) => {
            let models: Vec<&Model> = match &c.model {
                Some(m) => vec![cx.catalog.model(&m.name, m.span)?],
                None => cx.catalog.models.values().collect(),
            };
            let mut problems = Vec::new();
            for m in &models {
                problems.extend(check::check_model(cx, m)?);
            }
            if problems.is_empty() {
                Output::Message(format!(
                    "ok: {} model(s), every index entry matches its record",
                    models.len()
                ))
            } else {
                Output::Message(format!("{} problem(s):\n{}", problems.len(), problems.join("\n")))
            }
        }
        other => {
            return Err(Error::unsupported(
                &format!("{} statement", other.kind_name()),
                other.span(),
            ))
        }
    };
    Ok((out, None))
}

/// Records per backfill commit.
pub const BACKFILL_BATCH: usize = 256;

/// Fills new indexes from existing records, `BACKFILL_BATCH` records per commit, then marks
/// them ready. A unique index that meets a duplicate is dropped again and the duplicate
/// reported.
fn backfill_indexes(host: &dyn Host, model_name: &str, indexes: &[String]) -> Result<()> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mtx = ModelTxn::new(host.engine())?;
        let catalog = host.catalog(&mtx)?;
        let Some(model) = catalog.models.get(model_name) else { return Ok(()) };
        mtx.txn.check_unchanged(&Key::CatalogVersion.encode())?;
        mtx.txn.track_reads(true);
        let prefix = KeyPrefix::Model(model_name).encode();
        let mut range = KeyRange::prefix(&prefix);
        if let Some(a) = &after {
            range.start = std::ops::Bound::Excluded(a.clone());
        }
        let rows: Vec<Row> =
            mtx.scan(model, range, false)?.take(BACKFILL_BATCH).collect::<Result<_>>()?;
        let done = rows.len() < BACKFILL_BATCH;
        let mut failure = None;
        for row in &rows {
            let pk = pk_part(model, row.get(&model.pk().name).unwrap_or(&Value::Null))?;
            after = Some(Key::Record { model: model_name, pk: pk.clone() }.encode());
            for ix in model.indexes.iter().filter(|i| indexes.contains(&i.name)) {
                if let Some(k) = entry_key(model, ix, row, &pk) {
                    if ix.unique {
                        if let Some(held) = mtx.txn.get(&k)? {
                            let holder = Value::decode(&held)
                                .ok()
                                .and_then(|v| crate::keyspace::key_part(&v))
                                .map(|(p, _)| p);
                            if holder.as_ref() != Some(&pk) {
                                let vals: Vec<String> = ix
                                    .fields
                                    .iter()
                                    .map(|f| row.get(f).map(|v| v.to_string()).unwrap_or_default())
                                    .collect();
                                failure = Some(Error::UniqueViolation {
                                    model: model.name.clone(),
                                    index: ix.name.clone(),
                                    value: vals.join(", "),
                                });
                                break;
                            }
                        }
                        mtx.txn.set(k, crate::keyspace::part_value(&pk).encode(), None);
                    } else {
                        mtx.txn.set(k, Value::Null.encode(), None);
                    }
                }
            }
            if failure.is_some() {
                break;
            }
        }
        if let Some(e) = failure {
            // Undo: drop the half-built indexes (their entries and their definitions).
            let alter = format!(
                "ALTER MODEL {model_name} {}",
                indexes.iter().map(|i| format!("DROP INDEX {i}")).collect::<Vec<_>>().join(", ")
            );
            if let Ok(Statement::AlterModel(a)) = kvm_lang::parse_statement(&alter) {
                run(host, &Statement::AlterModel(a), &Params::default(), None)?;
            }
            return Err(e);
        }
        let mut finished = None;
        if done {
            let mut m = model.clone();
            for ix in &mut m.indexes {
                if indexes.contains(&ix.name) {
                    ix.ready = true;
                }
            }
            catalog_store::save(&mtx.txn, &m)?;
            finished = Some(());
        }
        match host.engine().commit(&mtx.txn.batch()) {
            Ok(_) => {}
            Err(e) if e.is_retryable() => {
                // Redo this batch from a fresh snapshot.
                after = None;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        if finished.is_some() {
            return Ok(());
        }
    }
}
