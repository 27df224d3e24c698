//! Expression evaluation over one row: literals, parameters, field paths, operators, `IN`,
//! `BETWEEN`, `LIKE`, and the built-in functions (`now()`, `ulid()`, `uuid()`, `lower`,
//! `upper`, `trim`, `length`, `abs`, `coalesce`, `years_since`). Comparisons with null are
//! null; a filter keeps a row only when its predicate is `true`.

use std::borrow::Cow;
use std::cmp::Ordering;

use kvm_lang::ast::{BinaryOp, UnaryOp};
use kvm_planner::{Func, Scalar, ScalarKind};
use kvm_storage::Value;

use crate::error::{Error, Result};
use crate::params::Params;
use crate::values::{compare, parse_date, truthy};

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
}

/// The longest string `concat` or `replace` builds (16 MiB): a value larger than any one
/// stored is refused instead of allocated.
const MAX_BUILT_STRING: usize = 16 << 20;

fn too_long(func: &str, e: &Scalar) -> Error {
    err(format!("{func}() would build a string of more than {MAX_BUILT_STRING} bytes"), e)
}

fn err(msg: impl Into<String>, e: &Scalar) -> Error {
    Error::Invalid {
        code: "kvm.eval",
        message: msg.into(),
        span: (!e.span.is_empty()).then_some(e.span),
        help: None,
    }
}

