//! The engine-facing interface of a target kind, and the registry of kinds.
//!
//! Each kind (etcd, namespace, RDS) lives in one folder under `source/` and
//! implements [`TargetKind`]: take a backup into a byte channel, plan a restore
//! (gather facts, then decide purely), apply a plan, and check that its
//! endpoints answer. What only some kinds have are capabilities a kind hands
//! out when it has them: [`Drills`] (faults, probes, canaries), [`Artefacts`]
//! (copy / verify / delete what it keeps outside the bucket),
//! [`ScratchRestores`] (places for restore tests) and [`Discovery`] (what
//! `drtool init` finds of it, with the flags it adds there).
//! The engine's generic code only calls this trait: it never matches on kinds.
//! Sources depend on this module; the engine depends on no source, it is handed
//! a [`Registry`] (see `source::registry`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::Hash;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::events::Job;
use super::faults::{CanaryMark, KindFault, KindProbe};
pub use super::options::{FlagShape, FlagSpec, FlagValues};
use super::options::{KindOptions, RestoreOptions};
use super::point::PointData;
use crate::archive::manifest::External;
use crate::archive::{Consistency, Manifest, PayloadKind, PointId};
use crate::config::Target;
use crate::error::{Error, KindError};

/// Where a kind's backup writes its plaintext. Dropping it ends the payload;
/// sending an `Err` aborts the upload.
pub type DataSender = mpsc::Sender<io::Result<Bytes>>;

/// A payload a kind writes: its name in manifests and what it is.
#[derive(Debug, Clone)]
pub struct Payload {
    pub kind: PayloadKind,
    /// A few words for plans and listings.
    pub describe: &'static str,
    /// Whether the plaintext ends with the sha256 of everything before it
    /// (checked and cut off when it is read).
    pub trailing_sha256: bool,
}

/// When a point is consistent, as its kind reads its [`Consistency`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consistent {
    pub at: DateTime<Utc>,
    /// One line for plans and listings.
    pub text: String,
}

/// What a new point of a target looks like before it is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupShape {
    pub payload: PayloadKind,
    /// Whether the point has a data object (RDS snapshot-only points have none).
    pub has_data: bool,
}

/// What a kind's backup produced besides the data stream.
#[derive(Debug, Clone)]
pub struct Taken {
    pub consistency: Consistency,
    pub items: BTreeMap<String, u64>,
    /// What the kind keeps outside the bucket (RDS snapshots), recorded in
    /// the manifest.
    pub external: Option<External>,
}

/// A kind's restore plan: its own typed plan as data, plus what every front end
/// shows. Executing it needs nothing else (no config, no secret values).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct KindPlan {
    /// The kind's typed plan, serialized: resolved endpoints, members, database
    /// and cluster references. Tagged with its own `kind`.
    pub action: serde_json::Value,
    /// What the plan does, one line per fact, as `restore --dry-run` prints it.
    pub lines: Vec<String>,
    /// Whether it replaces or overwrites anything.
    pub destructive: bool,
    /// Whether the point's checksums were verified while planning.
    pub verified: bool,
}

impl KindPlan {
    pub fn new<T: Serialize>(
        action: &T,
        lines: Vec<String>,
        destructive: bool,
        verified: bool,
    ) -> Result<KindPlan, Error> {
        Ok(KindPlan {
            action: serde_json::to_value(action)
                .map_err(|e| Error::failed(format!("cannot record the restore plan: {e}")))?,
            lines,
            destructive,
            verified,
        })
    }

    /// The kind's typed plan back.
    pub fn action<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.action.clone()).map_err(|e| {
            Error::input(format!(
                "the restore plan is not one this drtool can run ({e}): plan it again"
            ))
        })
    }
}

/// What applying a plan did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub message: String,
    pub counts: BTreeMap<String, u64>,
    /// Items that failed while the rest went on (also sent as events).
    pub failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    pub item: String,
    pub error: String,
}

/// Whether one store or endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reachability {
    pub region: String,
    /// "store" or "target NAME".
    pub what: String,
    pub address: String,
    pub reachable: bool,
    /// It answered, but cannot do what the config asks (a bucket without the
    /// Object Lock `object_lock` needs, refused credentials): fix the config
    /// or the store; no retry helps.
    #[serde(default)]
    pub misconfigured: bool,
    pub detail: String,
}

