//! Dates and times as they appear in reservation markup.
//!
//! schema.org asks for ISO 8601, and senders mostly comply, but not always
//! completely: the offset is often missing, some leave out the seconds or the
//! year (`--03-04`, the XSD `gMonthDay`, or plain `03-04`), some use a space
//! instead of `T`. This module accepts that family and nothing else; in
//! particular it does not guess between `DD-MM-YYYY` and `MM-DD-YYYY`, which
//! real mails mix freely: a wrong date is worse than none.
//!
//! The rules (see the crate documentation):
//! - an offset converts the time to UTC;
//! - no offset: the wall-clock time is taken as UTC;
//! - a date alone is midnight UTC (an offset written after a date alone is
//!   ignored);
//! - no year: the year of `sent` (its own offset's calendar), or the next one
//!   when that would put the time more than 60 days before `sent`.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// How far before the email's date a year-less date may fall before it is
/// taken to mean next year: confirmations are sent before the trip, but a
/// "your stay last week" email should not jump a year ahead.
const YEARLESS_LOOKBACK_DAYS: i64 = 60;

/// A parsed time: as written (the key uses its date) and in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct When {
    /// The wall-clock date and time as written, year inferred if missing.
    pub local: NaiveDateTime,
    pub utc: DateTime<Utc>,
    /// The offset written with it; None without one (`utc` is then the
    /// wall-clock read as UTC).
    pub offset: Option<FixedOffset>,
}

/// The pieces of a date/time string before the year is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    year: Option<i32>,
    month: u32,
    day: u32,
    /// Hours, minutes, seconds, nanoseconds; `None` for a date alone.
    time: Option<(u32, u32, u32, u32)>,
    /// Seconds east of UTC; `None` when the text has no offset (or it was
    /// written after a date alone, where it does not count).
    offset: Option<i32>,
}

/// Parses one date or date-time, inferring a missing year from `sent`.
pub(crate) fn parse(text: &str, sent: &DateTime<FixedOffset>) -> Option<When> {
    let parts = parse_parts(text.trim())?;
    match parts.year {
        Some(year) => build(&parts, year),
        None => {
            let year = sent.year();
            let sent_utc = sent.with_timezone(&Utc);
            let lookback = TimeDelta::try_days(YEARLESS_LOOKBACK_DAYS)?;
            match build(&parts, year) {
                Some(when) if sent_utc.signed_duration_since(when.utc) <= lookback => Some(when),
                // Too far in the past, or no such day this year (29 February).
                _ => build(&parts, year.checked_add(1)?),
            }
        }
    }
}

fn build(parts: &Parts, year: i32) -> Option<When> {
    let date = NaiveDate::from_ymd_opt(year, parts.month, parts.day)?;
    let (h, m, s, nano) = parts.time.unwrap_or((0, 0, 0, 0));
    let local = date.and_time(NaiveTime::from_hms_nano_opt(h, m, s, nano)?);
    let offset = match parts.offset {
        Some(seconds) => Some(FixedOffset::east_opt(seconds)?),
        None => None,
    };
    let shift = TimeDelta::try_seconds(i64::from(parts.offset.unwrap_or(0)))?;
    let utc = local.checked_sub_signed(shift)?.and_utc();
    Some(When { local, utc, offset })
}

/// A tiny cursor over ASCII bytes; every accessor is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Between `min` and `max` ASCII digits, as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut value: u32 = 0;
        let mut count = 0;
        while count < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    value = value * 10 + u32::from(b - b'0');
                    self.pos += 1;
                    count += 1;
                }
                _ => break,
            }
        }
        (count >= min).then_some(value)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// True when the rest, compared ASCII case-insensitively, is `word`.
    fn rest_is(&self, word: &str) -> bool {
        self.bytes.get(self.pos..).is_some_and(|rest| rest.eq_ignore_ascii_case(word.as_bytes()))
    }
}

