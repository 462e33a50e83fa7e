//! Limit windows (`1m 5m 15m 1h 6h 1d 1w 1M 1Y`) and where each one resets.
//!
//! Windows up to `6h` are fixed windows aligned to the Unix epoch. `1d`, `1w` (Monday), `1M` (the
//! 1st) and `1Y` (January 1st) reset on UTC calendar boundaries: a real month, not 30 days.
//!
//! Every instant maps to a window *index*, a number that changes exactly when the window resets.
//! The hot path compares indexes (`window_id`) as plain integers; the calendar arithmetic is
//! integer-only (no `chrono` calls, no allocation) so computing one costs a few divisions.

use chrono::{DateTime, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Minute,
    FiveMinutes,
    FifteenMinutes,
    Hour,
    SixHours,
    Day,
    Week,
    Month,
    Year,
}

/// The text of a window that is not one of the nine valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown window `{0}`: use one of 1m, 5m, 15m, 1h, 6h, 1d, 1w, 1M, 1Y")]
pub struct UnknownWindow(pub String);

impl Window {
    pub const ALL: [Window; 9] = [
        Window::Minute,
        Window::FiveMinutes,
        Window::FifteenMinutes,
        Window::Hour,
        Window::SixHours,
        Window::Day,
        Window::Week,
        Window::Month,
        Window::Year,
    ];

    /// The spelling used in tollgate.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "1m",
            Window::FiveMinutes => "5m",
            Window::FifteenMinutes => "15m",
            Window::Hour => "1h",
            Window::SixHours => "6h",
            Window::Day => "1d",
            Window::Week => "1w",
            Window::Month => "1M",
            Window::Year => "1Y",
        }
    }

    /// A number that is the same for every instant of one window and changes exactly at each
    /// reset, increasing with time: seconds / length for fixed windows, days since the epoch
    /// for `1d`, Monday-based weeks for `1w`, `year * 12 + month0` for `1M`, the year for `1Y`.
    /// Instants before 1970 count as 1970-01-01T00:00:00Z: no window of a running gateway
    /// starts before the epoch, and the id stays unsigned.
    pub fn window_id(self, unix_secs: i64) -> u64 {
        // Clamped to >= 0, every index is >= 0 (the week of 1970-01-01 has index 0).
        self.index(unix_secs.max(0)).max(0) as u64
    }

    /// Unix seconds at which window `id` starts; `start_of_id(id + 1)` is when it resets.
    pub fn start_of_id(self, id: u64) -> i64 {
        self.start_of_index(i64::try_from(id).unwrap_or(i64::MAX))
    }

    /// Unix seconds of the next reset after `unix_secs` (always strictly later).
    pub fn next_reset_unix(self, unix_secs: i64) -> i64 {
        self.start_of_index(self.index(unix_secs).saturating_add(1))
    }

    /// The instant the window holding `t` started.
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        from_unix(self.start_of_index(self.index(t.timestamp())))
    }

    /// The instant the window holding `t` resets: the start of the next one.
    pub fn next_reset(self, t: DateTime<Utc>) -> DateTime<Utc> {
        from_unix(self.next_reset_unix(t.timestamp()))
    }

    /// Signed window index of any instant (floor division, so correct before the epoch too).
    fn index(self, secs: i64) -> i64 {
        match self.fixed_len() {
            Some(len) => secs.div_euclid(len),
            None => {
                let days = secs.div_euclid(DAY);
                match self {
                    Window::Day => days,
                    // 1970-01-01 was a Thursday, day 3 of a Monday-based week.
                    Window::Week => (days + 3).div_euclid(7),
                    Window::Month => {
                        let (y, m, _) = civil_from_days(days);
                        y * 12 + (m - 1)
                    }
                    _ => civil_from_days(days).0,
                }
            }
        }
    }

    fn start_of_index(self, index: i64) -> i64 {
        match self.fixed_len() {
            Some(len) => index.saturating_mul(len),
            None => {
                let days = match self {
                    Window::Day => index,
                    Window::Week => index.saturating_mul(7).saturating_sub(3),
                    Window::Month => {
                        days_from_civil(index.div_euclid(12), index.rem_euclid(12) + 1, 1)
                    }
                    _ => days_from_civil(index, 1, 1),
                };
                days.saturating_mul(DAY)
            }
        }
    }

    fn fixed_len(self) -> Option<i64> {
        match self {
            Window::Minute => Some(MINUTE),
            Window::FiveMinutes => Some(5 * MINUTE),
            Window::FifteenMinutes => Some(15 * MINUTE),
            Window::Hour => Some(HOUR),
            Window::SixHours => Some(6 * HOUR),
            Window::Day | Window::Week | Window::Month | Window::Year => None,
        }
    }
}

