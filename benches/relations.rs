//! Eager loading of relations: KVM's `INCLUDE` against SQLite `JOIN`s (rusqlite, bundled),
//! in the same run, on the same data, both ending in the same `Vec<Post>` of Rust structs:
//!
//! ```text
//! users    (id INT PRIMARY KEY, name STRING NOT NULL, email STRING NOT NULL)          1,000
//! posts    (id INT PRIMARY KEY, author_id INT NOT NULL, title STRING NOT NULL, body STRING,
//!           RELATION author BELONGS TO users (author_id),
//!           RELATION comments HAS MANY comments (post_id))                            10,000
//! comments (id INT PRIMARY KEY, post_id INT NOT NULL, body STRING NOT NULL,
//!           RELATION post BELONGS TO posts (post_id) ON DELETE CASCADE)   10 per post = 100,000
//! ```
//!
//! Each post's author is a deterministic pseudo-random user; every post has exactly the same
//! number of comments, whose ids are scattered (comment ids are not grouped by post, as when
//! comments arrive over time). One post in ten has no body (null).
//!
//! Measured (criterion group `relations`; throughput in posts, 100 per iteration): one page
//! of 100 posts from a varying start id, each post with its author and its comments,
//! materialised as `Vec<Post { id, author_id, title, body, author: User, comments:
//! Vec<Comment> }>`:
//!
//! - `kvm_include`: the prepared statement `SELECT * FROM posts WHERE id >= $start LIMIT 100
//!   INCLUDE author, comments` (a page is in primary-key order), its `Rows` turned into the
//!   structs by hand (values moved out, no serde);
//! - `kvm_include_query_as`: the same prepared statement, the rows deserialized with serde
//!   through `kvm::json::rows_as` — what `Database::query_as` does, minus its parsing and
//!   planning (it takes text, not a prepared statement);
//! - `sqlite_join`: one 3-way join — the page of posts (a subquery with `ORDER BY id LIMIT
//!   100`) `JOIN users` `LEFT JOIN comments` `ORDER BY p.id, c.id` — grouped into the structs
//!   while reading (the post and author columns are read once per post, not once per row);
//! - `sqlite_join_2q`: what ORMs do for eager loading: the page `posts JOIN users`, then one
//!   `comments WHERE post_id BETWEEN first AND last ORDER BY post_id, id` (a page is a
//!   contiguous id range, so `BETWEEN` is exact; an ORM would send `IN (…100 ids…)`), merged
//!   into the posts.
//!
//! SQLite: `journal_mode=WAL`, `synchronous=NORMAL` (as in `benches/engine.rs`; a read-only
//! workload, so the journal mode hardly matters), `foreign_keys=ON` (KVM checks relations on
//! insert too), an index on `comments(post_id)`, the WAL checkpointed into the database file
//! after the load; both SQLite readers on one connection with SQLite's default page cache
//! (2,000 KiB, smaller than the ≈ 16 MB database: pages missing from it are `pread` from the
//! OS cache, where LMDB maps the whole file — `KVM_BENCH_SQLITE_CACHE_KIB=65536` gives SQLite
//! a cache that holds everything); `prepare_cached` statements reading every column into
//! owned values. KVM: LMDB (`Database::open`, default durability) in a temp dir, loaded with
//! `INSERT INTO model [$1, …, $n]` batches of 10,000 records (each one commit), users before
//! posts before comments; the schema above exactly, so no explicit index on
//! `comments.post_id`: how `HAS MANY` finds a post's comments is the engine's business (the
//! plan is printed at startup). Both are loaded once, timed once (printed, not a criterion
//! figure). Before timing, every reader's page is checked against the page built from the
//! generated data (at three starts), so all four return identical `Vec<Post>`s.
//!
//! Run: `cargo bench --features sqlite-baseline --bench relations`. Overrides:
//! `KVM_BENCH_USERS` (default 1,000), `KVM_BENCH_POSTS` (10,000), `KVM_BENCH_COMMENTS`
//! (comments per post, 10), `KVM_BENCH_PAGE` (posts per page, 100); `KVM_BENCH_SKIP_KVM=1`
//! measures SQLite alone (the KVM half needs relations and `INCLUDE`, issue 6);
//! `KVM_BENCH_SQLITE_CACHE_KIB` sets SQLite's page cache. One run takes under a minute.
//! Results in docs/benchmarks.md.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::Deserialize;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.replace('_', "").parse().ok()).unwrap_or(default)
}