/// What a restore plan is made from.
pub struct PlanRequest<'a> {
    pub target: &'a Target,
    pub region: &'a str,
    pub options: &'a RestoreOptions,
    /// The chosen point, its manifest and its data; none when the kind restores
    /// without one (see [`TargetKind::needs_point`]).
    pub point: Option<(&'a Manifest, PointData)>,
    pub job: &'a Job,
}

/// Everything the engine needs from one kind of target.
#[async_trait]
pub trait TargetKind: Send + Sync {
    /// The `kind = "..."` of `drtool.toml` and of manifests.
    fn name(&self) -> &'static str;

    /// Its section of `drtool.toml` (`source/<kind>/config.rs`): how it
    /// reads its targets' own fields.
    fn section(&self) -> crate::config::Section;

    /// The payloads its points can hold.
    fn payloads(&self) -> &'static [Payload];

    /// When a point is consistent, if `c` is this kind's.
    fn consistent(&self, c: &Consistency) -> Option<Consistent>;

    /// What a new point of `target` holds.
    fn backup_shape(&self, target: &Target) -> Result<BackupShape, Error>;

    /// Takes a backup of `target` in its home region. With a data object, the
    /// plaintext goes into `data` (dropped when done); artefacts outside the
    /// bucket are made here and returned in [`Taken`].
    async fn backup(
        &self,
        target: &Target,
        point: &PointId,
        data: Option<DataSender>,
        job: &Job,
    ) -> Result<Taken, Error>;

    /// The flags of `drtool restore` (and keys of a drill step's `options:`)
    /// this kind adds to `--existing`, which every kind takes.
    fn restore_flags(&self) -> &'static [FlagSpec];

    /// Reads the given flags (only ones [`TargetKind::restore_flags`]
    /// declares) into the kind's own options.
    fn restore_options(&self, flags: &FlagValues) -> Result<KindOptions, Error>;

    /// Whether a restore with these options reads a recovery point.
    fn needs_point(&self, _options: &RestoreOptions) -> bool {
        true
    }

    /// Gathers the facts of a restore (reads the point and the target) and
    /// decides the plan. Changes nothing.
    async fn plan_restore(&self, req: PlanRequest<'_>) -> Result<KindPlan, Error>;

    /// Runs a plan made by [`TargetKind::plan_restore`], reading only the plan.
    async fn apply(
        &self,
        plan: &KindPlan,
        point: Option<PointData>,
        job: &Job,
    ) -> Result<Applied, Error>;

    /// Whether the target's endpoints answer, per region.
    async fn reachability(&self, target: &Target) -> Vec<Reachability>;

    /// What secrets a backup of `target` holds, if it holds any (Kubernetes
    /// Secrets): points without `[encryption]` are warned about.
    async fn holds_secrets(&self, _target: &Target) -> Option<String> {
        None
    }

    /// Drill faults, probes, canaries and undoing a drill's restore, if
    /// the kind has them.
    fn drills(&self) -> Option<&dyn Drills> {
        None
    }

    /// Artefacts kept outside the bucket (RDS snapshots), if the kind keeps any.
    fn artefacts(&self) -> Option<&dyn Artefacts> {
        None
    }

    /// Scratch places for restore tests, if the kind can make them.
    fn scratch_restores(&self) -> Option<&dyn ScratchRestores> {
        None
    }

    /// Continuous protection between points, if the kind can follow its
    /// source (`engine::stream`).
    fn streams(&self) -> Option<&dyn Streams> {
        None
    }

    /// What its points hold, read without restoring them (`drtool ls`),
    /// if the kind can read its payloads.
    fn contents(&self) -> Option<&dyn Contents> {
        None
    }

    /// What `drtool init` can find of this kind, if it can find any.
    fn discovery(&self) -> Option<&dyn Discovery> {
        None
    }
}

/// One thing a point holds.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Item {
    /// What it is: `key`, a Kubernetes kind, a dump's `TABLE`.
    pub kind: String,
    /// Its name: the key, `namespace/name`, `schema.table`.
    pub name: String,
    /// Its size in bytes in the point, where the payload says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Facts of its kind, by the column names of [`Contents::columns`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, serde_json::Value>,
}

