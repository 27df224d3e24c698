//! The bound plan IR: the expressions a [`crate::Plan`] holds, lowered from the AST once, when
//! the statement is planned. A field is a slot of its model's rows (not a name looked up per
//! row); a literal is a constant already in the stored form of the field it is compared with;
//! a parameter carries the field whose stored form it must take when it is bound (the same
//! [`crate::stored_form`] writes use); a function is a [`Func`], not a name; a relation's
//! value (`author.name`, `EXISTS …`, `COUNT(…)`) is read from the column the plan's `Attach`
//! step fills. The engine evaluates only this, and never calls back into the planner.
//!
//! `Display` prints KQL, with parentheses exactly where precedence needs them — what
//! `EXPLAIN` shows — so a literal keeps the spelling it was written with (normalized where
//! the stored form changed it) and a parameter prints as written.

use std::fmt::{self, Display, Formatter};

use kvm_lang::ast::{
    precedence, BinaryOp, CallArgs, InRhs, Literal, Param, Path, TypeName, UnaryOp,
};
use kvm_lang::{Expr, ExprKind, Span};
use kvm_storage::Value;

use crate::catalog::{Catalog, Field, Model};
use crate::error::PlanError;
use crate::time::{parse_date, parse_timestamp};

/// A bound scalar expression and where it was written.
#[derive(Debug, Clone)]
pub struct Scalar {
    pub kind: ScalarKind,
    pub span: Span,
}

/// What a [`Scalar`] is.
#[derive(Debug, Clone)]
pub enum ScalarKind {
    /// A constant in its final form; `shown` is the literal as `EXPLAIN` prints it.
    Const {
        value: Value,
        shown: Literal,
    },
    /// A parameter; `form`: the field whose stored form the value takes when it is bound.
    Param {
        param: Param,
        form: Option<Box<Field>>,
    },
    /// Field `slot` of the row's model; `path` is how it was written (members after the
    /// first segment reach into an object value).
    Field {
        slot: usize,
        path: Path,
    },
    /// The value an `Attach` step put in column `path`'s first segment (a single-record
    /// relation: an object or null), then its members.
    Related {
        path: Path,
    },
    /// An `EXISTS …` or `COUNT(relation)` an `Attach` step computed into column `column`
    /// (its KQL text).
    Computed {
        column: String,
    },
    /// Slot `slot` of a row an `Aggregate` step made: a group key or an aggregate's value;
    /// `shown` is the KQL text it stands for (`category`, `SUM(price)`).
    Output {
        slot: usize,
        shown: String,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Scalar>,
    },
    IsNull {
        expr: Box<Scalar>,
        negated: bool,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Scalar>,
        rhs: Box<Scalar>,
    },
    /// `expr [NOT] IN (items)`.
    InList {
        expr: Box<Scalar>,
        items: Vec<Scalar>,
        negated: bool,
    },
    /// `expr [NOT] IN list` (a parameter or field holding an array).
    InValue {
        expr: Box<Scalar>,
        list: Box<Scalar>,
        negated: bool,
    },
    Between {
        expr: Box<Scalar>,
        low: Box<Scalar>,
        high: Box<Scalar>,
        negated: bool,
    },
    /// A built-in function; `name` is the spelling it was called with.
    Call {
        func: Func,
        name: String,
        args: Vec<Scalar>,
    },
    Array(Vec<Scalar>),
    /// An object literal: keys and values, in the order written.
    Object(Vec<(String, Scalar)>),
    /// An uncorrelated subquery, run once before the statement: its rows' one column (sorted
    /// by [`crate::plan`] order, deduplicated, NULLs left out) as an array, or with `exists`
    /// whether it returns a row. `key` is its KQL text: the engine binds its result under
    /// that name ([`subquery_param`]).
    Subquery {
        key: String,
        plan: Box<crate::plan::Node>,
        exists: bool,
    },
    /// `CASE [operand] WHEN … THEN … [ELSE …] END`: only the branch chosen is evaluated.
    Case {
        operand: Option<Box<Scalar>>,
        branches: Vec<(Scalar, Scalar)>,
        otherwise: Option<Box<Scalar>>,
    },
}

/// The built-in functions (names are case-insensitive in KQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Now,
    Ulid,
    Uuid,
    Lower,
    Upper,
    Trim,
    Length,
    Abs,
    Coalesce,
    YearsSince,
    Concat,
    Substr,
    Replace,
    Round,
    Floor,
    Ceil,
    Mod,
    NullIf,
    Split,
    DateTrunc,
    Extract,
    Date,
}

