//! Expression evaluation over one row: literals, parameters, field paths, operators, `IN`,
//! `BETWEEN`, `LIKE`, and the built-in functions (`now()`, `ulid()`, `uuid()`, `lower`,
//! `upper`, `trim`, `length`, `abs`, `coalesce`, `years_since`). Comparisons with null are
//! null; a filter keeps a row only when its predicate is `true`.

use std::cmp::Ordering;

use kvm_lang::ast::{BinaryOp, CallArgs, InRhs, Literal, UnaryOp};
use kvm_lang::{Expr, ExprKind};
use kvm_storage::Value;

use crate::error::{Error, Result};
use crate::params::Params;
use crate::values::{compare, parse_date, parse_timestamp, truthy};

pub use crate::slots::Row;

/// Where ids and the time come from (injectable for deterministic tests).
pub trait Ids: Send + Sync {
    /// Microseconds since the epoch.
    fn now_micros(&self) -> i64;
    fn ulid(&self) -> String;
    fn uuid(&self) -> String;
}

/// What an expression can see.
pub struct Env<'a> {
    pub params: &'a Params,
    pub ids: &'a dyn Ids,
    pub row: Option<&'a Row>,
    /// The catalog the plan was made against: a parameter compared with a field is put in
    /// that field's stored form (`__stored`). `None` where no plan is evaluated (a field's
    /// CHECK, DEFAULT or computed expression).
    pub catalog: Option<&'a kvm_planner::Catalog>,
}

fn err(msg: impl Into<String>, e: &Expr) -> Error {
    Error::Invalid {
        code: "kvm.eval",
        message: msg.into(),
        span: (!e.span.is_empty()).then_some(e.span),
        help: None,
    }
}

/// A literal's value.
pub fn literal(l: &Literal, e: &Expr) -> Result<Value> {
    Ok(match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::String(s) => Value::String(s.clone()),
        Literal::Date(d) => {
            parse_date(d).ok_or_else(|| err(format!("bad date '{d}'"), e))?;
            Value::String(d.clone())
        }
        Literal::Timestamp(t) => Value::Timestamp(
            parse_timestamp(t).ok_or_else(|| err(format!("bad timestamp '{t}'"), e))?,
        ),
    })
}

