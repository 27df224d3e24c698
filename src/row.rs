//! One result row with typed access: `row.get::<i64>("age")`, by column name or position,
//! and serde structs out of rows (`row.deserialize::<User>()`). A conversion that does not
//! fit names the column (`kvm.column_type`); a column that is not there is
//! `kvm.unknown_column`.

use std::sync::Arc;

use kvm_storage::Value;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::output::Rows;

/// One row of a result: its values, aligned with the names of its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[String]>, values: Vec<Value>) -> Row {
        Row { columns, values }
    }

    /// The column names, in output order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The values, aligned with [`Row::columns`].
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, moved out.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of a column, by name (`"age"`) or position (`0`).
    pub fn value(&self, column: impl ColumnIndex) -> Result<&Value> {
        let i = column.index(&self.columns)?;
        self.values.get(i).ok_or_else(|| unknown(column.describe()))
    }

    /// The value of a column converted to `T`: `row.get::<String>("email")`,
    /// `row.get::<Option<i64>>(2)`. A null read as a non-`Option` type, or a value of
    /// another type, is `kvm.column_type` naming the column.
    pub fn get<T: FromValue>(&self, column: impl ColumnIndex) -> Result<T> {
        let i = column.index(&self.columns)?;
        let v = self.values.get(i).ok_or_else(|| unknown(column.describe()))?;
        T::from_value(v).map_err(|message| Error::Column {
            code: "kvm.column_type",
            column: self.columns[i].clone(),
            message,
        })
    }

    /// The row as an object of its columns.
    pub fn to_object(&self) -> Value {
        Value::Object(self.columns.iter().cloned().zip(self.values.iter().cloned()).collect())
    }

    /// The row deserialized into `T` (a struct whose fields are the columns). A field that
    /// does not fit is `kvm.column_type` naming the column.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        deserialize(&self.columns, &self.values)
    }
}

/// `columns`/`values` (one row) deserialized into `T`, an error naming the column that does
/// not fit.
pub(crate) fn deserialize<T: DeserializeOwned>(columns: &[String], values: &[Value]) -> Result<T> {
    let object = serde_json::Value::Object(
        columns.iter().cloned().zip(values.iter().map(crate::json::to_json)).collect(),
    );
    serde_path_to_error::deserialize(object).map_err(|e| {
        let path = e.path().to_string();
        let column = path.split(['.', '[']).next().unwrap_or_default().to_string();
        let message = match path.split_once(['.', '[']) {
            Some(_) => format!("at `{path}`: {}", e.inner()),
            None => e.inner().to_string(),
        };
        Error::Column {
            code: "kvm.column_type",
            column: if column == "?" || column.is_empty() { "(row)".into() } else { column },
            message,
        }
    })
}

fn unknown(column: String) -> Error {
    Error::Column {
        code: "kvm.unknown_column",
        column,
        message: "the result has no such column".into(),
    }
}

/// What names a column: its name (`&str`, `String`) or its position (`usize`).
pub trait ColumnIndex {
    /// The column's position among `columns`.
    fn index(&self, columns: &[String]) -> Result<usize>;
    /// The column as a message names it.
    fn describe(&self) -> String;
}

impl ColumnIndex for &str {
    fn index(&self, columns: &[String]) -> Result<usize> {
        columns.iter().position(|c| c == self).ok_or_else(|| unknown(self.to_string()))
    }
    fn describe(&self) -> String {
        self.to_string()
    }
}

impl ColumnIndex for &String {
    fn index(&self, columns: &[String]) -> Result<usize> {
        self.as_str().index(columns)
    }
    fn describe(&self) -> String {
        self.to_string()
    }
}

impl ColumnIndex for usize {
    fn index(&self, columns: &[String]) -> Result<usize> {
        if *self < columns.len() {
            Ok(*self)
        } else {
            Err(unknown(self.describe()))
        }
    }
    fn describe(&self) -> String {
        format!("#{self}")
    }
}

/// Rust types a value converts to ([`Row::get`]). The error says what was found.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

fn mismatch(want: &str, v: &Value) -> String {
    if v.is_null() {
        format!("expected {want}, got null (read it as an Option)")
    } else {
        format!("expected {want}, got {} {}", v.type_name(), crate::values::kql(v))
    }
}

impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_str().map(str::to_string).ok_or_else(|| mismatch("a STRING", v))
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_bool().ok_or_else(|| mismatch("a BOOL", v))
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_f64().ok_or_else(|| mismatch("a number", v))
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_bytes().map(<[u8]>::to_vec).ok_or_else(|| mismatch("BYTES", v))
    }
}

impl FromValue for u64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_u64().ok_or_else(|| mismatch("a non-negative integer", v))
    }
}

impl FromValue for serde_json::Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(crate::json::to_json(v))
    }
}

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> std::result::Result<Self, String> {
                let want = concat!("an integer that fits in ", stringify!($t));
                v.as_i64().and_then(|i| <$t>::try_from(i).ok()).ok_or_else(|| mismatch(want, v))
            }
        }
    )*};
}
signed!(i64, i32, i16, i8, u32, u16, u8, usize);

impl Rows {
    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i` with typed access ([`Row::get`]), copied out.
    pub fn row(&self, i: usize) -> Option<Row> {
        let columns: Arc<[String]> = self.columns.clone().into();
        self.rows.get(i).map(|values| Row::new(columns, values.clone()))
    }

    /// Each row deserialized into `T`; a field that does not fit names its column.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.rows.iter().map(|r| deserialize(&self.columns, r)).collect()
    }
}

impl IntoIterator for Rows {
    type Item = Row;
    type IntoIter = std::iter::Map<
        std::iter::Zip<std::iter::Repeat<Arc<[String]>>, std::vec::IntoIter<Vec<Value>>>,
        fn((Arc<[String]>, Vec<Value>)) -> Row,
    >;

    /// The rows, moved out, each with typed access ([`Row::get`]).
    fn into_iter(self) -> Self::IntoIter {
        let columns: Arc<[String]> = self.columns.into();
        std::iter::repeat(columns).zip(self.rows).map(|(c, v)| Row::new(c, v))
    }
}
