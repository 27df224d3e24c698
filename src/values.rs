//! Operations on values: ordering (for sorting and comparisons), equality across number
//! types, arithmetic, truthiness, and timestamps/dates as text (RFC 3339, UTC).

use std::cmp::Ordering;

use kvm_storage::Value;

pub use kvm_planner::time::{civil_from_days, format_timestamp, parse_date, parse_timestamp};

/// A number view of a value: an exact integer or a float.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::Int(i128::from(*i))),
        Value::Counter(c) => Some(Num::Int(i128::from(*c))),
        // -0.0 and 0.0 are the same number.
        Value::Float(f) => Some(Num::Float(if *f == 0.0 { 0.0 } else { *f })),
        _ => None,
    }
}

/// Compares an integer with a float exactly (no rounding of the integer to f64).
fn int_float_cmp(x: i128, y: f64) -> Ordering {
    if y.is_nan() {
        // As in f64::total_cmp: NaN above every number (a negative NaN below).
        return if y.is_sign_negative() { Ordering::Greater } else { Ordering::Less };
    }
    // 2^127 is exact in f64; every i128 is below it and at or above -2^127.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if y >= LIMIT {
        return Ordering::Less;
    }
    if y < -LIMIT {
        return Ordering::Greater;
    }
    let t = y.trunc();
    // `t` is integral and in range, so the cast is exact.
    match x.cmp(&(t as i128)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(y - t)).unwrap_or(Ordering::Equal),
        o => o,
    }
}

fn num_cmp(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Int(x), Num::Float(y)) => int_float_cmp(x, y),
        (Num::Float(x), Num::Int(y)) => int_float_cmp(y, x).reverse(),
        (Num::Float(x), Num::Float(y)) => x.total_cmp(&y),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Counter(_) | Value::Float(_) => 2,
        Value::Timestamp(_) => 3,
        Value::String(_) => 4,
        Value::Bytes(_) => 5,
        Value::Array(_) => 6,
        Value::Object(_) => 7,
    }
}

/// A total order for sorting: null first, then by type, then by value (numbers compare
/// exactly across int, counter and float, with -0.0 equal to 0; arrays element by element,
/// objects entry by entry in key order).
pub fn total_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Counter(x), Value::Counter(y)) => x.cmp(y),
        (Value::Int(x), Value::Counter(y)) => i128::from(*x).cmp(&i128::from(*y)),
        (Value::Counter(x), Value::Int(y)) => i128::from(*x).cmp(&i128::from(*y)),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = total_cmp(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        // Objects compare as their (key, value) lists in key order.
        (Value::Object(x), Value::Object(y)) => {
            for ((kp, p), (kq, q)) in x.iter().zip(y) {
                let o = kp.cmp(kq).then_with(|| total_cmp(p, q));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => num_cmp(x, y),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

/// SQL-style comparison: `None` when either side is null or the types do not compare.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if matches!(a, Value::Null) || matches!(b, Value::Null) {
        return None;
    }
    let comparable = rank(a) == rank(b) || (num(a).is_some() && num(b).is_some());
    comparable.then(|| total_cmp(a, b))
}

/// Whether a filter keeps a row: only `true` does.
pub fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// A value as plain text for output tables: strings unquoted, timestamps as RFC 3339,
/// everything else as its KQL literal.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Timestamp(t) => format_timestamp(*t),
        Value::Counter(c) => c.to_string(),
        Value::Array(_) | Value::Object(_) => {
            let mut out = String::new();
            nested(v, &mut out);
            out
        }
        other => other.to_string(),
    }
}

/// A value as KQL text, as messages show it: strings quoted, timestamps as quoted RFC 3339
/// text, `U64`s as plain numbers — what KQL accepts back.
pub fn kql(v: &Value) -> String {
    let mut out = String::new();
    nested(v, &mut out);
    out
}