impl Env<'_> {
    /// Evaluates `e`.
    pub fn eval(&self, e: &Scalar) -> Result<Value> {
        // Leaves, the most common case, need no operand stack.
        if is_leaf(e) {
            return self.leaf(e);
        }
        let mut operands = Vec::new();
        self.walk(e, &mut operands).map_err(|e| *e)?;
        operands.pop().ok_or_else(|| underflow(e))
    }

    /// Whether a predicate holds.
    pub fn test(&self, e: &Scalar) -> Result<bool> {
        Ok(truthy(&self.eval(e)?))
    }

    /// [`Env::eval`], borrowing the value when it is a constant, a plain parameter or a
    /// whole field of the row (a sort key: copied only when the row is kept).
    pub fn eval_ref<'v>(&'v self, e: &'v Scalar) -> Result<Cow<'v, Value>> {
        match self.leaf_ref(e) {
            Some(v) => Ok(Cow::Borrowed(v)),
            None => self.eval(e).map(Cow::Owned),
        }
    }

    /// The value of a leaf that needs no conversion, borrowed: a constant, a parameter (not
    /// compared with a field, or already in the field's stored form), or a whole field of
    /// the row.
    fn leaf_ref<'v>(&'v self, e: &'v Scalar) -> Option<&'v Value> {
        match &e.kind {
            ScalarKind::Const { value, .. } => Some(value),
            ScalarKind::Param { param, form } => {
                // Compared with a field: borrowed when its stored form is the value itself
                // (the common case), so a scan does not convert it once per record.
                let v = self.params.get(param).ok()?;
                form.as_ref().is_none_or(|f| kvm_planner::compared_as_is(f, v)).then_some(v)
            }
            ScalarKind::Field { slot, path } if path.segments.len() == 1 => {
                self.row.map(|r| r.slot(*slot))
            }
            ScalarKind::Output { slot, .. } => self.row.map(|r| r.slot(*slot)),
            _ => None,
        }
    }

    /// A comparison of two borrowed leaves (`field = $1`, `a < 5`), without copying either:
    /// the common predicate, evaluated once per record a scan reads.
    fn compare_leaves(&self, e: &Scalar) -> Option<Value> {
        let ScalarKind::Binary { op, lhs, rhs } = &e.kind else { return None };
        if !op.is_comparison() {
            return None;
        }
        Some(comparison(*op, self.leaf_ref(lhs)?, self.leaf_ref(rhs)?))
    }

    /// Evaluates `e` onto `operands`: pushes the values of its operands, in order, then
    /// [`Env::apply`] replaces them with its value.
    ///
    /// An expression tree may be [`kvm_lang::MAX_EXPR_DEPTH`] deep and this frame is on the
    /// stack once per level, so it holds no values and builds no messages: both live in
    /// `apply`, which runs after the operands are done. Its error is boxed because an
    /// unoptimized build gives every `?` its own copies of the (large) error.
    fn walk(&self, e: &Scalar, operands: &mut Vec<Value>) -> Result<(), Box<Error>> {
        if let Some(v) = self.compare_leaves(e) {
            operands.push(v);
            return Ok(());
        }
        match &e.kind {
            ScalarKind::InValue { list, .. }
                if matches!(list.kind, ScalarKind::Subquery { exists: false, .. }) =>
            {
                return self.in_subquery(e, operands);
            }
            ScalarKind::Case { .. } => return self.case(e, operands),
            ScalarKind::Unary { expr, .. } | ScalarKind::IsNull { expr, .. } => {
                self.walk(expr, operands)?
            }
            ScalarKind::Binary { op, lhs, rhs } => {
                self.walk(lhs, operands)?;
                if decided(*op, operands) {
                    // The left side's value is the result; the right side is not evaluated.
                    return Ok(());
                }
                self.walk(rhs, operands)?;
            }
            ScalarKind::InList { expr, items, .. } => {
                self.walk(expr, operands)?;
                self.walk_all(items, operands)?;
            }
            ScalarKind::InValue { expr, list, .. } => {
                self.walk(expr, operands)?;
                self.walk(list, operands)?;
            }
            ScalarKind::Between { expr, low, high, .. } => {
                self.walk(expr, operands)?;
                self.walk(low, operands)?;
                self.walk(high, operands)?;
            }
            ScalarKind::Call { args, .. } | ScalarKind::Array(args) => {
                self.walk_all(args, operands)?
            }
            ScalarKind::Object(fields) => {
                for (_, v) in fields {
                    self.walk(v, operands)?;
                }
            }
            ScalarKind::Const { .. }
            | ScalarKind::Param { .. }
            | ScalarKind::Field { .. }
            | ScalarKind::Related { .. }
            | ScalarKind::Computed { .. }
            | ScalarKind::Output { .. }
            | ScalarKind::Subquery { .. } => {}
        }
        self.apply(e, operands).map_err(Box::new)
    }

    /// `x [NOT] IN (SELECT …)`: the subquery's values, sorted once, searched (no copy).
    /// Out of `walk`'s frame, which is on the stack once per level of the tree.
    #[inline(never)]
    fn in_subquery(&self, e: &Scalar, operands: &mut Vec<Value>) -> Result<(), Box<Error>> {
        let ScalarKind::InValue { expr, list, negated } = &e.kind else {
            return Err(Box::new(underflow(e)));
        };
        let ScalarKind::Subquery { key, .. } = &list.kind else {
            return Err(Box::new(underflow(e)));
        };
        let v = self.eval(expr)?;
        let values = self.params.get(&kvm_planner::ir::subquery_param(key))?;
        operands.push(in_sorted(&v, values, *negated));
        Ok(())
    }

    /// `CASE`: the first branch whose condition is true (or whose value equals the
    /// operand: NULL equals nothing), else `ELSE`, else NULL. Only the chosen branch is
    /// evaluated (another may divide by zero). Out of `walk`'s frame.
    #[inline(never)]
    fn case(&self, e: &Scalar, operands: &mut Vec<Value>) -> Result<(), Box<Error>> {
        let ScalarKind::Case { operand, branches, otherwise } = &e.kind else {
            return Err(Box::new(underflow(e)));
        };
        let v = self.case_value(operand.as_deref(), branches, otherwise.as_deref())?;
        operands.push(v);
        Ok(())
    }

    fn case_value(
        &self,
        operand: Option<&Scalar>,
        branches: &[(Scalar, Scalar)],
        otherwise: Option<&Scalar>,
    ) -> Result<Value, Box<Error>> {
        let subject = operand.map(|o| self.eval(o)).transpose()?;
        for (when, then) in branches {
            let hit = match &subject {
                Some(s) => compare(s, &self.eval(when)?) == Some(Ordering::Equal),
                None => self.test(when)?,
            };
            if hit {
                return Ok(self.eval(then)?);
            }
        }
        Ok(otherwise.map(|o| self.eval(o)).transpose()?.unwrap_or(Value::Null))
    }

    fn walk_all(&self, items: &[Scalar], operands: &mut Vec<Value>) -> Result<(), Box<Error>> {
        for x in items {
            self.walk(x, operands)?;
        }
        Ok(())
    }

    /// Replaces the values of `e`'s operands, on top of `operands`, with `e`'s value.
    fn apply(&self, e: &Scalar, operands: &mut Vec<Value>) -> Result<()> {
        let v = match &e.kind {
            _ if is_leaf(e) => self.leaf(e)?,
            ScalarKind::Unary { op, .. } => {
                let [v] = top(operands, e)?;
                unary(*op, v, e)?
            }
            ScalarKind::IsNull { negated, .. } => {
                let [v] = top(operands, e)?;
                Value::Bool(matches!(v, Value::Null) != *negated)
            }
            // (Not reached when the left side decided: `walk` left it as the value.)
            ScalarKind::Binary { op, .. } => {
                let [l, r] = top(operands, e)?;
                binary(*op, l, r, e)?
            }
            ScalarKind::InList { items, negated, .. } => {
                let list = Value::Array(take(operands, items.len(), e)?);
                let [v] = top(operands, e)?;
                in_list(v, list, *negated, e)?
            }
            ScalarKind::InValue { list: at, negated, .. } => {
                let [v, list] = top(operands, e)?;
                in_list(v, list, *negated, at)?
            }
            ScalarKind::Between { negated, .. } => {
                let [v, lo, hi] = top(operands, e)?;
                between(&v, &lo, &hi, *negated)
            }
            ScalarKind::Call { func, name, args } => {
                self.call(*func, name, take(operands, args.len(), e)?, e)?
            }
            ScalarKind::Array(items) => Value::Array(take(operands, items.len(), e)?),
            ScalarKind::Object(fields) => {
                let values = take(operands, fields.len(), e)?;
                Value::Object(fields.iter().map(|(k, _)| k.clone()).zip(values).collect())
            }
            _ => return Err(underflow(e)),
        };
        operands.push(v);
        Ok(())
    }

    /// A constant, a parameter (in the stored form of the field it is compared with), a
    /// field of the row, or a value an `Attach` step computed for the row.
    fn leaf(&self, e: &Scalar) -> Result<Value> {
        match &e.kind {
            ScalarKind::Const { value, .. } => Ok(value.clone()),
            ScalarKind::Param { param, form } => {
                let v = self.params.get(param)?;
                Ok(match form {
                    Some(f) if !kvm_planner::compared_as_is(f, v) => {
                        kvm_planner::compared_form(f, v.clone())
                    }
                    _ => v.clone(),
                })
            }
            ScalarKind::Field { slot, path } => {
                let Some(row) = self.row else {
                    return Err(err(
                        format!("`{path}` names a field, but there is no record here"),
                        e,
                    ));
                };
                let v = row.slot(*slot);
                if path.segments.len() == 1 {
                    return Ok(v.clone());
                }
                Ok(members(v, &path.segments[1..]))
            }
            ScalarKind::Related { path } => {
                let v = self.row.and_then(|r| r.get(&path.segments[0].name));
                Ok(members(v.unwrap_or(&Value::Null), &path.segments[1..]))
            }
            ScalarKind::Output { slot, .. } => {
                Ok(self.row.map_or(Value::Null, |r| r.slot(*slot).clone()))
            }
            // Run before the statement, bound under a name of its own.
            ScalarKind::Subquery { key, .. } => {
                Ok(self.params.get(&kvm_planner::ir::subquery_param(key))?.clone())
            }
            ScalarKind::Computed { column } => match self.row.and_then(|r| r.get(column)) {
                Some(v) => Ok(v.clone()),
                None => Err(Error::unsupported(&format!("{column} here"), e.span)),
            },
            _ => Err(underflow(e)),
        }
    }

    /// A function applied to its evaluated arguments.
    fn call(&self, func: Func, name: &str, args: Vec<Value>, e: &Scalar) -> Result<Value> {
        let one = |f: &dyn Fn(&Value) -> Option<Value>| -> Result<Value> {
            match args.as_slice() {
                [Value::Null] => Ok(Value::Null),
                [v] => f(v).ok_or_else(|| {
                    err(format!("{name}() cannot take {}", crate::values::kql(v)), e)
                }),
                _ => Err(err(format!("{name}() takes one argument"), e)),
            }
        };
        match func {
            Func::Now => Ok(Value::Timestamp(self.ids.now_micros())),
            Func::Ulid => Ok(Value::String(self.ids.ulid())),
            Func::Uuid => Ok(Value::String(self.ids.uuid())),
            Func::Lower => one(&|v| match v {
                Value::String(s) => Some(Value::String(s.to_lowercase())),
                _ => None,
            }),
            Func::Upper => one(&|v| match v {
                Value::String(s) => Some(Value::String(s.to_uppercase())),
                _ => None,
            }),
            Func::Trim => one(&|v| match v {
                Value::String(s) => Some(Value::String(s.trim().to_string())),
                _ => None,
            }),
            Func::Length => one(&|v| match v {
                Value::String(s) => Some(Value::Int(s.chars().count() as i64)),
                Value::Array(a) => Some(Value::Int(a.len() as i64)),
                Value::Bytes(b) => Some(Value::Int(b.len() as i64)),
                _ => None,
            }),
            Func::Abs => one(&|v| match v {
                Value::Int(i) => i.checked_abs().map(Value::Int),
                Value::Float(f) => Some(Value::Float(f.abs())),
                Value::Counter(c) => Some(Value::Counter(*c)),
                _ => None,
            }),
            Func::Coalesce => {
                Ok(args.into_iter().find(|v| !matches!(v, Value::Null)).unwrap_or(Value::Null))
            }
            Func::Concat => {
                // NULLs are skipped (as PostgreSQL's concat); numbers and booleans are
                // written as KQL writes them.
                let mut out = String::new();
                for v in &args {
                    push_text(&mut out, v).map_err(|m| err(format!("concat() {m}"), e))?;
                    if out.len() > MAX_BUILT_STRING {
                        return Err(too_long("concat", e));
                    }
                }
                Ok(Value::String(out))
            }
            Func::Substr => {
                let (s, start, len) = match args.as_slice() {
                    [Value::Null, ..] | [_, Value::Null, ..] | [_, _, Value::Null] => {
                        return Ok(Value::Null)
                    }
                    [Value::String(s), Value::Int(start)] => (s, *start, None),
                    [Value::String(s), Value::Int(start), Value::Int(len)] => {
                        (s, *start, Some(*len))
                    }
                    _ => {
                        return Err(err(
                            "substr() takes a string, a start (1 is the first character) and \
                             an optional length",
                            e,
                        ))
                    }
                };
                if start < 1 || len.is_some_and(|l| l < 0) {
                    return Err(err(
                        format!(
                            "substr() counts from 1 and takes a length of 0 or more (got start \
                             {start}{})",
                            len.map(|l| format!(", length {l}")).unwrap_or_default()
                        ),
                        e,
                    ));
                }
                let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
                let chars = s.chars().skip(skip);
                Ok(Value::String(match len {
                    Some(l) => chars.take(usize::try_from(l).unwrap_or(usize::MAX)).collect(),
                    None => chars.collect(),
                }))
            }
            Func::Replace => match args.as_slice() {
                [Value::Null, ..] | [_, Value::Null, _] | [_, _, Value::Null] => Ok(Value::Null),
                [Value::String(s), Value::String(from), Value::String(to)] => {
                    if from.is_empty() {
                        return Ok(Value::String(s.clone()));
                    }
                    // The result's length is known before it is built: refuse rather than
                    // allocate what a pattern could blow up.
                    let n = s.matches(from.as_str()).count();
                    let len = s.len() - n * from.len() + n.saturating_mul(to.len());
                    if len > MAX_BUILT_STRING {
                        return Err(too_long("replace", e));
                    }
                    Ok(Value::String(s.replace(from.as_str(), to)))
                }
                _ => Err(err("replace() takes three strings: text, what, and its replacement", e)),
            },
            Func::Round => match args.as_slice() {
                [Value::Null] | [Value::Null, _] | [_, Value::Null] => Ok(Value::Null),
                [v] | [v, Value::Int(_)] => {
                    let digits = match args.get(1) {
                        Some(Value::Int(d)) if (0..=15).contains(d) => *d as i32,
                        Some(Value::Int(d)) => {
                            return Err(err(format!("round() takes 0 to 15 digits (got {d})"), e))
                        }
                        _ => 0,
                    };
                    match v {
                        Value::Int(_) | Value::Counter(_) => Ok(v.clone()),
                        Value::Float(f) => {
                            let scale = 10f64.powi(digits);
                            let r = (f * scale).round() / scale;
                            // (A value too large to scale stays as it was: it has no
                            // fractional digits to round.)
                            Ok(Value::Float(if r.is_finite() { r } else { *f }))
                        }
                        other => {
                            let shown = crate::values::kql(other);
                            Err(err(format!("round() cannot take {shown}"), e))
                        }
                    }
                }
                _ => Err(err("round() takes a number and an optional count of digits", e)),
            },
            Func::Floor | Func::Ceil => one(&|v| match v {
                Value::Int(_) | Value::Counter(_) => Some(v.clone()),
                Value::Float(f) => {
                    Some(Value::Float(if func == Func::Floor { f.floor() } else { f.ceil() }))
                }
                _ => None,
            }),
            Func::Mod => match args.as_slice() {
                [Value::Null, _] | [_, Value::Null] => Ok(Value::Null),
                [a, b] => arith(BinaryOp::Rem, a, b).ok_or_else(|| {
                    let (a, b) = (crate::values::kql(a), crate::values::kql(b));
                    err(format!("mod() cannot take {a} and {b} (numbers, and not by zero)"), e)
                }),
                _ => Err(err("mod() takes two numbers", e)),
            },
            Func::NullIf => match args.as_slice() {
                [a, b] => {
                    Ok(if compare(a, b) == Some(Ordering::Equal) { Value::Null } else { a.clone() })
                }
                _ => Err(err("nullif() takes two arguments", e)),
            },
            Func::Split => match args.as_slice() {
                [Value::Null, _] | [_, Value::Null] => Ok(Value::Null),
                [Value::String(s), Value::String(sep)] => {
                    if sep.is_empty() {
                        return Err(err("split() needs a non-empty separator", e));
                    }
                    Ok(Value::Array(
                        s.split(sep.as_str()).map(|p| Value::String(p.into())).collect(),
                    ))
                }
                _ => Err(err("split() takes a string and a separator string", e)),
            },
            Func::DateTrunc | Func::Extract => match args.as_slice() {
                [_, Value::Null] | [Value::Null, _] => Ok(Value::Null),
                [Value::String(unit), Value::Timestamp(t)] => {
                    let r = if func == Func::DateTrunc {
                        crate::values::date_trunc(unit, *t).map(Value::Timestamp)
                    } else {
                        crate::values::extract(unit, *t)
                    };
                    r.ok_or_else(|| {
                        let units = if func == Func::DateTrunc {
                            crate::values::TRUNC_UNITS
                        } else {
                            crate::values::EXTRACT_UNITS
                        };
                        err(format!("{name}(): unknown unit '{unit}' (one of {units})"), e)
                    })
                }
                _ => Err(err(format!("{name}() takes a unit ('day', …) and a timestamp"), e)),
            },
            Func::Date => one(&|v| match v {
                Value::Timestamp(t) => {
                    let (y, m, d) = crate::values::civil_from_days(t.div_euclid(86_400_000_000));
                    Some(Value::String(format!("{y:04}-{m:02}-{d:02}")))
                }
                Value::String(s) => parse_date(s).map(|_| Value::String(s.clone())).or_else(|| {
                    let t = crate::values::parse_timestamp(s)?;
                    let (y, m, d) = crate::values::civil_from_days(t.div_euclid(86_400_000_000));
                    Some(Value::String(format!("{y:04}-{m:02}-{d:02}")))
                }),
                _ => None,
            }),
            Func::YearsSince => {
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
        }
    }
}

