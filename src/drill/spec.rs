//! The drill file (`drills/*.yaml`): what a failover exercise is, parsed
//! strictly with line and column for every error, then checked against the
//! config (targets, regions, restore options per kind) into a [`Drill`].
//!
//! Steps, probes and canaries are externally tagged (`- restore: {...}`), so
//! an unknown kind is named with the valid ones and locations survive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::config::Config;
use crate::config::duration::parse_bounded;
use crate::engine::faults::{KindFault, KindProbe};
use crate::engine::kind::Registry;
use crate::engine::options::EXISTING;
use crate::engine::{Existing, FlagValues, RestoreOptions};
pub use crate::report::facts::Phase;

/// Where something is in a drill file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Loc {
    pub line: u64,
    pub column: u64,
}

impl<T> From<&Spanned<T>> for Loc {
    fn from(s: &Spanned<T>) -> Loc {
        Loc {
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }
}

/// A drill file that cannot be used, and exactly where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DrillFileError {
    pub file: PathBuf,
    pub loc: Option<Loc>,
    pub message: String,
}

impl fmt::Display for DrillFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.loc {
            Some(l) if l.line > 0 => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                l.line,
                l.column,
                self.message
            ),
            _ => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

// ---- the file's shape -------------------------------------------------------

type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    name: Text,
    #[serde(default)]
    description: Option<String>,
    hypothesis: Text,
    objectives: Spanned<RawObjectives>,
    #[serde(default)]
    targets: Vec<Text>,
    #[serde(default)]
    regions: Vec<Text>,
    #[serde(default)]
    canaries: Vec<Spanned<RawCanary>>,
    #[serde(default)]
    probes: Vec<Spanned<RawProbe>>,
    steps: Spanned<Vec<Spanned<RawStep>>>,
    #[serde(default)]
    notify: Option<RawNotify>,
    #[serde(default)]
    rollback: Rollback,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectives {
    rto: Text,
    rpo: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook: Text,
}

/// A canary as written: `NAME: { target, ... }`, the name one a kind's
/// drills declare (its markers: keys, rows, ConfigMaps).
type RawCanary = Named<RawCanaryBody>;

/// A one-key map, `NAME: VALUE`, as canaries are written.
#[derive(Debug)]
struct Named<T> {
    name: Text,
    value: T,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Named<T>, D::Error> {
        struct One<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for One<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("one `NAME: { ... }`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Named<T>, A::Error> {
                use serde::de::Error as _;
                let Some(name) = map.next_key::<Text>()? else {
                    return Err(A::Error::custom("say which kind this is"));
                };
                let value = map.next_value()?;
                only_one(&mut map)?;
                Ok(Named { name, value })
            }
        }
        d.deserialize_map(One(std::marker::PhantomData))
    }
}

