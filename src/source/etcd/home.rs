//! The etcd kind as the engine sees it: backups in `snapshot` or `keys` mode,
//! restore plans (gather facts, then [`decide_keys`] / [`decide_snapshot`]),
//! and their execution.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use etcd_client::Client;
use serde::{Deserialize, Serialize};

use super::options::{EtcdRestoreOptions, FLAGS, PREFIX};
use super::restore::{
    KeysPlan, Select, SnapshotTool, apply_keys, find_snapshot_tool, plan_keys, restore_member,
};
use super::snapkeys::KeyLines;
use super::{
    Connection, EtcdError, KEYS, KEYS_NAME, PAYLOADS, SNAPSHOT, SNAPSHOT_NAME, connect, drill,
    keys, snapshot,
};
use super::{EtcdMember, EtcdMode, EtcdRegion, EtcdTarget};
use crate::archive::{Consistency, Manifest, PointId};
use crate::config::Target;
use crate::engine::events::Job;
use crate::engine::faults::{CanaryMark, KindFault, KindProbe};
use crate::engine::kind::{
    Applied, BackupShape, Clients, Consistent, DataSender, Discovery, Drills, KindPlan, Payload,
    PlanRequest, Reachability, Scratch, ScratchRestores, Taken, TargetKind, no_region_table,
    not_for_kind,
};
use crate::engine::options::{Existing, FlagSpec, FlagValues, KindOptions, RestoreOptions};
use crate::engine::point::PointData;
use crate::error::Error;

/// Connected clients, by endpoints: one connection per cluster per engine.
#[derive(Default)]
pub struct EtcdKind {
    clients: Clients<Vec<String>, Client>,
}

/// A member's part of a snapshot restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberPlan {
    pub name: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    /// Where an existing data dir is moved before the new one is made.
    pub move_aside_to: Option<PathBuf>,
    /// The data dir is a mount point (common: `/var/lib/etcd`), which cannot
    /// be renamed: its contents are moved aside inside it, and the new data
    /// is made inside it too and moved into place.
    #[serde(default)]
    pub in_place: bool,
}

/// What is at a member's data dir path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    Missing,
    Present,
    /// A directory that is a mount point.
    MountPoint,
}

impl DataDir {
    /// Looks at `path` (the one I/O of a snapshot plan's facts, with the tool).
    pub fn of(path: &Path) -> DataDir {
        match (path.exists(), is_mount_point(path)) {
            (false, _) => DataDir::Missing,
            (true, true) => DataDir::MountPoint,
            (true, false) => DataDir::Present,
        }
    }
}

