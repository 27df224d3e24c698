//! Readable renderings of raw keys and values, for dumps, `[ops]` test output and errors.
//!
//! A key that decodes as a tuple prints as `['users', 'u1', 42]`; anything else as `0x…` hex.
//! A value that decodes with the value codec prints as a KQL-like literal.

use std::fmt;

use crate::tuple;
use crate::value::Value;

/// Renders a raw key: as a tuple when it is one, else as hex.
pub fn format_key(key: &[u8]) -> String {
    match tuple::decode(key) {
        Ok(parts) if !key.is_empty() => {
            let inner: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
            format!("[{}]", inner.join(", "))
        }
        _ => hex(key),
    }
}

/// Renders a raw value: as a KQL literal when it decodes, a record as `record {#id:
/// value, …}` (its field names are in the catalog, not in the bytes), else as hex.
pub fn format_value(value: &[u8]) -> String {
    if Value::is_record(value) {
        return match Value::decode_record_fields(value) {
            Ok(fields) => {
                let inner: Vec<String> =
                    fields.iter().map(|(id, v)| format!("#{id}: {v}")).collect();
                format!("record {{{}}}", inner.join(", "))
            }
            Err(_) => hex(value),
        };
    }
    match Value::decode(value) {
        Ok(v) => v.to_string(),
        Err(_) => hex(value),
    }
}

/// `0x` followed by the bytes in hex (`0x` alone for no bytes).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Writes a string as a single-quoted KQL literal with escapes.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}

/// Writes a float so that it reads back as a float (`1.0`, not `1`).
pub(crate) fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else if x == x.trunc() && x.abs() < 1e16 {
        write!(f, "{x:.1}")
    } else {
        write!(f, "{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{tuple, KeyPart};

    #[test]
    fn keys_and_values_print_readably() {
        let key = tuple::encode(&crate::tuple!["users", 42i64, 1.5f64, true, vec![0u8, 255]]);
        assert_eq!(format_key(&key), "['users', 42, 1.5, true, b'\\x00\\xff']");
        assert_eq!(format_key(&tuple::encode(&[KeyPart::BigInt(-7)])), "[-7n]");
        assert_eq!(format_key(&[0xEE]), "0xee");
        let v = Value::Array(vec![Value::String("it's".into()), Value::Float(2.0), Value::Null]);
        assert_eq!(format_value(&v.encode()), "['it\\'s', 2.0, null]");
    }
}
