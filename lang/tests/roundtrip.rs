//! Round trip over generated expressions: `parse_expr(print(e)) == e` (spans ignored) and
//! printing is idempotent. Also: arbitrary text never panics the parser.

use kvm_lang::ast::{
    BinaryOp, CallArgs, Expr, ExprKind, Ident, InRhs, Literal, ObjectField, Param, Path, UnaryOp,
};
use kvm_lang::{parse_expr, parse_script};
use proptest::prelude::*;

fn ident() -> impl Strategy<Value = Ident> {
    // Reserved words are included on purpose: the printer must quote them.
    prop_oneof![
        "[a-z_][a-z0-9_]{0,6}".prop_map(Ident::new),
        prop::sample::select(vec!["select", "order", "date", "key", "index", "count"])
            .prop_map(Ident::new),
    ]
}

fn path() -> impl Strategy<Value = Path> {
    prop::collection::vec(ident(), 1..4)
        .prop_map(|segments| Path { segments, span: Default::default() })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        any::<i64>().prop_map(Literal::Int),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Literal::Float),
        any::<String>().prop_map(Literal::String),
        prop::sample::select(vec!["2024-01-31", "1999-12-01"])
            .prop_map(|s| Literal::Date(s.into())),
        prop::sample::select(vec!["2024-01-31T10:00:00Z", "2024-01-31 10:00:00.5+02:00"])
            .prop_map(|s| Literal::Timestamp(s.into())),
    ]
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        (1u32..1000).prop_map(Param::Positional),
        "[a-z_][a-z0-9_]{0,6}".prop_map(Param::Named)
    ]
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    use BinaryOp::*;
    prop::sample::select(vec![
        Or,
        And,
        Eq,
        NotEq,
        Lt,
        LtEq,
        Gt,
        GtEq,
        Like,
        NotLike,
        StartsWith,
        NotStartsWith,
        Contains,
        NotContains,
        Add,
        Sub,
        Mul,
        Div,
        Rem,
        Concat,
        ILike,
        NotILike,
        Matches,
        NotMatches,
    ])
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        literal().prop_map(|l| Expr::new(ExprKind::Literal(l))),
        param().prop_map(|p| Expr::new(ExprKind::Param(p))),
        path().prop_map(|p| Expr::new(ExprKind::Path(p))),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        let boxed = inner.clone().prop_map(Box::new);
        // The non-list right side of IN is an atom: a parameter, a path or an array.
        let in_atom = prop_oneof![
            param().prop_map(|p| Expr::new(ExprKind::Param(p))),
            path().prop_map(|p| Expr::new(ExprKind::Path(p))),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| Expr::new(ExprKind::Array(v))),
        ];
        prop_oneof![
            (prop::sample::select(vec![UnaryOp::Not, UnaryOp::Neg]), boxed.clone())
                .prop_map(|(op, expr)| ExprKind::Unary { op, expr }),
            (binary_op(), boxed.clone(), boxed.clone())
                .prop_map(|(op, lhs, rhs)| ExprKind::Binary { op, lhs, rhs }),
            (boxed.clone(), prop::collection::vec(inner.clone(), 0..3), any::<bool>()).prop_map(
                |(expr, list, negated)| ExprKind::In { expr, rhs: InRhs::List(list), negated }
            ),
            (boxed.clone(), in_atom, any::<bool>()).prop_map(|(expr, rhs, negated)| ExprKind::In {
                expr,
                rhs: InRhs::Expr(Box::new(rhs)),
                negated
            }),
            (boxed.clone(), boxed.clone(), boxed.clone(), any::<bool>()).prop_map(
                |(expr, low, high, negated)| ExprKind::Between { expr, low, high, negated }
            ),
            (boxed.clone(), any::<bool>())
                .prop_map(|(expr, negated)| ExprKind::IsNull { expr, negated }),
            (path(), prop::option::of(boxed.clone()))
                .prop_map(|(relation, filter)| ExprKind::Exists { relation, filter }),
            prop::collection::vec(inner.clone(), 0..4).prop_map(ExprKind::Array),
            prop::collection::vec((any::<String>(), inner.clone()), 0..3).prop_map(|fields| {
                ExprKind::Object(
                    fields
                        .into_iter()
                        .map(|(k, value)| ObjectField { key: Ident::new(k), value })
                        .collect(),
                )
            }),
            (ident(), prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(name, args)| ExprKind::Call { name, args: CallArgs::List(args) }),
            ident().prop_map(|name| ExprKind::Call { name, args: CallArgs::Star }),
            (ident(), boxed.clone())
                .prop_map(|(name, e)| ExprKind::Call { name, args: CallArgs::Distinct(e) }),
            (
                prop::option::of(boxed.clone()),
                prop::collection::vec((inner.clone(), inner.clone()), 1..3),
                prop::option::of(boxed.clone()),
            )
                .prop_map(|(operand, branches, otherwise)| ExprKind::Case {
                    operand,
                    branches,
                    otherwise
                }),
        ]
        .prop_map(Expr::new)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn printed_expressions_parse_back_equal(e in expr()) {
        let printed = e.to_string();
        let parsed = parse_expr(&printed).map_err(|d| TestCaseError::fail(format!("{d}\n{printed}")))?;
        prop_assert_eq!(&parsed, &e, "printed as: {}", printed);
        prop_assert_eq!(parsed.to_string(), printed);
    }

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let script = parse_script("fuzz.kql", &src);
        let _ = script.render_diagnostics();
        for stmt in &script.statements {
            let _ = stmt.to_string();
        }
    }

    #[test]
    fn kql_shaped_text_never_panics(
        parts in prop::collection::vec(prop::sample::select(vec![
            "SELECT", "*", "FROM", "users", "WHERE", "a", "=", "1", "(", ")", "[", "]", "{", "}", ",", ";",
            "AND", "NOT", "IN", "BETWEEN", "IS", "NULL", "'s'", "$1", "-", "INCLUDE", "ORDER", "BY",
            "DEFINE", "MODEL", "INT", "ARRAY", "<", ">", "EXPLAIN", "UPDATE", "SET", "+=", ":", ".",
            "ENQUEUE", "INTO", "DELAY", "'5s'", "KV", "LIST", "PREFIX", "RELATE", "TO", "x",
        ]), 0..40)
    ) {
        let src = parts.join(" ");
        let script = parse_script("fuzz.kql", &src);
        let _ = script.render_diagnostics();
        for stmt in &script.statements {
            let printed = stmt.to_string();
            let again = kvm_lang::parse_statement(&printed).map_err(|d| TestCaseError::fail(format!("{d}\n{printed}")))?;
            prop_assert_eq!(&again, stmt);
        }
    }
}

