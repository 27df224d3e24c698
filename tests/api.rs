//! The Rust API as an application uses it (issue 16, item 6): one-row helpers, typed
//! getters, streaming, serde in and out, parameters checked against the statement,
//! one statement per `execute`, and the application's own error in a transaction.

#![allow(clippy::unwrap_used)]

use kvm::{params, Database, Error, Row, TxError, Value};
use serde::{Deserialize, Serialize};

fn users() -> Database {
    let db = Database::memory().unwrap();
    db.execute(
        "DEFINE MODEL users (id INT PRIMARY KEY, email STRING UNIQUE NOT NULL, age INT, \
         tags ARRAY<STRING>, INDEX by_age (age))",
        (),
    )
    .unwrap();
    db.execute(
        "INSERT INTO users [{id: 1, email: 'ann@x.com', age: 31, tags: ['a']}, \
         {id: 2, email: 'bo@x.com'}, {id: 3, email: 'cy@x.com', age: 17}]",
        (),
    )
    .unwrap();
    db
}

#[test]
fn query_row_and_query_opt_return_one_row_with_typed_getters() {
    let db = users();
    let row = db.query_row("SELECT id, email, age FROM users WHERE id = $1", params![1]).unwrap();
    assert_eq!(row.columns(), ["id", "email", "age"]);
    assert_eq!(row.get::<i64>("id").unwrap(), 1);
    assert_eq!(row.get::<String>(1).unwrap(), "ann@x.com");
    assert_eq!(row.get::<Option<i32>>("age").unwrap(), Some(31));
    assert_eq!(row.value("email").unwrap().as_str(), Some("ann@x.com"));

    let err = db.query_row("SELECT * FROM users WHERE id = 9", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.no_rows");
    assert!(matches!(err, Error::NoRows));
    assert_eq!(db.query_opt("SELECT * FROM users WHERE id = 9", ()).unwrap(), None);
    let some = db.query_opt("SELECT email FROM users WHERE id = 2", ()).unwrap();
    assert_eq!(some.map(|r| r.get::<String>(0).unwrap()), Some("bo@x.com".to_string()));

    // A null read as a plain type, a value of another type, a missing column: each names
    // the column.
    let bo = db.query_row("SELECT email, age FROM users WHERE id = 2", ()).unwrap();
    let err = bo.get::<i64>("age").unwrap_err();
    assert_eq!(err.code(), "kvm.column_type");
    assert!(err.to_string().contains("column `age`") && err.to_string().contains("null"), "{err}");
    let err = bo.get::<i64>("email").unwrap_err();
    assert_eq!(err.code(), "kvm.column_type");
    assert!(err.to_string().contains("`email`") && err.to_string().contains("'bo@x.com'"), "{err}");
    assert_eq!(bo.get::<i64>("nope").unwrap_err().code(), "kvm.unknown_column");
    assert_eq!(bo.get::<i64>(7).unwrap_err().code(), "kvm.unknown_column");
    // An integer that does not fit the Rust type is refused, not wrapped.
    let big = db.query_row("SELECT 300 AS n FROM users WHERE id = 1", ()).unwrap();
    assert_eq!(big.get::<u8>("n").unwrap_err().code(), "kvm.column_type");
    assert_eq!(big.get::<u16>("n").unwrap(), 300);
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct User {
    id: i64,
    email: String,
    age: Option<i64>,
}

#[test]
fn query_as_names_the_column_that_does_not_fit() {
    let db = users();
    let all: Vec<User> = db.query_as("SELECT id, email, age FROM users", ()).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1], User { id: 2, email: "bo@x.com".into(), age: None });

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        id: i64,
        email: i64,
    }
    let err = db.query_as::<Wrong>("SELECT id, email FROM users", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.column_type");
    assert!(matches!(&err, Error::Column { column, .. } if column == "email"), "{err:?}");

    // Prepared statements and transactions have it too.
    let p = db.prepare("SELECT id, email, age FROM users WHERE id = $1").unwrap();
    assert_eq!(p.query_as::<User>(params![3]).unwrap()[0].age, Some(17));
    assert_eq!(p.query_row(params![3]).unwrap().get::<i64>("age").unwrap(), 17);
    assert!(p.query_opt(params![4]).unwrap().is_none());
    let n = db
        .transaction(|tx| {
            tx.execute("INSERT INTO users {id: 4, email: 'di@x.com'}", ())?;
            let mine: Vec<User> =
                tx.query_as("SELECT id, email, age FROM users WHERE id = 4", ())?;
            Ok(tx.query_row("SELECT COUNT(*) FROM users", ())?.get::<i64>(0)? + mine.len() as i64)
        })
        .unwrap();
    assert_eq!(n, 5);
}