/// `KVM_BENCH_SKIP_KVM` set to anything but empty or `0`.
fn skip_kvm() -> bool {
    std::env::var("KVM_BENCH_SKIP_KVM").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// SQLite's page cache in KiB (`KVM_BENCH_SQLITE_CACHE_KIB`); `None`: SQLite's default.
fn sqlite_cache_kib() -> Option<u64> {
    std::env::var_os("KVM_BENCH_SQLITE_CACHE_KIB")
        .map(|_| env_u64("KVM_BENCH_SQLITE_CACHE_KIB", 2_000))
}

/// Records per `INSERT` statement (and per commit) when loading KVM.
const BATCH: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct User {
    id: i64,
    name: String,
    email: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Comment {
    id: i64,
    post_id: i64,
    body: String,
}

/// A post as stored (no relations).
#[derive(Clone, Debug)]
struct PostRow {
    id: i64,
    author_id: i64,
    title: String,
    body: Option<String>,
}

/// A post with its author and comments: what every reader returns.
#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Post {
    id: i64,
    author_id: i64,
    title: String,
    body: Option<String>,
    author: User,
    comments: Vec<Comment>,
}

// ---------------------------------------------------------------------------------------
// The data.

struct Data {
    /// Ids `1..=users`, in id order.
    users: Vec<User>,
    /// Ids `1..=posts`, in id order.
    posts: Vec<PostRow>,
    /// Ids `1..=posts × per_post`, in id order; post ids scattered.
    comments: Vec<Comment>,
    /// Posts per page.
    page: usize,
}

/// SplitMix64: a deterministic hash of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
    tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud \
    exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor \
    in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur \
    sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est \
    laborum.";

/// `len` bytes of text (ASCII) starting at a place chosen by `seed`.
fn text(seed: u64, len: usize) -> &'static str {
    let len = len.min(LOREM.len());
    let at = (seed % (LOREM.len() - len + 1) as u64) as usize;
    &LOREM[at..at + len]
}

impl Data {
    fn generate(users: u64, posts: u64, per_post: u64, page: u64) -> Data {
        assert!(users > 0 && posts >= page && page > 0 && per_post > 0);
        let users: Vec<User> = (1..=users as i64)
            .map(|id| User {
                id,
                name: format!("User {id:05}"),
                email: format!("user{id}@example.com"),
            })
            .collect();
        let posts: Vec<PostRow> = (1..=posts as i64)
            .map(|id| {
                let h = mix(id as u64);
                PostRow {
                    id,
                    author_id: 1 + (h % users.len() as u64) as i64,
                    title: format!("Post {id}: {}", text(h >> 8, 20 + (h >> 40) as usize % 40)),
                    body: (id % 10 != 0)
                        .then(|| text(h >> 16, 100 + (h >> 48) as usize % 200).to_string()),
                }
            })
            .collect();
        // Comment `i` (0-based) goes to post `1 + (i·m mod n) mod posts`: `i·m mod n` is a
        // permutation of `0..n` (m coprime with n), so every post gets exactly `per_post`
        // comments, with scattered ids.
        let n = posts.len() as u64 * per_post;
        let m = [999_983, 7_919, 104_729, 3].into_iter().find(|&p| gcd(p, n) == 1).unwrap_or(1);
        let comments = (0..n)
            .map(|i| {
                let id = i as i64 + 1;
                let post_id = 1 + ((i * m % n) % posts.len() as u64) as i64;
                let h = mix(n + i);
                Comment {
                    id,
                    post_id,
                    body: format!(
                        "Comment {id} on {post_id}: {}",
                        text(h, 40 + (h >> 32) as usize % 80)
                    ),
                }
            })
            .collect();
        Data { users, posts, comments, page: page as usize }
    }

    /// The page starting at post id `start`, built from the data: what every reader must
    /// return (comments in id order).
    fn expected_page(&self, start: i64) -> Vec<Post> {
        let mut page: Vec<Post> = self
            .posts
            .iter()
            .filter(|p| p.id >= start)
            .take(self.page)
            .map(|p| Post {
                id: p.id,
                author_id: p.author_id,
                title: p.title.clone(),
                body: p.body.clone(),
                author: self.users[(p.author_id - 1) as usize].clone(),
                comments: Vec::new(),
            })
            .collect();
        let (first, last) = (page[0].id, page[page.len() - 1].id);
        for c in &self.comments {
            if (first..=last).contains(&c.post_id) {
                page[(c.post_id - first) as usize].comments.push(c.clone());
            }
        }
        page
    }
}

