//! Property tests for the key and value codecs: order preservation, round trips, the prefix
//! property, and total decoding of garbage.

#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;

use kvm_storage::tuple::{self, KeyPart};
use kvm_storage::Value;
use proptest::prelude::*;

fn part() -> impl Strategy<Value = KeyPart> {
    prop_oneof![
        // Small alphabets make shared prefixes and embedded zero bytes common.
        prop::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xFF), any::<u8>()], 0..6)
            .prop_map(KeyPart::Bytes),
        "[a\\x00\\x01b\u{e9}\u{1F600}]{0,5}".prop_map(KeyPart::String),
        any::<i128>().prop_map(KeyPart::BigInt),
        prop_oneof![any::<i64>(), -3i64..3].prop_map(KeyPart::Int),
        prop_oneof![
            any::<f64>(),
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(-f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN_POSITIVE),
        ]
        .prop_map(KeyPart::Float),
        any::<bool>().prop_map(KeyPart::Bool),
    ]
}

fn tuple_strategy() -> impl Strategy<Value = Vec<KeyPart>> {
    prop::collection::vec(part(), 0..5)
}

/// Identity for key parts, with floats compared bit for bit.
fn same(a: &[KeyPart], b: &[KeyPart]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (KeyPart::Float(x), KeyPart::Float(y)) => x.to_bits() == y.to_bits(),
            _ => x == y,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn encoding_preserves_order(a in tuple_strategy(), b in tuple_strategy()) {
        let (ea, eb) = (tuple::encode(&a), tuple::encode(&b));
        prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
    }

    #[test]
    fn decode_inverts_encode(t in tuple_strategy()) {
        let decoded = tuple::decode(&tuple::encode(&t)).unwrap();
        prop_assert!(same(&decoded, &t), "{:?} != {:?}", decoded, t);
    }

    #[test]
    fn prefix_of_tuple_is_prefix_of_bytes(t in tuple_strategy(), extra in tuple_strategy()) {
        let mut longer = t.clone();
        longer.extend(extra.iter().cloned());
        let (short, long) = (tuple::encode(&t), tuple::encode(&longer));
        prop_assert!(long.starts_with(&short));
        // ... and everything with that prefix sorts inside the prefix range.
        let end = tuple::prefix_end(&short);
        prop_assert!(long >= short);
        if let Some(end) = end {
            prop_assert!(long < end);
        }
    }

    #[test]
    fn part_end_skips_exactly_what_decode_part_reads(t in tuple_strategy()) {
        let bytes = tuple::encode(&t);
        let mut pos = 0;
        while pos < bytes.len() {
            let (_, next) = tuple::decode_part(&bytes, pos).unwrap();
            prop_assert_eq!(tuple::part_end(&bytes, pos).unwrap(), next);
            pos = next;
        }
    }

    #[test]
    fn part_end_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut pos = 0;
        while let Ok(next) = tuple::part_end(&bytes, pos) {
            prop_assert_eq!(tuple::decode_part(&bytes, pos).map(|(_, n)| n).ok().unwrap_or(next), next);
            if next <= pos { break; }
            pos = next;
        }
    }

    #[test]
    fn garbage_never_panics_the_tuple_decoder(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(parts) = tuple::decode(&bytes) {
            // Whatever decodes must encode back to the same bytes.
            prop_assert_eq!(tuple::encode(&parts), bytes);
        }
    }

    #[test]
    fn value_round_trips(v in value_strategy()) {
        let bytes = v.encode();
        prop_assert_eq!(bytes[0], kvm_storage::value::FORMAT_V1);
        let back = Value::decode(&bytes).unwrap();
        prop_assert!(same_value(&back, &v), "{:?} != {:?}", back, v);
    }

    #[test]
    fn garbage_never_panics_the_value_decoder(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Value::decode(&bytes);
        let mut framed = vec![kvm_storage::value::FORMAT_V1];
        framed.extend(bytes);
        if let Ok(v) = Value::decode(&framed) {
            prop_assert_eq!(v.encode(), framed);
        }
    }

    #[test]
    fn record_round_trips(fields in prop::collection::btree_map(0u32..300, value_strategy(), 0..8)) {
        let bytes = Value::encode_record(fields.iter().map(|(id, v)| (*id, v)));
        prop_assert!(Value::is_record(&bytes));
        prop_assert!(Value::decode(&bytes).is_err(), "a record is not a value");
        let back = Value::decode_record_fields(&bytes).unwrap();
        prop_assert_eq!(back.len(), fields.len());
        for ((id, v), (bid, bv)) in fields.iter().zip(&back) {
            prop_assert_eq!(id, bid);
            prop_assert!(same_value(bv, v), "{:?} != {:?}", bv, v);
        }
        // Asking for some ids decodes those and steps over the rest.
        let mut some = Vec::new();
        Value::decode_record(&bytes, |id| id % 2 == 0, |id, _| some.push(id)).unwrap();
        let even: Vec<u32> = fields.keys().copied().filter(|id| id % 2 == 0).collect();
        prop_assert_eq!(some, even);
    }

    #[test]
    fn garbage_never_panics_the_record_decoder(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut framed = vec![kvm_storage::value::FORMAT_RECORD];
        framed.extend(bytes);
        if let Ok(fields) = Value::decode_record_fields(&framed) {
            // Whatever decodes is in increasing id order, and re-encodes to a record that
            // decodes to the same fields (bytes may differ: a varint may be overlong).
            prop_assert!(fields.windows(2).all(|w| w[0].0 < w[1].0));
            let again = Value::encode_record(fields.iter().map(|(id, v)| (*id, v)));
            let back = Value::decode_record_fields(&again).unwrap();
            prop_assert_eq!(back.len(), fields.len());
        }
    }
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        ".{0,8}".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        any::<i64>().prop_map(Value::Timestamp),
        any::<u64>().prop_map(Value::Counter),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,4}", inner, 0..6).prop_map(Value::Object),
        ]
    })
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
        }
        _ => a == b,
    }
}

#[test]
fn documented_type_order_holds() {
    // bytes < string < bigint < int < float < false < true, as in the module docs.
    let ordered = [
        KeyPart::Bytes(vec![0xFF]),
        KeyPart::String(String::new()),
        KeyPart::BigInt(i128::MAX),
        KeyPart::Int(i64::MIN),
        KeyPart::Int(i64::MAX),
        KeyPart::Float(-f64::NAN),
        KeyPart::Float(f64::NEG_INFINITY),
        KeyPart::Float(-0.0),
        KeyPart::Float(0.0),
        KeyPart::Float(f64::NAN),
        KeyPart::Bool(false),
        KeyPart::Bool(true),
    ];
    for w in ordered.windows(2) {
        assert_eq!(w[0].cmp(&w[1]), Ordering::Less, "{:?} < {:?}", w[0], w[1]);
        assert!(tuple::encode(&w[..1]) < tuple::encode(&w[1..]));
    }
    // 1 (int) and 1.0 (float) are different keys.
    assert_ne!(KeyPart::Int(1), KeyPart::Float(1.0));
}

#[test]
fn malformed_tuples_are_errors() {
    for bad in [&[0x02, b'a'][..], &[0x04, 1, 2], &[0x09], &[0x02, 0xC3, 0x28, 0x00], &[0x03; 5]] {
        assert!(tuple::decode(bad).is_err(), "{bad:?}");
    }
}