#[test]
fn serde_values_go_in_as_records_and_parameters() {
    let db = users();
    let u = User { id: 10, email: "ed@x.com".into(), age: Some(40) };
    db.execute("INSERT INTO users $1", vec![kvm::to_value(&u).unwrap()]).unwrap();
    let back: Vec<User> =
        db.query_as("SELECT id, email, age FROM users WHERE id = $1", params![10]).unwrap();
    assert_eq!(back, vec![u]);
    db.upsert(
        "users",
        kvm::to_value(&serde_json::json!({"id": 11, "email": "fi@x.com"})).unwrap(),
        &[],
    )
    .unwrap();
    assert_eq!(
        db.query_row("SELECT email FROM users WHERE id = 11", ())
            .unwrap()
            .get::<String>(0)
            .unwrap(),
        "fi@x.com"
    );
    // A serde_json value binds directly.
    let rows = db
        .query("SELECT id FROM users WHERE email = $1", params![serde_json::json!("ed@x.com")])
        .unwrap();
    assert_eq!(rows.rows, vec![vec![Value::Int(10)]]);
    // What JSON cannot hold is an error, not a wrong value.
    let mut bad = std::collections::HashMap::new();
    bad.insert((1, 2), 3);
    assert_eq!(kvm::to_value(&bad).unwrap_err().code(), "kvm.param");

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Mail {
        to: String,
        tries: u32,
    }
    db.execute("DEFINE QUEUE mail", ()).unwrap();
    let q = db.queue("mail");
    q.enqueue(
        kvm::to_value(&Mail { to: "ann@x.com".into(), tries: 2 }).unwrap(),
        Default::default(),
    )
    .unwrap();
    let job = q.dequeue(1).unwrap().remove(0);
    assert_eq!(job.payload_as::<Mail>().unwrap(), Mail { to: "ann@x.com".into(), tries: 2 });
    let err = job.payload_as::<Vec<i64>>().unwrap_err();
    assert_eq!(err.code(), "kvm.column_type");
}

#[test]
fn query_iter_streams_rows_and_stops_when_dropped() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, v STRING)", ()).unwrap();
    let batch: Vec<String> = (0..5000).map(|i| format!("{{id: {i}, v: 'x{i}'}}")).collect();
    db.execute(&format!("INSERT INTO t [{}]", batch.join(",")), ()).unwrap();

    let stream = db.query_iter("SELECT id, v FROM t WHERE id >= $1", params![10]).unwrap();
    assert_eq!(stream.columns(), ["id", "v"]);
    let mut n = 0;
    let mut last = -1;
    for row in stream {
        let row: Row = row.unwrap();
        let id = row.get::<i64>("id").unwrap();
        assert!(id > last);
        last = id;
        n += 1;
    }
    assert_eq!(n, 4990);

    // Stopping early: the query thread ends at its next row, and the database goes on.
    let mut stream = db.query_iter("SELECT * FROM t", ()).unwrap();
    assert_eq!(stream.next().unwrap().unwrap().get::<i64>("id").unwrap(), 0);
    drop(stream);
    db.execute("DELETE FROM t WHERE id < 100", ()).unwrap();
    assert_eq!(db.query_row("SELECT COUNT(*) FROM t", ()).unwrap().get::<i64>(0).unwrap(), 4900);

    // Errors before the first row come from query_iter itself; those met while reading end
    // the stream with an Err item.
    assert_eq!(db.query_iter("SELECT * FROM nope", ()).unwrap_err().code(), "kvm.unknown_model");
    let mut failing = db.query_iter("SELECT id / (id - 150) AS q FROM t", ()).unwrap();
    let items: Vec<_> = failing.by_ref().collect();
    assert!(items.last().is_some_and(|r| r.is_err()), "{:?}", items.last());

    // A page's cursor is there once the stream is read; statements that are not SELECTs
    // return their rows too; prepared statements stream.
    let mut page = db.query_iter("SELECT id FROM t ORDER BY id LIMIT 3", ()).unwrap();
    let ids: Vec<i64> = page.by_ref().map(|r| r.unwrap().get(0).unwrap()).collect();
    assert_eq!(ids, vec![100, 101, 102]);
    assert!(page.next_cursor().is_some());
    let shown: Vec<Row> = db.query_iter("SHOW MODELS", ()).unwrap().map(|r| r.unwrap()).collect();
    assert!(!shown.is_empty());
    let p = db.prepare("SELECT v FROM t WHERE id = $1").unwrap();
    let v: Vec<String> =
        p.query_iter(params![200]).unwrap().map(|r| r.unwrap().get(0).unwrap()).collect();
    assert_eq!(v, vec!["x200".to_string()]);
}

