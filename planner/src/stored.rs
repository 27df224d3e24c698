//! The stored form of a value: what a field holds once a value is written to it, and what a
//! value compared with the field becomes before the comparison. One function,
//! [`stored_form`], serves the three places a value meets a field — writes (the engine's
//! `record::coerce`), literals (lowering turns them into constants in stored form at plan
//! time) and parameters (tagged with the field in the plan IR, converted when bound) — so
//! they cannot drift apart. (They did: a UUID written as `'{67E55044-…}'` was stored
//! canonically, while the same literal in a `WHERE` was only lower-cased and found nothing.)
//!
//! The rules (also in `docs/kql.md`, "Coercion rules"): an INT accepts integers and
//! integral floats; a FLOAT accepts finite floats and integers (−0.0 is stored as 0.0); a
//! U64 accepts non-negative integers; a TIMESTAMP accepts timestamps and RFC 3339 strings; a
//! DATE accepts `'YYYY-MM-DD'` strings and timestamps (their UTC date); a ULID accepts its
//! 26 Crockford characters (stored upper-case, the first `0`–`7`); a UUID accepts any
//! spelling the `uuid` crate reads — hyphenated, 32 hex digits, `{…}`, `urn:uuid:…`, any
//! case — and is stored lower-case and hyphenated; an ENUM accepts one of its strings; an
//! `ARRAY<T>` coerces each element; a STRING gets its field's TRIM, LOWERCASE and UPPERCASE.
//! Nothing converts between numbers and strings.

use kvm_lang::ast::{FieldType, TypeName};
use kvm_storage::Value;

use crate::catalog::Field;
use crate::time::{format_timestamp, parse_date, parse_timestamp};

/// Why a value cannot take a field's stored form: the offending value (an array's element,
/// when that is what failed) and what the field expects.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub value: Value,
    pub message: String,
}

/// `v` in field `f`'s stored form: coerced to its type, then its string modifiers applied.
/// Null stays null (NOT NULL is checked on the whole record, not here).
pub fn stored_form(f: &Field, v: Value) -> Result<Value, Refused> {
    Ok(match coerce_type(&f.ty, v)? {
        Value::String(s) if f.lowercase || f.uppercase || f.trim => Value::String(f.normalize(s)),
        v => v,
    })
}

/// What a value compared with field `f` is compared as: its stored form, or the value
/// itself when it cannot take one (then it equals no stored value of the field, as before
/// any conversion: `uuid_field = 'nope'` is false, not an error).
pub fn compared_form(f: &Field, v: Value) -> Value {
    match stored_form(f, v.clone()) {
        Ok(s) => s,
        Err(_) => v,
    }
}

/// Whether `v` compared with field `f` is compared as it is ([`compared_form`] would return
/// it unchanged), decided without converting anything: what lets a scan compare a field
/// with a parameter in place, record after record, instead of converting the parameter for
/// each. `false` only means "convert to find out".
pub fn compared_as_is(f: &Field, v: &Value) -> bool {
    match (&f.ty.name, v) {
        (_, Value::Null) => true,
        (TypeName::String, Value::String(_)) => !(f.lowercase || f.uppercase || f.trim),
        (TypeName::Int, Value::Int(_))
        | (TypeName::Bool, Value::Bool(_))
        | (TypeName::U64, Value::Counter(_))
        | (TypeName::Timestamp, Value::Timestamp(_)) => true,
        _ => false,
    }
}

