//! Model-based test: 10,000 seeded random inserts, updates and deletes across two models
//! with unique and composite indexes, checked against a plain in-memory model. After every
//! 100 operations `CHECK DATABASE` must be clean and indexed queries must answer exactly as
//! the model does.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use kvm::{params, Database, Error, Value};

use common::Rng;

#[derive(Clone, Debug)]
struct A {
    email: String,
    grp: String,
    score: i64,
}

#[derive(Clone, Debug)]
struct B {
    code: String,
    n: i64,
}

fn ids(rows: &kvm::Rows) -> Vec<Value> {
    rows.rows.iter().map(|r| r[0].clone()).collect()
}

#[test]
fn random_operations_match_a_reference_model() {
    let db = Database::memory().unwrap();
    db.execute_batch(
        "DEFINE MODEL a (id INT PRIMARY KEY, email STRING UNIQUE NOT NULL, grp STRING NOT NULL, score INT NOT NULL, INDEX by_grp (grp, score));
         DEFINE MODEL b (id STRING PRIMARY KEY, code STRING NOT NULL, n INT NOT NULL, UNIQUE INDEX by_code_n (code, n))",
    )
    .unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ra: BTreeMap<i64, A> = BTreeMap::new();
    let mut rb: BTreeMap<String, B> = BTreeMap::new();
    let ins_a = db.prepare("INSERT INTO a { id: $1, email: $2, grp: $3, score: $4 }").unwrap();
    let upd_a = db.prepare("UPDATE a SET email = $2, score = $3 WHERE id = $1").unwrap();
    let del_a = db.prepare("DELETE FROM a WHERE id = $1").unwrap();
    let ins_b = db.prepare("INSERT INTO b { id: $1, code: $2, n: $3 }").unwrap();
    let upd_b = db.prepare("UPDATE b SET n = $2 WHERE id = $1").unwrap();
    let del_b = db.prepare("DELETE FROM b WHERE id = $1").unwrap();
    let q_range =
        db.prepare("SELECT id FROM a WHERE grp = $1 AND score >= $2 ORDER BY id").unwrap();
    let q_count = db.prepare("SELECT COUNT(*) FROM a WHERE grp = $1").unwrap();
    let q_email = db.prepare("SELECT id FROM a WHERE email = $1").unwrap();
    let q_code = db.prepare("SELECT id FROM b WHERE code = $1 AND n = $2").unwrap();
    let q_all_b = db.prepare("SELECT id FROM b ORDER BY n DESC, id LIMIT 5").unwrap();

    for op in 1..=10_000u32 {
        let id = rng.below(300);
        let email = format!("e{}", rng.below(400));
        let grp = ["g0", "g1", "g2"][rng.below(3) as usize].to_string();
        let score = rng.below(100);
        let bid = format!("b{}", rng.below(200));
        let code = ["x", "y"][rng.below(2) as usize].to_string();
        let n = rng.below(150);
        let taken_email = |ra: &BTreeMap<i64, A>, except: i64| {
            ra.iter().any(|(k, v)| *k != except && v.email == email)
        };
        match rng.below(6) {
            0 => {
                let r = ins_a.execute(params![id, email.clone(), grp.clone(), score]);
                let ok = !ra.contains_key(&id) && !taken_email(&ra, id);
                assert_eq!(r.is_ok(), ok, "op {op}: insert a {id} {email}: {r:?}");
                if ok {
                    ra.insert(id, A { email, grp, score });
                } else {
                    assert!(matches!(r, Err(Error::UniqueViolation { .. })));
                }
            }
            1 => {
                let r = upd_a.execute(params![id, email.clone(), score]);
                let exists = ra.contains_key(&id);
                let ok = !exists || !taken_email(&ra, id);
                assert_eq!(r.is_ok(), ok, "op {op}: update a {id}: {r:?}");
                if ok && exists {
                    let rec = ra.get_mut(&id).unwrap();
                    rec.email = email;
                    rec.score = score;
                }
            }
            2 => {
                del_a.execute(params![id]).unwrap();
                ra.remove(&id);
            }
            3 => {
                let r = ins_b.execute(params![bid.clone(), code.clone(), n]);
                let ok = !rb.contains_key(&bid) && !rb.values().any(|v| v.code == code && v.n == n);
                assert_eq!(r.is_ok(), ok, "op {op}: insert b {bid}: {r:?}");
                if ok {
                    rb.insert(bid, B { code, n });
                }
            }
            4 => {
                let r = upd_b.execute(params![bid.clone(), n]);
                let ok = match rb.get(&bid) {
                    None => true,
                    Some(cur) => {
                        !rb.iter().any(|(k, v)| *k != bid && v.code == cur.code && v.n == n)
                    }
                };
                assert_eq!(r.is_ok(), ok, "op {op}: update b {bid}: {r:?}");
                if ok {
                    if let Some(cur) = rb.get_mut(&bid) {
                        cur.n = n;
                    }
                }
            }
            _ => {
                del_b.execute(params![bid.clone()]).unwrap();
                rb.remove(&bid);
            }
        }
        if op % 100 == 0 {
            let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
            assert!(check.starts_with("ok"), "op {op}: {check}");
            for g in ["g0", "g1", "g2"] {
                let min = rng.below(100);
                let want: Vec<Value> = ra
                    .iter()
                    .filter(|(_, v)| v.grp == g && v.score >= min)
                    .map(|(k, _)| Value::Int(*k))
                    .collect();
                assert_eq!(
                    ids(&q_range.query(params![g, min]).unwrap()),
                    want,
                    "op {op}: range {g} >= {min}"
                );
                let count = ra.values().filter(|v| v.grp == g).count() as i64;
                assert_eq!(ids(&q_count.query(params![g]).unwrap()), vec![Value::Int(count)]);
            }
            let e = format!("e{}", rng.below(400));
            let want: Vec<Value> =
                ra.iter().filter(|(_, v)| v.email == e).map(|(k, _)| Value::Int(*k)).collect();
            assert_eq!(ids(&q_email.query(params![e]).unwrap()), want);
            let (c, k) = (["x", "y"][rng.below(2) as usize], rng.below(150));
            let want: Vec<Value> = rb
                .iter()
                .filter(|(_, v)| v.code == c && v.n == k)
                .map(|(id, _)| Value::String(id.clone()))
                .collect();
            assert_eq!(ids(&q_code.query(params![c, k]).unwrap()), want);
            let mut all: Vec<(&String, &B)> = rb.iter().collect();
            all.sort_by(|x, y| y.1.n.cmp(&x.1.n).then(x.0.cmp(y.0)));
            let want: Vec<Value> =
                all.iter().take(5).map(|(id, _)| Value::String((*id).clone())).collect();
            assert_eq!(ids(&q_all_b.query(()).unwrap()), want);
        }
    }
}