#[test]
fn execute_runs_one_statement_and_execute_batch_runs_a_script() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY)", ()).unwrap();
    // Refused whole: the first statement did not run either.
    let err = db.execute("INSERT INTO t {id: 1}; INSERT INTO t {id: 'x'}", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.multiple_statements");
    assert_eq!(err.span().map(|s| s.start), Some(23));
    assert_eq!(db.query("SELECT * FROM t", ()).unwrap().rows.len(), 0);
    let err =
        db.transaction(|tx| tx.execute("INSERT INTO t {id: 1}; DELETE FROM t", ())).unwrap_err();
    assert_eq!(err.code(), "kvm.multiple_statements");
    assert_eq!(db.execute("  ", ()).unwrap_err().code(), "kvm.empty_statement");

    // A script: each statement its own commit, BEGIN … COMMIT spans its statements, the
    // first error stops it and is returned.
    db.execute_batch(
        "INSERT INTO t {id: 1}; BEGIN; INSERT INTO t {id: 2}; INSERT INTO t {id: 3}; COMMIT;",
    )
    .unwrap();
    let err = db
        .execute_batch("INSERT INTO t {id: 4}; INSERT INTO t {id: 4}; INSERT INTO t {id: 5}")
        .unwrap_err();
    assert_eq!(err.code(), "kvm.unique_violation");
    let ids: Vec<i64> =
        db.query("SELECT id FROM t", ()).unwrap().into_iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    // A transaction left open by the script is rolled back.
    db.execute_batch("BEGIN; DELETE FROM t").unwrap();
    assert_eq!(db.query("SELECT id FROM t", ()).unwrap().len(), 4);
}

#[test]
fn parameters_must_match_what_the_statement_uses() {
    let db = users();
    let q = "SELECT id FROM users WHERE age > $1";
    let err = db.query(q, params![10, 20]).unwrap_err();
    assert_eq!(err.code(), "kvm.param");
    assert!(err.to_string().contains("2 positional parameters given"), "{err}");
    let err = db.query(q, ()).unwrap_err();
    assert!(err.to_string().contains("uses $1"), "{err}");
    let err = db.query("SELECT id FROM users", params![1]).unwrap_err();
    assert!(err.to_string().contains("uses none"), "{err}");
    let err = db
        .query("SELECT id FROM users WHERE age > $min", params! {"min" => 1, "max" => 2})
        .unwrap_err();
    assert!(err.to_string().contains("$max is bound"), "{err}");
    let err = db.query("SELECT id FROM users WHERE age > $min", params! {"mni" => 1}).unwrap_err();
    assert_eq!(err.code(), "kvm.param");
    // Prepared statements check at each execution; a write with too many runs nothing.
    let p = db.prepare("INSERT INTO users {id: $1, email: $2}").unwrap();
    assert_eq!(p.execute(params![7, "g@x.com", 1]).unwrap_err().code(), "kvm.param");
    assert_eq!(db.query_opt("SELECT id FROM users WHERE id = 7", ()).unwrap(), None);
    p.execute(params![7, "g@x.com"]).unwrap();
    // Parameters are counted wherever they are: LIMIT, INCLUDE, EXPIRE, a batch.
    db.query("SELECT id FROM users ORDER BY id LIMIT $1 OFFSET $2", params![1, 1]).unwrap();
}