/// `v` coerced to type `ty` (see the module docs for the rules).
pub fn coerce_type(ty: &FieldType, v: Value) -> Result<Value, Refused> {
    let refuse = |value: Value, message: String| Refused { value, message };
    let bad = |value: Value| refuse(value, format!("expected {ty}"));
    if matches!(v, Value::Null) {
        return Ok(Value::Null);
    }
    Ok(match (&ty.name, v) {
        (TypeName::String, v @ Value::String(_)) => v,
        (TypeName::Int, v @ Value::Int(_)) => v,
        (TypeName::Int, Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
            Value::Int(f as i64)
        }
        (TypeName::Int, Value::Counter(c)) if i64::try_from(c).is_ok() => Value::Int(c as i64),
        // One zero (−0.0 is stored as 0.0, so keys, indexes and comparisons agree) and no
        // NaN or infinities: they have no place in KVM's order and no JSON form.
        (TypeName::Float, Value::Float(f)) if !f.is_finite() => {
            return Err(refuse(
                Value::Float(f),
                "expected a finite number (NaN and infinities are not stored)".into(),
            ))
        }
        (TypeName::Float, Value::Float(f)) => Value::Float(f + 0.0),
        (TypeName::Float, Value::Int(i)) => Value::Float(i as f64),
        (TypeName::Float, Value::Counter(c)) => Value::Float(c as f64),
        (TypeName::Bool, v @ Value::Bool(_)) => v,
        (TypeName::U64, v @ Value::Counter(_)) => v,
        (TypeName::U64, Value::Int(i)) if i >= 0 => Value::Counter(i as u64),
        (TypeName::Timestamp, v @ Value::Timestamp(_)) => v,
        (TypeName::Timestamp, Value::String(s)) => match parse_timestamp(&s) {
            Some(t) => Value::Timestamp(t),
            None => return Err(bad(Value::String(s))),
        },
        (TypeName::Date, Value::String(s)) => match parse_date(&s) {
            Some(_) => Value::String(s),
            None => return Err(bad(Value::String(s))),
        },
        (TypeName::Date, Value::Timestamp(t)) => {
            Value::String(format_timestamp(t)[..10].to_string())
        }
        (TypeName::Bytes, v @ Value::Bytes(_)) => v,
        // 26 base-32 characters hold 130 bits; a ULID has 128, so its first character is
        // at most `7` (the `ulid` crate wraps larger ones onto other ULIDs).
        (TypeName::Ulid, Value::String(s)) => match ulid::Ulid::from_string(&s) {
            Ok(u) if s.as_bytes().first().is_some_and(|c| (b'0'..=b'7').contains(c)) => {
                Value::String(u.to_string())
            }
            _ => {
                return Err(refuse(
                    Value::String(s),
                    "expected a ULID (26 Crockford base-32 characters, the first 0-7)".into(),
                ))
            }
        },
        (TypeName::Uuid, Value::String(s)) => match uuid::Uuid::parse_str(&s) {
            Ok(u) => Value::String(u.hyphenated().to_string()),
            Err(_) => return Err(refuse(Value::String(s), "expected a UUID".into())),
        },
        (TypeName::Object, v @ Value::Object(_)) => v,
        (TypeName::Enum(variants), Value::String(s)) => {
            if variants.iter().any(|x| x.value == s) {
                Value::String(s)
            } else {
                let allowed: Vec<String> =
                    variants.iter().map(|x| format!("'{}'", x.value)).collect();
                return Err(refuse(
                    Value::String(s),
                    format!("expected one of {}", allowed.join(", ")),
                ));
            }
        }
        (TypeName::Array(elem), Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if matches!(item, Value::Null) && !elem.optional {
                    return Err(refuse(Value::Null, "array elements may not be null".into()));
                }
                out.push(coerce_type(elem, item)?);
            }
            Value::Array(out)
        }
        (_, v) => return Err(bad(v)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Model;

    fn field(def: &str) -> Field {
        let Ok(kvm_lang::Statement::DefineModel(d)) =
            kvm_lang::parse_statement(&format!("DEFINE MODEL m (id INT PRIMARY KEY, f {def})"))
        else {
            panic!("bad definition {def}")
        };
        let m = Model::from_def(&d, &[]).unwrap_or_else(|e| panic!("{}", e.message));
        m.field("f").cloned().unwrap_or_else(|| panic!("no field"))
    }

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    /// `compared_as_is` may say "convert" when it need not, never "as is" when the
    /// conversion would change the value: checked over every type and a spread of values.
    #[test]
    fn compared_as_is_never_skips_a_conversion_that_changes_the_value() {
        let values = [
            Value::Null,
            s("Abc "),
            s("abc"),
            s("67E55044-10B1-426F-9247-BB680E5FE0C8"),
            s("01arz3ndektsv4rrffq69g5fav"),
            s("2024-01-02"),
            s("2024-01-02T03:04:05Z"),
            Value::Int(-3),
            Value::Int(7),
            Value::Float(-0.0),
            Value::Float(2.0),
            Value::Bool(true),
            Value::Counter(5),
            Value::Timestamp(1_700_000_000_000_000),
            Value::Array(vec![Value::Int(1)]),
        ];
        let mut as_is = 0;
        for def in [
            "STRING",
            "STRING LOWERCASE",
            "STRING UPPERCASE",
            "STRING TRIM",
            "INT",
            "FLOAT",
            "BOOL",
            "U64",
            "TIMESTAMP",
            "DATE",
            "UUID",
            "ULID",
            "ENUM('abc', 'x')",
            "ARRAY<INT>",
        ] {
            let f = field(def);
            for v in &values {
                if compared_as_is(&f, v) {
                    as_is += 1;
                    assert_eq!(&compared_form(&f, v.clone()), v, "{def} {v:?}");
                }
            }
        }
        assert!(as_is > 14, "the fast path is taken for the common cases ({as_is})");
    }

    #[test]
    fn every_uuid_spelling_takes_one_stored_form() {
        let f = field("UUID");
        let canonical = s("67e55044-10b1-426f-9247-bb680e5fe0c8");
        for spelling in [
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "{67E55044-10B1-426F-9247-BB680E5FE0C8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67E5504410B1426F9247BB680E5FE0C8",
        ] {
            assert_eq!(stored_form(&f, s(spelling)), Ok(canonical.clone()), "{spelling}");
            assert_eq!(compared_form(&f, s(spelling)), canonical, "{spelling}");
        }
        assert!(stored_form(&f, s("not-a-uuid")).is_err());
        assert_eq!(compared_form(&f, s("not-a-uuid")), s("not-a-uuid"));
    }

    #[test]
    fn strings_ulids_and_timestamps() {
        assert_eq!(stored_form(&field("STRING TRIM LOWERCASE"), s(" Ann@X ")), Ok(s("ann@x")));
        assert_eq!(
            stored_form(&field("ULID"), s("01hf7yat0002yq84chzk6394qq")),
            Ok(s("01HF7YAT0002YQ84CHZK6394QQ"))
        );
        assert_eq!(
            stored_form(&field("TIMESTAMP"), s("2025-01-01 00:00:00")),
            Ok(Value::Timestamp(parse_timestamp("2025-01-01T00:00:00Z").unwrap_or(0)))
        );
        assert_eq!(compared_form(&field("TIMESTAMP"), s("nope")), s("nope"));
        assert_eq!(stored_form(&field("U64"), Value::Int(5)), Ok(Value::Counter(5)));
        let e = stored_form(&field("ARRAY<INT>"), Value::Array(vec![s("x")]));
        assert_eq!(e.map_err(|r| r.value), Err(s("x")));
    }
}