impl Item {
    /// Its text in `column`, as a listing shows it (`drtool ls`, the
    /// dashboard's contents): `-` for a detail it lacks, TTLs in seconds.
    pub fn text(&self, column: &Column) -> String {
        if column.key == "kind" {
            return self.kind.clone();
        }
        match self.details.get(column.key) {
            None | Some(serde_json::Value::Null) => "-".into(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) if column.key.ends_with("_ttl") => format!("{v}s"),
            Some(v) => v.to_string(),
        }
    }
}

/// Which items to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only names that start with this.
    pub prefix: Option<String>,
    /// As of this revision, where the point holds history (etcd snapshots).
    pub revision: Option<u64>,
}

impl Filter {
    pub fn wants(&self, name: &[u8]) -> bool {
        self.prefix
            .as_ref()
            .is_none_or(|p| name.starts_with(p.as_bytes()))
    }
}

/// Where listed items go, one at a time.
pub type Sink<'a> = &'a mut (dyn FnMut(Item) -> Result<(), Error> + Send);

/// An item with what a diff compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// What orders and matches items across the two sides (an etcd key's
    /// bytes); each side hands them on in increasing order.
    pub key: Vec<u8>,
    pub item: Item,
    /// Its content (an etcd value).
    pub body: Vec<u8>,
}

/// Where items go with their bodies, one at a time.
pub type BodySink<'a> = &'a mut (dyn FnMut(Body) -> Result<(), Error> + Send);

/// What a listing found besides its items.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Listed {
    /// Lines on the point as a whole (its revision, what was left out).
    pub about: Vec<String>,
    pub items: u64,
    /// The sum of the items' sizes.
    pub bytes: u64,
}

impl Listed {
    /// Counts an item and hands it on.
    pub fn send(&mut self, sink: Sink<'_>, item: Item) -> Result<(), Error> {
        self.items += 1;
        self.bytes += item.size.unwrap_or(0);
        sink(item)
    }

    /// Counts an item with its body (the body's size) and hands it on.
    pub fn send_body(&mut self, sink: BodySink<'_>, body: Body) -> Result<(), Error> {
        self.items += 1;
        self.bytes += body.body.len() as u64;
        sink(body)
    }
}

/// A detail column: its key in [`Item::details`] and its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    pub key: &'static str,
    pub header: &'static str,
}

/// What a kind's points hold, read from their payload.
#[async_trait]
pub trait Contents: TargetKind {
    /// The detail columns a listing of this point has, in order.
    fn columns(&self, manifest: &Manifest) -> &'static [Column];

    /// Reads the point's payload and hands each item `filter` wants to
    /// `sink`, in the payload's order (etcd: key order).
    async fn list(
        &self,
        manifest: &Manifest,
        data: PointData,
        filter: &Filter,
        sink: Sink<'_>,
        job: &Job,
    ) -> Result<Listed, Error>;

    /// Like [`Contents::list`], each item with its body, in the bytewise
    /// order of names (what `drtool diff` merges).
    async fn bodies(
        &self,
        _manifest: &Manifest,
        _data: PointData,
        _filter: &Filter,
        _sink: BodySink<'_>,
        _job: &Job,
    ) -> Result<Listed, Error> {
        Err(Error::input(format!(
            "points of kind {} cannot be compared yet",
            self.name()
        )))
    }

    /// Where an item sits in the tree a point is browsed as (`/` between
    /// levels): its kind and name unless the kind says otherwise.
    fn browse_path(&self, item: &Item) -> String {
        format!("{}/{}", item.kind, item.name)
    }

    /// The restore flags that restore just the folder (`folder`) or item at
    /// `path` of a browsed point, `sample` being an item of it; None when
    /// the kind restores such a part only with the whole point.
    fn restore_selection(
        &self,
        _path: &str,
        _folder: bool,
        _sample: &Item,
    ) -> Option<super::options::FlagValues> {
        None
    }

    /// The same of the live target in `region`, as it is now.
    async fn live_bodies(
        &self,
        target: &Target,
        _region: &str,
        _filter: &Filter,
        _sink: BodySink<'_>,
        _job: &Job,
    ) -> Result<Listed, Error> {
        Err(Error::input(format!(
            "target {} (kind {}) cannot be compared with its live state yet",
            target.name,
            self.name()
        )))
    }
}

