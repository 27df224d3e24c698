//! Grouped queries: `GROUP BY`, `HAVING`, aggregates (`COUNT`, `SUM`, `AVG`, `MIN`, `MAX`,
//! each also `f(DISTINCT x)`) and `SELECT DISTINCT`, planned as
//!
//! ```text
//! Project (group scope) ← Limit ← Sort (group scope) ← Filter HAVING (group scope)
//!   ← Aggregate keys, aggregates ← [Attach relations the keys and arguments use] ← source
//! ```
//!
//! Below the `Aggregate` step expressions see records; above it they see groups, whose slots
//! are the group keys then the aggregates ([`ScalarKind::Output`]). An expression above is
//! matched against them by its KQL text: `SELECT lower(name), COUNT(*) … GROUP BY
//! lower(name)` reads the key; a field that is neither grouped nor inside an aggregate is
//! `kvm.not_grouped`.

use kvm_lang::ast::{CallArgs, Literal, OrderBy, Projection, Select};
use kvm_lang::{Expr, ExprKind};

use crate::catalog::{Catalog, Model};
use crate::error::PlanError;
use crate::ir::{Lowered, Scalar, ScalarKind, Scope, SortKey};
use crate::plan::{Agg, AggFunc, Grouping, Node, Plan};

/// The aggregate `e` calls, when it is one: `COUNT(*)`, `COUNT([DISTINCT] x)`, and
/// `SUM`/`AVG`/`MIN`/`MAX([DISTINCT] x)` — not `COUNT(relation)` of `model`, which counts
/// each record's related records.
pub fn aggregate_call<'e>(
    model: Option<&Model>,
    e: &'e Expr,
) -> Option<(AggFunc, Option<&'e Expr>, bool)> {
    let ExprKind::Call { name, args } = &e.kind else { return None };
    let func = match name.name.to_ascii_lowercase().as_str() {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        _ => return None,
    };
    match args {
        CallArgs::Star => (func == AggFunc::Count).then_some((func, None, false)),
        CallArgs::Distinct(x) => Some((func, Some(x), true)),
        CallArgs::List(list) if list.len() == 1 => {
            let relation_count = func == AggFunc::Count
                && model.is_some_and(|m| {
                    crate::bind::count_relation(e).is_some_and(|p| {
                        m.field(&p.segments[0].name).is_none()
                            && m.relations.iter().any(|r| r.name.name == p.segments[0].name)
                    })
                });
            (!relation_count).then_some((func, Some(&list[0]), false))
        }
        _ => None,
    }
}

/// Whether `e` holds a subquery (`IN (SELECT …)`, `EXISTS (SELECT …)`).
pub fn has_subquery(e: &Expr) -> bool {
    matches!(
        &e.kind,
        ExprKind::ExistsSelect(_) | ExprKind::In { rhs: kvm_lang::ast::InRhs::Select(_), .. }
    ) || e.children().into_iter().any(has_subquery)
}

/// Whether `e` calls an aggregate anywhere (outside an `EXISTS` filter).
pub fn has_aggregate(model: Option<&Model>, e: &Expr) -> bool {
    aggregate_call(model, e).is_some() || e.children().into_iter().any(|c| has_aggregate(model, c))
}

/// Whether `s` is a grouped query: `GROUP BY`, `HAVING`, `SELECT DISTINCT`, or an aggregate
/// in its SELECT list or ORDER BY — except a lone `COUNT(*)`, which is planned on its own
/// (counted from index entries when it can be).
pub fn is_grouped(model: &Model, s: &Select) -> bool {
    if !s.group_by.is_empty() || s.having.is_some() {
        return true;
    }
    let items = match &s.projection {
        Projection::All => &[][..],
        Projection::Items(items) => items.as_slice(),
    };
    if s.distinct && !items.is_empty() {
        return true;
    }
    let lone_count = items.len() == 1
        && matches!(&items[0].expr.kind, ExprKind::Call { name, args: CallArgs::Star }
            if name.name.eq_ignore_ascii_case("count"));
    if lone_count && !s.order_by.iter().any(|o| has_aggregate(Some(model), &o.expr)) {
        return false;
    }
    items.iter().any(|i| has_aggregate(Some(model), &i.expr))
        || s.order_by.iter().any(|o| has_aggregate(Some(model), &o.expr))
}

