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
mod bind;
pub mod catalog;
mod error;
mod include;
pub mod plan;
pub mod relation;
pub mod stored;
mod suggest;
pub mod time;
mod via;

use kvm_lang::ast::{CallArgs, Delete, Insert, InsertSource, Projection, Select, Update, Upsert};
use kvm_lang::{Expr, ExprKind};

pub use access::conjuncts;
pub use bind::{count_relation, uses_field, FUNCTIONS, SAT_ADD, STORED};
pub use catalog::{Catalog, Field, Index, Model, Slots};
pub use error::PlanError;
pub use include::plan_includes;
pub use plan::{Access, Attach, AttachKind, Bound, Node, Plan, Range};
pub use relation::{Link, Rel, RelPath};
pub use stored::{compared_form, stored_form, Refused};
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
                let counts_relation = catalog.is_some()
                    && count_relation(&item.expr)
                        .is_some_and(|p| model.field(&p.segments[0].name).is_none());
                if let ExprKind::Call { name, args: CallArgs::List(_) } = &item.expr.kind {
                    if name.name.eq_ignore_ascii_case("count") && !counts_relation {
                        return Err(PlanError::unsupported(
                            &format!("{}(expr) (counting non-null values)", name.name),
                            item.expr.span,
                        )
                        .help("use COUNT(*) with `WHERE expr IS NOT NULL`"));
                    }
                }
                if let ExprKind::Call { name, args: CallArgs::Star } = &item.expr.kind {
                    if !is_count_star(&item.expr) || items.len() > 1 {
                        return Err(PlanError::unsupported(
                            &format!("{}(*) here (only a lone COUNT(*))", name.name),
                            item.expr.span,
                        ));
                    }
                }
                match catalog {
                    Some(c) => bind::bind_query(c, model, &item.expr)?,
                    None => bind::bind_expr(model, &item.expr)?,
                }
                let name = column_name(&item.expr, item.alias.as_ref().map(|a| a.name.as_str()));
                if out.iter().any(|(n, _)| *n == name) {
                    // Rows are also objects (JSON output, the Rust API): names must be unique.
                    return Err(PlanError::new(
                        "kvm.duplicate_column",
                        format!("the result has two columns named `{name}`"),
                    )
                    .at(item.alias.as_ref().map_or(item.expr.span, |a| a.span))
                    .help(format!("give one of them another name: `… AS {name}_2`")));
                }
                out.push((name, item.expr.clone()));
            }
            Ok(Some(out))
        }
    }
}

fn all_columns(model: &Model) -> Vec<(String, Expr)> {
    model
        .fields
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                Expr::new(ExprKind::Path(kvm_lang::ast::Path::single(kvm_lang::ast::Ident::new(
                    f.name.clone(),
                )))),
            )
        })
        .collect()
}

/// The access path and filter for a `WHERE` clause, with the relations the filter and the
/// `ORDER BY` use loaded between them.
fn source(
    catalog: &Catalog,
    model: &Model,
    filter: Option<&Expr>,
    order_by: &[kvm_lang::ast::OrderBy],
) -> Result<(Node, bool, bool), PlanError> {
    if let Some(f) = filter {
        bind::bind_query(catalog, model, f)?;
    }
    for o in order_by {
        bind::bind_query(catalog, model, &o.expr)?;
    }
    let normalized = filter.map(|f| bind::normalize(model, Some(catalog), f));
    let filter = normalized.as_ref();
    let mut chosen = access::choose(model, filter, order_by);
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
    if let Some(f) = filter.filter(|_| !keys_decide) {
        let covered = chosen.covered && matches!(node, Node::Scan { .. });
        node = Node::Filter { source: Box::new(node), predicate: f.clone(), covered };
    }
    Ok((node, chosen.ordered, chosen.exact))
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
    let mut columns = columns.unwrap_or_else(|| all_columns(model));
    let mut items = Vec::new();
    let exprs: Vec<&Expr> = columns.iter().map(|(_, e)| e).collect();
    include::uses(catalog, model, &exprs, &mut items)?;
    for a in include::plan_includes(catalog, model, &s.include)? {
        if columns.iter().any(|(n, _)| *n == a.column) {
            return Err(PlanError::new(
                "kvm.duplicate_column",
                format!("the result has two columns named `{}`", a.column),
            )
            .at(s.span));
        }
        columns.push((
            a.column.clone(),
            Expr::new(ExprKind::Path(kvm_lang::ast::Path::single(kvm_lang::ast::Ident::new(
                a.column.clone(),
            )))),
        ));
        items.retain(|x| x.column != a.column);
        items.push(a);
    }
    let node = if items.is_empty() { node } else { Node::Attach { source: Box::new(node), items } };
    Ok(Node::Project { source: Box::new(node), columns })
}

/// Plans a `SELECT`.
pub fn plan_select(catalog: &Catalog, s: &Select) -> Result<Plan, PlanError> {
    let model = catalog.model(&s.from.name, s.from.span)?;
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
    let (mut node, ordered, exact) = source(catalog, model, s.filter.as_ref(), &s.order_by)?;
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
        return page(catalog, model, s, node, columns);
    }
    if !s.order_by.is_empty() && !ordered {
        // A sort under LIMIT keeps only LIMIT + OFFSET rows.
        let keep = match (&s.limit, &s.offset) {
            (Some(l), None) => Some(l.clone()),
            (Some(l), Some(o)) => Some(limit_plus_offset(l, o)),
            _ => None,
        };
        node = Node::Sort { source: Box::new(node), keys: s.order_by.clone(), limit: keep };
    }
    if s.limit.is_some() || s.offset.is_some() {
        node = Node::Limit {
            source: Box::new(node),
            limit: s.limit.clone(),
            offset: s.offset.clone(),
        };
    }
    Ok(Plan::Select { root: attach_outputs(catalog, model, s, node, columns)? })
}