/// Whether `path` is where a filesystem is mounted: its device differs from
/// its parent's (or it is its own parent, as `/` is).
pub fn is_mount_point(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        match std::fs::metadata(parent) {
            Ok(p) => p.dev() != meta.dev() || p.ino() == meta.ino(),
            Err(_) => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// An etcd restore, decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EtcdPlan {
    /// Replay keys into the region's cluster.
    EtcdKeys {
        connection: Connection,
        prefix: Option<String>,
        existing: Existing,
        /// Every transaction stays under this (the cluster's --max-request-bytes).
        max_request_bytes: u64,
        counts: Box<KeysPlan>,
        /// What a drill's cleanup deletes to undo the restore: the keys under
        /// this prefix, when the target held none of them before.
        #[serde(default)]
        undo_prefix: Option<String>,
        /// Keys under this (drill canary markers) are not restored.
        #[serde(default)]
        leave_out: Option<String>,
        /// The point is a snapshot: the keys chosen (`prefix`, `keys`) are
        /// read from it without etcd (a key-level restore).
        #[serde(default)]
        from_snapshot: bool,
        /// Exactly these keys, when any.
        #[serde(default)]
        keys: Vec<String>,
    },
    /// Materialize fresh member data dirs from a snapshot.
    EtcdSnapshot {
        tool: SnapshotTool,
        cluster_token: String,
        members: Vec<MemberPlan>,
    },
}

/// What a snapshot restore finds on this machine.
#[derive(Debug, Clone)]
pub struct SnapshotFacts {
    pub tool: SnapshotTool,
    /// Each configured member and what is at its data dir now.
    pub members: Vec<(EtcdMember, DataDir)>,
    pub cluster_token: String,
    /// Suffix for moved-aside data dirs.
    pub stamp: String,
}

/// Decides a keys restore from the counts made against the target.
pub fn decide_keys(
    region: &str,
    (connection, max_request_bytes): (Connection, u64),
    counts: KeysPlan,
    options: &RestoreOptions,
) -> Result<(EtcdPlan, bool), Error> {
    let existing = options.existing();
    let own = options.own::<EtcdRestoreOptions>()?;
    if !counts.missing.is_empty() {
        return Err(Error::input(format!(
            "the point does not hold {}: check the names with `drtool ls` (keys are exact; use --prefix for a subtree)",
            counts.missing.join(", ")
        )));
    }
    if own.objects && counts.encrypted > 0 && !own.allow_encrypted {
        return Err(Error::input(format!(
            "{} of the objects are encrypted at rest in the point ({}): restored, they read back only where the API server has the same encryption key; \
             add --allow-encrypted to restore them anyway",
            counts.encrypted,
            counts.encrypted_examples.join(", ")
        )));
    }
    if existing == Existing::Fail && counts.existing > 0 {
        return Err(Error::exists(format!(
            "{} of the selected keys already exist in region {region} (e.g. {}; {} hold another value, {} the point's) \
             and --existing fail is in effect: use --existing skip or --existing overwrite (`--dry-run` shows how they differ), \
             or restore into an empty cluster",
            counts.existing,
            counts.existing_examples.join(", "),
            counts.differ,
            counts.identical
        )));
    }
    let destructive = existing == Existing::Overwrite && counts.existing > 0;
    Ok((
        EtcdPlan::EtcdKeys {
            connection,
            prefix: own.prefix,
            existing,
            max_request_bytes,
            counts: Box::new(counts),
            undo_prefix: None,
            leave_out: None,
            from_snapshot: false,
            keys: own.keys,
        },
        destructive,
    ))
}

/// What a key-level restore reads of a snapshot: the prefix, or the
/// longest one all the chosen keys share.
fn snapshot_prefix(own: &EtcdRestoreOptions) -> String {
    if let Some(p) = &own.prefix {
        return p.clone();
    }
    let mut common: &str = own.keys.first().map_or("", String::as_str);
    for k in &own.keys {
        let n = common
            .char_indices()
            .zip(k.chars())
            .find(|((_, a), b)| a != b)
            .map_or(common.len().min(k.len()), |((i, _), _)| i);
        common = &common[..n];
    }
    common.to_string()
}

/// The options a snapshot point cannot honour.
fn snapshot_options(point: &str, options: &RestoreOptions) -> Result<(), Error> {
    let why = format!("point {point} is a snapshot, restored into fresh member data dirs");
    if options.own::<EtcdRestoreOptions>()?.prefix.is_some() {
        return Err(RestoreOptions::not_for_point(PREFIX, &why));
    }
    if options.existing.is_some() {
        return Err(RestoreOptions::not_for_point(
            crate::engine::options::EXISTING,
            &format!("{why}; existing data dirs are always moved aside, never written into"),
        ));
    }
    Ok(())
}

/// Decides a snapshot restore: which data dirs are made and which moved aside.
pub fn decide_snapshot(
    target: &str,
    region: &str,
    point: &str,
    facts: SnapshotFacts,
    options: &RestoreOptions,
) -> Result<(EtcdPlan, bool), Error> {
    snapshot_options(point, options)?;
    if facts.members.is_empty() {
        return Err(EtcdError::NeedsMembers {
            target: target.to_string(),
            region: region.to_string(),
        }
        .into());
    }
    let members: Vec<MemberPlan> = facts
        .members
        .into_iter()
        .map(|(m, found)| {
            let replaced = format!(".drtool-replaced-{}", facts.stamp);
            let move_aside_to = match found {
                DataDir::Missing => None,
                DataDir::Present => {
                    let mut aside = m.data_dir.clone().into_os_string();
                    aside.push(&replaced);
                    Some(PathBuf::from(aside))
                }
                DataDir::MountPoint => Some(m.data_dir.join(&replaced)),
            };
            MemberPlan {
                move_aside_to,
                in_place: found == DataDir::MountPoint,
                name: m.name,
                peer_url: m.peer_url,
                data_dir: m.data_dir,
            }
        })
        .collect();
    let destructive = members.iter().any(|m| m.move_aside_to.is_some());
    Ok((
        EtcdPlan::EtcdSnapshot {
            tool: facts.tool,
            cluster_token: facts.cluster_token,
            members,
        },
        destructive,
    ))
}

/// The plan's line on which keys a keys restore writes.
fn chosen_keys(
    keys: &[String],
    prefix: Option<&str>,
    counts: &KeysPlan,
    from_snapshot: bool,
) -> String {
    if !keys.is_empty() {
        let shown: Vec<&str> = keys.iter().take(10).map(String::as_str).collect();
        return format!(
            "keys       {} named{}: {}{}",
            keys.len(),
            if from_snapshot {
                ", read from the snapshot without etcd (the rest of the cluster is not touched)"
            } else {
                ""
            },
            shown.join(", "),
            if keys.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    if from_snapshot {
        return format!(
            "keys       {} under prefix {:?} in the snapshot (read from the file, without etcd; the rest of the cluster is not touched)",
            counts.in_point,
            prefix.unwrap_or_default()
        );
    }
    format!(
        "keys       {} in point, {} selected{}",
        counts.in_point,
        counts.selected,
        prefix
            .map(|p| format!(" by prefix {p:?}"))
            .unwrap_or_default()
    )
}

/// How the existing keys differ from the point: counts, then the first
/// keys with the lines that differ.
fn differing_lines(counts: &KeysPlan) -> Vec<String> {
    if counts.identical + counts.differ == 0 {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "differ     {} of them hold another value ({} identical)",
        counts.differ, counts.identical
    )];
    for d in &counts.differing {
        lines.push(format!(
            "           {} ({} B live -> {} B in the point{})",
            d.key,
            d.live_size,
            d.point_size,
            if d.text_diff.is_some() {
                "; live --- / point +++"
            } else {
                ", not text"
            }
        ));
        if let Some(diff) = &d.text_diff {
            lines.extend(
                diff.lines()
                    .filter(|l| !l.starts_with("--- ") && !l.starts_with("+++ "))
                    .map(|l| format!("             {l}")),
            );
        }
    }
    if counts.differ > counts.differing.len() as u64 {
        lines.push(format!(
            "           ... and {} more",
            counts.differ - counts.differing.len() as u64
        ));
    }
    lines
}

/// The plan's lines, as `restore --dry-run` prints them.
fn lines(plan: &EtcdPlan) -> Vec<String> {
    let mut lines = Vec::new();
    match plan {
        EtcdPlan::EtcdKeys {
            connection,
            prefix,
            existing,
            max_request_bytes,
            counts,
            from_snapshot,
            keys,
            ..
        } => {
            lines.push(format!(
                "into       etcd {} (transactions under {max_request_bytes} bytes)",
                connection.endpoints.join(",")
            ));
            lines.push(chosen_keys(keys, prefix.as_deref(), counts, *from_snapshot));
            lines.push(format!("create     {}", counts.create));
            if counts.encrypted > 0 {
                lines.push(format!(
                    "encrypted  {} values encrypted at rest by Kubernetes (e.g. {}): they read back only where the same encryption key is configured",
                    counts.encrypted,
                    counts.encrypted_examples.join(", ")
                ));
            }
            if counts.canaries_left_out > 0 {
                lines.push(format!(
                    "left out   {} drill canary markers (only a drill's own restore brings them back)",
                    counts.canaries_left_out
                ));
            }
            let verb = match existing {
                Existing::Skip => "skip",
                Existing::Overwrite => "OVERWRITE",
                Existing::Fail => "CONFLICT",
            };
            lines.push(format!("{verb:<10} {}", counts.existing));
            for k in &counts.existing_examples {
                lines.push(format!("           e.g. {k}"));
            }
            lines.extend(differing_lines(counts));
        }
        EtcdPlan::EtcdSnapshot {
            tool,
            cluster_token,
            members,
        } => {
            lines.push(format!(
                "into       new data dirs via {} (cluster token {cluster_token})",
                tool.program.display()
            ));
            lines.push(
                "canaries   a snapshot comes back whole: drill canary markers in it (/drtool-canary/) come back too"
                    .into(),
            );
            for m in members {
                lines.push(format!(
                    "member     {} {} -> {}",
                    m.name,
                    m.peer_url,
                    m.data_dir.display()
                ));
                match (&m.move_aside_to, m.in_place) {
                    (Some(aside), false) => lines.push(format!(
                        "           existing data dir will be MOVED to {}",
                        aside.display()
                    )),
                    (Some(aside), true) => lines.push(format!(
                        "           the data dir is a mount point: its contents will be MOVED to {} (inside it)",
                        aside.display()
                    )),
                    (None, _) => {}
                }
            }
        }
    }
    lines
}

pub(super) fn spec(target: &Target) -> Result<&EtcdTarget, Error> {
    crate::engine::kind::section(target, "etcd")
}

fn region_of<'t>(target: &'t Target, region: &str) -> Result<&'t EtcdRegion, Error> {
    spec(target)?
        .regions
        .get(region)
        .ok_or_else(|| no_region_table(target, region))
}

