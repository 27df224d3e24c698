//! The behaviour every storage backend must show, written once against the `Engine` trait.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kvm_storage::tuple::{self, KeyPart};
use kvm_storage::{
    AtomicBatch, ChangeKind, Clock, Engine, Error, FieldPatch, KeyRange, ManualClock, PatchOp,
    ScanOptions, Value, Versionstamp, MAX_KEY_LEN,
};

/// The knobs a test sets before the backend opens.
pub struct Harness {
    pub clock: ManualClock,
    pub retention: u64,
}

impl Harness {
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }
}

/// An open backend and whatever keeps it alive (its temp folder).
pub struct Backend {
    pub engine: Box<dyn Engine>,
    pub _dir: Option<tempfile::TempDir>,
}

pub type Factory = fn(&Harness) -> Backend;

/// Generates one `#[test]` per suite function for a backend factory.
#[macro_export]
macro_rules! conformance {
    ($name:ident, $factory:ident) => {
        mod $name {
            $crate::conformance!(@each $factory;
                get_set_delete, get_many_in_order, scan_many_per_range, versionstamps_strictly_increase,
                checks_pass_and_fail, failed_check_writes_nothing, failed_mutation_writes_nothing,
                counters_sum_min_max, counters_see_their_batch, counter_errors, counters_keep_expiry, record_patches, record_patch_errors, key_size_limit,
                expiry_is_exact_and_swept, rewrite_clears_expiry, scans_ranges_prefixes_reverse_limit,
                scans_follow_tuple_order, snapshots_are_isolated, change_feed_contents,
                change_feed_retention, check_only_commit, many_writes_grow_the_map,
                backup_is_a_consistent_copy, backup_never_writes_through_a_link,
                range_checks_catch_phantoms, direct_writes);
        }
    };
    (@each $factory:ident; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::suite::$test(super::$factory);
            }
        )*
    };
}

const T0: u64 = 1_700_000_000_000;

fn open(factory: Factory) -> (Backend, ManualClock) {
    let clock = ManualClock::new(T0);
    (factory(&Harness { clock: clock.clone(), retention: 1_000 }), clock)
}

fn key(parts: &[KeyPart]) -> Vec<u8> {
    tuple::encode(parts)
}

fn k(s: &str) -> Vec<u8> {
    key(&[KeyPart::from("t"), KeyPart::from(s)])
}

fn get(e: &dyn Engine, key: &[u8]) -> Option<Vec<u8>> {
    let snap = e.snapshot().unwrap();
    snap.get(key).unwrap().map(|en| en.value().to_vec())
}

fn keys_in(e: &dyn Engine, range: &KeyRange, opts: ScanOptions) -> Vec<Vec<u8>> {
    let snap = e.snapshot().unwrap();
    snap.scan(range, opts).unwrap().map(|r| r.unwrap().0.to_vec()).collect()
}

pub fn get_set_delete(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    assert_eq!(get(e, &k("a")), None);
    e.commit(&AtomicBatch::new().set(&k("a"), b"1")).unwrap();
    assert_eq!(get(e, &k("a")), Some(b"1".to_vec()));
    e.commit(&AtomicBatch::new().set(&k("a"), b"2")).unwrap();
    assert_eq!(get(e, &k("a")), Some(b"2".to_vec()));
    e.commit(&AtomicBatch::new().delete(&k("a"))).unwrap();
    assert_eq!(get(e, &k("a")), None);
    // Deleting what is absent is not an error.
    e.commit(&AtomicBatch::new().delete(&k("a"))).unwrap();
    // Within one batch, later mutations of a key win.
    e.commit(&AtomicBatch::new().set(&k("b"), b"x").delete(&k("b")).set(&k("b"), b"y")).unwrap();
    assert_eq!(get(e, &k("b")), Some(b"y".to_vec()));
    // Empty values are values.
    e.commit(&AtomicBatch::new().set(&k("c"), b"")).unwrap();
    assert_eq!(get(e, &k("c")), Some(vec![]));
}

pub fn get_many_in_order(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set(&k("a"), b"A").set(&k("c"), b"C")).unwrap();
    let snap = e.snapshot().unwrap();
    let (ka, kb, kc) = (k("a"), k("b"), k("c"));
    let got: Vec<Option<&[u8]>> = snap
        .get_many(&[&kc, &kb, &ka])
        .unwrap()
        .into_iter()
        .map(|o| o.map(|en| en.value()))
        .collect();
    assert_eq!(got, vec![Some(&b"C"[..]), None, Some(&b"A"[..])]);
}

