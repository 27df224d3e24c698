//! Planning relation reads: `INCLUDE` lists become a tree of [`Attach`] steps (dotted
//! includes such as `comments.author` nest under `comments`), and the relations an
//! expression uses (`author.status`, `EXISTS comments (…)`, `COUNT(comments)`) become the
//! attachments that load them before the expression is evaluated.

use kvm_lang::ast::Include;
use kvm_lang::{Expr, ExprKind, Span};

use crate::catalog::{Catalog, Model};
use crate::error::PlanError;
use crate::ir::{Scope, SortKey};
use crate::plan::{Attach, AttachKind};
use crate::relation::{Rel, RelPath};

/// One relation of an include tree, before it is resolved.
struct Step<'a> {
    name: String,
    span: Span,
    options: Option<&'a Include>,
    children: Vec<Step<'a>>,
}

fn insert<'a>(steps: &mut Vec<Step<'a>>, inc: &'a Include, at: usize) -> Result<(), PlanError> {
    let seg = &inc.relation.segments[at];
    let last = at + 1 == inc.relation.segments.len();
    let i = match steps.iter().position(|s| s.name == seg.name) {
        Some(i) => i,
        None => {
            steps.push(Step {
                name: seg.name.clone(),
                span: seg.span,
                options: None,
                children: Vec::new(),
            });
            steps.len() - 1
        }
    };
    if last {
        if steps[i].options.is_some() {
            return Err(PlanError::new(
                "kvm.duplicate_include",
                format!("`{}` is included twice", inc.relation),
            )
            .at(inc.span));
        }
        steps[i].options = Some(inc);
        Ok(())
    } else {
        insert(&mut steps[i].children, inc, at + 1)
    }
}

/// The attachments of an `INCLUDE` list on `model`'s rows.
pub fn plan_includes(
    catalog: &Catalog,
    model: &Model,
    includes: &[Include],
) -> Result<Vec<Attach>, PlanError> {
    let mut steps = Vec::new();
    for inc in includes {
        insert(&mut steps, inc, 0)?;
    }
    steps.iter().map(|s| plan_step(catalog, model, s, 0)).collect()
}

fn plan_step(
    catalog: &Catalog,
    model: &Model,
    step: &Step,
    depth: usize,
) -> Result<Attach, PlanError> {
    if depth > kvm_lang::MAX_DEPTH {
        return Err(PlanError::new("kvm.too_deep", "includes nest too deeply").at(step.span));
    }
    if model.field(&step.name).is_some() {
        return Err(PlanError::new(
            "kvm.unknown_relation",
            format!("`{}.{}` is a field, not a relation", model.name, step.name),
        )
        .at(step.span));
    }
    let rel = catalog.relation(model, &step.name, step.span)?;
    let target = &catalog.models[&rel.target];
    let mut filter = None;
    let mut order_by: Vec<SortKey> = Vec::new();
    let (mut limit, mut offset) = (None, None);
    let mut nested = Vec::new();
    for c in &step.children {
        nested.push(plan_step(catalog, target, c, depth + 1)?);
    }
    if let Some(inc) = step.options {
        if let Some(f) = &inc.filter {
            crate::bind::bind_expr(target, f)?;
            filter = Some(Scope::row(target).lower(f)?);
        }
        for o in &inc.order_by {
            crate::bind::bind_expr(target, &o.expr)?;
            order_by.push(SortKey {
                expr: Scope::row(target).lower(&o.expr)?,
                descending: o.descending,
            });
        }
        limit = inc.limit.as_ref().map(|e| Scope::none().lower(e)).transpose()?;
        offset = inc.offset.as_ref().map(|e| Scope::none().lower(e)).transpose()?;
        if rel.single() && (!order_by.is_empty() || limit.is_some() || offset.is_some()) {
            return Err(PlanError::new(
                "kvm.invalid_include",
                format!(
                    "`{}.{}` is a single record: ORDER BY, LIMIT and OFFSET do not apply",
                    model.name, rel.name
                ),
            )
            .at(inc.span));
        }
        for more in plan_includes(catalog, target, &inc.include)? {
            if nested.iter().any(|n: &Attach| n.column == more.column) {
                return Err(PlanError::new(
                    "kvm.duplicate_include",
                    format!("`{}` is included twice under `{}`", more.column, rel.name),
                )
                .at(inc.span));
            }
            nested.push(more);
        }
    }
    let (index, ordered) = records_access(catalog, &rel, &order_by);
    Ok(Attach {
        column: rel.name.clone(),
        rel,
        what: AttachKind::Records { filter, order_by, limit, offset, index, ordered, nested },
    })
}

