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