impl Func {
    /// Every function, with the names it answers to.
    pub const ALL: &'static [(&'static str, Func)] = &[
        ("now", Func::Now),
        ("ulid", Func::Ulid),
        ("uuid", Func::Uuid),
        ("lower", Func::Lower),
        ("upper", Func::Upper),
        ("trim", Func::Trim),
        ("length", Func::Length),
        ("len", Func::Length),
        ("abs", Func::Abs),
        ("coalesce", Func::Coalesce),
        ("years_since", Func::YearsSince),
        ("concat", Func::Concat),
        ("substr", Func::Substr),
        ("substring", Func::Substr),
        ("replace", Func::Replace),
        ("round", Func::Round),
        ("floor", Func::Floor),
        ("ceil", Func::Ceil),
        ("ceiling", Func::Ceil),
        ("mod", Func::Mod),
        ("nullif", Func::NullIf),
        ("split", Func::Split),
        ("date_trunc", Func::DateTrunc),
        ("extract", Func::Extract),
        ("date", Func::Date),
    ];

    /// The function called `name` (any case).
    pub fn named(name: &str) -> Option<Func> {
        Func::ALL.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, f)| *f)
    }
}

/// What names in an expression may refer to while it is lowered.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// The model whose rows the expression sees; `None` where there is no row (values,
    /// `LIMIT`, queue statements).
    pub model: Option<&'a Model>,
    /// Present where relations may be used (queries, not definitions).
    pub catalog: Option<&'a Catalog>,
    /// Present above an `Aggregate` step: the rows are groups, and an expression reads the
    /// group's keys and aggregates only.
    pub groups: Option<&'a crate::aggregate::Groups<'a>>,
}

impl<'a> Scope<'a> {
    /// No row: constants, parameters and functions only.
    pub fn none() -> Scope<'static> {
        Scope { model: None, catalog: None, groups: None }
    }

    /// A row of `model`, without relations (definitions, `RETURNING`, `SET`).
    pub fn row(model: &'a Model) -> Scope<'a> {
        Scope { model: Some(model), catalog: None, groups: None }
    }

    /// A row of `model`, with its relations.
    pub fn query(catalog: &'a Catalog, model: &'a Model) -> Scope<'a> {
        Scope { model: Some(model), catalog: Some(catalog), groups: None }
    }

    /// A group of rows of `groups` (above an `Aggregate` step).
    pub fn grouped(groups: &'a crate::aggregate::Groups<'a>) -> Scope<'a> {
        Scope { model: None, catalog: None, groups: Some(groups) }
    }

    /// Lowers `e` (already bound: its names checked by the binder). A value compared with a
    /// field inside it takes that field's stored form.
    pub fn lower(&self, e: &Expr) -> Result<Scalar, PlanError> {
        lower(self, e, None).map_err(|e| *e)
    }

    /// The field `e` names, when it is a path to one (of the model, or through a
    /// single-record relation): what a value compared with it is normalized for.
    pub fn field_of(&self, e: &Expr) -> Option<&'a Field> {
        let p = e.as_path()?;
        let model = self.model?;
        match p.segments.as_slice() {
            [f] => model.field(&f.name),
            [r, f] if model.field(&r.name).is_none() => {
                let c = self.catalog?;
                let rel = c.relation(model, &r.name, r.span).ok().filter(|r| r.single())?;
                c.models.get(&rel.target)?.field(&f.name)
            }
            _ => None,
        }
    }
}

/// Whether a value compared with `f` may change on the way to its stored form (for the
/// other types it is already the value stored: numbers compare exactly across types).
fn has_stored_form(f: &Field) -> bool {
    match &f.ty.name {
        TypeName::String => f.trim || f.lowercase || f.uppercase,
        TypeName::Timestamp | TypeName::Ulid | TypeName::Uuid => true,
        _ => false,
    }
}

pub(crate) type Lowered = Result<Scalar, Box<PlanError>>;

fn eval_error(message: String, span: Span) -> Box<PlanError> {
    Box::new(PlanError::new("kvm.eval", message).at(span))
}