impl EtcdKind {
    pub(super) async fn client(&self, connection: &Connection) -> Result<Client, Error> {
        self.clients
            .get(&connection.endpoints, || async {
                connect(connection).await.map_err(Error::from)
            })
            .await
    }

    /// Plans a keys restore: of a keys point, or (`from_snapshot`) of the
    /// keys under the options' prefix in a snapshot point.
    async fn plan_keys(
        &self,
        req: &PlanRequest<'_>,
        region: &EtcdRegion,
        data: &PointData,
        from_snapshot: bool,
    ) -> Result<KindPlan, Error> {
        let connection = Connection::of(region);
        let mut client = self.client(&connection).await?;
        req.job
            .phase("verifying the point and comparing with the target");
        let own = req.options.own::<EtcdRestoreOptions>()?;
        let read = from_snapshot.then(|| snapshot_prefix(&own));
        let (stream, rx) = KeyLines::open(data, read.as_deref(), req.job).await?;
        // Only a drill's own restore brings drill canary markers back.
        let leave_out = if req.options.with_canaries {
            None
        } else {
            Some(super::drill::canary_root(spec(req.target)?))
        };
        let counted = plan_keys(
            &mut client,
            &connection.endpoints,
            rx,
            Select {
                prefix: own.prefix.as_deref(),
                keys: &own.keys,
                leave_out: leave_out.as_deref(),
            },
            req.job,
        )
        .await;
        let counts = stream.finish(counted).await?;
        let (mut plan, destructive) = decide_keys(
            req.region,
            (connection, region.max_request_bytes),
            counts,
            req.options,
        )?;
        if let EtcdPlan::EtcdKeys {
            leave_out: l,
            from_snapshot: f,
            ..
        } = &mut plan
        {
            *l = leave_out;
            *f = from_snapshot;
        }
        // A drill's cleanup deletes a prefix; chosen keys are never one.
        if let EtcdPlan::EtcdKeys {
            undo_prefix,
            prefix,
            counts,
            keys,
            ..
        } = &mut plan
            && counts.existing == 0
            && keys.is_empty()
        {
            *undo_prefix = prefix
                .clone()
                .or_else(|| spec(req.target).ok()?.prefix.clone());
        }
        KindPlan::new(&plan, lines(&plan), destructive, true)
    }

    fn plan_snapshot(
        &self,
        req: &PlanRequest<'_>,
        region: &EtcdRegion,
        point: &str,
    ) -> Result<KindPlan, Error> {
        // Option errors come before facts that need tools on this machine.
        snapshot_options(point, req.options)?;
        let facts = SnapshotFacts {
            tool: find_snapshot_tool()?,
            members: region
                .members
                .iter()
                .map(|m| (m.clone(), DataDir::of(&m.data_dir)))
                .collect(),
            cluster_token: region.cluster_token.clone(),
            stamp: Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
        };
        let (plan, destructive) =
            decide_snapshot(&req.target.name, req.region, point, facts, req.options)?;
        KindPlan::new(&plan, lines(&plan), destructive, false)
    }
}

/// The moment an etcd point is consistent with (`kind: etcd` in manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EtcdConsistency {
    Etcd {
        /// The cluster revision the point holds (keys: read at exactly this one;
        /// snapshot: the revision observed just before the snapshot started).
        revision: i64,
        /// When that revision was observed.
        observed_at: DateTime<Utc>,
        /// A snapshot's revision read from the snapshot's own pages: exactly
        /// the state it holds (what a stream starts after). Points taken
        /// before drtool read it have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot_revision: Option<i64>,
    },
}

#[async_trait]
impl TargetKind for EtcdKind {
    fn section(&self) -> crate::config::Section {
        ("etcd", super::config::parse_all)
    }