/// `[--][YYYY-]MM-DD[(T|space)HH:MM[:SS[.fraction]]][ ][Z|UTC|GMT|±HH[[:]MM]]`
fn parse_parts(text: &str) -> Option<Parts> {
    let bytes = text.as_bytes();
    let mut c = Cursor { bytes, pos: 0 };

    let year = if c.eat(b'-') {
        // `--MM-DD`: the XSD form of a month and day without a year.
        if !c.eat(b'-') {
            return None;
        }
        None
    } else if bytes.len() >= 5 && bytes.get(4) == Some(&b'-') && bytes.iter().take(4).all(u8::is_ascii_digit) {
        let year = c.digits(4, 4)?;
        c.eat(b'-');
        Some(i32::try_from(year).ok()?)
    } else {
        None
    };
    let month = c.digits(1, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let day = c.digits(1, 2)?;

    let mut time = None;
    if c.eat(b'T') || c.eat(b't') || (c.peek() == Some(b' ') && is_digit_at(bytes, c.pos + 1)) {
        c.skip_spaces();
        let hour = c.digits(1, 2)?;
        if !c.eat(b':') {
            return None;
        }
        let minute = c.digits(2, 2)?;
        let mut second = 0;
        let mut nano = 0;
        if c.eat(b':') {
            second = c.digits(2, 2)?;
            if c.eat(b'.') || c.eat(b',') {
                nano = fraction_nanos(&mut c)?;
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        time = Some((hour, minute, second, nano));
    }

    c.skip_spaces();
    let offset = if c.at_end() {
        None
    } else if c.eat(b'Z') || c.eat(b'z') {
        Some(0)
    } else if c.rest_is("UTC") || c.rest_is("GMT") {
        c.pos = bytes.len();
        Some(0)
    } else {
        let sign = if c.eat(b'+') {
            1
        } else if c.eat(b'-') {
            -1
        } else {
            return None;
        };
        // `+0:00` is seen in the wild; `+0100` and `+01` too.
        let hours = c.digits(1, 2)?;
        c.eat(b':');
        let minutes = if c.at_end() { 0 } else { c.digits(2, 2)? };
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(sign * i32::try_from(hours * 3600 + minutes * 60).ok()?)
    };
    if !c.at_end() {
        return None;
    }

    Some(Parts { year, month, day, offset: time.and(offset), time })
}

fn is_digit_at(bytes: &[u8], pos: usize) -> bool {
    bytes.get(pos).is_some_and(u8::is_ascii_digit)
}

/// Decimal fraction of a second; digits beyond nanoseconds are dropped.
fn fraction_nanos(c: &mut Cursor<'_>) -> Option<u32> {
    let mut nanos: u32 = 0;
    let mut scale: u32 = 100_000_000;
    let mut any = false;
    while let Some(b @ b'0'..=b'9') = c.peek() {
        nanos += u32::from(b - b'0') * scale;
        scale /= 10;
        c.pos += 1;
        any = true;
    }
    any.then_some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn utc(text: &str, sent_at: &str) -> Option<String> {
        parse(text, &sent(sent_at)).map(|w| w.utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }

    const SENT: &str = "2027-02-10T09:00:00+01:00";

    #[test]
    fn offsets_convert_to_utc() {
        assert_eq!(utc("2027-03-04T20:15:00-08:00", SENT).as_deref(), Some("2027-03-05T04:15:00Z"));
        assert_eq!(utc("2027-03-04T20:15:00+0530", SENT).as_deref(), Some("2027-03-04T14:45:00Z"));
        assert_eq!(utc("2027-03-04T20:15:00+01", SENT).as_deref(), Some("2027-03-04T19:15:00Z"));
        assert_eq!(utc("2017-06-15T14:00:00+0:00", SENT).as_deref(), Some("2017-06-15T14:00:00Z"));
        assert_eq!(utc("2027-03-04T20:15:00Z", SENT).as_deref(), Some("2027-03-04T20:15:00Z"));
        assert_eq!(utc("2027-03-04T20:15:00.000+01:00", SENT).as_deref(), Some("2027-03-04T19:15:00Z"));
        assert_eq!(utc("2027-03-04 20:15 +01:00", SENT).as_deref(), Some("2027-03-04T19:15:00Z"));
        assert_eq!(utc("2027-03-04T20:15:00 UTC", SENT).as_deref(), Some("2027-03-04T20:15:00Z"));
    }

    #[test]
    fn naive_times_are_utc_wall_clock() {
        assert_eq!(utc("2027-03-04T20:15:00", SENT).as_deref(), Some("2027-03-04T20:15:00Z"));
        assert_eq!(utc("2027-03-04T20:15", SENT).as_deref(), Some("2027-03-04T20:15:00Z"));
        assert_eq!(utc(" 2027-03-04 20:15:30 ", SENT).as_deref(), Some("2027-03-04T20:15:30Z"));
        assert_eq!(utc("2027-03-04T20:15:00.5", SENT).as_deref(), Some("2027-03-04T20:15:00.500Z"));
    }

    #[test]
    fn date_alone_is_midnight_utc() {
        assert_eq!(utc("2027-03-04", SENT).as_deref(), Some("2027-03-04T00:00:00Z"));
        assert_eq!(utc("2027-03-04+05:00", SENT).as_deref(), Some("2027-03-04T00:00:00Z"));
    }

    #[test]
    fn local_keeps_the_date_as_written() {
        let w = parse("2027-03-04T20:15:00-08:00", &sent(SENT)).unwrap();
        assert_eq!(w.local.date(), NaiveDate::from_ymd_opt(2027, 3, 4).unwrap());
        assert_eq!(w.utc.date_naive(), NaiveDate::from_ymd_opt(2027, 3, 5).unwrap());
    }

    #[test]
    fn yearless_takes_year_from_sent() {
        for text in ["--03-04", "03-04", "3-4"] {
            assert_eq!(utc(text, SENT).as_deref(), Some("2027-03-04T00:00:00Z"), "{text}");
        }
        assert_eq!(utc("03-04T20:15", SENT).as_deref(), Some("2027-03-04T20:15:00Z"));
        assert_eq!(utc("--03-04T20:15:00-08:00", SENT).as_deref(), Some("2027-03-05T04:15:00Z"));
    }

    #[test]
    fn yearless_within_60_days_before_sent_stays_in_sent_year() {
        // 2027-01-01 is 40 days before 2027-02-10: still this year.
        assert_eq!(utc("--01-01", SENT).as_deref(), Some("2027-01-01T00:00:00Z"));
        // Exactly 60 days before is not "more than 60 days".
        assert_eq!(utc("--03-02", "2027-05-01T00:00:00Z").as_deref(), Some("2027-03-02T00:00:00Z"));
        assert_eq!(utc("--03-01", "2027-05-01T00:00:00Z").as_deref(), Some("2028-03-01T00:00:00Z"));
    }

    #[test]
    fn yearless_rolls_over_december_to_january() {
        assert_eq!(utc("--01-03", "2026-12-20T10:00:00-05:00").as_deref(), Some("2027-01-03T00:00:00Z"));
        assert_eq!(utc("01-03T09:30", "2026-12-20T10:00:00-05:00").as_deref(), Some("2027-01-03T09:30:00Z"));
        // A December date in a December email stays.
        assert_eq!(utc("--12-28", "2026-12-20T10:00:00-05:00").as_deref(), Some("2026-12-28T00:00:00Z"));
    }

    #[test]
    fn yearless_leap_day_moves_to_a_leap_year() {
        assert_eq!(utc("--02-29", "2027-12-01T00:00:00Z").as_deref(), Some("2028-02-29T00:00:00Z"));
    }

    #[test]
    fn rejects_what_is_not_iso_like() {
        for text in [
            "",
            "tomorrow",
            "02-02-2018 18:35",
            "2027-13-01",
            "2027-02-30",
            "2027-03-04T25:00",
            "2027-03-04T20:15:61",
            "2027-03-04T20",
            "2027-03-04T20:15:00+25:00",
            "2027-03-04T20:15:00 junk",
            "-03-04",
            "20270304",
            "2027-03-04T20:15:00.",
            "--",
            "٢٠٢٧-03-04",
        ] {
            assert_eq!(parse(text, &sent(SENT)), None, "{text:?}");
        }
    }

    #[test]
    fn extreme_years_do_not_overflow() {
        let _ = parse("9999-12-31T23:59:59-23:59", &sent(SENT));
        let _ = parse("0000-01-01T00:00:00+23:59", &sent(SENT));
        let far = DateTime::parse_from_rfc3339("9999-12-31T00:00:00Z").unwrap();
        assert_eq!(parse("--01-01", &far).map(|w| w.local.year()), Some(10000));
    }
}
