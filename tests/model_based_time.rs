//! Model-based test of the issue 5 semantics: 5,000 seeded random inserts (some with a TTL),
//! upserts, counter updates, TTL resets and clears, deletes, transactions that commit or
//! roll back, clock jumps and sweeps, on LMDB with a manual clock, checked against a plain
//! model that knows each record's expiry. Every 100 operations the visible records, an
//! indexed lookup and a cursor walk must match the model, and `CHECK DATABASE` must be clean.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use kvm::storage::Clock;
use kvm::{Database, Error, Params, Value};

use common::Rng;

#[derive(Clone, Debug)]
struct Rec {
    email: String,
    hits: i64,
    expire_at: Option<u64>,
}

type Model = BTreeMap<i64, Rec>;

fn live(m: &Model, now: u64) -> BTreeMap<i64, Rec> {
    m.iter()
        .filter(|(_, r)| r.expire_at.is_none_or(|t| now < t))
        .map(|(k, r)| (*k, r.clone()))
        .collect()
}

fn email_taken(m: &Model, now: u64, email: &str, except: i64) -> bool {
    live(m, now).iter().any(|(k, r)| *k != except && r.email == email)
}

/// One write applied to the model; returns whether it succeeds.
fn apply(m: &mut Model, now: u64, op: &Op) -> bool {
    let lv = live(m, now);
    match op {
        Op::Insert { id, email, ttl } => {
            if lv.contains_key(id) || email_taken(m, now, email, *id) {
                return false;
            }
            m.insert(*id, Rec { email: email.clone(), hits: 0, expire_at: ttl.map(|t| now + t) });
        }
        Op::Upsert { id, email, ttl } => match lv.get(id) {
            Some(_) => {
                if email_taken(m, now, email, *id) {
                    return false;
                }
                let r = m.get_mut(id).unwrap();
                r.email = email.clone();
                if let Some(t) = ttl {
                    r.expire_at = Some(now + t);
                }
            }
            None => {
                if email_taken(m, now, email, *id) {
                    return false;
                }
                m.insert(
                    *id,
                    Rec { email: email.clone(), hits: 0, expire_at: ttl.map(|t| now + t) },
                );
            }
        },
        Op::Add { id, delta } => {
            if let Some(r) = lv.get(id) {
                if r.hits + delta < 0 {
                    return false;
                }
                m.get_mut(id).unwrap().hits += delta;
            }
        }
        Op::Ttl { id, ttl } => {
            if lv.contains_key(id) {
                m.get_mut(id).unwrap().expire_at = ttl.map(|t| now + t);
            }
        }
        Op::Delete { id } => {
            if lv.contains_key(id) {
                m.remove(id);
            }
        }
    }
    true
}

#[derive(Debug, Clone)]
enum Op {
    Insert { id: i64, email: String, ttl: Option<u64> },
    Upsert { id: i64, email: String, ttl: Option<u64> },
    Add { id: i64, delta: i64 },
    Ttl { id: i64, ttl: Option<u64> },
    Delete { id: i64 },
}

fn dur(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(format!("{ms}ms")))
}

fn kql(op: &Op) -> (&'static str, Params) {
    match op {
        Op::Insert { id, email, ttl: Some(t) } => (
            "INSERT INTO a { id: $id, email: $email } EXPIRE IN $ttl",
            Params::none().with("id", *id).with("email", email).with("ttl", dur(Some(*t))),
        ),
        Op::Insert { id, email, ttl: None } => (
            "INSERT INTO a { id: $id, email: $email }",
            Params::none().with("id", *id).with("email", email),
        ),
        Op::Upsert { id, email, ttl: Some(t) } => (
            "UPSERT INTO a { id: $id, email: $email } EXPIRE IN $ttl",
            Params::none().with("id", *id).with("email", email).with("ttl", dur(Some(*t))),
        ),
        Op::Upsert { id, email, ttl: None } => (
            "UPSERT INTO a { id: $id, email: $email }",
            Params::none().with("id", *id).with("email", email),
        ),
        Op::Add { id, delta } if *delta >= 0 => (
            "UPDATE a SET hits += $d WHERE id = $id",
            Params::none().with("id", *id).with("d", *delta),
        ),
        Op::Add { id, delta } => (
            "UPDATE a SET hits -= $d WHERE id = $id",
            Params::none().with("id", *id).with("d", -*delta),
        ),
        Op::Ttl { id, ttl } => (
            "UPDATE a WHERE id = $id EXPIRE IN $ttl",
            Params::none().with("id", *id).with("ttl", dur(*ttl)),
        ),
        Op::Delete { id } => ("DELETE FROM a WHERE id = $id", Params::none().with("id", *id)),
    }
}

