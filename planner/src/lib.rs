//! KQL planner: binds a statement's names against the [`Catalog`], type-checks its
//! comparisons and chooses access paths (primary-key get, `IN` multi-get, unique-index get,
//! index prefix + range, primary-key range, full scan with filter). The result is a
//! [`Plan`], an operator tree whose `Display` is `EXPLAIN`. Pure: no I/O.
//!
//! Depends on `kvm-lang` (the AST) and `kvm-storage` (for [`kvm_storage::Value`]); values
//! are evaluated by the engine at run time, so a plan holds expressions (literals already in
//! their field's stored form, and parameters) and a prepared statement binds new parameters
//! to the same plan. A value's stored form is defined once, in [`stored`], for writes,
//! literals and parameters alike.

mod access;
pub mod aggregate;
mod bind;
pub mod catalog;
mod error;
mod include;
pub mod ir;
pub mod plan;
pub mod relation;
pub mod stored;
mod suggest;
pub mod time;
mod via;

use kvm_lang::ast::{CallArgs, Delete, Insert, InsertSource, Projection, Select, Update, Upsert};
use kvm_lang::{Expr, ExprKind};
use kvm_storage::Value;

pub use bind::{count_relation, uses_field};
pub use catalog::{Catalog, Field, FieldExprs, Index, Model, Slots};
pub use error::PlanError;
pub use include::plan_includes;
pub use ir::{Func, Scalar, ScalarKind, Scope, SortKey};
pub use plan::{
    Access, Agg, AggFunc, Attach, AttachKind, Bound, Grouping, Keep, Node, Plan, Range, Set,
};
pub use relation::{Link, Rel, RelPath};
pub use stored::{compared_as_is, compared_form, stored_form, Refused};
pub use suggest::did_you_mean;

/// The column name of a projected expression: its alias, its field name, or its KQL text.
pub fn column_name(expr: &Expr, alias: Option<&str>) -> String {
    if let Some(a) = alias {
        return a.to_string();
    }
    match &expr.kind {
        ExprKind::Path(p) => {
            p.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".")
        }
        ExprKind::Call { name, args: CallArgs::Star } => name.name.to_lowercase(),
        _ => expr.to_string(),
    }
}

fn is_count_star(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Call { name, args: CallArgs::Star } if name.name.eq_ignore_ascii_case("count"))
}

/// Binds a projection; `None` for `*` (every field, in model order). With a catalog, the
/// projection may use relations (`author.name`, `COUNT(comments)`).
fn projection(
    catalog: Option<&Catalog>,
    model: &Model,
    p: &Projection,
) -> Result<Option<Vec<(String, Expr)>>, PlanError> {
    match p {
        Projection::All => Ok(None),
        Projection::Items(items) => {
            let mut out: Vec<(String, Expr)> = Vec::new();
            for item in items {
                if let ExprKind::Call { name, args: CallArgs::Star } = &item.expr.kind {
                    if !is_count_star(&item.expr) || items.len() > 1 || catalog.is_none() {
                        return Err(PlanError::unsupported(
                            &format!("{}(*) here (only in a query)", name.name),
                            item.expr.span,
                        ));
                    }
                    add_column(&mut out, item)?;
                    continue;
                }
                match catalog {
                    Some(c) => bind::bind_query(c, model, &item.expr)?,
                    None => bind::bind_expr(model, &item.expr)?,
                }
                add_column(&mut out, item)?;
            }
            Ok(Some(out))
        }
    }
}

/// Adds a projected item to `out` under its column name, which must be new: rows are also
/// objects (JSON output, the Rust API).
fn add_column(
    out: &mut Vec<(String, Expr)>,
    item: &kvm_lang::ast::SelectItem,
) -> Result<(), PlanError> {
    let name = column_name(&item.expr, item.alias.as_ref().map(|a| a.name.as_str()));
    if out.iter().any(|(n, _)| *n == name) {
        return Err(PlanError::new(
            "kvm.duplicate_column",
            format!("the result has two columns named `{name}`"),
        )
        .at(item.alias.as_ref().map_or(item.expr.span, |a| a.span))
        .help(format!("give one of them another name: `… AS {name}_2`")));
    }
    out.push((name, item.expr.clone()));
    Ok(())
}

/// Every field, in model order (`*`).
fn all_columns(model: &Model) -> Vec<(String, Scalar)> {
    (0..model.fields.len())
        .map(|i| (model.fields[i].name.clone(), Scalar::field(model, i)))
        .collect()
}