/// `scan_many` answers each range as `scan` would (order, direction, per-range limit), in
/// the order the ranges were asked.
pub fn scan_many_per_range(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let mut batch = AtomicBatch::new();
    for (p, n) in [("a", 3), ("b", 0), ("c", 5)] {
        for i in 0..n {
            batch = batch.set(&key(&[KeyPart::from(p), KeyPart::Int(i)]), p.as_bytes());
        }
    }
    e.commit(&batch).unwrap();
    let snap = e.snapshot().unwrap();
    let ranges: Vec<KeyRange> =
        ["c", "b", "a"].iter().map(|p| KeyRange::prefix(&key(&[KeyPart::from(*p)]))).collect();
    let count = |opts: ScanOptions| -> Vec<usize> {
        snap.scan_many(&ranges, opts).unwrap().iter().map(Vec::len).collect()
    };
    assert_eq!(count(ScanOptions::forward()), vec![5, 0, 3]);
    assert_eq!(count(ScanOptions::forward().limit(2)), vec![2, 0, 2]);
    let rev = snap.scan_many(&ranges[..1], ScanOptions::reverse().limit(2)).unwrap();
    let single: Vec<Vec<u8>> = snap
        .scan(&ranges[0], ScanOptions::reverse().limit(2))
        .unwrap()
        .map(|r| r.unwrap().0.to_vec())
        .collect();
    let keys: Vec<Vec<u8>> = rev[0].iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(keys, single);
    assert!(snap.scan_many(&[], ScanOptions::forward()).unwrap().is_empty());
}

pub fn versionstamps_strictly_increase(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let mut last = e.snapshot().unwrap().versionstamp();
    for i in 0..50u32 {
        let vs = e.commit(&AtomicBatch::new().set(&k("v"), &i.to_be_bytes())).unwrap();
        assert!(vs > last, "{vs} after {last}");
        let snap = e.snapshot().unwrap();
        assert_eq!(snap.versionstamp(), vs);
        assert_eq!(snap.get(&k("v")).unwrap().unwrap().versionstamp(), vs);
        assert_eq!(vs.to_string().len(), 20);
        last = vs;
    }
}

pub fn checks_pass_and_fail(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    // "does not exist" passes on an absent key.
    let vs1 = e.commit(&AtomicBatch::new().check(&k("a"), None).set(&k("a"), b"1")).unwrap();
    // ... and fails once it exists.
    let err = e.commit(&AtomicBatch::new().check(&k("a"), None).set(&k("a"), b"2")).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }) && err.is_retryable(), "{err}");
    // The right versionstamp passes, a stale one fails.
    let vs2 = e.commit(&AtomicBatch::new().check(&k("a"), Some(vs1)).set(&k("a"), b"3")).unwrap();
    let err = e.commit(&AtomicBatch::new().check(&k("a"), Some(vs1)).set(&k("a"), b"4"));
    assert!(matches!(err, Err(Error::Conflict { .. })));
    assert_eq!(get(e, &k("a")), Some(b"3".to_vec()));
    // A versionstamp check on a deleted key fails.
    e.commit(&AtomicBatch::new().delete(&k("a"))).unwrap();
    assert!(e.commit(&AtomicBatch::new().check(&k("a"), Some(vs2))).is_err());
}

pub fn failed_check_writes_nothing(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set(&k("taken"), b"x")).unwrap();
    let before = e.snapshot().unwrap().versionstamp();
    let batch = AtomicBatch::new()
        .set(&k("new1"), b"1")
        .sum(&k("n"), 5)
        .delete(&k("taken"))
        .check(&k("free"), None)
        .check(&k("taken"), None);
    assert!(e.commit(&batch).is_err());
    assert_eq!(get(e, &k("new1")), None);
    assert_eq!(get(e, &k("n")), None);
    assert_eq!(get(e, &k("taken")), Some(b"x".to_vec()));
    assert_eq!(e.snapshot().unwrap().versionstamp(), before, "no versionstamp was used");
    assert!(e.changes_since(before, 10).unwrap().is_empty());
}

pub fn failed_mutation_writes_nothing(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set(&k("text"), &Value::String("hi".into()).encode())).unwrap();
    let batch = AtomicBatch::new().set(&k("other"), b"1").sum(&k("text"), 1);
    assert!(matches!(e.commit(&batch), Err(Error::NotACounter { .. })));
    assert_eq!(get(e, &k("other")), None, "unlike Deno KV, a failed sum commits nothing");
    let long = vec![7u8; MAX_KEY_LEN + 1];
    let batch = AtomicBatch::new().set(&k("other"), b"1").set(&long, b"1");
    assert!(matches!(e.commit(&batch), Err(Error::KeyTooLarge { .. })));
    assert_eq!(get(e, &k("other")), None);
}

