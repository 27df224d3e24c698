//! The engine against what users would otherwise pick: KVM (LMDB, through the public API and
//! prepared KQL), raw heed (LMDB by hand: the floor) and SQLite (rusqlite, bundled), through
//! one adapter trait, in the same run, on a users model:
//!
//! `users (id INT PRIMARY KEY, email STRING UNIQUE, name STRING, age INT, status STRING)`
//! with one secondary index on `age`. `age` is a scattered permutation of `0..N` (not a
//! realistic age) so that `age >= x AND age < x + 1000` selects exactly 1,000 rows at every
//! N, spread over the primary keys.
//!
//! Measured: (a) point get by primary key through a prepared statement; (b) bulk insert of N
//! rows in one statement / transaction (timed once, as it loads the data); (c) the 1,000-row
//! index range; (d) the same range on a 10,000-row database (ratio to (c): cost follows rows
//! returned, not rows stored); (e) 8 threads × `KVM_BENCH_COUNTER` increments of one counter
//! row, each a durable commit (timed once); (f) `ALTER … ADD FIELD … DEFAULT` on the 1M-row
//! model while another handle makes single-row durable inserts (its latencies meanwhile);
//! (g) 8 threads × `KVM_BENCH_COUNTER` single-row inserts, each its own durable commit.
//!
//! Run: `cargo bench --features sqlite-baseline --bench engine` (`KVM_BENCH_ROWS`, default
//! 1,000,000; `KVM_BENCH_COUNTER`, default 10,000 per thread; `KVM_BENCH_READ_AHEAD=1`, KVM
//! with the kernel's read-ahead). Results in
//! docs/benchmarks.md.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Rows of the big database (override with KVM_BENCH_ROWS).
fn rows() -> u64 {
    env_u64("KVM_BENCH_ROWS", 1_000_000)
}

/// Increments per thread in the counter test (override with KVM_BENCH_COUNTER).
fn counter_per_thread() -> u64 {
    env_u64("KVM_BENCH_COUNTER", 10_000)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.replace('_', "").parse().ok()).unwrap_or(default)
}

const SMALL: u64 = 10_000;
const RANGE: i64 = 1_000;
const THREADS: u64 = 8;

/// One user row.
#[derive(Clone, Debug)]
struct User {
    id: i64,
    email: String,
    name: String,
    age: i64,
    status: &'static str,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A multiplier coprime with `n`, so `i * m mod n` is a permutation of `0..n`.
fn coprime(n: u64, candidates: &[u64]) -> u64 {
    candidates.iter().copied().find(|&p| gcd(p, n) == 1).unwrap_or(1)
}

/// The rows, in insertion order: ids scattered over `0..n` (inserted out of key order, as
/// real keys arrive), ages another permutation of `0..n`.
fn users(n: u64) -> Vec<User> {
    let p = coprime(n, &[999_983, 7_919, 104_729, 3]);
    let q = coprime(n, &[15_485_863, 1_299_709, 7]);
    (0..n)
        .map(|i| {
            let id = (i * p % n) as i64;
            User {
                id,
                email: format!("user{id}@example.com"),
                name: format!("User Number {id:08}"),
                age: ((id as u64) * q % n) as i64,
                status: ["active", "inactive", "banned", "pending"][(id % 4) as usize],
            }
        })
        .collect()
}

/// An ALTER run beside a writer: the ALTER's time, the writer's latencies meanwhile.
struct AlterRun {
    alter: Duration,
    writes: Vec<Duration>,
}

/// Runs `alter` while a thread runs `write` (one durable single-row commit per call) in a
/// loop; the writer starts first and stops when the ALTER is done.
fn beside_a_writer(alter: impl FnOnce(), mut write: impl FnMut(u64) + Send + 'static) -> AlterRun {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let started = std::sync::Arc::new(std::sync::Barrier::new(2));
    let writer = {
        let (stop, started) = (stop.clone(), started.clone());
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            for i in 0..5 {
                write(i);
            }
            started.wait();
            let mut i = 5;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                write(i);
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        })
    };
    started.wait();
    let t = Instant::now();
    alter();
    let alter = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    AlterRun { alter, writes: writer.join().unwrap() }
}