/// One way of reading a page.
trait Reader {
    fn name(&self) -> &'static str;
    /// The page of posts with `id >= start` (in id order), each with its author and its
    /// comments (in id order).
    fn page(&mut self, start: i64) -> Vec<Post>;
}

// ---------------------------------------------------------------------------------------
// KVM: the public API only (Database::open, KQL, parameters, prepared statements).

mod kvm_side {
    use super::*;
    use kvm::{params, Database, Output, Prepared, Rows, Value};

    const SCHEMA: &str = "\
        DEFINE MODEL users (id INT PRIMARY KEY, name STRING NOT NULL, email STRING NOT NULL);
        DEFINE MODEL posts (id INT PRIMARY KEY, author_id INT NOT NULL, title STRING NOT NULL, body STRING,
          RELATION author BELONGS TO users (author_id),
          RELATION comments HAS MANY comments (post_id));
        DEFINE MODEL comments (id INT PRIMARY KEY, post_id INT NOT NULL, body STRING NOT NULL,
          RELATION post BELONGS TO posts (post_id) ON DELETE CASCADE);";

    fn setup_failed(e: kvm::Error) -> ! {
        panic!(
            "KVM setup failed: {e}\n(relations and INCLUDE are executed from issue 6 on; \
             KVM_BENCH_SKIP_KVM=1 measures SQLite alone)"
        )
    }

    fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// Inserts `records` into `model` in statements of `BATCH` records:
    /// `INSERT INTO model [$1, …, $n]`, each record bound as an object.
    fn insert(db: &Database, model: &str, records: Vec<Value>) {
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let batch: Vec<Value> = records.by_ref().take(BATCH).collect();
            let slots: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
            let kql = format!("INSERT INTO {model} [{}]", slots.join(", "));
            let n = batch.len() as u64;
            match db.execute(&kql, batch) {
                Ok(Output::Affected { count, .. }) => assert_eq!(count, n),
                Ok(other) => panic!("{other:?}"),
                Err(e) => setup_failed(e),
            }
        }
    }

    /// Opens a KVM database in `dir`, defines the models and loads `data`.
    pub fn load(dir: &Path, data: &Data) -> Database {
        let db = Database::open(dir.join("relations.kvm")).unwrap();
        db.execute_batch(SCHEMA).unwrap_or_else(|e| setup_failed(e));
        let t = Instant::now();
        let users = data.users.iter().map(|u| {
            object([
                ("id", Value::Int(u.id)),
                ("name", Value::String(u.name.clone())),
                ("email", Value::String(u.email.clone())),
            ])
        });
        insert(&db, "users", users.collect());
        let posts = data.posts.iter().map(|p| {
            let mut fields = vec![
                ("id".to_string(), Value::Int(p.id)),
                ("author_id".to_string(), Value::Int(p.author_id)),
                ("title".to_string(), Value::String(p.title.clone())),
            ];
            if let Some(body) = &p.body {
                fields.push(("body".to_string(), Value::String(body.clone())));
            }
            Value::Object(fields.into_iter().collect())
        });
        insert(&db, "posts", posts.collect());
        let comments = data.comments.iter().map(|c| {
            object([
                ("id", Value::Int(c.id)),
                ("post_id", Value::Int(c.post_id)),
                ("body", Value::String(c.body.clone())),
            ])
        });
        insert(&db, "comments", comments.collect());
        report_load("kvm", data, t.elapsed());
        db
    }

    /// The page query, prepared.
    pub fn prepare(db: &Database, page: usize) -> Prepared {
        db.prepare(&format!(
            "SELECT * FROM posts WHERE id >= $start LIMIT {page} INCLUDE author, comments"
        ))
        .unwrap_or_else(|e| setup_failed(e))
    }

    /// `kvm_include`: `Rows` into structs by hand, values moved out.
    pub struct Include(pub Prepared);

    /// `kvm_include_query_as`: `Rows` into structs through serde (`kvm::json::rows_as`).
    pub struct IncludeQueryAs(pub Prepared);

    fn int(v: Option<Value>) -> i64 {
        match v {
            Some(Value::Int(i)) => i,
            other => panic!("expected an INT, got {other:?}"),
        }
    }

    fn string(v: Option<Value>) -> String {
        match v {
            Some(Value::String(s)) => s,
            other => panic!("expected a STRING, got {other:?}"),
        }
    }

    fn opt_string(v: Option<Value>) -> Option<String> {
        match v {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => None,
            other => panic!("expected a STRING or null, got {other:?}"),
        }
    }

    fn fields(v: Option<Value>) -> BTreeMap<String, Value> {
        match v {
            Some(Value::Object(m)) => m,
            other => panic!("expected an object, got {other:?}"),
        }
    }

    impl Reader for Include {
        fn name(&self) -> &'static str {
            "kvm_include"
        }

        fn page(&mut self, start: i64) -> Vec<Post> {
            posts(self.0.query(params! { "start" => start }).unwrap())
        }
    }

    /// The page's `Rows` as structs, by hand: the columns found by name, the values moved
    /// out.
    pub fn posts(rows: Rows) -> Vec<Post> {
        let col = |name: &str| {
            rows.columns.iter().position(|c| c == name).unwrap_or_else(|| {
                panic!("no column {name} in {:?}", rows.columns);
            })
        };
        let cols = [col("id"), col("author_id"), col("title"), col("body")];
        let (author, comments) = (col("author"), col("comments"));
        rows.rows
            .into_iter()
            .map(|mut r| {
                let mut take = |i: usize| Some(std::mem::replace(&mut r[i], Value::Null));
                let mut a = fields(take(author));
                let comments = match take(comments) {
                    Some(Value::Array(cs)) => cs
                        .into_iter()
                        .map(|c| {
                            let mut c = fields(Some(c));
                            Comment {
                                id: int(c.remove("id")),
                                post_id: int(c.remove("post_id")),
                                body: string(c.remove("body")),
                            }
                        })
                        .collect(),
                    other => panic!("expected an array of comments, got {other:?}"),
                };
                Post {
                    id: int(take(cols[0])),
                    author_id: int(take(cols[1])),
                    title: string(take(cols[2])),
                    body: opt_string(take(cols[3])),
                    author: User {
                        id: int(a.remove("id")),
                        name: string(a.remove("name")),
                        email: string(a.remove("email")),
                    },
                    comments,
                }
            })
            .collect()
    }

    impl Reader for IncludeQueryAs {
        fn name(&self) -> &'static str {
            "kvm_include_query_as"
        }

        fn page(&mut self, start: i64) -> Vec<Post> {
            let rows = self.0.query(params! { "start" => start }).unwrap();
            kvm::json::rows_as(&rows).unwrap()
        }
    }
}

// ---------------------------------------------------------------------------------------
// SQLite: rusqlite with the bundled library, WAL.

mod sqlite_side {
    use super::*;
    use rusqlite::Connection;
    use std::rc::Rc;

    /// The page (a subquery, so the LIMIT counts posts, not joined rows), its authors and
    /// its comments, one row per comment.
    const JOIN3: &str = "\
        SELECT p.id, p.author_id, p.title, p.body, u.id, u.name, u.email, c.id, c.post_id, c.body \
        FROM (SELECT id, author_id, title, body FROM posts WHERE id >= ?1 ORDER BY id LIMIT ?2) AS p \
        JOIN users AS u ON u.id = p.author_id \
        LEFT JOIN comments AS c ON c.post_id = p.id \
        ORDER BY p.id, c.id";

    /// The page with its authors.
    const PAGE: &str = "\
        SELECT p.id, p.author_id, p.title, p.body, u.id, u.name, u.email \
        FROM posts AS p JOIN users AS u ON u.id = p.author_id \
        WHERE p.id >= ?1 ORDER BY p.id LIMIT ?2";

    /// The comments of posts `?1..=?2`.
    const COMMENTS: &str = "\
        SELECT id, post_id, body FROM comments WHERE post_id BETWEEN ?1 AND ?2 \
        ORDER BY post_id, id";