fn counter(e: &dyn Engine, key: &[u8]) -> Option<u64> {
    get(e, key).map(|v| Value::decode_counter(&v).expect("a counter"))
}

pub fn counters_sum_min_max(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().sum(&k("s"), 5)).unwrap();
    assert_eq!(counter(e, &k("s")), Some(5), "an absent counter starts at 0");
    e.commit(&AtomicBatch::new().sum(&k("s"), 10).sum(&k("s"), -3)).unwrap();
    assert_eq!(counter(e, &k("s")), Some(12));
    e.commit(&AtomicBatch::new().min(&k("m"), 9)).unwrap();
    assert_eq!(counter(e, &k("m")), Some(9), "min on absent stores the operand");
    e.commit(&AtomicBatch::new().min(&k("m"), 20)).unwrap();
    assert_eq!(counter(e, &k("m")), Some(9));
    e.commit(&AtomicBatch::new().min(&k("m"), 2)).unwrap();
    assert_eq!(counter(e, &k("m")), Some(2));
    e.commit(&AtomicBatch::new().max(&k("x"), 4).max(&k("x"), 3)).unwrap();
    assert_eq!(counter(e, &k("x")), Some(4));
    e.commit(&AtomicBatch::new().max(&k("x"), u64::MAX)).unwrap();
    assert_eq!(counter(e, &k("x")), Some(u64::MAX));
    // A counter set directly through the value codec is a counter too.
    e.commit(&AtomicBatch::new().set(&k("c"), &Value::Counter(100).encode())).unwrap();
    e.commit(&AtomicBatch::new().sum(&k("c"), 1)).unwrap();
    assert_eq!(counter(e, &k("c")), Some(101));
}

/// A counter reads what earlier mutations of its own batch wrote; a counter error fails the
/// whole batch, those earlier writes too.
pub fn counters_see_their_batch(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set(&k("a"), &Value::Counter(5).encode()).sum(&k("a"), 2))
        .unwrap();
    assert_eq!(counter(e, &k("a")), Some(7));
    e.commit(&AtomicBatch::new().delete(&k("a")).sum(&k("a"), 1).max(&k("a"), 4)).unwrap();
    assert_eq!(counter(e, &k("a")), Some(4), "deleted earlier in the batch: starts at 0");
    let err = e
        .commit(&AtomicBatch::new().set(&k("n"), b"new").set(&k("a"), b"text").sum(&k("a"), 1))
        .unwrap_err();
    assert_eq!(err.code(), "storage.not_a_counter");
    assert_eq!(get(e, &k("n")), None, "the failed batch's earlier write is not kept");
    assert_eq!(counter(e, &k("a")), Some(4));
}

pub fn counter_errors(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().sum(&k("s"), 2)).unwrap();
    let err = e.commit(&AtomicBatch::new().sum(&k("s"), -3)).unwrap_err();
    assert!(matches!(err, Error::CounterOutOfRange { current: 2, delta: -3, .. }), "{err}");
    e.commit(&AtomicBatch::new().max(&k("big"), u64::MAX)).unwrap();
    assert!(matches!(
        e.commit(&AtomicBatch::new().sum(&k("big"), 1)),
        Err(Error::CounterOutOfRange { .. })
    ));
    e.commit(&AtomicBatch::new().set(&k("str"), &Value::Int(3).encode())).unwrap();
    for batch in [
        AtomicBatch::new().sum(&k("str"), 1),
        AtomicBatch::new().min(&k("str"), 1),
        AtomicBatch::new().max(&k("str"), 1),
    ] {
        let err = e.commit(&batch).unwrap_err();
        assert_eq!(err.code(), "storage.not_a_counter");
        assert!(err.to_string().contains("['t', 'str']"), "{err}");
    }
    assert_eq!(counter(e, &k("s")), Some(2));
}

fn record(fields: &[(u32, Value)]) -> Vec<u8> {
    Value::encode_record(fields.iter().map(|(id, v)| (*id, v)))
}

fn fields_at(e: &dyn Engine, key: &[u8]) -> Option<Vec<(u32, Value)>> {
    get(e, key).map(|v| Value::decode_record_fields(&v).expect("a record"))
}

fn add_int(field: u32, d: i128) -> FieldPatch {
    FieldPatch { field, op: PatchOp::AddInt(d) }
}