impl Env<'_> {
    /// Evaluates `e`.
    pub fn eval(&self, e: &Expr) -> Result<Value> {
        // Leaves, the most common case, need no operand stack.
        if is_leaf(e) {
            return self.leaf(e);
        }
        let mut operands = Vec::new();
        self.walk(e, &mut operands).map_err(|e| *e)?;
        operands.pop().ok_or_else(|| underflow(e))
    }

    /// Whether a predicate holds.
    pub fn test(&self, e: &Expr) -> Result<bool> {
        Ok(truthy(&self.eval(e)?))
    }

    /// Evaluates `e` onto `operands`: pushes the values of its operands, in order, then
    /// [`Env::apply`] replaces them with its value.
    ///
    /// An expression tree may be [`kvm_lang::MAX_EXPR_DEPTH`] deep and this frame is on the
    /// stack once per level, so it holds no values and builds no messages: both live in
    /// `apply`, which runs after the operands are done. Its error is boxed because an
    /// unoptimized build gives every `?` its own copies of the (large) error.
    fn walk(&self, e: &Expr, operands: &mut Vec<Value>) -> Result<(), Box<Error>> {
        match &e.kind {
            ExprKind::Unary { expr, .. } | ExprKind::IsNull { expr, .. } => {
                self.walk(expr, operands)?
            }
            ExprKind::Binary { op, lhs, rhs } => {
                self.walk(lhs, operands)?;
                if decided(*op, operands) {
                    // The left side's value is the result; the right side is not evaluated.
                    return Ok(());
                }
                self.walk(rhs, operands)?;
            }
            ExprKind::In { expr, rhs, .. } => {
                self.walk(expr, operands)?;
                match rhs {
                    InRhs::List(items) => self.walk_all(items, operands)?,
                    InRhs::Expr(x) => self.walk(x, operands)?,
                }
            }
            ExprKind::Between { expr, low, high, .. } => {
                self.walk(expr, operands)?;
                self.walk(low, operands)?;
                self.walk(high, operands)?;
            }
            ExprKind::Call { args: CallArgs::List(args), .. } if !self.computed(e) => {
                self.walk_all(args, operands)?
            }
            ExprKind::Array(items) => self.walk_all(items, operands)?,
            ExprKind::Object(fields) => {
                for f in fields {
                    self.walk(&f.value, operands)?;
                }
            }
            _ => {}
        }
        self.apply(e, operands).map_err(Box::new)
    }

    fn walk_all(&self, items: &[Expr], operands: &mut Vec<Value>) -> Result<(), Box<Error>> {
        for x in items {
            self.walk(x, operands)?;
        }
        Ok(())
    }

    /// Replaces the values of `e`'s operands, on top of `operands`, with `e`'s value.
    fn apply(&self, e: &Expr, operands: &mut Vec<Value>) -> Result<()> {
        let v = match &e.kind {
            _ if is_leaf(e) || self.computed(e) => self.leaf(e)?,
            ExprKind::Unary { op, .. } => {
                let [v] = top(operands, e)?;
                unary(*op, v, e)?
            }
            ExprKind::IsNull { negated, .. } => {
                let [v] = top(operands, e)?;
                Value::Bool(matches!(v, Value::Null) != *negated)
            }
            // (Not reached when the left side decided: `walk` left it as the value.)
            ExprKind::Binary { op, .. } => {
                let [l, r] = top(operands, e)?;
                binary(*op, l, r, e)?
            }
            ExprKind::In { rhs: InRhs::List(items), negated, .. } => {
                let list = Value::Array(take(operands, items.len(), e)?);
                let [v] = top(operands, e)?;
                in_list(v, list, *negated, e)?
            }
            ExprKind::In { rhs: InRhs::Expr(_), negated, .. } => {
                let [v, list] = top(operands, e)?;
                in_list(v, list, *negated, e)?
            }
            ExprKind::Between { negated, .. } => {
                let [v, lo, hi] = top(operands, e)?;
                between(&v, &lo, &hi, *negated)
            }
            ExprKind::Call { name, args: CallArgs::List(args) } => {
                self.call(&name.name, take(operands, args.len(), e)?, e)?
            }
            ExprKind::Call { name, args: CallArgs::Star } => {
                let message = format!("{}(*) is only allowed as a lone SELECT COUNT(*)", name.name);
                return Err(err(message, e));
            }
            ExprKind::Array(items) => Value::Array(take(operands, items.len(), e)?),
            ExprKind::Object(fields) => {
                let values = take(operands, fields.len(), e)?;
                Value::Object(fields.iter().map(|f| f.key.name.clone()).zip(values).collect())
            }
            _ => return Err(underflow(e)),
        };
        operands.push(v);
        Ok(())
    }

    /// A literal, a parameter, a field, or an `EXISTS` or `COUNT(relation)` computed for the
    /// row beforehand (an `Attach` step) under its own text.
    fn leaf(&self, e: &Expr) -> Result<Value> {
        match &e.kind {
            ExprKind::Literal(l) => literal(l, e),
            ExprKind::Param(p) => self.params.get(p).cloned(),
            ExprKind::Path(path) => {
                let Some(row) = self.row else {
                    return Err(err(
                        format!("`{path}` names a field, but there is no record here"),
                        e,
                    ));
                };
                let mut v = row.get(&path.segments[0].name).cloned().unwrap_or(Value::Null);
                for seg in &path.segments[1..] {
                    v = match v {
                        Value::Object(mut m) => m.remove(&seg.name).unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                }
                Ok(v)
            }
            ExprKind::Exists { relation, .. } => match self.row.and_then(|r| r.get(&e.to_string()))
            {
                Some(v) => Ok(v.clone()),
                None => Err(Error::unsupported("EXISTS here", relation.span)),
            },
            // A `COUNT(relation)` that `computed` found in the row.
            _ => self.row.and_then(|r| r.get(&e.to_string())).cloned().ok_or_else(|| underflow(e)),
        }
    }

    /// Whether `e` is a `COUNT(relation)` computed for the row beforehand.
    fn computed(&self, e: &Expr) -> bool {
        kvm_planner::count_relation(e).is_some()
            && self.row.is_some_and(|r| r.contains_key(&e.to_string()))
    }

    /// A function applied to its evaluated arguments.
    fn call(&self, name: &str, args: Vec<Value>, e: &Expr) -> Result<Value> {
        let lname = name.to_ascii_lowercase();
        let one = |f: &dyn Fn(&Value) -> Option<Value>| -> Result<Value> {
            match args.as_slice() {
                [Value::Null] => Ok(Value::Null),
                [v] => f(v).ok_or_else(|| {
                    err(format!("{name}() cannot take {}", crate::values::kql(v)), e)
                }),
                _ => Err(err(format!("{name}() takes one argument"), e)),
            }
        };
        match lname.as_str() {
            "now" => Ok(Value::Timestamp(self.ids.now_micros())),
            "ulid" => Ok(Value::String(self.ids.ulid())),
            "uuid" => Ok(Value::String(self.ids.uuid())),
            "lower" => one(&|v| match v {
                Value::String(s) => Some(Value::String(s.to_lowercase())),
                _ => None,
            }),
            "upper" => one(&|v| match v {
                Value::String(s) => Some(Value::String(s.to_uppercase())),
                _ => None,
            }),
            "trim" => one(&|v| match v {
                Value::String(s) => Some(Value::String(s.trim().to_string())),
                _ => None,
            }),
            "length" | "len" => one(&|v| match v {
                Value::String(s) => Some(Value::Int(s.chars().count() as i64)),
                Value::Array(a) => Some(Value::Int(a.len() as i64)),
                Value::Bytes(b) => Some(Value::Int(b.len() as i64)),
                _ => None,
            }),
            "abs" => one(&|v| match v {
                Value::Int(i) => i.checked_abs().map(Value::Int),
                Value::Float(f) => Some(Value::Float(f.abs())),
                Value::Counter(c) => Some(Value::Counter(*c)),
                _ => None,
            }),
            // The planner's `LIMIT + OFFSET` for a sort (not callable from KQL).
            kvm_planner::SAT_ADD => match args.as_slice() {
                [a, b] => match (count_of(a), count_of(b)) {
                    (Some(a), Some(b)) => {
                        Ok(Value::Int(i64::try_from(a.saturating_add(b)).unwrap_or(i64::MAX)))
                    }
                    _ => Err(err(
                        format!(
                            "LIMIT and OFFSET must be non-negative integers, got {} and {}",
                            crate::values::kql(a),
                            crate::values::kql(b)
                        ),
                        e,
                    )),
                },
                _ => Err(err(format!("{name}() takes two arguments"), e)),
            },
            // The planner's wrapper putting a parameter in a field's stored form, with the
            // function writes use.
            kvm_planner::STORED => match args.as_slice() {
                [v, Value::String(model), Value::String(field)] => {
                    let f = self
                        .catalog
                        .and_then(|c| c.models.get(model))
                        .and_then(|m| m.field(field))
                        .ok_or_else(|| {
                            Error::Corrupt(format!(
                                "a plan compares with `{model}.{field}`, which its catalog lacks"
                            ))
                        })?;
                    Ok(kvm_planner::compared_form(f, v.clone()))
                }
                _ => Err(err(format!("{name}() takes a value, a model and a field"), e)),
            },
            "coalesce" => {
                Ok(args.into_iter().find(|v| !matches!(v, Value::Null)).unwrap_or(Value::Null))
            }
            "years_since" => {
                let now_days = self.ids.now_micros().div_euclid(86_400_000_000);
                one(&|v| {
                    let days = match v {
                        Value::String(s) => parse_date(s)?,
                        Value::Timestamp(t) => t.div_euclid(86_400_000_000),
                        _ => return None,
                    };
                    let (y0, m0, d0) = crate::values::civil_from_days(days);
                    let (y1, m1, d1) = crate::values::civil_from_days(now_days);
                    let mut years = y1 - y0;
                    if (m1, d1) < (m0, d0) {
                        years -= 1;
                    }
                    Some(Value::Int(years))
                })
            }
            _ => Err(err(format!("unknown function `{name}`"), e)),
        }
    }
}

