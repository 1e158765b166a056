//! Durations read from files and flags: parsed once, bounded where they are
//! read, so no arithmetic on them can overflow later (`u64::MAX` seconds in
//! any duration field is a clear error, never a panic).

use std::time::Duration;

/// Parses `text` (`30s`, `5m`, `7d`) and checks it lies in `min..=max`; the
/// error reads after the field's name: `"1000y" is out of range: ...`.
pub fn parse_bounded(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is not a duration ({e}): write e.g. \"30s\", \"5m\", \"6h\" or \"7d\"")
    })?;
    if d < min || d > max {
        return Err(format!(
            "{text:?} is out of range: it must be {}",
            range_text(min, max)
        ));
    }
    Ok(d)
}

/// "between 1ms and 7days", "at most 1day": a range, for errors.
pub fn range_text(min: Duration, max: Duration) -> String {
    let f = |d: Duration| humantime::format_duration(d).to_string();
    if min.is_zero() {
        format!("at most {}", f(max))
    } else {
        format!("between {} and {}", f(min), f(max))
    }
}

pub const DAY: Duration = Duration::from_secs(24 * 3600);
/// A year as durations are written (365.25 days: `1y` parses to it).
pub const YEAR: Duration = Duration::from_secs(31_557_600);
/// The longest anything may be asked to last or to be kept: a century.
pub const CENTURY: Duration = Duration::from_secs(100 * YEAR.as_secs());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_tiny_durations_are_errors_not_panics() {
        for text in [
            "18446744073709551615s",
            "100000000y",
            "99999999999y",
            "584942417356y",
        ] {
            let got = parse_bounded(text, Duration::ZERO, CENTURY);
            assert!(got.is_err(), "{text}: {got:?}");
        }
        assert_eq!(
            parse_bounded("0s", Duration::from_millis(1), DAY),
            Err("\"0s\" is out of range: it must be between 1ms and 1day".to_string())
        );
        assert_eq!(
            parse_bounded("90m", Duration::ZERO, DAY),
            Ok(Duration::from_secs(5400))
        );
    }
}