/// Record patches apply to the record as the commit finds it: several in one batch and
/// across batches add up, an absent field starts at 0, `Set` writes (and null removes) a
/// field, the other fields and the expiry are kept, and a patch of an absent record is a
/// no-op (never a conflict: patches carry no check).
pub fn record_patches(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let r = record(&[(0, Value::Int(1)), (2, Value::String("x".into())), (4, Value::Int(10))]);
    e.commit(&AtomicBatch::new().set_with_expiry(&k("r"), &r, T0 + 1000)).unwrap();
    let snap = e.snapshot().unwrap();
    e.commit(&AtomicBatch::new().patch(&k("r"), vec![add_int(4, 5)])).unwrap();
    e.commit(
        &AtomicBatch::new()
            .patch(
                &k("r"),
                vec![add_int(4, -2), FieldPatch { field: 3, op: PatchOp::AddCounter(7) }],
            )
            .patch(&k("r"), vec![add_int(4, 1)]),
    )
    .unwrap();
    assert_eq!(
        fields_at(e, &k("r")),
        Some(vec![
            (0, Value::Int(1)),
            (2, Value::String("x".into())),
            (3, Value::Counter(7)),
            (4, Value::Int(14)),
        ])
    );
    drop(snap);
    let set = |v: &Value| FieldPatch { field: 2, op: PatchOp::Set(v.encode()) };
    e.commit(&AtomicBatch::new().patch(&k("r"), vec![set(&Value::String("y".into()))])).unwrap();
    assert_eq!(fields_at(e, &k("r")).unwrap()[1], (2, Value::String("y".into())));
    e.commit(&AtomicBatch::new().patch(&k("r"), vec![set(&Value::Null)])).unwrap();
    assert_eq!(fields_at(e, &k("r")).unwrap().len(), 3, "null removes the field");
    let snap = e.snapshot().unwrap();
    assert_eq!(snap.get(&k("r")).unwrap().unwrap().expire_at(), Some(T0 + 1000));
    drop(snap);
    // MIN/MAX keep the smaller/larger; on an absent field, the operand.
    let ops = vec![
        FieldPatch { field: 4, op: PatchOp::MinInt(3) },
        FieldPatch { field: 3, op: PatchOp::MaxCounter(9) },
        FieldPatch { field: 6, op: PatchOp::MaxInt(-1) },
    ];
    e.commit(&AtomicBatch::new().patch(&k("r"), ops)).unwrap();
    let f = fields_at(e, &k("r")).unwrap();
    assert_eq!(&f[1..], &[(3, Value::Counter(9)), (4, Value::Int(3)), (6, Value::Int(-1))]);
    // A patch of an absent record writes nothing; one after a delete in its batch neither.
    e.commit(&AtomicBatch::new().patch(&k("none"), vec![add_int(0, 1)])).unwrap();
    assert_eq!(get(e, &k("none")), None);
    e.commit(&AtomicBatch::new().delete(&k("r")).patch(&k("r"), vec![add_int(0, 1)])).unwrap();
    assert_eq!(get(e, &k("r")), None);
}

/// A patch the record refuses — an INT leaving i64, a counter leaving u64, a field of
/// another type, a value that is not a record — fails its whole batch, naming the field.
pub fn record_patch_errors(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let r = record(&[(0, Value::Int(i64::MAX)), (1, Value::Counter(2)), (2, Value::Float(1.0))]);
    e.commit(&AtomicBatch::new().set(&k("r"), &r)).unwrap();
    e.commit(&AtomicBatch::new().set(&k("v"), &Value::Int(3).encode())).unwrap();
    for (key, p) in [
        ("r", add_int(0, 1)),
        ("r", FieldPatch { field: 1, op: PatchOp::AddCounter(-3) }),
        ("r", add_int(2, 1)),
        ("r", add_int(1, 1)),
        ("v", add_int(0, 1)),
    ] {
        let batch = AtomicBatch::new().set(&k("other"), b"1").patch(&k(key), vec![p.clone()]);
        let err = e.commit(&batch).unwrap_err();
        assert_eq!(err.code(), "storage.patch_refused", "{p:?}");
        assert_eq!(get(e, &k("other")), None, "nothing of the batch is written");
    }
    assert_eq!(get(e, &k("r")), Some(r));
}

