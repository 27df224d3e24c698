//! Dates and timestamps as `chrono` and `time` values (features `chrono` and `time`): a
//! TIMESTAMP is microseconds since the epoch in UTC, a DATE is its `'YYYY-MM-DD'` text.
//! Reading a DATE from a TIMESTAMP takes its UTC date; a value outside the type's range is
//! an error naming what was found, never a wrapped or clamped value.

use kvm_storage::Value;

use crate::params::IntoValue;
use crate::row::FromValue;

/// The civil date (year, month, day) of a DATE or TIMESTAMP value.
fn civil(v: &Value) -> Option<(i64, u32, u32)> {
    let days = match v {
        Value::String(s) => crate::values::parse_date(s)?,
        Value::Timestamp(us) => us.div_euclid(86_400_000_000),
        _ => return None,
    };
    Some(crate::values::civil_from_days(days))
}

fn date_text(y: i64, m: u32, d: u32) -> Value {
    Value::String(format!("{y:04}-{m:02}-{d:02}"))
}

fn mismatch(want: &str, v: &Value) -> String {
    format!("expected {want}, got {} {}", v.type_name(), crate::values::kql(v))
}

#[cfg(feature = "chrono")]
mod with_chrono {
    use chrono::{DateTime, Datelike, NaiveDate, Utc};

    use super::*;

    impl IntoValue for DateTime<Utc> {
        fn into_value(self) -> Value {
            Value::Timestamp(self.timestamp_micros())
        }
    }

    impl FromValue for DateTime<Utc> {
        fn from_value(v: &Value) -> Result<Self, String> {
            match v {
                Value::Timestamp(us) => DateTime::from_timestamp_micros(*us)
                    .ok_or_else(|| mismatch("a timestamp chrono can hold", v)),
                _ => Err(mismatch("a TIMESTAMP", v)),
            }
        }
    }

    impl IntoValue for NaiveDate {
        fn into_value(self) -> Value {
            date_text(i64::from(self.year()), self.month(), self.day())
        }
    }

    impl FromValue for NaiveDate {
        fn from_value(v: &Value) -> Result<Self, String> {
            civil(v)
                .and_then(|(y, m, d)| NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d))
                .ok_or_else(|| mismatch("a DATE", v))
        }
    }
}

#[cfg(feature = "time")]
mod with_time {
    use time::{Date, Month, OffsetDateTime};

    use super::*;

    impl IntoValue for OffsetDateTime {
        fn into_value(self) -> Value {
            // Microseconds since the epoch (of the instant: the offset is not stored).
            let us = self.unix_timestamp_nanos().div_euclid(1000);
            i64::try_from(us).map(Value::Timestamp).unwrap_or(Value::Null)
        }
    }

    impl FromValue for OffsetDateTime {
        fn from_value(v: &Value) -> Result<Self, String> {
            match v {
                Value::Timestamp(us) => {
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(*us) * 1000)
                        .map_err(|_| mismatch("a timestamp `time` can hold", v))
                }
                _ => Err(mismatch("a TIMESTAMP", v)),
            }
        }
    }

    impl IntoValue for Date {
        fn into_value(self) -> Value {
            date_text(
                i64::from(self.year()),
                u32::from(u8::from(self.month())),
                u32::from(self.day()),
            )
        }
    }

    impl FromValue for Date {
        fn from_value(v: &Value) -> Result<Self, String> {
            civil(v)
                .and_then(|(y, m, d)| {
                    let month = Month::try_from(u8::try_from(m).ok()?).ok()?;
                    Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
                        .ok()
                })
                .ok_or_else(|| mismatch("a DATE", v))
        }
    }
}