/// What each system under test does.
trait Store {
    fn name(&self) -> &'static str;
    /// Inserts every row in one statement / transaction.
    fn bulk_insert(&mut self, users: &[User]);
    /// Fetches the row with primary key `id` (every column); returns a value derived from it.
    fn get(&mut self, id: i64) -> usize;
    /// Rows with `lo <= age < hi`, through the age index (every column); returns how many.
    fn age_range(&mut self, lo: i64, hi: i64) -> usize;
    /// `threads × per_thread` increments of one counter, each its own durable commit, each
    /// thread with its own handle; returns the final counter (must equal the total).
    fn counter(&mut self, threads: u64, per_thread: u64) -> Option<i64>;
    /// `threads × per_thread` single-row inserts into a table of their own, each its own
    /// durable commit, each thread with its own handle; returns the rows then in the table.
    fn inserts(&mut self, _threads: u64, _per_thread: u64) -> Option<i64> {
        None
    }
    /// Adds a field (column) to `users` with the default `default` (KQL text; SQL gets its
    /// own equivalent) while another thread, with its own handle, makes single-row durable
    /// inserts into another table; returns the ALTER's time and each insert's latency while
    /// it ran.
    fn alter_while_writing(&mut self, _field: &str, _default: &str) -> Option<AlterRun> {
        None
    }
    /// `SELECT COUNT(*) … WHERE status = $1` (no index on status): every row tested.
    fn count_unindexed(&mut self, _status: &str) -> Option<i64> {
        None
    }
    /// `SELECT * … ORDER BY name LIMIT 5 OFFSET $1` (no index on name): a bounded top-k.
    fn order_offset(&mut self, _offset: i64) -> Option<usize> {
        None
    }
    /// `SELECT * FROM users` streamed: the time to the first row, then to the last, and the
    /// row count.
    fn stream_all(&mut self) -> Option<(Duration, Duration, u64)> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// KVM: the public API only (Database::open, prepared KQL, parameters).

mod kvm_store {
    use super::*;
    use kvm::lang::ast::{Insert, InsertSource, Param};
    use kvm::lang::{Expr, ExprKind, Span, Statement};
    use kvm::{params, Database, Output, Params, Prepared, Value};

    pub struct Kvm {
        db: Database,
        get: Prepared,
        range: Prepared,
        dir: std::path::PathBuf,
    }

    /// The default options; `KVM_BENCH_READ_AHEAD=1` turns the kernel's read-ahead back on
    /// (how KVM ran before issue 17 made it off), for a before/after in one build.
    fn options() -> kvm::Options {
        let read_ahead = std::env::var_os("KVM_BENCH_READ_AHEAD").is_some_and(|v| v == "1");
        kvm::Options { read_ahead, ..kvm::Options::default() }
    }

    impl Kvm {
        pub fn open(dir: &Path) -> Kvm {
            let db = Database::open_with(dir.join("bench.kvm"), options()).unwrap();
            db.execute(
                "DEFINE MODEL users (id INT PRIMARY KEY, email STRING UNIQUE NOT NULL, \
                 name STRING NOT NULL, age INT NOT NULL, status STRING NOT NULL, \
                 INDEX by_age (age))",
                (),
            )
            .unwrap();
            let get = db.prepare("SELECT * FROM users WHERE id = $1").unwrap();
            let range = db.prepare("SELECT * FROM users WHERE age >= $1 AND age < $2").unwrap();
            assert!(
                range.explain().contains("IndexScan users.by_age range"),
                "{}",
                range.explain()
            );
            Kvm { db, get, range, dir: dir.to_path_buf() }
        }
    }

    impl Store for Kvm {
        fn name(&self) -> &'static str {
            "kvm"
        }