pub fn counters_keep_expiry(f: Factory) {
    let (b, clock) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set_with_expiry(&k("c"), &Value::Counter(1).encode(), T0 + 100))
        .unwrap();
    e.commit(&AtomicBatch::new().sum(&k("c"), 1).max(&k("c"), 5)).unwrap();
    let snap = e.snapshot().unwrap();
    let en = snap.get(&k("c")).unwrap().unwrap();
    assert_eq!(en.expire_at(), Some(T0 + 100), "unlike Deno KV, sum/max keep the expiry");
    drop(snap);
    clock.set(T0 + 100);
    assert_eq!(get(e, &k("c")), None);
    // An expired counter counts as absent.
    e.commit(&AtomicBatch::new().sum(&k("c"), 3)).unwrap();
    let snap = e.snapshot().unwrap();
    let en = snap.get(&k("c")).unwrap().unwrap();
    assert_eq!((Value::decode_counter(en.value()), en.expire_at()), (Some(3), None));
}

pub fn key_size_limit(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let max = vec![b'k'; MAX_KEY_LEN];
    e.commit(&AtomicBatch::new().set(&max, b"ok")).unwrap();
    assert_eq!(get(e, &max), Some(b"ok".to_vec()));
    let long = vec![b'k'; MAX_KEY_LEN + 1];
    let err = e.commit(&AtomicBatch::new().set(&long, b"no")).unwrap_err();
    assert_eq!(err, Error::KeyTooLarge { len: MAX_KEY_LEN + 1, max: MAX_KEY_LEN });
    assert_eq!(err.code(), "storage.key_too_large");
    for batch in [AtomicBatch::new().delete(&long), AtomicBatch::new().sum(&long, 1)] {
        assert!(matches!(e.commit(&batch), Err(Error::KeyTooLarge { .. })));
    }
    // A key that cannot be stored cannot be found, and "does not exist" holds for it.
    assert_eq!(get(e, &long), None);
    e.commit(&AtomicBatch::new().check(&long, None)).unwrap();
    // Long range bounds are answered exactly, not refused.
    let mut lo = vec![b'k'; MAX_KEY_LEN - 1];
    lo.push(b'a');
    lo.extend([0u8; 10]);
    let all: Vec<_> = keys_in(e, &KeyRange::between(&lo, &long), ScanOptions::forward());
    assert_eq!(all, vec![max.clone()]);
    let none = keys_in(e, &KeyRange::between(&long, &[0xFF; 600]), ScanOptions::forward());
    assert!(none.is_empty());
}

pub fn expiry_is_exact_and_swept(f: Factory) {
    let (b, clock) = open(f);
    let e = b.engine.as_ref();
    e.commit(
        &AtomicBatch::new()
            .set_with_expiry(&k("a"), b"A", T0 + 1_000)
            .set_with_expiry(&k("b"), b"B", T0 + 5_000)
            .set(&k("c"), b"C"),
    )
    .unwrap();
    let range = KeyRange::prefix(&key(&["t".into()]));
    clock.set(T0 + 999);
    assert_eq!(get(e, &k("a")), Some(b"A".to_vec()));
    let held = e.snapshot().unwrap();
    clock.set(T0 + 1_000);
    assert_eq!(get(e, &k("a")), None, "invisible from its expiry on");
    assert_eq!(keys_in(e, &range, ScanOptions::forward()), vec![k("b"), k("c")]);
    assert_eq!(keys_in(e, &range, ScanOptions::forward().limit(1)), vec![k("b")]);
    assert!(held.get(&k("a")).unwrap().is_some(), "a snapshot judges expiry at its own time");
    drop(held);
    // An expired key no longer exists for checks.
    let vs = e.commit(&AtomicBatch::new().check(&k("a"), None)).unwrap();
    assert_eq!(e.sweep_expired(100).unwrap(), 1);
    assert_eq!(e.sweep_expired(100).unwrap(), 0);
    let feed = e.changes_since(vs, 10).unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].changes[0].key, k("a"));
    assert_eq!(feed[0].changes[0].kind, ChangeKind::Expire);
    clock.set(T0 + 10_000);
    assert_eq!(e.sweep_expired(100).unwrap(), 1);
    assert_eq!(keys_in(e, &range, ScanOptions::forward()), vec![k("c")]);
    clock.set(T0);
    assert_eq!(get(e, &k("b")), None, "swept keys are gone even if the clock goes back");
}

pub fn rewrite_clears_expiry(f: Factory) {
    let (b, clock) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set_with_expiry(&k("a"), b"1", T0 + 10)).unwrap();
    e.commit(&AtomicBatch::new().set(&k("a"), b"2")).unwrap();
    e.commit(&AtomicBatch::new().set_with_expiry(&k("b"), b"1", T0 + 10)).unwrap();
    e.commit(&AtomicBatch::new().set_with_expiry(&k("b"), b"2", T0 + 50)).unwrap();
    clock.set(T0 + 20);
    assert_eq!(e.sweep_expired(100).unwrap(), 0, "stale expiry notes are ignored");
    assert_eq!(get(e, &k("a")), Some(b"2".to_vec()));
    assert_eq!(get(e, &k("b")), Some(b"2".to_vec()));
    clock.set(T0 + 50);
    assert_eq!(get(e, &k("b")), None);
    assert_eq!(e.sweep_expired(100).unwrap(), 1);
}