    fn name(&self) -> &'static str {
        "etcd"
    }

    fn payloads(&self) -> &'static [Payload] {
        &PAYLOADS
    }

    fn consistent(&self, c: &Consistency) -> Option<Consistent> {
        let EtcdConsistency::Etcd {
            revision,
            observed_at,
            snapshot_revision,
        } = c.read().ok()?;
        Some(Consistent {
            at: observed_at,
            text: match snapshot_revision {
                Some(r) => format!(
                    "etcd revision {r} (read from the snapshot; at least {revision} observed {})",
                    observed_at.to_rfc3339()
                ),
                None => format!(
                    "etcd revision {revision} (observed {})",
                    observed_at.to_rfc3339()
                ),
            },
        })
    }

    fn backup_shape(&self, target: &Target) -> Result<BackupShape, Error> {
        Ok(BackupShape {
            payload: match spec(target)?.mode {
                EtcdMode::Snapshot => SNAPSHOT,
                EtcdMode::Keys => KEYS,
            },
            has_data: true,
        })
    }

    async fn backup(
        &self,
        target: &Target,
        _point: &PointId,
        data: Option<DataSender>,
        job: &Job,
    ) -> Result<Taken, Error> {
        let spec = spec(target)?;
        let tx = data.ok_or_else(|| Error::failed("an etcd backup needs a data stream"))?;
        let region = spec
            .regions
            .get(&target.home)
            .ok_or_else(|| EtcdError::NoEndpoints {
                target: target.name.clone(),
                region: target.home.clone(),
            })?;
        job.phase("connecting to etcd");
        let connection = Connection::of(region);
        let mut client = self.client(&connection).await?;
        job.phase("streaming");
        let meta = match spec.mode {
            EtcdMode::Snapshot => snapshot(&mut client, &connection.endpoints, tx).await,
            EtcdMode::Keys => {
                keys(
                    &mut client,
                    &connection.endpoints,
                    spec.prefix.as_deref(),
                    tx,
                    job,
                )
                .await
            }
        }?;
        if let Some(Err(why)) = &meta.snapshot_revision {
            job.warn(format!(
                "the snapshot's revision could not be read from its pages ({why}); the point restores \
                 as any snapshot does, but a stream cannot start from it"
            ));
        }
        Ok(Taken {
            consistency: Consistency::of(&EtcdConsistency::Etcd {
                revision: meta.revision,
                observed_at: meta.observed_at,
                snapshot_revision: meta.snapshot_revision.and_then(Result::ok),
            })
            .map_err(|e| Error::failed(format!("cannot record the point's revision: {e}")))?,
            items: meta.items,
            external: None,
        })
    }

    fn restore_flags(&self) -> &'static [FlagSpec] {
        FLAGS
    }

    fn restore_options(&self, flags: &FlagValues) -> Result<KindOptions, Error> {
        EtcdRestoreOptions::parse(flags)
    }

    async fn plan_restore(&self, req: PlanRequest<'_>) -> Result<KindPlan, Error> {
        let region = region_of(req.target, req.region)?;
        let Some((manifest, data)) = &req.point else {
            return Err(Error::failed("an etcd restore needs a recovery point"));
        };
        match manifest.payload.as_str() {
            KEYS_NAME => self.plan_keys(&req, region, data, false).await,
            // A prefix of a snapshot point: those keys, into the live cluster.
            SNAPSHOT_NAME if req.options.own::<EtcdRestoreOptions>()?.key_level() => {
                self.plan_keys(&req, region, data, true).await
            }
            SNAPSHOT_NAME => self.plan_snapshot(&req, region, &manifest.point_id),
            other => Err(EtcdError::NotEtcdPoint {
                point: manifest.point_id.to_string(),
                payload: other.to_string(),
            }
            .into()),
        }
    }

    async fn apply(
        &self,
        plan: &KindPlan,
        point: Option<PointData>,
        job: &Job,
    ) -> Result<Applied, Error> {
        let data = point.ok_or_else(|| Error::failed("an etcd restore needs its point"))?;
        match plan.action::<EtcdPlan>()? {
            EtcdPlan::EtcdKeys {
                connection,
                prefix,
                existing,
                max_request_bytes,
                leave_out,
                from_snapshot,
                keys,
                ..
            } => {
                let mut client = self.client(&connection).await?;
                job.phase("replaying keys");
                let own = EtcdRestoreOptions {
                    prefix: prefix.clone(),
                    keys: keys.clone(),
                    ..EtcdRestoreOptions::default()
                };
                let read = from_snapshot.then(|| snapshot_prefix(&own));
                let (stream, rx) = KeyLines::open(&data, read.as_deref(), job).await?;
                let applied = apply_keys(
                    &mut client,
                    &connection.endpoints,
                    rx,
                    (
                        Select {
                            prefix: prefix.as_deref(),
                            keys: &keys,
                            leave_out: leave_out.as_deref(),
                        },
                        existing,
                        max_request_bytes,
                    ),
                    job,
                )
                .await;
                let out = stream.finish(applied).await?;
                let mut message = format!(
                    "{} keys created, {} overwritten, {} skipped in {}",
                    out.created,
                    out.overwritten,
                    out.skipped,
                    connection.endpoints.join(",")
                );
                if let Some(leases) = out.leases.in_words() {
                    message.push_str(&format!(" ({leases})"));
                }
                Ok(Applied {
                    message,
                    counts: BTreeMap::from([
                        ("created".to_string(), out.created),
                        ("overwritten".to_string(), out.overwritten),
                        ("skipped".to_string(), out.skipped),
                        ("leases".to_string(), out.leases.leases),
                    ]),
                    failures: Vec::new(),
                })
            }
            EtcdPlan::EtcdSnapshot {
                tool,
                cluster_token,
                members,
            } => materialize(&data, &tool, &cluster_token, &members, None, job).await,
        }
    }

    async fn holds_secrets(&self, target: &Target) -> Option<String> {
        const SECRETS: &str = "/registry/secrets/";
        let spec = spec(target).ok()?;
        let covered = match (spec.mode, &spec.prefix) {
            (EtcdMode::Snapshot, _) | (EtcdMode::Keys, None) => true,
            (EtcdMode::Keys, Some(p)) => SECRETS.starts_with(p.as_str()) || p.starts_with(SECRETS),
        };
        if !covered {
            return None;
        }
        // A Kubernetes etcd is one that holds Secrets: ask how many.
        let connection = Connection::of(spec.regions.get(&target.home)?);
        let mut client = self.client(&connection).await.ok()?;
        let found = client
            .get(
                SECRETS,
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .ok()?
            .count();
        (found > 0).then(|| {
            format!("the etcd cluster holds {found} Kubernetes Secrets under {SECRETS}, and they are backed up")
        })
    }

    async fn reachability(&self, target: &Target) -> Vec<Reachability> {
        let Ok(spec) = spec(target) else {
            return Vec::new();
        };
        let checks = spec.regions.iter().map(|(region, r)| async move {
            let connection = Connection::of(r);
            let result = self.client(&connection).await;
            Reachability {
                misconfigured: false,
                region: region.clone(),
                what: format!("target {}", target.name),
                address: connection.endpoints.join(","),
                reachable: result.is_ok(),
                detail: result.err().map_or_else(|| "ok".into(), |e| e.to_string()),
            }
        });
        futures::future::join_all(checks).await
    }

    fn drills(&self) -> Option<&dyn Drills> {
        Some(self)
    }

    fn scratch_restores(&self) -> Option<&dyn ScratchRestores> {
        Some(self)
    }

    fn contents(&self) -> Option<&dyn crate::engine::kind::Contents> {
        Some(self)
    }

    fn streams(&self) -> Option<&dyn crate::engine::stream::Streams> {
        Some(self)
    }

    fn discovery(&self) -> Option<&dyn Discovery> {
        Some(self)
    }
}