#[test]
fn try_transaction_returns_the_applications_own_error_and_writes_nothing() {
    #[derive(Debug, PartialEq)]
    enum AppError {
        TooYoung(i64),
    }
    let db = users();
    let r = db.try_transaction(|tx| {
        tx.execute("UPDATE users SET age = age + 1 WHERE id = 3", ())?;
        let age: i64 = tx.query_row("SELECT age FROM users WHERE id = 3", ())?.get("age")?;
        if age < 21 {
            return Err(TxError::Abort(AppError::TooYoung(age)));
        }
        Ok(age)
    });
    assert!(matches!(r, Err(TxError::Abort(AppError::TooYoung(18)))), "{r:?}");
    let age: i64 = db.query_row("SELECT age FROM users WHERE id = 3", ()).unwrap().get(0).unwrap();
    assert_eq!(age, 17, "the aborted transaction wrote nothing");
    // KVM's own errors come through as TxError::Kvm.
    let r: Result<(), TxError<AppError>> = db.try_transaction(|tx| {
        tx.execute("INSERT INTO users {id: 1, email: 'dup@x.com'}", ())?;
        Ok(())
    });
    assert!(matches!(r, Err(TxError::Kvm(ref e)) if e.code() == "kvm.unique_violation"), "{r:?}");
}

#[test]
fn backup_writes_a_copy_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("a.kvm")).unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY)", ()).unwrap();
    db.execute("INSERT INTO t [{id: 1}, {id: 2}]", ()).unwrap();
    let copy = dir.path().join("b.kvm");
    db.backup(&copy).unwrap();
    let b = Database::open(&copy).unwrap();
    assert_eq!(b.query_row("SELECT COUNT(*) FROM t", ()).unwrap().get::<i64>(0).unwrap(), 2);
}

#[test]
fn values_have_typed_accessors() {
    assert_eq!(Value::Int(5).as_i64(), Some(5));
    assert_eq!(Value::Counter(5).as_i64(), Some(5));
    assert_eq!(Value::Counter(u64::MAX).as_i64(), None);
    assert_eq!(Value::Int(-1).as_u64(), None);
    assert_eq!(Value::Float(1.5).as_f64(), Some(1.5));
    assert_eq!(Value::String("a".into()).as_str(), Some("a"));
    assert_eq!(Value::Bool(true).as_bool(), Some(true));
    assert_eq!(Value::Bytes(vec![1]).as_bytes(), Some(&[1u8][..]));
    assert_eq!(Value::Timestamp(7).as_timestamp_micros(), Some(7));
    assert!(Value::Null.is_null());
    assert_eq!(Value::Int(1).as_str(), None);
    assert_eq!(Value::Counter(1).type_name(), "U64");
}

/// Issue 16 item 7: values in messages are KQL (`5`, not `5u64`), and an error in a batch
/// says which record it was.
#[test]
fn errors_show_kql_values_and_the_record_of_a_batch() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL c (id INT PRIMARY KEY, n U64, email STRING UNIQUE)", ()).unwrap();
    db.execute("INSERT INTO c {id: 1, n: 5}", ()).unwrap();
    let err = db.execute("UPDATE c SET n -= 6 WHERE id = 1", ()).unwrap_err();
    assert!(matches!(&err, Error::Validation { value, .. } if value == "5"), "{err:?}");
    assert!(!err.to_string().contains("u64"), "{err}");
    let err = db
        .execute("INSERT INTO c [{id: 2, email: 'a'}, {id: 3, email: 'a'}, {id: 4}]", ())
        .unwrap_err();
    assert_eq!(err.code(), "kvm.unique_violation");
    assert!(err.to_string().contains("record 2 of 3 in the batch"), "{err}");
    let err = db.execute("INSERT INTO c [{id: 5}, {id: 6}, {id: 7, n: -1}]", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.validation");
    assert!(err.to_string().contains("record 3 of 3 in the batch"), "{err}");
    assert_eq!(db.query("SELECT id FROM c", ()).unwrap().len(), 1, "nothing of a failed batch");
    // The caret goes on the offending value, not the whole statement.
    let text = "INSERT INTO c {id: 8, n: -1}";
    let err = db.execute(text, ()).unwrap_err();
    let span = err.span().expect("a validation error of a literal points at the value");
    assert_eq!(&text[span.start as usize..span.end as usize], "-1");
    let text = "UPDATE c SET n -= 9 WHERE id = 1";
    let span = db.execute(text, ()).unwrap_err().span().expect("points at the SET value");
    assert_eq!(&text[span.start as usize..span.end as usize], "9");
}