pub fn scans_ranges_prefixes_reverse_limit(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let mut batch = AtomicBatch::new();
    for i in 0..20i64 {
        batch = batch.set(&key(&["n".into(), i.into()]), &i.to_be_bytes());
    }
    batch = batch.set(&key(&["m".into()]), b"").set(&key(&["o".into()]), b"");
    e.commit(&batch).unwrap();
    let n = |i: i64| key(&["n".into(), i.into()]);
    let pre = KeyRange::prefix(&key(&["n".into()]));
    let fwd = keys_in(e, &pre, ScanOptions::forward());
    assert_eq!(fwd, (0..20).map(n).collect::<Vec<_>>());
    let rev = keys_in(e, &pre, ScanOptions::reverse());
    assert_eq!(rev, (0..20).rev().map(n).collect::<Vec<_>>());
    assert_eq!(keys_in(e, &pre, ScanOptions::forward().limit(3)), vec![n(0), n(1), n(2)]);
    assert_eq!(keys_in(e, &pre, ScanOptions::reverse().limit(2)), vec![n(19), n(18)]);
    let mid = KeyRange::between(&n(5), &n(8));
    assert_eq!(keys_in(e, &mid, ScanOptions::forward()), vec![n(5), n(6), n(7)]);
    assert_eq!(keys_in(e, &mid, ScanOptions::reverse()), vec![n(7), n(6), n(5)]);
    assert!(keys_in(e, &KeyRange::between(&n(8), &n(5)), ScanOptions::forward()).is_empty());
    assert_eq!(keys_in(e, &KeyRange::all(), ScanOptions::forward()).len(), 22);
    assert!(keys_in(e, &KeyRange::prefix(&key(&["z".into()])), ScanOptions::forward()).is_empty());
    // Values come back with their rows.
    let snap = e.snapshot().unwrap();
    let first = snap.scan(&pre, ScanOptions::forward()).unwrap().next().unwrap().unwrap();
    assert_eq!(first.1.value(), 0i64.to_be_bytes());
}

pub fn scans_follow_tuple_order(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let mut parts: Vec<KeyPart> = vec![
        KeyPart::Bool(true),
        KeyPart::Float(-0.5),
        KeyPart::Int(-3),
        KeyPart::Int(7),
        KeyPart::BigInt(1),
        KeyPart::String("b".into()),
        KeyPart::String("a\0b".into()),
        KeyPart::String("a".into()),
        KeyPart::Bytes(vec![0, 0]),
        KeyPart::Bool(false),
        KeyPart::Float(f64::INFINITY),
    ];
    let mut batch = AtomicBatch::new();
    for p in &parts {
        batch = batch.set(&key(&["o".into(), p.clone()]), b"");
    }
    e.commit(&batch).unwrap();
    parts.sort();
    let got: Vec<KeyPart> =
        keys_in(e, &KeyRange::prefix(&key(&["o".into()])), ScanOptions::forward())
            .iter()
            .map(|raw| tuple::decode(raw).unwrap().pop().unwrap())
            .collect();
    assert_eq!(got, parts);
}

pub fn snapshots_are_isolated(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set(&k("a"), b"old").set(&k("b"), b"old")).unwrap();
    let snap = e.snapshot().unwrap();
    e.commit(&AtomicBatch::new().set(&k("a"), b"new").delete(&k("b")).set(&k("c"), b"new"))
        .unwrap();
    assert_eq!(snap.get(&k("a")).unwrap().unwrap().value(), b"old");
    assert!(snap.get(&k("b")).unwrap().is_some());
    assert!(snap.get(&k("c")).unwrap().is_none());
    let seen = snap.scan(&KeyRange::prefix(&key(&["t".into()])), ScanOptions::forward()).unwrap();
    assert_eq!(seen.count(), 2);
    drop(snap);
    assert_eq!(get(e, &k("a")), Some(b"new".to_vec()));
}