/// Literals, parameters, paths and `EXISTS`: what has no operands to evaluate.
fn is_leaf(e: &Expr) -> bool {
    matches!(
        e.kind,
        ExprKind::Literal(_) | ExprKind::Param(_) | ExprKind::Path(_) | ExprKind::Exists { .. }
    )
}

/// An operand missing on the stack: a bug of [`Env::walk`], reported rather than panicking.
fn underflow(e: &Expr) -> Error {
    err("internal error: an operand is missing", e)
}

/// The top `N` operands, in the order they were pushed.
fn top<const N: usize>(operands: &mut Vec<Value>, e: &Expr) -> Result<[Value; N]> {
    let at = operands.len().checked_sub(N).ok_or_else(|| underflow(e))?;
    let mut values = operands.drain(at..);
    Ok(std::array::from_fn(|_| values.next().unwrap_or(Value::Null)))
}

/// The top `n` operands, in the order they were pushed.
fn take(operands: &mut Vec<Value>, n: usize, e: &Expr) -> Result<Vec<Value>> {
    let at = operands.len().checked_sub(n).ok_or_else(|| underflow(e))?;
    Ok(operands.split_off(at))
}

fn unary(op: UnaryOp, v: Value, e: &Expr) -> Result<Value> {
    match (op, v) {
        (_, Value::Null) => Ok(Value::Null),
        (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnaryOp::Neg, Value::Int(i)) => {
            i.checked_neg().map(Value::Int).ok_or_else(|| err("integer overflow", e))
        }
        (UnaryOp::Neg, Value::Float(f)) => Ok(Value::Float(-f)),
        (op, v) => Err(err(format!("cannot apply {op:?} to {}", crate::values::kql(&v)), e)),
    }
}