        fn bulk_insert(&mut self, users: &[User]) {
            // One INSERT statement of N records, each bound as a parameter (an object).
            let records = (1..=users.len())
                .map(|i| Expr::new(ExprKind::Param(Param::Positional(i as u32))))
                .collect();
            let stmt = Statement::Insert(Insert {
                model: kvm::lang::ast::Ident::new("users"),
                source: InsertSource::Batch(records),
                expire: None,
                returning: None,
                span: Span::default(),
            });
            let positional = users
                .iter()
                .map(|u| {
                    Value::Object(
                        [
                            ("id", Value::Int(u.id)),
                            ("email", Value::String(u.email.clone())),
                            ("name", Value::String(u.name.clone())),
                            ("age", Value::Int(u.age)),
                            ("status", Value::String(u.status.to_string())),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                    )
                })
                .collect();
            let out = self.db.run_statement(&stmt, &Params { positional, ..Params::default() });
            assert!(
                matches!(out.unwrap(), Output::Affected { count, .. } if count == users.len() as u64)
            );
        }

        fn get(&mut self, id: i64) -> usize {
            let rows = self.get.query(params![id]).unwrap();
            let row = &rows.rows[0];
            match (&row[0], &row[1]) {
                (Value::Int(i), Value::String(e)) => *i as usize + e.len(),
                other => panic!("{other:?}"),
            }
        }

        fn age_range(&mut self, lo: i64, hi: i64) -> usize {
            self.range.query(params![lo, hi]).unwrap().rows.len()
        }

        fn count_unindexed(&mut self, status: &str) -> Option<i64> {
            let rows =
                self.db.query("SELECT COUNT(*) FROM users WHERE status = $1", params![status]);
            match rows.unwrap().rows[0][0] {
                Value::Int(n) => Some(n),
                ref other => panic!("{other:?}"),
            }
        }

        fn order_offset(&mut self, offset: i64) -> Option<usize> {
            let q = "SELECT * FROM users ORDER BY name LIMIT 5 OFFSET $1";
            Some(self.db.query(q, params![offset]).unwrap().rows.len())
        }

        fn stream_all(&mut self) -> Option<(Duration, Duration, u64)> {
            let t = Instant::now();
            let mut rows = self.db.query_iter("SELECT * FROM users", ()).unwrap();
            black_box(rows.next().unwrap().unwrap());
            let first = t.elapsed();
            let mut n = 1;
            for r in rows {
                black_box(r.unwrap());
                n += 1;
            }
            Some((first, t.elapsed(), n))
        }

        fn counter(&mut self, threads: u64, per_thread: u64) -> Option<i64> {
            self.db
                .execute("DEFINE MODEL counters (id INT PRIMARY KEY, n INT NOT NULL)", ())
                .unwrap();
            self.db.execute("INSERT INTO counters {id: 1, n: 0}", ()).unwrap();
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    // Each thread opens its own handle (the same environment underneath).
                    let db = Database::open_with(self.dir.join("bench.kvm"), options()).unwrap();
                    std::thread::spawn(move || {
                        let inc = db.prepare("UPDATE counters SET n += 1 WHERE id = 1").unwrap();
                        let mut retries = 0u64;
                        for _ in 0..per_thread {
                            loop {
                                match inc.execute(()) {
                                    Ok(_) => break,
                                    Err(e) if e.is_retryable() => retries += 1,
                                    Err(e) => panic!("{e}"),
                                }
                            }
                        }
                        retries
                    })
                })
                .collect();
            let retries: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            if retries > 0 {
                eprintln!("kvm counter: {retries} statements retried after MAX_ATTEMPTS conflicts");
            }
            let rows = self.db.query("SELECT n FROM counters WHERE id = 1", ()).unwrap();
            match rows.rows[0][0] {
                Value::Int(n) => Some(n),
                ref other => panic!("{other:?}"),
            }
        }