/// What a kind's discovery is asked to cover.
pub struct InitAsk<'a> {
    /// Every region of the file, in the order the options named them.
    pub regions: &'a [String],
    /// The targets' home region.
    pub home: &'a str,
    pub flags: &'a FlagValues,
}

impl InitAsk<'_> {
    /// The regions other than home.
    pub fn others(&self) -> Vec<String> {
        self.regions
            .iter()
            .filter(|r| *r != self.home)
            .cloned()
            .collect()
    }

    /// The `home` and `copy_to` lines of a target homed in the home region.
    pub fn home_and_copies(&self) -> String {
        format!(
            "home = {}\ncopy_to = {}",
            toml_string(self.home),
            toml_list(&self.others())
        )
    }
}

/// What discovery found: lines said to the user (and kept as comments at
/// the top of the file) and the file's target sections, in order.
#[derive(Debug, Default)]
pub struct InitFound {
    pub notes: Vec<String>,
    pub sections: Vec<String>,
}

/// A TOML string.
pub fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A TOML array of strings.
pub fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A target's name for a discovered thing: the prefix, then lowercase
/// letters, digits and '-'.
pub fn target_name(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}{clean}")
}

/// What `drtool init` finds of a kind: its flags, and the targets it
/// writes from what the regions hold.
#[async_trait]
pub trait Discovery: TargetKind {
    fn init_flags(&self) -> &'static [FlagSpec];

    /// Looks in the regions for what to protect; adds notes and sections.
    /// An error is what the user asked for that cannot be (an unknown
    /// context, a namespace that is not there), never "nothing found".
    async fn discover(
        &self,
        ask: &InitAsk<'_>,
        found: &mut InitFound,
    ) -> Result<(), Box<dyn KindError>>;
}

/// What a kind does for failover drills. Its defaults refuse, naming the
/// kind: a kind implements what it has.
#[async_trait]
pub trait Drills: TargetKind {
    /// The faults drill files may inject into this kind's targets, as they
    /// name them (`delete_keys`); each has `target` and `region` and its own
    /// fields, read by [`Drills::read_fault`].
    fn fault_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Reads the own fields of fault `name` (one of [`Drills::fault_names`])
    /// on `target` in `region` into the kind's typed fault, and says what it
    /// does in a few words.
    fn read_fault(
        &self,
        name: &str,
        (_target, _region): (&str, &str),
        _fields: serde_json::Value,
    ) -> Result<(KindFault, String), Error> {
        Err(Error::input(format!(
            "kind {} has no {name} fault",
            self.name()
        )))
    }

    /// Injects a drill's fault into `target` in `region`; says what was done.
    async fn fault(
        &self,
        target: &Target,
        _region: &str,
        fault: &KindFault,
        _job: &Job,
    ) -> Result<String, Error> {
        Err(not_for_kind(self.name(), &target.name, fault.name()))
    }

    /// The canary drill files name for this kind's targets (`etcd`: keys,
    /// `sql`: rows, `configmap`), if the kind writes canary markers.
    fn canary_name(&self) -> Option<&'static str> {
        None
    }

    /// The probes drill files may run against this kind's targets, as they
    /// name them (`etcd_key`); each has, beside the fields every probe has
    /// (`name`, `phase`, `interval`, `timeout`, thresholds, `target`,
    /// `region`), its own, read by [`Drills::read_probe`].
    fn probe_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Reads the own fields of a probe named `name` (one of
    /// [`Drills::probe_names`]) into the kind's typed probe, and says what it
    /// checks in a few words (the region is added after them).
    fn read_probe(
        &self,
        name: &str,
        _fields: serde_json::Value,
    ) -> Result<(KindProbe, String), Error> {
        Err(Error::input(format!(
            "kind {} has no {name} probe",
            self.name()
        )))
    }

    /// Runs a drill's probe once: `Ok(detail)` when it passes, the error when
    /// it does not.
    async fn probe(
        &self,
        target: &Target,
        _region: &str,
        probe: &KindProbe,
    ) -> Result<String, Error> {
        Err(not_for_kind(
            self.name(),
            &target.name,
            &format!("{} probe", probe.name()),
        ))
    }

    /// Writes one canary marker of drill run `run` into the target in `region`.
    async fn canary_write(
        &self,
        target: &Target,
        _region: &str,
        _run: &str,
        _mark: CanaryMark,
    ) -> Result<(), Error> {
        Err(not_for_kind(self.name(), &target.name, "canary"))
    }

    /// The markers of run `run` the target holds in `region`.
    async fn canary_read(
        &self,
        target: &Target,
        _region: &str,
        _run: &str,
    ) -> Result<Vec<CanaryMark>, Error> {
        Err(not_for_kind(self.name(), &target.name, "canary"))
    }

    /// Removes the markers of run `run`; how many there were.
    async fn canary_clear(&self, target: &Target, _region: &str, _run: &str) -> Result<u64, Error> {
        Err(not_for_kind(self.name(), &target.name, "canary"))
    }

    /// Undoes what applying `plan` made (a drill's cleanup); says what.
    async fn undo(&self, _plan: &KindPlan, _job: &Job) -> Result<String, Error> {
        Ok("nothing to undo".into())
    }
}