/// Deep nesting of every recursive construct is an error, never a stack overflow.
#[test]
fn deep_nesting_is_an_error() {
    let n = 100_000;
    let cases = [
        format!("SELECT * FROM t WHERE x = {}1{}", "(".repeat(n), ")".repeat(n)),
        format!("SELECT * FROM t WHERE x = {}1{}", "[".repeat(n), "]".repeat(n)),
        format!("SELECT * FROM t WHERE x = {}", "{a: ".repeat(n)),
        format!("SELECT * FROM t WHERE {}x", "NOT ".repeat(n)),
        format!("SELECT * FROM t WHERE x = {}1", "- ".repeat(n)),
        format!("SELECT * FROM t WHERE x = {}1{}", "f(".repeat(n), ")".repeat(n)),
        format!("SELECT * FROM t INCLUDE {}", "a (INCLUDE ".repeat(n)),
        format!("DEFINE MODEL m ( f {}INT{} )", "ARRAY<".repeat(n), ">".repeat(n)),
        format!("{}SELECT * FROM t", "EXPLAIN ".repeat(n)),
        format!("SELECT * FROM t WHERE {}", "EXISTS r (WHERE ".repeat(n)),
    ];
    for src in &cases {
        let script = parse_script("deep.kql", src);
        assert_eq!(script.diagnostics.len(), 1, "{}", &src[..40]);
        assert!(
            script.diagnostics[0].message.contains("nesting too deep"),
            "{}",
            script.diagnostics[0]
        );
    }
}

