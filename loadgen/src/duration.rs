//! Human duration strings (`0ms`, `50ms`, `1.5s`, `250us`) used by every flag that takes a time.

use std::time::Duration;

/// Parses `<number><unit>` where unit is one of `ns`, `us`/`µs`, `ms`, `s`, `m`.
/// A bare `0` is accepted because "no delay" needs no unit; any other bare number is
/// rejected, since guessing between ms and s is exactly the mistake this flag invites.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration (expected e.g. 50ms, 1.5s, 250us)".into());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration `{input}` (expected e.g. 50ms, 1.5s, 250us)"))?;
    let nanos_per_unit = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "" if value == 0.0 => 0.0,
        "" => {
            return Err(format!(
                "duration `{input}` needs a unit (ns, us, ms, s, m)"
            ))
        }
        other => {
            return Err(format!(
                "unknown unit `{other}` in duration `{input}` (use ns, us, ms, s, m)"
            ))
        }
    };
    let nanos = value * nanos_per_unit;
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(format!("duration `{input}` is too large"));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Compact rendering for reports: picks the unit that keeps 1–3 integer digits.
pub fn format_micros(us: f64) -> String {
    let abs = us.abs();
    if abs < 1_000.0 {
        format!("{us:.0}µs")
    } else if abs < 1_000_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_units() {
        assert_eq!(parse_duration("0ms").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("250µs").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("10ns").unwrap(), Duration::from_nanos(10));
        assert_eq!(parse_duration(" 7ms ").unwrap(), Duration::from_millis(7));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", "ms", "5", "1.2.3s", "5 parsecs", "-1s", "abc", "1e999s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn formats_by_magnitude() {
        assert_eq!(format_micros(12.0), "12µs");
        assert_eq!(format_micros(2_500.0), "2.50ms");
        assert_eq!(format_micros(-2_500.0), "-2.50ms");
        assert_eq!(format_micros(3_000_000.0), "3.00s");
    }
}