/// How a target's stream cuts segments (the kind reads it from its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// A segment is written at least this often while changes come in.
    pub segment: Duration,
    /// A segment is written as soon as its events reach this many bytes (a
    /// single revision larger than this still goes whole into one segment).
    pub max_segment: u64,
}

/// One cut of a stream: the kind's lines for positions `from..=to`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cut {
    pub from: u64,
    pub to: u64,
    /// The kind's event lines, each ending in `\n`.
    pub lines: Vec<u8>,
    pub events: u64,
    pub revisions: u64,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

/// Why a kind stopped following its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStop {
    /// Asked to stop; every change received was cut and sent first.
    Cancelled,
    /// Stopped to follow from a newer base point (the engine's own reason).
    NewBase,
    /// The source no longer holds the history the stream needs (compacted
    /// past it): only a new base point can go on.
    HistoryLost(String),
    /// The connection or the watch broke: following again from the last
    /// stored position can go on.
    Broken(String),
}

/// Continuous protection, for a kind that can follow its source.
#[async_trait]
pub trait Streams: TargetKind {
    /// The target's stream settings; none when its config asks for no stream.
    fn stream_settings(&self, target: &Target) -> Option<StreamSettings>;

    /// Where a point of this kind stands (the position a stream of it starts
    /// after), read from the point itself; none for points a stream cannot
    /// start from (with the reason).
    fn position(&self, manifest: &Manifest) -> Result<u64, String>;

    /// The source's current position in the target's home region (for lag).
    async fn source_position(&self, target: &Target) -> Result<u64, Error>;

    /// Replays segments' lines (one item per segment, in chain order) into
    /// what `plan` (this kind's restore plan, already applied) restored, up
    /// to position `to`: one change of the source (one transaction) at a
    /// time, so the target passes through states that existed. Every kind's
    /// event line carries its position as `rev`.
    async fn replay(
        &self,
        plan: &KindPlan,
        segments: mpsc::Receiver<Result<Vec<u8>, Error>>,
        to: u64,
        job: &Job,
    ) -> Result<Applied, Error>;

    /// Whether `plan` restores what a replay cannot reach once it is in
    /// place (etcd snapshots: the data dirs of members that are not
    /// running): then [`Streams::apply_replayed`] restores and replays in
    /// one, instead of `apply` and then [`Streams::replay`].
    fn replays_before_handing_over(&self, _plan: &KindPlan) -> bool {
        false
    }

    /// Restores `plan` from `point` with the segments replayed up to `to`
    /// before the result is handed over; for plans where
    /// [`Streams::replays_before_handing_over`] says so.
    async fn apply_replayed(
        &self,
        _plan: &KindPlan,
        _point: Option<PointData>,
        _segments: mpsc::Receiver<Result<Vec<u8>, Error>>,
        _to: u64,
        _job: &Job,
    ) -> Result<Applied, Error> {
        Err(Error::failed(
            "this kind replays a stream after its restore, not within it",
        ))
    }

    /// Follows the source in the target's home region from the position
    /// after `after`, sending cuts until told to stop or the source fails.
    async fn follow(
        &self,
        target: &Target,
        after: u64,
        settings: StreamSettings,
        cuts: mpsc::Sender<Cut>,
        cancel: CancellationToken,
    ) -> StreamStop;
}