/// A literal's value, or the error that names it.
fn literal_value(l: &Literal, span: Span) -> Result<Value, PlanError> {
    Ok(match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::String(s) => Value::String(s.clone()),
        Literal::Date(d) => {
            if parse_date(d).is_none() {
                return Err(*eval_error(format!("bad date '{d}'"), span));
            }
            Value::String(d.clone())
        }
        Literal::Timestamp(t) => match parse_timestamp(t) {
            Some(micros) => Value::Timestamp(micros),
            None => return Err(*eval_error(format!("bad timestamp '{t}'"), span)),
        },
    })
}

/// A literal compared with (or stored in) `form`, as the constant the plan holds.
fn constant(l: &Literal, span: Span, form: Option<&Field>) -> Lowered {
    let mut shown = l.clone();
    let mut value = literal_value(l, span).map_err(Box::new)?;
    if let (Some(f), Literal::String(given) | Literal::Date(given)) = (form, l) {
        match crate::stored::compared_form(f, value.clone()) {
            Value::String(s) if s != *given => {
                shown = Literal::String(s.clone());
                value = Value::String(s);
            }
            // The literal's own text read as a timestamp (`EXPLAIN` shows what was written).
            v @ Value::Timestamp(_) => {
                shown = Literal::Timestamp(given.clone());
                value = v;
            }
            // Not a timestamp at all: an error naming the text, rather than silently
            // matching nothing.
            Value::String(_) if f.ty.name == TypeName::Timestamp => {
                return Err(eval_error(format!("bad timestamp '{given}'"), span));
            }
            _ => {}
        }
    }
    Ok(Scalar { kind: ScalarKind::Const { value, shown }, span })
}

/// The lowering walk. An expression tree may be [`kvm_lang::MAX_EXPR_DEPTH`] deep and a
/// 2 MiB thread must lower it in a debug build, so this frame only dispatches: each kind is
/// lowered by a function of its own, with few locals, that calls back here for operands.
/// The error is boxed (an unoptimized build copies it at every `?`).
pub(crate) fn lower(scope: &Scope, e: &Expr, form: Option<&Field>) -> Lowered {
    if let Some(groups) = scope.groups {
        if let Some(found) = groups.resolve(scope, e) {
            return found;
        }
    }
    match &e.kind {
        ExprKind::Binary { .. } => lower_binary(scope, e),
        ExprKind::In { .. } | ExprKind::Between { .. } => lower_test(scope, e),
        ExprKind::Unary { .. } | ExprKind::IsNull { .. } => lower_unary(scope, e),
        ExprKind::Call { .. } => lower_call(scope, e),
        ExprKind::Array(_) | ExprKind::Object(_) => lower_items(scope, e),
        ExprKind::Case { .. } => lower_case(scope, e),
        ExprKind::ExistsSelect(s) => lower_subquery(scope, s, true, e.span),
        _ => lower_leaf(scope, e, form),
    }
}

/// A value compared with the field `field_side` names takes that field's stored form.
fn lower_compared(
    scope: &Scope,
    field_side: &Expr,
    other: &Expr,
) -> Result<Box<Scalar>, Box<PlanError>> {
    let f = scope.field_of(field_side).filter(|f| has_stored_form(f));
    lower(scope, other, f).map(Box::new)
}

fn lower_boxed(scope: &Scope, e: &Expr) -> Result<Box<Scalar>, Box<PlanError>> {
    lower(scope, e, None).map(Box::new)
}

fn lower_binary(scope: &Scope, e: &Expr) -> Lowered {
    let ExprKind::Binary { op, lhs, rhs } = &e.kind else { return Err(misplaced(e)) };
    let (lhs, rhs) = if op.is_comparison() {
        (lower_compared(scope, rhs, lhs)?, lower_compared(scope, lhs, rhs)?)
    } else {
        (lower_boxed(scope, lhs)?, lower_boxed(scope, rhs)?)
    };
    Ok(Scalar { kind: ScalarKind::Binary { op: *op, lhs, rhs }, span: e.span })
}