/// Projected columns lowered in `scope`.
fn lower_columns(
    scope: Scope,
    columns: Vec<(String, Expr)>,
) -> Result<Vec<(String, Scalar)>, PlanError> {
    columns.into_iter().map(|(name, e)| Ok((name, scope.lower(&e)?))).collect()
}

/// What [`source`] plans: the node, whether it yields the `ORDER BY` order, whether its
/// access path alone decides which records match, and the lowered `ORDER BY` keys.
struct Source {
    node: Node,
    ordered: bool,
    exact: bool,
    keys: Vec<SortKey>,
}

/// The access path and filter for a `WHERE` clause, with the relations the filter and the
/// `ORDER BY` use loaded between them.
fn source(
    catalog: &Catalog,
    model: &Model,
    filter: Option<&Expr>,
    order_by: &[kvm_lang::ast::OrderBy],
) -> Result<Source, PlanError> {
    if let Some(f) = filter {
        bind::bind_query(catalog, model, f)?;
    }
    for o in order_by {
        bind::bind_query(catalog, model, &o.expr)?;
    }
    let scope = Scope::query(catalog, model);
    let lowered = filter.map(|f| scope.lower(f)).transpose()?;
    let keys = order_by
        .iter()
        .map(|o| Ok(SortKey { expr: scope.lower(&o.expr)?, descending: o.descending }))
        .collect::<Result<Vec<_>, PlanError>>()?;
    let mut chosen = access::choose(model, lowered.as_ref(), &keys);
    if let (Access::FullScan { .. }, Some(f)) = (&chosen.access, filter) {
        if let Some(via) = via::via(catalog, model, f) {
            // Rows come in the related side's order: a sort is needed for any ORDER BY.
            chosen = access::Chosen {
                access: via,
                ordered: order_by.is_empty(),
                exact: false,
                covered: false,
            };
        }
    }
    let mut node = Node::Scan { model: model.name.clone(), access: chosen.access };
    let mut used: Vec<&Expr> = filter.into_iter().collect();
    used.extend(order_by.iter().map(|o| &o.expr));
    let mut items = Vec::new();
    include::uses(catalog, model, &used, &mut items)?;
    if !items.is_empty() {
        node = Node::Attach { source: Box::new(node), items };
    }
    // A key get whose keys are exactly the WHERE clause (`id = 1`, `id IN (…)` of literals
    // in stored form) needs no filter: re-testing a long IN list on every row it returns
    // would cost (keys × keys).
    let keys_decide =
        chosen.exact && matches!(node, Node::Scan { access: Access::PkGet { .. }, .. });
    if let Some(predicate) = lowered.filter(|_| !keys_decide) {
        let covered = chosen.covered && matches!(node, Node::Scan { .. });
        node = Node::Filter { source: Box::new(node), predicate, covered };
    }
    Ok(Source { node, ordered: chosen.ordered, exact: chosen.exact, keys })
}

/// Adds the includes, and the relations the projection uses, above `node` (so they are
/// loaded for the rows returned only), and their columns to the projection.
fn attach_outputs(
    catalog: &Catalog,
    model: &Model,
    s: &Select,
    node: Node,
    columns: Option<Vec<(String, Expr)>>,
) -> Result<Node, PlanError> {
    let mut items = Vec::new();
    let mut columns = match columns {
        Some(columns) => {
            let exprs: Vec<&Expr> = columns.iter().map(|(_, e)| e).collect();
            include::uses(catalog, model, &exprs, &mut items)?;
            lower_columns(Scope::query(catalog, model), columns)?
        }
        None => all_columns(model),
    };
    for a in include::plan_includes(catalog, model, &s.include)? {
        if columns.iter().any(|(n, _)| *n == a.column) {
            return Err(PlanError::new(
                "kvm.duplicate_column",
                format!("the result has two columns named `{}`", a.column),
            )
            .at(s.span));
        }
        let path = kvm_lang::ast::Path::single(kvm_lang::ast::Ident::new(a.column.clone()));
        let related =
            Scalar { kind: ScalarKind::Related { path }, span: kvm_lang::Span::default() };
        columns.push((a.column.clone(), related));
        items.retain(|x| x.column != a.column);
        items.push(a);
    }
    let node = if items.is_empty() { node } else { Node::Attach { source: Box::new(node), items } };
    Ok(Node::Project { source: Box::new(node), columns })
}

