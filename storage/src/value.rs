//! The value codec: engine values (records, counters, queue jobs) as compact bytes.
//!
//! An encoded value is a format byte ([`FORMAT_V1`]) followed by one tagged value. Integers
//! and timestamps are zigzag LEB128 varints, floats 8 bytes little-endian, counters 8 bytes
//! little-endian (a fixed width, so a counter's size never changes), strings, bytes, arrays
//! and objects a varint length then their contents. A later format gets a new leading byte,
//! and the decoder keeps reading the old one. Decoding is total and bounded in depth.

use std::collections::BTreeMap;
use std::fmt;

/// The leading byte of every value written by this version.
pub const FORMAT_V1: u8 = 0x01;

/// The leading byte of a model's record ([`Value::encode_record`]): its fields by id, not
/// by name. A record is not a value: [`Value::decode`] refuses it.
pub const FORMAT_RECORD: u8 = 0x02;

/// Nesting deeper than this is refused when decoding (no stack overflow on hostile bytes).
pub const MAX_DEPTH: usize = 128;

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_FLOAT: u8 = 4;
const T_STRING: u8 = 5;
const T_BYTES: u8 = 6;
const T_TIMESTAMP: u8 = 7;
const T_COUNTER: u8 = 8;
const T_ARRAY: u8 = 9;
const T_OBJECT: u8 = 10;

/// An engine value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Bytes(Vec<u8>),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// An unsigned 64-bit counter: the operand of the storage `sum`/`min`/`max` mutations.
    Counter(u64),
    Array(Vec<Value>),
    /// Fields by name; kept sorted so that equal objects encode to equal bytes.
    Object(BTreeMap<String, Value>),
}

/// Bytes that are not a value of a known format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad value at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ValueError {}