/// Out-of-range instants (beyond chrono's ±262,000 years) clamp to its limits instead of failing.
fn from_unix(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(if secs < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

// Howard Hinnant's civil-calendar algorithms (proleptic Gregorian, exact for every i64 day
// count that chrono can represent): integer-only, so the hot path never builds a date.

/// (year, month 1..=12, day 1..=31) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date (month 1..=12). Saturates for absurd years (which
/// only an out-of-range window id can produce) rather than overflowing.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 {
        year.saturating_sub(1)
    } else {
        year
    };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era.saturating_mul(146_097).saturating_add(doe - 719_468)
}

impl FromStr for Window {
    type Err = UnknownWindow;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Window::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownWindow(s.to_string()))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, TimeZone};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn resets(window: &str, t: &str) -> (DateTime<Utc>, DateTime<Utc>) {
        let w: Window = window.parse().expect("valid window");
        (w.start_of(at(t)), w.next_reset(at(t)))
    }

    #[test]
    fn parses_every_valid_window_and_round_trips_its_text() {
        for w in Window::ALL {
            assert_eq!(w.as_str().parse::<Window>(), Ok(w));
            assert_eq!(w.to_string(), w.as_str());
        }
        assert_eq!("1M".parse::<Window>(), Ok(Window::Month));
        assert_eq!("1m".parse::<Window>(), Ok(Window::Minute));
    }

    #[test]
    fn unknown_windows_are_refused_with_the_valid_list() {
        for bad in ["", "2d", "30d", "1y", "1H", "month", " 1m"] {
            let err = bad.parse::<Window>().expect_err(bad);
            let msg = err.to_string();
            assert!(msg.contains(&format!("`{bad}`")), "{msg}");
            assert!(msg.contains("1m, 5m, 15m, 1h, 6h, 1d, 1w, 1M, 1Y"), "{msg}");
        }
    }

    #[test]
    fn deserializes_from_config_text_and_serializes_back() {
        #[derive(Deserialize, Serialize)]
        struct Budget {
            window: Window,
        }
        let b: Budget = serde_json::from_str(r#"{"window":"1w"}"#).expect("valid");
        assert_eq!(b.window, Window::Week);
        assert_eq!(
            serde_json::to_string(&b).expect("serializes"),
            r#"{"window":"1w"}"#
        );
        let err = serde_json::from_str::<Budget>(r#"{"window":"7d"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown window `7d`"), "{err}");
        assert!(serde_json::from_str::<Budget>(r#"{"window":60}"#).is_err());
    }

    #[test]
    fn short_windows_are_fixed_and_aligned_to_the_epoch() {
        let t = "2026-07-30T13:47:29Z";
        let cases = [
            ("1m", "2026-07-30T13:47:00Z", "2026-07-30T13:48:00Z"),
            ("5m", "2026-07-30T13:45:00Z", "2026-07-30T13:50:00Z"),
            ("15m", "2026-07-30T13:45:00Z", "2026-07-30T14:00:00Z"),
            ("1h", "2026-07-30T13:00:00Z", "2026-07-30T14:00:00Z"),
            ("6h", "2026-07-30T12:00:00Z", "2026-07-30T18:00:00Z"),
        ];
        for (w, start, next) in cases {
            assert_eq!(resets(w, t), (at(start), at(next)), "{w}");
        }
        assert_eq!(
            resets("6h", "2026-07-30T23:59:59Z").1,
            at("2026-07-31T00:00:00Z")
        );
    }

    #[test]
    fn an_instant_on_a_boundary_starts_the_new_window() {
        for w in Window::ALL {
            let boundary = w.next_reset(at("2026-07-30T13:47:29Z"));
            assert_eq!(w.start_of(boundary), boundary, "{w}");
            assert!(w.next_reset(boundary) > boundary, "{w}");
            let just_before = boundary - chrono::Duration::seconds(1);
            assert_eq!(w.next_reset(just_before), boundary, "{w}");
        }
    }

    #[test]
    fn a_day_runs_from_utc_midnight_to_utc_midnight() {
        assert_eq!(
            resets("1d", "2026-07-30T23:59:59Z"),
            (at("2026-07-30T00:00:00Z"), at("2026-07-31T00:00:00Z"))
        );
        // An offset timestamp is the same instant: the day is still the UTC day.
        assert_eq!(
            resets("1d", "2026-07-31T01:30:00+02:00").1,
            at("2026-07-31T00:00:00Z")
        );
    }

    #[test]
    fn a_week_starts_on_monday_at_utc_midnight() {
        // 2026-07-30 is a Thursday; 2026-08-02 a Sunday; 2026-08-03 a Monday.
        let (start, next) = resets("1w", "2026-07-30T10:00:00Z");
        assert_eq!(start, at("2026-07-27T00:00:00Z"));
        assert_eq!(next, at("2026-08-03T00:00:00Z"));
        assert_eq!(start.weekday(), chrono::Weekday::Mon);
        assert_eq!(
            resets("1w", "2026-08-02T23:59:59Z").1,
            at("2026-08-03T00:00:00Z")
        );
        assert_eq!(
            resets("1w", "2026-08-03T00:00:00Z"),
            (at("2026-08-03T00:00:00Z"), at("2026-08-10T00:00:00Z"))
        );
        // A week spanning a year end.
        assert_eq!(
            resets("1w", "2027-01-01T00:00:00Z"),
            (at("2026-12-28T00:00:00Z"), at("2027-01-04T00:00:00Z"))
        );
    }

    #[test]
    fn a_month_is_a_calendar_month() {
        let cases = [
            (
                "2026-01-31T12:00:00Z",
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
            ),
            (
                "2026-02-28T23:59:59Z",
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
            ),
            (
                "2028-02-29T12:00:00Z",
                "2028-02-01T00:00:00Z",
                "2028-03-01T00:00:00Z",
            ),
            (
                "2100-02-28T12:00:00Z",
                "2100-02-01T00:00:00Z",
                "2100-03-01T00:00:00Z",
            ),
            (
                "2000-02-29T00:00:00Z",
                "2000-02-01T00:00:00Z",
                "2000-03-01T00:00:00Z",
            ),
            (
                "2026-04-30T23:59:59Z",
                "2026-04-01T00:00:00Z",
                "2026-05-01T00:00:00Z",
            ),
            (
                "2026-12-15T08:00:00Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                "2026-12-31T23:59:59Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ];
        for (t, start, next) in cases {
            assert_eq!(resets("1M", t), (at(start), at(next)), "{t}");
        }
        // 2100 is not a leap year: its February has 28 days.
        let feb = Window::Month.start_of(at("2100-02-10T00:00:00Z"));
        let mar = Window::Month.next_reset(feb);
        assert_eq!((mar - feb).num_days(), 28);
        let feb = Window::Month.start_of(at("2028-02-10T00:00:00Z"));
        assert_eq!((Window::Month.next_reset(feb) - feb).num_days(), 29);
    }

    #[test]
    fn a_year_resets_on_january_first() {
        assert_eq!(
            resets("1Y", "2026-12-31T23:59:59Z"),
            (at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            resets("1Y", "2028-02-29T00:00:00Z"),
            (at("2028-01-01T00:00:00Z"), at("2029-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn window_ids_have_the_documented_values() {
        let t = at("2026-07-30T13:47:29Z").timestamp();
        assert_eq!(Window::Minute.window_id(t), (t / 60) as u64);
        assert_eq!(Window::SixHours.window_id(t), (t / 21_600) as u64);
        assert_eq!(Window::Day.window_id(t), 20_664);
        assert_eq!(Window::Month.window_id(t), 2026 * 12 + 6);
        assert_eq!(Window::Year.window_id(t), 2026);
        // Thursday 1970-01-01 is in week 0; Monday 1970-01-05 starts week 1.
        assert_eq!(Window::Week.window_id(0), 0);
        assert_eq!(Window::Week.window_id(4 * DAY - 1), 0);
        assert_eq!(Window::Week.window_id(4 * DAY), 1);
        assert_eq!(Window::Week.start_of_id(1), 4 * DAY);
    }

    /// Walks instants from 1970 to 2200 (a prime step, so every time of day and weekday
    /// occurs) and checks each window against chrono's own calendar.
    #[test]
    fn ids_change_exactly_at_resets_and_agree_with_chrono() {
        let end = at("2200-01-01T00:00:00Z").timestamp();
        let mut secs = 0;
        while secs < end {
            let t = Utc.timestamp_opt(secs, 0).single().expect("in range");
            for w in Window::ALL {
                let id = w.window_id(secs);
                let start = w.start_of(t);
                let next = w.next_reset(t);
                assert!(start <= t && t < next, "{w} {t}");
                assert_eq!(w.start_of_id(id), start.timestamp(), "{w} {t}");
                assert_eq!(w.window_id(start.timestamp()), id, "{w} {t}");
                assert_eq!(w.window_id(next.timestamp() - 1), id, "{w} {t}");
                assert_eq!(w.window_id(next.timestamp()), id + 1, "{w} {t}");
                assert_eq!(start, chrono_start(w, t), "{w} {t}");
            }
            secs += 7_919 * 61;
        }
    }

    fn chrono_start(w: Window, t: DateTime<Utc>) -> DateTime<Utc> {
        let date = t.date_naive();
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        match w {
            Window::Day => midnight(date),
            Window::Week => midnight(
                date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday())),
            ),
            Window::Month => midnight(date.with_day(1).expect("day 1")),
            Window::Year => {
                midnight(NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("january first"))
            }
            fixed => {
                let len = fixed.fixed_len().expect("fixed window");
                from_unix(t.timestamp() - t.timestamp().rem_euclid(len))
            }
        }
    }

    #[test]
    fn instants_before_the_epoch_do_not_break_anything() {
        assert_eq!(Window::Day.window_id(-5), 0);
        assert_eq!(Window::Week.window_id(i64::MIN), 0);
        let t = at("1969-12-31T18:00:00Z");
        assert_eq!(Window::Month.start_of(t), at("1969-12-01T00:00:00Z"));
        assert_eq!(Window::Month.next_reset(t), at("1970-01-01T00:00:00Z"));
        assert_eq!(Window::Hour.start_of(t), at("1969-12-31T18:00:00Z"));
    }

    #[test]
    fn extreme_instants_clamp_instead_of_panicking() {
        for w in Window::ALL {
            let _ = w.next_reset(DateTime::<Utc>::MAX_UTC);
            let _ = w.start_of(DateTime::<Utc>::MIN_UTC);
            let _ = w.start_of_id(u64::MAX);
            let _ = w.window_id(i64::MAX);
            let _ = w.next_reset_unix(i64::MAX);
        }
        assert_eq!(
            Window::Year.next_reset(DateTime::<Utc>::MAX_UTC),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
