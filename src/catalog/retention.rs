//! Grandfather-father-son retention, with restic's `forget` semantics: the
//! rules are ORed; each rule keeps the newest point of each of its last N
//! calendar buckets that hold points (hours, days, ISO weeks, months, years,
//! in the schedule's time zone); when fewer buckets hold points than a rule
//! asks for, the oldest point is kept for it too; `keep_within` is relative to
//! the newest point. A pure function of the points and the policy: every kept
//! point comes with its reasons.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// How many of each to keep (0 = the rule is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// Keep every point within this long of the newest one.
    pub keep_within: Option<std::time::Duration>,
}

impl Policy {
    /// Whether the policy keeps anything at all (an empty one would delete
    /// everything but the newest point, and is refused).
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
            && self.keep_within.is_none()
    }

    /// One line: "last 3, hourly 24, daily 7, within 2d".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect();
        if let Some(w) = self.keep_within {
            parts.push(format!("within {}", humantime::format_duration(w)));
        }
        format!("keep {}", parts.join(", "))
    }
}

impl From<&crate::archive::manifest::RetentionRules> for Policy {
    fn from(r: &crate::archive::manifest::RetentionRules) -> Policy {
        Policy {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
            keep_within: r.keep_within_secs.map(std::time::Duration::from_secs),
        }
    }
}

impl From<&Policy> for crate::archive::manifest::RetentionRules {
    fn from(p: &Policy) -> Self {
        crate::archive::manifest::RetentionRules {
            keep_last: p.keep_last,
            keep_hourly: p.keep_hourly,
            keep_daily: p.keep_daily,
            keep_weekly: p.keep_weekly,
            keep_monthly: p.keep_monthly,
            keep_yearly: p.keep_yearly,
            keep_within_secs: p.keep_within.map(|d| d.as_secs()),
        }
    }
}

/// A point as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// When the point was taken (its start).
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub at: DateTime<Utc>,
    pub keep: bool,
    /// Why it is kept (empty when it is removed).
    pub reasons: Vec<String>,
}