/// Issue 16 item 7: evaluation errors print values as KQL too.
#[test]
fn evaluation_errors_print_values_as_kql() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, n U64, at TIMESTAMP)", ()).unwrap();
    db.execute("INSERT INTO t {id: 1, n: 5, at: '2026-01-01T00:00:00Z'}", ()).unwrap();
    let err = db.query("SELECT n + at AS x FROM t", ()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("5 + '2026-01-01T00:00:00Z'"), "{text}");
    assert!(!text.contains("u64") && !text.contains("timestamp("), "{text}");
}

/// A transaction streams a query's rows to a callback: its own uncommitted writes are in
/// them, the callback stops the query, and a non-SELECT query is refused or run as usual.
#[test]
fn a_transaction_streams_rows_to_a_callback_and_sees_its_own_writes() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, v STRING)", ()).unwrap();
    db.transaction(|tx| {
        for i in 0..100i64 {
            tx.execute("INSERT INTO t {id: $1, v: $2}", params![i, format!("v{i}")])?;
        }
        let mut seen = Vec::new();
        let cursor =
            tx.query_each("SELECT id, v FROM t WHERE id >= $1", params![90i64], |row| {
                assert_eq!(row.columns(), ["id", "v"]);
                seen.push(row.get::<i64>("id")?);
                Ok(seen.len() < 3)
            })?;
        assert_eq!(seen, vec![90, 91, 92], "stopped by the callback");
        assert_eq!(cursor, None);
        let mut n = 0;
        tx.query_each("SELECT * FROM t", (), |_| {
            n += 1;
            Ok(true)
        })?;
        assert_eq!(n, 100, "every uncommitted row");
        let err = tx.query_each("DELETE FROM t", (), |_| Ok(true)).unwrap_err();
        assert_eq!(err.code(), "kvm.not_a_query", "{err}");
        Ok(())
    })
    .unwrap();
}

/// A projection moves a column's value out of the row only when no other column reads it:
/// a field or an included relation named twice (directly and through a path) is in both.
#[test]
fn a_value_read_by_two_columns_is_in_both() {
    let db = Database::memory().unwrap();
    db.execute_batch(
        "DEFINE MODEL a (id INT PRIMARY KEY, name STRING);
         DEFINE MODEL p (id INT PRIMARY KEY, a_id INT NOT NULL, t STRING,
           RELATION author BELONGS TO a (a_id));
         INSERT INTO a {id: 1, name: 'Ann'};
         INSERT INTO p {id: 7, a_id: 1, t: 'x'};",
    )
    .unwrap();
    let row = db
        .query_row(
            "SELECT t, t AS again, upper(t) AS up, author.name AS who FROM p INCLUDE author",
            (),
        )
        .unwrap();
    assert_eq!(row.get::<String>("t").unwrap(), "x");
    assert_eq!(row.get::<String>("again").unwrap(), "x");
    assert_eq!(row.get::<String>("up").unwrap(), "X");
    assert_eq!(row.get::<String>("who").unwrap(), "Ann");
    let author = row.value("author").unwrap();
    assert_eq!(author, &kvm::to_value(&serde_json::json!({"id": 1, "name": "Ann"})).unwrap());
}
