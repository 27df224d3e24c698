//! The order-preserving tuple key codec: a key is a tuple of typed parts whose byte encoding
//! sorts (by `memcmp`) exactly as the tuples do.
//!
//! | part | tag | payload |
//! |------|-----|---------|
//! | bytes | `0x01` | the bytes, each `0x00` written as `0x00 0xFF`, then a `0x00` terminator |
//! | string | `0x02` | its UTF-8 bytes, escaped and terminated like bytes |
//! | bigint (i128) | `0x03` | 16 bytes big-endian with the sign bit flipped |
//! | int (i64) | `0x04` | 8 bytes big-endian with the sign bit flipped |
//! | float (f64) | `0x05` | the IEEE bits big-endian; negatives have every bit flipped, others the sign bit |
//! | false | `0x06` | none |
//! | true | `0x07` | none |
//!
//! Parts order first by type, in Deno KV's order (bytes < string < bigint < number < false <
//! true), with KVM's two number types side by side: every int sorts before every float, so
//! `1` and `1.0` are different keys (as `1n` and `1` are in Deno KV). Floats follow
//! [`f64::total_cmp`]: `-NaN < -inf < … < -0.0 < 0.0 < … < inf < NaN`, each NaN payload its own
//! key. Tuples compare part by part; a tuple sorts before every longer tuple it is a prefix of,
//! and its encoding is a byte prefix of theirs. Decoding is total: malformed bytes give an
//! error, never a panic.

use std::cmp::Ordering;
use std::fmt;

const TAG_BYTES: u8 = 0x01;
const TAG_STRING: u8 = 0x02;
const TAG_BIGINT: u8 = 0x03;
const TAG_INT: u8 = 0x04;
const TAG_FLOAT: u8 = 0x05;
const TAG_FALSE: u8 = 0x06;
const TAG_TRUE: u8 = 0x07;

