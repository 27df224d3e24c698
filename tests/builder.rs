//! The query builder (`kvm::builder`): it builds the AST the parser builds from the
//! equivalent KQL, so EXPLAIN and the results are the same for both; values are bound as
//! parameters; unknown names are the engine's errors; INCLUDE loads relations as KQL does.

#![allow(clippy::unwrap_used)]

use kvm::builder::{Order, Query};
use kvm::{Database, Output, Value};

fn db() -> Database {
    let db = Database::memory().unwrap();
    db.execute(
        "DEFINE MODEL users (id INT PRIMARY KEY, email STRING UNIQUE NOT NULL, \
         name STRING NOT NULL, age INT NOT NULL, status STRING NOT NULL, \
         created_at INT NOT NULL, nickname STRING, \
         INDEX by_status_age (status, age), INDEX by_created (created_at))",
        (),
    )
    .unwrap();
    let mut records = Vec::new();
    for i in 1..=40i64 {
        let status = ["active", "inactive", "banned"][(i % 3) as usize];
        let nick = if i % 4 == 0 { "NULL".to_string() } else { format!("'n{i}'") };
        records.push(format!(
            "{{id: {i}, email: 'u{i}@x.com', name: '{}{i}', age: {}, status: '{status}', \
             created_at: {}, nickname: {nick}}}",
            if i % 2 == 0 { "Ann" } else { "Bo" },
            10 + (i * 7) % 50,
            1000 - i * 3,
        ));
    }
    db.execute(&format!("INSERT INTO users [{}]", records.join(", ")), ()).unwrap();
    db
}