    /// WAL, `synchronous=NORMAL`, foreign keys enforced; the page cache SQLite's default
    /// (2,000 KiB) unless `KVM_BENCH_SQLITE_CACHE_KIB` says otherwise.
    fn connect(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        if let Some(kib) = sqlite_cache_kib() {
            conn.pragma_update(None, "cache_size", -(kib as i64)).unwrap();
        }
        conn
    }

    /// Creates the database at `path` and loads `data`, one transaction per table.
    pub fn load(path: &Path, data: &Data) {
        let mut conn = connect(path);
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);
             CREATE TABLE posts (id INTEGER PRIMARY KEY,
               author_id INTEGER NOT NULL REFERENCES users (id),
               title TEXT NOT NULL, body TEXT);
             CREATE TABLE comments (id INTEGER PRIMARY KEY,
               post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
               body TEXT NOT NULL);
             CREATE INDEX comments_by_post ON comments (post_id);",
        )
        .unwrap();
        let t = Instant::now();
        let tx = conn.transaction().unwrap();
        {
            let mut ins =
                tx.prepare("INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)").unwrap();
            for u in &data.users {
                ins.execute(rusqlite::params![u.id, u.name, u.email]).unwrap();
            }
        }
        tx.commit().unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO posts (id, author_id, title, body) VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            for p in &data.posts {
                ins.execute(rusqlite::params![p.id, p.author_id, p.title, p.body]).unwrap();
            }
        }
        tx.commit().unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut ins =
                tx.prepare("INSERT INTO comments (id, post_id, body) VALUES (?1, ?2, ?3)").unwrap();
            for c in &data.comments {
                ins.execute(rusqlite::params![c.id, c.post_id, c.body]).unwrap();
            }
        }
        tx.commit().unwrap();
        report_load("sqlite", data, t.elapsed());
        // Reads then come from the database file, not through the WAL index.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        let size = std::fs::metadata(path).unwrap().len();
        println!("sqlite database: {:.1} MB", size as f64 / 1e6);
        for (name, sql) in [
            ("sqlite_join", JOIN3),
            ("sqlite_join_2q page", PAGE),
            ("sqlite_join_2q comments", COMMENTS),
        ] {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = st
                .query_map([1, 100], |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            println!("{name} plan: {}", plan.join("; "));
        }
    }

    fn user_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<User> {
        Ok(User { id: r.get(at)?, name: r.get(at + 1)?, email: r.get(at + 2)? })
    }

    /// The post and author columns 0..7 of a row.
    fn post_at(r: &rusqlite::Row<'_>) -> rusqlite::Result<Post> {
        Ok(Post {
            id: r.get(0)?,
            author_id: r.get(1)?,
            title: r.get(2)?,
            body: r.get(3)?,
            author: user_at(r, 4)?,
            comments: Vec::new(),
        })
    }

    /// `sqlite_join`: one 3-way join, grouped while reading.
    pub struct Join {
        conn: Rc<Connection>,
        page: i64,
    }

    /// `sqlite_join_2q`: page ⋈ users, then the page's comments, merged.
    pub struct TwoQueries {
        conn: Rc<Connection>,
        page: i64,
    }

    /// Both readers, on one connection (one page cache, as an application would have).
    /// With a connection each, whichever reader was measured second ran 2–2.5× slower,
    /// with several times more page reads (`pread`s, counted by strace) than alone. The
    /// bundled SQLite is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, under which all
    /// connections' page caches share one pool (pcache1's unified mode) — the likely cause.
    pub fn readers(path: &Path, page: usize) -> (Join, TwoQueries) {
        let conn = Rc::new(connect(path));
        let page = page as i64;
        (Join { conn: conn.clone(), page }, TwoQueries { conn, page })
    }

    impl Reader for Join {
        fn name(&self) -> &'static str {
            "sqlite_join"
        }

        fn page(&mut self, start: i64) -> Vec<Post> {
            let mut st = self.conn.prepare_cached(JOIN3).unwrap();
            let mut rows = st.query([start, self.page]).unwrap();
            let mut out: Vec<Post> = Vec::with_capacity(self.page as usize);
            while let Some(r) = rows.next().unwrap() {
                let id: i64 = r.get(0).unwrap();
                if out.last().is_none_or(|p| p.id != id) {
                    out.push(post_at(r).unwrap());
                }
                let comment_id: Option<i64> = r.get(7).unwrap();
                if let Some(cid) = comment_id {
                    let c =
                        Comment { id: cid, post_id: r.get(8).unwrap(), body: r.get(9).unwrap() };
                    out.last_mut().unwrap().comments.push(c);
                }
            }
            out
        }
    }

    impl Reader for TwoQueries {
        fn name(&self) -> &'static str {
            "sqlite_join_2q"
        }

        fn page(&mut self, start: i64) -> Vec<Post> {
            let mut posts: Vec<Post> = {
                let mut st = self.conn.prepare_cached(PAGE).unwrap();
                st.query_map([start, self.page], post_at).unwrap().map(|p| p.unwrap()).collect()
            };
            let (Some(first), Some(last)) = (posts.first(), posts.last()) else {
                return posts;
            };
            let mut st = self.conn.prepare_cached(COMMENTS).unwrap();
            let mut rows = st.query([first.id, last.id]).unwrap();
            // Both sorted by post id: a merge.
            let mut at = 0;
            while let Some(r) = rows.next().unwrap() {
                let c = Comment {
                    id: r.get(0).unwrap(),
                    post_id: r.get(1).unwrap(),
                    body: r.get(2).unwrap(),
                };
                while posts[at].id < c.post_id {
                    at += 1;
                }
                posts[at].comments.push(c);
            }
            posts
        }
    }
}