/// Plans `LIMIT n [AFTER cursor]` as a keyset page: the ORDER BY keys plus the primary
/// key (in the direction of the last ORDER BY key) make a total order; a cursor is the
/// last row's values of those keys.
fn page(
    catalog: &Catalog,
    model: &Model,
    s: &Select,
    node: Node,
    columns: Option<Vec<(String, Expr)>>,
) -> Result<Plan, PlanError> {
    if let (Some(a), Some(_)) = (&s.after, &s.offset) {
        return Err(PlanError::unsupported(
            "AFTER with OFFSET (the cursor already says where to resume)",
            a.span,
        ));
    }
    let Some(limit) = s.limit.clone() else {
        let span = s.after.as_ref().map(|a| a.span).unwrap_or(s.span);
        return Err(
            PlanError::new("kvm.invalid_cursor", "AFTER needs a LIMIT (the page size)").at(span)
        );
    };
    let pk = model.pk().name.clone();
    let desc = s.order_by.last().is_some_and(|k| k.descending);
    let mut keys = s.order_by.clone();
    keys.push(kvm_lang::ast::OrderBy {
        expr: Expr::new(ExprKind::Path(kvm_lang::ast::Path::single(kvm_lang::ast::Ident::new(
            pk.clone(),
        )))),
        descending: desc,
    });
    let access = leaf_access(&node);
    let field_of = |e: &Expr| match &e.kind {
        ExprKind::Path(p) if p.segments.len() == 1 => Some(p.segments[0].name.clone()),
        _ => None,
    };
    let order: Vec<Option<String>> = s.order_by.iter().map(|o| field_of(&o.expr)).collect();
    let same_dir = s.order_by.iter().all(|o| o.descending == desc);
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
    let text: Vec<String> = keys
        .iter()
        .map(|k| format!("{}{}", k.expr, if k.descending { " DESC" } else { "" }))
        .collect();
    let query = fnv(&format!("{}|{}", model.name, text.join(",")));
    let node =
        Node::Page { source: Box::new(node), keys, after: s.after.clone(), limit, sorted, query };
    Ok(Plan::Select { root: attach_outputs(catalog, model, s, node, columns)? })
}

/// The access path of a `Scan`, under a filter and attachments.
fn leaf_access(node: &Node) -> Option<&Access> {
    match node {
        Node::Filter { source, .. } | Node::Attach { source, .. } => leaf_access(source),
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

/// How many rows a sort under `LIMIT l OFFSET o` keeps: `l + o`, saturating (folded when
/// both are literals, else the engine's internal saturating `__sat_add`).
fn limit_plus_offset(l: &Expr, o: &Expr) -> Expr {
    use kvm_lang::ast::Literal;
    if let (ExprKind::Literal(Literal::Int(a)), ExprKind::Literal(Literal::Int(b))) =
        (&l.kind, &o.kind)
    {
        if *a >= 0 && *b >= 0 {
            return Expr::new(ExprKind::Literal(Literal::Int(a.saturating_add(*b))));
        }
    }
    Expr::new(ExprKind::Call {
        name: kvm_lang::ast::Ident::new(bind::SAT_ADD),
        args: CallArgs::List(vec![l.clone(), o.clone()]),
    })
}

/// Binds a `RETURNING` projection (`*` is every field).
pub fn returning(
    model: &Model,
    r: &Option<Projection>,
) -> Result<Option<Vec<(String, Expr)>>, PlanError> {
    match r {
        None => Ok(None),
        Some(p) => Ok(Some(projection(None, model, p)?.unwrap_or_else(|| all_columns(model)))),
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
    Ok(Plan::Insert {
        model: model.name.clone(),
        records,
        returning: returning(model, &s.returning)?,
    })
}

/// Plans an `UPDATE`.
pub fn plan_update(catalog: &Catalog, s: &Update) -> Result<Plan, PlanError> {
    let model = catalog.model(&s.model.name, s.model.span)?;
    for a in &s.assignments {
        let target = kvm_lang::Expr { kind: ExprKind::Path(a.target.clone()), span: a.target.span };
        bind::bind_expr(model, &target)?;
        bind::bind_expr(model, &a.value)?;
    }
    let (source, _, _) = source(catalog, model, s.filter.as_ref(), &[])?;
    Ok(Plan::Update {
        model: model.name.clone(),
        source,
        assignments: s.assignments.clone(),
        returning: returning(model, &s.returning)?,
    })
}

/// Plans a `DELETE`.
pub fn plan_delete(catalog: &Catalog, s: &Delete) -> Result<Plan, PlanError> {
    let model = catalog.model(&s.model.name, s.model.span)?;
    let (source, _, _) = source(catalog, model, s.filter.as_ref(), &[])?;
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
        returning: returning(model, &s.returning)?,
    })
}