#[derive(Clone, Copy)]
enum Rule {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// The calendar bucket of a time, in `tz`, as text (it reads in reasons).
    fn bucket(self, at: DateTime<Utc>, tz: Tz) -> String {
        let t = at.with_timezone(&tz);
        match self {
            Rule::Hourly => format!("{}T{:02}", t.format("%Y-%m-%d"), t.hour()),
            Rule::Daily => t.format("%Y-%m-%d").to_string(),
            Rule::Weekly => {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Rule::Monthly => t.format("%Y-%m").to_string(),
            Rule::Yearly => t.format("%Y").to_string(),
        }
    }
}

/// Decides which points to keep. `points` may come in any order; the result
/// is newest first. The newest point is always kept.
pub fn decide(points: &[Candidate], policy: &Policy, tz: Tz) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = points.iter().collect();
    sorted.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); sorted.len()];
    if let Some(r) = reasons.first_mut() {
        r.push("newest point".to_string());
    }
    for (i, r) in reasons
        .iter_mut()
        .enumerate()
        .take(policy.keep_last as usize)
    {
        r.push(format!("last {} (#{})", policy.keep_last, i + 1));
    }
    let rules = [
        (Rule::Hourly, policy.keep_hourly),
        (Rule::Daily, policy.keep_daily),
        (Rule::Weekly, policy.keep_weekly),
        (Rule::Monthly, policy.keep_monthly),
        (Rule::Yearly, policy.keep_yearly),
    ];
    for (rule, n) in rules {
        if n == 0 {
            continue;
        }
        let mut last: Option<String> = None;
        let mut kept = 0;
        for (i, p) in sorted.iter().enumerate() {
            if kept == n {
                break;
            }
            let bucket = rule.bucket(p.at, tz);
            if last.as_ref() != Some(&bucket) {
                // Buckets are cut in the policy's zone: say which, unless UTC.
                let zone = if tz == Tz::UTC {
                    String::new()
                } else {
                    format!(" ({})", tz.name())
                };
                reasons[i].push(format!("{} {bucket}{zone}", rule.name()));
                last = Some(bucket);
                kept += 1;
            }
        }
        if kept < n
            && let Some(r) = reasons.last_mut()
        {
            let why = format!(
                "oldest point, kept for {} {n} (only {kept} {} points)",
                rule.name(),
                if kept == 1 {
                    "bucket holds"
                } else {
                    "buckets hold"
                }
            );
            if !r
                .iter()
                .any(|x| x.starts_with(&format!("{} ", rule.name())))
            {
                r.push(why);
            }
        }
    }
    if let (Some(within), Some(newest)) = (policy.keep_within, sorted.first()) {
        // Rules come from manifests too: a huge `within` reaches back to the
        // beginning of time, never past it.
        let since = chrono::Duration::from_std(within)
            .ok()
            .and_then(|w| newest.at.checked_sub_signed(w))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        for (i, p) in sorted.iter().enumerate() {
            if p.at >= since {
                reasons[i].push(format!(
                    "within {} of the newest",
                    humantime::format_duration(within)
                ));
            }
        }
    }
    sorted
        .iter()
        .zip(reasons)
        .map(|(p, reasons)| Decision {
            id: p.id.clone(),
            at: p.at,
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn points(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                id: format!("p{i:02}"),
                at: at(t),
            })
            .collect()
    }

    /// The kept ids, newest first, and the removed ones.
    fn kept(d: &[Decision]) -> (Vec<&str>, Vec<&str>) {
        let keep = d.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect();
        let drop = d
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.id.as_str())
            .collect();
        (keep, drop)
    }

    fn render(d: &[Decision]) -> String {
        d.iter()
            .map(|d| {
                format!(
                    "{} {} {}",
                    d.at.format("%Y-%m-%dT%H:%MZ"),
                    if d.keep { "keep  " } else { "remove" },
                    d.reasons.join("; ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn rules_are_ored_and_every_keep_has_its_reasons() {
        let p = points(&[
            "2026-11-20T02:00:00Z",
            "2026-11-21T02:00:00Z",
            "2026-11-21T14:00:00Z",
            "2026-11-22T02:00:00Z",
            "2026-11-22T03:00:00Z",
        ]);
        let policy = Policy {
            keep_last: 2,
            keep_daily: 2,
            ..Policy::default()
        };
        let d = decide(&p, &policy, Tz::UTC);
        insta::assert_snapshot!(render(&d));
        assert_eq!(kept(&d), (vec!["p04", "p03", "p02"], vec!["p01", "p00"]));
    }

    #[test]
    fn calendar_buckets_at_the_awkward_dates() {
        type Case<'a> = (
            &'a str,
            Policy,
            &'a [&'a str],
            (&'a [&'a str], &'a [&'a str]),
        );
        let monthly = |n| Policy {
            keep_monthly: n,
            ..Policy::default()
        };
        let weekly = |n| Policy {
            keep_weekly: n,
            ..Policy::default()
        };
        let daily = |n| Policy {
            keep_daily: n,
            ..Policy::default()
        };
        let yearly = |n| Policy {
            keep_yearly: n,
            ..Policy::default()
        };
        let cases: &[Case] = &[
            // Month ends: 31 Jan and 1 Feb are different months; 29 Feb of a leap year is February.
            (
                "month ends and a leap day",
                monthly(3),
                &[
                    "2028-01-31T23:00:00Z",
                    "2028-02-01T01:00:00Z",
                    "2028-02-29T12:00:00Z",
                    "2028-03-01T00:30:00Z",
                ],
                (&["p03", "p02", "p00"], &["p01"]),
            ),
            // 29 Dec 2026 - 3 Jan 2027 is ISO week 2026-W53; 4 Jan 2027 starts 2027-W01.
            (
                "ISO week 53 across the new year",
                weekly(2),
                &[
                    "2026-12-28T10:00:00Z",
                    "2026-12-31T10:00:00Z",
                    "2027-01-03T10:00:00Z",
                    "2027-01-04T10:00:00Z",
                ],
                (&["p03", "p02"], &["p01", "p00"]),
            ),
            // Yearly: 31 Dec and 1 Jan are different years, even within a week.
            (
                "years",
                yearly(5),
                &[
                    "2026-12-31T10:00:00Z",
                    "2027-01-01T10:00:00Z",
                    "2027-06-01T10:00:00Z",
                ],
                (&["p02", "p00"], &["p01"]),
            ),
            // Only days that hold points count: three points on days far apart fill daily 3.
            (
                "only buckets that hold points count",
                daily(3),
                &[
                    "2026-01-01T00:00:00Z",
                    "2026-06-01T00:00:00Z",
                    "2026-11-01T00:00:00Z",
                    "2026-11-01T06:00:00Z",
                ],
                (&["p03", "p01", "p00"], &["p02"]),
            ),
            // Fewer buckets than asked: the oldest point fills the unmet count.
            (
                "the oldest fills an unmet count",
                daily(7),
                &[
                    "2026-11-20T01:00:00Z",
                    "2026-11-20T05:00:00Z",
                    "2026-11-21T05:00:00Z",
                ],
                (&["p02", "p01", "p00"], &[]),
            ),
        ];
        for (name, policy, times, want) in cases {
            let d = decide(&points(times), policy, Tz::UTC);
            let (keep, drop) = kept(&d);
            assert_eq!(
                (keep.as_slice(), drop.as_slice()),
                (want.0, want.1),
                "{name}:\n{}",
                render(&d)
            );
        }
    }

    #[test]
    fn days_are_the_schedules_days_across_a_dst_change() {
        // Europe/Berlin leaves summer time on 25 Oct 2026 at 03:00 CEST (01:00 UTC).
        // 22:30 UTC on the 24th is 00:30 CEST on the 25th; 23:30 UTC on the 25th is
        // 00:30 CET on the 26th: in Berlin these are different days, in UTC not.
        let p = points(&[
            "2026-10-24T21:30:00Z",
            "2026-10-24T22:30:00Z",
            "2026-10-25T23:30:00Z",
        ]);
        let policy = Policy {
            keep_daily: 3,
            ..Policy::default()
        };
        let berlin = decide(&p, &policy, chrono_tz::Europe::Berlin);
        assert_eq!(
            kept(&berlin).0,
            vec!["p02", "p01", "p00"],
            "{}",
            render(&berlin)
        );
        assert!(
            berlin[1]
                .reasons
                .iter()
                .any(|r| r == "daily 2026-10-25 (Europe/Berlin)"),
            "{}",
            render(&berlin)
        );
        let utc = decide(
            &p,
            &Policy {
                keep_daily: 2,
                ..Policy::default()
            },
            Tz::UTC,
        );
        assert_eq!(kept(&utc).0, vec!["p02", "p01"], "{}", render(&utc));
    }

    #[test]
    fn keep_within_is_relative_to_the_newest_point() {
        // The newest point is old: keep_within counts back from it, not from now.
        let p = points(&[
            "2020-01-01T00:00:00Z",
            "2020-01-05T00:00:00Z",
            "2020-01-07T00:00:00Z",
        ]);
        let policy = Policy {
            keep_within: Some(std::time::Duration::from_secs(3 * 86_400)),
            ..Policy::default()
        };
        assert_eq!(
            kept(&decide(&p, &policy, Tz::UTC)),
            (vec!["p02", "p01"], vec!["p00"])
        );
    }

    #[test]
    fn the_newest_point_is_always_kept_and_an_empty_policy_is_empty() {
        let p = points(&["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]);
        let d = decide(
            &p,
            &Policy {
                keep_last: 0,
                ..Policy::default()
            },
            Tz::UTC,
        );
        assert_eq!(kept(&d), (vec!["p01"], vec!["p00"]));
        assert!(Policy::default().is_empty());
        assert!(
            !Policy {
                keep_weekly: 1,
                ..Policy::default()
            }
            .is_empty()
        );
    }
}