/// One part of a tuple key.
#[derive(Clone, Debug)]
pub enum KeyPart {
    Bytes(Vec<u8>),
    String(String),
    BigInt(i128),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl KeyPart {
    fn rank(&self) -> u8 {
        match self {
            KeyPart::Bytes(_) => TAG_BYTES,
            KeyPart::String(_) => TAG_STRING,
            KeyPart::BigInt(_) => TAG_BIGINT,
            KeyPart::Int(_) => TAG_INT,
            KeyPart::Float(_) => TAG_FLOAT,
            KeyPart::Bool(false) => TAG_FALSE,
            KeyPart::Bool(true) => TAG_TRUE,
        }
    }
}

impl Ord for KeyPart {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (KeyPart::Bytes(a), KeyPart::Bytes(b)) => a.cmp(b),
            (KeyPart::String(a), KeyPart::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (KeyPart::BigInt(a), KeyPart::BigInt(b)) => a.cmp(b),
            (KeyPart::Int(a), KeyPart::Int(b)) => a.cmp(b),
            (KeyPart::Float(a), KeyPart::Float(b)) => a.total_cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for KeyPart {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for KeyPart {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for KeyPart {}

impl From<&str> for KeyPart {
    fn from(s: &str) -> Self {
        KeyPart::String(s.to_owned())
    }
}
impl From<String> for KeyPart {
    fn from(s: String) -> Self {
        KeyPart::String(s)
    }
}
impl From<i64> for KeyPart {
    fn from(i: i64) -> Self {
        KeyPart::Int(i)
    }
}
impl From<f64> for KeyPart {
    fn from(f: f64) -> Self {
        KeyPart::Float(f)
    }
}
impl From<bool> for KeyPart {
    fn from(b: bool) -> Self {
        KeyPart::Bool(b)
    }
}
impl From<Vec<u8>> for KeyPart {
    fn from(b: Vec<u8>) -> Self {
        KeyPart::Bytes(b)
    }
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPart::Bytes(b) => {
                f.write_str("b'")?;
                for &c in b {
                    if c.is_ascii_graphic() && c != b'\'' && c != b'\\' || c == b' ' {
                        write!(f, "{}", c as char)?;
                    } else {
                        write!(f, "\\x{c:02x}")?;
                    }
                }
                f.write_str("'")
            }
            KeyPart::String(s) => crate::format::write_quoted(f, s),
            KeyPart::BigInt(i) => write!(f, "{i}n"),
            KeyPart::Int(i) => write!(f, "{i}"),
            KeyPart::Float(x) => crate::format::write_float(f, *x),
            KeyPart::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A malformed tuple encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset of the problem.
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad tuple key at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a tuple.
pub fn encode(parts: &[KeyPart]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.len() * 10);
    for p in parts {
        encode_part(&mut out, p);
    }
    out
}

/// Appends one part's encoding to `out` (so a key can be built part by part).
pub fn encode_part(out: &mut Vec<u8>, part: &KeyPart) {
    match part {
        KeyPart::Bytes(b) => {
            out.push(TAG_BYTES);
            escape_into(out, b);
        }
        KeyPart::String(s) => {
            out.push(TAG_STRING);
            escape_into(out, s.as_bytes());
        }
        KeyPart::BigInt(i) => {
            out.push(TAG_BIGINT);
            out.extend_from_slice(&((*i as u128) ^ (1u128 << 127)).to_be_bytes());
        }
        KeyPart::Int(i) => {
            out.push(TAG_INT);
            out.extend_from_slice(&((*i as u64) ^ (1u64 << 63)).to_be_bytes());
        }
        KeyPart::Float(x) => {
            out.push(TAG_FLOAT);
            let bits = x.to_bits();
            let flipped = if bits >> 63 == 1 { !bits } else { bits ^ (1u64 << 63) };
            out.extend_from_slice(&flipped.to_be_bytes());
        }
        KeyPart::Bool(false) => out.push(TAG_FALSE),
        KeyPart::Bool(true) => out.push(TAG_TRUE),
    }
}

/// Appends a string part without building a [`KeyPart`] (the hot path for model keys).
pub fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.push(TAG_STRING);
    escape_into(out, s.as_bytes());
}

fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.push(0);
}

/// Decodes a whole tuple.
pub fn decode(bytes: &[u8]) -> Result<Vec<KeyPart>, DecodeError> {
    let mut parts = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let (part, next) = decode_part(bytes, pos)?;
        parts.push(part);
        pos = next;
    }
    Ok(parts)
}

/// Decodes the part starting at `pos`, returning it and the offset after it.
pub fn decode_part(bytes: &[u8], pos: usize) -> Result<(KeyPart, usize), DecodeError> {
    let err = |offset, message| DecodeError { offset, message };
    let tag = *bytes.get(pos).ok_or(err(pos, "expected a type tag"))?;
    let body = pos + 1;
    match tag {
        TAG_BYTES => {
            let (b, next) = unescape(bytes, body)?;
            Ok((KeyPart::Bytes(b), next))
        }
        TAG_STRING => {
            let (b, next) = unescape(bytes, body)?;
            let s = String::from_utf8(b).map_err(|_| err(body, "string part is not UTF-8"))?;
            Ok((KeyPart::String(s), next))
        }
        TAG_BIGINT => {
            let raw: [u8; 16] = fixed(bytes, body)?;
            Ok((KeyPart::BigInt((u128::from_be_bytes(raw) ^ (1u128 << 127)) as i128), body + 16))
        }
        TAG_INT => {
            let raw: [u8; 8] = fixed(bytes, body)?;
            Ok((KeyPart::Int((u64::from_be_bytes(raw) ^ (1u64 << 63)) as i64), body + 8))
        }
        TAG_FLOAT => {
            let raw: [u8; 8] = fixed(bytes, body)?;
            let f = u64::from_be_bytes(raw);
            let bits = if f >> 63 == 1 { f ^ (1u64 << 63) } else { !f };
            Ok((KeyPart::Float(f64::from_bits(bits)), body + 8))
        }
        TAG_FALSE => Ok((KeyPart::Bool(false), body)),
        TAG_TRUE => Ok((KeyPart::Bool(true), body)),
        _ => Err(err(pos, "unknown type tag")),
    }
}

/// Where the part starting at `pos` ends (the offset of the next part), without decoding it.
pub fn part_end(bytes: &[u8], pos: usize) -> Result<usize, DecodeError> {
    let err = |offset, message| DecodeError { offset, message };
    let tag = *bytes.get(pos).ok_or(err(pos, "expected a type tag"))?;
    let body = pos + 1;
    let end = match tag {
        TAG_BYTES | TAG_STRING => {
            let mut at = body;
            loop {
                match bytes.get(at) {
                    None => return Err(err(at, "unterminated bytes/string")),
                    Some(0) if bytes.get(at + 1) == Some(&0xFF) => at += 2,
                    Some(0) => break at + 1,
                    Some(_) => at += 1,
                }
            }
        }
        TAG_BIGINT => body + 16,
        TAG_INT | TAG_FLOAT => body + 8,
        TAG_FALSE | TAG_TRUE => body,
        _ => return Err(err(pos, "unknown type tag")),
    };
    if end > bytes.len() {
        return Err(err(body, "number part is truncated"));
    }
    Ok(end)
}

fn fixed<const N: usize>(bytes: &[u8], pos: usize) -> Result<[u8; N], DecodeError> {
    bytes
        .get(pos..pos + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError { offset: pos, message: "number part is truncated" })
}

fn unescape(bytes: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), DecodeError> {
    let mut out = Vec::new();
    loop {
        match bytes.get(pos) {
            None => return Err(DecodeError { offset: pos, message: "unterminated bytes/string" }),
            Some(0) => {
                if bytes.get(pos + 1) == Some(&0xFF) {
                    out.push(0);
                    pos += 2;
                } else {
                    return Ok((out, pos + 1));
                }
            }
            Some(&b) => {
                out.push(b);
                pos += 1;
            }
        }
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// when there is none (an empty prefix, or one made only of `0xFF` bytes). Never longer than
/// `prefix`, so it respects the key size limit whenever the prefix does.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Builds a tuple (an array of parts) from literals: `tuple!["users", 42i64, true]`.
#[macro_export]
macro_rules! tuple {
    ($($part:expr),* $(,)?) => {
        [$($crate::KeyPart::from($part)),*]
    };
}