/// The members `path` names inside `v` (`meta.a.b`): null where one is missing.
fn members(v: &Value, path: &[kvm_lang::ast::Ident]) -> Value {
    let mut v = v;
    for seg in path {
        v = match v {
            Value::Object(m) => match m.get(&seg.name) {
                Some(x) => x,
                None => return Value::Null,
            },
            _ => return Value::Null,
        };
    }
    v.clone()
}

/// Constants, parameters, fields and attached values: what has no operands to evaluate.
fn is_leaf(e: &Scalar) -> bool {
    matches!(
        e.kind,
        ScalarKind::Const { .. }
            | ScalarKind::Param { .. }
            | ScalarKind::Field { .. }
            | ScalarKind::Related { .. }
            | ScalarKind::Computed { .. }
            | ScalarKind::Output { .. }
            | ScalarKind::Subquery { .. }
    )
}

/// An operand missing on the stack: a bug of [`Env::walk`], reported rather than panicking.
fn underflow(e: &Scalar) -> Error {
    err("internal error: an operand is missing", e)
}

/// The top `N` operands, in the order they were pushed.
fn top<const N: usize>(operands: &mut Vec<Value>, e: &Scalar) -> Result<[Value; N]> {
    let at = operands.len().checked_sub(N).ok_or_else(|| underflow(e))?;
    let mut values = operands.drain(at..);
    Ok(std::array::from_fn(|_| values.next().unwrap_or(Value::Null)))
}

