//! `schedules/*.toml`: when to back up what, where to copy it, how long to
//! keep it and how to check it. Parsed strictly (unknown fields are errors
//! with file:line:column), checked against the config, and refused when the
//! retention policy is empty or two files use one name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::cron::Cron;
use crate::catalog::retention::Policy;
use crate::config::duration::{CENTURY, DAY};
use crate::config::{Config, Location};

/// A schedule file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ScheduleError {
    pub location: Location,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: Spanned<String>,
    cron: Spanned<String>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    targets: Vec<Spanned<String>>,
    /// Targets whose labels match all of these.
    select: Option<Spanned<BTreeMap<String, String>>>,
    copy_to: Option<Vec<Spanned<String>>>,
    retention: Spanned<RawRetention>,
    #[serde(default)]
    verify: Option<RawVerify>,
    jitter: Option<Spanned<String>>,
    start_window: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    missed: Option<Spanned<String>>,
    #[serde(default)]
    paused: bool,
    notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(default)]
    keep_last: u32,
    #[serde(default)]
    keep_hourly: u32,
    #[serde(default)]
    keep_daily: u32,
    #[serde(default)]
    keep_weekly: u32,
    #[serde(default)]
    keep_monthly: u32,
    #[serde(default)]
    keep_yearly: u32,
    keep_within: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    /// Download the newest point and check every hash, at most this often.
    hash_every: Option<Spanned<String>>,
    /// Restore the newest point into a scratch target and check it, at most this often.
    restore_test_every: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    /// POSTed on a failure and on the first success after one.
    webhook: Spanned<String>,
    /// `json` (default) or `slack`.
    format: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// After downtime, run once for everything missed.
    RunOnce,
    /// After downtime, wait for the next time.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    Json,
    Slack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notify {
    pub webhook: String,
    pub format: WebhookFormat,
}

/// A checked schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub file: PathBuf,
    pub name: String,
    #[serde(serialize_with = "cron_line")]
    pub cron: Cron,
    #[serde(serialize_with = "tz_name")]
    pub timezone: Tz,
    /// The targets it backs up, resolved (names or the selector).
    pub targets: Vec<String>,
    /// Regions to copy to instead of each target's `copy_to`.
    pub copy_to: Option<Vec<String>>,
    pub retention: Policy,
    pub hash_every: Option<Duration>,
    pub restore_test_every: Option<Duration>,
    pub jitter: Duration,
    pub start_window: Duration,
    pub timeout: Duration,
    pub missed: Missed,
    pub paused: bool,
    pub notify: Option<Notify>,
    /// What is right enough to run but worth saying (`schedule check` and
    /// `list` print them): a `select` that matches nothing beside `targets`.
    pub warnings: Vec<String>,
}

fn cron_line<S: serde::Serializer>(c: &Cron, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.line)
}