#[async_trait]
impl Drills for EtcdKind {
    fn canary_name(&self) -> Option<&'static str> {
        Some("etcd")
    }

    async fn fault(
        &self,
        target: &Target,
        region: &str,
        fault: &KindFault,
        _job: &Job,
    ) -> Result<String, Error> {
        match fault.name() {
            drill::STOP_MEMBER | drill::KILL_MEMBER => {
                let m: drill::MemberFault = fault.get()?;
                let kill = fault.name() == drill::KILL_MEMBER;
                drill::stop_member(m.command.as_deref(), m.pid_file.as_deref(), kill).await
            }
            drill::DELETE_KEYS => {
                let prefix = fault.get::<drill::DeleteKeysFault>()?.prefix;
                let connection = Connection::of(region_of(target, region)?);
                let mut client = self.client(&connection).await?;
                let n = drill::delete_prefix(&mut client, &connection.endpoints, &prefix).await?;
                Ok(format!("deleted {n} keys under {prefix}"))
            }
            other => Err(not_for_kind("etcd", &target.name, other)),
        }
    }

    fn fault_names(&self) -> &'static [&'static str] {
        drill::FAULTS
    }

    fn read_fault(
        &self,
        name: &str,
        at: (&str, &str),
        fields: serde_json::Value,
    ) -> Result<(KindFault, String), Error> {
        drill::read_fault(name, at, fields)
    }

    fn probe_names(&self) -> &'static [&'static str] {
        &[drill::KEY_PROBE]
    }

    fn read_probe(
        &self,
        _name: &str,
        fields: serde_json::Value,
    ) -> Result<(KindProbe, String), Error> {
        KindProbe::read(drill::KEY_PROBE, fields, |p: &drill::KeyProbe| {
            format!("etcd key {}", p.key)
        })
    }

    async fn probe(
        &self,
        target: &Target,
        region: &str,
        probe: &KindProbe,
    ) -> Result<String, Error> {
        let p: drill::KeyProbe = probe.get()?;
        let connection = Connection::of(region_of(target, region)?);
        let mut client = self.client(&connection).await?;
        drill::probe_key(
            &mut client,
            &connection.endpoints,
            &p.key,
            p.equals.as_deref(),
        )
        .await
    }

    async fn canary_write(
        &self,
        target: &Target,
        region: &str,
        run: &str,
        mark: CanaryMark,
    ) -> Result<(), Error> {
        let connection = Connection::of(region_of(target, region)?);
        let mut client = self.client(&connection).await?;
        let prefix = drill::canary_prefix(spec(target)?, run);
        drill::canary_write(&mut client, &connection.endpoints, &prefix, mark).await
    }

    async fn canary_read(
        &self,
        target: &Target,
        region: &str,
        run: &str,
    ) -> Result<Vec<CanaryMark>, Error> {
        let connection = Connection::of(region_of(target, region)?);
        let mut client = self.client(&connection).await?;
        let prefix = drill::canary_prefix(spec(target)?, run);
        drill::canary_read(&mut client, &connection.endpoints, &prefix).await
    }

    async fn canary_clear(&self, target: &Target, region: &str, run: &str) -> Result<u64, Error> {
        let connection = Connection::of(region_of(target, region)?);
        let mut client = self.client(&connection).await?;
        let prefix = drill::canary_prefix(spec(target)?, run);
        drill::delete_prefix(&mut client, &connection.endpoints, &prefix).await
    }

    async fn undo(&self, plan: &KindPlan, _job: &Job) -> Result<String, Error> {
        match plan.action::<EtcdPlan>()? {
            EtcdPlan::EtcdKeys {
                connection,
                undo_prefix: Some(prefix),
                ..
            } => {
                let mut client = self.client(&connection).await?;
                let n = drill::delete_prefix(&mut client, &connection.endpoints, &prefix).await?;
                Ok(format!(
                    "deleted the {n} restored keys under {prefix} in {}",
                    connection.endpoints.join(",")
                ))
            }
            EtcdPlan::EtcdKeys { .. } => Ok(
                "the restore wrote into keys that existed before (or the whole keyspace): left as restored"
                    .into(),
            ),
            EtcdPlan::EtcdSnapshot { members, .. } => {
                // A member started on a restored data dir keeps running on
                // it: deleting it under etcd would lose what it wrote since.
                // It is left in place, and the cleanup says so.
                let busy: Vec<String> = members
                    .iter()
                    .flat_map(|m| {
                        processes_using(&m.data_dir)
                            .into_iter()
                            .map(move |(pid, name)| {
                                format!("{} ({}) by {name} pid {pid}", m.name, m.data_dir.display())
                            })
                    })
                    .collect();
                if !busy.is_empty() {
                    return Ok(format!(
                        "LEFT IN PLACE: the restored data dirs are in use: {}; stop those processes, then put the originals back by hand (the plan names where they were moved)",
                        busy.join(", ")
                    ));
                }
                let all: Vec<&MemberPlan> = members.iter().collect();
                Ok(roll_back(&all).join("; "))
            }
        }
    }
}

#[async_trait]
impl ScratchRestores for EtcdKind {
    async fn scratch(
        &self,
        target: &Target,
        _region: &str,
        manifest: &Manifest,
        _job: &Job,
    ) -> Result<Option<Scratch>, Error> {
        // An etcd of its own on free ports: the same wherever the copy is.
        super::scratch::scratch(target, spec(target)?, manifest).await
    }
}