/// The top `n` operands, in the order they were pushed.
fn take(operands: &mut Vec<Value>, n: usize, e: &Scalar) -> Result<Vec<Value>> {
    let at = operands.len().checked_sub(n).ok_or_else(|| underflow(e))?;
    Ok(operands.split_off(at))
}

fn unary(op: UnaryOp, v: Value, e: &Scalar) -> Result<Value> {
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
fn binary(op: BinaryOp, l: Value, r: Value, e: &Scalar) -> Result<Value> {
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
    Ok(match op {
        Eq | NotEq | Lt | LtEq | Gt | GtEq => comparison(op, &l, &r),
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
        Concat => {
            let mut out = String::new();
            push_text(&mut out, &l).map_err(|m| err(format!("|| {m}"), e))?;
            push_text(&mut out, &r).map_err(|m| err(format!("|| {m}"), e))?;
            if out.len() > MAX_BUILT_STRING {
                return Err(too_long("||", e));
            }
            Value::String(out)
        }
        ILike | NotILike => match (&l, &r) {
            (Value::String(s), Value::String(p)) => {
                Value::Bool(like(&s.to_lowercase(), &p.to_lowercase()) == (op == ILike))
            }
            _ => return Err(err("ILIKE needs strings", e)),
        },
        Matches | NotMatches => match (&l, &r) {
            (Value::String(s), Value::String(p)) => {
                let found = with_regex(p, |re| re.is_match(s)).map_err(|m| err(m, e))?;
                Value::Bool(found == (op == Matches))
            }
            _ => return Err(err(format!("{} needs strings", op.as_str()), e)),
        },
        And | Or => Value::Null,
    })
}

/// Appends `v` as text: strings as they are, numbers and booleans as KQL writes them.
fn push_text(out: &mut String, v: &Value) -> std::result::Result<(), String> {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Counter(c) => out.push_str(&c.to_string()),
        Value::Float(f) => out.push_str(&crate::values::kql(&Value::Float(*f))),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Timestamp(t) => out.push_str(&crate::values::format_timestamp(*t)),
        other => return Err(format!("cannot take {}", crate::values::kql(other))),
    }
    Ok(())
}