/// What an expression above an `Aggregate` step may read: the group keys and aggregates
/// (by KQL text), and — in `HAVING` and `ORDER BY` — the SELECT list's aliases.
pub struct Groups<'a> {
    model: &'a Model,
    keys: Vec<String>,
    aggs: Vec<String>,
    aliases: Option<&'a [(String, Expr)]>,
}

impl<'a> Groups<'a> {
    /// What `e` is above the `Aggregate` step, when the group decides it: a key or an
    /// aggregate, an alias (lowered as what it names), or an error for a record's value
    /// that is neither grouped nor aggregated. `None`: lower `e` as usual (its parts are
    /// resolved in turn).
    pub(crate) fn resolve(&self, scope: &Scope, e: &Expr) -> Option<Lowered> {
        let text = e.to_string();
        let output = |slot: usize| {
            Some(Ok(Scalar {
                kind: ScalarKind::Output { slot, shown: text.clone() },
                span: e.span,
            }))
        };
        if let Some(i) = self.keys.iter().position(|k| *k == text) {
            return output(i);
        }
        if let Some(i) = self.aggs.iter().position(|k| *k == text) {
            return output(self.keys.len() + i);
        }
        match &e.kind {
            ExprKind::Path(p) => {
                if let (Some(aliases), [one]) = (self.aliases, p.segments.as_slice()) {
                    if let Some((_, aliased)) = aliases.iter().find(|(n, _)| *n == one.name) {
                        // The alias's expression, lowered without aliases (it cannot name
                        // itself).
                        let inner = Groups { aliases: None, ..self.clone_keys() };
                        let scope = Scope { groups: Some(&inner), ..*scope };
                        return Some(crate::ir::lower(&scope, aliased, None));
                    }
                }
                Some(Err(Box::new(not_grouped(self.model, &text, e))))
            }
            ExprKind::Exists { .. } => Some(Err(Box::new(not_grouped(self.model, &text, e)))),
            ExprKind::Call { .. } if aggregate_call(Some(self.model), e).is_none() => {
                crate::bind::count_relation(e)
                    .filter(|p| self.model.field(&p.segments[0].name).is_none())
                    .map(|_| Err(Box::new(not_grouped(self.model, &text, e))))
            }
            _ => None,
        }
    }

    fn clone_keys(&self) -> Groups<'a> {
        Groups {
            model: self.model,
            keys: self.keys.clone(),
            aggs: self.aggs.clone(),
            aliases: self.aliases,
        }
    }
}

fn not_grouped(model: &Model, text: &str, e: &Expr) -> PlanError {
    PlanError::new(
        "kvm.not_grouped",
        format!("`{text}` is a value of each {} record, but this query returns groups", model.name),
    )
    .at(e.span)
    .help(format!("add `{text}` to GROUP BY, or aggregate it: `MIN({text})`, `COUNT({text})`"))
}