impl Value {
    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if the value is an `INT`, or a counter that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Counter(c) => i64::try_from(*c).ok(),
            _ => None,
        }
    }

    /// The value as an unsigned integer: a counter, or a non-negative `INT`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Counter(c) => Some(*c),
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// The number as a float (`FLOAT`, and `INT`/counters, which may round).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Counter(c) => Some(*c as f64),
            _ => None,
        }
    }

    /// The boolean, if the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes, if the value is `BYTES`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Microseconds since the Unix epoch (UTC), if the value is a `TIMESTAMP`.
    pub fn as_timestamp_micros(&self) -> Option<i64> {
        match self {
            Value::Timestamp(t) => Some(*t),
            _ => None,
        }
    }

    /// The items, if the value is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The fields, if the value is an object.
    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Object(fields) => Some(fields),
            _ => None,
        }
    }

    /// The name of the value's type as KQL spells it (`INT`, `STRING`, `null`, …), for
    /// messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "BOOL",
            Value::Int(_) => "INT",
            Value::Float(_) => "FLOAT",
            Value::String(_) => "STRING",
            Value::Bytes(_) => "BYTES",
            Value::Timestamp(_) => "TIMESTAMP",
            Value::Counter(_) => "U64",
            Value::Array(_) => "ARRAY",
            Value::Object(_) => "OBJECT",
        }
    }

    /// Encodes the value with its format byte.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(FORMAT_V1);
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(T_NULL),
            Value::Bool(false) => out.push(T_FALSE),
            Value::Bool(true) => out.push(T_TRUE),
            Value::Int(i) => {
                out.push(T_INT);
                put_varint(out, zigzag(*i));
            }
            Value::Float(f) => {
                out.push(T_FLOAT);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::String(s) => {
                out.push(T_STRING);
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytes(b) => {
                out.push(T_BYTES);
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Timestamp(t) => {
                out.push(T_TIMESTAMP);
                put_varint(out, zigzag(*t));
            }
            Value::Counter(c) => {
                out.push(T_COUNTER);
                out.extend_from_slice(&c.to_le_bytes());
            }
            Value::Array(items) => {
                out.push(T_ARRAY);
                put_varint(out, items.len() as u64);
                for v in items {
                    v.encode_into(out);
                }
            }
            Value::Object(fields) => {
                out.push(T_OBJECT);
                put_varint(out, fields.len() as u64);
                for (k, v) in fields {
                    put_varint(out, k.len() as u64);
                    out.extend_from_slice(k.as_bytes());
                    v.encode_into(out);
                }
            }
        }
    }

    /// Decodes a value written by any supported format.
    pub fn decode(bytes: &[u8]) -> Result<Value, ValueError> {
        match bytes.first() {
            Some(&FORMAT_V1) => {
                let mut r = Reader { bytes, pos: 1 };
                let v = r.value(0)?;
                if r.pos != bytes.len() {
                    return Err(r.err("trailing bytes after the value"));
                }
                Ok(v)
            }
            Some(_) => Err(ValueError { offset: 0, message: "unknown value format" }),
            None => Err(ValueError { offset: 0, message: "empty value" }),
        }
    }

    /// Decodes an encoded object field by field, without building a map: `field` gets
    /// each field's name and value in stored (name) order. Anything but an object is an
    /// error.
    pub fn decode_fields(bytes: &[u8], field: impl FnMut(&str, Value)) -> Result<(), ValueError> {
        Value::decode_some_fields(bytes, |_| true, field)
    }

    /// [`Value::decode_fields`] for the fields `wanted` says yes to; the others are stepped
    /// over without being built. `wanted` sees each name's bytes (in stored order, which is
    /// byte order); only the names of wanted fields are checked to be UTF-8.
    pub fn decode_some_fields(
        bytes: &[u8],
        mut wanted: impl FnMut(&[u8]) -> bool,
        mut field: impl FnMut(&str, Value),
    ) -> Result<(), ValueError> {
        match bytes.first() {
            Some(&FORMAT_V1) => {}
            Some(_) => return Err(ValueError { offset: 0, message: "unknown value format" }),
            None => return Err(ValueError { offset: 0, message: "empty value" }),
        }
        let mut r = Reader { bytes, pos: 1 };
        if r.byte()? != T_OBJECT {
            return Err(ValueError { offset: 1, message: "not an object" });
        }
        let n = r.len()?;
        let mut last: Option<&[u8]> = None;
        for _ in 0..n {
            let len = r.len()?;
            let at = r.pos;
            let raw = r.take(len)?;
            // (UTF-8 orders as its bytes do.)
            if last.is_some_and(|l| l >= raw) {
                return Err(ValueError { offset: at, message: "object fields out of order" });
            }
            last = Some(raw);
            if wanted(raw) {
                let name = std::str::from_utf8(raw)
                    .map_err(|_| ValueError { offset: at, message: "not UTF-8" })?;
                let v = r.value(1)?;
                field(name, v);
            } else {
                r.skip(1)?;
            }
        }
        if r.pos != bytes.len() {
            return Err(r.err("trailing bytes after the value"));
        }
        Ok(())
    }

    /// Encodes a model's record: [`FORMAT_RECORD`], then each field as its id (a varint)
    /// and its tagged value, in strictly increasing id order. The names live in the
    /// catalog, once, not in every record: a record is smaller than the object of the same
    /// fields, and a reader finds a field by comparing small integers, not strings.
    pub fn encode_record<'a>(fields: impl IntoIterator<Item = (u32, &'a Value)>) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(FORMAT_RECORD);
        let mut last = None;
        for (id, v) in fields {
            debug_assert!(last.is_none_or(|l| l < id), "record fields out of order");
            last = Some(id);
            put_varint(&mut out, u64::from(id));
            v.encode_into(&mut out);
        }
        out
    }

    /// Whether `bytes` are a record written by [`Value::encode_record`].
    pub fn is_record(bytes: &[u8]) -> bool {
        bytes.first() == Some(&FORMAT_RECORD)
    }

    /// Decodes a record field by field: `wanted` sees each field's id (in increasing
    /// order); `field` gets the id and value of each wanted field, and the others are
    /// stepped over without being built. Ids out of order, or anything but a record, are
    /// an error.
    pub fn decode_record(
        bytes: &[u8],
        mut wanted: impl FnMut(u32) -> bool,
        mut field: impl FnMut(u32, Value),
    ) -> Result<(), ValueError> {
        walk_record(bytes, |id, r| {
            if wanted(id) {
                field(id, r.value(1)?);
            } else {
                r.skip(1)?;
            }
            Ok(true)
        })
    }

    /// [`Value::decode_record`] into `vals`: each field `slot` maps to an index is decoded
    /// into `vals[index]` (`slot` sees each id once, in increasing order; out-of-range
    /// indexes are stepped over). A string decoded over a string reuses its buffer, so a
    /// scan that decodes record after record into one row allocates nothing per record
    /// for its strings. Reading stops at the first id above `until` (a reader that wants
    /// the first fields only does not step over the others).
    pub fn decode_record_into(
        bytes: &[u8],
        mut slot: impl FnMut(u32) -> Option<usize>,
        until: u32,
        vals: &mut [Value],
    ) -> Result<(), ValueError> {
        walk_record(bytes, |id, r| {
            if id > until {
                return Ok(false);
            }
            match slot(id).and_then(|i| vals.get_mut(i)) {
                Some(target) => r.value_into(target, 1)?,
                None => r.skip(1)?,
            }
            Ok(true)
        })
    }

    /// A record's fields by id, every one decoded (for dumps and tests).
    pub fn decode_record_fields(bytes: &[u8]) -> Result<Vec<(u32, Value)>, ValueError> {
        let mut out = Vec::new();
        Value::decode_record(bytes, |_| true, |id, v| out.push((id, v)))?;
        Ok(out)
    }

    /// Encodes an object from its fields, given in strictly increasing name order: the
    /// bytes `Value::Object` of the same fields encodes to.
    pub fn encode_fields<'a>(fields: &[(&'a str, &'a Value)]) -> Vec<u8> {
        debug_assert!(fields.windows(2).all(|w| w[0].0 < w[1].0), "fields out of order");
        let mut out = Vec::with_capacity(16 * fields.len() + 4);
        out.push(FORMAT_V1);
        out.push(T_OBJECT);
        put_varint(&mut out, fields.len() as u64);
        for (k, v) in fields {
            put_varint(&mut out, k.len() as u64);
            out.extend_from_slice(k.as_bytes());
            v.encode_into(&mut out);
        }
        out
    }

    /// How deeply the value nests: 0 for a scalar, 1 for an array or object of scalars.
    /// Values deeper than [`MAX_DEPTH`] cannot be decoded: writers must refuse them.
    pub fn depth(&self) -> usize {
        // Iterative, so that measuring a hostile value cannot overflow the stack.
        let mut deepest = 0;
        let mut stack: Vec<(&Value, usize)> = vec![(self, 0)];
        while let Some((v, d)) = stack.pop() {
            deepest = deepest.max(d);
            match v {
                Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
                Value::Object(fields) => stack.extend(fields.values().map(|i| (i, d + 1))),
                _ => {}
            }
        }
        deepest
    }

    /// The counter held by an encoded value, if it is one (without decoding anything else).
    pub fn decode_counter(bytes: &[u8]) -> Option<u64> {
        match bytes {
            [FORMAT_V1, T_COUNTER, rest @ ..] if rest.len() == 8 => {
                rest.try_into().ok().map(u64::from_le_bytes)
            }
            _ => None,
        }
    }

    /// The encoding of a counter value.
    pub fn encode_counter(c: u64) -> Vec<u8> {
        Value::Counter(c).encode()
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Walks a record ([`Value::encode_record`]): checks its leading byte and that its field ids
/// increase, and hands each id to `step` with the reader at the field's value, which `step`
/// must read or step over; `step` returns false to stop early.
fn walk_record(
    bytes: &[u8],
    mut step: impl FnMut(u32, &mut Reader<'_>) -> Result<bool, ValueError>,
) -> Result<(), ValueError> {
    match bytes.first() {
        Some(&FORMAT_RECORD) => {}
        Some(_) => return Err(ValueError { offset: 0, message: "not a record" }),
        None => return Err(ValueError { offset: 0, message: "empty value" }),
    }
    let mut r = Reader { bytes, pos: 1 };
    let mut next: u64 = 0;
    while r.pos < bytes.len() {
        let at = r.pos;
        let id = r.varint()?;
        if id < next || id > u64::from(u32::MAX) {
            return Err(ValueError { offset: at, message: "record field ids out of order" });
        }
        next = id + 1;
        if !step(id as u32, &mut r)? {
            break;
        }
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, message: &'static str) -> ValueError {
        ValueError { offset: self.pos, message }
    }

    fn byte(&mut self) -> Result<u8, ValueError> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| self.err("truncated value"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err("length overflows"))?;
        let s = self.bytes.get(self.pos..end).ok_or_else(|| self.err("truncated value"))?;
        self.pos = end;
        Ok(s)
    }

    /// A varint; one byte (the common case: small ids, lengths and integers) inline.
    #[inline]
    fn varint(&mut self) -> Result<u64, ValueError> {
        match self.bytes.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }

    fn varint_long(&mut self) -> Result<u64, ValueError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint is too long"))
    }

    fn len(&mut self) -> Result<usize, ValueError> {
        let n = self.varint()?;
        // Every element takes at least one byte: a length beyond what is left is corrupt,
        // and refusing it keeps hostile lengths from allocating.
        if n > (self.bytes.len() - self.pos) as u64 {
            return Err(self.err("length runs past the end"));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String, ValueError> {
        let n = self.len()?;
        let at = self.pos;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| ValueError { offset: at, message: "not UTF-8" })
    }

    fn value(&mut self, depth: usize) -> Result<Value, ValueError> {
        if depth > MAX_DEPTH {
            return Err(self.err("value nests too deeply"));
        }
        Ok(match self.byte()? {
            T_NULL => Value::Null,
            T_FALSE => Value::Bool(false),
            T_TRUE => Value::Bool(true),
            T_INT => Value::Int(unzigzag(self.varint()?)),
            T_FLOAT => Value::Float(f64::from_le_bytes(fixed8(self.take(8)?))),
            T_STRING => Value::String(self.string()?),
            T_BYTES => {
                let n = self.len()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            T_TIMESTAMP => Value::Timestamp(unzigzag(self.varint()?)),
            T_COUNTER => Value::Counter(u64::from_le_bytes(fixed8(self.take(8)?))),
            T_ARRAY => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            T_OBJECT => {
                let n = self.len()?;
                let mut fields = BTreeMap::new();
                for _ in 0..n {
                    let k = self.string()?;
                    let v = self.value(depth + 1)?;
                    fields.insert(k, v);
                }
                Value::Object(fields)
            }
            _ => {
                self.pos -= 1;
                return Err(self.err("unknown value tag"));
            }
        })
    }

    /// [`Reader::value`] into `target`, reusing its buffer when both are strings.
    fn value_into(&mut self, target: &mut Value, depth: usize) -> Result<(), ValueError> {
        if let (Value::String(buf), Some(&T_STRING)) = (&mut *target, self.bytes.get(self.pos)) {
            self.pos += 1;
            let n = self.len()?;
            let at = self.pos;
            let raw = self.take(n)?;
            let s = std::str::from_utf8(raw)
                .map_err(|_| ValueError { offset: at, message: "not UTF-8" })?;
            buf.clear();
            buf.push_str(s);
            return Ok(());
        }
        *target = self.value(depth)?;
        Ok(())
    }

    /// Steps over one value without building it (checked as [`Reader::value`] checks it,
    /// strings' UTF-8 aside).
    fn skip(&mut self, depth: usize) -> Result<(), ValueError> {
        if depth > MAX_DEPTH {
            return Err(self.err("value nests too deeply"));
        }
        match self.byte()? {
            T_NULL | T_FALSE | T_TRUE => {}
            T_INT | T_TIMESTAMP => {
                self.varint()?;
            }
            T_FLOAT | T_COUNTER => {
                self.take(8)?;
            }
            T_STRING | T_BYTES => {
                let n = self.len()?;
                self.take(n)?;
            }
            T_ARRAY => {
                for _ in 0..self.len()? {
                    self.skip(depth + 1)?;
                }
            }
            T_OBJECT => {
                for _ in 0..self.len()? {
                    let n = self.len()?;
                    self.take(n)?;
                    self.skip(depth + 1)?;
                }
            }
            _ => {
                self.pos -= 1;
                return Err(self.err("unknown value tag"));
            }
        }
        Ok(())
    }
}

fn fixed8(s: &[u8]) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(s);
    b
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::format::{write_float, write_quoted};
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write_float(f, *x),
            Value::String(s) => write_quoted(f, s),
            Value::Bytes(b) => crate::KeyPart::Bytes(b.clone()).fmt(f),
            Value::Timestamp(t) => write!(f, "timestamp({t})"),
            Value::Counter(c) => write!(f, "{c}u64"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Object(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_fields_decode_and_the_others_are_stepped_over() {
        let mut nested = BTreeMap::new();
        nested
            .insert("x".to_string(), Value::Array(vec![Value::Int(1), Value::String("s".into())]));
        let mut fields = BTreeMap::new();
        fields.insert("a".to_string(), Value::Object(nested));
        fields.insert("b".to_string(), Value::Float(1.5));
        fields.insert("c".to_string(), Value::Bytes(vec![1, 2]));
        fields.insert("d".to_string(), Value::Counter(7));
        fields.insert("e".to_string(), Value::Timestamp(-3));
        fields.insert("f".to_string(), Value::String("last".into()));
        let bytes = Value::Object(fields.clone()).encode();
        let mut got = Vec::new();
        Value::decode_some_fields(
            &bytes,
            |n| n == b"b" || n == b"f",
            |n, v| got.push((n.to_string(), v)),
        )
        .expect("decodes");
        assert_eq!(
            got,
            vec![("b".into(), Value::Float(1.5)), ("f".into(), Value::String("last".into()))]
        );
        let mut all = BTreeMap::new();
        Value::decode_fields(&bytes, |n, v| {
            all.insert(n.to_string(), v);
        })
        .expect("decodes");
        assert_eq!(all, fields);
        // Truncated input is an error whether the field is decoded or stepped over.
        for cut in 1..bytes.len() {
            assert!(Value::decode_some_fields(&bytes[..cut], |_| false, |_, _| {}).is_err());
        }
        // Not an object.
        assert!(Value::decode_fields(&Value::Int(1).encode(), |_, _| {}).is_err());
    }

    #[test]
    fn counter_fast_path_matches_the_codec() {
        let bytes = Value::encode_counter(42);
        assert_eq!(Value::decode_counter(&bytes), Some(42));
        assert_eq!(Value::decode(&bytes), Ok(Value::Counter(42)));
        assert_eq!(Value::decode_counter(&Value::Int(42).encode()), None);
    }

    #[test]
    fn depth_matches_what_the_decoder_accepts() {
        let mut v = Value::Null;
        for _ in 0..MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        assert_eq!(v.depth(), MAX_DEPTH);
        assert!(Value::decode(&v.encode()).is_ok());
        let deeper = Value::Array(vec![v]);
        assert_eq!(deeper.depth(), MAX_DEPTH + 1);
        assert!(Value::decode(&deeper.encode()).is_err());
    }

    #[test]
    fn zigzag_covers_the_extremes() {
        for i in [0, 1, -1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(i)), i);
        }
    }

    #[test]
    fn hostile_lengths_and_depth_are_refused() {
        assert!(Value::decode(&[FORMAT_V1, T_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).is_err());
        let mut deep = vec![FORMAT_V1];
        deep.extend(std::iter::repeat_n([T_ARRAY, 1], 1000).flatten());
        deep.push(T_NULL);
        assert!(Value::decode(&deep).is_err());
        assert!(Value::decode(&[0x02, T_NULL]).is_err());
    }
}