/// `AND` with a false left side and `OR` with a true one: the left side is the value.
fn short_circuit(op: BinaryOp, l: &Value) -> bool {
    matches!((op, l), (BinaryOp::And, Value::Bool(false)) | (BinaryOp::Or, Value::Bool(true)))
}

/// [`short_circuit`] for the left side on top of `operands`.
fn decided(op: BinaryOp, operands: &[Value]) -> bool {
    operands.last().is_some_and(|l| short_circuit(op, l))
}

/// A binary operator applied to its operands' values.
fn binary(op: BinaryOp, l: Value, r: Value, e: &Expr) -> Result<Value> {
    use BinaryOp::*;
    if matches!(op, And | Or) {
        return Ok(match (op, l, r) {
            (And, Value::Bool(true), r @ (Value::Bool(_) | Value::Null)) => r,
            (Or, Value::Bool(false), r @ (Value::Bool(_) | Value::Null)) => r,
            (And, Value::Null, Value::Bool(false)) => Value::Bool(false),
            (Or, Value::Null, Value::Bool(true)) => Value::Bool(true),
            (_, Value::Null, Value::Bool(_) | Value::Null) => Value::Null,
            (_, l, r) => {
                return Err(err(
                    format!(
                        "{} needs booleans, got {} and {}",
                        op.as_str(),
                        crate::values::kql(&l),
                        crate::values::kql(&r)
                    ),
                    e,
                ))
            }
        });
    }
    if matches!(l, Value::Null) || matches!(r, Value::Null) {
        return Ok(Value::Null);
    }
    let cmp = |want: &dyn Fn(Ordering) -> bool| -> Value {
        compare(&l, &r).map_or(Value::Null, |o| Value::Bool(want(o)))
    };
    Ok(match op {
        Eq => cmp(&|o| o == Ordering::Equal),
        NotEq => cmp(&|o| o != Ordering::Equal),
        Lt => cmp(&|o| o == Ordering::Less),
        LtEq => cmp(&|o| o != Ordering::Greater),
        Gt => cmp(&|o| o == Ordering::Greater),
        GtEq => cmp(&|o| o != Ordering::Less),
        Like | NotLike => match (&l, &r) {
            (Value::String(s), Value::String(p)) => Value::Bool(like(s, p) == (op == Like)),
            _ => return Err(err("LIKE needs strings", e)),
        },
        StartsWith | NotStartsWith => match (&l, &r) {
            (Value::String(s), Value::String(p)) => {
                Value::Bool(s.starts_with(p.as_str()) == (op == StartsWith))
            }
            _ => return Err(err("STARTS WITH needs strings", e)),
        },
        Contains | NotContains => {
            let found = match (&l, &r) {
                (Value::String(s), Value::String(p)) => s.contains(p.as_str()),
                (Value::Array(a), x) => a.iter().any(|y| compare(y, x) == Some(Ordering::Equal)),
                _ => return Err(err("CONTAINS needs a string or an array", e)),
            };
            Value::Bool(found == (op == Contains))
        }
        Add | Sub | Mul | Div | Rem => arith(op, &l, &r).ok_or_else(|| {
            err(
                format!(
                    "cannot compute {} {} {}",
                    crate::values::kql(&l),
                    op.as_str(),
                    crate::values::kql(&r)
                ),
                e,
            )
        })?,
        And | Or => Value::Null,
    })
}