fn lower_test(scope: &Scope, e: &Expr) -> Lowered {
    let kind = match &e.kind {
        ExprKind::In { expr, rhs: InRhs::List(items), negated } => ScalarKind::InList {
            expr: lower_boxed(scope, expr)?,
            items: items
                .iter()
                .map(|x| lower_compared(scope, expr, x).map(|b| *b))
                .collect::<Result<_, _>>()?,
            negated: *negated,
        },
        ExprKind::In { expr, rhs: InRhs::Select(s), negated } => ScalarKind::InValue {
            expr: lower_boxed(scope, expr)?,
            list: Box::new(lower_subquery(scope, s, false, e.span)?),
            negated: *negated,
        },
        ExprKind::In { expr, rhs: InRhs::Expr(list), negated } => ScalarKind::InValue {
            expr: lower_boxed(scope, expr)?,
            list: lower_boxed(scope, list)?,
            negated: *negated,
        },
        ExprKind::Between { expr, low, high, negated } => ScalarKind::Between {
            expr: lower_boxed(scope, expr)?,
            low: lower_compared(scope, expr, low)?,
            high: lower_compared(scope, expr, high)?,
            negated: *negated,
        },
        _ => return Err(misplaced(e)),
    };
    Ok(Scalar { kind, span: e.span })
}

fn lower_unary(scope: &Scope, e: &Expr) -> Lowered {
    let kind = match &e.kind {
        ExprKind::Unary { op, expr } => {
            ScalarKind::Unary { op: *op, expr: lower_boxed(scope, expr)? }
        }
        ExprKind::IsNull { expr, negated } => {
            ScalarKind::IsNull { expr: lower_boxed(scope, expr)?, negated: *negated }
        }
        _ => return Err(misplaced(e)),
    };
    Ok(Scalar { kind, span: e.span })
}

fn lower_call(scope: &Scope, e: &Expr) -> Lowered {
    let ExprKind::Call { name, args } = &e.kind else { return Err(misplaced(e)) };
    let args = match args {
        CallArgs::List(args) => args,
        CallArgs::Star => {
            return Err(eval_error(
                format!(
                    "{}(*) is only allowed in a query's SELECT list, HAVING or ORDER BY",
                    name.name
                ),
                e.span,
            ))
        }
        CallArgs::Distinct(_) => {
            return Err(eval_error(
                format!(
                    "{}(DISTINCT …) is only allowed in a query's SELECT list, HAVING or ORDER BY",
                    name.name
                ),
                e.span,
            ))
        }
    };
    let counts_relation = scope.catalog.is_some()
        && crate::count_relation(e)
            .is_some_and(|p| scope.model.is_some_and(|m| m.field(&p.segments[0].name).is_none()));
    let kind = if counts_relation {
        ScalarKind::Computed { column: e.to_string() }
    } else {
        let func = Func::named(&name.name)
            .ok_or_else(|| eval_error(format!("unknown function `{}`", name.name), name.span))?;
        let args = args.iter().map(|a| lower(scope, a, None)).collect::<Result<_, _>>()?;
        ScalarKind::Call { func, name: name.name.clone(), args }
    };
    Ok(Scalar { kind, span: e.span })
}

fn lower_case(scope: &Scope, e: &Expr) -> Lowered {
    let ExprKind::Case { operand, branches, otherwise } = &e.kind else {
        return Err(misplaced(e));
    };
    let operand = operand.as_ref().map(|o| lower_boxed(scope, o)).transpose()?;
    let branches = branches
        .iter()
        .map(|(w, t)| {
            // `CASE field WHEN 'x'`: the value compared with the field takes its stored form.
            let w = match &operand {
                Some(_) => lower_compared(scope, operand_expr(e), w)?,
                None => lower_boxed(scope, w)?,
            };
            Ok((*w, lower(scope, t, None)?))
        })
        .collect::<Result<Vec<_>, Box<PlanError>>>()?;
    let otherwise = otherwise.as_ref().map(|o| lower_boxed(scope, o)).transpose()?;
    Ok(Scalar { kind: ScalarKind::Case { operand, branches, otherwise }, span: e.span })
}

/// The operand of a `CASE x WHEN …` (`e` itself otherwise).
fn operand_expr(e: &Expr) -> &Expr {
    match &e.kind {
        ExprKind::Case { operand: Some(o), .. } => o,
        _ => e,
    }
}

/// The name a subquery's result is bound under: not a name a user can write.
pub fn subquery_param(key: &str) -> kvm_lang::ast::Param {
    kvm_lang::ast::Param::Named(format!("\u{0}{key}"))
}

