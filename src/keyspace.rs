//! The keyspace: every key KVM writes, as one enum, encoded only through the storage tuple
//! codec. Nothing else in the engine builds keys by hand.
//!
//! | key | tuple | value |
//! |---|---|---|
//! | record | `[model, pk]` | the record (an object of its stored fields) |
//! | unique index entry | `[model, '__idx', index, v1, …]` | the record's pk |
//! | non-unique index entry | `[model, '__idx', index, v1, …, pk]` | null |
//! | catalog version | `['__sys', 'catalog', 'version']` | a counter, bumped by every DDL |
//! | catalog format | `['__sys', 'catalog', 'format']` | a counter: how the catalog is written (absent: 1) |
//! | model definition | `['__sys', 'catalog', 'model', name]` | `{kql, building}` |
//! | backfill progress | `['__sys', 'backfill', model]` | the last record key indexed |
//! | queue definition | `['__sys', 'queues', q]` | its job defaults |
//! | job | `['__sys', 'queue', q, 'job', id]` | the job (payload, state, attempts, errors) |
//! | ready job | `['__sys', 'queue', q, 'ready', -priority, id]` | null |
//! | delayed job | `['__sys', 'queue', q, 'delayed', due_ms, id]` | null |
//! | leased job | `['__sys', 'queue', q, 'leased', until_ms, id]` | null |
//! | dead job | `['__sys', 'queue', q, 'dead', id]` | null |
//! | finished job | `['__sys', 'queue', q, 'done', at_ms, id]` | null |
//! | idempotency key | `['__sys', 'queue', q, 'key', k]` | the job id |
//! | user key (`KV SET [a, b]`) | `['__kv', a, b]` | the value |
//!
//! Model names never start with `__`, so records and the system prefix cannot collide; the
//! `'__idx'` part sorts before any string primary key only by accident of its value, never
//! by assumption: record scans read the prefix `[model]` and skip the index entries, which
//! are exactly the keys `[model, '__idx', <string>, …]` ([`index_area`]). So a record whose
//! primary key is the string `'__idx'` (key `[model, '__idx']`) is an ordinary record.
//!
//! Index and key values: a `U64` value is always a bigint part (an int part for small values
//! would sort every value above `i64::MAX`, a bigint, before them); ints and timestamps are
//! int parts. Null has no entry (a record whose indexed field is null is not in the
//! index); a string or bytes value longer than [`LONG_VALUE`] bytes is stored as its first
//! [`LONG_VALUE`] bytes plus a 16-hex-digit FNV-1a hash of the whole value, so keys stay
//! under the 511-byte limit; lookups encode the same way and every match is re-checked
//! against the record.

use kvm_storage::tuple::{self, KeyPart};
use kvm_storage::{KeyRange, Value};

/// The part that separates a model's index entries from its records.
pub const IDX: &str = "__idx";
/// The system prefix.
pub const SYS: &str = "__sys";
/// The user area of `KV` statements: no model's records or index entries, nor the system's
/// keys, are under it, so raw writes there cannot corrupt them.
pub const KV: &str = "__kv";
/// String and bytes index values longer than this are truncated and hashed.
pub const LONG_VALUE: usize = 96;

/// Every key shape of the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Key<'a> {
    Record {
        model: &'a str,
        pk: KeyPart,
    },
    UniqueEntry {
        model: &'a str,
        index: &'a str,
        values: Vec<KeyPart>,
    },
    IndexEntry {
        model: &'a str,
        index: &'a str,
        values: Vec<KeyPart>,
        pk: KeyPart,
    },
    CatalogVersion,
    /// The format of the stored catalog (`catalog_store::FORMAT`).
    CatalogFormat,
    ModelDef {
        name: &'a str,
    },
    /// How far the backfill of a model's building indexes got (resumed from there).
    Backfill {
        model: &'a str,
    },
    /// Keys being removed in batches after `DROP MODEL` (`index: None`: every key of the
    /// model) or `DROP INDEX` (the index's entries): present until the last is gone.
    Removal {
        model: &'a str,
        index: Option<&'a str>,
    },
    QueueDef {
        queue: &'a str,
    },
    Job {
        queue: &'a str,
        id: &'a str,
    },
    /// A job in a queue's state area (`ready`, `delayed`, `leased`, `dead`, `done`), under
    /// its ordering value (`-priority`, due time, lease end, finish time; none for `dead`).
    JobIn {
        queue: &'a str,
        area: &'static str,
        order: Option<i64>,
        id: &'a str,
    },
    JobDedup {
        queue: &'a str,
        key: &'a str,
    },
    /// A key of the `KV` user area: `['__kv', parts…]`.
    User {
        parts: Vec<KeyPart>,
    },
}