/// Artefacts a kind keeps outside the bucket for a point (RDS snapshots). A
/// kind without them has none to copy, verify or delete.
#[async_trait]
pub trait Artefacts: TargetKind {
    /// Copies the point's artefacts outside the bucket from region `from` to
    /// `to`; returns the manifest with the copy recorded.
    async fn copy_external(
        &self,
        target: &Target,
        manifest: &Manifest,
        from: &str,
        to: &str,
        job: &Job,
    ) -> Result<Manifest, Error>;

    /// Checks the point's artefacts outside the bucket in `region`; a message
    /// when there were any.
    async fn verify_external(
        &self,
        target: Option<&Target>,
        manifest: &Manifest,
        region: &str,
        job: &Job,
    ) -> Result<Option<String>, Error>;

    /// Deletes the point's artefacts outside the bucket in `region`; says what
    /// was deleted.
    async fn delete_external(
        &self,
        target: Option<&Target>,
        manifest: &Manifest,
        region: &str,
    ) -> Result<Vec<String>, Error>;

    /// The point's artefacts as (label, value) lines for people.
    fn external_lines(&self, manifest: &Manifest) -> Vec<(String, String)>;
}

/// Scratch places a kind restores into for restore tests.
#[async_trait]
pub trait ScratchRestores: TargetKind {
    /// A scratch place to restore a point of `target` into, for a restore
    /// test of its copy in `region` (an etcd on free ports, a scratch
    /// namespace or database in that region where the target has one there,
    /// else in its home); none when the kind cannot restore this point cheaply.
    async fn scratch(
        &self,
        target: &Target,
        region: &str,
        manifest: &Manifest,
        job: &Job,
    ) -> Result<Option<Scratch>, Error>;
}

/// The capabilities as the engine calls them: a kind without one does
/// nothing there (no artefacts to copy, verify or delete; no scratch place).
impl dyn TargetKind {
    pub async fn copy_external(
        &self,
        target: &Target,
        manifest: &Manifest,
        from: &str,
        to: &str,
        job: &Job,
    ) -> Result<Manifest, Error> {
        match self.artefacts() {
            Some(a) => a.copy_external(target, manifest, from, to, job).await,
            None => Ok(manifest.clone()),
        }
    }

    pub async fn verify_external(
        &self,
        target: Option<&Target>,
        manifest: &Manifest,
        region: &str,
        job: &Job,
    ) -> Result<Option<String>, Error> {
        match self.artefacts() {
            Some(a) => a.verify_external(target, manifest, region, job).await,
            None => Ok(None),
        }
    }

    pub async fn delete_external(
        &self,
        target: Option<&Target>,
        manifest: &Manifest,
        region: &str,
    ) -> Result<Vec<String>, Error> {
        match self.artefacts() {
            Some(a) => a.delete_external(target, manifest, region).await,
            None => Ok(Vec::new()),
        }
    }

    pub async fn scratch(
        &self,
        target: &Target,
        region: &str,
        manifest: &Manifest,
        job: &Job,
    ) -> Result<Option<Scratch>, Error> {
        match self.scratch_restores() {
            Some(s) => s.scratch(target, region, manifest, job).await,
            None => Ok(None),
        }
    }
}

/// Where a restore test restores: a target pointing at the scratch place,
/// the options to restore with, and what checks and removes it.
pub struct Scratch {
    pub target: Target,
    pub region: String,
    pub options: RestoreOptions,
    pub guard: Box<dyn ScratchGuard>,
}

#[async_trait]
pub trait ScratchGuard: Send + Sync {
    /// Checks what the restore made against the manifest; says what matched.
    async fn check(
        &self,
        manifest: &Manifest,
        plan: &KindPlan,
        applied: &Applied,
    ) -> Result<String, Error>;
    /// Removes the scratch place, whatever happened.
    async fn remove(self: Box<Self>) -> Result<(), Error>;
}

/// Connected clients of one kind, by what they connect to: one connection per
/// cluster, API or region for the life of an engine.
pub struct Clients<K, V> {
    map: Mutex<HashMap<K, V>>,
}

