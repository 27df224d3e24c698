//! Differential test against SQLite: the same random rows (with NULLs) are loaded into KVM
//! and into SQLite, then a few hundred generated queries — aggregates, GROUP BY, HAVING,
//! DISTINCT, uncorrelated subqueries (`IN`, `NOT IN` with NULLs, `EXISTS`) and scalar
//! functions — run on both and their results must agree.
//!
//! Only forms whose semantics match are generated: numbers in SQLite's integer and real
//! columns, strings compared bytewise (SQLite's BINARY collation), NULLs in every column.
//! Order is made total on both sides with `ORDER BY` over every output column. Floats
//! agree within a relative 1e-9 (both sum with compensation, but not in the same order).
//!
//! Runs with `cargo test --features sqlite-baseline --test differential` (`.ci/run` does).

#![allow(clippy::unwrap_used)]

use kvm::{Database, Value};
use rusqlite::types::ValueRef;

/// A deterministic generator (xorshift64*): the same data and queries on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The columns: name, KVM type, SQLite type.
const COLUMNS: &[(&str, &str, &str)] = &[
    ("g", "STRING", "TEXT"),
    ("h", "INT", "INTEGER"),
    ("x", "INT", "INTEGER"),
    ("y", "FLOAT", "REAL"),
    ("s", "STRING", "TEXT"),
    // Never null, and indexed: groups stream from the index, and index-only scans answer.
    ("c", "STRING NOT NULL", "TEXT NOT NULL"),
    ("k", "INT NOT NULL", "INTEGER NOT NULL"),
];

const ROWS: usize = 400;

/// One random row's values, as KQL literals (SQLite reads the same text).
fn row(rng: &mut Rng) -> Vec<String> {
    let null = |rng: &mut Rng, v: String| if rng.below(6) == 0 { "NULL".to_string() } else { v };
    let g = format!("'{}'", rng.pick(&["a", "b", "c", "B", "ab"]));
    let h = (rng.below(5) as i64 - 1).to_string();
    let x = (rng.below(201) as i64 - 100).to_string();
    // Quarters: exact in binary, so float sums do not depend on the order of addition.
    let y = format!("{:.2}", (rng.below(400) as f64 - 200.0) / 4.0);
    let s = format!("'{}'", rng.pick(&["  pad ", "Mixed Case", "x", "", "héllo", "a_b%c"]));
    let c = format!("'{}'", rng.pick(&["red", "green", "blue"]));
    let k = (rng.below(4) as i64 * 10).to_string();
    vec![null(rng, g), null(rng, h), null(rng, x), null(rng, y), null(rng, s), c, k]
}

fn kvm_value(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::Int(i) => Cell::Int(*i),
        Value::Counter(c) => Cell::Int(*c as i64),
        Value::Float(f) => Cell::Float(*f),
        Value::String(s) => Cell::Text(s.clone()),
        Value::Bool(b) => Cell::Int(i64::from(*b)),
        other => Cell::Text(format!("{other:?}")),
    }
}

fn sqlite_value(v: ValueRef) -> Cell {
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Float(f),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Text(format!("{b:?}")),
    }
}

#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Null, Cell::Null) => true,
        (Cell::Int(x), Cell::Int(y)) => x == y,
        (Cell::Text(x), Cell::Text(y)) => x == y,
        (Cell::Float(x), Cell::Float(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        // SQLite's ROUND and AVG return reals where KVM may keep an integer, and back.
        (Cell::Int(x), Cell::Float(y)) | (Cell::Float(y), Cell::Int(x)) => *x as f64 == *y,
        _ => false,
    }
}

/// A query in both dialects (they differ only where SQLite spells a function otherwise).
struct Query {
    kql: String,
    sql: String,
}