/// Plans a `SELECT`.
pub fn plan_select(catalog: &Catalog, s: &Select) -> Result<Plan, PlanError> {
    let model = catalog.model(&s.from.name, s.from.span)?;
    // `ORDER BY 2` and `ORDER BY alias` name a SELECT item (grouped queries resolve them
    // against their groups).
    let rewritten;
    let s = if !aggregate::is_grouped(model, s)
        && s.order_by.iter().any(|o| names_item(model, s, &o.expr))
    {
        let mut r = s.clone();
        for o in &mut r.order_by {
            o.expr = order_item(model, s, &o.expr)?;
        }
        rewritten = r;
        &rewritten
    } else {
        s
    };
    if aggregate::is_grouped(model, s) {
        let Projection::Items(items) = &s.projection else {
            return Err(PlanError::new(
                "kvm.not_grouped",
                "SELECT * returns records, but this query returns groups",
            )
            .at(s.span)
            .help("name the group keys and aggregates: `SELECT category, COUNT(*) FROM …`"));
        };
        let mut columns = Vec::with_capacity(items.len());
        for item in items {
            add_column(&mut columns, item)?;
        }
        return aggregate::plan(catalog, model, s, columns);
    }
    let columns = projection(Some(catalog), model, &s.projection)?;
    let count = match &columns {
        Some(cols) if cols.len() == 1 && is_count_star(&cols[0].1) => Some(cols[0].0.clone()),
        _ => None,
    };
    if let (Some(_), Some(i)) = (&count, s.include.first()) {
        return Err(PlanError::new(
            "kvm.invalid_include",
            "COUNT(*) returns one number: INCLUDE does not apply",
        )
        .at(i.span));
    }
    let Source { mut node, ordered, exact, keys } =
        source(catalog, model, s.filter.as_ref(), &s.order_by)?;
    if let Some(column) = count {
        if exact {
            let scan = match &node {
                Node::Filter { source, .. } => source.as_ref().clone(),
                other => other.clone(),
            };
            if let Node::Scan {
                model: m,
                access: access @ (Access::IndexScan { .. } | Access::IndexGet { .. }),
            } = &scan
            {
                let fallback =
                    Node::Count { source: Box::new(node.clone()), column: column.clone() };
                return Ok(Plan::Select {
                    root: Node::IndexCount {
                        model: m.clone(),
                        access: access.clone(),
                        column,
                        fallback: Box::new(fallback),
                    },
                });
            }
        }
        count_limits(s)?;
        return Ok(Plan::Select { root: Node::Count { source: Box::new(node), column } });
    }
    if s.after.is_some() || (s.limit.is_some() && s.offset.is_none()) {
        return page(catalog, model, s, node, keys, columns);
    }
    let limit = s.limit.as_ref().map(|e| Scope::none().lower(e)).transpose()?;
    let offset = s.offset.as_ref().map(|e| Scope::none().lower(e)).transpose()?;
    if !keys.is_empty() && !ordered {
        // A sort under LIMIT keeps only LIMIT + OFFSET rows.
        let keep = limit.clone().map(|l| keep(l, offset.clone()));
        node = Node::Sort { source: Box::new(node), keys, keep };
    }
    if limit.is_some() || offset.is_some() {
        node = Node::Limit { source: Box::new(node), limit, offset };
    }
    Ok(Plan::Select { root: attach_outputs(catalog, model, s, node, columns)? })
}

/// Whether `e`, an `ORDER BY` key, names a SELECT item: a position, or an alias that is not
/// a field of the model.
fn names_item(model: &Model, s: &Select, e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Literal(kvm_lang::ast::Literal::Int(_)) => true,
        ExprKind::Path(p)
            if p.segments.len() == 1 && model.field(&p.segments[0].name).is_none() =>
        {
            matches!(&s.projection, Projection::Items(items)
                if items.iter().any(|i| i.alias.as_ref().is_some_and(|a| a.name == p.segments[0].name)))
        }
        _ => false,
    }
}

