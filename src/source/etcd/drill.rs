//! What drills do to an etcd target: faults (stop or kill a member, delete
//! keys under a prefix), the key probe, and canary keys written inside the
//! target's backed-up keyspace so that a restore brings them back.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use etcd_client::{Client, DeleteOptions, GetOptions};
use serde::{Deserialize, Serialize};

use super::{EtcdError, map_err};
use super::{EtcdMode, EtcdTarget};
use crate::engine::faults::{CanaryMark, KindFault};
use crate::error::Error;

/// Where run `run`'s canary keys live: under the target's own prefix in keys
/// mode (so a keys backup holds them), under `/` otherwise.
pub fn canary_prefix(spec: &EtcdTarget, run: &str) -> String {
    format!("{}{run}/", canary_root(spec))
}

/// Where every run's canary markers live in the target's keyspace.
pub fn canary_root(spec: &EtcdTarget) -> String {
    let base = match (spec.mode, &spec.prefix) {
        (EtcdMode::Keys, Some(p)) => p.trim_end_matches('/').to_string(),
        _ => String::new(),
    };
    format!("{base}/drtool-canary/")
}

/// The faults, as drill files name them.
pub const STOP_MEMBER: &str = "stop_member";
pub const KILL_MEMBER: &str = "kill_member";
pub const DELETE_KEYS: &str = "delete_keys";
pub const FAULTS: &[&str] = &[STOP_MEMBER, KILL_MEMBER, DELETE_KEYS];

/// `stop_member` / `kill_member: { target, region, command | pid_file }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFault {
    /// A command that stops the member (run with `sh -c`).
    #[serde(default)]
    pub command: Option<String>,
    /// A file holding the member's pid: it is signalled (TERM to stop, KILL to kill).
    #[serde(default)]
    pub pid_file: Option<std::path::PathBuf>,
}

/// `delete_keys: { target, region, prefix }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteKeysFault {
    pub prefix: String,
}

/// Reads a drill's etcd fault.
pub fn read_fault(
    name: &str,
    (target, region): (&str, &str),
    fields: serde_json::Value,
) -> Result<(KindFault, String), Error> {
    match name {
        STOP_MEMBER | KILL_MEMBER => {
            let m: MemberFault = crate::engine::faults::read_fields(fields)?;
            if m.command.is_none() == m.pid_file.is_none() {
                return Err(Error::input(
                    "a member fault needs exactly one of `command` (run with sh -c) or \
                     `pid_file` (the member's pid, signalled)",
                ));
            }
            let verb = if name == KILL_MEMBER { "kill" } else { "stop" };
            Ok((
                KindFault::of(name, &m)?,
                format!("{verb} an etcd member of {target} in {region}"),
            ))
        }
        _ => KindFault::read(name, fields, |d: &DeleteKeysFault| {
            format!("delete keys under {} of {target} in {region}", d.prefix)
        }),
    }
}

/// The key probe, as drill files name it.
pub const KEY_PROBE: &str = "etcd_key";

/// `etcd_key: { ..., key: /app/x, equals: v1 }`: the key exists (with this
/// value, when given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProbe {
    pub key: String,
    /// The value must be exactly this (default: the key exists).
    #[serde(default)]
    pub equals: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    seq: u64,
    at: DateTime<Utc>,
}

pub async fn canary_write(
    client: &mut Client,
    endpoints: &[String],
    prefix: &str,
    mark: CanaryMark,
) -> Result<(), Error> {
    let value = serde_json::to_vec(&Marker {
        seq: mark.seq,
        at: mark.at,
    })
    .map_err(Error::failed)?;
    client
        .put(format!("{prefix}{:010}", mark.seq), value, None)
        .await
        .map_err(|e| map_err(endpoints, "canary put", e))?;
    Ok(())
}

pub async fn canary_read(
    client: &mut Client,
    endpoints: &[String],
    prefix: &str,
) -> Result<Vec<CanaryMark>, Error> {
    let resp = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| map_err(endpoints, "canary get", e))?;
    Ok(resp
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Marker>(kv.value()).ok())
        .map(|m| CanaryMark {
            seq: m.seq,
            at: m.at,
        })
        .collect())
}

pub async fn delete_prefix(
    client: &mut Client,
    endpoints: &[String],
    prefix: &str,
) -> Result<u64, Error> {
    let resp = client
        .delete(prefix, Some(DeleteOptions::new().with_prefix()))
        .await
        .map_err(|e| map_err(endpoints, "delete", e))?;
    Ok(resp.deleted().max(0) as u64)
}