fn aggregate(rng: &mut Rng) -> (String, String) {
    let numeric = ["x", "y", "h", "k"];
    let any = ["x", "y", "h", "g", "s", "c", "k"];
    match rng.below(9) {
        0 => ("COUNT(*)".into(), "COUNT(*)".into()),
        1 => {
            let c = rng.pick(&any);
            (format!("COUNT({c})"), format!("COUNT({c})"))
        }
        2 => {
            let c = rng.pick(&any);
            (format!("COUNT(DISTINCT {c})"), format!("COUNT(DISTINCT {c})"))
        }
        3 => {
            let c = rng.pick(&numeric);
            (format!("SUM({c})"), format!("SUM({c})"))
        }
        4 => {
            let c = rng.pick(&numeric);
            (format!("AVG({c})"), format!("AVG({c})"))
        }
        5 => {
            let c = rng.pick(&any);
            (format!("MIN({c})"), format!("MIN({c})"))
        }
        6 => {
            let c = rng.pick(&any);
            (format!("MAX({c})"), format!("MAX({c})"))
        }
        7 => {
            let c = rng.pick(&numeric);
            (format!("SUM(DISTINCT {c})"), format!("SUM(DISTINCT {c})"))
        }
        _ => {
            let q = format!("SUM(CASE WHEN {} > 0 THEN 1 ELSE 0 END)", rng.pick(&numeric));
            (q.clone(), q)
        }
    }
}

fn filter(rng: &mut Rng) -> String {
    let k = rng.below(100) as i64 - 50;
    match rng.below(11) {
        0 | 1 => String::new(),
        2 => format!(" WHERE x > {k}"),
        3 => " WHERE g = 'a'".into(),
        4 => " WHERE y IS NULL".into(),
        5 => " WHERE h IN (0, 2)".into(),
        6 => format!(" WHERE x BETWEEN {k} AND {}", k + 40),
        7 => " WHERE s LIKE '%a%' OR g IS NULL".into(),
        8 => " WHERE g > 'a' AND x < 0".into(),
        9 => " WHERE c = 'red'".into(),
        _ => format!(" WHERE k >= {}", rng.below(4) * 10),
    }
}

fn grouped(rng: &mut Rng) -> Query {
    const KEYS: &[&[&str]] =
        &[&["g"], &["h"], &["g", "h"], &["s"], &[], &["c"], &["k"], &["c", "k"], &["k", "c"]];
    let keys: &[&str] = KEYS[rng.below(KEYS.len())];
    let n = 1 + rng.below(3);
    let mut kql_cols: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let mut sql_cols = kql_cols.clone();
    for i in 0..n {
        let (k, s) = aggregate(rng);
        kql_cols.push(format!("{k} AS a{i}"));
        sql_cols.push(format!("{s} AS a{i}"));
    }
    let f = filter(rng);
    let group =
        if keys.is_empty() { String::new() } else { format!(" GROUP BY {}", keys.join(", ")) };
    let having = if !keys.is_empty() && rng.below(3) == 0 {
        format!(" HAVING COUNT(*) > {}", rng.below(30))
    } else {
        String::new()
    };
    let by: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let order = if by.is_empty() { String::new() } else { format!(" ORDER BY {}", by.join(", ")) };
    Query {
        kql: format!("SELECT {} FROM t{f}{group}{having}{order}", kql_cols.join(", ")),
        sql: format!("SELECT {} FROM t{f}{group}{having}{order}", sql_cols.join(", ")),
    }
}

fn distinct(rng: &mut Rng) -> Query {
    const COLS: &[&[&str]] = &[&["g"], &["h"], &["g", "h"], &["s", "h"], &["c"], &["k", "c"]];
    let cols: &[&str] = COLS[rng.below(COLS.len())];
    let f = filter(rng);
    let list = cols.join(", ");
    let q = format!("SELECT DISTINCT {list} FROM t{f} ORDER BY {list}");
    Query { kql: q.clone(), sql: q }
}

fn function(rng: &mut Rng) -> Query {
    let (k, s) = match rng.below(15) {
        0 => ("lower(s)".to_string(), "lower(s)".to_string()),
        1 => ("upper(g)".into(), "upper(g)".into()),
        2 => ("length(s)".into(), "length(s)".into()),
        3 => ("abs(x)".into(), "abs(x)".into()),
        4 => ("coalesce(g, s, 'none')".into(), "coalesce(g, s, 'none')".into()),
        5 => ("trim(s)".into(), "trim(s)".into()),
        6 => ("replace(s, 'a', 'A')".into(), "replace(s, 'a', 'A')".into()),
        7 => ("substr(s, 2, 3)".into(), "substr(s, 2, 3)".into()),
        8 => ("round(y)".into(), "round(y)".into()),
        9 => ("g || '-' || h".into(), "g || '-' || h".into()),
        10 => {
            let q = "CASE WHEN x > 0 THEN 'pos' WHEN x < 0 THEN 'neg' ELSE 'zero' END".to_string();
            (q.clone(), q)
        }
        11 => (
            "CASE g WHEN 'a' THEN 1 WHEN 'b' THEN 2 END".into(),
            "CASE g WHEN 'a' THEN 1 WHEN 'b' THEN 2 END".into(),
        ),
        12 => ("nullif(h, 0)".into(), "nullif(h, 0)".into()),
        13 => ("x % 7".into(), "x % 7".into()),
        _ => ("x * 2 + h".into(), "x * 2 + h".into()),
    };
    let f = filter(rng);
    Query {
        kql: format!("SELECT id, {k} AS v FROM t{f} ORDER BY id"),
        sql: format!("SELECT id, {s} AS v FROM t{f} ORDER BY id"),
    }
}