/// Prefixes of key shapes, for scans.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPrefix<'a> {
    /// A model's records and index entries: `[model]`.
    Model(&'a str),
    /// One index's entries, optionally under leading values: `[model, '__idx', index, v…]`.
    Index { model: &'a str, index: &'a str, values: Vec<KeyPart> },
    /// Every model definition.
    ModelDefs,
    /// Every pending removal ([`Key::Removal`]).
    Removals,
    /// Every queue definition.
    QueueDefs,
    /// Every queue's jobs.
    QueueRoot,
    /// All of a queue's keys.
    Queue(&'a str),
    /// One state area of a queue (`ready`, `delayed`, …).
    QueueArea { queue: &'a str, area: &'static str },
    /// The `KV` user area, under leading parts (none: all of it).
    User(Vec<KeyPart>),
}

impl Key<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let s = |x: &str| KeyPart::String(x.to_string());
        let parts: Vec<KeyPart> = match self {
            Key::Record { model, pk } => vec![s(model), pk.clone()],
            Key::UniqueEntry { model, index, values } => {
                let mut v = vec![s(model), s(IDX), s(index)];
                v.extend(values.iter().cloned());
                v
            }
            Key::IndexEntry { model, index, values, pk } => {
                let mut v = vec![s(model), s(IDX), s(index)];
                v.extend(values.iter().cloned());
                v.push(pk.clone());
                v
            }
            Key::CatalogVersion => vec![s(SYS), s("catalog"), s("version")],
            Key::CatalogFormat => vec![s(SYS), s("catalog"), s("format")],
            Key::ModelDef { name } => vec![s(SYS), s("catalog"), s("model"), s(name)],
            Key::Backfill { model } => vec![s(SYS), s("backfill"), s(model)],
            Key::Removal { model, index: None } => vec![s(SYS), s("removing"), s(model)],
            Key::Removal { model, index: Some(index) } => {
                vec![s(SYS), s("removing"), s(model), s(index)]
            }
            Key::QueueDef { queue } => vec![s(SYS), s("queues"), s(queue)],
            Key::Job { queue, id } => vec![s(SYS), s("queue"), s(queue), s("job"), s(id)],
            Key::JobIn { queue, area, order, id } => {
                let mut v = vec![s(SYS), s("queue"), s(queue), s(area)];
                v.extend(order.map(KeyPart::Int));
                v.push(s(id));
                v
            }
            Key::JobDedup { queue, key } => vec![s(SYS), s("queue"), s(queue), s("key"), s(key)],
            Key::User { parts } => {
                let mut v = vec![s(KV)];
                v.extend(parts.iter().cloned());
                v
            }
        };
        tuple::encode(&parts)
    }
}

impl KeyPrefix<'_> {
    /// Every key under this prefix.
    pub fn range(&self) -> kvm_storage::KeyRange {
        kvm_storage::KeyRange::prefix(&self.encode())
    }

    pub fn encode(&self) -> Vec<u8> {
        let s = |x: &str| KeyPart::String(x.to_string());
        let parts: Vec<KeyPart> = match self {
            KeyPrefix::Model(m) => vec![s(m)],
            KeyPrefix::Index { model, index, values } => {
                let mut v = vec![s(model), s(IDX), s(index)];
                v.extend(values.iter().cloned());
                v
            }
            KeyPrefix::ModelDefs => vec![s(SYS), s("catalog"), s("model")],
            KeyPrefix::Removals => vec![s(SYS), s("removing")],
            KeyPrefix::QueueDefs => vec![s(SYS), s("queues")],
            KeyPrefix::QueueRoot => vec![s(SYS), s("queue")],
            KeyPrefix::Queue(q) => vec![s(SYS), s("queue"), s(q)],
            KeyPrefix::QueueArea { queue, area } => vec![s(SYS), s("queue"), s(queue), s(area)],
            KeyPrefix::User(parts) => {
                let mut v = vec![s(KV)];
                v.extend(parts.iter().cloned());
                v
            }
        };
        tuple::encode(&parts)
    }
}

