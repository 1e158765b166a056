//! Standard 5-field crontab lines (`minute hour day-of-month month
//! day-of-week`, plus `@hourly`, `@daily`, `@weekly`, `@monthly`,
//! `@yearly`), checked field by field so an error quotes the bad field and
//! where it is, then evaluated with `croner` in the schedule's time zone.
//!
//! Why croner: it has crontab semantics (day of week 0 and 7 are Sunday, a
//! restricted day-of-month and day-of-week match either), handles time zones,
//! and from 4.0.3 on does not fire twice in the hour before a DST gap. The
//! `cron` crate wants 6 or 7 fields and counts weekdays the Quartz way
//! (1 = Sunday), so a crontab line copied into it fires on the wrong day.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// A crontab line that cannot be used, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// Character offset of the bad part in the line.
    pub offset: usize,
    pub message: String,
}

/// A checked crontab line.
#[derive(Debug, Clone)]
pub struct Cron {
    pub line: String,
    cron: croner::Cron,
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn alias(line: &str) -> Option<&'static str> {
    Some(match line {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        _ => return None,
    })
}

/// What is wrong with one field of a crontab line (`name` is the field's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{name} {value:?} is not a number{names}")]
    NotANumber {
        name: &'static str,
        value: String,
        /// The names the field takes besides numbers, said after it.
        names: &'static str,
    },
    #[error("{name} {n} is out of range {lo}-{hi}")]
    OutOfRange {
        name: &'static str,
        n: u32,
        lo: u32,
        hi: u32,
    },
    #[error("{name} step {step:?} in {item:?} is not a number above 0")]
    BadStep {
        name: &'static str,
        step: String,
        item: String,
    },
    #[error("{name} {item:?}: a step needs a range (`*/n` or `a-b/n`); `a/n` is not crontab")]
    StepWithoutRange { name: &'static str, item: String },
    #[error("{name} has an empty item in {text:?}")]
    EmptyItem { name: &'static str, text: String },
    #[error("{name} range {range:?} runs backwards")]
    Backwards { name: &'static str, range: String },
}

/// One value of a field: a number in range, or a month or weekday name.
fn value(field: usize, v: &str) -> Result<u32, FieldError> {
    let (name, lo, hi) = FIELDS[field];
    let upper = v.to_ascii_uppercase();
    let named = match field {
        3 => MONTHS
            .iter()
            .position(|m| *m == upper)
            .map(|i| i as u32 + 1),
        4 => DAYS.iter().position(|d| *d == upper).map(|i| i as u32),
        _ => None,
    };
    let n = match named {
        Some(n) => n,
        None => v.parse::<u32>().map_err(|_| FieldError::NotANumber {
            name,
            value: v.to_string(),
            names: match field {
                3 => " or a month name (JAN-DEC)",
                4 => " or a weekday name (SUN-SAT)",
                _ => "",
            },
        })?,
    };
    if n < lo || n > hi {
        return Err(FieldError::OutOfRange { name, n, lo, hi });
    }
    Ok(n)
}

/// Checks one field: `*`, `*/n`, `a`, `a-b`, `a-b/n`, or a comma list of them.
fn check_field(field: usize, text: &str) -> Result<(), FieldError> {
    let name = FIELDS[field].0;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(s) = step {
            let ok = s.parse::<u32>().is_ok_and(|n| n > 0);
            if !ok {
                return Err(FieldError::BadStep {
                    name,
                    step: s.to_string(),
                    item: item.to_string(),
                });
            }
            if range != "*" && !range.contains('-') {
                return Err(FieldError::StepWithoutRange {
                    name,
                    item: item.to_string(),
                });
            }
        }
        match range {
            "*" => {}
            "" => {
                return Err(FieldError::EmptyItem {
                    name,
                    text: text.to_string(),
                });
            }
            r => match r.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (value(field, a)?, value(field, b)?);
                    if a > b {
                        return Err(FieldError::Backwards {
                            name,
                            range: r.to_string(),
                        });
                    }
                }
                None => {
                    value(field, r)?;
                }
            },
        }
    }
    Ok(())
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(line: &str) -> Result<Cron, CronError> {
        let trimmed = line.trim();
        let lead = line.len() - line.trim_start().len();
        let expanded = if trimmed.starts_with('@') {
            alias(trimmed).ok_or_else(|| CronError {
                offset: lead,
                message: format!(
                    "{trimmed:?} is not one of @hourly, @daily, @weekly, @monthly, @yearly"
                ),
            })?
        } else {
            trimmed
        };
        // Offsets of each field in the line, for errors.
        let mut fields = Vec::new();
        let mut pos = 0;
        for part in expanded.split_whitespace() {
            let at = expanded[pos..].find(part).map_or(pos, |i| pos + i);
            fields.push((at, part));
            pos = at + part.len();
        }
        if fields.len() != 5 {
            return Err(CronError {
                offset: lead,
                message: format!(
                    "a crontab line has 5 fields (minute hour day-of-month month day-of-week), this one has {}{}",
                    fields.len(),
                    if fields.len() == 6 {
                        ": drtool takes no seconds field"
                    } else {
                        ""
                    }
                ),
            });
        }
        for (i, (at, text)) in fields.iter().enumerate() {
            check_field(i, text).map_err(|m| CronError {
                offset: if trimmed.starts_with('@') {
                    lead
                } else {
                    lead + at
                },
                message: format!("field {} ({}): {m}", i + 1, FIELDS[i].0),
            })?;
        }
        let cron = croner::Cron::from_str(expanded).map_err(|e| CronError {
            offset: lead,
            message: format!("{e}"),
        })?;
        // A line whose fields name no date that exists (day 30 of February,
        // day 31 of April) would pass every field check and never run.
        let from = Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let fires = cron
            .find_next_occurrence(&from, false)
            .is_ok_and(|t| t.year() < 2000 + 29);
        if !fires {
            return Err(CronError {
                offset: lead,
                message: format!(
                    "{trimmed:?} never fires: its day-of-month and month name no date that exists (like 30 February or 31 April); fix the day or the month"
                ),
            });
        }
        Ok(Cron {
            line: trimmed.to_string(),
            cron,
        })
    }
}