impl<K, V> Default for Clients<K, V> {
    fn default() -> Self {
        Clients {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Clients<K, V> {
    /// The client for `key`, connecting with `connect` the first time.
    pub async fn get<E, F>(&self, key: &K, connect: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let cached = self.map.lock().ok().and_then(|m| m.get(key).cloned());
        if let Some(client) = cached {
            return Ok(client);
        }
        let client = connect().await?;
        if let Ok(mut m) = self.map.lock() {
            m.insert(key.clone(), client.clone());
        }
        Ok(client)
    }
}

/// The error for a drill operation a kind does not have.
pub fn not_for_kind(kind: &str, target: &str, what: &str) -> Error {
    Error::input(format!(
        "target {target} is of kind {kind}, which has no {what}"
    ))
}

/// A target's own section as kind `kind`'s type `T`.
pub fn section<'a, T: crate::config::KindSpec>(
    target: &'a Target,
    kind: &str,
) -> Result<&'a T, Error> {
    target.spec.get().ok_or_else(|| {
        Error::failed(format!(
            "target {} is of kind {}, not {kind}",
            target.name,
            target.spec.kind()
        ))
    })
}

/// The error for a restore into a region the target has no table for.
pub fn no_region_table(target: &Target, region: &str) -> Error {
    Error::input(format!(
        "target {} has no [targets.{}.regions.{region}] table: say where to restore in that region",
        target.name, target.name
    ))
}

/// The kinds an engine knows, by name.
#[derive(Clone)]
pub struct Registry {
    kinds: Vec<Arc<dyn TargetKind>>,
}

impl Registry {
    pub fn new(kinds: Vec<Arc<dyn TargetKind>>) -> Registry {
        Registry { kinds }
    }

    /// A payload as the kind that writes it describes it (none: no kind
    /// here writes it).
    pub fn payload(&self, kind: &PayloadKind) -> Option<&'static Payload> {
        self.kinds
            .iter()
            .flat_map(|k| k.payloads())
            .find(|p| p.kind == *kind)
    }

    /// A few words for a payload, or its name when no kind here knows it.
    pub fn describe_payload(&self, kind: &PayloadKind) -> String {
        self.payload(kind)
            .map_or_else(|| kind.to_string(), |p| p.describe.to_string())
    }

    /// Whether a payload ends with the sha256 of everything before it. A
    /// payload no kind here knows is read as it is.
    pub fn trailing_sha256(&self, kind: &PayloadKind) -> bool {
        self.payload(kind).is_some_and(|p| p.trailing_sha256)
    }

    /// When a point is consistent, as the kind that took it says; none when
    /// no kind here knows its consistency.
    pub fn consistent(&self, c: &Consistency) -> Option<Consistent> {
        self.kinds.iter().find_map(|k| k.consistent(c))
    }

    /// A line for a point's consistency, or its JSON when no kind here
    /// knows it.
    pub fn describe_consistency(&self, c: &Consistency) -> String {
        self.consistent(c)
            .map_or_else(|| c.as_json().to_string(), |x| x.text)
    }

    /// What the kind of a point keeps outside the bucket, as (label, value)
    /// lines for people (none: nothing, or a kind this drtool lacks).
    pub fn external_lines(&self, manifest: &Manifest) -> Vec<(String, String)> {
        self.get(&manifest.target_kind)
            .ok()
            .and_then(|k| k.artefacts().map(|a| a.external_lines(manifest)))
            .unwrap_or_default()
    }

    /// Every kind's section of `drtool.toml`, in the registry's order.
    pub fn sections(&self) -> Vec<crate::config::Section> {
        self.kinds.iter().map(|k| k.section()).collect()
    }

