//! Schema statements: `DEFINE MODEL`, `ALTER MODEL` (add/drop field, add/drop index),
//! `DROP MODEL`, and the catalog's read side: `SHOW MODELS`, `SHOW INDEXES`, `DESCRIBE`.
//! Adding an index to a model with data writes the index as "building" (maintained by every
//! write, unused by queries), backfills it in batches, then marks it ready.

use std::collections::{BTreeMap, BTreeSet};

use kvm_lang::ast::{
    AlterAction, AlterModel, DefineModel, Drop, Ident, IndexDef, ModelElement, ModifierKind,
    RelationKind, ShowWhat,
};
use kvm_planner::catalog::index_from_def;
use kvm_planner::{Catalog, Model};
use kvm_storage::Value;

use super::{Backfill, Cx};
use crate::error::{Error, Result};
use crate::{catalog_store, Output, Rows};

pub fn define(cx: &Cx, def: &DefineModel) -> Result<(Output, Backfill)> {
    let name = &def.name.name;
    if cx.catalog.models.contains_key(name) {
        if def.if_not_exists {
            return Ok((Output::Message(format!("model {name} already exists")), Vec::new()));
        }
        return Err(Error::catalog("kvm.model_exists", format!("model `{name}` already exists")));
    }
    let model = Model::from_def(def, &[])?;
    model.bind_definitions()?;
    let mut models = cx.catalog.models.clone();
    models.insert(name.clone(), model);
    let (_, made, backfill) = settle(cx, models, vec![name.clone()])?;
    let mut msg = format!("defined model {name}");
    for m in made {
        msg.push_str(&format!(" (and join model {m})"));
    }
    Ok((Output::Message(msg), backfill))
}

/// Completes a schema change whose models are `models` (`changed` lists the ones it
/// changed): creates the join models `MANY TO MANY` relations need, adds an index on every
/// foreign key that lacks one (to be backfilled when its model has records), checks the
/// relations, checks that the existing records honour every new foreign key, and saves the
/// changed models. Returns the models as saved, the join models made and the indexes to
/// backfill.
fn settle(
    cx: &Cx,
    mut models: BTreeMap<String, Model>,
    changed: Vec<String>,
) -> Result<(BTreeMap<String, Model>, Vec<String>, Backfill)> {
    let mut changed: BTreeSet<String> = changed.into_iter().collect();
    let mut made = Vec::new();
    loop {
        let catalog = Catalog::new(models.values().cloned());
        let joins = catalog.missing_join_models()?;
        if !joins.is_empty() {
            for d in joins {
                let m = Model::from_def(&d, &[])?;
                made.push(m.name.clone());
                changed.insert(m.name.clone());
                models.insert(m.name.clone(), m);
            }
            continue;
        }
        let missing = catalog.missing_fk_indexes();
        if !missing.is_empty() {
            for (name, field) in missing {
                let m = &models[&name];
                let mut ix_name = format!("by_{field}");
                while m.index(&ix_name).is_some() {
                    ix_name.push_str("_fk");
                }
                let span = kvm_lang::Span::default();
                let mut def = m.def.clone();
                def.elements.push(ModelElement::Index(IndexDef {
                    name: Some(Ident { name: ix_name.clone(), span }),
                    unique: false,
                    fields: vec![Ident { name: field, span }],
                    span,
                }));
                let mut building: Vec<String> =
                    m.indexes.iter().filter(|i| !i.ready).map(|i| i.name.clone()).collect();
                if has_records(cx, m)? {
                    building.push(ix_name);
                }
                let m = Model::from_def(&def, &building)?.keeping_field_ids(m);
                changed.insert(name.clone());
                models.insert(name, m);
            }
            continue;
        }
        catalog.check_relations()?;
        for link in &catalog.links {
            let known = cx
                .catalog
                .links
                .iter()
                .any(|l| l.parent == link.parent && l.child == link.child && l.fk == link.fk);
            if !known {
                verify_link(cx, &catalog, link)?;
            }
        }
        let mut backfill = Vec::new();
        for name in &changed {
            let m = &models[name];
            catalog_store::save(cx.mtx.txn(), m)?;
            let building: Vec<String> =
                m.indexes.iter().filter(|i| !i.ready).map(|i| i.name.clone()).collect();
            if !building.is_empty() {
                // A new index starts its backfill from the first record (one left building
                // from before is filled again with it: writing an entry twice is harmless).
                let was_building = |ix: &String| {
                    cx.catalog.models.get(name).and_then(|o| o.index(ix)).is_some_and(|i| !i.ready)
                };
                if !building.iter().all(was_building) && cx.mtx.backfill_progress(name)?.is_some() {
                    cx.mtx.set_backfill_progress(name, None);
                }
                backfill.push((name.clone(), building));
            }
        }
        return Ok((models, made, backfill));
    }
}