/// `(SELECT …)` planned on its own: one column for `IN`, any for `EXISTS`.
fn lower_subquery(scope: &Scope, s: &kvm_lang::ast::Select, exists: bool, span: Span) -> Lowered {
    let Some(catalog) = scope.catalog else {
        return Err(Box::new(PlanError::unsupported("a subquery here", span)));
    };
    let crate::plan::Plan::Select { root } = crate::plan_select(catalog, s).map_err(Box::new)?
    else {
        return Err(misplaced_span(span));
    };
    if !exists {
        let columns = match &root {
            crate::plan::Node::Project { columns, .. } => columns.len(),
            crate::plan::Node::Count { .. } | crate::plan::Node::IndexCount { .. } => 1,
            _ => 0,
        };
        if columns != 1 {
            return Err(Box::new(
                PlanError::new(
                    "kvm.invalid_subquery",
                    format!("IN (SELECT …) needs one column, this one has {columns}"),
                )
                .at(s.span)
                .help("select the one value compared: `IN (SELECT author_id FROM …)`"),
            ));
        }
    }
    let key = s.to_string();
    Ok(Scalar { kind: ScalarKind::Subquery { key, plan: Box::new(root), exists }, span })
}

fn misplaced_span(span: Span) -> Box<PlanError> {
    Box::new(PlanError::new("kvm.internal", "internal error: a subquery was misplanned").at(span))
}

fn lower_items(scope: &Scope, e: &Expr) -> Lowered {
    let kind = match &e.kind {
        ExprKind::Array(items) => ScalarKind::Array(
            items.iter().map(|x| lower(scope, x, None)).collect::<Result<_, _>>()?,
        ),
        ExprKind::Object(fields) => ScalarKind::Object(
            fields
                .iter()
                .map(|f| Ok((f.key.name.clone(), lower(scope, &f.value, None)?)))
                .collect::<Result<_, Box<PlanError>>>()?,
        ),
        _ => return Err(misplaced(e)),
    };
    Ok(Scalar { kind, span: e.span })
}

fn lower_leaf(scope: &Scope, e: &Expr, form: Option<&Field>) -> Lowered {
    let kind = match &e.kind {
        ExprKind::Literal(l) => return constant(l, e.span, form),
        ExprKind::Param(p) => {
            ScalarKind::Param { param: p.clone(), form: form.map(|f| Box::new(f.clone())) }
        }
        ExprKind::Path(path) => path_kind(scope, path, e.span)?,
        ExprKind::Exists { .. } => {
            if scope.catalog.is_none() {
                return Err(Box::new(PlanError::unsupported("EXISTS here", e.span)));
            }
            ScalarKind::Computed { column: e.to_string() }
        }
        _ => return Err(misplaced(e)),
    };
    Ok(Scalar { kind, span: e.span })
}

/// A kind sent to the wrong lowering function: a bug, reported rather than panicking.
fn misplaced(e: &Expr) -> Box<PlanError> {
    Box::new(
        PlanError::new("kvm.internal", "internal error: an expression was misrouted").at(e.span),
    )
}

fn path_kind(scope: &Scope, path: &Path, span: Span) -> Result<ScalarKind, Box<PlanError>> {
    let Some(model) = scope.model else {
        return Err(eval_error(
            format!("`{path}` names a field, but there is no record here"),
            span,
        ));
    };
    let first = &path.segments[0].name;
    if let Some(slot) = model.slots.slot(first) {
        return Ok(ScalarKind::Field { slot, path: path.clone() });
    }
    if scope.catalog.is_some() && model.relations.iter().any(|r| r.name.name == *first) {
        return Ok(ScalarKind::Related { path: path.clone() });
    }
    Err(Box::new(
        PlanError::new(
            "kvm.unknown_field",
            format!("model `{}` has no field `{first}`", model.name),
        )
        .at(path.segments[0].span),
    ))
}

impl Scalar {
    /// A constant, shown as `shown`.
    pub fn constant(value: Value, shown: Literal) -> Scalar {
        Scalar { kind: ScalarKind::Const { value, shown }, span: Span::default() }
    }

    /// Field `slot` of `model`, written as its name.
    pub fn field(model: &Model, slot: usize) -> Scalar {
        let name = model.slots.names[slot].clone();
        Scalar {
            kind: ScalarKind::Field { slot, path: Path::single(kvm_lang::ast::Ident::new(name)) },
            span: Span::default(),
        }
    }

