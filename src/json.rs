//! Values as JSON (for `--json` output and for `query_as`). `query_as` goes through
//! `serde_json::Value` rather than a hand-written `Deserializer` over [`Value`]: one small
//! total conversion, and serde_json's deserializer is well tested; the cost is one extra
//! copy of each row, small next to reading it.

use kvm_storage::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::values::format_timestamp;
use crate::Rows;

/// A value as JSON: timestamps as RFC 3339 strings, bytes as arrays of numbers, counters
/// as numbers, non-finite floats as null.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
        Value::Timestamp(t) => J::String(format_timestamp(*t)),
        Value::Counter(c) => J::from(*c),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Object(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

/// Each row as a JSON object of its columns.
pub fn rows_to_json(rows: &Rows) -> Vec<serde_json::Value> {
    rows.rows
        .iter()
        .map(|r| {
            serde_json::Value::Object(
                rows.columns.iter().cloned().zip(r.iter().map(to_json)).collect(),
            )
        })
        .collect()
}

/// Deserializes each row into `T`; a field that does not fit names its column
/// (`kvm.column_type`).
pub fn rows_as<T: DeserializeOwned>(rows: &Rows) -> Result<Vec<T>> {
    rows.deserialize()
}

/// JSON as a value: integers stay integers (`U64` above `i64::MAX`), other numbers are
/// floats, objects and arrays nest.
pub fn from_json(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::Counter(u),
            _ => n.as_f64().map_or(Value::Null, Value::Float),
        },
        J::String(s) => Value::String(s.clone()),
        J::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        J::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
    }
}

/// JSON text read straight into a [`Value`], by the rules of [`from_json`] (integers that
/// fit `i64` are INT, larger ones U64, other numbers FLOAT), without building a
/// `serde_json::Value` first: what `.import` reads each record with.
pub fn parse_json(text: &[u8]) -> std::result::Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let v = serde::de::DeserializeSeed::deserialize(JsonValue, &mut de)?;
    de.end()?;
    Ok(v)
}

/// Reads one JSON value into a [`Value`] ([`parse_json`]); a `DeserializeSeed` so that any
/// serde_json deserializer (a stream of array elements too) can read into it.
#[derive(Clone, Copy)]
pub struct JsonValue;

impl<'de> serde::de::DeserializeSeed<'de> for JsonValue {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonValue {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, b: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> std::result::Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Counter(u), Value::Int))
    }
    fn visit_f64<E>(self, x: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(x))
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> std::result::Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut fields = std::collections::BTreeMap::new();
        while let Some(k) = map.next_key::<String>()? {
            fields.insert(k, map.next_value_seed(self)?);
        }
        Ok(Value::Object(fields))
    }
}

/// A serde value — a struct, a map, a `Vec` — as a KQL value, to bind as a parameter or
/// insert as a record: `db.execute("INSERT INTO users $1", vec![kvm::to_value(&user)?])`.
/// It goes through JSON (one small total conversion): structs and maps become objects,
/// sequences arrays, `Option::None` null; a timestamp type (chrono, time) serializes as
/// RFC 3339 text, which a `TIMESTAMP` field reads as its time; `Vec<u8>` becomes an array of
/// numbers (bind bytes directly, as `Vec<u8>`, for a `BYTES` field). A value JSON cannot
/// hold (a map with non-string keys, a non-finite float) is `kvm.param`.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value)
        .map(|j| from_json(&j))
        .map_err(|e| Error::Param(format!("cannot convert the value: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod parse_tests {
    use super::*;

    /// `parse_json` reads what `from_json` of serde_json's value gives, number rules too.
    #[test]
    fn parse_json_agrees_with_from_json() {
        for text in [
            r#"{"id": 1, "neg": -5, "big": 18446744073709551615, "x": 1.5, "e": 1e3}"#,
            r#"{"s": "a\"b", "n": null, "t": true, "a": [1, [2, {"k": []}], "z"], "d": {"y": 1, "y": 2}}"#,
            r#"[9223372036854775807, 9223372036854775808, -9223372036854775808]"#,
            "\"text\"",
        ] {
            let j: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse_json(text.as_bytes()).unwrap(), from_json(&j), "{text}");
        }
        assert!(parse_json(b"{\"a\": 1} x").is_err(), "trailing text");
        assert!(parse_json(b"{\"a\": }").is_err());
    }
}