pub fn change_feed_contents(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let start = e.snapshot().unwrap().versionstamp();
    let v1 = e.commit(&AtomicBatch::new().set(&k("a"), b"1").set(&k("b"), b"1")).unwrap();
    let v2 = e.commit(&AtomicBatch::new().delete(&k("a")).sum(&k("n"), 1)).unwrap();
    e.commit(&AtomicBatch::new().delete(&k("zz"))).unwrap(); // changes nothing
    let v4 = e.commit(&AtomicBatch::new().set(&k("b"), b"2").delete(&k("b"))).unwrap();
    let all = e.changes_since(start, 100).unwrap();
    type Summary = Vec<(Versionstamp, Vec<(Vec<u8>, ChangeKind)>)>;
    let summary: Summary = all
        .iter()
        .map(|cs| (cs.versionstamp, cs.changes.iter().map(|c| (c.key.clone(), c.kind)).collect()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (v1, vec![(k("a"), ChangeKind::Set), (k("b"), ChangeKind::Set)]),
            (v2, vec![(k("a"), ChangeKind::Delete), (k("n"), ChangeKind::Set)]),
            (v4, vec![(k("b"), ChangeKind::Delete)]),
        ]
    );
    assert_eq!(e.changes_since(v1, 100).unwrap().len(), 2);
    assert_eq!(e.changes_since(v1, 1).unwrap()[0].versionstamp, v2);
    assert!(e.changes_since(v4, 100).unwrap().is_empty());
}

pub fn change_feed_retention(f: Factory) {
    let clock = ManualClock::new(T0);
    let b = f(&Harness { clock, retention: 10 });
    let e = b.engine.as_ref();
    let start = e.snapshot().unwrap().versionstamp();
    let mut stamps = vec![];
    for i in 0..25u32 {
        stamps.push(e.commit(&AtomicBatch::new().set(&k("r"), &i.to_be_bytes())).unwrap());
    }
    let err = e.changes_since(start, 100).unwrap_err();
    assert_eq!(err.code(), "storage.feed_truncated");
    // The last 10 commits are kept: reading from just before them works.
    let kept = e.changes_since(stamps[14], 100).unwrap();
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[0].versionstamp, stamps[15]);
    assert!(e.changes_since(stamps[13], 100).is_err());
}

pub fn check_only_commit(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let before = e.snapshot().unwrap().versionstamp();
    let vs = e.commit(&AtomicBatch::new().check(&k("nothing"), None)).unwrap();
    assert!(vs > before);
    assert!(e.changes_since(before, 10).unwrap().is_empty());
}

pub fn many_writes_grow_the_map(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    let value = vec![0xAB; 4096];
    for batch_no in 0..16i64 {
        let mut batch = AtomicBatch::new();
        for i in 0..64i64 {
            batch = batch.set(&key(&["big".into(), (batch_no * 64 + i).into()]), &value);
        }
        e.commit(&batch).unwrap();
    }
    let n = keys_in(e, &KeyRange::prefix(&key(&["big".into()])), ScanOptions::forward()).len();
    assert_eq!(n, 1024);
}

pub fn backup_is_a_consistent_copy(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(
        &AtomicBatch::new()
            .set(&k("a"), b"1")
            .set_with_expiry(&k("b"), b"2", T0 + 60_000)
            .sum(&k("n"), 7),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backup.kvm");
    e.backup(&path).unwrap();
    // Writes after the backup are not in it.
    e.commit(&AtomicBatch::new().set(&k("late"), b"x")).unwrap();
    let err = e.backup(&path).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let opts = kvm_storage::LmdbOptions {
        clock: Arc::new(ManualClock::new(T0)),
        ..kvm_storage::LmdbOptions::default()
    };
    let copy = kvm_storage::LmdbEngine::open(&path, opts).unwrap();
    let snap = copy.snapshot().unwrap();
    assert_eq!(snap.get(&k("a")).unwrap().unwrap().value(), b"1");
    assert_eq!(snap.get(&k("b")).unwrap().unwrap().expire_at(), Some(T0 + 60_000));
    assert_eq!(Value::decode_counter(snap.get(&k("n")).unwrap().unwrap().value()), Some(7));
    assert!(snap.get(&k("late")).unwrap().is_none());
}

/// A backup refuses a symbolic link at its path, dangling or not, and leaves what it points
/// at alone (issue 15: a dangling link was followed, creating the file at its target).
pub fn backup_never_writes_through_a_link(f: Factory) {
    let (b, _) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set(&k("a"), b"1")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (target, link) = (dir.path().join("elsewhere.kvm"), dir.path().join("backup.kvm"));
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = e.backup(&link).unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert!(!target.exists(), "nothing is created where the dangling link points");
    std::fs::write(&target, b"precious").unwrap();
    let err = e.backup(&link).unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "nothing else is created");
}