/// `v [NOT] IN list`, three-valued as in SQL: true when an item equals `v`, else null when
/// an item is null (it might have), else false; `NOT IN` negates that (null stays null).
/// `list` is the evaluated `(…)` list as an array, or the value of `IN expr`.
fn in_list(v: Value, list: Value, negated: bool, e: &Expr) -> Result<Value> {
    let list = match list {
        Value::Array(a) => a,
        Value::Null => return Ok(Value::Null),
        other => {
            let at = match &e.kind {
                ExprKind::In { rhs: InRhs::Expr(x), .. } => x,
                _ => e,
            };
            return Err(err(format!("IN needs a list, got {}", crate::values::kql(&other)), at));
        }
    };
    if matches!(v, Value::Null) {
        return Ok(Value::Null);
    }
    if list.iter().any(|x| compare(&v, x) == Some(Ordering::Equal)) {
        return Ok(Value::Bool(!negated));
    }
    if list.iter().any(|x| matches!(x, Value::Null)) {
        return Ok(Value::Null);
    }
    Ok(Value::Bool(negated))
}

/// `v [NOT] BETWEEN lo AND hi`, inclusive; null when either comparison is.
fn between(v: &Value, lo: &Value, hi: &Value, negated: bool) -> Value {
    match (compare(v, lo), compare(v, hi)) {
        (Some(a), Some(b)) => {
            Value::Bool((a != Ordering::Less && b != Ordering::Greater) != negated)
        }
        _ => Value::Null,
    }
}

/// A count (`LIMIT`, `OFFSET`): a non-negative INT or any U64 — one rule for the query's
/// and an `INCLUDE`'s, literal or parameter.
pub(crate) fn count_of(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Counter(c) => Some(*c),
        _ => None,
    }
}

pub(crate) fn arith(op: BinaryOp, l: &Value, r: &Value) -> Option<Value> {
    use BinaryOp::*;
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => Some(Value::Int(match op {
            Add => a.checked_add(*b)?,
            Sub => a.checked_sub(*b)?,
            Mul => a.checked_mul(*b)?,
            Div => a.checked_div(*b)?,
            Rem => a.checked_rem(*b)?,
            _ => return None,
        })),
        (Value::Counter(a), Value::Counter(_) | Value::Int(_))
        | (Value::Int(_), Value::Counter(a)) => {
            let (x, y) = match (l, r) {
                (Value::Counter(_), Value::Int(b)) => (i128::from(*a), i128::from(*b)),
                (Value::Int(b), Value::Counter(_)) => (i128::from(*b), i128::from(*a)),
                (Value::Counter(_), Value::Counter(b)) => (i128::from(*a), i128::from(*b)),
                _ => return None,
            };
            let v = match op {
                Add => x.checked_add(y)?,
                Sub => x.checked_sub(y)?,
                Mul => x.checked_mul(y)?,
                Div => x.checked_div(y)?,
                Rem => x.checked_rem(y)?,
                _ => return None,
            };
            Some(
                u64::try_from(v)
                    .map(Value::Counter)
                    .unwrap_or_else(|_| i64::try_from(v).map(Value::Int).unwrap_or(Value::Null)),
            )
        }
        (Value::String(a), Value::String(b)) if op == Add => Some(Value::String(format!("{a}{b}"))),
        _ => {
            let f = |v: &Value| match v {
                Value::Int(i) => Some(*i as f64),
                Value::Float(x) => Some(*x),
                Value::Counter(c) => Some(*c as f64),
                _ => None,
            };
            let (a, b) = (f(l)?, f(r)?);
            let x = match op {
                Add => a + b,
                Sub => a - b,
                Mul => a * b,
                Div => a / b,
                Rem => a % b,
                _ => return None,
            };
            x.is_finite().then_some(Value::Float(x))
        }
    }
}