/// A value inside an array or object: strings quoted, timestamps as quoted ISO-8601 text
/// and `U64`s as plain numbers (what KQL accepts back), containers recursively.
fn nested(v: &Value, out: &mut String) {
    match v {
        Value::Timestamp(t) => {
            out.push('\'');
            out.push_str(&format_timestamp(*t));
            out.push('\'');
        }
        Value::Counter(c) => out.push_str(&c.to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                nested(x, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (k, x)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                nested(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The units `date_trunc` takes.
pub const TRUNC_UNITS: &str = "'second', 'minute', 'hour', 'day', 'week', 'month', 'year'";

/// The units `extract` takes.
pub const EXTRACT_UNITS: &str =
    "'year', 'month', 'day', 'hour', 'minute', 'second', 'dow', 'doy', 'week', 'epoch'";

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `t` (microseconds, UTC) truncated to the start of its `unit` (case-insensitive); weeks
/// start on Monday (ISO). `None` for an unknown unit.
pub fn date_trunc(unit: &str, t: i64) -> Option<i64> {
    let day = t.div_euclid(MICROS_PER_DAY);
    let step = |m: i64| t - t.rem_euclid(m);
    Some(match unit.to_ascii_lowercase().as_str() {
        "second" => step(1_000_000),
        "minute" => step(60_000_000),
        "hour" => step(3_600_000_000),
        "day" => day * MICROS_PER_DAY,
        // 1970-01-01 was a Thursday: Monday is 3 days before.
        "week" => (day - (day + 3).rem_euclid(7)) * MICROS_PER_DAY,
        "month" => {
            let (y, m, _) = civil_from_days(day);
            kvm_planner::time::days_from_civil(y, m, 1) * MICROS_PER_DAY
        }
        "year" => {
            let (y, _, _) = civil_from_days(day);
            kvm_planner::time::days_from_civil(y, 1, 1) * MICROS_PER_DAY
        }
        _ => return None,
    })
}

/// A field of `t` (microseconds, UTC): `year`, `month` (1–12), `day` (1–31), `hour`,
/// `minute`, `second` (a FLOAT with the fraction), `dow` (0 = Sunday … 6), `doy` (1–366),
/// `week` (ISO week number), `epoch` (seconds since 1970, a FLOAT). `None` for an unknown unit.
pub fn extract(unit: &str, t: i64) -> Option<Value> {
    let day = t.div_euclid(MICROS_PER_DAY);
    let in_day = t.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(day);
    let int = |v: i64| Some(Value::Int(v));
    match unit.to_ascii_lowercase().as_str() {
        "year" => int(y),
        "month" => int(i64::from(m)),
        "day" => int(i64::from(d)),
        "hour" => int(in_day / 3_600_000_000),
        "minute" => int(in_day / 60_000_000 % 60),
        "second" => Some(Value::Float((in_day % 60_000_000) as f64 / 1e6)),
        // 1970-01-01 was a Thursday (4).
        "dow" => int((day + 4).rem_euclid(7)),
        "doy" => int(day - kvm_planner::time::days_from_civil(y, 1, 1) + 1),
        "week" => {
            // ISO 8601: the week with the year's first Thursday is week 1.
            let dow_mon = (day + 3).rem_euclid(7); // 0 = Monday
            let thursday = day - dow_mon + 3;
            let (ty, _, _) = civil_from_days(thursday);
            int((thursday - kvm_planner::time::days_from_civil(ty, 1, 1)) / 7 + 1)
        }
        "epoch" => Some(Value::Float(t as f64 / 1e6)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_display_as_kql_accepts_them() {
        let t = parse_timestamp("2024-02-29T13:45:01Z").unwrap_or(0);
        let v = Value::Object(
            [
                ("at".to_string(), Value::Timestamp(t)),
                ("n".to_string(), Value::Counter(3)),
                ("s".to_string(), Value::Array(vec![Value::String("x".into())])),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(display(&v), "{at: '2024-02-29T13:45:01Z', n: 3, s: ['x']}");
    }

    #[test]
    fn objects_compare_by_entries() {
        let obj = |pairs: &[(&str, i64)]| {
            Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), Value::Int(*v))).collect())
        };
        assert_eq!(compare(&obj(&[("a", 1)]), &obj(&[("a", 1)])), Some(Ordering::Equal));
        assert_eq!(compare(&obj(&[("a", 1)]), &obj(&[("a", 2)])), Some(Ordering::Less));
        assert_eq!(compare(&obj(&[("a", 1)]), &obj(&[("b", 1)])), Some(Ordering::Less));
        assert_eq!(compare(&obj(&[("a", 1)]), &obj(&[("a", 1), ("b", 0)])), Some(Ordering::Less));
        assert_eq!(compare(&obj(&[]), &obj(&[])), Some(Ordering::Equal));
    }

    #[test]
    fn ints_and_floats_compare_exactly() {
        let big = i64::MAX - 1; // not representable as f64: rounds to 2^63
        assert_eq!(
            compare(&Value::Int(big), &Value::Float(9.223_372_036_854_776e18)),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(&Value::Int(1 << 53 | 1), &Value::Float((1u64 << 53) as f64)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&Value::Counter(u64::MAX), &Value::Float(1.8446744073709552e19)),
            Some(Ordering::Less)
        );
        assert_eq!(compare(&Value::Int(-3), &Value::Float(-2.5)), Some(Ordering::Less));
        assert_eq!(compare(&Value::Int(-2), &Value::Float(-2.5)), Some(Ordering::Greater));
        assert_eq!(compare(&Value::Float(-0.0), &Value::Int(0)), Some(Ordering::Equal));
        assert_eq!(compare(&Value::Float(-0.0), &Value::Float(0.0)), Some(Ordering::Equal));
    }

    #[test]
    fn numbers_compare_across_types() {
        assert_eq!(compare(&Value::Int(2), &Value::Float(2.5)), Some(Ordering::Less));
        assert_eq!(compare(&Value::Int(2), &Value::Null), None);
        assert_eq!(compare(&Value::Int(2), &Value::String("2".into())), None);
    }

    #[test]
    fn date_trunc_and_extract_on_known_dates() {
        let t = |s: &str| parse_timestamp(s).expect("a timestamp");
        // 1969-12-31 (before the epoch) was a Wednesday.
        let before = t("1969-12-31T23:59:59.5Z");
        assert_eq!(date_trunc("day", before), Some(t("1969-12-31T00:00:00Z")));
        assert_eq!(date_trunc("week", before), Some(t("1969-12-29T00:00:00Z")));
        assert_eq!(date_trunc("MONTH", before), Some(t("1969-12-01T00:00:00Z")));
        assert_eq!(date_trunc("second", before), Some(t("1969-12-31T23:59:59Z")));
        assert_eq!(extract("dow", before), Some(Value::Int(3)));
        assert_eq!(extract("doy", before), Some(Value::Int(365)));
        assert_eq!(extract("second", before), Some(Value::Float(59.5)));
        // ISO weeks: 2021-01-03 is in week 53 of 2020; 2024-12-30 in week 1 of 2025.
        assert_eq!(extract("week", t("2021-01-03T12:00:00Z")), Some(Value::Int(53)));
        assert_eq!(extract("week", t("2024-12-30T00:00:00Z")), Some(Value::Int(1)));
        assert_eq!(extract("year", t("2000-02-29T00:00:00Z")), Some(Value::Int(2000)));
        assert_eq!(date_trunc("decade", 0), None);
        assert_eq!(extract("century", 0), None);
    }
}
