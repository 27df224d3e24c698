//! Values as JSON (for `--json` output and for `query_as`). `query_as` goes through
//! `serde_json::Value` rather than a hand-written `Deserializer` over [`Value`]: one small
//! total conversion, and serde_json's deserializer is well tested; the cost is one extra
//! copy of each row, small next to reading it.

use kvm_storage::Value;
use serde::de::DeserializeOwned;

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

/// Deserializes each row into `T`.
pub fn rows_as<T: DeserializeOwned>(rows: &Rows) -> Result<Vec<T>> {
    rows_to_json(rows)
        .into_iter()
        .map(|j| {
            serde_json::from_value(j)
                .map_err(|e| Error::Param(format!("cannot deserialize a row: {e}")))
        })
        .collect()
}