/// The builder prints `kql`, explains exactly as `EXPLAIN kql` does with the same
/// parameters, and returns the same rows. Returns the plan.
fn same_as_kql(db: &Database, q: &Query, kql: &str) -> String {
    assert_eq!(q.to_kql(), kql);
    let parsed = kvm::lang::parse_statement(kql).unwrap();
    assert_eq!(q.statement(), parsed, "the builder's AST is the parser's");
    let plan = q.explain().unwrap();
    match db.execute(&format!("EXPLAIN {kql}"), q.params()).unwrap() {
        Output::Plan(p) => assert_eq!(plan, p, "EXPLAIN of {kql}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.all().unwrap(), db.query(kql, q.params()).unwrap(), "rows of {kql}");
    plan
}

#[test]
fn pk_get_plans_like_kql() {
    let db = db();
    let q = db.model("users").unwrap().filter("id").eq(7);
    let plan = same_as_kql(&db, &q, "SELECT * FROM users WHERE id = $1");
    assert!(plan.contains("Get users key ['users', $1]"), "{plan}");
    assert_eq!(q.all().unwrap().rows.len(), 1);
}

#[test]
fn pk_in_is_a_multi_get() {
    let db = db();
    let q = db.model("users").unwrap().filter("id").in_([3, 5, 99]).select(&["id"]);
    let plan = same_as_kql(&db, &q, "SELECT id FROM users WHERE id IN ($1, $2, $3)");
    assert!(plan.contains("Get users key ['users', $1], ['users', $2], ['users', $3]"), "{plan}");
    assert_eq!(q.all().unwrap().rows, vec![vec![Value::Int(3)], vec![Value::Int(5)]]);
}

#[test]
fn unique_index_get_plans_like_kql() {
    let db = db();
    let q = db.model("users").unwrap().filter("email").eq("u9@x.com").select(&["id", "email"]);
    let plan = same_as_kql(&db, &q, "SELECT id, email FROM users WHERE email = $1");
    assert!(plan.contains("IndexGet users.email_unique"), "{plan}");
    assert_eq!(q.first().unwrap(), Some(vec![Value::Int(9), Value::String("u9@x.com".into())]));
}

#[test]
fn composite_range_plans_like_kql() {
    let db = db();
    // The issue's chain, conditions in its order (range first, equality second).
    let q = db.model("users").unwrap().filter("age").gte(18).filter("status").eq("active");
    let plan = same_as_kql(&db, &q, "SELECT * FROM users WHERE age >= $1 AND status = $2");
    assert!(plan.contains("IndexScan users.by_status_age range"), "{plan}");
    assert_eq!(q.params().positional, vec![Value::Int(18), Value::String("active".into())]);

    let q = db.model("users").unwrap().filter("status").eq("banned").filter("age").between(20, 40);
    let plan =
        same_as_kql(&db, &q, "SELECT * FROM users WHERE status = $1 AND age BETWEEN $2 AND $3");
    assert!(plan.contains("['users', '__idx', 'by_status_age', $1, >= $2 .. <= $3]"), "{plan}");
}

#[test]
fn order_by_through_an_index_plans_like_kql() {
    let db = db();
    let q = db
        .model("users")
        .unwrap()
        .order_by("created_at", Order::Desc)
        .limit(5)
        .offset(2)
        .select(&["id", "created_at"]);
    let plan = same_as_kql(
        &db,
        &q,
        "SELECT id, created_at FROM users ORDER BY created_at DESC LIMIT 5 OFFSET 2",
    );
    assert!(plan.contains("IndexScan users.by_created prefix"), "{plan}");
    assert!(plan.contains("reverse"), "{plan}");
    assert!(!plan.contains("Sort"), "no sort when the index yields the order: {plan}");
    let ids: Vec<Value> = q.all().unwrap().rows.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        ids,
        vec![Value::Int(3), Value::Int(4), Value::Int(5), Value::Int(6), Value::Int(7)]
    );
}

#[test]
fn full_scan_plans_like_kql() {
    let db = db();
    let q = db.model("users").unwrap().filter("name").like("Ann%").filter("nickname").is_null();
    let plan = same_as_kql(&db, &q, "SELECT * FROM users WHERE name LIKE $1 AND nickname IS NULL");
    assert!(plan.contains("FullScan users"), "{plan}");
    assert_eq!(q.count().unwrap(), 10);
}

#[test]
fn the_issue_chain_without_include() {
    let db = db();
    let q = db
        .model("users")
        .unwrap()
        .filter("age")
        .gte(18)
        .filter("status")
        .eq("active")
        .order_by("created_at", Order::Desc)
        .limit(10);
    let plan = same_as_kql(
        &db,
        &q,
        "SELECT * FROM users WHERE age >= $1 AND status = $2 ORDER BY created_at DESC LIMIT 10",
    );
    assert!(plan.contains("Sort created_at DESC (keeps top 10)"), "{plan}");
    let rows = q.all().unwrap();
    assert!(!rows.rows.is_empty() && rows.rows.len() <= 10);
}

#[test]
fn every_operator_matches_its_kql() {
    let db = db();
    let m = || db.model("users").unwrap();
    let cases: Vec<(Query, &str)> = vec![
        (m().filter("age").ne(17), "SELECT * FROM users WHERE age != $1"),
        (m().filter("age").lt(20), "SELECT * FROM users WHERE age < $1"),
        (m().filter("age").lte(20), "SELECT * FROM users WHERE age <= $1"),
        (m().filter("age").gt(50), "SELECT * FROM users WHERE age > $1"),
        (m().filter("nickname").is_not_null(), "SELECT * FROM users WHERE nickname IS NOT NULL"),
        (
            m().filter("id").gt(30).order_by("id", Order::Asc),
            "SELECT * FROM users WHERE id > $1 ORDER BY id",
        ),
    ];
    for (q, kql) in cases {
        same_as_kql(&db, &q, kql);
    }
}

#[test]
fn count_first_and_typed_rows() {
    let db = db();
    let active = db.model("users").unwrap().filter("status").eq("active");
    assert_eq!(active.count().unwrap(), 13);
    assert_eq!(db.model("users").unwrap().count().unwrap(), 40);
    // A page's LIMIT/OFFSET do not change how many records match.
    assert_eq!(db.model("users").unwrap().offset(5).limit(3).count().unwrap(), 40);
    assert_eq!(db.model("users").unwrap().filter("id").eq(999).first().unwrap(), None);

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct User {
        id: i64,
        email: String,
    }
    let u: Option<User> =
        db.model("users").unwrap().filter("id").eq(2).select(&["id", "email"]).first_as().unwrap();
    assert_eq!(u, Some(User { id: 2, email: "u2@x.com".into() }));
    let all: Vec<User> =
        active.select(&["id", "email"]).order_by("id", Order::Asc).all_as().unwrap();
    assert_eq!(all.len(), 13);
    assert_eq!(all[0].id, 3);
    // An empty IN list matches nothing.
    assert_eq!(db.model("users").unwrap().filter("id").in_(Vec::<i64>::new()).count().unwrap(), 0);
}

#[test]
fn values_are_bound_not_spliced() {
    let db = db();
    db.execute(
        "INSERT INTO users {id: 100, email: 'o@x.com', name: $1, age: 30, status: 'x', created_at: 1}",
        kvm::params!["O'Brien' OR 1 = 1 --"],
    )
    .unwrap();
    let q = db.model("users").unwrap().filter("name").eq("O'Brien' OR 1 = 1 --").select(&["id"]);
    assert_eq!(q.to_kql(), "SELECT id FROM users WHERE name = $1");
    assert_eq!(q.all().unwrap().rows, vec![vec![Value::Int(100)]]);
}

#[test]
fn unknown_model_and_field_are_the_engines_errors() {
    let db = db();
    let err = db.model("user").err().unwrap();
    assert_eq!(err.code(), "kvm.unknown_model");
    assert!(err.to_string().contains("did you mean `users`?"), "{err}");

    let err = db.model("users").unwrap().filter("agee").gte(1).all().unwrap_err();
    assert_eq!(err.code(), "kvm.unknown_field");
    assert!(err.to_string().contains("did you mean `age`?"), "{err}");
    let same = db.query("SELECT * FROM users WHERE agee >= $1", kvm::params![1]).unwrap_err();
    assert_eq!(err.to_string(), same.to_string());

    let err = db.model("users").unwrap().order_by("craeted_at", Order::Asc).explain().unwrap_err();
    assert!(err.to_string().contains("did you mean `created_at`?"), "{err}");
}

#[test]
fn include_loads_relations_like_kql_and_into_structs() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Author {
        id: i64,
        name: String,
    }
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Comment {
        id: i64,
        body: String,
        author: Author,
    }
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Post {
        id: i64,
        title: String,
        author: Author,
        comments: Vec<Comment>,
    }
    let db = db();
    db.execute(
        "DEFINE MODEL posts (id INT PRIMARY KEY, author_id INT NOT NULL, title STRING NOT NULL, \
           RELATION author BELONGS TO users (author_id), RELATION comments HAS MANY comments (post_id))",
        (),
    )
    .unwrap();
    db.execute(
        "DEFINE MODEL comments (id INT PRIMARY KEY, post_id INT NOT NULL, author_id INT NOT NULL, \
           body STRING NOT NULL, RELATION post BELONGS TO posts (post_id) ON DELETE CASCADE, \
           RELATION author BELONGS TO users (author_id))",
        (),
    )
    .unwrap();
    db.execute(
        "INSERT INTO posts [{id: 1, author_id: 2, title: 'a'}, {id: 2, author_id: 3, title: 'b'}]",
        (),
    )
    .unwrap();
    db.execute(
        "INSERT INTO comments [{id: 10, post_id: 1, author_id: 3, body: 'x'}, \
           {id: 11, post_id: 1, author_id: 4, body: 'y'}]",
        (),
    )
    .unwrap();
    let q = db.model("posts").unwrap().include("author").include("comments.author");
    assert_eq!(q.to_kql(), "SELECT * FROM posts INCLUDE author, comments.author");
    let text = db.query("SELECT * FROM posts INCLUDE author, comments.author", ()).unwrap();
    assert_eq!(q.all().unwrap(), text);
    assert_eq!(
        q.explain().unwrap(),
        db.execute("EXPLAIN SELECT * FROM posts INCLUDE author, comments.author", ())
            .unwrap()
            .to_string()
    );
    let posts: Vec<Post> = q.all_as().unwrap();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].author, Author { id: 2, name: "Ann2".into() });
    assert_eq!(posts[0].comments.len(), 2);
    assert_eq!(posts[0].comments[1].author, Author { id: 4, name: "Ann4".into() });
    assert!(posts[1].comments.is_empty());
    // Lazy loading of one relation of a fetched record.
    let comments = db.populate("posts", 1, "comments").unwrap().unwrap();
    let Value::Array(list) = comments else { panic!("{comments:?}") };
    assert_eq!(list.len(), 2);
    let author = db.populate("posts", 2, "author").unwrap().unwrap();
    assert!(
        matches!(&author, Value::Object(m) if m.get("name") == Some(&Value::String("Bo3".into()))),
        "{author:?}"
    );
    assert_eq!(db.populate("posts", 99, "author").unwrap(), None);
    assert_eq!(db.populate("posts", 1, "nope").unwrap_err().code(), "kvm.unknown_relation");
}