/// The last part of a non-unique index entry: its pk.
///
/// The entry key's first `skip` bytes are whole parts already known
/// (`[model, '__idx', index]`, [`index_entries_len`]): only the parts after them are decoded.
pub fn entry_pk_past(key: &[u8], skip: usize) -> Option<KeyPart> {
    let mut pos = skip;
    let mut last = None;
    while pos < key.len() {
        let (part, next) = tuple::decode_part(key, pos).ok()?;
        last = Some(part);
        pos = next;
    }
    last
}

/// The first `n` parts of an index entry key past its first `skip` bytes (the
/// `[model, '__idx', index]` prefix, [`index_entries_len`]): the indexed values, then the
/// part after them, if any (a non-unique entry's pk).
pub fn entry_parts(key: &[u8], skip: usize, n: usize) -> Option<(Vec<KeyPart>, Option<KeyPart>)> {
    let mut pos = skip;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let (part, next) = tuple::decode_part(key, pos).ok()?;
        values.push(part);
        pos = next;
    }
    let rest = if pos < key.len() { Some(tuple::decode_part(key, pos).ok()?.0) } else { None };
    Some((values, rest))
}

/// Where the first `n` parts past `skip` end in an index entry key (none is decoded): the
/// entries of one group of values share these bytes.
pub fn entry_values_len(key: &[u8], skip: usize, n: usize) -> Option<usize> {
    let mut pos = skip;
    for _ in 0..n {
        pos = tuple::part_end(key, pos).ok()?;
    }
    Some(pos)
}

/// The length of the `[model, '__idx', index]` prefix every entry of `index` starts with.
pub fn index_entries_len(model: &str, index: &str) -> usize {
    KeyPrefix::Index { model, index, values: Vec::new() }.encode().len()
}

