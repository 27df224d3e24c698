//! Expression nodes: literals, parameters, paths, operators, calls, arrays and objects.

use crate::span::Span;

/// A name: a model, field, relation, index, queue or function. Case is kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The name, without backticks.
    pub name: String,
    /// Where it is.
    pub span: Span,
}

/// A dotted path such as `author.status` (one segment for a plain field name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    /// The segments, never empty.
    pub segments: Vec<Ident>,
    /// Where it is.
    pub span: Span,
}

/// A parameter bound at execution time, never spliced into text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// `$1`, `$2`, … (one-based).
    Positional(u32),
    /// `$name`.
    Named(String),
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `NULL`
    Null,
    /// `TRUE` / `FALSE`
    Bool(bool),
    /// A 64-bit signed integer; `-5` is one literal.
    Int(i64),
    /// A finite 64-bit float.
    Float(f64),
    /// A string, escapes decoded.
    String(String),
    /// `DATE 'YYYY-MM-DD'`.
    Date(String),
    /// `TIMESTAMP 'YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)'`.
    Timestamp(String),
}

/// An expression with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

/// The expression variants.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal value.
    Literal(Literal),
    /// A parameter.
    Param(Param),
    /// A field or a dotted path through relations and objects.
    Path(Path),
    /// A function call; `COUNT(*)` has [`CallArgs::Star`].
    Call {
        /// Function name as written (functions are resolved case-insensitively).
        name: Ident,
        /// Arguments.
        args: CallArgs,
    },
    /// `NOT e` or `-e`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        expr: Box<Expr>,
    },
    /// `lhs op rhs`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `e [NOT] IN (a, b, …)` or `e [NOT] IN $list` / `[…]` / `path`.
    In {
        /// The tested value.
        expr: Box<Expr>,
        /// The candidates.
        rhs: InRhs,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] BETWEEN low AND high` (inclusive).
    Between {
        /// The tested value.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `e IS [NOT] NULL`.
    IsNull {
        /// The tested value.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `EXISTS relation [(WHERE filter)]`: true when a related record (matching) exists.
    Exists {
        /// The relation path, such as `comments` or `author.posts`.
        relation: Path,
        /// Optional filter on the related records.
        filter: Option<Box<Expr>>,
    },
    /// `CASE [operand] WHEN w THEN v … [ELSE e] END`: the value of the first branch whose
    /// condition holds (or whose value equals the operand); `ELSE`'s (or NULL) otherwise.
    Case {
        /// `CASE x WHEN 1 THEN …`: compared with each `WHEN` value.
        operand: Option<Box<Expr>>,
        /// `(when, then)` pairs, in order (at least one).
        branches: Vec<(Expr, Expr)>,
        /// `ELSE`.
        otherwise: Option<Box<Expr>>,
    },
    /// `EXISTS (SELECT …)`: whether an uncorrelated subquery returns a row (run once).
    ExistsSelect(Box<crate::ast::Select>),
    /// `[a, b, …]`
    Array(Vec<Expr>),
    /// `{k: v, …}`
    Object(Vec<ObjectField>),
}

/// Arguments of a call.
#[derive(Clone, Debug, PartialEq)]
pub enum CallArgs {
    /// `(*)`, as in `COUNT(*)`.
    Star,
    /// `(a, b, …)`, possibly empty.
    List(Vec<Expr>),
    /// `(DISTINCT a)`, as in `COUNT(DISTINCT a)`: an aggregate over the distinct values.
    Distinct(Box<Expr>),
}

/// The right-hand side of `IN`.
#[derive(Clone, Debug, PartialEq)]
pub enum InRhs {
    /// A parenthesised list `(a, b, …)`.
    List(Vec<Expr>),
    /// A single array-valued expression: a parameter, an array literal or a path.
    Expr(Box<Expr>),
    /// `(SELECT one_column FROM …)`: an uncorrelated subquery, run once.
    Select(Box<crate::ast::Select>),
}

/// One `key: value` entry of an object literal.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectField {
    /// The key (a bare word, a quoted identifier or a string).
    pub key: Ident,
    /// The value.
    pub value: Expr,
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `NOT`
    Not,
    /// `-`
    Neg,
}

/// Infix operators, loosest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `OR`
    Or,
    /// `AND`
    And,
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `LIKE` (`%` any run, `_` one character)
    Like,
    /// `NOT LIKE`
    NotLike,
    /// `STARTS WITH`
    StartsWith,
    /// `NOT STARTS WITH`
    NotStartsWith,
    /// `CONTAINS` (array element or substring)
    Contains,
    /// `NOT CONTAINS`
    NotContains,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `||`: the two values' text joined
    Concat,
    /// `ILIKE`: `LIKE` ignoring case
    ILike,
    /// `NOT ILIKE`
    NotILike,
    /// `~`: matches a regular expression (anywhere in the text)
    Matches,
    /// `!~`
    NotMatches,
}

/// Binding strength of operators, used by the parser and the printer alike.
pub mod precedence {
    /// `OR`
    pub const OR: u8 = 1;
    /// `AND`
    pub const AND: u8 = 2;
    /// prefix `NOT`
    pub const NOT: u8 = 3;
    /// comparisons, `IN`, `BETWEEN`, `LIKE`, `IS NULL`, …
    pub const CMP: u8 = 4;
    /// `+ -`
    pub const ADD: u8 = 5;
    /// `* / %`
    pub const MUL: u8 = 6;
    /// prefix `-`
    pub const NEG: u8 = 7;
    /// literals, paths, calls, parenthesised expressions
    pub const ATOM: u8 = 8;
}

impl BinaryOp {
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`: the operators that compare two values (what a value
    /// compared with a field is put in its stored form for, and index bounds come from).
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | NotEq | Lt | LtEq | Gt | GtEq)
    }

    /// The operator's precedence level (see [`precedence`]).
    pub fn precedence(self) -> u8 {
        use BinaryOp::*;
        match self {
            Or => precedence::OR,
            And => precedence::AND,
            Eq | NotEq | Lt | LtEq | Gt | GtEq | Like | NotLike | StartsWith | NotStartsWith
            | Contains | NotContains | ILike | NotILike | Matches | NotMatches => precedence::CMP,
            Add | Sub | Concat => precedence::ADD,
            Mul | Div | Rem => precedence::MUL,
        }
    }

    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Or => "OR",
            And => "AND",
            Eq => "=",
            NotEq => "!=",
            Lt => "<",
            LtEq => "<=",
            Gt => ">",
            GtEq => ">=",
            Like => "LIKE",
            NotLike => "NOT LIKE",
            StartsWith => "STARTS WITH",
            NotStartsWith => "NOT STARTS WITH",
            Contains => "CONTAINS",
            NotContains => "NOT CONTAINS",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Rem => "%",
            Concat => "||",
            ILike => "ILIKE",
            NotILike => "NOT ILIKE",
            Matches => "~",
            NotMatches => "!~",
        }
    }
}