/// Plans a grouped `SELECT` (see [`is_grouped`]); `columns` are its projected columns,
/// named.
pub(crate) fn plan(
    catalog: &Catalog,
    model: &Model,
    s: &Select,
    columns: Vec<(String, Expr)>,
) -> Result<Plan, PlanError> {
    if let Some(i) = s.include.first() {
        return Err(PlanError::new(
            "kvm.invalid_include",
            "a grouped query returns groups, not records: INCLUDE does not apply",
        )
        .at(i.span));
    }
    if let Some(a) = &s.after {
        return Err(PlanError::unsupported("AFTER (a cursor) on a grouped query", a.span)
            .help("page groups with LIMIT and OFFSET"));
    }
    // The keys: GROUP BY's expressions (an alias or a position names a SELECT item), or
    // for SELECT DISTINCT the SELECT list itself.
    let mut keys: Vec<Expr> = Vec::new();
    if s.distinct {
        if !s.group_by.is_empty() || columns.iter().any(|(_, e)| has_aggregate(Some(model), e)) {
            return Err(PlanError::unsupported(
                "SELECT DISTINCT with GROUP BY or aggregates",
                s.span,
            )
            .help("the groups of GROUP BY are already distinct"));
        }
        keys.extend(columns.iter().map(|(_, e)| e.clone()));
    }
    for g in &s.group_by {
        keys.push(group_key(model, &columns, g)?);
    }
    for k in &keys {
        if has_aggregate(Some(model), k) {
            return Err(PlanError::new(
                "kvm.misplaced_aggregate",
                format!("GROUP BY {k}: rows cannot be grouped by an aggregate"),
            )
            .at(k.span));
        }
        crate::bind::bind_query(catalog, model, k)?;
    }
    let mut key_text: Vec<String> = Vec::new();
    let mut unique_keys: Vec<&Expr> = Vec::new();
    for k in &keys {
        let t = k.to_string();
        if !key_text.contains(&t) {
            key_text.push(t);
            unique_keys.push(k);
        }
    }
    // The aggregates, each once, in the order they are first written.
    let mut found: Vec<(String, &Expr)> = Vec::new();
    for (_, e) in &columns {
        collect(catalog, model, e, &mut found)?;
    }
    if let Some(h) = &s.having {
        collect(catalog, model, h, &mut found)?;
    }
    for o in &s.order_by {
        collect(catalog, model, &o.expr, &mut found)?;
    }
    let query = Scope::query(catalog, model);
    let mut aggs = Vec::with_capacity(found.len());
    for (shown, e) in &found {
        let (func, arg, distinct) = aggregate_call(Some(model), e).ok_or_else(|| internal(e))?;
        let arg = arg.map(|a| query.lower(a)).transpose()?;
        aggs.push(Agg { func, arg, distinct, shown: shown.clone() });
    }
    // The group keys as field names, when each is a plain field.
    let key_fields: Option<Vec<String>> = unique_keys
        .iter()
        .map(|k| {
            k.as_path()
                .filter(|p| p.segments.len() == 1 && model.field(&p.segments[0].name).is_some())
                .map(|p| p.segments[0].name.clone())
        })
        .collect();
    // A lone MIN(f) or MAX(f): the first non-null value in f's order, when an index or the
    // primary key yields that order (nulls are skipped, as MIN and MAX skip them).
    let extreme = match (unique_keys.is_empty(), found.as_slice()) {
        (true, [(_, e)]) => match aggregate_call(Some(model), e) {
            Some((func @ (AggFunc::Min | AggFunc::Max), Some(arg), _))
                if arg.as_path().is_some_and(|p| {
                    p.segments.len() == 1 && model.field(&p.segments[0].name).is_some()
                }) =>
            {
                Some((func, arg))
            }
            _ => None,
        },
        _ => None,
    };
    let mut limit_one = false;
    let mut src = None;
    if let Some((func, arg)) = extreme {
        let not_null = Expr {
            kind: ExprKind::IsNull { expr: Box::new(arg.clone()), negated: true },
            span: arg.span,
        };
        let filter = match &s.filter {
            Some(f) => Expr {
                kind: ExprKind::Binary {
                    op: kvm_lang::ast::BinaryOp::And,
                    lhs: Box::new(f.clone()),
                    rhs: Box::new(not_null),
                },
                span: f.span,
            },
            None => not_null,
        };
        let order = [OrderBy { expr: arg.clone(), descending: func == AggFunc::Max }];
        let first = crate::source(catalog, model, Some(&filter), &order)?;
        let pk = model.pk().name.as_str();
        let by_key =
            matches!(crate::leaf_access(&first.node), Some(crate::Access::IndexScan { .. }))
                || arg.as_path().is_some_and(|p| p.segments[0].name == pk);
        if first.ordered && by_key {
            src = Some(first);
            limit_one = true;
        }
    }
    let src = match src {
        Some(src) => src,
        None => crate::source(catalog, model, s.filter.as_ref(), &[])?,
    };
    let mut node = src.node;
    // Groups stream one at a time when the input holds each group's rows together: an index
    // whose leading fields (after those the WHERE fixes) are the keys, or the primary key.
    let lowered_keys = unique_keys
        .iter()
        .zip(&key_text)
        .map(|(k, t)| Ok((t.clone(), query.lower(k)?)))
        .collect::<Result<Vec<_>, PlanError>>()?;
    let mut read_fields: Vec<&Scalar> = lowered_keys.iter().map(|(_, e)| e).collect();
    read_fields.extend(aggs.iter().filter_map(|a| a.arg.as_ref()));
    let mut grouping = Grouping::Hashed;
    if let Some(fields) = key_fields.as_ref().filter(|f| !f.is_empty()) {
        if adjacent(model, &node, fields) {
            grouping = Grouping::Streamed;
        } else if let Some(ix) = index_to_scan(model, &node, &read_fields, Some(fields)) {
            set_leaf(&mut node, ix);
            grouping = Grouping::Streamed;
        }
    }
    if limit_one {
        let one = Scalar::constant(kvm_storage::Value::Int(1), Literal::Int(1));
        node = Node::Limit { source: Box::new(node), limit: Some(one), offset: None };
    }
    let mut used: Vec<&Expr> = unique_keys.clone();
    used.extend(found.iter().filter_map(|(_, e)| aggregate_call(Some(model), e).and_then(|a| a.1)));
    let mut items = Vec::new();
    crate::include::uses(catalog, model, &used, &mut items)?;
    let attached = !items.is_empty();
    if attached {
        node = Node::Attach { source: Box::new(node), items };
    }
    if !attached {
        let mut read: Vec<&Scalar> = lowered_keys.iter().map(|(_, e)| e).collect();
        read.extend(aggs.iter().filter_map(|a| a.arg.as_ref()));
        // (Not under a lone MIN/MAX's LIMIT 1, whose order is its scan's.)
        let hashed = !limit_one && grouping == Grouping::Hashed;
        if let Some(ix) = index_to_scan(model, &node, &read, None).filter(|_| hashed) {
            // Every record, but the index's entries are smaller than the records.
            set_leaf(&mut node, ix);
        }
        index_only(model, &mut node, &read);
    }
    node = Node::Aggregate { source: Box::new(node), keys: lowered_keys, aggs, grouping };
    // Above: groups.
    let aliases: Vec<(String, Expr)> = match &s.projection {
        Projection::Items(items) => items
            .iter()
            .filter_map(|i| i.alias.as_ref().map(|a| (a.name.clone(), i.expr.clone())))
            .collect(),
        Projection::All => Vec::new(),
    };
    let groups = Groups {
        model,
        keys: key_text,
        aggs: found.iter().map(|(t, _)| t.clone()).collect(),
        aliases: None,
    };
    let with_aliases = Groups { aliases: Some(&aliases), ..groups.clone_keys() };
    if let Some(h) = &s.having {
        let predicate = Scope::grouped(&with_aliases).lower(h)?;
        node = Node::Filter { source: Box::new(node), predicate, covered: false };
    }
    let limit = s.limit.as_ref().map(|e| Scope::none().lower(e)).transpose()?;
    let offset = s.offset.as_ref().map(|e| Scope::none().lower(e)).transpose()?;
    if !s.order_by.is_empty() {
        let sort = s
            .order_by
            .iter()
            .map(|o| {
                // `ORDER BY 2`: the second SELECT item.
                let expr = match &o.expr.kind {
                    ExprKind::Literal(Literal::Int(_)) => group_key(model, &columns, &o.expr)?,
                    _ => o.expr.clone(),
                };
                Ok(SortKey {
                    expr: Scope::grouped(&with_aliases).lower(&expr)?,
                    descending: o.descending,
                })
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        let keep = limit.clone().map(|l| crate::keep(l, offset.clone()));
        node = Node::Sort { source: Box::new(node), keys: sort, keep };
    }
    if limit.is_some() || offset.is_some() {
        node = Node::Limit { source: Box::new(node), limit, offset };
    }
    let columns = columns
        .into_iter()
        .map(|(name, e)| Ok((name, Scope::grouped(&groups).lower(&e)?)))
        .collect::<Result<Vec<_>, PlanError>>()?;
    Ok(Plan::Select { root: Node::Project { source: Box::new(node), columns } })
}

/// A `GROUP BY` (or grouped `ORDER BY`) item: an expression, or a SELECT alias or position
/// (`GROUP BY 1`) naming the item's expression.
fn group_key(model: &Model, columns: &[(String, Expr)], g: &Expr) -> Result<Expr, PlanError> {
    match &g.kind {
        ExprKind::Literal(Literal::Int(n)) => {
            let i = usize::try_from(*n).ok().filter(|i| (1..=columns.len()).contains(i));
            match i {
                Some(i) => Ok(columns[i - 1].1.clone()),
                None => Err(PlanError::new(
                    "kvm.invalid_group_by",
                    format!("GROUP BY {n}: a position names a SELECT item, 1 to {}", columns.len()),
                )
                .at(g.span)),
            }
        }
        ExprKind::Path(p)
            if p.segments.len() == 1 && model.field(&p.segments[0].name).is_none() =>
        {
            match columns.iter().find(|(n, e)| *n == p.segments[0].name && e.as_path() != Some(p)) {
                Some((_, e)) => Ok(e.clone()),
                None => Ok(g.clone()),
            }
        }
        _ => Ok(g.clone()),
    }
}

/// Gathers the aggregates `e` calls (each text once), checking each: no aggregate inside
/// another, and its argument bound against the model.
fn collect<'e>(
    catalog: &Catalog,
    model: &Model,
    e: &'e Expr,
    out: &mut Vec<(String, &'e Expr)>,
) -> Result<(), PlanError> {
    if let Some((_, arg, _)) = aggregate_call(Some(model), e) {
        if let Some(a) = arg {
            if has_aggregate(Some(model), a) {
                return Err(PlanError::new(
                    "kvm.misplaced_aggregate",
                    format!("{e}: an aggregate cannot be inside another"),
                )
                .at(a.span));
            }
            crate::bind::bind_query(catalog, model, a)?;
        }
        let text = e.to_string();
        if !out.iter().any(|(t, _)| *t == text) {
            out.push((text, e));
        }
        return Ok(());
    }
    for c in e.children() {
        collect(catalog, model, c, out)?;
    }
    Ok(())
}

fn internal(e: &Expr) -> PlanError {
    PlanError::new("kvm.internal", "internal error: an aggregate was misread").at(e.span)
}

/// Marks the index scan at the bottom of `node` (under a filter and a limit) index-only
/// when what reads its rows — the filter and `more` — reads fields the index holds, and the
/// primary key, only: the rows are then made from the index entries, no record is read.
pub(crate) fn index_only(model: &Model, node: &mut Node, more: &[&Scalar]) {
    let mut read: Vec<Scalar> = more.iter().map(|e| (*e).clone()).collect();
    let mut at = node;
    loop {
        match at {
            Node::Filter { source, predicate, .. } => {
                read.push(predicate.clone());
                at = source;
            }
            Node::Limit { source, .. } => at = source,
            _ => break,
        }
    }
    let Node::Scan { access: crate::Access::IndexScan { index, index_only, .. }, .. } = at else {
        return;
    };
    let Some(ix) = model.index(index) else { return };
    let mut held: Vec<usize> = ix.fields.iter().filter_map(|f| model.slots.slot(f)).collect();
    held.push(model.primary_key);
    let mut only = true;
    for e in &read {
        let fields_only = e.fields(&mut |slot| {
            let stored = model.fields.get(slot).is_some_and(|f| f.virtual_expr.is_none());
            only &= stored && held.contains(&slot);
        });
        only &= fields_only;
    }
    *index_only = only;
}

/// The scan leaf under filters and limits.
fn leaf_mut(node: &mut Node) -> &mut Node {
    match node {
        Node::Filter { source, .. } | Node::Limit { source, .. } => leaf_mut(source),
        other => other,
    }
}

/// Whether the scan under `node` yields the rows of each group of `fields` together: an
/// index scan whose fields after its equality prefix start with the group fields (in any
/// order; the prefix's fields are constant), or a record scan grouped by the primary key.
/// Equal values have equal index keys, so they are adjacent even where long values are
/// truncated in keys (the aggregate holds groups of such values apart).
fn adjacent(model: &Model, node: &Node, fields: &[String]) -> bool {
    match crate::leaf_access(node) {
        Some(crate::Access::IndexScan { index, eq, .. }) => {
            let Some(ix) = model.index(index) else { return false };
            let mut rest: Vec<&String> = fields.iter().collect();
            for (i, f) in ix.fields.iter().enumerate() {
                if rest.is_empty() {
                    break;
                }
                if let Some(at) = rest.iter().position(|r| *r == f) {
                    rest.remove(at);
                } else if i >= eq.len() {
                    return false;
                }
            }
            rest.is_empty()
        }
        Some(crate::Access::FullScan { .. } | crate::Access::PkRange { .. }) => {
            fields.iter().any(|f| *f == model.pk().name)
        }
        _ => false,
    }
}

/// For a query that scans every record: a ready index to scan instead, that holds every
/// record the query can keep (its fields NOT NULL, or tested in WHERE) and every field it
/// reads (the filter's and `read`'s), so nothing but its entries is read — and, for
/// `group`, whose leading fields are exactly the group fields, so groups stream from it.
/// (When records must be read anyway, one scan of them in key order with groups held in
/// memory beats a random read per entry several times over: no index then.)
fn index_to_scan(
    model: &Model,
    node: &Node,
    read: &[&Scalar],
    group: Option<&[String]>,
) -> Option<crate::Access> {
    if !matches!(crate::leaf_access(node), Some(crate::Access::FullScan { .. })) {
        return None;
    }
    let predicate = match node {
        Node::Filter { predicate, .. } => Some(predicate),
        _ => None,
    };
    let wanted = fields_read(read, predicate)?;
    let non_null = crate::access::non_null_fields(model, predicate);
    let leads = |ix: &crate::Index| {
        group.is_none_or(|fields| {
            ix.fields.len() >= fields.len()
                && fields.iter().all(|f| ix.fields[..fields.len()].contains(f))
        })
    };
    model
        .indexes
        .iter()
        .find(|ix| {
            ix.ready
                && leads(ix)
                && crate::access::covers(model, ix, &non_null)
                && holds(model, ix, &wanted)
        })
        .map(|ix| crate::Access::IndexScan {
            index: ix.name.clone(),
            eq: Vec::new(),
            range: crate::Range::default(),
            reverse: false,
            index_only: false,
        })
}

fn set_leaf(node: &mut Node, access: crate::Access) {
    if let Node::Scan { access: a, .. } = leaf_mut(node) {
        *a = access;
    }
}

/// The field slots `read` and `predicate` read; `None` when they read a relation.
fn fields_read(read: &[&Scalar], predicate: Option<&Scalar>) -> Option<Vec<usize>> {
    let mut wanted: Vec<usize> = Vec::new();
    let mut fields_only = true;
    for e in read.iter().copied().chain(predicate) {
        fields_only &= e.fields(&mut |slot| wanted.push(slot));
    }
    fields_only.then_some(wanted)
}

/// Whether index `ix` holds each of the field slots `wanted` (its fields and the primary
/// key; a virtual field is never held).
fn holds(model: &Model, ix: &crate::Index, wanted: &[usize]) -> bool {
    wanted.iter().all(|slot| {
        *slot == model.primary_key
            || model
                .fields
                .get(*slot)
                .is_some_and(|f| f.virtual_expr.is_none() && ix.fields.contains(&f.name))
    })
}
