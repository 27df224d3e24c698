//! TIMESTAMP and DATE as `chrono` and `time` values (features `chrono` and `time`; CI runs
//! this file with both: `cargo test --features chrono,time --test datetime`).
#![cfg(all(feature = "chrono", feature = "time"))]
#![allow(clippy::unwrap_used)]

use kvm::{params, Database};

fn db() -> Database {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL e (id INT PRIMARY KEY, at TIMESTAMP, day DATE)", ()).unwrap();
    db
}

#[test]
fn chrono_values_round_trip_through_timestamp_and_date_fields() {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    let db = db();
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 10, 30, 0).unwrap()
        + chrono::Duration::microseconds(123_456);
    let day = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
    db.execute("INSERT INTO e {id: 1, at: $1, day: $2}", params![at, day]).unwrap();
    let row = db.query_row("SELECT at, day FROM e WHERE at = $1", params![at]).unwrap();
    assert_eq!(row.get::<DateTime<Utc>>("at").unwrap(), at);
    assert_eq!(row.get::<NaiveDate>("day").unwrap(), day);
    // A DATE read from a TIMESTAMP is its UTC date; a mismatch names what was found.
    assert_eq!(row.get::<NaiveDate>("at").unwrap(), NaiveDate::from_ymd_opt(2026, 12, 7).unwrap());
    let err = db.query_row("SELECT id FROM e", ()).unwrap().get::<DateTime<Utc>>("id");
    assert!(err.unwrap_err().to_string().contains("expected a TIMESTAMP, got INT 1"));
}

#[test]
fn time_values_round_trip_and_an_offset_is_stored_as_its_instant() {
    use time::macros::{date, datetime};
    use time::{Date, OffsetDateTime};
    let db = db();
    let at = datetime!(2026-12-07 12:30:00.5 +02:00);
    db.execute("INSERT INTO e {id: 1, at: $1, day: $2}", params![at, date!(2024 - 02 - 29)])
        .unwrap();
    let row = db.query_row("SELECT at, day FROM e", ()).unwrap();
    let back = row.get::<OffsetDateTime>("at").unwrap();
    assert_eq!(back, at, "the same instant");
    assert_eq!(back.offset(), time::UtcOffset::UTC, "read back in UTC");
    assert_eq!(row.get::<Date>("day").unwrap(), date!(2024 - 02 - 29));
    // The stored text of the DATE is KQL's.
    let text = db.query_row("SELECT day FROM e WHERE day = '2024-02-29'", ()).unwrap();
    assert_eq!(text.get::<String>("day").unwrap(), "2024-02-29");
}