impl ExprKind {
    /// The precedence level of the node, for deciding where parentheses are needed.
    pub fn precedence(&self) -> u8 {
        match self {
            ExprKind::Binary { op, .. } => op.precedence(),
            ExprKind::In { .. } | ExprKind::Between { .. } | ExprKind::IsNull { .. } => {
                precedence::CMP
            }
            ExprKind::Unary { op: UnaryOp::Not, .. } => precedence::NOT,
            ExprKind::Unary { op: UnaryOp::Neg, .. } => precedence::NEG,
            _ => precedence::ATOM,
        }
    }
}

impl Expr {
    /// An expression with a default span (handy for building ASTs by hand).
    pub fn new(kind: ExprKind) -> Expr {
        Expr { kind, span: Span::default() }
    }

    /// The path this expression is, if it is a plain path.
    pub fn as_path(&self) -> Option<&Path> {
        match &self.kind {
            ExprKind::Path(path) => Some(path),
            _ => None,
        }
    }

    /// The direct sub-expressions evaluated against the same record, in source order. An
    /// `EXISTS` filter is not one: it is evaluated against the related records.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Param(_) | ExprKind::Path(_) => Vec::new(),
            // (Subqueries are evaluated against their own model, not this record.)
            ExprKind::Exists { .. } | ExprKind::ExistsSelect(_) => Vec::new(),
            ExprKind::Call { args: CallArgs::Star, .. } => Vec::new(),
            ExprKind::Call { args: CallArgs::Distinct(e), .. } => vec![e],
            ExprKind::Call { args: CallArgs::List(list), .. } | ExprKind::Array(list) => {
                list.iter().collect()
            }
            ExprKind::Unary { expr, .. } | ExprKind::IsNull { expr, .. } => vec![expr],
            ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            ExprKind::In { expr, rhs, .. } => {
                let mut v: Vec<&Expr> = vec![expr];
                match rhs {
                    InRhs::List(list) => v.extend(list),
                    InRhs::Expr(e) => v.push(e),
                    InRhs::Select(_) => {}
                }
                v
            }
            ExprKind::Between { expr, low, high, .. } => vec![expr, low, high],
            ExprKind::Object(fields) => fields.iter().map(|f| &f.value).collect(),
            ExprKind::Case { operand, branches, otherwise } => {
                let mut v: Vec<&Expr> = operand.iter().map(|e| &**e).collect();
                for (w, t) in branches {
                    v.push(w);
                    v.push(t);
                }
                v.extend(otherwise.iter().map(|e| &**e));
                v
            }
        }
    }
}

impl Ident {
    /// An identifier with a default span.
    pub fn new(name: impl Into<String>) -> Ident {
        Ident { name: name.into(), span: Span::default() }
    }
}

impl Path {
    /// A one-segment path.
    pub fn single(ident: Ident) -> Path {
        let span = ident.span;
        Path { segments: vec![ident], span }
    }
}

/// A duration where one is expected (`EXPIRE IN`, `DELAY`, `BACKOFF`, `TIMEOUT`, `WAIT`):
/// a string such as `'1h30m'`, validated and converted at parse time, or a parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DurationValue {
    /// The value.
    pub kind: DurationKind,
    /// Where it is.
    pub span: Span,
}

/// A write's time to live: `EXPIRE IN d`, `EXPIRE AT ts`, or `EXPIRE NEVER`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expire {
    /// `EXPIRE IN '30d'`: that long after the statement's time.
    In(DurationValue),
    /// `EXPIRE AT ts`: at a timestamp (an expression: a literal, a parameter, `now() + '1d'`).
    At(Expr),
    /// `EXPIRE NEVER`: no expiry (clears one).
    Never,
}

/// A literal duration or a parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DurationKind {
    /// A duration in milliseconds.
    Millis(u64),
    /// A parameter bound to a duration string at execution time.
    Param(Param),
}