    /// Every kind, in the registry's order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn TargetKind>> {
        self.kinds.iter()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }

    /// A restore's options for `target` of kind `kind`: `--existing` and the
    /// kind's own flags, read by the kind. A flag the kind does not declare is
    /// refused by name, with the ones it does.
    pub fn restore_options(
        &self,
        (target, kind): (&str, &str),
        existing: Option<super::Existing>,
        flags: &FlagValues,
    ) -> Result<RestoreOptions, Error> {
        let k = self.get(kind)?;
        if let Some(flag) = flags.undeclared(k.restore_flags()).first() {
            return Err(super::options::undeclared(
                flag,
                target,
                kind,
                k.restore_flags(),
            ));
        }
        for spec in k.restore_flags() {
            flags.check_shape(spec)?;
            if let Some(needs) = spec.needs
                && flags.on(spec.long)
                && flags.values(needs).is_empty()
            {
                return Err(Error::input(format!(
                    "--{} means something only with --{needs}: add --{needs}, or leave --{} out",
                    spec.long, spec.long
                )));
            }
        }
        // A list given as `a,b` (a drill's `include: a,b`) is split as the
        // command line splits `--include a,b`.
        let mut flags = flags.clone();
        for spec in k
            .restore_flags()
            .iter()
            .filter(|s| s.shape == FlagShape::List)
        {
            if let Some(values) = flags.0.get_mut(spec.long) {
                *values = values
                    .iter()
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect();
            }
        }
        Ok(RestoreOptions {
            existing,
            kind: k.restore_options(&flags)?,
            with_canaries: false,
        })
    }

    /// The on/off restore options of a kind (none for a kind this drtool
    /// lacks), as the dashboard's wizard offers them.
    pub fn restore_switches(&self, kind: &str) -> Vec<&'static str> {
        self.get(kind)
            .map(|k| {
                k.restore_flags()
                    .iter()
                    .filter(|f| f.shape == FlagShape::Switch && f.needs.is_none())
                    .map(|f| f.long)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The drills of the kind that declares probe `name`.
    pub fn probe_kind(&self, name: &str) -> Option<&dyn Drills> {
        self.kinds
            .iter()
            .filter_map(|k| k.drills())
            .find(|d| d.probe_names().contains(&name))
    }

    /// The drills of the kind that declares fault `name`.
    pub fn fault_kind(&self, name: &str) -> Option<&dyn Drills> {
        self.kinds
            .iter()
            .filter_map(|k| k.drills())
            .find(|d| d.fault_names().contains(&name))
    }

    /// Every kind's fault names, in the registry's order.
    pub fn fault_names(&self) -> Vec<&'static str> {
        self.kinds
            .iter()
            .filter_map(|k| k.drills())
            .flat_map(|d| d.fault_names().iter().copied())
            .collect()
    }

    /// The kind whose drills name canary `name`.
    pub fn canary_kind(&self, name: &str) -> Option<&'static str> {
        self.kinds
            .iter()
            .filter_map(|k| k.drills())
            .find(|d| d.canary_name() == Some(name))
            .map(|d| d.name())
    }

    /// Every kind's canary name, in the registry's order.
    pub fn canary_names(&self) -> Vec<&'static str> {
        self.kinds
            .iter()
            .filter_map(|k| k.drills())
            .filter_map(|d| d.canary_name())
            .collect()
    }

    /// Every kind's probe names, in the registry's order.
    pub fn probe_names(&self) -> Vec<&'static str> {
        self.kinds
            .iter()
            .filter_map(|k| k.drills())
            .flat_map(|d| d.probe_names().iter().copied())
            .collect()
    }

    /// Every kind's restore flags, each long name once (the first kind to
    /// declare one describes it), as `drtool restore` offers them.
    pub fn all_restore_flags(&self) -> Vec<FlagSpec> {
        super::options::once_each(
            self.kinds
                .iter()
                .flat_map(|k| k.restore_flags().iter().copied()),
        )
    }

    pub fn get(&self, name: &str) -> Result<&Arc<dyn TargetKind>, Error> {
        self.kinds.iter().find(|k| k.name() == name).ok_or_else(|| {
            Error::input(format!(
                "no target kind {name:?} in this drtool (known: {})",
                self.names().join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovered_names_and_strings_are_safe_in_toml() {
        assert_eq!(target_name("ns-", "Lab_Shop"), "ns-lab-shop");
        assert_eq!(toml_string("a\"b"), "\"a\\\"b\"");
        assert_eq!(toml_list(&["x".into(), "y".into()]), "[\"x\", \"y\"]");
        let flags = FlagValues(
            [(
                "etcd".to_string(),
                vec!["us-east-1=http://a:2379,http://b:2379".to_string()],
            )]
            .into(),
        );
        assert_eq!(
            flags.pairs("etcd"),
            [(
                "us-east-1".to_string(),
                "http://a:2379,http://b:2379".to_string()
            )]
        );
        assert_eq!(flags.value("missing"), None);
    }
}