/// The longest regular expression accepted, in bytes.
pub const MAX_REGEX: usize = 4096;

/// Runs `f` with `pattern` compiled — once per thread for the last few patterns, so a scan
/// compiles its pattern once, not once per record. A pattern that does not compile, is
/// longer than [`MAX_REGEX`] or compiles to more than 1 MiB is an error naming why (the
/// engine matches in time linear in the text; there is no backtracking to blow up).
pub fn with_regex<T>(
    pattern: &str,
    f: impl FnOnce(&regex::Regex) -> T,
) -> std::result::Result<T, String> {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<Vec<(String, regex::Regex)>> = const { RefCell::new(Vec::new()) };
    }
    if pattern.len() > MAX_REGEX {
        return Err(format!(
            "a regular expression is at most {MAX_REGEX} bytes (this one is {})",
            pattern.len()
        ));
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(i) = cache.iter().position(|(p, _)| p == pattern) {
            return Ok(f(&cache[i].1));
        }
        let re = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => {
                    "the regular expression is too large once compiled (over 1 MiB)".to_string()
                }
                // A syntax error prints the pattern with a caret over lines: its last
                // line says what is wrong.
                other => {
                    let text = other.to_string();
                    let why = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                    let why = why.trim().trim_start_matches("error: ");
                    format!("bad regular expression '{pattern}': {why}")
                }
            })?;
        let out = f(&re);
        if cache.len() >= 16 {
            cache.remove(0);
        }
        cache.push((pattern.to_string(), re));
        Ok(out)
    })
}

/// A predicate comparing one field of the row with a value fixed for the whole statement
/// (`status = $1`, `age < 30`, `5 < age`): a scan tests it with one comparison per record,
/// with no expression walk. Its answer is the one [`Env::test`] gives.
pub struct FieldTest<'v> {
    slot: usize,
    test: Test<'v>,
}

enum Test<'v> {
    /// `field op value` (`field_left`) or `value op field`.
    Compare { op: BinaryOp, value: &'v Value, field_left: bool },
    /// `field [NOT] LIKE 'pattern'`, the pattern split once.
    Like { pattern: LikePattern, like: bool },
}