/// A stream's segments to replay into a snapshot before it is handed over.
pub(super) struct Forward {
    pub segments: tokio::sync::mpsc::Receiver<Result<Vec<u8>, Error>>,
    pub to: u64,
}

/// Downloads and verifies the snapshot into a file next to the first data dir,
/// brings it forward by a stream's replay when asked (on a scratch etcd; see
/// [`super::scratch::replay_on_scratch`]), then makes each member's data dir.
/// On a failure or a cancellation every data dir made so far is removed and
/// every moved-aside one is put back; nothing is touched before the replay
/// has succeeded.
pub(super) async fn materialize(
    data: &PointData,
    tool: &SnapshotTool,
    cluster_token: &str,
    members: &[MemberPlan],
    forward: Option<Forward>,
    job: &Job,
) -> Result<Applied, Error> {
    let first = members
        .first()
        .ok_or_else(|| Error::input("no members to restore"))?;
    // Same filesystem as the data dirs, and a place the operator chose for etcd data.
    let work = first
        .data_dir
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&work)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", work.display())))?;
    let file = work.join(format!(
        ".drtool-{}-{:08x}.snapshot.db",
        data.point().id,
        rand::random::<u32>()
    ));
    job.phase("downloading and verifying the snapshot");
    data.stream().await?.into_file(&file).await?;
    let _remove = RemoveOnDrop(file.clone());
    let (file, replayed, _remove_replayed) = match forward {
        None => (file, None, None),
        Some(f) => {
            let (replayed, applied) =
                super::scratch::replay_on_scratch(tool, &file, &work, f.segments, f.to, job)
                    .await?;
            let remove = RemoveOnDrop(replayed.clone());
            (replayed, Some(applied), Some(remove))
        }
    };
    job.phase("materializing data dirs");
    let all: Vec<EtcdMember> = members
        .iter()
        .map(|m| EtcdMember {
            name: m.name.clone(),
            peer_url: m.peer_url.clone(),
            data_dir: m.data_dir.clone(),
        })
        .collect();
    let mut done: Vec<&MemberPlan> = Vec::new();
    for (k, (plan, member)) in members.iter().zip(&all).enumerate() {
        let made = match prepare(plan) {
            Ok(()) => {
                done.push(plan);
                make_member(plan, member, tool, &file, &all, cluster_token, job).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            let mut undone = roll_back(&done);
            undone.extend(
                members[k + 1..]
                    .iter()
                    .map(|m| format!("{}: not touched (its data dir is as it was)", m.name)),
            );
            let e = if members.len() > 1 {
                e.noted(format!(
                    "member {} of {} ({}) failed; the members restored before it were rolled back",
                    k + 1,
                    members.len(),
                    plan.name
                ))
            } else {
                e
            };
            return Err(with_rollback(e, &undone));
        }
    }
    Ok(made(&done, replayed))
}

/// What a materialize did: the data dirs made, after what the replay did.
fn made(done: &[&MemberPlan], replayed: Option<Applied>) -> Applied {
    let list: Vec<String> = done
        .iter()
        .map(|m| format!("{} -> {}", m.name, m.data_dir.display()))
        .collect();
    let ready = format!(
        "data dirs ready ({}); start each member with etcd --name NAME --data-dir DIR and its peer/client URLs",
        list.join(", ")
    );
    let mut applied = match replayed {
        Some(mut a) => {
            a.message = format!(
                "{ready}; {} (on a scratch etcd, before the data dirs were made)",
                a.message
            );
            a
        }
        None => Applied {
            message: ready,
            counts: BTreeMap::new(),
            failures: Vec::new(),
        },
    };
    applied
        .counts
        .insert("members".to_string(), done.len() as u64);
    applied
}

/// Makes one member's data dir. A mount point is filled through a staging
/// dir inside it (same filesystem), whose contents are then moved up.
async fn make_member(
    plan: &MemberPlan,
    member: &EtcdMember,
    tool: &SnapshotTool,
    file: &Path,
    all: &[EtcdMember],
    cluster_token: &str,
    job: &Job,
) -> Result<(), Error> {
    if !plan.in_place {
        return restore_member(tool, file, member, all, cluster_token, job).await;
    }
    let staging = plan
        .data_dir
        .join(format!(".drtool-new-{:08x}", rand::random::<u32>()));
    let staged = EtcdMember {
        data_dir: staging.clone(),
        ..member.clone()
    };
    let made = restore_member(tool, file, &staged, all, cluster_token, job).await;
    let moved = made.and_then(|()| {
        move_entries(&staging, &plan.data_dir, None).map_err(|e| {
            Error::failed(format!(
                "cannot move the new data from {} into {}: {e}",
                staging.display(),
                plan.data_dir.display()
            ))
        })
    });
    let _ = std::fs::remove_dir_all(&staging);
    moved
}

/// Moves every entry of `from` into `to` (renames: one filesystem), except
/// `skip`.
fn move_entries(from: &Path, to: &Path, skip: Option<&Path>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if Some(path.as_path()) == skip {
            continue;
        }
        if let Some(name) = path.file_name() {
            std::fs::rename(&path, to.join(name))?;
        }
    }
    Ok(())
}

/// Frees a member's data dir path: moves an existing dir aside as planned (a
/// mount point's contents, inside it), and refuses one that appeared after
/// planning (it is not ours to replace).
fn prepare(plan: &MemberPlan) -> Result<(), Error> {
    let cannot = |aside: &Path, e: std::io::Error| {
        Error::failed(format!(
            "cannot move {} aside to {}: {e}",
            plan.data_dir.display(),
            aside.display()
        ))
    };
    match (&plan.move_aside_to, plan.data_dir.exists()) {
        (Some(aside), true) if plan.in_place => {
            std::fs::create_dir(aside).map_err(|e| cannot(aside, e))?;
            move_entries(&plan.data_dir, aside, Some(aside)).map_err(|e| cannot(aside, e))
        }
        (Some(aside), true) => std::fs::rename(&plan.data_dir, aside).map_err(|e| {
            let busy = e.raw_os_error() == Some(16);
            let mut err = cannot(aside, e);
            if busy {
                err = err.noted(
                    "it became a mount point after the plan was made: plan the restore again",
                );
            }
            err
        }),
        (None, true) => Err(EtcdError::DataDirAppeared {
            path: plan.data_dir.clone(),
        }
        .into()),
        (_, false) => Ok(()),
    }
}