/// A new foreign key must already hold: every record's key points at a record.
fn verify_link(cx: &Cx, catalog: &Catalog, link: &kvm_planner::Link) -> Result<()> {
    let (Some(child), Some(parent)) =
        (catalog.models.get(&link.child), catalog.models.get(&link.parent))
    else {
        return Ok(());
    };
    if !cx.catalog.models.contains_key(&child.name) {
        return Ok(()); // defined by this statement: no records yet
    }
    for r in cx.mtx.scan_all(child, false)? {
        let row = r?;
        super::refs::check_parent(cx, parent, child, link, &row)?;
    }
    Ok(())
}

pub fn drop(cx: &Cx, d: &Drop) -> Result<Output> {
    let name = &d.name.name;
    if !cx.catalog.models.contains_key(name) {
        if d.if_exists {
            return Ok(Output::Message(format!("model {name} does not exist")));
        }
        return Err(cx
            .catalog
            .model(name, d.name.span)
            .map(|_| ())
            .err()
            .map(Error::from)
            .unwrap_or_else(|| Error::catalog("kvm.unknown_model", name.clone())));
    }
    // Its own relations and join models go with it. A relation another model declares to
    // it must be dropped first — unless its foreign key lives in this model (`users … HAS
    // MANY posts (author_id)` when dropping `posts`): no record elsewhere then holds keys of
    // this one, and the relation waits, unresolved, until a model of that name exists
    // again, as when it was declared before its target.
    let model = &cx.catalog.models[name];
    let joins: Vec<String> = own_joins(cx.catalog, model);
    for m in cx.catalog.models.values() {
        if m.name == *name || joins.contains(&m.name) {
            continue;
        }
        let blocking = m.relations.iter().find(|r| {
            r.target.name == *name
                && !matches!(r.kind, RelationKind::HasMany | RelationKind::HasOne)
        });
        if let Some(r) = blocking {
            return Err(Error::catalog(
                "kvm.model_in_use",
                format!(
                    "model `{name}` is the target of relation `{}.{}`: drop that first \
                     (ALTER MODEL {} DROP RELATION {})",
                    m.name, r.name.name, m.name, r.name.name
                ),
            ));
        }
    }
    for n in std::iter::once(name).chain(joins.iter()) {
        drop_data(cx, n)?;
        catalog_store::remove(cx.mtx.txn(), n)?;
    }
    Ok(Output::Message(format!("dropped model {name}")))
}

/// The join models `model`'s `MANY TO MANY` relations without `THROUGH` made.
fn own_joins(catalog: &Catalog, model: &Model) -> Vec<String> {
    model
        .relations
        .iter()
        .filter(|r| r.kind == RelationKind::ManyToMany && r.through.is_none())
        .map(|r| kvm_planner::relation::join_model_name(&model.name, &r.name.name))
        .filter(|j| catalog.models.contains_key(j))
        .collect()
}

/// Deletes every key of a model (records and index entries).
fn drop_data(cx: &Cx, name: &str) -> Result<()> {
    cx.mtx.drop_model_data(name);
    Ok(())
}