/// For a `HAS …` relation: the index to read (its first field the foreign key) and its
/// direction, and whether it yields each row's records in the wanted order (`ORDER BY`, or
/// the target's primary key when there is none).
fn records_access(
    catalog: &Catalog,
    rel: &Rel,
    order_by: &[SortKey],
) -> (Option<(String, bool)>, bool) {
    let RelPath::Reverse { fk, index } = &rel.path else { return (None, false) };
    let target = &catalog.models[&rel.target];
    let pk = &target.pk().name;
    let field = |o: &SortKey| o.expr.as_field().map(|slot| target.slots.names[slot].clone());
    match order_by {
        [] => {
            let ordered = target.index(index).is_some_and(|i| i.fields.len() == 1);
            (Some((index.clone(), false)), ordered)
        }
        [o] if field(o).as_deref() == Some(pk.as_str()) => {
            let ordered = target.index(index).is_some_and(|i| i.fields.len() == 1);
            (Some((index.clone(), o.descending)), ordered)
        }
        [o] => {
            // An index (fk, field) yields the records of one row in `field` order, when every
            // record has the field (null fields have no entry) and keys hold it exactly.
            let Some(f) = field(o) else { return (Some((index.clone(), false)), false) };
            let not_null = target.field(&f).is_some_and(|x| !x.nullable());
            let found = target.indexes.iter().find(|i| {
                i.ready
                    && i.fields.len() >= 2
                    && i.fields[0] == *fk
                    && i.fields[1] == f
                    && crate::access::key_ordered(target, &f)
            });
            match found {
                Some(i) if not_null => (Some((i.name.clone(), o.descending)), true),
                _ => (Some((index.clone(), false)), false),
            }
        }
        _ => (Some((index.clone(), false)), false),
    }
}

/// The attachments the relation uses in `exprs` need (paths through a relation, `EXISTS`,
/// `COUNT(relation)`), added to `out` once each.
pub fn uses(
    catalog: &Catalog,
    model: &Model,
    exprs: &[&Expr],
    out: &mut Vec<Attach>,
) -> Result<(), PlanError> {
    for e in exprs {
        walk(catalog, model, e, out).map_err(|e| *e)?;
    }
    Ok(())
}

fn add(out: &mut Vec<Attach>, a: Attach) {
    if !out.iter().any(|x| x.column == a.column) {
        out.push(a);
    }
}

/// One frame per level of an expression tree, which may be [`kvm_lang::MAX_EXPR_DEPTH`]
/// deep: the work is in [`attach_for`], which returns before the walk goes down, and the
/// error is boxed (an unoptimized build gives every `?` its own copies of it).
fn walk(
    catalog: &Catalog,
    model: &Model,
    e: &Expr,
    out: &mut Vec<Attach>,
) -> Result<(), Box<PlanError>> {
    if !attach_for(catalog, model, e, out)? {
        for x in e.children() {
            walk(catalog, model, x, out)?;
        }
    }
    Ok(())
}

/// Adds the attachment `e` itself needs, if it is a path through a relation, an `EXISTS`
/// or a `COUNT(relation)`; true when it is one of those (nothing below it is walked).
fn attach_for(
    catalog: &Catalog,
    model: &Model,
    e: &Expr,
    out: &mut Vec<Attach>,
) -> Result<bool, PlanError> {
    match &e.kind {
        ExprKind::Path(p) => {
            let first = &p.segments[0];
            if model.field(&first.name).is_some()
                || !model.relations.iter().any(|r| r.name.name == first.name)
            {
                return Ok(true);
            }
            let rel = catalog.relation(model, &first.name, first.span)?;
            let (index, ordered) = records_access(catalog, &rel, &[]);
            add(
                out,
                Attach {
                    column: rel.name.clone(),
                    rel,
                    what: AttachKind::Records {
                        filter: None,
                        order_by: Vec::new(),
                        limit: None,
                        offset: None,
                        index,
                        ordered,
                        nested: Vec::new(),
                    },
                },
            );
            Ok(true)
        }
        ExprKind::Exists { relation, filter } => {
            let rel = catalog.relation(model, &relation.segments[0].name, relation.span)?;
            let target = &catalog.models[&rel.target];
            let filter = filter.as_ref().map(|f| Scope::row(target).lower(f)).transpose()?;
            add(out, Attach { column: e.to_string(), rel, what: AttachKind::Exists { filter } });
            Ok(true)
        }
        _ => {
            if let Some(p) = crate::bind::count_relation(e) {
                if model.field(&p.segments[0].name).is_none() {
                    let rel = catalog.relation(model, &p.segments[0].name, p.span)?;
                    add(out, Attach { column: e.to_string(), rel, what: AttachKind::Count });
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}