/// SQL `LIKE`: `%` any run of characters, `_` exactly one.
pub fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Dynamic programming over (i in s, j in p).
    let mut dp = vec![vec![false; p.len() + 1]; s.len() + 1];
    dp[0][0] = true;
    for j in 1..=p.len() {
        dp[0][j] = dp[0][j - 1] && p[j - 1] == '%';
    }
    for i in 1..=s.len() {
        for j in 1..=p.len() {
            dp[i][j] = match p[j - 1] {
                '%' => dp[i][j - 1] || dp[i - 1][j],
                '_' => dp[i - 1][j - 1],
                c => dp[i - 1][j - 1] && s[i - 1] == c,
            };
        }
    }
    dp[s.len()][p.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_lang::ast::Ident;

    struct Fixed;
    impl Ids for Fixed {
        fn now_micros(&self) -> i64 {
            0
        }
        fn ulid(&self) -> String {
            String::new()
        }
        fn uuid(&self) -> String {
            String::new()
        }
    }

    fn call(name: &str, args: Vec<Expr>) -> Result<Value> {
        let params = Params::none();
        let env = Env { params: &params, ids: &Fixed, row: None, catalog: None };
        env.eval(&Expr::new(ExprKind::Call { name: Ident::new(name), args: CallArgs::List(args) }))
    }

    fn int(i: i64) -> Expr {
        Expr::new(ExprKind::Literal(Literal::Int(i)))
    }

    #[test]
    fn every_function_the_planner_accepts_is_implemented() {
        for f in kvm_planner::FUNCTIONS {
            let r = call(f, vec![int(1)]);
            let unknown = matches!(&r, Err(Error::Invalid { message, .. }) if message.contains("unknown function"));
            assert!(!unknown, "{f}: {r:?}");
        }
    }

    #[test]
    fn parameters_take_the_stored_form_of_their_field() {
        let Ok(kvm_lang::Statement::DefineModel(d)) = kvm_lang::parse_statement(
            "DEFINE MODEL u (id UUID PRIMARY KEY, e STRING TRIM LOWERCASE, at TIMESTAMP)",
        ) else {
            panic!("definition")
        };
        let catalog = kvm_planner::Catalog::new(
            kvm_planner::Model::from_def(&d, &[]).map(|m| vec![m]).unwrap_or_default(),
        );
        let params = Params::none();
        let env = Env { params: &params, ids: &Fixed, row: None, catalog: Some(&catalog) };
        let s = |v: &str| Expr::new(ExprKind::Literal(Literal::String(v.into())));
        let stored = |v: &str, field: &str| {
            env.eval(&Expr::new(ExprKind::Call {
                name: Ident::new(kvm_planner::STORED),
                args: CallArgs::List(vec![s(v), s("u"), s(field)]),
            }))
            .ok()
        };
        assert_eq!(stored(" Ann@X ", "e"), Some(Value::String("ann@x".into())));
        assert_eq!(
            stored("{67E55044-10B1-426F-9247-BB680E5FE0C8}", "id"),
            Some(Value::String("67e55044-10b1-426f-9247-bb680e5fe0c8".into()))
        );
        assert_eq!(
            stored("2025-01-01 00:00:00", "at"),
            parse_timestamp("2025-01-01T00:00:00Z").map(Value::Timestamp)
        );
        assert_eq!(stored("nope", "at"), Some(Value::String("nope".into())));
        // Without the catalog the wrapper cannot know the field: an error, never a guess.
        assert!(call(kvm_planner::STORED, vec![s("x"), s("u"), s("e")]).is_err());
    }

    #[test]
    fn limit_plus_offset_saturates() {
        assert_eq!(
            call(kvm_planner::SAT_ADD, vec![int(i64::MAX), int(1)]).ok(),
            Some(Value::Int(i64::MAX))
        );
        assert_eq!(call(kvm_planner::SAT_ADD, vec![int(2), int(3)]).ok(), Some(Value::Int(5)));
        assert!(call(kvm_planner::SAT_ADD, vec![int(-1), int(3)]).is_err());
    }
}