/// The expression an `ORDER BY` key stands for: the SELECT item a position (`ORDER BY 2`;
/// with `SELECT *`, the model's fields in order) or an alias names; else the key itself.
fn order_item(model: &Model, s: &Select, e: &Expr) -> Result<Expr, PlanError> {
    match (&e.kind, &s.projection) {
        (ExprKind::Literal(kvm_lang::ast::Literal::Int(n)), projection) => {
            let count = match projection {
                Projection::Items(items) => items.len(),
                Projection::All => model.fields.len(),
            };
            let i =
                usize::try_from(*n).ok().filter(|i| (1..=count).contains(i)).ok_or_else(|| {
                    PlanError::new(
                        "kvm.invalid_order_by",
                        format!("ORDER BY {n}: a position names a SELECT item, from 1 to {count}"),
                    )
                    .at(e.span)
                })?;
            Ok(match projection {
                Projection::Items(items) => items[i - 1].expr.clone(),
                Projection::All => Expr {
                    kind: ExprKind::Path(kvm_lang::ast::Path::single(kvm_lang::ast::Ident::new(
                        model.fields[i - 1].name.clone(),
                    ))),
                    span: e.span,
                },
            })
        }
        (ExprKind::Path(p), Projection::Items(items))
            if p.segments.len() == 1 && model.field(&p.segments[0].name).is_none() =>
        {
            Ok(items
                .iter()
                .find(|i| i.alias.as_ref().is_some_and(|a| a.name == p.segments[0].name))
                .map_or_else(|| e.clone(), |i| i.expr.clone()))
        }
        _ => Ok(e.clone()),
    }
}

/// Plans `LIMIT n [AFTER cursor]` as a keyset page: the ORDER BY keys plus the primary
/// key (in the direction of the last ORDER BY key) make a total order; a cursor is the
/// last row's values of those keys.
fn page(
    catalog: &Catalog,
    model: &Model,
    s: &Select,
    node: Node,
    order_by: Vec<SortKey>,
    columns: Option<Vec<(String, Expr)>>,
) -> Result<Plan, PlanError> {
    if let (Some(a), Some(_)) = (&s.after, &s.offset) {
        return Err(PlanError::unsupported(
            "AFTER with OFFSET (the cursor already says where to resume)",
            a.span,
        ));
    }
    let Some(limit) = &s.limit else {
        let span = s.after.as_ref().map(|a| a.span).unwrap_or(s.span);
        return Err(
            PlanError::new("kvm.invalid_cursor", "AFTER needs a LIMIT (the page size)").at(span)
        );
    };
    let limit = Scope::none().lower(limit)?;
    let pk = model.pk().name.clone();
    let desc = order_by.last().is_some_and(|k| k.descending);
    let mut keys = order_by;
    keys.push(SortKey { expr: Scalar::field(model, model.primary_key), descending: desc });
    let access = leaf_access(&node);
    let order_by = &keys[..keys.len() - 1];
    let order: Vec<Option<String>> = order_by
        .iter()
        .map(|o| o.expr.as_field().map(|slot| model.slots.names[slot].clone()))
        .collect();
    let same_dir = order_by.iter().all(|o| o.descending == desc);
    let sorted = same_dir
        && match access {
            Some(Access::FullScan { reverse, .. }) | Some(Access::PkRange { reverse, .. }) => {
                *reverse == desc && order.iter().all(|f| f.as_deref() == Some(pk.as_str()))
            }
            Some(Access::IndexScan { index, eq, reverse, .. }) => {
                *reverse == desc
                    && model.index(index).is_some_and(|ix| {
                        let rest: Vec<Option<String>> =
                            ix.fields.iter().skip(eq.len()).cloned().map(Some).collect();
                        // Long strings and bytes are truncated+hashed in keys: not in order.
                        !rest.is_empty()
                            && rest == order
                            && ix.fields[eq.len()..].iter().all(|f| access::key_ordered(model, f))
                    })
            }
            _ => false,
        };
    let text: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let query = fnv(&format!("{}|{}", model.name, text.join(",")));
    let after = s.after.as_ref().map(|e| Scope::none().lower(e)).transpose()?;
    let node = Node::Page { source: Box::new(node), keys, after, limit, sorted, query };
    Ok(Plan::Select { root: attach_outputs(catalog, model, s, node, columns)? })
}

/// The access path of a `Scan`, under a filter and attachments.
fn leaf_access(node: &Node) -> Option<&Access> {
    match node {
        Node::Filter { source, .. } | Node::Attach { source, .. } | Node::Limit { source, .. } => {
            leaf_access(source)
        }
        Node::Scan { access, .. } => Some(access),
        _ => None,
    }
}