/// `insert_many` reads a lazy iterator a chunk at a time (a refused record in the first
/// chunk stops it before the rest is produced), inserts everything in one transaction, and
/// on a refused record inserts nothing — not even the chunks before it.
#[test]
fn insert_many_reads_lazily_and_is_all_or_nothing() {
    use std::cell::Cell;
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL hits (id INT PRIMARY KEY, n INT NOT NULL CHECK (n >= 0))", ())
        .unwrap();
    let record = |id: i64, n: i64| {
        Value::Object([("id".to_string(), Value::Int(id)), ("n".to_string(), Value::Int(n))].into())
    };
    assert_eq!(db.insert_many("hits", (0..5_500).map(|i| record(i, i))).unwrap(), 5_500);
    assert_eq!(db.model("hits").unwrap().count().unwrap(), 5_500);

    // Refused in the first chunk: the iterator is not read past that chunk.
    let produced = Cell::new(0usize);
    let early = (10_000..20_000).map(|i| {
        produced.set(produced.get() + 1);
        record(i, if i == 10_010 { -1 } else { 1 })
    });
    let err = db.insert_many("hits", early).unwrap_err();
    assert_eq!(err.code(), "kvm.validation", "{err}");
    assert_eq!(produced.get(), kvm::builder::INSERT_CHUNK, "read past the refused chunk");

    // Refused in the fourth chunk: nothing of the call is written.
    let late = (10_000..14_000).map(|i| record(i, if i == 13_500 { -1 } else { 1 }));
    let err = db.insert_many("hits", late).unwrap_err();
    assert_eq!(err.code(), "kvm.validation", "{err}");
    assert_eq!(db.model("hits").unwrap().count().unwrap(), 5_500);
    // An unknown model is the engine's error.
    let err = db.insert_many("hit", std::iter::once(record(1, 1))).unwrap_err();
    assert_eq!(err.code(), "kvm.unknown_model", "{err}");
}