/// The prefix of every index entry of `model`, which record scans skip: `[model, '__idx']`
/// followed by a string part (the index name). The record whose primary key is the string
/// `'__idx'` (key `[model, '__idx']`, with no part after it) lies outside it.
pub fn index_area(model: &str) -> Vec<u8> {
    let mut k =
        tuple::encode(&[KeyPart::String(model.to_string()), KeyPart::String(IDX.to_string())]);
    // The first byte of any string part: its type tag.
    k.extend_from_slice(&tuple::encode(&[KeyPart::String(String::new())])[..1]);
    k
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A key part for a (non-null) value; `exact` is false when a long value was truncated.
pub fn key_part(v: &Value) -> Option<(KeyPart, bool)> {
    Some(match v {
        Value::Null | Value::Array(_) | Value::Object(_) => return None,
        Value::Bool(b) => (KeyPart::Bool(*b), true),
        Value::Int(i) | Value::Timestamp(i) => (KeyPart::Int(*i), true),
        // Every U64 value (and so every U64 bound, coerced to the field's type) is a bigint:
        // one part type for the whole range keeps keys in numeric order.
        Value::Counter(c) => (KeyPart::BigInt(i128::from(*c)), true),
        // −0.0 = 0.0: one key for both (stored values are normalized the same way).
        Value::Float(f) => (KeyPart::Float(f + 0.0), true),
        Value::String(s) if s.len() > LONG_VALUE => {
            let mut cut = LONG_VALUE;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            (KeyPart::String(format!("{}{:016x}", &s[..cut], fnv1a(s.as_bytes()))), false)
        }
        Value::String(s) => (KeyPart::String(s.clone()), true),
        Value::Bytes(b) if b.len() > LONG_VALUE => {
            let mut t = b[..LONG_VALUE].to_vec();
            t.extend_from_slice(&fnv1a(b).to_be_bytes());
            (KeyPart::Bytes(t), false)
        }
        Value::Bytes(b) => (KeyPart::Bytes(b.clone()), true),
    })
}

/// The value a primary-key part stands for (ints come back as ints).
pub fn part_value(p: &KeyPart) -> Value {
    match p {
        KeyPart::Bytes(b) => Value::Bytes(b.clone()),
        KeyPart::String(s) => Value::String(s.clone()),
        KeyPart::BigInt(i) => u64::try_from(*i).map(Value::Counter).unwrap_or(Value::Null),
        KeyPart::Int(i) => Value::Int(*i),
        KeyPart::Float(f) => Value::Float(*f),
        KeyPart::Bool(b) => Value::Bool(*b),
    }
}

/// The value of a field of type `ty` that an index entry holds as `p`, or `None` when the
/// part cannot give it back: a truncated long string or bytes value (see [`key_part`]).
pub fn entry_value(ty: &kvm_lang::ast::TypeName, p: KeyPart) -> Option<Value> {
    use kvm_lang::ast::TypeName;
    Some(match (ty, p) {
        (_, KeyPart::String(s)) if s.len() > LONG_VALUE => return None,
        (_, KeyPart::Bytes(b)) if b.len() > LONG_VALUE => return None,
        (TypeName::Timestamp, KeyPart::Int(i)) => Value::Timestamp(i),
        (_, p) => part_value(&p),
    })
}

/// The bytes of one key part: what identifies a key value (to de-duplicate keys).
pub fn part_bytes(p: &KeyPart) -> Vec<u8> {
    let mut k = Vec::new();
    tuple::encode_part(&mut k, p);
    k
}

/// One end of a range on the part after a prefix: the part, whether it is included, and
/// whether it is exact (a truncated long value bounds nothing: that end stays open).
pub type PartBound = (KeyPart, bool, bool);

/// The keys under `prefix` whose next part lies between `lower` and `upper` (either open).
pub fn part_range(prefix: Vec<u8>, lower: Option<PartBound>, upper: Option<PartBound>) -> KeyRange {
    use std::ops::Bound::*;
    let end_of = |k: &[u8]| tuple::prefix_end(k).map_or(Unbounded, Excluded);
    let with = |p: &KeyPart| {
        let mut k = prefix.clone();
        tuple::encode_part(&mut k, p);
        k
    };
    let start = match lower {
        Some((p, incl, true)) => {
            let k = with(&p);
            if incl {
                Included(k)
            } else {
                // Past every key that starts with the bound (the bound's own suffixes).
                match end_of(&k) {
                    Excluded(e) => Included(e),
                    other => other,
                }
            }
        }
        _ => Included(prefix.clone()),
    };
    let end = match upper {
        Some((p, incl, true)) => {
            let k = with(&p);
            if incl {
                end_of(&k)
            } else {
                Excluded(k)
            }
        }
        _ => end_of(&prefix),
    };
    KeyRange { start, end }
}

/// The keys under `prefix` whose next part is a string that starts with `s` (`STARTS WITH`):
/// the part's encoding without its terminator is a prefix of theirs. Index keys hold
/// strings longer than [`LONG_VALUE`] cut there, so a longer `s` is cut too and the range
/// holds more than the matches: the flag says whether it is exact.
pub fn starts_with_range(mut prefix: Vec<u8>, s: &str) -> (KeyRange, bool) {
    let mut cut = s.len().min(LONG_VALUE);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    tuple::encode_part(&mut prefix, &KeyPart::String(s[..cut].to_string()));
    // The terminator: every longer string continues where it stands.
    prefix.pop();
    (KeyRange::prefix(&prefix), cut == s.len())
}

/// What a changed key is, as a change-feed reader routes it.
#[derive(Debug, PartialEq, Eq)]
pub enum Changed {
    /// A record of `model`.
    Record { model: String },
    /// The catalog (a schema change).
    Catalog,
    /// Anything else: an index entry (it changes with its record), a queue, a system key.
    Other,
}

/// Classifies a changed key.
pub fn changed(key: &[u8]) -> Changed {
    let Ok(parts) = tuple::decode(key) else { return Changed::Other };
    match parts.as_slice() {
        [KeyPart::String(s), KeyPart::String(c), ..] if s == SYS && c == "catalog" => {
            Changed::Catalog
        }
        [KeyPart::String(s), ..] if s == SYS || s == KV => Changed::Other,
        [KeyPart::String(model), _] => Changed::Record { model: model.clone() },
        _ => Changed::Other,
    }
}

/// The last part of a key when it is a string (a queue's name in its definition key, a
/// job's id in a state-area entry).
pub fn last_string(key: &[u8]) -> Option<String> {
    match tuple::decode(key).ok()?.pop()? {
        KeyPart::String(s) => Some(s),
        _ => None,
    }
}

/// The order value of a queue state-area entry (`['__sys', 'queue', q, area, order, id]`).
pub fn job_order(key: &[u8]) -> Option<i64> {
    match tuple::decode(key).ok()?.get(4)? {
        KeyPart::Int(t) => Some(*t),
        _ => None,
    }
}

/// The entries of a queue's state area whose order value is at most `upto`.
pub fn queue_area_upto(queue: &str, area: &'static str, upto: i64) -> KeyRange {
    let prefix = KeyPrefix::QueueArea { queue, area }.encode();
    part_range(prefix, None, Some((KeyPart::Int(upto), true, true)))
}

/// A user key of the `KV` area back as the tuple `KV` statements show: its parts after
/// `'__kv'`, as values.
pub fn user_key(key: &[u8]) -> Option<Vec<Value>> {
    let parts = tuple::decode(key).ok()?;
    Some(parts.iter().skip(1).map(part_value).collect())
}

/// The key part of a `KV` tuple element: exact (a string or bytes value is never cut, so
/// the key must fit whole), or `None` for null, arrays and objects.
pub fn user_part(v: &Value) -> Option<KeyPart> {
    Some(match v {
        Value::String(s) => KeyPart::String(s.clone()),
        Value::Bytes(b) => KeyPart::Bytes(b.clone()),
        other => key_part(other)?.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_storage::format::format_key;

    #[test]
    fn keys_print_as_tuples() {
        let k = Key::IndexEntry {
            model: "users",
            index: "by_age",
            values: vec![KeyPart::Int(31)],
            pk: KeyPart::String("u1".into()),
        };
        assert_eq!(format_key(&k.encode()), "['users', '__idx', 'by_age', 31, 'u1']");
    }

    #[test]
    fn the_index_area_holds_index_entries_and_no_record() {
        let area = index_area("m");
        let entry = Key::IndexEntry {
            model: "m",
            index: "i",
            values: vec![KeyPart::Int(1)],
            pk: KeyPart::Int(2),
        };
        let unique = Key::UniqueEntry { model: "m", index: "", values: vec![] };
        assert!(entry.encode().starts_with(&area));
        assert!(unique.encode().starts_with(&area));
        for pk in ["__idx", "__idx\0", "__idx\0x", "__idy", ""] {
            let rec = Key::Record { model: "m", pk: KeyPart::String(pk.into()) }.encode();
            assert!(!rec.starts_with(&area), "{pk:?}");
        }
    }

    #[test]
    fn u64_keys_sort_numerically_over_the_whole_range() {
        let vals = [0u64, 1, 5, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX];
        let keys: Vec<Vec<u8>> = vals
            .iter()
            .map(|v| {
                let (p, _) = key_part(&Value::Counter(*v)).unwrap_or((KeyPart::Bool(false), true));
                assert_eq!(part_value(&p), Value::Counter(*v));
                tuple::encode(&[p])
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn long_values_are_truncated_and_hashed() {
        let a = Value::String("x".repeat(1000));
        let b = Value::String(format!("{}y", "x".repeat(999)));
        let (pa, exact) = key_part(&a).unwrap_or((KeyPart::Bool(false), true));
        let (pb, _) = key_part(&b).unwrap_or((KeyPart::Bool(false), true));
        assert!(!exact);
        assert_ne!(pa, pb);
        assert!(tuple::encode(&[pa]).len() < 130);
    }
}