/// Applies an `ALTER MODEL` to the catalog; returns the new model and the indexes that need
/// a backfill (of this model and of others: a new relation indexes its foreign key).
pub fn alter(cx: &Cx, a: &AlterModel) -> Result<(Model, Backfill)> {
    let model = cx.catalog.model(&a.name.name, a.name.span)?;
    // The records it reads and rewrites (backfilled or dropped fields, an emptiness test)
    // must not change under it: a concurrent insert makes it retry.
    cx.mtx.txn().track_reads(true);
    let mut def = model.def.clone();
    let mut building: Vec<String> =
        model.indexes.iter().filter(|i| !i.ready).map(|i| i.name.clone()).collect();
    let mut new_indexes = Vec::new();
    let mut dropped_fields = Vec::new();
    let mut added_fields: Vec<String> = Vec::new();
    let mut dropped_indexes: Vec<String> = Vec::new();
    let mut dropped_joins: Vec<String> = Vec::new();
    // (old name, new name) of each renamed field: its id, values and fill carry over.
    let mut renames: Vec<(String, String)> = Vec::new();
    for action in &a.actions {
        match action {
            AlterAction::AddField(fd) => {
                if model.field(&fd.name.name).is_some() {
                    return Err(Error::catalog(
                        "kvm.field_exists",
                        format!("model `{}` already has field `{}`", model.name, fd.name.name),
                    ));
                }
                let f = kvm_planner::catalog::field_from_def(&model.name, fd)?;
                if f.not_null
                    && f.default.is_none()
                    && f.virtual_expr.is_none()
                    && f.stored_expr.is_none()
                    && has_records(cx, model)?
                {
                    return Err(Error::catalog(
                        "kvm.invalid_alter",
                        format!(
                            "new field `{}.{}` is NOT NULL and has no DEFAULT, but model `{}` \
                             has records that would have no value for it: give it a DEFAULT",
                            model.name, f.name, model.name
                        ),
                    ));
                }
                if f.default.is_some() || f.stored_expr.is_some() {
                    added_fields.push(f.name.clone());
                }
                if fd
                    .modifiers
                    .iter()
                    .any(|m| matches!(m.kind, ModifierKind::Unique | ModifierKind::PrimaryKey))
                {
                    return Err(Error::catalog(
                        "kvm.invalid_alter",
                        format!("add field `{}` first, then ADD UNIQUE INDEX over it", f.name),
                    ));
                }
                def.elements.push(ModelElement::Field(fd.clone()));
            }
            AlterAction::DropField(id) => {
                let Some(f) = model.field(&id.name) else {
                    return Err(cx.unknown_field(model, id));
                };
                if let Some(l) =
                    cx.catalog.links.iter().find(|l| l.child == model.name && l.fk == id.name)
                {
                    return Err(Error::catalog(
                        "kvm.invalid_alter",
                        format!(
                            "field `{}.{}` is the foreign key of relation `{}`: drop the \
                             relation first",
                            model.name, id.name, l.via
                        ),
                    ));
                }
                if f.primary_key || f.implicit {
                    return Err(Error::catalog(
                        "kvm.invalid_alter",
                        format!("field `{}.{}` cannot be dropped", model.name, id.name),
                    ));
                }
                def.elements
                    .retain(|e| !matches!(e, ModelElement::Field(fd) if fd.name.name == id.name));
                dropped_fields.push(id.name.clone());
            }
            AlterAction::AddIndex(ix) => {
                let index = index_from_def(ix);
                if model.index(&index.name).is_some() || new_indexes.contains(&index.name) {
                    return Err(Error::catalog(
                        "kvm.index_exists",
                        format!("model `{}` already has index `{}`", model.name, index.name),
                    ));
                }
                new_indexes.push(index.name.clone());
                building.push(index.name.clone());
                def.elements.push(ModelElement::Index(ix.clone()));
            }
            AlterAction::DropIndex(id) => {
                let before = def.elements.len();
                def.elements.retain(|e| !matches!(e, ModelElement::Index(ix) if kvm_planner::catalog::index_name(ix) == id.name));
                if before == def.elements.len() {
                    // An implicit `field_unique` index: drop the field's UNIQUE modifier. The
                    // suffix comes off once (`a_unique_unique` is the index of `a_unique`),
                    // and nothing changes unless such a UNIQUE field exists.
                    let field = id
                        .name
                        .strip_suffix("_unique")
                        .filter(|_| model.indexes.iter().any(|i| i.name == id.name));
                    let mut found = false;
                    for e in &mut def.elements {
                        if let ModelElement::Field(fd) = e {
                            if Some(fd.name.name.as_str()) == field
                                && fd.modifiers.iter().any(|m| m.kind == ModifierKind::Unique)
                            {
                                fd.modifiers.retain(|m| m.kind != ModifierKind::Unique);
                                found = true;
                            }
                        }
                    }
                    if !found {
                        return Err(Error::catalog(
                            "kvm.unknown_index",
                            format!("model `{}` has no index `{}`", model.name, id.name),
                        ));
                    }
                }
                building.retain(|b| b != &id.name);
                dropped_indexes.push(id.name.clone());
                // Its entries go with it.
                cx.mtx.drop_index_entries(&model.name, &id.name);
            }
            AlterAction::RenameField { from, to } => {
                rename_field(cx, model, &mut def, &renames, from, to)?;
                renames.push((from.name.clone(), to.name.clone()));
            }
            AlterAction::AddRelation(r) => {
                let exists = def
                    .elements
                    .iter()
                    .any(|e| matches!(e, ModelElement::Relation(x) if x.name.name == r.name.name));
                if exists {
                    return Err(Error::catalog(
                        "kvm.relation_exists",
                        format!("model `{}` already has relation `{}`", model.name, r.name.name),
                    ));
                }
                def.elements.push(ModelElement::Relation(r.clone()));
            }
            AlterAction::DropRelation(id) => {
                let Some(r) = model.relations.iter().find(|r| r.name.name == id.name) else {
                    return Err(Error::catalog(
                        "kvm.unknown_relation",
                        format!("model `{}` has no relation `{}`", model.name, id.name),
                    ));
                };
                if r.kind == RelationKind::ManyToMany && r.through.is_none() {
                    let join = kvm_planner::relation::join_model_name(&model.name, &id.name);
                    if cx.catalog.models.contains_key(&join) {
                        dropped_joins.push(join);
                    }
                }
                def.elements
                    .retain(|e| !matches!(e, ModelElement::Relation(x) if x.name.name == id.name));
            }
        }
    }
    // A dropped field must not be used by what stays: refuse, naming the user (a CHECK that
    // named a dropped field would otherwise be silently off).
    for name in &dropped_fields {
        if let Some(user) = model.field_used_by(name, &dropped_fields, &dropped_indexes) {
            return Err(Error::catalog(
                "kvm.invalid_alter",
                format!(
                    "field `{}.{name}` is used by {user}: change or drop that first",
                    model.name
                ),
            ));
        }
    }
    let mut new_model =
        Model::from_def(&def, &building)?.keeping_field_ids_renamed(model, &renames);
    new_model.bind_definitions()?;
    // A new field whose DEFAULT is a constant that nothing else reads is a fill: the records
    // that exist read it without being rewritten, so the ALTER is one small commit however
    // many records there are. The others are written into every record below.
    if !added_fields.is_empty() && has_records(cx, model)? {
        let mut fills = std::collections::BTreeMap::new();
        for name in &added_fields {
            if let Some(v) = crate::record::fill_for(&new_model, name, &cx.env(None))? {
                fills.insert(name.clone(), v);
            }
        }
        added_fields.retain(|n| !fills.contains_key(n));
        new_model = new_model.with_fills(&fills);
    }
    // A dropped field's values stay in the records, never read again (ids are never given
    // to another field), so dropping is one small commit; except where records may be
    // objects that name their fields, which are rewritten without it.
    let rewrite_dropped = !dropped_fields.is_empty() && model.slots.objects;
    if rewrite_dropped || !added_fields.is_empty() {
        // Remove the dropped fields' values from every record, and give every record its
        // value of each new field with a DEFAULT or `AS … STORED` (as an INSERT would). This
        // is part of the ALTER's one commit: a record that the new field's CHECK or NOT NULL
        // refuses makes the whole ALTER fail, nothing changed.
        let rows: Vec<_> = cx.mtx.scan_all(model, false)?.collect::<Result<_>>()?;
        let env = cx.env(None);
        for old in rows {
            let mut new = old.clone().reslot(&new_model.slots);
            for f in &dropped_fields {
                new.remove(f);
            }
            if !added_fields.is_empty() {
                new = crate::record::for_new_fields(&new_model, new, &added_fields, &env)?;
            }
            // (Compared as stored: the rows are in different versions' slots.)
            if new.encode() != old.encode() {
                cx.mtx.update(&new_model, &old, &new, crate::model_txn::Ttl::Keep)?;
            }
        }
    }
    let _ = new_indexes;
    let mut models = cx.catalog.models.clone();
    for j in &dropped_joins {
        models.remove(j);
        drop_data(cx, j)?;
        catalog_store::remove(cx.mtx.txn(), j)?;
    }
    models.insert(new_model.name.clone(), new_model);
    let (mut settled, _, backfill) = settle(cx, models, vec![a.name.name.clone()])?;
    // The model as saved (settle may have indexed its foreign keys).
    let model = settled
        .remove(&a.name.name)
        .ok_or_else(|| Error::Internal("altered model vanished".into()))?;
    Ok((model, backfill))
}