/// Removes the data dirs made by this restore and puts moved-aside ones back;
/// returns one line per member saying where its data is now.
fn roll_back(done: &[&MemberPlan]) -> Vec<String> {
    let mut report = Vec::new();
    for m in done.iter().rev() {
        // The original was moved aside and is back already (the restore
        // rolled itself back, or never moved it): what is there is the
        // original, never to be removed.
        if let Some(aside) = &m.move_aside_to
            && !aside.exists()
        {
            report.push(format!(
                "{}: the original data dir is in place at {}; nothing to undo",
                m.name,
                m.data_dir.display()
            ));
            continue;
        }
        if m.in_place {
            report.push(roll_back_in_place(m));
            continue;
        }
        if m.data_dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&m.data_dir)
        {
            report.push(format!(
                "could not remove the new data dir {}: {e}",
                m.data_dir.display()
            ));
            continue;
        }
        match &m.move_aside_to {
            Some(aside) if aside.exists() => match std::fs::rename(aside, &m.data_dir) {
                Ok(()) => report.push(format!(
                    "{}: original data dir put back at {}",
                    m.name,
                    m.data_dir.display()
                )),
                Err(e) => report.push(format!(
                    "{}: the original data dir is still at {} ({e}): move it back to {} by hand",
                    m.name,
                    aside.display(),
                    m.data_dir.display()
                )),
            },
            _ => report.push(format!(
                "{}: no data dir was there before; none is left",
                m.name
            )),
        }
    }
    report
}