/// A run that DST moves or repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DstNote {
    /// The local time the line names.
    pub local: String,
    pub note: String,
}

impl Cron {
    /// The next `n` runs after `from`, in `tz`.
    pub fn next_runs(&self, from: DateTime<Utc>, tz: Tz, n: usize) -> Vec<DateTime<Tz>> {
        let mut out = Vec::new();
        let mut t = from.with_timezone(&tz);
        for _ in 0..n {
            match self.cron.find_next_occurrence(&t, false) {
                Ok(next) => {
                    out.push(next);
                    t = next;
                }
                Err(_) => break,
            }
        }
        out
    }

    /// The most recent run at or before `at`, in `tz`.
    pub fn previous_run(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Tz>> {
        self.cron
            .find_previous_occurrence(&at.with_timezone(&tz), true)
            .ok()
    }

    /// Whether the line names this local wall-clock minute.
    fn names(&self, local: NaiveDateTime) -> bool {
        // croner matches fields; a UTC time with the same fields asks it.
        self.cron
            .is_time_matching(&Utc.from_utc_datetime(&local))
            .unwrap_or(false)
    }

    /// The local times between `from` and `to` that the line names but DST
    /// skips (a gap) or that happen twice (an overlap).
    pub fn dst_notes(&self, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> Vec<DstNote> {
        let mut out = Vec::new();
        // The walk starts at a whole UTC hour, so the notes do not depend on
        // the minute it is run at.
        let mut t = from
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(from);
        while t < to {
            let next = t + Duration::hours(1);
            let (a, b) = (t.with_timezone(&tz), next.with_timezone(&tz));
            let shift = (b.naive_local() - a.naive_local()) - Duration::hours(1);
            if !shift.is_zero() {
                // The clock jumps by `shift` in this hour: walk every local
                // minute it can touch, from an hour before (zones whose
                // offsets or jumps are half hours) to an hour after.
                let start = a.naive_local().with_second(0).unwrap_or(a.naive_local())
                    - Duration::minutes(60);
                for m in 0..(180 + shift.num_minutes().abs()) {
                    let local = start + Duration::minutes(m);
                    if !self.names(local) {
                        continue;
                    }
                    match tz.from_local_datetime(&local) {
                        chrono::LocalResult::None => out.push(DstNote {
                            local: local.format("%Y-%m-%d %H:%M").to_string(),
                            note: "falls in a DST gap: that local time does not exist that day, the run happens after the clocks jump".into(),
                        }),
                        chrono::LocalResult::Ambiguous(_, _) => out.push(DstNote {
                            local: local.format("%Y-%m-%d %H:%M").to_string(),
                            note: "falls in a DST overlap: that local time happens twice, the run happens once".into(),
                        }),
                        chrono::LocalResult::Single(_) => {}
                    }
                }
            }
            t = next;
        }
        out.sort_by(|x, y| x.local.cmp(&y.local));
        out.dedup();
        out
    }

    /// The usual time between two runs (the first two after `from`).
    pub fn interval(&self, from: DateTime<Utc>, tz: Tz) -> Option<std::time::Duration> {
        let runs = self.next_runs(from, tz, 2);
        match runs.as_slice() {
            [a, b] => (*b - *a).to_std().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn cron(s: &str) -> Cron {
        s.parse()
            .unwrap_or_else(|e: CronError| panic!("{s}: {}", e.message))
    }

    #[test]
    fn each_bad_field_says_which_rule_it_broke() {
        use FieldError::*;
        let s = str::to_string;
        let cases = [
            (
                0,
                "60",
                OutOfRange {
                    name: "minute",
                    n: 60,
                    lo: 0,
                    hi: 59,
                },
            ),
            (
                3,
                "FOO",
                NotANumber {
                    name: "month",
                    value: s("FOO"),
                    names: " or a month name (JAN-DEC)",
                },
            ),
            (
                1,
                "*/0",
                BadStep {
                    name: "hour",
                    step: s("0"),
                    item: s("*/0"),
                },
            ),
            (
                1,
                "5/2",
                StepWithoutRange {
                    name: "hour",
                    item: s("5/2"),
                },
            ),
            (
                2,
                "1,,2",
                EmptyItem {
                    name: "day of month",
                    text: s("1,,2"),
                },
            ),
            (
                4,
                "FRI-MON",
                Backwards {
                    name: "day of week",
                    range: s("FRI-MON"),
                },
            ),
        ];
        for (field, text, want) in cases {
            assert_eq!(check_field(field, text), Err(want), "{text}");
        }
    }

    fn next(line: &str, from: &str, tz: Tz, n: usize) -> Vec<String> {
        cron(line)
            .next_runs(utc(from), tz, n)
            .iter()
            .map(|t| t.format("%a %Y-%m-%d %H:%M %Z").to_string())
            .collect()
    }

    #[test]
    fn random_lines_in_random_zones_never_panic_and_run_forward() {
        let mut seed: u64 = 0xdead_beef_cafe_f00d;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        let zones: Vec<Tz> = chrono_tz::TZ_VARIANTS.to_vec();
        let pieces = [
            "*", "*/7", "0", "59", "1-5", "5-1", "1,2,3", "60", "32", "13", "*/0", "MON", "FEB",
            "7", "", "a", "0-23/4", "L", "?",
        ];
        for _ in 0..3000 {
            let fields: Vec<&str> = (0..(3 + next(4)))
                .map(|_| pieces[next(pieces.len() as u64) as usize])
                .collect();
            let line = fields.join(" ");
            let tz = zones[next(zones.len() as u64) as usize];
            let Ok(c) = line.parse::<Cron>() else {
                continue;
            };
            let from = Utc
                .timestamp_opt(1_700_000_000 + next(400_000_000) as i64, 0)
                .single()
                .unwrap_or_default();
            let runs = c.next_runs(from, tz, 3);
            assert!(
                runs.windows(2).all(|w| w[0] < w[1]),
                "{line} in {tz}: {runs:?}"
            );
            assert!(
                runs.first().is_none_or(|r| r.with_timezone(&Utc) > from),
                "{line} in {tz}"
            );
            let _ = c.dst_notes(from, from + Duration::days(40), tz);
        }
    }

    #[test]
    fn lines_that_never_fire_are_refused() {
        for line in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"] {
            let started = std::time::Instant::now();
            let e = line
                .parse::<Cron>()
                .err()
                .map(|e| e.message)
                .unwrap_or_default();
            assert!(e.contains("never fires"), "{line}: {e}");
            // Bounded, not fast: a search without an end would never return.
            // (Speed is for benchmarks; a loaded CI machine takes seconds.)
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{line}: the search for a next run did not end"
            );
        }
        // 29 February fires every four years; a weekday makes 31 April fire.
        assert!("0 0 29 2 *".parse::<Cron>().is_ok());
        assert!("0 0 31 4 MON".parse::<Cron>().is_ok());
    }

    #[test]
    fn crontab_day_of_week_semantics() {
        // 2026-11-29 is a Sunday.
        let from = "2026-11-28T12:00:00Z";
        assert_eq!(
            next("0 9 * * 0", from, Tz::UTC, 1),
            ["Sun 2026-11-29 09:00 UTC"]
        );
        assert_eq!(
            next("0 9 * * 7", from, Tz::UTC, 1),
            ["Sun 2026-11-29 09:00 UTC"],
            "7 is Sunday too"
        );
        assert_eq!(
            next("0 9 * * 1-5", from, Tz::UTC, 5),
            [
                "Mon 2026-11-30 09:00 UTC",
                "Tue 2026-12-01 09:00 UTC",
                "Wed 2026-12-02 09:00 UTC",
                "Thu 2026-12-03 09:00 UTC",
                "Fri 2026-12-04 09:00 UTC",
            ],
            "1-5 is Monday to Friday"
        );
        assert_eq!(
            next("0 9 * * MON", from, Tz::UTC, 1),
            ["Mon 2026-11-30 09:00 UTC"]
        );
        // A restricted day of month and day of week match either (crontab's OR).
        assert_eq!(
            next("0 0 1 * 1", "2026-11-28T12:00:00Z", Tz::UTC, 2),
            ["Mon 2026-11-30 00:00 UTC", "Tue 2026-12-01 00:00 UTC"]
        );
    }

    #[test]
    fn aliases_and_time_zones() {
        let from = "2026-11-28T12:34:00Z";
        assert_eq!(
            next("@hourly", from, Tz::UTC, 1),
            ["Sat 2026-11-28 13:00 UTC"]
        );
        assert_eq!(
            next("@daily", from, Tz::UTC, 1),
            ["Sun 2026-11-29 00:00 UTC"]
        );
        assert_eq!(
            next("@weekly", from, Tz::UTC, 1),
            ["Sun 2026-11-29 00:00 UTC"]
        );
        assert_eq!(
            next("@monthly", from, Tz::UTC, 1),
            ["Tue 2026-12-01 00:00 UTC"]
        );
        assert_eq!(
            next("30 2 * * *", from, chrono_tz::America::New_York, 1),
            ["Sun 2026-11-29 02:30 EST"]
        );
        let c = cron("*/15 * * * *");
        assert_eq!(
            c.interval(utc(from), Tz::UTC),
            Some(std::time::Duration::from_secs(900))
        );
    }

    #[test]
    fn a_bad_field_is_quoted_with_its_position() {
        let cases = [
            (
                "0 25 * * *",
                2,
                "field 2 (hour): hour 25 is out of range 0-23",
            ),
            (
                "0 0 * * * *",
                0,
                "this one has 6: drtool takes no seconds field",
            ),
            ("0 0 * *", 0, "this one has 4"),
            (
                "*/0 * * * *",
                0,
                "step \"0\" in \"*/0\" is not a number above 0",
            ),
            (
                "0 0 * FOO *",
                6,
                "month \"FOO\" is not a number or a month name",
            ),
            ("0 0 * * 8", 8, "day of week 8 is out of range 0-7"),
            ("0 9-5 * * *", 2, "range \"9-5\" runs backwards"),
            ("5/10 * * * *", 0, "a step needs a range"),
            ("0 0 L * *", 4, "day of month \"L\" is not a number"),
            ("@often", 0, "is not one of @hourly"),
        ];
        for (line, offset, message) in cases {
            let err = line
                .parse::<Cron>()
                .err()
                .unwrap_or_else(|| panic!("{line} accepted"));
            assert!(err.message.contains(message), "{line}: {}", err.message);
            assert_eq!(err.offset, offset, "{line}: {}", err.message);
        }
    }

    #[test]
    fn dst_notes_do_not_depend_on_the_minute_the_walk_starts() {
        // Whatever minute `schedule list` runs at, the same notes.
        let zones = [
            chrono_tz::Europe::Berlin,
            chrono_tz::America::St_Johns,
            chrono_tz::Australia::Lord_Howe,
        ];
        for tz in zones {
            for line in ["0,15,30,45 * * * *", "30 2 * * *", "59 1 * * *"] {
                let c = cron(line);
                let at = |from: DateTime<Utc>| c.dst_notes(from, from + Duration::days(366), tz);
                let base = at(utc("2026-01-01T00:00:00Z"));
                for minute in [1, 17, 37, 59] {
                    let from = utc("2026-01-01T00:00:00Z") + Duration::minutes(minute);
                    assert_eq!(at(from), base, "{line} in {tz} from {from}");
                }
            }
        }
        // The Berlin overlap is found from any minute before it.
        let c = cron("0,15,30,45 * * * *");
        for minute in 0..60 {
            let from = utc("2026-10-24T23:00:00Z") + Duration::minutes(minute);
            let notes = c.dst_notes(from, from + Duration::days(2), chrono_tz::Europe::Berlin);
            assert_eq!(notes.len(), 4, "from {from}: {notes:?}");
        }
    }

    #[test]
    fn dst_gaps_and_overlaps_are_flagged() {
        let berlin = chrono_tz::Europe::Berlin;
        // 29 Mar 2026: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist.
        let gap = cron("30 2 * * *").dst_notes(
            utc("2026-03-28T00:00:00Z"),
            utc("2026-03-30T00:00:00Z"),
            berlin,
        );
        assert_eq!(gap.len(), 1, "{gap:?}");
        assert_eq!(gap[0].local, "2026-03-29 02:30");
        assert!(gap[0].note.contains("DST gap"));
        // 25 Oct 2026: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
        let overlap = cron("30 2 * * *").dst_notes(
            utc("2026-10-24T00:00:00Z"),
            utc("2026-10-26T00:00:00Z"),
            berlin,
        );
        assert_eq!(overlap.len(), 1, "{overlap:?}");
        assert!(overlap[0].note.contains("DST overlap"));
        // A run at 04:00 is untouched; UTC has no DST.
        assert!(
            cron("0 4 * * *")
                .dst_notes(
                    utc("2026-03-28T00:00:00Z"),
                    utc("2026-03-30T00:00:00Z"),
                    berlin
                )
                .is_empty()
        );
        assert!(
            cron("30 2 * * *")
                .dst_notes(
                    utc("2026-03-28T00:00:00Z"),
                    utc("2026-03-30T00:00:00Z"),
                    Tz::UTC
                )
                .is_empty()
        );
        // croner runs the gap's run once, after the jump, and the overlap's once.
        let runs = cron("30 2 * * *").next_runs(utc("2026-03-28T12:00:00Z"), berlin, 2);
        assert_eq!(runs.len(), 2);
        assert!(runs[0].format("%Y-%m-%d").to_string() == "2026-03-29");
        let back = cron("30 2 * * *").next_runs(utc("2026-10-24T12:00:00Z"), berlin, 2);
        assert_ne!(
            back[0].format("%Y-%m-%d").to_string(),
            back[1].format("%Y-%m-%d").to_string(),
            "{back:?}"
        );
    }
}