fn subquery(rng: &mut Rng) -> Query {
    let k = rng.below(100) as i64 - 50;
    let (col, inner) = *rng.pick(&[("h", "h"), ("k", "k"), ("g", "c"), ("x", "h")]);
    let q = match rng.below(4) {
        0 => format!("SELECT id FROM t WHERE {col} IN (SELECT {inner} FROM t WHERE x > {k}) ORDER BY id"),
        1 => format!("SELECT id FROM t WHERE {col} NOT IN (SELECT {inner} FROM t WHERE y < {k}) ORDER BY id"),
        2 => format!(
            "SELECT COUNT(*) AS n FROM t WHERE EXISTS (SELECT id FROM t WHERE x = {k}) AND {col} IS NOT NULL"
        ),
        _ => format!(
            "SELECT g, COUNT(*) AS n FROM t WHERE {col} IN (SELECT {inner} FROM t WHERE g = 'a') GROUP BY g ORDER BY g"
        ),
    };
    Query { kql: q.clone(), sql: q }
}

#[test]
fn aggregates_and_functions_agree_with_sqlite() {
    let db = Database::memory().unwrap();
    let sqlite = rusqlite::Connection::open_in_memory().unwrap();
    let kvm_cols: Vec<String> = COLUMNS.iter().map(|(n, t, _)| format!("{n} {t}")).collect();
    db.execute_batch(&format!(
        "DEFINE MODEL t (id INT PRIMARY KEY, {}, INDEX (g), INDEX (h, x), INDEX (c, k), INDEX (k));",
        kvm_cols.join(", ")
    ))
    .unwrap();
    let sql_cols: Vec<String> = COLUMNS.iter().map(|(n, _, t)| format!("{n} {t}")).collect();
    sqlite
        .execute_batch(&format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, {}); CREATE INDEX t_g ON t (g);",
            sql_cols.join(", ")
        ))
        .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for id in 0..ROWS {
        let vals = row(&mut rng);
        let names: Vec<&str> = COLUMNS.iter().map(|(n, _, _)| *n).collect();
        let fields: Vec<String> = names
            .iter()
            .zip(&vals)
            .filter(|(_, v)| *v != "NULL")
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        db.execute(&format!("INSERT INTO t {{id: {id}, {}}}", fields.join(", ")), ()).unwrap();
        sqlite
            .execute(
                &format!(
                    "INSERT INTO t (id, {}) VALUES ({id}, {})",
                    names.join(", "),
                    vals.join(", ")
                ),
                [],
            )
            .unwrap();
    }
    let mut checked = 0;
    for i in 0..400 {
        let q = match i % 5 {
            0 | 1 => grouped(&mut rng),
            2 => distinct(&mut rng),
            3 => subquery(&mut rng),
            _ => function(&mut rng),
        };
        let got = db.query(&q.kql, ()).unwrap_or_else(|e| panic!("{}: {e}", q.kql));
        let mut stmt = sqlite.prepare(&q.sql).unwrap_or_else(|e| panic!("{}: {e}", q.sql));
        let n = stmt.column_count();
        let want: Vec<Vec<Cell>> = stmt
            .query_map([], |r| (0..n).map(|i| r.get_ref(i).map(sqlite_value)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let got: Vec<Vec<Cell>> =
            got.rows.iter().map(|r| r.iter().map(kvm_value).collect()).collect();
        assert_eq!(got.len(), want.len(), "{}\nkvm: {got:?}\nsqlite: {want:?}", q.kql);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g.len() == w.len() && g.iter().zip(w).all(|(a, b)| same(a, b)),
                "{}\nkvm row: {g:?}\nsqlite row: {w:?}",
                q.kql
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 400);
}
