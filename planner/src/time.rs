//! Timestamps and dates as text: RFC 3339 (UTC) and `YYYY-MM-DD`, to and from the engine's
//! representations (microseconds since the epoch, day numbers). Here, in the planner, because
//! a value's stored form ([`crate::stored`]) reads timestamps from strings; the engine
//! re-exports these from `kvm::values`.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `YYYY-MM-DD` into a day number.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00[.ffffff][Z|±HH:MM]`, `T` or a space
/// between date and time, no offset meaning UTC, or a bare date meaning midnight UTC) into
/// microseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let date = parse_date(s.get(0..10)?)?;
    let rest = &s[10..];
    if rest.is_empty() {
        return date.checked_mul(86_400_000_000);
    }
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let h: i64 = rest.get(0..2)?.parse().ok()?;
    let mi: i64 = rest.get(3..5)?.parse().ok()?;
    let sec: i64 = rest.get(6..8)?.parse().ok()?;
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &rest[8..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        let mut padded = digits.clone();
        padded.truncate(6);
        while padded.len() < 6 {
            padded.push('0');
        }
        micros = padded.parse().ok()?;
        rest = &frac[digits.len()..];
    }
    let offset = match rest {
        // No offset: UTC.
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.len() != 6 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = date * 86_400 + h * 3600 + mi * 60 + sec - offset;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// Formats microseconds since the epoch as RFC 3339 UTC.
pub fn format_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let base = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60);
    if frac == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{frac:06}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = parse_timestamp("2024-02-29T13:45:01.5Z").unwrap_or(0);
        assert_eq!(format_timestamp(t), "2024-02-29T13:45:01.500000Z");
        assert_eq!(parse_timestamp("2024-01-01T01:00:00+01:00"), parse_timestamp("2024-01-01"));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_timestamp("garbage"), None);
    }

    #[test]
    fn timestamps_without_offset_are_utc() {
        let utc = parse_timestamp("2025-01-01T00:00:00Z");
        assert!(utc.is_some());
        assert_eq!(parse_timestamp("2025-01-01 00:00:00"), utc);
        assert_eq!(parse_timestamp("2025-01-01T00:00:00"), utc);
        assert_eq!(parse_timestamp("2025-01-01 00:00:00.000"), utc);
        assert_eq!(parse_timestamp("2025-01-01 00:00:00 "), None);
    }
}