/// A mount point's rollback: what the restore made inside it goes, what was
/// moved aside inside it comes back.
fn roll_back_in_place(m: &MemberPlan) -> String {
    let aside = m.move_aside_to.as_deref();
    let cleared = std::fs::read_dir(&m.data_dir).and_then(|entries| {
        for entry in entries {
            let path = entry?.path();
            if Some(path.as_path()) != aside {
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    });
    if let Err(e) = cleared {
        return format!(
            "{}: could not clear what the restore made in {}: {e}",
            m.name,
            m.data_dir.display()
        );
    }
    match aside {
        Some(aside) if aside.exists() => {
            match move_entries(aside, &m.data_dir, None).and_then(|()| std::fs::remove_dir(aside)) {
                Ok(()) => format!(
                    "{}: original contents put back in {}",
                    m.name,
                    m.data_dir.display()
                ),
                Err(e) => format!(
                    "{}: the original contents are still in {} ({e}): move them back to {} by hand",
                    m.name,
                    aside.display(),
                    m.data_dir.display()
                ),
            }
        }
        _ => format!("{}: it was empty before; it is empty again", m.name),
    }
}

fn with_rollback(e: Error, undone: &[String]) -> Error {
    if undone.is_empty() {
        return e;
    }
    e.noted(undone.join("; "))
}

/// Processes with a file open, or their working directory, under `dir`
/// (read from /proc: pid and command name).
fn processes_using(dir: &Path) -> Vec<(u32, String)> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for p in procs.filter_map(Result::ok) {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let under = |link: PathBuf| std::fs::read_link(link).is_ok_and(|t| t.starts_with(&dir));
        // The command line is readable for every user's process (etcd names
        // its --data-dir there); fds and cwd only for our own.
        let named = std::fs::read(p.path().join("cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0)
                .filter_map(|a| std::str::from_utf8(a).ok())
                .any(|a| {
                    let a = a.strip_prefix("--data-dir=").unwrap_or(a);
                    Path::new(a).starts_with(&dir)
                })
        });
        let uses = named
            || under(p.path().join("cwd"))
            || std::fs::read_dir(p.path().join("fd"))
                .map(|fds| fds.filter_map(Result::ok).any(|fd| under(fd.path())))
                .unwrap_or(false);
        if uses {
            let name = std::fs::read_to_string(p.path().join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            found.push((pid, name));
        }
    }
    found
}

/// Removes a temporary file however the restore ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(existing: u64) -> KeysPlan {
        KeysPlan {
            in_point: 10,
            selected: 10,
            create: 10 - existing,
            existing,
            canaries_left_out: 0,
            existing_examples: (0..existing.min(2)).map(|i| format!("/k{i}")).collect(),
            ..KeysPlan::default()
        }
    }

    fn conn() -> Connection {
        Connection {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            tls: None,
        }
    }

    fn opts(existing: Option<Existing>) -> RestoreOptions {
        RestoreOptions {
            existing,
            ..RestoreOptions::default()
        }
    }

    #[test]
    fn keys_decisions() {
        // (existing keys, policy) -> Ok(destructive) or Err(message part)
        let cases: &[(u64, Option<Existing>, Result<bool, &str>)] = &[
            (0, None, Ok(false)),
            (3, None, Err("--existing fail is in effect")),
            (3, Some(Existing::Fail), Err("e.g. /k0, /k1")),
            (3, Some(Existing::Skip), Ok(false)),
            (3, Some(Existing::Overwrite), Ok(true)),
            (0, Some(Existing::Overwrite), Ok(false)),
        ];
        for (existing, policy, want) in cases {
            let got = decide_keys(
                "us-west-2",
                (conn(), 1 << 20),
                counts(*existing),
                &opts(*policy),
            );
            match (got, want) {
                (Ok((plan, destructive)), Ok(d)) => {
                    assert_eq!(destructive, *d, "{existing} {policy:?}");
                    assert!(matches!(plan, EtcdPlan::EtcdKeys { .. }));
                }
                (Err(e), Err(part)) => {
                    assert!(e.to_string().contains(part), "{e}");
                    assert_eq!(e.class(), crate::error::ErrorClass::Exists);
                }
                (got, want) => panic!("{existing} {policy:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn facts(members: &[(&str, bool)]) -> SnapshotFacts {
        SnapshotFacts {
            tool: SnapshotTool {
                program: PathBuf::from("/usr/bin/etcdutl"),
                name: "etcdutl".into(),
            },
            members: members
                .iter()
                .map(|(name, exists)| {
                    (
                        EtcdMember {
                            name: name.to_string(),
                            peer_url: format!("http://{name}:2380"),
                            data_dir: PathBuf::from(format!("/var/lib/etcd/{name}")),
                        },
                        if *exists {
                            DataDir::Present
                        } else {
                            DataDir::Missing
                        },
                    )
                })
                .collect(),
            cluster_token: "tok".into(),
            stamp: "20261128T000000Z".into(),
        }
    }

    #[test]
    fn snapshot_decisions_move_existing_data_dirs_aside() -> Result<(), Error> {
        let (plan, destructive) = decide_snapshot(
            "e",
            "r",
            "p",
            facts(&[("a", true), ("b", false)]),
            &RestoreOptions::default(),
        )?;
        assert!(destructive);
        let EtcdPlan::EtcdSnapshot { members, .. } = plan else {
            panic!("not a snapshot plan")
        };
        assert_eq!(
            members[0].move_aside_to,
            Some(PathBuf::from(
                "/var/lib/etcd/a.drtool-replaced-20261128T000000Z"
            ))
        );
        assert_eq!(members[1].move_aside_to, None);
        let (_, fresh) = decide_snapshot(
            "e",
            "r",
            "p",
            facts(&[("a", false)]),
            &RestoreOptions::default(),
        )?;
        assert!(!fresh, "nothing exists: nothing is replaced");
        Ok(())
    }

    #[test]
    fn snapshot_decisions_refuse_what_does_not_apply() {
        type Case<'a> = (RestoreOptions, &'a [(&'a str, bool)], &'a str);
        let cases: &[Case] = &[
            (RestoreOptions::default(), &[], "needs `members = "),
            (
                RestoreOptions {
                    kind: KindOptions::of(
                        "etcd",
                        &EtcdRestoreOptions {
                            prefix: Some("/a".into()),
                            ..EtcdRestoreOptions::default()
                        },
                    )
                    .unwrap_or_else(|e| panic!("{e}")),
                    ..RestoreOptions::default()
                },
                &[("a", false)],
                "--prefix does not apply here: point p is a snapshot",
            ),
            (
                opts(Some(Existing::Overwrite)),
                &[("a", true)],
                "--existing does not apply here",
            ),
        ];
        for (options, members, want) in cases {
            let err = decide_snapshot("e", "r", "p", facts(members), options)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn plan_lines_shout_what_is_destructive() -> Result<(), Error> {
        let (plan, _) = decide_keys(
            "r",
            (conn(), 1 << 20),
            counts(2),
            &opts(Some(Existing::Overwrite)),
        )?;
        let text = lines(&plan).join("\n");
        assert!(text.contains("OVERWRITE  2"), "{text}");
        let (plan, _) = decide_snapshot(
            "e",
            "r",
            "p",
            facts(&[("a", true)]),
            &RestoreOptions::default(),
        )?;
        assert!(lines(&plan).join("\n").contains("will be MOVED to"));
        Ok(())
    }

    #[test]
    fn mount_points_are_told_from_plain_dirs() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(dir.path()));
        assert_eq!(DataDir::of(&dir.path().join("none")), DataDir::Missing);
        assert_eq!(DataDir::of(dir.path()), DataDir::Present);
        assert_eq!(DataDir::of(Path::new("/proc")), DataDir::MountPoint);
        Ok(())
    }

    #[test]
    fn a_mount_point_is_replaced_inside_itself_and_rolled_back() -> Result<(), Error> {
        let (plan, destructive) = decide_snapshot(
            "e",
            "r",
            "p",
            SnapshotFacts {
                members: vec![(
                    EtcdMember {
                        name: "a".into(),
                        peer_url: "http://a:2380".into(),
                        data_dir: PathBuf::from("/var/lib/etcd"),
                    },
                    DataDir::MountPoint,
                )],
                ..facts(&[])
            },
            &RestoreOptions::default(),
        )?;
        assert!(destructive);
        let EtcdPlan::EtcdSnapshot { members, .. } = &plan else {
            panic!("not a snapshot plan")
        };
        assert!(members[0].in_place);
        assert_eq!(
            members[0].move_aside_to,
            Some(PathBuf::from(
                "/var/lib/etcd/.drtool-replaced-20261128T000000Z"
            ))
        );
        assert!(lines(&plan).join("\n").contains("is a mount point"));

        // The moves themselves, on a plain dir standing in for the mount.
        let dir = tempfile::tempdir().map_err(Error::failed)?;
        let data = dir.path().join("etcd");
        std::fs::create_dir_all(data.join("member/wal")).map_err(Error::failed)?;
        std::fs::write(data.join("member/original"), b"x").map_err(Error::failed)?;
        let m = MemberPlan {
            data_dir: data.clone(),
            move_aside_to: Some(data.join(".drtool-replaced-t")),
            ..members[0].clone()
        };
        prepare(&m)?;
        assert!(data.join(".drtool-replaced-t/member/original").is_file());
        assert!(!data.join("member").exists(), "moved out of the way");
        std::fs::create_dir_all(data.join("member/snap")).map_err(Error::failed)?;
        let report = roll_back(&[&m]);
        assert!(
            report[0].contains("original contents put back"),
            "{report:?}"
        );
        assert!(data.join("member/original").is_file());
        assert!(!data.join("member/snap").exists());
        assert!(!data.join(".drtool-replaced-t").exists());
        Ok(())
    }

    #[test]
    fn roll_back_puts_moved_data_dirs_back() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("member");
        let aside = dir.path().join("member.aside");
        std::fs::create_dir_all(&aside)?;
        std::fs::write(aside.join("original"), b"x")?;
        // A half-made new data dir where the original was.
        std::fs::create_dir_all(data.join("member/snap"))?;
        let plan = MemberPlan {
            name: "m".into(),
            peer_url: "http://m:2380".into(),
            data_dir: data.clone(),
            move_aside_to: Some(aside.clone()),
            in_place: false,
        };
        let report = roll_back(&[&plan]);
        assert!(
            report[0].contains("original data dir put back"),
            "{report:?}"
        );
        assert!(data.join("original").is_file());
        assert!(!aside.exists());
        Ok(())
    }
}
