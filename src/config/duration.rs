//! Durations read from files and flags: parsed once, bounded where they are
//! read, so no arithmetic on them can overflow later (`u64::MAX` seconds in
//! any duration field is a clear error, never a panic).

use std::time::Duration;

/// Why a duration was refused; its message reads after the field's name:
/// `object_lock.retain "1000y" is out of range: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{text:?} is not a duration ({reason}): write e.g. \"30s\", \"5m\", \"6h\" or \"7d\"")]
    NotADuration { text: String, reason: String },
    #[error("{text:?} is out of range: it must be {}", range_of(.min, .max))]
    OutOfRange {
        text: String,
        min: Duration,
        max: Duration,
    },
}

fn range_of(min: &Duration, max: &Duration) -> String {
    range_text(*min, *max)
}

/// Parses `text` (`30s`, `5m`, `7d`) and checks it lies in `min..=max`.
pub fn parse_bounded(text: &str, min: Duration, max: Duration) -> Result<Duration, DurationError> {
    let d = humantime::parse_duration(text).map_err(|e| DurationError::NotADuration {
        text: text.to_string(),
        reason: e.to_string(),
    })?;
    if d < min || d > max {
        return Err(DurationError::OutOfRange {
            text: text.to_string(),
            min,
            max,
        });
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

/// Why a size was refused; its message reads after the field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("{text:?} is not a size: write e.g. \"512KiB\", \"8MiB\" or a number of bytes")]
    NotASize { text: String },
    #[error("{text:?} is out of range: it must be between {min} and {max} bytes")]
    OutOfRange { text: String, min: u64, max: u64 },
}

/// Parses `text` (`8MiB`, `512KiB`, `65536`; `KB`/`MB` are read as the
/// binary units too) and checks it lies in `min..=max`.
pub fn parse_size_bounded(text: &str, min: u64, max: u64) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let not = || SizeError::NotASize {
        text: text.to_string(),
    };
    let n: u64 = digits.parse().map_err(|_| not())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(not()),
    };
    let out_of_range = || SizeError::OutOfRange {
        text: text.to_string(),
        min,
        max,
    };
    let bytes = n.checked_mul(scale).ok_or_else(out_of_range)?;
    if bytes < min || bytes > max {
        return Err(out_of_range());
    }
    Ok(bytes)
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
    fn sizes_are_read_with_binary_units_and_bounded() {
        let ok = |t: &str| parse_size_bounded(t, 1, u64::MAX);
        assert_eq!(ok("8MiB"), Ok(8 << 20));
        assert_eq!(ok("512 KiB"), Ok(512 << 10));
        assert_eq!(ok("65536"), Ok(65536));
        assert_eq!(ok("1g"), Ok(1 << 30));
        assert!(matches!(ok("8 parsecs"), Err(SizeError::NotASize { .. })));
        assert!(matches!(ok("MiB"), Err(SizeError::NotASize { .. })));
        assert!(matches!(
            ok("18446744073709551615GiB"),
            Err(SizeError::OutOfRange { .. })
        ));
        assert!(matches!(
            ok("99999999999999999999999"),
            Err(SizeError::NotASize { .. })
        ));
        assert!(matches!(
            parse_size_bounded("1KiB", 65536, 1 << 26),
            Err(SizeError::OutOfRange { .. })
        ));
    }

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
        let got = parse_bounded("0s", Duration::from_millis(1), DAY);
        assert!(
            matches!(&got, Err(DurationError::OutOfRange { min, max, .. }) if *min == Duration::from_millis(1) && *max == DAY),
            "{got:?}"
        );
        assert_eq!(
            got.map_err(|e| e.to_string()),
            Err("\"0s\" is out of range: it must be between 1ms and 1day".to_string())
        );
        assert!(matches!(
            parse_bounded("soon", Duration::ZERO, DAY),
            Err(DurationError::NotADuration { .. })
        ));
        assert_eq!(
            parse_bounded("90m", Duration::ZERO, DAY),
            Ok(Duration::from_secs(5400))
        );
    }
}