// ---------------------------------------------------------------------------------------

fn report_load(system: &str, data: &Data, el: Duration) {
    let n = data.users.len() + data.posts.len() + data.comments.len();
    println!(
        "load/{system}: {} users, {} posts, {} comments in {:.2} s = {:.0} rows/s",
        data.users.len(),
        data.posts.len(),
        data.comments.len(),
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64()
    );
}

/// Panics, showing the first differing post, unless `got` is `want`.
fn check(name: &str, start: i64, got: &[Post], want: &[Post]) {
    assert_eq!(got.len(), want.len(), "{name}: page at {start}: number of posts");
    if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
        let mut sorted = got[i].clone();
        sorted.comments.sort_by_key(|c| c.id);
        let hint = if sorted == want[i] { " (only the order of its comments)" } else { "" };
        panic!(
            "{name}: page at {start}: post #{i} differs{hint}\n got: {:?}\nwant: {:?}",
            got[i], want[i]
        );
    }
}

fn bench(c: &mut Criterion) {
    let data = Data::generate(
        env_u64("KVM_BENCH_USERS", 1_000),
        env_u64("KVM_BENCH_POSTS", 10_000),
        env_u64("KVM_BENCH_COMMENTS", 10),
        env_u64("KVM_BENCH_PAGE", 100),
    );
    let dir = tempfile::tempdir().unwrap();
    println!("relations bench: temp dir {}", dir.path().display());

    let mut readers: Vec<Box<dyn Reader>> = Vec::new();
    // Kept open for the readers' lifetime (the prepared statements hold clones).
    let _kvm = if skip_kvm() {
        println!("KVM_BENCH_SKIP_KVM: SQLite only");
        None
    } else {
        let db = kvm_side::load(dir.path(), &data);
        let include = kvm_side::prepare(&db, data.page);
        println!("kvm plan:\n{}", include.explain());
        readers.push(Box::new(kvm_side::Include(include)));
        readers.push(Box::new(kvm_side::IncludeQueryAs(kvm_side::prepare(&db, data.page))));
        Some(db)
    };
    let sqlite_path = dir.path().join("relations.sqlite");
    sqlite_side::load(&sqlite_path, &data);
    let (join, two_queries) = sqlite_side::readers(&sqlite_path, data.page);
    readers.push(Box::new(join));
    readers.push(Box::new(two_queries));

    // Every reader returns the same page as the generated data, outside timing.
    let last_start = (data.posts.len() - data.page) as i64 + 1;
    for start in [1, last_start / 2, last_start] {
        let want = data.expected_page(start);
        for r in readers.iter_mut() {
            check(r.name(), start, &r.page(start), &want);
        }
    }

    let mut g = c.benchmark_group("relations");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4)).sample_size(30);
    g.throughput(Throughput::Elements(data.page as u64));
    let starts = last_start as u64;
    for r in readers.iter_mut() {
        let mut i = 0u64;
        g.bench_function(r.name(), |b| {
            b.iter(|| {
                i = (i + 7919) % starts;
                black_box(r.page(i as i64 + 1))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