/// Refuses a second key in a one-key map.
fn only_one<'de, A: serde::de::MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    use serde::de::Error as _;
    match map.next_key::<String>()? {
        None => Ok(()),
        Some(k) => Err(A::Error::custom(format!(
            "`{k}` is a second kind in one item: start another list item (`- `) for it"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCanaryBody {
    target: Text,
    /// Where markers are written (default: the target's home region).
    #[serde(default)]
    write_region: Option<Text>,
    /// Where surviving markers are read after recovery (default: the region
    /// of the drill's first restore of this target).
    #[serde(default)]
    read_region: Option<Text>,
    #[serde(default)]
    interval: Option<Text>,
}

/// A probe as written: `http`, `tcp` and `exec` are every drill's; any
/// other name is a kind's (`etcd_key`), checked against the registry.
#[derive(Debug)]
enum RawProbe {
    Http(RawHttp),
    Tcp(RawTcp),
    Exec(RawExecProbe),
    Kind(Text, Box<RawKindProbe>),
}

/// The probes every drill has, whatever its targets' kinds.
const PROBES: &[&str] = &["http", "tcp", "exec"];

impl<'de> Deserialize<'de> for RawProbe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawProbe, D::Error> {
        struct One;
        impl<'de> serde::de::Visitor<'de> for One {
            type Value = RawProbe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a probe: one of its kinds with its fields, e.g. `http: { name: up, phase: before, url: ... }`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawProbe, A::Error> {
                use serde::de::Error as _;
                let Some(key) = map.next_key::<Text>()? else {
                    return Err(A::Error::custom("say which kind of probe this is"));
                };
                let probe = match key.value.as_str() {
                    "http" => RawProbe::Http(map.next_value()?),
                    "tcp" => RawProbe::Tcp(map.next_value()?),
                    "exec" => RawProbe::Exec(map.next_value()?),
                    _ => {
                        let body = map.next_value()?;
                        RawProbe::Kind(key, Box::new(body))
                    }
                };
                only_one(&mut map)?;
                Ok(probe)
            }
        }
        d.deserialize_map(One)
    }
}

/// A probe as written: the fields every probe has (split off as
/// [`ProbeCommon`]) and, next to them, its own.
macro_rules! probe_raw {
    ($(#[$sm:meta])* $raw:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        #[derive(Debug, Deserialize)]
        $(#[$sm])*
        struct $raw {
            name: Text,
            phase: Spanned<Phase>,
            #[serde(default)]
            interval: Option<Text>,
            #[serde(default)]
            timeout: Option<Text>,
            #[serde(default)]
            success_threshold: Option<Spanned<u32>>,
            #[serde(default)]
            failure_threshold: Option<Spanned<u32>>,
            $( $(#[$fm])* $field: $ty, )*
        }

        impl $raw {
            /// The fields every probe has, and its own.
            fn into_parts(self) -> (ProbeCommon, ($($ty,)*)) {
                (
                    ProbeCommon {
                        name: self.name,
                        phase: self.phase,
                        interval: self.interval,
                        timeout: self.timeout,
                        success_threshold: self.success_threshold,
                        failure_threshold: self.failure_threshold,
                    },
                    ($(self.$field,)*),
                )
            }
        }
    };
}

probe_raw!(
    /// A kind's probe as written: the target and region it reads, and the
    /// kind's own fields (read by the kind).
    RawKindProbe {
        #[serde(default)]
        target: Option<Text>,
        #[serde(default)]
        region: Option<Text>,
        #[serde(flatten)]
        own: BTreeMap<String, serde_json::Value>,
    }
);

/// A probe kind every drill has: its own fields (`$typed`) and, in the
/// file, the fields every probe has next to them (`$raw`).
macro_rules! probe_kind {
    ($raw:ident => $typed:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $typed { $( $(#[$fm])* pub $field: $ty, )* }

        probe_raw!(
            #[serde(deny_unknown_fields)]
            $raw { $( $(#[$fm])* $field: $ty, )* }
        );

        impl $raw {
            fn split(self) -> (ProbeCommon, $typed) {
                let (common, ($($field,)*)) = self.into_parts();
                (common, $typed { $( $field, )* })
            }
        }
    };
}

/// A step kind, the same way: its fields, and in the file the fields every
/// step has (`name`, `timeout`, `on_failure`). `inner` kinds are only read.
macro_rules! step_kind {
    (@raw $raw:ident => $typed:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $raw {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            timeout: Option<Text>,
            #[serde(default)]
            on_failure: Option<OnFailure>,
            $( $(#[$fm])* $field: $ty, )*
        }

        impl $raw {
            fn split(self) -> (StepCommon, $typed) {
                (
                    (self.name, self.timeout, self.on_failure),
                    $typed { $( $field: self.$field, )* },
                )
            }
        }
    };
    (inner $raw:ident => $typed:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        #[derive(Debug)]
        struct $typed { $( $field: $ty, )* }
        step_kind!(@raw $raw => $typed { $( $(#[$fm])* $field: $ty, )* });
    };
    ($raw:ident => $typed:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $typed { $( $(#[$fm])* pub $field: $ty, )* }
        step_kind!(@raw $raw => $typed { $( $(#[$fm])* $field: $ty, )* });
    };
}

probe_kind!(RawHttp => HttpProbe {
    url: String,
    /// The status the answer must have (default: any 2xx).
    #[serde(default)]
    status: Option<u16>,
    /// The body must contain this.
    #[serde(default)]
    body_contains: Option<String>,
});

probe_kind!(RawTcp => TcpProbe {
    /// host:port
    address: String,
});

probe_kind!(RawExecProbe => ExecProbe {
    /// Run with `sh -c`.
    command: String,
    #[serde(default)]
    expect_exit: Option<i32>,
});

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawStep {
    Backup(RawBackup),
    Copy(RawCopy),
    Fault(Box<RawFault>),
    Restore(Box<RawRestore>),
    Verify(RawVerify),
    Wait(RawWait),
    Manual(RawManual),
    Exec(RawExecStep),
    Cleanup(RawCleanup),
    Parallel(RawParallel),
    RegainRegion(RawRegain),
}

step_kind!(RawBackup => BackupStep {
    /// Default: every target of the drill.
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    no_copy: bool,
});

step_kind!(RawCopy => CopyStep {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
});

step_kind!(RawVerify => VerifyStep {
    /// Only these `after` probes (default: all of them).
    #[serde(default)]
    probes: Vec<String>,
});

step_kind!(inner RawWait => WaitStep {
    /// How long, e.g. `30s`.
    #[serde(rename = "for")]
    duration: Text,
});

step_kind!(RawManual => ManualStep {
    /// What the operator must do or decide, in a sentence or two.
    instruction: String,
});

step_kind!(RawExecStep => ExecStep {
    /// Run with `sh -c`.
    command: String,
    /// The exit code that means success (default 0).
    #[serde(default)]
    expect_exit: Option<i32>,
});

step_kind!(RawRegain => RegainStep {
    /// A region a fault declared lost: drtool may contact it again.
    region: String,
});

step_kind!(RawCleanup => CleanupStep {
    /// Keep what the drill's restores made (default: undo it).
    #[serde(default)]
    keep_restores: bool,
    /// Commands to run as well (`sh -c`), in order.
    #[serde(default)]
    exec: Vec<String>,
});

step_kind!(inner RawParallel => ParallelSteps {
    steps: Vec<Spanned<RawStep>>,
});

/// A fault step as written: the fields every step has, and one fault:
/// `lose_region` or `exec` (every drill's), or a kind's (`delete_keys: {
/// target, region, prefix }`), read by the kind that declares its name.
#[derive(Debug, Deserialize)]
struct RawFault {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timeout: Option<Text>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
    /// From now on drtool contacts nothing in this region.
    #[serde(default)]
    lose_region: Option<Text>,
    /// A command (`sh -c`) that injects the fault.
    #[serde(default)]
    exec: Option<String>,
    /// The kinds' faults, by name.
    #[serde(flatten)]
    kinds: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug)]
struct FaultStep {
    lose_region: Option<Text>,
    exec: Option<String>,
    kinds: BTreeMap<String, serde_json::Value>,
}

impl RawFault {
    fn split(self) -> (StepCommon, FaultStep) {
        (
            (self.name, self.timeout, self.on_failure),
            FaultStep {
                lose_region: self.lose_region,
                exec: self.exec,
                kinds: self.kinds,
            },
        )
    }
}

/// The faults every drill has, whatever its targets' kinds.
const FAULTS: &[&str] = &["lose_region", "exec"];

step_kind!(inner RawRestore => RestoreFields {
    target: Text,
    region: Text,
    #[serde(default)]
    point: Option<Spanned<RawPointPick>>,
    #[serde(default)]
    options: Option<Spanned<RestoreStepOptions>>,
});

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawPointPick {
    Latest,
    Before(String),
    RandomWithin(String),
}

// ---- parts shared by the file and the checked drill ---------------------------

/// When a drill cleans up what it made (undoes its restores, removes its
/// canary markers, runs `cleanup` steps an abort skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rollback {
    /// Whatever the outcome.
    #[default]
    Always,
    /// Only when the drill did not pass: a passing drill leaves the
    /// failed-over state in place.
    OnFailure,
    /// Never (as `--keep`).
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop the drill (cleanup still runs).
    #[default]
    Abort,
    /// Record the failure and go on.
    Continue,
}

/// Restore options of a restore step, as on the command line without the
/// dashes (`existing: overwrite`, `from_dump: true`, `include: [a, b]`);
/// checked against the target's kind into the engine's [`RestoreOptions`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RestoreStepOptions(pub BTreeMap<String, serde_json::Value>);

// ---- the checked drill ----------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drill {
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub hypothesis: String,
    pub rto: Duration,
    pub rpo: Duration,
    pub targets: Vec<String>,
    pub regions: Vec<String>,
    pub canaries: Vec<Canary>,
    pub probes: Vec<Probe>,
    pub steps: Vec<Step>,
    pub webhook: Option<String>,
    pub rollback: Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Canary {
    /// As the drill names it (`etcd`, `sql`, `configmap`): its kind's canary.
    pub kind: String,
    pub target: String,
    pub write_region: String,
    pub read_region: String,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProbeCheck {
    Http(HttpProbe),
    Tcp(TcpProbe),
    Exec(ExecProbe),
    /// A kind's probe of one of its targets.
    Target(TargetProbe),
}

/// A kind's probe, as the kind read it, of `target` in `region`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetProbe {
    pub target: String,
    pub region: String,
    pub probe: KindProbe,
    /// What it checks, in the kind's words (without the region).
    pub text: String,
}

impl ProbeCheck {
    /// As drill files name it.
    pub fn kind(&self) -> &str {
        match self {
            ProbeCheck::Http(_) => "http",
            ProbeCheck::Tcp(_) => "tcp",
            ProbeCheck::Exec(_) => "exec",
            ProbeCheck::Target(p) => p.probe.name(),
        }
    }

    /// The same check against another region (a kind-owned probe: the
    /// steady state re-checked where the drill restored its target); none for
    /// a check that names no region.
    pub fn in_region(&self, region: &str) -> Option<ProbeCheck> {
        match self {
            ProbeCheck::Target(p) => Some(ProbeCheck::Target(TargetProbe {
                region: region.to_string(),
                ..p.clone()
            })),
            ProbeCheck::Http(_) | ProbeCheck::Tcp(_) | ProbeCheck::Exec(_) => None,
        }
    }

    /// The target and region a kind-owned probe reads.
    pub fn target(&self) -> Option<(&str, &str)> {
        match self {
            ProbeCheck::Target(p) => Some((&p.target, &p.region)),
            ProbeCheck::Http(_) | ProbeCheck::Tcp(_) | ProbeCheck::Exec(_) => None,
        }
    }

    /// What it checks, in a few words.
    pub fn describe(&self) -> String {
        match self {
            ProbeCheck::Http(p) => format!("GET {}", p.url),
            ProbeCheck::Tcp(p) => format!("connect {}", p.address),
            ProbeCheck::Exec(p) => format!("exec `{}`", p.command),
            ProbeCheck::Target(p) => format!("{} in {}", p.text, p.region),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub name: String,
    pub phase: Phase,
    pub interval: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    /// Guard probes: this many failures in a row stop the drill.
    pub failure_threshold: u32,
    pub check: ProbeCheck,
}

/// Which point a restore step restores.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "value")]
pub enum PointPick {
    Latest,
    Before(chrono::DateTime<chrono::Utc>),
    /// A random point finished within this long before the drill started
    /// (proves old points restore too).
    RandomWithin(#[serde(with = "secs")] Duration),
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub enum Fault {
    LoseRegion {
        region: String,
    },
    Exec {
        command: String,
    },
    /// A kind's fault, into one of its targets.
    Target {
        target: String,
        region: String,
        /// The kind's typed fault.
        what: KindFault,
        /// What it does, in the kind's words.
        text: String,
    },
}

impl Fault {
    pub fn describe(&self) -> String {
        match self {
            Fault::LoseRegion { region } => format!("lose region {region}"),
            Fault::Exec { command } => format!("exec `{command}`"),
            Fault::Target { text, .. } => text.clone(),
        }
    }

    /// The target and region a kind-owned fault acts on.
    pub fn target(&self) -> Option<(&str, &str)> {
        match self {
            Fault::Target { target, region, .. } => Some((target, region)),
            Fault::LoseRegion { .. } | Fault::Exec { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreStep {
    pub target: String,
    pub region: String,
    pub point: PointPick,
    /// Parsed once and checked against the target's kind: what the runner
    /// hands the engine as it is.
    pub options: RestoreOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    Backup(BackupStep),
    Copy(CopyStep),
    Fault(Fault),
    Restore(RestoreStep),
    Verify(VerifyStep),
    Wait {
        #[serde(with = "secs")]
        duration: Duration,
    },
    Manual(ManualStep),
    Exec(ExecStep),
    Cleanup(CleanupStep),
    Parallel {
        steps: Vec<Step>,
    },
    RegainRegion(RegainStep),
}

impl Action {
    /// Whether the step writes something it must roll back or record when
    /// it is stopped (a backup, copy, restore, fault, cleanup): such a step is
    /// cancelled through the engine and awaited, never dropped.
    pub fn changes_something(&self) -> bool {
        matches!(
            self,
            Action::Backup(_)
                | Action::Copy(_)
                | Action::Restore(_)
                | Action::Fault(_)
                | Action::Cleanup(_)
                | Action::RegainRegion(_)
        )
    }

    /// A step's timeout when its file gives none.
    fn default_timeout(&self) -> Duration {
        match self {
            Action::Manual(_) => MANUAL_TIMEOUT,
            Action::Wait { duration } => duration.saturating_add(Duration::from_secs(60)),
            _ => STEP_TIMEOUT,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Action::Backup(_) => "backup",
            Action::Copy(_) => "copy",
            Action::Fault(_) => "fault",
            Action::Restore(_) => "restore",
            Action::Verify(_) => "verify",
            Action::Wait { .. } => "wait",
            Action::Manual(_) => "manual",
            Action::Exec(_) => "exec",
            Action::Cleanup(_) => "cleanup",
            Action::Parallel { .. } => "parallel",
            Action::RegainRegion(_) => "regain_region",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Unique in the drill: given, or `<kind>-<n>`.
    pub name: String,
    pub timeout: Duration,
    pub on_failure: OnFailure,
    pub action: Action,
    #[serde(skip)]
    pub loc: Loc,
}

impl Step {
    /// What the step does, in one line (`drill run --dry-run`, the dashboard).
    /// `region` replaces the region restores name; a restore of the newest
    /// point is described as such (the CLI looks the point up).
    pub fn summary(&self, d: &Drill, region: Option<&str>) -> String {
        let ms = |t: &Duration| crate::report::human_ms(t.as_millis() as u64);
        let or_all = |t: &[String]| {
            if t.is_empty() {
                d.targets.join(", ")
            } else {
                t.join(", ")
            }
        };
        match &self.action {
            Action::Backup(b) => format!(
                "back up {}{}",
                or_all(&b.targets),
                if b.no_copy { " (no copy)" } else { "" }
            ),
            Action::Copy(c) => format!(
                "copy {} to {}",
                or_all(&c.targets),
                c.to.as_deref().unwrap_or("their copy_to regions")
            ),
            Action::Fault(f) => format!("FAULT: {}", f.describe()),
            Action::Restore(r) => {
                let point = match &r.point {
                    PointPick::Latest => "the newest point".to_string(),
                    PointPick::Before(t) => format!("the newest point before {}", t.to_rfc3339()),
                    PointPick::RandomWithin(w) => format!(
                        "a random point of the last {}",
                        humantime::format_duration(*w)
                    ),
                };
                // What it does to what is there, when the step says.
                let existing = r
                    .options
                    .existing
                    .map_or(String::new(), |e| format!(" (existing: {})", e.name()));
                format!(
                    "restore {} in {} from {point}{existing}",
                    r.target,
                    region.unwrap_or(&r.region)
                )
            }
            Action::Verify(v) => format!(
                "wait until {} pass",
                if v.probes.is_empty() {
                    d.probes
                        .iter()
                        .filter(|p| p.phase == Phase::After)
                        .map(|p| p.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    v.probes.join(", ")
                }
            ),
            Action::Wait { duration } => format!("wait {}", ms(duration)),
            Action::Manual(m) => format!("MANUAL: {}", m.instruction),
            Action::Exec(e) => format!("exec `{}`", e.command),
            Action::Cleanup(c) => format!(
                "cleanup{}{}",
                if c.keep_restores {
                    ""
                } else {
                    ": undo restores"
                },
                if c.exec.is_empty() {
                    String::new()
                } else {
                    format!(", run {}", c.exec.join("; "))
                }
            ),
            Action::Parallel { steps } => format!("in parallel ({} steps):", steps.len()),
            Action::RegainRegion(r) => format!("region {} is back", r.region),
        }
    }
}

// ---- defaults ------------------------------------------------------------------

const PROBE_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const CANARY_INTERVAL: Duration = Duration::from_secs(1);
/// Steps without a timeout: long enough for a real restore, short enough that
/// a hung step ends the drill the same night.
const STEP_TIMEOUT: Duration = Duration::from_secs(3600);
/// Manual steps wait this long for the operator by default.
const MANUAL_TIMEOUT: Duration = Duration::from_secs(1800);

/// The longest a step may be given: a drill is an exercise of hours, not weeks.
const LONGEST_STEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest objective: a year of downtime or loss is no objective.
const LONGEST_OBJECTIVE: Duration = crate::config::duration::YEAR;
/// The most consecutive results a threshold may ask for.
const MAX_THRESHOLD: u32 = 1000;
/// How far back `random_within` may reach: points older than ten years are
/// not what a drill proves.
const LONGEST_WINDOW: Duration = Duration::from_secs(10 * crate::config::duration::YEAR.as_secs());
/// A probe or canary interval: at least a millisecond, at most an hour.
const INTERVALS: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(3600));
/// Timeouts: more than nothing, at most [`LONGEST_STEP`].
const TIMEOUTS: (Duration, Duration) = (Duration::from_millis(1), LONGEST_STEP);

// ---- checking ------------------------------------------------------------------

struct Checker<'a> {
    file: &'a Path,
    config: &'a Config,
    kinds: &'a Registry,
    names: BTreeSet<String>,
    counter: usize,
}

impl Checker<'_> {
    fn err(&self, loc: impl Into<Option<Loc>>, message: impl Into<String>) -> DrillFileError {
        DrillFileError {
            file: self.file.to_path_buf(),
            loc: loc.into(),
            message: message.into(),
        }
    }

    /// A duration within `bounds` (inclusive): every duration of a drill is
    /// bounded where it is read, so no arithmetic on it can overflow later.
    fn duration(
        &self,
        t: &Text,
        what: &str,
        (min, max): (Duration, Duration),
    ) -> Result<Duration, DrillFileError> {
        parse_bounded(&t.value, min, max).map_err(|e| self.err(Loc::from(t), format!("{what} {e}")))
    }

    /// A restore step's options, parsed by the kind of `target` into the
    /// engine's typed options, as `drtool restore` parses its flags.
    fn restore_options(
        &self,
        target: &str,
        loc: Loc,
        raw: RestoreStepOptions,
    ) -> Result<RestoreOptions, DrillFileError> {
        let mut existing = None;
        let mut flags = FlagValues::default();
        for (key, value) in raw.0 {
            let values = match value {
                // Off, unset or empty: as if not given.
                serde_json::Value::Bool(false) | serde_json::Value::Null => continue,
                serde_json::Value::Array(items) if items.is_empty() => continue,
                serde_json::Value::Bool(true) => vec!["true".to_string()],
                serde_json::Value::String(v) => vec![v],
                serde_json::Value::Number(n) => vec![n.to_string()],
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(|i| match i {
                        serde_json::Value::String(v) => Ok(v),
                        serde_json::Value::Number(n) => Ok(n.to_string()),
                        other => Err(self.err(
                            loc,
                            format!("options.{key}: {other} is not text: give a list of names"),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(self.err(
                        loc,
                        format!(
                            "options.{key}: {other} is not text, a list or true/false: \
                             write it as on the command line (e.g. existing: overwrite)"
                        ),
                    ));
                }
            };
            if key == EXISTING {
                let e = values.join(",");
                existing = Some(
                    e.parse::<Existing>()
                        .map_err(|why| self.err(loc, format!("options.existing {e:?} {why}")))?,
                );
            } else {
                flags.0.insert(key.replace('_', "-"), values);
            }
        }
        let kind_name = self
            .config
            .target(target)
            .map(|t| t.spec.kind())
            .unwrap_or_default();
        let options = self
            .kinds
            .restore_options((target, kind_name), existing, &flags)
            .map_err(|e| self.err(loc, format!("options: {e}")))?;
        let kind = self
            .kinds
            .get(kind_name)
            .map_err(|e| self.err(loc, e.to_string()))?;
        if !kind.needs_point(&options) {
            // Name the options that make it so, as the file spells them.
            let pointless: Vec<String> = flags
                .0
                .iter()
                .filter(|(k, v)| {
                    let alone = FlagValues(BTreeMap::from([((*k).clone(), (*v).clone())]));
                    self.kinds
                        .restore_options((target, kind_name), None, &alone)
                        .is_ok_and(|o| !kind.needs_point(&o))
                })
                .map(|(k, _)| format!("options.{}", k.replace('-', "_")))
                .collect();
            return Err(self.err(
                loc,
                format!(
                    "{} restores without a recovery point, but a drill's restore step restores \
                     one (its RPO is measured from it): drop it",
                    pointless.join(", ")
                ),
            ));
        }
        Ok(options)
    }

    fn target(&self, name: &str, loc: Loc, kind: Option<&str>) -> Result<(), DrillFileError> {
        let Some(t) = self.config.target(name) else {
            let known: Vec<&str> = self.config.targets.keys().map(String::as_str).collect();
            return Err(self.err(
                loc,
                format!(
                    "unknown target {name:?}: the config {} defines {}",
                    self.config.path.display(),
                    known.join(", ")
                ),
            ));
        };
        if let Some(kind) = kind
            && t.spec.kind() != kind
        {
            return Err(self.err(
                loc,
                format!(
                    "target {name} is of kind {}, not {kind}: this needs a {kind} target",
                    t.spec.kind()
                ),
            ));
        }
        Ok(())
    }

    fn region(&self, name: &str, loc: Loc) -> Result<(), DrillFileError> {
        if self.config.region(name).is_some() {
            return Ok(());
        }
        let known: Vec<&str> = self.config.regions.keys().map(String::as_str).collect();
        Err(self.err(
            loc,
            format!(
                "unknown region {name:?}: the config {} defines {}",
                self.config.path.display(),
                known.join(", ")
            ),
        ))
    }

    fn unique(&mut self, name: &str, loc: Loc, what: &str) -> Result<(), DrillFileError> {
        if self.names.insert(format!("{what}:{name}")) {
            Ok(())
        } else {
            Err(self.err(
                loc,
                format!("{what} name {name:?} is used twice: names must be unique"),
            ))
        }
    }
}

/// Reads, parses and checks a drill file against the config and the kinds
/// of its targets.
pub fn load(path: &Path, config: &Config, kinds: &Registry) -> Result<Drill, DrillFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| DrillFileError {
        file: path.to_path_buf(),
        loc: None,
        message: format!("cannot read the drill file: {e}"),
    })?;
    parse(&text, path, config, kinds)
}

/// Parses and checks drill text; `path` names it in errors.
pub fn parse(
    text: &str,
    path: &Path,
    config: &Config,
    kinds: &Registry,
) -> Result<Drill, DrillFileError> {
    let raw: RawDrill = serde_saphyr::from_str(text).map_err(|e| DrillFileError {
        file: path.to_path_buf(),
        loc: e.location().map(|l| Loc {
            line: l.line(),
            column: l.column(),
        }),
        message: yaml_message(&e),
    })?;
    let mut c = Checker {
        file: path,
        config,
        kinds,
        names: BTreeSet::new(),
        counter: 0,
    };
    check(&mut c, raw)
}

/// serde-saphyr's message without its own location (ours comes first).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    // serde calls a step's kind a "variant": say kind. Any other enum (a
    // phase, on_failure) gets "not one of". Probes and canaries are named
    // by the kinds, and their names checked against the registry.
    if text.contains("expected one of backup") {
        return text.replace("unknown variant", "unknown kind");
    }
    match (
        text.strip_prefix("unknown variant "),
        text.find(", expected one of "),
    ) {
        (Some(rest), Some(_)) => {
            let (value, tail) = rest.split_once(", expected one of ").unwrap_or((rest, ""));
            format!("{value} is not one of {tail}")
        }
        _ => text,
    }
}

fn check(c: &mut Checker, raw: RawDrill) -> Result<Drill, DrillFileError> {
    if raw.name.value.trim().is_empty() {
        return Err(c.err(Loc::from(&raw.name), "name is empty: give the drill a name"));
    }
    let name_ok = raw
        .name
        .value
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        && raw.name.value.len() <= 63;
    if !name_ok {
        return Err(c.err(
            Loc::from(&raw.name),
            format!(
                "name {:?} must be 1 to 63 letters, digits, '-' or '_' (it names report folders)",
                raw.name.value
            ),
        ));
    }
    if raw.hypothesis.value.trim().is_empty() {
        return Err(c.err(
            Loc::from(&raw.hypothesis),
            "hypothesis is empty: say in one sentence what the drill should show",
        ));
    }
    let objectives = &raw.objectives.value;
    let rto = c.duration(
        &objectives.rto,
        "objectives.rto",
        (Duration::from_millis(1), LONGEST_OBJECTIVE),
    )?;
    let rpo = c.duration(
        &objectives.rpo,
        "objectives.rpo",
        (Duration::ZERO, LONGEST_OBJECTIVE),
    )?;
    for t in &raw.targets {
        c.target(&t.value, Loc::from(t), None)?;
    }
    for r in &raw.regions {
        c.region(&r.value, Loc::from(r))?;
    }
    let targets: Vec<String> = raw.targets.iter().map(|t| t.value.clone()).collect();
    let regions: Vec<String> = raw.regions.iter().map(|r| r.value.clone()).collect();
    let mut probes = Vec::new();
    for p in raw.probes {
        probes.push(check_probe(c, p)?);
    }
    let mut steps = Vec::new();
    if raw.steps.value.is_empty() {
        return Err(c.err(
            Loc::from(&raw.steps),
            "steps is empty: a drill needs at least one step",
        ));
    }
    for s in raw.steps.value {
        steps.push(check_step(c, s, &probes, &targets)?);
    }
    let mut canaries = Vec::new();
    for k in raw.canaries {
        canaries.push(check_canary(c, k, &steps)?);
    }
    let faults = count(&steps, &|a| matches!(a, Action::Fault(_)));
    if !canaries.is_empty() && faults == 0 {
        return Err(c.err(
            None,
            "canaries are written until the fault: add a fault step, or remove the canaries",
        ));
    }
    let webhook = match raw.notify {
        Some(n) => {
            let ok = url::Url::parse(&n.webhook.value)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(c.err(
                    Loc::from(&n.webhook),
                    format!("notify.webhook {:?} is not an http(s) URL", n.webhook.value),
                ));
            }
            Some(n.webhook.value)
        }
        None => None,
    };
    Ok(Drill {
        file: c.file.to_path_buf(),
        name: raw.name.value,
        description: raw.description,
        hypothesis: raw.hypothesis.value,
        rto,
        rpo,
        targets,
        regions,
        canaries,
        probes,
        steps,
        webhook,
        rollback: raw.rollback,
    })
}

/// How many steps (parallel groups included) satisfy `pred`.
pub fn count(steps: &[Step], pred: &dyn Fn(&Action) -> bool) -> usize {
    steps
        .iter()
        .map(|s| match &s.action {
            Action::Parallel { steps } => count(steps, pred),
            a => usize::from(pred(a)),
        })
        .sum()
}

fn check_probe(c: &mut Checker, raw: Spanned<RawProbe>) -> Result<Probe, DrillFileError> {
    let loc = Loc::from(&raw);
    let (common, check) = match raw.value {
        RawProbe::Http(b) => {
            let (common, p) = b.split();
            (common, ProbeCheck::Http(p))
        }
        RawProbe::Tcp(b) => {
            let (common, p) = b.split();
            (common, ProbeCheck::Tcp(p))
        }
        RawProbe::Exec(b) => {
            let (common, p) = b.split();
            (common, ProbeCheck::Exec(p))
        }
        RawProbe::Kind(name, b) => kind_probe(c, loc, &name, *b)?,
    };
    let ProbeCommon {
        name,
        phase,
        interval,
        timeout,
        success_threshold: threshold,
        failure_threshold,
    } = common;
    c.unique(&name.value, Loc::from(&name), "probe")?;
    if let ProbeCheck::Http(h) = &check
        && url::Url::parse(&h.url).is_err()
    {
        return Err(c.err(
            loc,
            format!("probe {}: url {:?} is not a URL", name.value, h.url),
        ));
    }
    let interval = match &interval {
        Some(t) => c.duration(t, "interval", INTERVALS)?,
        None => PROBE_INTERVAL,
    };
    let timeout = match &timeout {
        Some(t) => c.duration(t, "timeout", TIMEOUTS)?,
        None => PROBE_TIMEOUT,
    };
    let success_threshold = threshold_in_range(c, threshold.as_ref(), "success_threshold")?;
    let failure_threshold = match (failure_threshold, phase.value) {
        (Some(t), Phase::Guard) => threshold_in_range(c, Some(&t), "failure_threshold")?,
        (Some(t), other) => {
            return Err(c.err(
                Loc::from(&t),
                format!(
                    "failure_threshold is for guard probes (it stops the drill); probe {} is a {} probe",
                    name.value,
                    other.name()
                ),
            ));
        }
        (None, _) => 1,
    };
    Ok(Probe {
        name: name.value,
        phase: phase.value,
        interval,
        timeout,
        success_threshold,
        failure_threshold,
        check,
    })
}

/// A probe's threshold: 1 when not given, else between 1 and `MAX_THRESHOLD`.
fn threshold_in_range(
    c: &Checker,
    t: Option<&Spanned<u32>>,
    field: &str,
) -> Result<u32, DrillFileError> {
    match t {
        None => Ok(1),
        Some(t) if t.value == 0 => Err(c.err(Loc::from(t), format!("{field} must be at least 1"))),
        Some(t) if t.value > MAX_THRESHOLD => Err(c.err(
            Loc::from(t),
            format!("{field} {} is over {MAX_THRESHOLD}", t.value),
        )),
        Some(t) => Ok(t.value),
    }
}

/// A kind's probe: the kind that declares its name reads its own fields.
fn kind_probe(
    c: &Checker,
    loc: Loc,
    name: &Text,
    b: RawKindProbe,
) -> Result<(ProbeCommon, ProbeCheck), DrillFileError> {
    let Some(drills) = c.kinds.probe_kind(&name.value) else {
        let known: Vec<&str> = PROBES
            .iter()
            .copied()
            .chain(c.kinds.probe_names())
            .collect();
        return Err(c.err(
            Loc::from(name),
            format!(
                "unknown kind `{}`, expected one of {}",
                name.value,
                known.join(", ")
            ),
        ));
    };
    let (common, (target, region, own)) = b.into_parts();
    let (Some(target), Some(region)) = (target, region) else {
        return Err(c.err(
            loc,
            format!(
                "{} probe {}: say which target it reads and in which region (target, region)",
                name.value, common.name.value
            ),
        ));
    };
    c.target(&target.value, Loc::from(&target), Some(drills.name()))?;
    c.region(&region.value, Loc::from(&region))?;
    let fields = serde_json::Value::Object(own.into_iter().collect());
    let (probe, text) = drills.read_probe(&name.value, fields).map_err(|e| {
        let e = e.to_string();
        // A misspelt field every probe has reaches the kind too: name them.
        let also = if e.starts_with("unknown field") {
            "; every probe also takes name, phase, interval, timeout, success_threshold, \
             failure_threshold, target, region"
        } else {
            ""
        };
        c.err(
            loc,
            format!("{} probe {}: {e}{also}", name.value, common.name.value),
        )
    })?;
    let check = ProbeCheck::Target(TargetProbe {
        target: target.value,
        region: region.value,
        probe,
        text,
    });
    Ok((common, check))
}

/// What every probe has next to its kind's fields.
struct ProbeCommon {
    name: Text,
    phase: Spanned<Phase>,
    interval: Option<Text>,
    timeout: Option<Text>,
    success_threshold: Option<Spanned<u32>>,
    failure_threshold: Option<Spanned<u32>>,
}

fn check_canary(
    c: &mut Checker,
    raw: Spanned<RawCanary>,
    steps: &[Step],
) -> Result<Canary, DrillFileError> {
    let loc = Loc::from(&raw);
    let Named { name, value: body } = raw.value;
    let Some(kind) = c.kinds.canary_kind(&name.value) else {
        return Err(c.err(
            Loc::from(&name),
            format!(
                "unknown canary `{}`, expected one of {}",
                name.value,
                c.kinds.canary_names().join(", ")
            ),
        ));
    };
    c.target(&body.target.value, Loc::from(&body.target), Some(kind))?;
    let kind = name.value;
    let target = &body.target.value;
    let home = c
        .config
        .target(target)
        .map(|t| t.home.clone())
        .unwrap_or_default();
    let write_region = match &body.write_region {
        Some(r) => {
            c.region(&r.value, Loc::from(r))?;
            r.value.clone()
        }
        None => home,
    };
    let first_restore = first_restore_region(steps, target);
    let read_region = match (&body.read_region, first_restore) {
        (Some(r), _) => {
            c.region(&r.value, Loc::from(r))?;
            r.value.clone()
        }
        (None, Some(r)) => r,
        (None, None) => {
            return Err(c.err(
                loc,
                format!(
                    "canary of {target}: no restore step restores {target}, so say where its markers are read after recovery (read_region)"
                ),
            ));
        }
    };
    let interval = match &body.interval {
        Some(t) => c.duration(t, "interval", INTERVALS)?,
        None => CANARY_INTERVAL,
    };
    if interval < Duration::from_millis(10) {
        return Err(c.err(
            loc,
            "a canary interval under 10ms measures the runner, not the data",
        ));
    }
    Ok(Canary {
        kind,
        target: target.clone(),
        write_region,
        read_region,
        interval,
    })
}

fn first_restore_region(steps: &[Step], target: &str) -> Option<String> {
    steps.iter().find_map(|s| match &s.action {
        Action::Restore(r) if r.target == target => Some(r.region.clone()),
        Action::Parallel { steps } => first_restore_region(steps, target),
        _ => None,
    })
}

type StepCommon = (Option<String>, Option<Text>, Option<OnFailure>);

fn check_step(
    c: &mut Checker,
    raw: Spanned<RawStep>,
    probes: &[Probe],
    targets: &[String],
) -> Result<Step, DrillFileError> {
    let loc = Loc::from(&raw);
    let (common, action) = match raw.value {
        RawStep::Backup(b) => {
            let (common, a) = b.split();
            for t in &a.targets {
                c.target(t, loc, None)?;
            }
            if a.targets.is_empty() && targets.is_empty() {
                return Err(c.err(loc, "backup: name its targets, or list the drill's targets"));
            }
            (common, Action::Backup(a))
        }
        RawStep::Copy(b) => {
            let (common, a) = b.split();
            for t in &a.targets {
                c.target(t, loc, None)?;
            }
            for r in a.from.iter().chain(a.to.iter()) {
                c.region(r, loc)?;
            }
            (common, Action::Copy(a))
        }
        RawStep::Fault(b) => {
            let (common, a) = (*b).split();
            (common, Action::Fault(check_fault(c, a, loc)?))
        }
        RawStep::Restore(b) => {
            let (common, a) = (*b).split();
            (common, Action::Restore(check_restore(c, a)?))
        }
        RawStep::Verify(b) => {
            let (common, a) = b.split();
            check_verify(c, &a, probes, loc)?;
            (common, Action::Verify(a))
        }
        RawStep::Wait(b) => {
            let (common, a) = b.split();
            let duration = c.duration(&a.duration, "wait.for", (Duration::ZERO, LONGEST_STEP))?;
            (common, Action::Wait { duration })
        }
        RawStep::Manual(b) => {
            let (common, a) = b.split();
            if a.instruction.trim().is_empty() {
                return Err(c.err(loc, "manual: the instruction is empty"));
            }
            (common, Action::Manual(a))
        }
        RawStep::Exec(b) => {
            let (common, a) = b.split();
            (common, Action::Exec(a))
        }
        RawStep::Cleanup(b) => {
            let (common, a) = b.split();
            (common, Action::Cleanup(a))
        }
        RawStep::RegainRegion(b) => {
            let (common, a) = b.split();
            c.region(&a.region, loc)?;
            (common, Action::RegainRegion(a))
        }
        RawStep::Parallel(b) => {
            let (common, a) = b.split();
            if a.steps.len() < 2 {
                return Err(c.err(loc, "parallel needs at least two steps"));
            }
            let mut steps = Vec::new();
            for s in a.steps {
                steps.push(check_step(c, s, probes, targets)?);
            }
            (common, Action::Parallel { steps })
        }
    };
    let (name, timeout, on_failure) = common;
    c.counter += 1;
    let name = name.unwrap_or_else(|| format!("{}-{}", action.kind(), c.counter));
    c.unique(&name, loc, "step")?;
    let timeout = match &timeout {
        Some(t) => c.duration(t, "timeout", TIMEOUTS)?,
        None => action.default_timeout(),
    };
    Ok(Step {
        name,
        timeout,
        on_failure: on_failure.unwrap_or_default(),
        action,
        loc,
    })
}

/// A verify step waits for `after` probes: the drill must have some, and
/// those it names must be among them.
fn check_verify(
    c: &Checker,
    a: &VerifyStep,
    probes: &[Probe],
    loc: Loc,
) -> Result<(), DrillFileError> {
    let after: Vec<&str> = probes
        .iter()
        .filter(|p| p.phase == Phase::After)
        .map(|p| p.name.as_str())
        .collect();
    if after.is_empty() {
        return Err(c.err(
            loc,
            "verify waits for the `after` probes to pass, and the drill has none: add a probe with phase: after",
        ));
    }
    for p in &a.probes {
        if !after.contains(&p.as_str()) {
            return Err(c.err(
                loc,
                format!(
                    "verify: {p:?} is not an `after` probe (they are: {})",
                    after.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn check_fault(c: &Checker, f: FaultStep, loc: Loc) -> Result<Fault, DrillFileError> {
    let mut found: Vec<Fault> = Vec::new();
    if let Some(r) = f.lose_region {
        c.region(&r.value, Loc::from(&r))?;
        found.push(Fault::LoseRegion { region: r.value });
    }
    found.extend(f.exec.map(|command| Fault::Exec { command }));
    for (name, body) in f.kinds {
        found.push(kind_fault(c, loc, &name, body)?);
    }
    let fault = match found.len() {
        1 => found.remove(0),
        0 => {
            let known: Vec<&str> = FAULTS
                .iter()
                .copied()
                .chain(c.kinds.fault_names())
                .collect();
            return Err(c.err(
                loc,
                format!(
                    "fault: say which fault to inject: one of {}",
                    known.join(", ")
                ),
            ));
        }
        _ => {
            return Err(c.err(
                loc,
                "fault: one fault per step (use a parallel group to inject several at once)",
            ));
        }
    };
    Ok(fault)
}

/// A kind's fault: `target` and `region` checked here, its own fields read
/// by the kind that declares its name.
fn kind_fault(
    c: &Checker,
    loc: Loc,
    name: &str,
    body: serde_json::Value,
) -> Result<Fault, DrillFileError> {
    let Some(drills) = c.kinds.fault_kind(name) else {
        let known: Vec<&str> = ["name", "timeout", "on_failure"]
            .into_iter()
            .chain(FAULTS.iter().copied())
            .chain(c.kinds.fault_names())
            .collect();
        return Err(c.err(
            loc,
            format!(
                "fault: unknown field `{name}`, expected one of {}",
                known.join(", ")
            ),
        ));
    };
    let serde_json::Value::Object(mut fields) = body else {
        return Err(c.err(
            loc,
            format!(
                "fault {name}: give its fields, e.g. `{name}: {{ target: T, region: R, ... }}`"
            ),
        ));
    };
    let mut take = |field: &str| match fields.remove(field) {
        Some(serde_json::Value::String(v)) => Ok(v),
        Some(other) => Err(c.err(loc, format!("fault {name}: {field} {other} is not a name"))),
        None => Err(c.err(loc, format!("fault {name}: missing field `{field}`"))),
    };
    let target = take("target")?;
    let region = take("region")?;
    c.target(&target, loc, Some(drills.name()))?;
    c.region(&region, loc)?;
    let (fault, text) = drills
        .read_fault(name, (&target, &region), serde_json::Value::Object(fields))
        .map_err(|e| c.err(loc, format!("fault {name}: {e}")))?;
    Ok(Fault::Target {
        target,
        region,
        what: fault,
        text,
    })
}

fn check_restore(c: &Checker, r: RestoreFields) -> Result<RestoreStep, DrillFileError> {
    c.target(&r.target.value, Loc::from(&r.target), None)?;
    c.region(&r.region.value, Loc::from(&r.region))?;
    let point = match r.point {
        None => PointPick::Latest,
        Some(p) => {
            let ploc = Loc::from(&p);
            match p.value {
                RawPointPick::Latest => PointPick::Latest,
                RawPointPick::Before(t) => PointPick::Before(
                    crate::catalog::parse_time(&t)
                        .map_err(|e| c.err(ploc, format!("point.before: {e}")))?,
                ),
                RawPointPick::RandomWithin(d) => {
                    let window = parse_bounded(&d, Duration::from_millis(1), LONGEST_WINDOW)
                        .map_err(|e| c.err(ploc, format!("point.random_within {e}")))?;
                    PointPick::RandomWithin(window)
                }
            }
        }
    };
    let options = match r.options {
        Some(o) => c.restore_options(&r.target.value, Loc::from(&o), o.value)?,
        None => RestoreOptions::default(),
    };
    Ok(RestoreStep {
        target: r.target.value,
        region: r.region.value,
        point,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[regions.us-east-1]
store = "file:///tmp/drtool-spec-east"
[regions.us-west-2]
store = "file:///tmp/drtool-spec-west"

[targets.kv]
kind = "etcd"
mode = "keys"
prefix = "/app/"
home = "us-east-1"
copy_to = ["us-west-2"]
[targets.kv.regions.us-east-1]
endpoints = ["http://127.0.0.1:12379"]
[targets.kv.regions.us-west-2]
endpoints = ["http://127.0.0.1:22379"]

[targets.shop]
kind = "namespace"
namespace = "shop"
home = "us-east-1"
[targets.shop.regions.us-east-1]
kubeconfig = "/tmp/kc"

[targets.orders]
kind = "rds"
mode = "snapshot"
instance = "orders-db"
home = "us-east-1"
[targets.orders.regions.us-west-2]
endpoint = "http://127.0.0.1:1"
"#;

    const GOOD: &str = r#"
name: etcd-failover
hypothesis: kv is back in us-west-2 within 5 minutes.
objectives: { rto: 5m, rpo: 1m }
targets: [kv]
regions: [us-east-1, us-west-2]
canaries:
  - etcd: { target: kv, interval: 200ms }
probes:
  - etcd_key: { name: kv-up, phase: before, target: kv, region: us-east-1, key: /app/x }
  - etcd_key:
      name: kv-back
      phase: after
      interval: 250ms
      success_threshold: 2
      target: kv
      region: us-west-2
      key: /app/x
      equals: v1
steps:
  - backup: {}
  - fault: { name: lose-east, lose_region: us-east-1, timeout: 30s }
  - restore: { target: kv, region: us-west-2, options: { existing: overwrite } }
  - verify: { timeout: 2m }
  - parallel:
      steps:
        - wait: { for: 1s }
        - exec: { command: "true" }
"#;

    fn config() -> Config {
        crate::source::parse_config(CONFIG, Path::new("drtool.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A drill that must check.
    fn checked(yaml: &str) -> Drill {
        parse(
            yaml,
            Path::new("d.yaml"),
            &config(),
            &crate::source::registry(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(yaml: &str) -> String {
        match parse(
            yaml,
            Path::new("drills/d.yaml"),
            &config(),
            &crate::source::registry(),
        ) {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    /// Every duration field of a drill, as a template with `{D}` where the
    /// duration goes.
    const DURATION_FIELDS: &[(&str, &str)] = &[
        ("objectives.rto", "objectives: { rto: {D}, rpo: 1m }"),
        ("objectives.rpo", "objectives: { rto: 5m, rpo: {D} }"),
        ("canary interval", "  - etcd: { target: kv, interval: {D} }"),
        ("probe interval", "      interval: {D}"),
        ("probe timeout", "      key: /app/x\n      timeout: {D}"),
        ("step timeout", "lose_region: us-east-1, timeout: {D}"),
        ("wait.for", "        - wait: { for: {D} }"),
        (
            "random_within",
            "  - restore: { target: kv, region: us-west-2, point: { random_within: {D} }, options",
        ),
    ];

    fn with_duration(field: &str, d: &str) -> String {
        let replaced = match field {
            "objectives.rto" | "objectives.rpo" => ("objectives: { rto: 5m, rpo: 1m }", ""),
            "canary interval" => ("  - etcd: { target: kv, interval: 200ms }", ""),
            "probe interval" => ("      interval: 250ms", ""),
            "probe timeout" => ("      key: /app/x\n      equals: v1", "\n      equals: v1"),
            "step timeout" => ("lose_region: us-east-1, timeout: 30s", ""),
            "wait.for" => ("        - wait: { for: 1s }", ""),
            _ => ("  - restore: { target: kv, region: us-west-2, options", ""),
        };
        let template = DURATION_FIELDS
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, t)| *t)
            .unwrap_or_default();
        assert!(GOOD.contains(replaced.0), "{field}");
        GOOD.replacen(
            replaced.0,
            &format!("{}{}", template.replace("{D}", d), replaced.1),
            1,
        )
    }

    #[test]
    fn no_duration_anywhere_in_a_drill_can_overflow() {
        // Huge, tiny and random values through every duration field: each is
        // accepted within its bounds or refused with the field's name and
        // place; nothing panics.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut values: Vec<String> = vec![
            format!("{}s", u64::MAX),
            format!("{}ms", u64::MAX),
            "100000000y".into(),
            "99999999999y".into(),
            "99999999h".into(),
            "0s".into(),
        ];
        for _ in 0..40 {
            let unit = ["ns", "ms", "s", "m", "h", "d", "w", "y"][(random() % 8) as usize];
            values.push(format!("{}{unit}", random() >> (random() % 64)));
        }
        for (field, _) in DURATION_FIELDS {
            for v in &values {
                let text = with_duration(field, v);
                let got = parse(
                    &text,
                    Path::new("drills/d.yaml"),
                    &config(),
                    &crate::source::registry(),
                );
                if let Err(e) = got {
                    let e = e.to_string();
                    assert!(e.starts_with("drills/d.yaml:"), "{field} {v}: {e}");
                }
            }
            let huge = with_duration(field, &format!("{}s", u64::MAX));
            let e = err(&huge);
            assert!(
                e.contains("out of range") || e.contains("not a duration"),
                "{field}: {e}"
            );
        }
    }

    #[test]
    fn a_restore_option_of_another_kind_is_refused_where_it_is_written() {
        let e = err(&GOOD.replacen(
            "options: { existing: overwrite }",
            "options: { from_dump: true }",
            1,
        ));
        assert!(e.starts_with("drills/d.yaml:23:"), "{e}");
        assert!(
            e.contains("--from-dump does not apply to target kv (kind etcd)"),
            "{e}"
        );
        let e = err(&GOOD.replacen(
            "options: { existing: overwrite }",
            "options: { namespace_map: a=b }",
            1,
        ));
        assert!(e.contains("--namespace-map does not apply"), "{e}");
        let d = checked(GOOD);
        let restore = d.steps.iter().find_map(|s| match &s.action {
            Action::Restore(r) => Some(r),
            _ => None,
        });
        assert_eq!(
            restore.map(|r| r.options.existing),
            Some(Some(Existing::Overwrite)),
            "parsed once, typed"
        );
    }

    #[test]
    fn a_restore_steps_options_are_read_by_the_targets_kind_as_its_flags() {
        let step = |target: &str, options: &str| {
            GOOD.replacen(
                "{ target: kv, region: us-west-2, options: { existing: overwrite } }",
                &format!("{{ target: {target}, region: us-west-2, options: {options} }}"),
                1,
            )
        };
        let cases = [
            (
                step("kv", "{ prefix: [/a/, /b/] }"),
                "options: --prefix takes one PREFIX, not 2 (/a/, /b/)",
            ),
            (
                step("kv", "{ prefix: { a: 1 } }"),
                "options.prefix: {\"a\":1} is not text, a list or true/false",
            ),
            (
                step("orders", "{ from_dump: sometimes }"),
                "options: --from-dump is on or off, not \"sometimes\"",
            ),
            (
                step("orders", "{ pitr: 2026-11-01 }"),
                "options.pitr restores without a recovery point, but a drill's restore step restores one",
            ),
            (
                step("shop", "{ namespace_map: shop }"),
                "options: --namespace-map \"shop\": is not OLD=NEW",
            ),
        ];
        for (yaml, want) in cases {
            let e = err(&yaml);
            assert!(e.starts_with("drills/d.yaml:23:"), "{e}");
            assert!(e.contains(want), "{want}\n{e}");
        }
        let d = parse(
            &step(
                "orders",
                "{ from_dump: true, database: copy, existing: fail }",
            )
            .replacen(
                "{ target: kv, interval: 200ms }",
                "{ target: kv, interval: 200ms, read_region: us-west-2 }",
                1,
            ),
            Path::new("d.yaml"),
            &config(),
            &crate::source::registry(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let restore = d.steps.iter().find_map(|s| match &s.action {
            Action::Restore(r) => Some(r),
            _ => None,
        });
        let want = crate::source::registry()
            .restore_options(
                ("orders", "rds"),
                Some(Existing::Fail),
                &FlagValues(BTreeMap::from([(
                    "database".to_string(),
                    vec!["copy".to_string()],
                )]))
                .switch("from-dump"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            restore.map(|r| &r.options),
            Some(&want),
            "as `drtool restore` reads them"
        );
    }

    #[test]
    fn a_kinds_fault_and_probe_are_read_by_the_kind_into_its_own_words() {
        let yaml = GOOD.replacen(
            "lose_region: us-east-1,",
            "delete_keys: { target: kv, region: us-east-1, prefix: /app/ },",
            1,
        );
        let d = checked(&yaml);
        let Action::Fault(fault) = &d.steps[1].action else {
            panic!("a fault step: {:?}", d.steps[1].action)
        };
        assert_eq!(
            fault.describe(),
            "delete keys under /app/ of kv in us-east-1"
        );
        assert_eq!(fault.target(), Some(("kv", "us-east-1")));
        assert_eq!(d.probes[0].check.kind(), "etcd_key");
        assert_eq!(d.probes[0].check.describe(), "etcd key /app/x in us-east-1");
        assert_eq!(
            d.probes[0]
                .check
                .in_region("us-west-2")
                .map(|c| c.describe()),
            Some("etcd key /app/x in us-west-2".to_string()),
            "the steady state re-checked where the target was restored"
        );
        assert_eq!(d.canaries[0].kind, "etcd");
    }

    #[test]
    fn a_kinds_words_read_plain_yaml_scalars_as_text_and_lists_as_on_the_command_line() {
        // `equals: 42` and `expect: 1` were always text to the kinds.
        let yaml = GOOD.replacen("equals: v1", "equals: 42", 1).replacen(
            "options: { existing: overwrite }",
            "options: { existing: overwrite, prefix: 7 }",
            1,
        );
        let d = checked(&yaml);
        let ProbeCheck::Target(p) = &d.probes[1].check else {
            panic!("a kind's probe: {:?}", d.probes[1].check)
        };
        let read: crate::source::etcd::drill::KeyProbe =
            p.probe.get().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.equals.as_deref(), Some("42"));
        // A comma list in `options:` is split as `--exclude a,b` is; empty,
        // null and false are as if not given.
        let step = |options: &str| {
            GOOD.replacen(
                "{ target: kv, region: us-west-2, options: { existing: overwrite } }",
                &format!("{{ target: shop, region: us-west-2, options: {options} }}"),
                1,
            )
            .replacen(
                "{ target: kv, interval: 200ms }",
                "{ target: kv, interval: 200ms, read_region: us-west-2 }",
                1,
            )
        };
        let options = |options: &str| {
            let d = parse(
                &step(options),
                Path::new("d.yaml"),
                &config(),
                &crate::source::registry(),
            )
            .unwrap_or_else(|e| panic!("{options}: {e}"));
            d.steps
                .iter()
                .find_map(|s| match &s.action {
                    Action::Restore(r) => Some(r.options.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        assert_eq!(
            options("{ exclude: \"secrets, configmaps\" }"),
            options("{ exclude: [secrets, configmaps] }")
        );
        assert_eq!(
            options("{ include: [], namespace_map: ~, existing: fail }"),
            options("{ existing: fail }")
        );
        let e = err(&GOOD.replacen(
            "  - etcd_key: { name: kv-up, phase: before, target: kv, region: us-east-1, key: /app/x }",
            "  - htpp: { name: kv-up, phase: before, url: \"http://127.0.0.1:1/\" }",
            1,
        ));
        assert!(
            e.contains("unknown kind `htpp`, expected one of http, tcp, exec"),
            "{e}"
        );
    }

    #[test]
    fn a_good_drill_is_checked_into_typed_steps() {
        let d = parse(
            GOOD,
            Path::new("drills/d.yaml"),
            &config(),
            &crate::source::registry(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.rto, Duration::from_secs(300));
        assert_eq!(
            d.canaries[0].read_region, "us-west-2",
            "from the restore step"
        );
        assert_eq!(d.canaries[0].write_region, "us-east-1", "the target's home");
        assert_eq!(d.probes[1].success_threshold, 2);
        assert_eq!(d.steps[1].name, "lose-east");
        assert_eq!(d.steps[1].timeout, Duration::from_secs(30));
        assert!(
            matches!(&d.steps[1].action, Action::Fault(Fault::LoseRegion { region }) if region == "us-east-1")
        );
        assert!(matches!(&d.steps[4].action, Action::Parallel { steps } if steps.len() == 2));
        assert_eq!(d.steps[0].name, "backup-1");
    }

    #[test]
    fn each_bad_drill_says_where_and_what() {
        let with = |from: &str, to: &str| {
            assert!(GOOD.contains(from), "{from}");
            GOOD.replacen(from, to, 1)
        };
        let cases = [
            (
                with("  - backup: {}", "  - backpu: {}"),
                ":21:",
                "unknown kind `backpu`",
            ),
            (
                with("  - backup: {}", "  - backup: {}\n  - reboot: {}"),
                ":22:",
                "unknown kind `reboot`",
            ),
            (
                with(
                    "  - etcd_key: { name: kv-up",
                    "  - etcd_value: { name: kv-up",
                ),
                ":10:",
                "unknown kind `etcd_value`",
            ),
            (
                with(
                    "objectives: { rto: 5m, rpo: 1m }",
                    "objectives: { rto: five, rpo: 1m }",
                ),
                ":4:",
                "objectives.rto \"five\" is not a duration",
            ),
            (
                with("targets: [kv]", "targets: [kv, nope]"),
                ":5:",
                "unknown target \"nope\"",
            ),
            (
                with(
                    "regions: [us-east-1, us-west-2]",
                    "regions: [us-east-1, eu-west-1]",
                ),
                ":6:",
                "unknown region \"eu-west-1\"",
            ),
            (
                with(
                    "lose_region: us-east-1, timeout",
                    "lose_region: eu-west-9, timeout",
                ),
                ":22:",
                "unknown region \"eu-west-9\"",
            ),
            (
                with("hypothesis: kv", "hypothesys: kv"),
                ":3:",
                "unknown field `hypothesys`",
            ),
            (
                with("key: /app/x }", "key: /app/x, colour: red }"),
                ":10:",
                "unknown field `colour`",
            ),
            (
                with("phase: before", "phase: sometimes"),
                ":10:",
                "`sometimes` is not one of before, during, after",
            ),
            (
                with("success_threshold: 2", "success_threshold: 0"),
                ":15:",
                "success_threshold must be at least 1",
            ),
            (
                with(
                    "  - verify: { timeout: 2m }",
                    "  - verify: { probes: [kv-up] }",
                ),
                ":24:",
                "\"kv-up\" is not an `after` probe",
            ),
            (
                with(
                    "name: lose-east, lose_region: us-east-1, timeout: 30s",
                    "name: lose-east, timeout: 30s",
                ),
                ":22:",
                "say which fault to inject",
            ),
            (
                with(
                    "{ target: kv, region: us-west-2, options",
                    "{ target: nope, region: us-west-2, options",
                ),
                ":23:",
                "unknown target \"nope\"",
            ),
            (
                with(
                    "  - etcd: { target: kv, interval: 200ms }",
                    "  - configmap: { target: kv }",
                ),
                ":8:",
                "target kv is of kind etcd, not namespace",
            ),
            (
                with("existing: overwrite", "existing: sometimes"),
                ":23:",
                "options.existing \"sometimes\"",
            ),
            (
                with("        - exec: { command: \"true\" }\n", ""),
                ":25:",
                "parallel needs at least two steps",
            ),
            (
                with("name: kv-back", "name: kv-up"),
                ":12:",
                "probe name \"kv-up\" is used twice",
            ),
            (
                with("wait: { for: 1s }", "wait: { for: soon }"),
                ":27:",
                "wait.for \"soon\" is not a duration",
            ),
            // The kinds' own vocabulary: names from the registry, fields
            // read by the kind that declares them.
            (
                with("  - etcd: { target: kv", "  - etcdd: { target: kv"),
                ":8:",
                "unknown canary `etcdd`, expected one of etcd, configmap, sql",
            ),
            (
                with("key: /app/x }", "key: /app/x, equal: v1 }"),
                ":10:",
                "etcd_key probe kv-up: unknown field `equal`, expected `key` or `equals`",
            ),
            (
                with(
                    "lose_region: us-east-1,",
                    "delete_keys: { target: kv, region: us-east-1, prefx: /app/ },",
                ),
                ":22:",
                "fault delete_keys: unknown field `prefx`, expected `prefix`",
            ),
            (
                with(
                    "lose_region: us-east-1,",
                    "stop_member: { target: kv, region: us-east-1, command: x, pid_file: /p },",
                ),
                ":22:",
                "fault stop_member: a member fault needs exactly one of `command`",
            ),
            (
                with(
                    "lose_region: us-east-1,",
                    "delete_objects: { target: kv, region: us-east-1, resource: a, selector: b },",
                ),
                ":22:",
                "target kv is of kind etcd, not namespace",
            ),
            (
                with("lose_region: us-east-1,", "lose_regoin: us-east-1,"),
                ":22:",
                "fault: unknown field `lose_regoin`, expected one of name, timeout, on_failure, \
                 lose_region, exec, stop_member, kill_member, delete_keys, delete_namespace",
            ),
            (
                with(
                    "lose_region: us-east-1,",
                    "delete_keys: { region: us-east-1, prefix: /a/ },",
                ),
                ":22:",
                "fault delete_keys: missing field `target`",
            ),
        ];
        let mut wrong = Vec::new();
        for (yaml, at, message) in cases {
            let got = err(&yaml);
            if !got.starts_with(&format!("drills/d.yaml{at}")) || !got.contains(message) {
                wrong.push(format!("want {at} {message}\n got {got}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