/// Nesting just inside the limit parses and round-trips.
#[test]
fn nesting_within_the_limit_parses() {
    let src = format!("SELECT * FROM t WHERE x = {}1{}", "[".repeat(100), "]".repeat(100));
    let script = parse_script("ok.kql", &src);
    assert!(script.is_ok(), "{}", script.render_diagnostics());
}

/// `a = 0 OR a = 1 OR …` with `terms` comparisons: a tree `terms + 1` deep.
fn or_chain(terms: usize) -> String {
    (0..terms).map(|k| format!("a = {k}")).collect::<Vec<_>>().join(" OR ")
}

/// `1 + 1 + …` with `terms` ones: a tree `terms` deep.
fn add_chain(terms: usize) -> String {
    vec!["1"; terms].join(" + ")
}

/// Byte offset of the `n`-th (1-based) occurrence of ` op ` in `src`, at `op` itself.
fn nth_op(src: &str, op: &str, n: usize) -> usize {
    let needle = format!(" {op} ");
    let (at, _) = src.match_indices(&needle).nth(n - 1).expect("the operator occurs");
    at + 1
}

/// The expression depth limit counts the depth of the tree, which an operator chain grows
/// without nesting anything: at the limit a chain parses and round-trips; one level more
/// is an error at the operator that crossed it, wherever the extra level comes from.
#[test]
fn expression_depth_is_limited_at_the_operator_that_crosses_it() {
    use kvm_lang::MAX_EXPR_DEPTH as N;
    for ok in [or_chain(N - 1), add_chain(N), format!("lower({})", add_chain(N - 1))] {
        let e = parse_expr(&ok).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(parse_expr(&e.to_string()).as_ref(), Ok(&e), "round trip at the limit");
    }
    // (source, the byte offset and length of the operator the error points at)
    let too_deep = [
        // The (N-1)-th OR makes the tree N+1 deep; later terms are never read.
        (or_chain(N), nth_op(&or_chain(N), "OR", N - 1), 2),
        (or_chain(7000), nth_op(&or_chain(7000), "OR", N - 1), 2),
        (add_chain(N + 1), nth_op(&add_chain(N + 1), "+", N), 1),
        // A call, `IN` or a parenthesised operand adds the level on top of a chain at the
        // limit: the error is at the call's name, the `IN`, the outer `+`.
        (format!("lower({})", add_chain(N)), 0, 5),
        (format!("a IN ({})", add_chain(N)), 2, 2),
        (format!("1 + ({})", add_chain(N)), 2, 1),
        (format!("[{}]", add_chain(N)), 0, 1),
        (format!("a = 1 AND NOT ({})", or_chain(N - 1)), 10, 3),
    ];
    for (src, at, len) in &too_deep {
        let d = parse_expr(src).expect_err(&src[..40]);
        assert_eq!(d.message, format!("expression too deep: more than {N} levels"));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("IN (…)")), "{d}");
        assert!(d.span.same(kvm_lang::Span::new(*at, at + len)), "{:?} in {}", d.span, &src[..40]);
    }
    // In a script the statement fails and the next one still parses.
    let src = format!("SELECT * FROM t WHERE {};\nSELECT * FROM t WHERE a = 1;", or_chain(N));
    let script = parse_script("deep.kql", &src);
    assert_eq!((script.statements.len(), script.diagnostics.len()), (1, 1));
    let rendered = script.render_diagnostics();
    let col = nth_op(&or_chain(N), "OR", N - 1) + "SELECT * FROM t WHERE ".len() + 1;
    assert!(rendered.contains(&format!("deep.kql:1:{col} (statement 1)")), "{rendered}");
}