fn random_op(rng: &mut Rng) -> Op {
    let id = rng.below(60);
    let email = format!("e{}", rng.below(80));
    let ttl = match rng.below(3) {
        0 => None,
        _ => Some(1000 * (1 + rng.below(20)) as u64),
    };
    match rng.below(6) {
        0 => Op::Insert { id, email, ttl },
        1 => Op::Upsert { id, email, ttl },
        2 | 3 => Op::Add { id, delta: rng.below(7) - 2 },
        4 => Op::Ttl { id, ttl },
        _ => Op::Delete { id },
    }
}

fn rows(db: &Database, now_check: &str) -> Vec<(i64, String, i64)> {
    db.query(now_check, ())
        .unwrap()
        .rows
        .iter()
        .map(|r| match (&r[0], &r[1], &r[2]) {
            (Value::Int(id), Value::String(e), Value::Counter(h)) => (*id, e.clone(), *h as i64),
            other => panic!("row {other:?}"),
        })
        .collect()
}

#[test]
fn random_ttl_upsert_counter_and_transaction_ops_match_a_model() {
    let (db, _, _dir, clock) = common::open_with_clock(common::Backend::Lmdb);
    db.execute(
        "DEFINE MODEL a (id INT PRIMARY KEY, email STRING UNIQUE NOT NULL, hits U64 DEFAULT 0)",
        (),
    )
    .unwrap();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut model: Model = BTreeMap::new();
    for step in 1..=5_000u32 {
        let now = clock.now_millis();
        match rng.below(10) {
            0 => clock.advance(rng.below(4000) as u64),
            1 => {
                db.sweep_expired().unwrap();
            }
            2 => {
                // A transaction of 1–3 writes that commits, or rolls back (also when one fails).
                let ops: Vec<Op> = (0..1 + rng.below(3)).map(|_| random_op(&mut rng)).collect();
                let commit = rng.below(3) > 0;
                let mut scratch = model.clone();
                let all_ok = ops.iter().all(|op| apply(&mut scratch, now, op));
                let r = db.transaction(|tx| {
                    for op in &ops {
                        let (text, params) = kql(op);
                        tx.execute(text, params)?;
                    }
                    if commit {
                        Ok(())
                    } else {
                        Err(Error::Param("rollback".into()))
                    }
                });
                assert_eq!(r.is_ok(), all_ok && commit, "step {step}: {ops:?}: {r:?}");
                if all_ok && commit {
                    model = scratch;
                }
            }
            _ => {
                let op = random_op(&mut rng);
                let (text, params) = kql(&op);
                let r = db.execute(text, params);
                let ok = apply(&mut model, now, &op);
                assert_eq!(r.is_ok(), ok, "step {step}: {op:?}: {r:?}");
            }
        }
        if step % 100 == 0 {
            let now = clock.now_millis();
            let want: Vec<(i64, String, i64)> =
                live(&model, now).into_iter().map(|(k, r)| (k, r.email, r.hits)).collect();
            assert_eq!(rows(&db, "SELECT id, email, hits FROM a ORDER BY id"), want, "step {step}");
            let e = format!("e{}", rng.below(80));
            let by_email: Vec<(i64, String, i64)> =
                want.iter().filter(|r| r.1 == e).cloned().collect();
            let got =
                db.query("SELECT id, email, hits FROM a WHERE email = $1", (e.as_str(),)).unwrap();
            assert_eq!(got.rows.len(), by_email.len(), "step {step}: email {e}");
            // A cursor walk in pages of 3 by email, descending, sees each live record once.
            let page = db.prepare("SELECT id FROM a ORDER BY email DESC LIMIT 3 AFTER $c").unwrap();
            let mut cursor: Option<String> = None;
            let mut seen = Vec::new();
            loop {
                let r = page.query(Params::none().with("c", cursor.clone())).unwrap();
                seen.extend(r.rows.iter().map(|row| row[0].clone()));
                match r.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let mut expect: Vec<(String, i64)> = want.iter().map(|r| (r.1.clone(), r.0)).collect();
            expect.sort_by(|x, y| y.cmp(x));
            let expect: Vec<Value> = expect.into_iter().map(|(_, id)| Value::Int(id)).collect();
            assert_eq!(seen, expect, "step {step}: cursor walk");
            let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
            assert!(check.starts_with("ok"), "step {step}: {check}");
        }
    }
}