/// `RENAME FIELD from TO to` in `def`: metadata only — records name their fields by id, so
/// no record is rewritten. Indexes over the field follow it under their names (a generated
/// name is kept, so its entries stay where they are). Refused for a field an expression of
/// the model reads (a CHECK, DEFAULT, ON UPDATE or AS would silently break), a foreign key,
/// the timestamps, and a name already taken.
fn rename_field(
    cx: &Cx,
    model: &Model,
    def: &mut DefineModel,
    renames: &[(String, String)],
    from: &kvm_lang::ast::Ident,
    to: &kvm_lang::ast::Ident,
) -> Result<()> {
    let current = |n: &str| {
        renames.iter().rev().find(|(_, new)| new == n).map_or(n.to_string(), |(old, _)| old.clone())
    };
    let Some(f) = model.field(&current(&from.name)) else {
        return Err(cx.unknown_field(model, from));
    };
    let taken = def
        .elements
        .iter()
        .any(|e| matches!(e, ModelElement::Field(fd) if fd.name.name == to.name));
    if taken {
        return Err(Error::catalog(
            "kvm.field_exists",
            format!("model `{}` already has field `{}`", model.name, to.name),
        ));
    }
    let refuse = |why: String| {
        Err(Error::catalog(
            "kvm.invalid_alter",
            format!("field `{}.{}` cannot be renamed: {why}", model.name, from.name),
        ))
    };
    if f.implicit {
        return refuse("it is maintained by WITH TIMESTAMPS".into());
    }
    if let Some(l) = cx.catalog.links.iter().find(|l| l.child == model.name && l.fk == f.name) {
        return refuse(format!(
            "it is the foreign key of relation `{}` (not yet supported)",
            l.via
        ));
    }
    let indexes: Vec<String> = model.indexes.iter().map(|i| i.name.clone()).collect();
    if let Some(user) = model.field_used_by(&f.name, &[], &indexes) {
        return refuse(format!("{user} reads it; change that first"));
    }
    if model.field_exprs().any(|(g, _, e)| g.name == f.name && kvm_planner::uses_field(e, &f.name))
    {
        return refuse("its own CHECK or DEFAULT reads it; change that first".into());
    }
    let mut unique_index = None;
    for e in &mut def.elements {
        match e {
            ModelElement::Field(fd) if fd.name.name == from.name => {
                fd.name.name = to.name.clone();
                // `UNIQUE` makes `<field>_unique`: kept as an explicit index of that name.
                if fd.modifiers.iter().any(|m| m.kind == ModifierKind::Unique) {
                    fd.modifiers.retain(|m| m.kind != ModifierKind::Unique);
                    unique_index = Some(format!("{}_unique", from.name));
                }
            }
            ModelElement::Index(ix) if ix.fields.iter().any(|x| x.name == from.name) => {
                if ix.name.is_none() {
                    ix.name = Some(kvm_lang::ast::Ident::new(kvm_planner::catalog::index_name(ix)));
                }
                for x in &mut ix.fields {
                    if x.name == from.name {
                        x.name = to.name.clone();
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(name) = unique_index {
        def.elements.push(ModelElement::Index(kvm_lang::ast::IndexDef {
            name: Some(kvm_lang::ast::Ident::new(name)),
            unique: true,
            fields: vec![kvm_lang::ast::Ident::new(to.name.clone())],
            span: kvm_lang::Span::default(),
        }));
    }
    Ok(())
}

/// Whether `model` holds at least one record.
fn has_records(cx: &Cx, model: &Model) -> Result<bool> {
    Ok(cx.mtx.scan_all(model, false)?.next().transpose()?.is_some())
}

pub fn show(catalog: &Catalog, what: &ShowWhat) -> Result<Output> {
    match what {
        ShowWhat::Models => {
            let mut rows = Rows::new(vec!["model".into(), "fields".into(), "indexes".into()]);
            for m in catalog.models.values() {
                rows.rows.push(vec![
                    Value::String(m.name.clone()),
                    Value::Int(m.fields.len() as i64),
                    Value::Int(m.indexes.len() as i64),
                ]);
            }
            Ok(Output::Rows(rows))
        }
        ShowWhat::Indexes(model) => {
            let mut rows = Rows::new(vec![
                "model".into(),
                "index".into(),
                "unique".into(),
                "fields".into(),
                "state".into(),
            ]);
            for m in catalog.models.values() {
                if model.as_ref().is_some_and(|x| x.name != m.name) {
                    continue;
                }
                for ix in &m.indexes {
                    rows.rows.push(vec![
                        Value::String(m.name.clone()),
                        Value::String(ix.name.clone()),
                        Value::Bool(ix.unique),
                        Value::String(ix.fields.join(", ")),
                        Value::String(if ix.ready { "ready" } else { "building" }.into()),
                    ]);
                }
            }
            if let Some(m) = model {
                catalog.model(&m.name, m.span)?;
            }
            Ok(Output::Rows(rows))
        }
        ShowWhat::Queues => Err(Error::catalog(
            "kvm.unsupported",
            "SHOW QUEUES is not supported yet (queues arrive with their issue)",
        )),
    }
}