        fn inserts(&mut self, threads: u64, per_thread: u64) -> Option<i64> {
            self.db
                .execute("DEFINE MODEL events (id INT PRIMARY KEY, kind STRING NOT NULL)", ())
                .unwrap();
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let db = Database::open_with(self.dir.join("bench.kvm"), options()).unwrap();
                    std::thread::spawn(move || {
                        let insert = db.prepare("INSERT INTO events {id: $1, kind: $2}").unwrap();
                        for i in 0..per_thread {
                            insert.execute(((t * per_thread + i) as i64, "click")).unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let rows = self.db.query("SELECT COUNT(*) FROM events", ()).unwrap();
            match rows.rows[0][0] {
                Value::Int(n) => Some(n),
                ref other => panic!("{other:?}"),
            }
        }

        fn alter_while_writing(&mut self, field: &str, default: &str) -> Option<AlterRun> {
            let log = format!("log_{field}");
            self.db.execute(&format!("DEFINE MODEL {log} (id INT PRIMARY KEY)"), ()).unwrap();
            let other = Database::open_with(self.dir.join("bench.kvm"), options()).unwrap();
            let insert = format!("INSERT INTO {log} {{id: $1}}");
            let alter = format!("ALTER MODEL users ADD FIELD {field} STRING DEFAULT {default}");
            Some(super::beside_a_writer(
                || {
                    self.db.execute(&alter, ()).unwrap();
                },
                move |i| {
                    other.execute(&insert, (i as i64,)).unwrap();
                },
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw heed: the same data by hand (record, unique email index, age index), the floor.

mod heed_store {
    use super::*;
    use heed::types::Bytes;
    use heed::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions};

    type Db = Database<'static, Bytes, Bytes>;

    pub struct Heed {
        env: heed::Env<heed::WithoutTls>,
        data: Db,
        email: Db,
        age: Db,
    }

    /// The decoded record, as a user of raw LMDB would get it.
    pub struct Rec {
        pub id: i64,
        pub age: i64,
        pub email: String,
        pub name: String,
        pub status: String,
    }

    fn encode(u: &User) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&u.id.to_be_bytes());
        v.extend_from_slice(&u.age.to_be_bytes());
        for s in [u.email.as_str(), u.name.as_str(), u.status] {
            v.push(s.len() as u8);
            v.extend_from_slice(s.as_bytes());
        }
        v
    }

    fn decode(b: &[u8]) -> Rec {
        let id = i64::from_be_bytes(b[0..8].try_into().unwrap());
        let age = i64::from_be_bytes(b[8..16].try_into().unwrap());
        let mut at = 16;
        let mut s = || {
            let len = b[at] as usize;
            let out = String::from_utf8(b[at + 1..at + 1 + len].to_vec()).unwrap();
            at += 1 + len;
            out
        };
        Rec { id, age, email: s(), name: s(), status: s() }
    }

    /// Order-preserving key of an i64 (sign bit flipped, big-endian).
    fn k(i: i64) -> [u8; 8] {
        ((i as u64) ^ (1 << 63)).to_be_bytes()
    }

    impl Heed {
        pub fn open(path: &Path) -> Heed {
            // Durable like the others: fsync at commit (no NO_SYNC); writes into the map, as
            // `LmdbEngine` does by default.
            let env = unsafe {
                EnvOpenOptions::new()
                    .read_txn_without_tls()
                    .map_size(16 << 30)
                    .max_dbs(4)
                    .flags(EnvFlags::NO_SUB_DIR | EnvFlags::WRITE_MAP)
                    .open(path)
                    .unwrap()
            };
            let wtxn = env.write_txn().unwrap();
            let (data, email, age) = env
                .create_databases_and_commit(wtxn, |o, w| -> heed::Result<_> {
                    let d: Database<'_, Bytes, Bytes> = o.create_database(w, Some("data"))?;
                    let e: Database<'_, Bytes, Bytes> = o.create_database(w, Some("email"))?;
                    let a: Database<'_, Bytes, Bytes> = o.create_database(w, Some("age"))?;
                    Ok(CommitOrAbort::<_, ()>::Commit((d, e, a)))
                })
                .unwrap()
                .unwrap_commit();
            // SAFETY: the handles live beside their environment and never leave it.
            let st = |d: Database<'_, Bytes, Bytes>| unsafe { std::mem::transmute::<_, Db>(d) };
            Heed { data: st(data), email: st(email), age: st(age), env }
        }
    }

    impl Store for Heed {
        fn name(&self) -> &'static str {
            "raw_heed"
        }

        fn bulk_insert(&mut self, users: &[User]) {
            let mut w = self.env.write_txn().unwrap();
            for u in users {
                let id = k(u.id);
                self.data.put(&mut w, &id, &encode(u)).unwrap();
                if self.email.get(&w, u.email.as_bytes()).unwrap().is_some() {
                    panic!("duplicate email");
                }
                self.email.put(&mut w, u.email.as_bytes(), &id).unwrap();
                let mut ix = k(u.age).to_vec();
                ix.extend_from_slice(&id);
                self.age.put(&mut w, &ix, &[]).unwrap();
            }
            w.commit().unwrap();
        }

        fn get(&mut self, id: i64) -> usize {
            let r = self.env.read_txn().unwrap();
            let rec = decode(self.data.get(&r, &k(id)).unwrap().unwrap());
            rec.id as usize + rec.email.len()
        }

        fn age_range(&mut self, lo: i64, hi: i64) -> usize {
            let r = self.env.read_txn().unwrap();
            let (lo, hi) = (k(lo), k(hi));
            let mut n = 0;
            let range = (std::ops::Bound::Included(&lo[..]), std::ops::Bound::Excluded(&hi[..]));
            for kv in self.age.range(&r, &range).unwrap() {
                let (key, _) = kv.unwrap();
                let rec = decode(self.data.get(&r, &key[8..16]).unwrap().unwrap());
                n += usize::from(rec.age >= 0 && !rec.name.is_empty() && !rec.status.is_empty());
            }
            n
        }

        fn counter(&mut self, _threads: u64, _per_thread: u64) -> Option<i64> {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// SQLite: rusqlite with the bundled library, WAL.

mod sqlite_store {
    use super::*;
    use rusqlite::Connection;

    pub struct Sqlite {
        conn: Connection,
        path: std::path::PathBuf,
    }

    /// WAL; `synchronous` NORMAL for the loads and reads (SQLite's recommended WAL
    /// setting), FULL for the counter's durable commits.
    fn connect(path: &Path, synchronous: &str) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", synchronous).unwrap();
        conn.busy_timeout(Duration::from_secs(60)).unwrap();
        conn
    }

    impl Sqlite {
        pub fn open(path: &Path) -> Sqlite {
            let conn = connect(path, "NORMAL");
            conn.execute_batch(
                "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, \
                 name TEXT NOT NULL, age INTEGER NOT NULL, status TEXT NOT NULL); \
                 CREATE INDEX users_by_age ON users (age);",
            )
            .unwrap();
            Sqlite { conn, path: path.to_path_buf() }
        }
    }

    impl Store for Sqlite {
        fn name(&self) -> &'static str {
            "sqlite"
        }

        fn bulk_insert(&mut self, users: &[User]) {
            let tx = self.conn.transaction().unwrap();
            {
                let mut ins = tx
                    .prepare_cached(
                        "INSERT INTO users (id, email, name, age, status) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .unwrap();
                for u in users {
                    ins.execute(rusqlite::params![u.id, u.email, u.name, u.age, u.status]).unwrap();
                }
            }
            tx.commit().unwrap();
        }

        fn get(&mut self, id: i64) -> usize {
            let mut st = self
                .conn
                .prepare_cached("SELECT id, email, name, age, status FROM users WHERE id = ?1")
                .unwrap();
            st.query_row([id], |r| {
                let (id, email, _name, _age, _status): (i64, String, String, i64, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                Ok(id as usize + email.len())
            })
            .unwrap()
        }

        fn age_range(&mut self, lo: i64, hi: i64) -> usize {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT id, email, name, age, status FROM users WHERE age >= ?1 AND age < ?2",
                )
                .unwrap();
            let rows = st
                .query_map([lo, hi], |r| {
                    let row: (i64, String, String, i64, String) =
                        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                    Ok(row)
                })
                .unwrap();
            let mut n = 0;
            for r in rows {
                black_box(r.unwrap());
                n += 1;
            }
            n
        }

        fn count_unindexed(&mut self, status: &str) -> Option<i64> {
            let mut st =
                self.conn.prepare_cached("SELECT COUNT(*) FROM users WHERE status = ?1").unwrap();
            Some(st.query_row([status], |r| r.get(0)).unwrap())
        }

        fn order_offset(&mut self, offset: i64) -> Option<usize> {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT id, email, name, age, status FROM users ORDER BY name LIMIT 5 OFFSET ?1",
                )
                .unwrap();
            let rows = st
                .query_map([offset], |r| {
                    let row: (i64, String, String, i64, String) =
                        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                    Ok(row)
                })
                .unwrap();
            Some(rows.fold(0, |n, r| {
                black_box(r.unwrap());
                n + 1
            }))
        }

        fn stream_all(&mut self) -> Option<(Duration, Duration, u64)> {
            let t = Instant::now();
            let mut st =
                self.conn.prepare_cached("SELECT id, email, name, age, status FROM users").unwrap();
            let mut rows = st.query([]).unwrap();
            let mut first = None;
            let mut n = 0;
            while let Some(r) = rows.next().unwrap() {
                let row: (i64, String, String, i64, String) = (
                    r.get(0).unwrap(),
                    r.get(1).unwrap(),
                    r.get(2).unwrap(),
                    r.get(3).unwrap(),
                    r.get(4).unwrap(),
                );
                black_box(row);
                first.get_or_insert_with(|| t.elapsed());
                n += 1;
            }
            Some((first.unwrap_or_default(), t.elapsed(), n))
        }

        fn counter(&mut self, threads: u64, per_thread: u64) -> Option<i64> {
            self.conn
                .execute_batch(
                    "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); \
                     INSERT INTO counters VALUES (1, 0);",
                )
                .unwrap();
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let path = self.path.clone();
                    std::thread::spawn(move || {
                        let conn = connect(&path, "FULL");
                        let mut st =
                            conn.prepare("UPDATE counters SET n = n + 1 WHERE id = 1").unwrap();
                        for _ in 0..per_thread {
                            st.execute([]).unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            Some(
                self.conn
                    .query_row("SELECT n FROM counters WHERE id = 1", [], |r| r.get(0))
                    .unwrap(),
            )
        }

        fn inserts(&mut self, threads: u64, per_thread: u64) -> Option<i64> {
            self.conn
                .execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL)")
                .unwrap();
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let path = self.path.clone();
                    std::thread::spawn(move || {
                        let conn = connect(&path, "FULL");
                        let mut st =
                            conn.prepare("INSERT INTO events (id, kind) VALUES (?1, ?2)").unwrap();
                        for i in 0..per_thread {
                            st.execute(rusqlite::params![(t * per_thread + i) as i64, "click"])
                                .unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            Some(self.conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap())
        }

        fn alter_while_writing(&mut self, field: &str, default: &str) -> Option<AlterRun> {
            let log = format!("log_{field}");
            self.conn
                .execute_batch(&format!("CREATE TABLE {log} (id INTEGER PRIMARY KEY)"))
                .unwrap();
            let other = connect(&self.path, "FULL");
            let insert = format!("INSERT INTO {log} VALUES (?1)");
            // SQL has no lower() in a column DEFAULT; the constant stands for both.
            let default = if default.starts_with('\'') { default } else { "'x'" };
            let alter = format!("ALTER TABLE users ADD COLUMN {field} TEXT DEFAULT {default}");
            let conn = &self.conn;
            Some(super::beside_a_writer(
                || {
                    conn.execute_batch(&alter).unwrap();
                },
                move |i| {
                    other.execute(&insert, [i as i64]).unwrap();
                },
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------

struct Loaded {
    big: Vec<Box<dyn Store>>,
    small: Vec<Box<dyn Store>>,
}

fn open_all(dir: &Path, tag: &str) -> Vec<Box<dyn Store>> {
    let d = dir.join(tag);
    std::fs::create_dir_all(&d).unwrap();
    vec![
        Box::new(heed_store::Heed::open(&d.join("raw.mdb"))),
        Box::new(kvm_store::Kvm::open(&d)),
        Box::new(sqlite_store::Sqlite::open(&d.join("sqlite.db"))),
    ]
}

fn load(stores: &mut [Box<dyn Store>], users: &[User], report: bool) {
    for s in stores.iter_mut() {
        let t = Instant::now();
        s.bulk_insert(users);
        let el = t.elapsed();
        if report {
            println!(
                "bulk_insert/{}: {} rows in one transaction in {:.2} s = {:.0} rows/s",
                s.name(),
                users.len(),
                el.as_secs_f64(),
                users.len() as f64 / el.as_secs_f64()
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    let n = rows();
    let dir = tempfile::tempdir().unwrap();
    let big_users = users(n);
    let mut loaded =
        Loaded { big: open_all(dir.path(), "big"), small: open_all(dir.path(), "small") };
    println!("engine bench: {n} rows (KVM_BENCH_ROWS), temp dir {}", dir.path().display());
    load(&mut loaded.big, &big_users, true);
    load(&mut loaded.small, &users(SMALL), false);
    drop(big_users);

    let mut g = c.benchmark_group("engine");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4)).sample_size(30);

    // (a) point get by primary key.
    for s in loaded.big.iter_mut() {
        let mut i = 0u64;
        g.bench_function(format!("get_pk/{}", s.name()), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(s.get(i as i64))
            })
        });
    }

    // (c)/(d) 1,000 rows by the age index, on N rows and on 10,000 rows.
    g.throughput(Throughput::Elements(RANGE as u64));
    for (label, stores, size) in
        [("range_1000_big", &mut loaded.big, n), ("range_1000_10k", &mut loaded.small, SMALL)]
    {
        for s in stores.iter_mut() {
            let mut lo = 0u64;
            let span = size - RANGE as u64;
            assert_eq!(s.age_range(0, RANGE), RANGE as usize, "{}", s.name());
            g.bench_function(format!("{label}/{}", s.name()), |b| {
                b.iter(|| {
                    lo = (lo + 7919) % span;
                    black_box(s.age_range(lo as i64, lo as i64 + RANGE))
                })
            });
        }
    }
    g.finish();

    // (f) whole-table work with no index: an unindexed COUNT(*) … WHERE, and an ORDER BY on
    // an unindexed field under LIMIT 5 OFFSET 100,000 (half the rows on smaller runs).
    let mut g = c.benchmark_group("engine_scan");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6)).sample_size(10);
    let offset = 100_000.min(n as i64 / 2);
    for s in loaded.big.iter_mut() {
        let Some(active) = s.count_unindexed("active") else { continue };
        assert_eq!(active as u64, n / 4 + u64::from(n % 4 > 0), "{}", s.name());
        g.bench_function(format!("count_unindexed/{}", s.name()), |b| {
            b.iter(|| black_box(s.count_unindexed("banned")))
        });
        assert_eq!(s.order_offset(offset), Some(5), "{}", s.name());
        g.bench_function(format!("order_offset_{offset}/{}", s.name()), |b| {
            b.iter(|| black_box(s.order_offset(offset)))
        });
    }
    g.finish();

    // (g) streaming every row: time to the first row and to the last.
    for s in loaded.big.iter_mut() {
        if let Some((first, all, rows)) = s.stream_all() {
            assert_eq!(rows, n, "{}", s.name());
            println!(
                "stream_all/{}: first row after {:.2} ms, {rows} rows in {:.2} s",
                s.name(),
                first.as_secs_f64() * 1e3,
                all.as_secs_f64()
            );
        }
    }

    // (e) 8 threads × per_thread increments of one counter, durable commits.
    let per = counter_per_thread();
    for s in loaded.big.iter_mut() {
        let t = Instant::now();
        if let Some(total) = s.counter(THREADS, per) {
            let el = t.elapsed();
            assert_eq!(total, (THREADS * per) as i64, "{} lost updates", s.name());
            println!(
                "counter/{}: {THREADS} threads x {per} increments = {total} in {:.2} s = {:.0} commits/s",
                s.name(),
                el.as_secs_f64(),
                total as f64 / el.as_secs_f64()
            );
        }
    }

    // (g) 8 threads × per_thread single-row inserts, each its own durable commit.
    for s in loaded.big.iter_mut() {
        let t = Instant::now();
        if let Some(total) = s.inserts(THREADS, per) {
            let el = t.elapsed();
            assert_eq!(total, (THREADS * per) as i64, "{} lost inserts", s.name());
            println!(
                "inserts/{}: {THREADS} threads x {per} single-row durable inserts in {:.2} s = \
                 {:.0} commits/s",
                s.name(),
                el.as_secs_f64(),
                total as f64 / el.as_secs_f64()
            );
        }
    }

    // (f) ALTER … ADD FIELD … DEFAULT on the big model while another handle writes: a
    // constant default (a fill: no record rewritten) and a call (every record rewritten).
    for (field, default) in [("tag", "'new'"), ("tag2", "lower('NEW')")] {
        for s in loaded.big.iter_mut() {
            if s.name() == "sqlite" && field == "tag2" {
                continue;
            }
            if let Some(mut run) = s.alter_while_writing(field, default) {
                let (p50, p99, max) = percentiles(&mut run.writes);
                println!(
                    "alter_add_field/{}: DEFAULT {default} on {n} rows in {:.3} s; a writer \
                     meanwhile: {} commits, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
                    s.name(),
                    run.alter.as_secs_f64(),
                    run.writes.len(),
                );
            }
        }
    }
}

/// The median, 99th percentile and largest of `lat`, in milliseconds.
fn percentiles(lat: &mut [Duration]) -> (f64, f64, f64) {
    if lat.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    lat.sort();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99), at(1.0))
}

criterion_group!(benches, bench);
criterion_main!(benches);
