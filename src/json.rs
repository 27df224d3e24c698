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