/// The key probe: the key exists, and has the value asked for.
pub async fn probe_key(
    client: &mut Client,
    endpoints: &[String],
    key: &str,
    equals: Option<&str>,
) -> Result<String, Error> {
    let resp = client
        .get(key, None)
        .await
        .map_err(|e| map_err(endpoints, "get", e))?;
    let Some(kv) = resp.kvs().first() else {
        return Err(EtcdError::KeyMissing {
            key: key.to_string(),
        }
        .into());
    };
    match equals {
        Some(want) if kv.value() != want.as_bytes() => Err(EtcdError::KeyDiffers {
            key: key.to_string(),
            found: String::from_utf8_lossy(&kv.value()[..kv.value().len().min(80)]).into_owned(),
            want: want.to_string(),
        }
        .into()),
        Some(_) => Ok(format!("{key} has the expected value")),
        None => Ok(format!("{key} exists ({} bytes)", kv.value().len())),
    }
}

/// Stops (TERM) or kills (KILL) a member by running `command`, or by
/// signalling the pid in `pid_file` and waiting until it is gone.
pub async fn stop_member(
    command: Option<&str>,
    pid_file: Option<&Path>,
    kill: bool,
) -> Result<String, Error> {
    if let Some(command) = command {
        let out = tokio::process::Command::new("sh")
            .args(["-c", command])
            .output()
            .await
            .map_err(|e| Error::failed(format!("cannot run `{command}`: {e}")))?;
        if !out.status.success() {
            return Err(Error::failed(format!(
                "`{command}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        return Ok(format!("ran `{command}`"));
    }
    let Some(pid_file) = pid_file else {
        return Err(Error::input("a member fault needs a command or a pid_file"));
    };
    let text =
        tokio::fs::read_to_string(pid_file)
            .await
            .map_err(|e| EtcdError::PidFileUnreadable {
                path: pid_file.to_path_buf(),
                reason: e.to_string(),
            })?;
    let pid: u32 = text.trim().parse().map_err(|_| EtcdError::NotAPid {
        path: pid_file.to_path_buf(),
        text: text.trim().to_string(),
    })?;
    let signal = if kill { "KILL" } else { "TERM" };
    let status = tokio::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .await
        .map_err(|e| Error::failed(format!("cannot run kill: {e}")))?;
    if !status.success() {
        return Err(EtcdError::NotRunning {
            signal,
            pid,
            pid_file: pid_file.to_path_buf(),
        }
        .into());
    }
    // Gone (or a zombie of a parent that has not reaped it yet) within 10 s.
    for _ in 0..100 {
        let state = tokio::fs::read_to_string(format!("/proc/{pid}/stat")).await;
        let gone = state
            .map(|s| {
                s.rsplit(") ")
                    .next()
                    .is_some_and(|rest| rest.starts_with('Z'))
            })
            .unwrap_or(true);
        if gone {
            return Ok(format!("sent SIG{signal} to pid {pid}; it is gone"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(EtcdError::StillRunning { signal, pid }.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn canaries_live_inside_what_a_keys_backup_holds() {
        let keys = EtcdTarget {
            mode: EtcdMode::Keys,
            prefix: Some("/app/".into()),
            regions: BTreeMap::new(),
            continuous: None,
        };
        assert_eq!(canary_prefix(&keys, "r1"), "/app/drtool-canary/r1/");
        let snap = EtcdTarget {
            mode: EtcdMode::Snapshot,
            ..keys
        };
        assert_eq!(canary_prefix(&snap, "r1"), "/drtool-canary/r1/");
    }

    #[tokio::test]
    async fn a_pid_file_that_is_missing_or_not_a_pid_is_bad_input() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let missing = dir.path().join("gone.pid");
        let err = stop_member(None, Some(&missing), false).await.err();
        assert!(
            matches!(
                err.as_ref().and_then(Error::kind_error::<EtcdError>),
                Some(EtcdError::PidFileUnreadable { path, .. }) if *path == missing
            ),
            "{err:?}"
        );
        let garbage = dir.path().join("etcd.pid");
        std::fs::write(&garbage, "etcd\n").map_err(|e| e.to_string())?;
        let err = stop_member(None, Some(&garbage), true).await.err();
        assert_eq!(
            err.as_ref().and_then(Error::kind_error::<EtcdError>),
            Some(&EtcdError::NotAPid {
                path: garbage.clone(),
                text: "etcd".into(),
            })
        );
        assert_eq!(
            err.map(|e| e.class()),
            Some(crate::error::ErrorClass::BadInput)
        );
        Ok(())
    }
}