impl<'v> FieldTest<'v> {
    /// The field test `e` is, if it is one: a comparison of a whole field with a constant,
    /// or with a parameter already in the field's stored form; or a field `LIKE` a constant
    /// or parameter string.
    pub fn of(params: &'v Params, e: &'v Scalar) -> Option<FieldTest<'v>> {
        let ScalarKind::Binary { op, lhs, rhs } = &e.kind else { return None };
        let fixed = |x: &'v Scalar| -> Option<&'v Value> {
            match &x.kind {
                ScalarKind::Const { value, .. } => Some(value),
                ScalarKind::Param { param, form } => {
                    let v = params.get(param).ok()?;
                    form.as_ref().is_none_or(|f| kvm_planner::compared_as_is(f, v)).then_some(v)
                }
                _ => None,
            }
        };
        let slot = |x: &Scalar| match &x.kind {
            ScalarKind::Field { slot, path } if path.segments.len() == 1 => Some(*slot),
            _ => None,
        };
        if matches!(op, BinaryOp::Like | BinaryOp::NotLike) {
            let Value::String(p) = fixed(rhs)? else { return None };
            let test = Test::Like { pattern: LikePattern::new(p), like: *op == BinaryOp::Like };
            return Some(FieldTest { slot: slot(lhs)?, test });
        }
        if !op.is_comparison() {
            return None;
        }
        let compare = |value, field_left| Test::Compare { op: *op, value, field_left };
        match (slot(lhs), slot(rhs)) {
            (Some(s), None) => Some(FieldTest { slot: s, test: compare(fixed(rhs)?, true) }),
            (None, Some(s)) => Some(FieldTest { slot: s, test: compare(fixed(lhs)?, false) }),
            _ => None,
        }
    }

    /// Whether the row passes; `None` when the test cannot say (a `LIKE` on a value that
    /// is not a string: [`Env::test`] gives the error).
    #[inline]
    pub fn holds(&self, row: &Row) -> Option<bool> {
        let field = row.slot(self.slot);
        match &self.test {
            Test::Compare { op, value, field_left } => {
                let v = if *field_left {
                    comparison(*op, field, value)
                } else {
                    comparison(*op, value, field)
                };
                Some(truthy(&v))
            }
            Test::Like { pattern, like } => match field {
                Value::Null => Some(false),
                Value::String(s) => Some(pattern.matches(s) == *like),
                _ => None,
            },
        }
    }
}

/// `l op r` for a comparison operator: null when either side is null or they do not
/// compare (values of unrelated types).
fn comparison(op: BinaryOp, l: &Value, r: &Value) -> Value {
    use BinaryOp::*;
    if matches!(l, Value::Null) || matches!(r, Value::Null) {
        return Value::Null;
    }
    let Some(o) = compare(l, r) else { return Value::Null };
    Value::Bool(match op {
        Eq => o == Ordering::Equal,
        NotEq => o != Ordering::Equal,
        Lt => o == Ordering::Less,
        LtEq => o != Ordering::Greater,
        Gt => o == Ordering::Greater,
        GtEq => o != Ordering::Less,
        _ => return Value::Null,
    })
}