    /// The constant's value, when this is one.
    pub fn as_const(&self) -> Option<&Value> {
        match &self.kind {
            ScalarKind::Const { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The slot of the field this is, when it is one (a whole field, no members).
    pub fn as_field(&self) -> Option<usize> {
        match &self.kind {
            ScalarKind::Field { slot, path } if path.segments.len() == 1 => Some(*slot),
            _ => None,
        }
    }

    /// Whether the value is known before any record is read (constants, parameters, and
    /// operators and calls over them).
    pub fn is_constant(&self) -> bool {
        match &self.kind {
            ScalarKind::Const { .. } | ScalarKind::Param { .. } | ScalarKind::Subquery { .. } => {
                true
            }
            ScalarKind::Unary { expr, .. } => expr.is_constant(),
            ScalarKind::Array(items) => items.iter().all(Scalar::is_constant),
            // `now() - '7d'`: the statement's time is one value for the whole statement.
            ScalarKind::Binary { lhs, rhs, .. } => lhs.is_constant() && rhs.is_constant(),
            ScalarKind::Call { func, args, .. } => {
                !matches!(func, Func::Ulid | Func::Uuid) && args.iter().all(Scalar::is_constant)
            }
            _ => false,
        }
    }

    /// Calls `f` with every field slot this expression reads; false when it reads anything
    /// an `Attach` step computes (a relation's value).
    pub fn fields(&self, f: &mut dyn FnMut(usize)) -> bool {
        let mut all = true;
        self.walk(&mut |s| match &s.kind {
            ScalarKind::Field { slot, .. } => f(*slot),
            ScalarKind::Related { .. } | ScalarKind::Computed { .. } => all = false,
            _ => {}
        });
        all
    }

    /// Visits this expression and every expression under it, parents first (not inside a
    /// subquery's plan).
    pub fn walk(&self, f: &mut dyn FnMut(&Scalar)) {
        f(self);
        for c in self.children() {
            c.walk(f);
        }
    }

    /// The expressions directly under this one (not inside a subquery's plan).
    pub fn children(&self) -> Vec<&Scalar> {
        let mut out: Vec<&Scalar> = Vec::new();
        match &self.kind {
            ScalarKind::Unary { expr, .. } | ScalarKind::IsNull { expr, .. } => out.push(expr),
            ScalarKind::Binary { lhs, rhs, .. } => out.extend([&**lhs, &**rhs]),
            ScalarKind::InList { expr, items, .. } => {
                out.push(expr);
                out.extend(items);
            }
            ScalarKind::InValue { expr, list, .. } => out.extend([&**expr, &**list]),
            ScalarKind::Between { expr, low, high, .. } => out.extend([&**expr, &**low, &**high]),
            ScalarKind::Call { args, .. } | ScalarKind::Array(args) => out.extend(args),
            ScalarKind::Object(fields) => out.extend(fields.iter().map(|(_, x)| x)),
            ScalarKind::Case { operand, branches, otherwise } => {
                out.extend(operand.as_deref());
                for (w, t) in branches {
                    out.extend([w, t]);
                }
                out.extend(otherwise.as_deref());
            }
            ScalarKind::Const { .. }
            | ScalarKind::Param { .. }
            | ScalarKind::Field { .. }
            | ScalarKind::Related { .. }
            | ScalarKind::Computed { .. }
            | ScalarKind::Output { .. }
            | ScalarKind::Subquery { .. } => {}
        }
        out
    }

    /// The `AND`-ed conditions of a predicate.
    pub fn conjuncts(&self) -> Vec<&Scalar> {
        match &self.kind {
            ScalarKind::Binary { op: BinaryOp::And, lhs, rhs } => {
                let mut out = lhs.conjuncts();
                out.extend(rhs.conjuncts());
                out
            }
            _ => vec![self],
        }
    }

    fn precedence(&self) -> u8 {
        match &self.kind {
            ScalarKind::Binary { op, .. } => op.precedence(),
            ScalarKind::InList { .. }
            | ScalarKind::InValue { .. }
            | ScalarKind::Between { .. }
            | ScalarKind::IsNull { .. } => precedence::CMP,
            ScalarKind::Unary { op: UnaryOp::Not, .. } => precedence::NOT,
            ScalarKind::Unary { op: UnaryOp::Neg, .. } => precedence::NEG,
            _ => precedence::ATOM,
        }
    }
}

/// One key of a sort or a keyset page: an expression and its direction.
#[derive(Debug, Clone)]
pub struct SortKey {
    pub expr: Scalar,
    pub descending: bool,
}

impl Display for SortKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.expr, if self.descending { " DESC" } else { "" })
    }
}