fn tz_name<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// Default: give up on a run that cannot start within an hour of its time.
const START_WINDOW: Duration = Duration::from_secs(3600);
/// Default: a run may take six hours.
const TIMEOUT: Duration = Duration::from_secs(6 * 3600);

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    config: &'a Config,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> ScheduleError {
        ScheduleError {
            location: Location::of(self.file, self.text, offset),
            message: message.into(),
        }
    }

    /// A duration within `(min, max)`: bounded where it is read, so no
    /// lock lifetime, jitter or deadline computed from it can overflow.
    fn duration(
        &self,
        v: &Spanned<String>,
        what: &str,
        (min, max): (Duration, Duration),
    ) -> Result<Duration, ScheduleError> {
        crate::config::duration::parse_bounded(v.get_ref(), min, max)
            .map_err(|e| self.err(v.span().start, format!("{what} {e}")))
    }

    /// The schedule's name: it names locks, metrics and a CronJob.
    fn name(&self, raw: &Spanned<String>) -> Result<String, ScheduleError> {
        let name = raw.get_ref();
        let name_ok = !name.is_empty()
            && name.len() <= 45
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            && !name.starts_with('-');
        if !name_ok {
            return Err(self.err(
                raw.span().start,
                format!(
                    "name {name:?} must be 1 to 45 lowercase letters, digits and '-' (it names locks, metrics and the CronJob drtool-NAME, which Kubernetes limits to 52)"
                ),
            ));
        }
        Ok(name.clone())
    }

    /// The targets named and those `select` matches (a warning when it
    /// matches none today).
    fn targets(
        &self,
        raw: &RawSchedule,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<String>, ScheduleError> {
        let mut targets = Vec::new();
        for t in &raw.targets {
            if self.config.target(t.get_ref()).is_none() {
                let known: Vec<&str> = self.config.targets.keys().map(String::as_str).collect();
                return Err(self.err(
                    t.span().start,
                    format!(
                        "unknown target {:?} (the config defines {})",
                        t.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
            targets.push(t.get_ref().clone());
        }
        if let Some(sel) = &raw.select {
            let matched: Vec<String> = self
                .config
                .targets
                .values()
                .filter(|t| {
                    sel.get_ref()
                        .iter()
                        .all(|(k, v)| t.labels.get(k) == Some(v))
                })
                .map(|t| t.name.clone())
                .collect();
            if matched.is_empty() && targets.is_empty() {
                return Err(self.err(
                    sel.span().start,
                    "select matches no target: give targets `labels = { ... }` in the config, or name them in `targets`",
                ));
            }
            if matched.is_empty() {
                // The named targets still run; a label added later joins them.
                warnings.push(format!(
                    "select {} matches no target today: only the targets named run ({})",
                    sel.get_ref()
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    targets.join(", ")
                ));
            }
            for t in matched {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        if targets.is_empty() {
            return Err(self.err(
                raw.name.span().start,
                "the schedule backs up nothing: name `targets = [...]` or `select = { label = \"value\" }`",
            ));
        }
        Ok(targets)
    }

    /// The `[retention]` table, which must keep something.
    fn retention(&self, raw: &Spanned<RawRetention>) -> Result<Policy, ScheduleError> {
        let r = raw.get_ref();
        let retention = Policy {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
            keep_within: r
                .keep_within
                .as_ref()
                .map(|w| self.duration(w, "keep_within", (Duration::from_secs(1), CENTURY)))
                .transpose()?,
        };
        if retention.is_empty() {
            return Err(self.err(
                raw.span().start,
                "[retention] keeps nothing: set at least one of keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within",
            ));
        }
        Ok(retention)
    }

    /// What a run missed during downtime does.
    fn missed(&self, raw: Option<&Spanned<String>>) -> Result<Missed, ScheduleError> {
        Ok(match raw {
            None => Missed::RunOnce,
            Some(m) => match m.get_ref().as_str() {
                "run_once" => Missed::RunOnce,
                "skip" => Missed::Skip,
                other => {
                    return Err(self.err(
                        m.span().start,
                        format!("missed {other:?} is not \"run_once\" or \"skip\""),
                    ));
                }
            },
        })
    }

    /// The `[notify]` webhook and its format.
    fn notify(&self, n: &RawNotify) -> Result<Notify, ScheduleError> {
        let ok = url::Url::parse(n.webhook.get_ref())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(self.err(
                n.webhook.span().start,
                format!(
                    "notify.webhook {:?} is not an http(s) URL",
                    n.webhook.get_ref()
                ),
            ));
        }
        let format = match n.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("json") => WebhookFormat::Json,
            Some("slack") => WebhookFormat::Slack,
            Some(other) => {
                return Err(self.err(
                    n.format.as_ref().map_or(0, |f| f.span().start),
                    format!("notify.format {other:?} is not \"json\" or \"slack\""),
                ));
            }
        };
        Ok(Notify {
            webhook: n.webhook.get_ref().clone(),
            format,
        })
    }

    fn region(&self, r: &Spanned<String>) -> Result<String, ScheduleError> {
        if self.config.region(r.get_ref()).is_some() {
            return Ok(r.get_ref().clone());
        }
        let known: Vec<&str> = self.config.regions.keys().map(String::as_str).collect();
        Err(self.err(
            r.span().start,
            format!(
                "unknown region {:?} (the config defines {})",
                r.get_ref(),
                known.join(", ")
            ),
        ))
    }
}

/// Reads one schedule file.
pub fn load(file: &Path, config: &Config) -> Result<Schedule, ScheduleError> {
    let text = std::fs::read_to_string(file).map_err(|e| ScheduleError {
        location: Location {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
        },
        message: format!("cannot read the schedule: {e}"),
    })?;
    parse(&text, file, config)
}

/// Reads every `*.toml` of a folder; names must be unique across files.
pub fn load_dir(dir: &Path, config: &Config) -> Result<Vec<Schedule>, ScheduleError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ScheduleError {
            location: Location {
                file: dir.to_path_buf(),
                line: 0,
                column: 0,
            },
            message: format!("cannot read the schedules folder: {e}"),
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out: Vec<Schedule> = Vec::new();
    for f in files {
        let s = load(&f, config)?;
        if let Some(first) = out.iter().find(|o| o.name == s.name) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let at = text.find("name").unwrap_or(0);
            return Err(ScheduleError {
                location: Location::of(&f, &text, at),
                message: format!(
                    "schedule name {:?} is already used by {}: names must be unique",
                    s.name,
                    first.file.display()
                ),
            });
        }
        out.push(s);
    }
    Ok(out)
}

pub fn parse(text: &str, file: &Path, config: &Config) -> Result<Schedule, ScheduleError> {
    let c = Ctx { file, text, config };
    let raw: RawSchedule = toml::from_str(text).map_err(|e| {
        c.err(
            e.span().map_or(0, |s| s.start),
            e.message().trim_end().replace('\n', ": "),
        )
    })?;
    let name = c.name(&raw.name)?;
    // The value's span includes its opening quote.
    let cron: Cron = raw
        .cron
        .get_ref()
        .parse()
        .map_err(|e: super::cron::CronError| {
            c.err(
                raw.cron.span().start + 1 + e.offset,
                format!("cron {:?}: {}", raw.cron.get_ref(), e.message),
            )
        })?;
    let timezone = match &raw.timezone {
        None => Tz::UTC,
        Some(t) => t.get_ref().parse::<Tz>().map_err(|_| {
            c.err(
                t.span().start,
                format!(
                    "timezone {:?} is not an IANA time zone name (e.g. \"Europe/Berlin\", \"America/New_York\", \"UTC\")",
                    t.get_ref()
                ),
            )
        })?,
    };
    let mut warnings = Vec::new();
    let targets = c.targets(&raw, &mut warnings)?;
    let copy_to = match &raw.copy_to {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|r| c.region(r))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let retention = c.retention(&raw.retention)?;
    let verify = raw.verify.as_ref();
    let every = |v: Option<&Spanned<String>>, what| {
        v.map(|v| c.duration(v, what, (Duration::from_secs(60), CENTURY)))
            .transpose()
    };
    let missed = c.missed(raw.missed.as_ref())?;
    let notify = raw.notify.as_ref().map(|n| c.notify(n)).transpose()?;
    Ok(Schedule {
        warnings,
        file: file.to_path_buf(),
        name,
        cron,
        timezone,
        targets,
        copy_to,
        retention,
        hash_every: every(
            verify.and_then(|v| v.hash_every.as_ref()),
            "verify.hash_every",
        )?,
        restore_test_every: every(
            verify.and_then(|v| v.restore_test_every.as_ref()),
            "verify.restore_test_every",
        )?,
        jitter: raw
            .jitter
            .as_ref()
            .map(|j| c.duration(j, "jitter", (Duration::ZERO, DAY)))
            .transpose()?
            .unwrap_or_default(),
        start_window: raw
            .start_window
            .as_ref()
            .map(|j| c.duration(j, "start_window", (Duration::from_secs(1), 7 * DAY)))
            .transpose()?
            .unwrap_or(START_WINDOW),
        timeout: raw
            .timeout
            .as_ref()
            .map(|j| c.duration(j, "timeout", (Duration::from_secs(1), 7 * DAY)))
            .transpose()?
            .unwrap_or(TIMEOUT),
        missed,
        paused: raw.paused,
        notify,
    })
}

impl Schedule {
    /// The retention its points are made under, recorded in their manifests.
    pub fn point_retention(&self) -> crate::archive::manifest::PointRetention {
        crate::archive::manifest::PointRetention {
            policy: self.name.clone(),
            rules: (&self.retention).into(),
            timezone: self.timezone.name().to_string(),
            expires_at: None,
        }
    }
}

/// The schedules that back up `target`.
pub fn of_target<'a>(schedules: &'a [Schedule], target: &str) -> Vec<&'a Schedule> {
    schedules
        .iter()
        .filter(|s| s.targets.iter().any(|t| t == target))
        .collect()
}

/// Every target some schedule covers.
pub fn covered(schedules: &[Schedule]) -> BTreeSet<String> {
    schedules
        .iter()
        .flat_map(|s| s.targets.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[regions.us-east-1]
store = "file:///tmp/drtool-sched-east"
[regions.us-west-2]
store = "file:///tmp/drtool-sched-west"

[targets.kv]
kind = "etcd"
mode = "keys"
home = "us-east-1"
labels = { tier = "prod" }
[targets.kv.regions.us-east-1]
endpoints = ["http://127.0.0.1:12379"]
"#;

    const GOOD: &str = r#"name = "kv-hourly"
cron = "0 * * * *"
timezone = "Europe/Berlin"
targets = ["kv"]
copy_to = ["us-west-2"]
jitter = "2m"

[retention]
keep_hourly = 24
keep_daily = 7

[verify]
hash_every = "1d"
restore_test_every = "7d"
"#;

    fn config() -> Config {
        crate::source::parse_config(CONFIG, Path::new("drtool.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> String {
        match parse(text, Path::new("schedules/s.toml"), &config()) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn no_duration_anywhere_in_a_schedule_can_overflow() {
        let fields = [
            ("jitter = \"2m\"", "jitter = \"{D}\""),
            ("jitter = \"2m\"", "jitter = \"2m\"\nstart_window = \"{D}\""),
            ("jitter = \"2m\"", "jitter = \"2m\"\ntimeout = \"{D}\""),
            ("keep_daily = 7", "keep_daily = 7\nkeep_within = \"{D}\""),
            ("hash_every = \"1d\"", "hash_every = \"{D}\""),
            (
                "restore_test_every = \"7d\"",
                "restore_test_every = \"{D}\"",
            ),
        ];
        let values = [
            format!("{}s", u64::MAX),
            "100000000y".to_string(),
            "99999999999y".to_string(),
            "0s".to_string(),
            "1ns".to_string(),
        ];
        for (from, to) in fields {
            for v in &values {
                let text = GOOD.replacen(from, &to.replace("{D}", v), 1);
                match parse(&text, Path::new("schedules/s.toml"), &config()) {
                    Ok(s) => {
                        // Whatever is accepted is small enough to compute with.
                        let _ = s.timeout + s.start_window + s.jitter;
                    }
                    Err(e) => {
                        let e = e.to_string();
                        assert!(e.starts_with("schedules/s.toml:"), "{to} {v}: {e}");
                    }
                }
            }
            let e = err(&GOOD.replacen(from, &to.replace("{D}", &format!("{}s", u64::MAX)), 1));
            assert!(
                e.contains("out of range") || e.contains("not a duration"),
                "{to}: {e}"
            );
        }
    }

    #[test]
    fn a_good_schedule() {
        let s =
            parse(GOOD, Path::new("schedules/s.toml"), &config()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(s.retention.keep_hourly, 24);
        assert_eq!(s.restore_test_every, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(s.missed, Missed::RunOnce);
        let by_label = GOOD.replace("targets = [\"kv\"]", "select = { tier = \"prod\" }");
        let s = parse(&by_label, Path::new("s.toml"), &config()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.targets, ["kv"]);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // A selector matching nothing beside named targets: they run, and
        // the schedule says so.
        let both = GOOD.replace(
            "targets = [\"kv\"]",
            "targets = [\"kv\"]\nselect = { tier = \"dev\" }",
        );
        let s = parse(&both, Path::new("s.toml"), &config()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.targets, ["kv"]);
        assert_eq!(
            s.warnings,
            ["select tier=dev matches no target today: only the targets named run (kv)"]
        );
    }

    #[test]
    fn each_bad_schedule_is_named_with_its_place() {
        let with = |a: &str, b: &str| {
            assert!(GOOD.contains(a), "{a}");
            GOOD.replacen(a, b, 1)
        };
        let cases = [
            (
                with("0 * * * *", "0 25 * * *"),
                "schedules/s.toml:2:11:",
                "field 2 (hour): hour 25 is out of range 0-23",
            ),
            (
                with("0 * * * *", "0 0 * * * *"),
                "schedules/s.toml:2:9:",
                "drtool takes no seconds field",
            ),
            (
                with("Europe/Berlin", "Mars/Olympus"),
                "schedules/s.toml:3:12:",
                "not an IANA time zone",
            ),
            (
                with("[\"kv\"]", "[\"kv\", \"orders\"]"),
                "schedules/s.toml:4:18:",
                "unknown target \"orders\"",
            ),
            (
                with("keep_hourly = 24\nkeep_daily = 7\n", ""),
                "schedules/s.toml:8:1:",
                "[retention] keeps nothing",
            ),
            (
                with("jitter", "jiter"),
                "schedules/s.toml:6:1:",
                "unknown field `jiter`",
            ),
            (
                with("\"2m\"", "\"soon\""),
                "schedules/s.toml:6:10:",
                "jitter \"soon\" is not a duration",
            ),
            (
                with("[\"us-west-2\"]", "[\"eu-west-9\"]"),
                "schedules/s.toml:5:12:",
                "unknown region \"eu-west-9\"",
            ),
            (
                with("targets = [\"kv\"]", "select = { tier = \"dev\" }"),
                "schedules/s.toml:4:10:",
                "select matches no target",
            ),
            (
                with("kv-hourly", "KV Hourly"),
                "schedules/s.toml:1:8:",
                "must be 1 to 45 lowercase",
            ),
        ];
        let mut wrong = Vec::new();
        for (text, at, message) in cases {
            let got = err(&text);
            if !(got.starts_with(at) && got.contains(message)) {
                wrong.push(format!("want {at} {message}\n got {got}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn two_files_cannot_share_a_name() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("a.toml"), GOOD).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("b.toml"), GOOD).unwrap_or_else(|e| panic!("{e}"));
        let e = load_dir(dir.path(), &config())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("b.toml:1:1:") && e.contains("already used by"),
            "{e}"
        );
    }
}