/// `v [NOT] IN list`, three-valued as in SQL: true when an item equals `v`, else null when
/// an item is null (it might have), else false; `NOT IN` negates that (null stays null).
/// `list` is the evaluated `(…)` list as an array, or the value of `IN expr` (then `e`, where
/// an error points, is that expression).
fn in_list(v: Value, list: Value, negated: bool, e: &Scalar) -> Result<Value> {
    let list = match list {
        Value::Array(a) => a,
        Value::Null => return Ok(Value::Null),
        other => {
            return Err(err(format!("IN needs a list, got {}", crate::values::kql(&other)), e));
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

/// `v [NOT] IN` a subquery's values, sorted in [`crate::values::total_cmp`] order with a
/// NULL (if any) first: the answer of [`in_list`], by binary search.
fn in_sorted(v: &Value, values: &Value, negated: bool) -> Value {
    let Value::Array(values) = values else { return Value::Null };
    if matches!(v, Value::Null) {
        return Value::Null;
    }
    if values.binary_search_by(|x| crate::values::total_cmp(x, v)).is_ok() {
        // (total_cmp orders types apart; equal here is equal as `=` compares.)
        return Value::Bool(!negated);
    }
    if matches!(values.first(), Some(Value::Null)) {
        return Value::Null;
    }
    Value::Bool(negated)
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
        // A timestamp moved by a duration (`now() - '7d'`), and the seconds between two.
        (Value::Timestamp(t), Value::String(d)) if matches!(op, Add | Sub) => {
            let micros =
                i64::try_from(kvm_lang::parse_duration(d).ok()?).ok()?.checked_mul(1000)?;
            let moved = if op == Add { t.checked_add(micros)? } else { t.checked_sub(micros)? };
            Some(Value::Timestamp(moved))
        }
        (Value::String(d), Value::Timestamp(t)) if op == Add => {
            let micros =
                i64::try_from(kvm_lang::parse_duration(d).ok()?).ok()?.checked_mul(1000)?;
            Some(Value::Timestamp(t.checked_add(micros)?))
        }
        (Value::Timestamp(a), Value::Timestamp(b)) if op == Sub => {
            Some(Value::Float(a.checked_sub(*b)? as f64 / 1e6))
        }
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

/// SQL `LIKE`: `%` any run of characters, `_` exactly one (case-sensitive, no escape).
///
/// The pattern is split at its `%`s into segments: the first must match at the start, the
/// last at the end, and each one between is found leftmost in what the previous left — with
/// only `%` between them, the leftmost match of each segment is always a right choice. So
/// matching takes memory for the segment list only (a table of `len(text) × len(pattern)`
/// booleans used to be allocated per row: a gigabyte for a 1 MB value and a 1,000-character
/// pattern) and, for segments without `_`, linear time (`str::find`).
pub fn like(s: &str, pattern: &str) -> bool {
    LikePattern::new(pattern).matches(s)
}

/// A `LIKE` pattern split at its `%`s, once (a scan matches every record against it).
pub struct LikePattern {
    /// The segment before the first `%` (the whole pattern when there is none).
    first: String,
    /// The segments between `%`s (empty ones dropped).
    middle: Vec<String>,
    /// The segment after the last `%`; `None` when there is no `%`.
    last: Option<String>,
    /// `last`'s length in characters.
    last_chars: usize,
}

impl LikePattern {
    pub fn new(pattern: &str) -> LikePattern {
        let mut segments = pattern.split('%');
        let first = segments.next().unwrap_or("").to_string();
        let mut middle: Vec<String> = segments.map(str::to_string).collect();
        let last = middle.pop();
        middle.retain(|seg| !seg.is_empty());
        let last_chars = last.as_ref().map_or(0, |l| l.chars().count());
        LikePattern { first, middle, last, last_chars }
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        let Some(mut rest) = segment_prefix(s, &self.first).map(|n| &s[n..]) else {
            return false;
        };
        let Some(last) = &self.last else {
            // No `%`: the whole text must be the one segment.
            return rest.is_empty();
        };
        for seg in &self.middle {
            match find_segment(rest, seg) {
                Some(end) => rest = &rest[end..],
                None => return false,
            }
        }
        // The last segment ends the text: its length in characters, from the end of `rest`.
        let at = match self.last_chars {
            0 => rest.len(),
            n => match rest.char_indices().rev().nth(n - 1) {
                Some((i, _)) => i,
                None => return false, // shorter than the last segment
            },
        };
        segment_prefix(&rest[at..], last) == Some(rest.len() - at)
    }
}

/// How many bytes of `s` the segment `seg` (`_`: any one character) matches at its start.
fn segment_prefix(s: &str, seg: &str) -> Option<usize> {
    let mut text = s.char_indices();
    for p in seg.chars() {
        let (_, c) = text.next()?;
        if p != '_' && p != c {
            return None;
        }
    }
    Some(text.next().map_or(s.len(), |(i, _)| i))
}

/// Where the leftmost match of `seg` in `s` ends (a byte offset), if any.
fn find_segment(s: &str, seg: &str) -> Option<usize> {
    if !seg.contains('_') {
        return s.find(seg).map(|i| i + seg.len());
    }
    s.char_indices().find_map(|(i, _)| segment_prefix(&s[i..], seg).map(|n| i + n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_planner::{Model, Scope};

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

    fn model(def: &str) -> Model {
        let Ok(kvm_lang::Statement::DefineModel(d)) = kvm_lang::parse_statement(def) else {
            panic!("definition")
        };
        Model::from_def(&d, &[]).expect("model")
    }

    /// `text` (a `WHERE` clause of `SELECT * FROM u`) lowered against `m`.
    fn lowered(m: &Model, text: &str) -> Scalar {
        let Ok(kvm_lang::Statement::Select(s)) =
            kvm_lang::parse_statement(&format!("SELECT * FROM u WHERE {text}"))
        else {
            panic!("query")
        };
        Scope::row(m).lower(s.filter.as_ref().expect("filter")).expect("lowered")
    }

    #[test]
    fn parameters_take_the_stored_form_of_the_field_they_are_compared_with() {
        let m =
            model("DEFINE MODEL u (id UUID PRIMARY KEY, e STRING TRIM LOWERCASE, at TIMESTAMP)");
        // The value side of `field = $v`, evaluated with `v` bound.
        let stored = |text: &str, v: &str| {
            let ScalarKind::Binary { rhs, .. } = lowered(&m, text).kind else {
                panic!("comparison")
            };
            let params = Params::none().with("v", v);
            Env { params: &params, ids: &Fixed, row: None }.eval(&rhs).ok()
        };
        assert_eq!(stored("e = $v", " Ann@X "), Some(Value::String("ann@x".into())));
        assert_eq!(
            stored("id = $v", "{67E55044-10B1-426F-9247-BB680E5FE0C8}"),
            Some(Value::String("67e55044-10b1-426f-9247-bb680e5fe0c8".into()))
        );
        assert_eq!(
            stored("at = $v", "2025-01-01 00:00:00"),
            crate::values::parse_timestamp("2025-01-01T00:00:00Z").map(Value::Timestamp)
        );
        // A value that cannot take the stored form is compared as itself (it equals nothing).
        assert_eq!(stored("at = $v", "nope"), Some(Value::String("nope".into())));
        // Not compared with a field: the value as given.
        assert_eq!(stored("$v = $v", " X "), Some(Value::String(" X ".into())));
    }

    #[test]
    fn fields_are_read_by_slot_and_literals_are_constants_in_stored_form() {
        let m = model("DEFINE MODEL u (id INT PRIMARY KEY, e STRING LOWERCASE, n INT)");
        let e = lowered(&m, "e = 'ANN' AND n > 1");
        assert_eq!(e.to_string(), "e = 'ann' AND n > 1");
        let mut row = Row::new(&m.slots);
        row.insert("e".into(), Value::String("ann".into()));
        row.insert("n".into(), Value::Int(2));
        let params = Params::none();
        let env = Env { params: &params, ids: &Fixed, row: Some(&row) };
        assert_eq!(env.test(&e).ok(), Some(true));
        // Without a row, a field is an error naming it, not a null.
        let none = Env { params: &params, ids: &Fixed, row: None };
        assert!(none.eval(&e).is_err());
    }

    /// A scan tests `field op value` with `FieldTest` instead of `Env::test`: over every
    /// comparison operator, both operand orders, literals and parameters (as is, and in a
    /// form they must be converted to), and rows with the field of every kind or absent,
    /// the two agree; the shapes it does not cover are left to `Env::test`.
    #[test]
    fn a_field_test_agrees_with_the_evaluator() {
        let m = model("DEFINE MODEL u (id INT PRIMARY KEY, s STRING, l STRING LOWERCASE, n INT)");
        let values = [
            Value::Null,
            Value::Int(1),
            Value::Int(5),
            Value::Float(5.0),
            Value::String("a".into()),
            Value::String("b".into()),
        ];
        let params = Params::none().with("p", "b").with("n", 5i64).with("up", "B");
        let mut covered = 0;
        for field in ["s", "l", "n"] {
            for op in ["=", "!=", "<", "<=", ">", ">=", "LIKE", "NOT LIKE"] {
                for value in ["'b'", "5", "$p", "$n", "$up", "NULL", "'%a%'", "'_'", "'b%'"] {
                    for text in [format!("{field} {op} {value}"), format!("{value} {op} {field}")] {
                        let e = lowered(&m, &text);
                        let Some(t) = FieldTest::of(&params, &e) else { continue };
                        covered += 1;
                        for v in &values {
                            let mut row = Row::new(&m.slots);
                            row.insert(field.into(), v.clone());
                            let env = Env { params: &params, ids: &Fixed, row: Some(&row) };
                            match t.holds(&row) {
                                Some(keep) => assert_eq!(
                                    Ok(keep),
                                    env.test(&e).map_err(|e| e.to_string()),
                                    "{text} with {v:?}"
                                ),
                                // The test leaves the row to the evaluator: an error.
                                None => assert!(env.test(&e).is_err(), "{text} with {v:?}"),
                            }
                        }
                    }
                }
            }
        }
        assert!(covered > 150, "{covered} shapes taken by the fast path");
        // `l = $up` needs `$up` lower-cased: not a field test.
        assert!(FieldTest::of(&params, &lowered(&m, "l = $up")).is_none());
        assert!(FieldTest::of(&params, &lowered(&m, "n + 1 = 5")).is_none());
    }

    /// The definition of `LIKE`, as a table over (text, pattern) prefixes: the reference
    /// the segment matcher is held to.
    fn like_reference(s: &str, pattern: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        let p: Vec<char> = pattern.chars().collect();
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

    #[test]
    fn like_cases() {
        for (s, p, want) in [
            ("ann@example.com", "%@example.com", true),
            ("ann@example.co", "%@example.com", false),
            ("abc", "a_c", true),
            ("abc", "a%", true),
            ("abc", "%c", true),
            ("abc", "%", true),
            ("", "%", true),
            ("", "", true),
            ("a", "", false),
            ("", "_", false),
            ("aaa", "%a%a%a%", true),
            ("aa", "%a%a%a%", false),
            ("abcab", "ab%ab", true),
            ("ab", "ab%ab", false),
            ("héllo wörld", "h_llo%w_rld", true),
            ("héllo", "h_l%", true),
            ("xxyxxxy", "%x_y", true),
            ("mississippi", "%iss%ppi", true),
            ("mississippi", "%ss_ss%", true),
        ] {
            assert_eq!(like(s, p), want, "{s:?} LIKE {p:?}");
            assert_eq!(like_reference(s, p), want, "reference: {s:?} LIKE {p:?}");
        }
    }

    /// A long value against a long pattern: the matcher allocates nothing in proportion to
    /// their product (the old table would have been 1,000,001 × 1,001 booleans).
    #[test]
    fn like_on_a_megabyte_with_a_long_pattern() {
        let text = "x".repeat(1_000_000);
        let pattern = format!("%{}%", "x".repeat(999));
        assert!(like(&text, &pattern));
        let missing = format!("%{}y%", "x".repeat(998));
        assert!(!like(&text, &missing));
        let underscores = format!("%{}y", "_".repeat(998));
        assert!(!like(&text[..20_000], &underscores));
    }

    proptest::proptest! {
        #[test]
        fn like_agrees_with_its_definition(
            s in "[abé]{0,12}",
            p in "[abé%_]{0,8}",
        ) {
            proptest::prop_assert_eq!(like(&s, &p), like_reference(&s, &p), "{:?} LIKE {:?}", s, p);
        }
    }
}