/// FNV-1a, 64 bits: a stable fingerprint (cursors outlive processes).
fn fnv(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// `LIMIT` and `OFFSET` of `SELECT COUNT(*)` apply to its one result row (as in SQL), never
/// to the rows counted. The count is always returned, so only the spellings that keep that
/// row are accepted: no `OFFSET` (or `OFFSET 0`) and no `LIMIT` (or a literal `LIMIT` ≥ 1).
fn count_limits(s: &Select) -> Result<(), PlanError> {
    use kvm_lang::ast::Literal;
    let lit = |e: &Expr| match &e.kind {
        ExprKind::Literal(Literal::Int(i)) => Some(*i),
        _ => None,
    };
    if let Some(l) = &s.limit {
        if lit(l).is_none_or(|n| n < 1) {
            return Err(PlanError::unsupported(
                "a LIMIT other than a literal of 1 or more on COUNT(*)",
                l.span,
            )
            .help("LIMIT applies to COUNT(*)'s one result row, not to the rows it counts"));
        }
    }
    if let Some(o) = &s.offset {
        if lit(o) != Some(0) {
            return Err(PlanError::unsupported("OFFSET on COUNT(*)", o.span)
                .help("OFFSET applies to COUNT(*)'s one result row, not to the rows it counts"));
        }
    }
    Ok(())
}

/// How many rows a sort under `LIMIT limit OFFSET offset` keeps: folded into one constant
/// when both are non-negative integer literals; the engine adds them (saturating) otherwise.
fn keep(limit: Scalar, offset: Option<Scalar>) -> Keep {
    use kvm_lang::ast::Literal;
    let Some(offset) = offset else { return Keep { limit, offset: None } };
    if let (Some(Value::Int(a)), Some(Value::Int(b))) = (limit.as_const(), offset.as_const()) {
        if *a >= 0 && *b >= 0 {
            let n = a.saturating_add(*b);
            return Keep { limit: Scalar::constant(Value::Int(n), Literal::Int(n)), offset: None };
        }
    }
    Keep { limit, offset: Some(offset) }
}

/// Binds a `RETURNING` projection (`*` is every field).
pub fn returning(
    model: &Model,
    r: &Option<Projection>,
) -> Result<Option<Vec<(String, Scalar)>>, PlanError> {
    match r {
        None => Ok(None),
        Some(p) => Ok(Some(match projection(None, model, p)? {
            Some(columns) => lower_columns(Scope::row(model), columns)?,
            None => all_columns(model),
        })),
    }
}

/// Plans an `INSERT`.
pub fn plan_insert(catalog: &Catalog, s: &Insert) -> Result<Plan, PlanError> {
    let model = catalog.model(&s.model.name, s.model.span)?;
    let records = match &s.source {
        InsertSource::One(e) => vec![e.clone()],
        InsertSource::Batch(list) => list.clone(),
    };
    for r in &records {
        if let ExprKind::Object(fields) = &r.kind {
            for f in fields {
                if model.field(&f.key.name).is_none() {
                    let mut e = PlanError::new(
                        "kvm.unknown_field",
                        format!("model `{}` has no field `{}`", model.name, f.key.name),
                    )
                    .at(f.key.span);
                    if let Some(s) = did_you_mean(&f.key.name, model.fields.iter().map(|f| &f.name))
                    {
                        e = e.help(format!("did you mean `{s}`?"));
                    }
                    return Err(e);
                }
            }
        }
    }
    let records = records.iter().map(|r| Scope::none().lower(r)).collect::<Result<Vec<_>, _>>()?;
    Ok(Plan::Insert {
        model: model.name.clone(),
        records,
        returning: returning(model, &s.returning)?,
    })
}

/// Plans an `UPDATE`.
pub fn plan_update(catalog: &Catalog, s: &Update) -> Result<Plan, PlanError> {
    let model = catalog.model(&s.model.name, s.model.span)?;
    let assignments = assignments(model, &s.assignments)?;
    let source = source(catalog, model, s.filter.as_ref(), &[])?.node;
    Ok(Plan::Update {
        model: model.name.clone(),
        source,
        assignments,
        returning: returning(model, &s.returning)?,
    })
}

/// Binds `SET` assignments against `model` (of `UPDATE`, and `UPSERT … DO UPDATE SET`).
fn assignments(model: &Model, list: &[kvm_lang::ast::Assignment]) -> Result<Vec<Set>, PlanError> {
    let mut assignments = Vec::with_capacity(list.len());
    for a in list {
        let target = kvm_lang::Expr { kind: ExprKind::Path(a.target.clone()), span: a.target.span };
        bind::bind_expr(model, &target)?;
        bind::bind_expr(model, &a.value)?;
        if a.target.segments.len() > 1 {
            // A member of an OBJECT field (`profile.city`): the field is rewritten with it.
            let first = &a.target.segments[0];
            if let Some(f) = model.field(&first.name) {
                if f.ty.name != kvm_lang::ast::TypeName::Object {
                    return Err(PlanError::new(
                        "kvm.type_mismatch",
                        format!(
                            "`{}`: `{}.{}` is {}, not an OBJECT: it has no members to set",
                            a.target, model.name, f.name, f.ty
                        ),
                    )
                    .at(a.target.span));
                }
            }
        }
        let slot = model.slots.slot(&a.target.segments[0].name).ok_or_else(|| {
            PlanError::new(
                "kvm.unknown_field",
                format!("model `{}` has no field `{}`", model.name, a.target),
            )
            .at(a.target.span)
        })?;
        let value = Scope::row(model).lower(&a.value)?;
        assignments.push(Set { slot, target: a.target.clone(), op: a.op, value });
    }
    Ok(assignments)
}

/// Plans a `DELETE`.
pub fn plan_delete(catalog: &Catalog, s: &Delete) -> Result<Plan, PlanError> {
    let model = catalog.model(&s.model.name, s.model.span)?;
    let source = source(catalog, model, s.filter.as_ref(), &[])?.node;
    Ok(Plan::Delete {
        model: model.name.clone(),
        source,
        returning: returning(model, &s.returning)?,
    })
}

/// Plans an `UPSERT`: the key it finds the record by — the primary key (no `ON`, or `ON`
/// the primary key) or the unique index whose fields `ON` names, in any order.
pub fn plan_upsert(catalog: &Catalog, s: &Upsert) -> Result<Plan, PlanError> {
    let model = catalog.model(&s.model.name, s.model.span)?;
    let pk = model.pk().name.clone();
    for id in &s.on {
        if model.field(&id.name).is_none() {
            let mut e = PlanError::new(
                "kvm.unknown_field",
                format!("model `{}` has no field `{}`", model.name, id.name),
            )
            .at(id.span);
            if let Some(d) = did_you_mean(&id.name, model.fields.iter().map(|f| &f.name)) {
                e = e.help(format!("did you mean `{d}`?"));
            }
            return Err(e);
        }
    }
    let on: Vec<String> = if s.on.is_empty() {
        vec![pk.clone()]
    } else {
        s.on.iter().map(|i| i.name.clone()).collect()
    };
    let mut sorted: Vec<&str> = on.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let index = if sorted == [pk.as_str()] {
        None
    } else {
        let found = model.indexes.iter().find(|ix| {
            let mut f: Vec<&str> = ix.fields.iter().map(String::as_str).collect();
            f.sort_unstable();
            ix.unique && ix.ready && f == sorted
        });
        match found {
            Some(ix) => Some(ix),
            None => {
                let mut keys = vec![format!("({pk})")];
                keys.extend(
                    model
                        .indexes
                        .iter()
                        .filter(|ix| ix.unique && ix.ready)
                        .map(|ix| format!("({})", ix.fields.join(", "))),
                );
                let mut e = PlanError::new(
                    "kvm.invalid_upsert",
                    format!(
                        "UPSERT INTO {} ON ({}): the ON fields must be the primary key or the fields of a unique index",
                        model.name,
                        on.join(", ")
                    ),
                )
                .help(format!("unique keys of {}: {}", model.name, keys.join(", ")));
                if let Some(f) = s.on.first() {
                    e = e.at(f.span);
                }
                return Err(e);
            }
        }
    };
    Ok(Plan::Upsert {
        model: model.name.clone(),
        // In key order: the index's fields.
        on: index.map_or(on, |ix| ix.fields.clone()),
        index: index.map(|ix| ix.name.clone()),
        value: Scope::none().lower(&s.value)?,
        update: s.update.as_ref().map(|u| assignments(model, u)).transpose()?,
        returning: returning(model, &s.returning)?,
    })
}