/// `check_range`: a key written in the range after the snapshot fails the commit (a
/// phantom), one written outside it or before the snapshot does not, and an entry that has
/// expired by commit time does not count.
pub fn range_checks_catch_phantoms(f: Factory) {
    let (b, clock) = open(f);
    let e = b.engine.as_ref();
    e.commit(&AtomicBatch::new().set(&k("b1"), b"1").set(&k("z"), b"1")).unwrap();
    let range = KeyRange::between(&k("b"), &k("c"));
    let at = e.snapshot().unwrap().versionstamp();
    let guarded = || AtomicBatch::new().check_range(range.clone(), at).set(&k("out"), b"x");
    e.commit(&AtomicBatch::new().set(&k("d"), b"outside")).unwrap();
    assert!(e.commit(&guarded()).is_ok(), "writes outside the range and older ones pass");
    e.commit(&AtomicBatch::new().set_with_expiry(&k("b5"), b"ttl", T0 + 10)).unwrap();
    match e.commit(&guarded()) {
        Err(Error::Conflict { key }) => assert_eq!(key, k("b5")),
        other => panic!("a new key in the range must conflict, got {other:?}"),
    }
    assert_eq!(get(e, &k("out")), Some(b"x".to_vec()), "the failed commit wrote nothing more");
    clock.set(T0 + 10);
    assert!(e.commit(&guarded()).is_ok(), "an expired entry is not a phantom");
    e.commit(&AtomicBatch::new().set(&k("b1"), b"2")).unwrap();
    assert!(matches!(e.commit(&guarded()), Err(Error::Conflict { .. })), "an overwrite too");
}

/// `write_direct`: a backend either has no direct path (`None`) or writes as it goes in one
/// transaction — reads see its own writes, snapshots opened meanwhile do not, what it wrote
/// is one commit and one change-feed entry, expiry is kept, a stopped write or a key too
/// long leaves nothing.
pub fn direct_writes(f: Factory) {
    let (b, clock) = open(f);
    let e = b.engine.as_ref();
    let before = e.commit(&AtomicBatch::new().set(&k("old"), b"x")).unwrap();
    let value = vec![7u8; 1000];
    let mut runs = 0;
    let outcome = e.write_direct(0, &mut |d| {
        runs += 1;
        assert_eq!(d.read_versionstamp(), before);
        for i in 0..300u32 {
            let key = key(&[KeyPart::String("d".into()), KeyPart::Int(i64::from(i))]);
            assert!(d.get(&key)?.is_none(), "nothing of an earlier run is left");
            d.set(&key, &value, None)?;
        }
        d.set(&k("ttl"), b"t", Some(T0 + 50))?;
        assert_eq!(d.get(&k("ttl"))?.map(|e| e.expire_at), Some(Some(T0 + 50)));
        assert_eq!(d.get(&k("old"))?.map(|e| e.value), Some(b"x".to_vec()));
        d.delete(&k("old"))?;
        assert!(d.get(&k("old"))?.is_none(), "own delete seen");
        let snap = e.snapshot()?;
        assert!(snap.get(&k("ttl"))?.is_none(), "a snapshot meanwhile sees nothing of it");
        assert!(snap.get(&k("old"))?.is_some());
        Ok(())
    });
    let Some(vs) = outcome.unwrap() else {
        assert_eq!(runs, 0, "no direct path: the closure is not called");
        return;
    };
    assert!(runs >= 1);
    assert!(vs > before);
    assert_eq!(get(e, &k("ttl")), Some(b"t".to_vec()));
    assert_eq!(get(e, &k("old")), None);
    let sets = e.changes_since(before, 10).unwrap();
    assert_eq!(sets.len(), 1, "one commit");
    assert_eq!(sets[0].versionstamp, vs);
    assert_eq!(sets[0].changes.len(), 302);
    clock.set(T0 + 50);
    assert_eq!(get(e, &k("ttl")), None, "expired on time");
    assert_eq!(e.sweep_expired(10).unwrap(), 1, "in the expiry index");

    let at = e.snapshot().unwrap().versionstamp();
    let err = e
        .write_direct(0, &mut |d| {
            d.set(&k("half"), b"written", None)?;
            Err(Error::Aborted)
        })
        .unwrap_err();
    assert_eq!(err, Error::Aborted);
    let long = vec![1u8; kvm_storage::MAX_KEY_LEN + 1];
    let err = e.write_direct(0, &mut |d| d.set(&long, b"v", None)).unwrap_err();
    assert!(matches!(err, Error::KeyTooLarge { .. }), "{err:?}");
    assert_eq!(get(e, &k("half")), None);
    assert_eq!(e.snapshot().unwrap().versionstamp(), at, "no commit");
}