impl Display for Scalar {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_scalar(f, self, 0)
    }
}

fn write_scalar(f: &mut Formatter<'_>, e: &Scalar, min: u8) -> fmt::Result {
    if e.precedence() < min {
        f.write_str("(")?;
        write_kind(f, e)?;
        f.write_str(")")
    } else {
        write_kind(f, e)
    }
}

fn list(f: &mut Formatter<'_>, items: &[Scalar]) -> fmt::Result {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    Ok(())
}

fn write_kind(f: &mut Formatter<'_>, e: &Scalar) -> fmt::Result {
    match &e.kind {
        ScalarKind::Const { shown, .. } => shown.fmt(f),
        ScalarKind::Param { param, .. } => param.fmt(f),
        ScalarKind::Field { path, .. } | ScalarKind::Related { path } => path.fmt(f),
        ScalarKind::Computed { column } => f.write_str(column),
        ScalarKind::Output { shown, .. } => f.write_str(shown),
        ScalarKind::Subquery { key, exists: true, .. } => write!(f, "EXISTS ({key})"),
        ScalarKind::Subquery { key, .. } => write!(f, "({key})"),
        ScalarKind::Call { name, args, .. } => {
            write!(f, "{name}(")?;
            list(f, args)?;
            f.write_str(")")
        }
        ScalarKind::Unary { op: UnaryOp::Not, expr } => {
            f.write_str("NOT ")?;
            write_scalar(f, expr, precedence::NOT)
        }
        ScalarKind::Unary { op: UnaryOp::Neg, expr } => {
            f.write_str("-")?;
            // `-(5)` stays a negation of a literal; `-(-x)` must not print as a `--` comment.
            let needs_parens = matches!(
                expr.kind,
                ScalarKind::Const { shown: Literal::Int(_) | Literal::Float(_), .. }
                    | ScalarKind::Unary { op: UnaryOp::Neg, .. }
            );
            if needs_parens {
                write!(f, "({expr})")
            } else {
                write_scalar(f, expr, precedence::NEG)
            }
        }
        ScalarKind::Binary { op, lhs, rhs } => {
            let prec = op.precedence();
            write_scalar(f, lhs, prec)?;
            write!(f, " {} ", op.as_str())?;
            write_scalar(f, rhs, prec + 1)
        }
        ScalarKind::InList { expr, items, negated } => {
            write_scalar(f, expr, precedence::CMP)?;
            f.write_str(if *negated { " NOT IN (" } else { " IN (" })?;
            list(f, items)?;
            f.write_str(")")
        }
        ScalarKind::InValue { expr, list, negated } => {
            write_scalar(f, expr, precedence::CMP)?;
            f.write_str(if *negated { " NOT IN " } else { " IN " })?;
            write_scalar(f, list, precedence::ATOM)
        }
        ScalarKind::Between { expr, low, high, negated } => {
            write_scalar(f, expr, precedence::CMP)?;
            f.write_str(if *negated { " NOT BETWEEN " } else { " BETWEEN " })?;
            write_scalar(f, low, precedence::ADD)?;
            f.write_str(" AND ")?;
            write_scalar(f, high, precedence::ADD)
        }
        ScalarKind::IsNull { expr, negated } => {
            write_scalar(f, expr, precedence::CMP)?;
            f.write_str(if *negated { " IS NOT NULL" } else { " IS NULL" })
        }
        ScalarKind::Array(items) => {
            f.write_str("[")?;
            list(f, items)?;
            f.write_str("]")
        }
        ScalarKind::Case { operand, branches, otherwise } => {
            f.write_str("CASE")?;
            if let Some(o) = operand {
                write!(f, " {o}")?;
            }
            for (w, t) in branches {
                write!(f, " WHEN {w} THEN {t}")?;
            }
            if let Some(o) = otherwise {
                write!(f, " ELSE {o}")?;
            }
            f.write_str(" END")
        }
        ScalarKind::Object(fields) => {
            if fields.is_empty() {
                return f.write_str("{}");
            }
            f.write_str("{ ")?;
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}: {v}", kvm_lang::ObjectKey(k))?;
            }
            f.write_str(" }")
        }
    }
}
