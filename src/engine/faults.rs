//! The drill vocabulary each kind implements in its own home: the faults it
//! injects, the probes it runs and the canary marks it writes. Plain data:
//! the engine's `exercise` carries them to the kind, the drill runner makes
//! them from a drill file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A fault a kind injects into one of its targets in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub enum KindFault {
    /// Stop (SIGTERM) or kill (SIGKILL) an etcd member, by a command or the
    /// pid in a file.
    StopMember {
        command: Option<String>,
        pid_file: Option<std::path::PathBuf>,
        kill: bool,
    },
    /// Delete every key under a prefix.
    DeleteKeys {
        prefix: String,
    },
    /// Delete the target's namespace.
    DeleteNamespace,
    /// Delete the objects of one resource matching a label selector.
    DeleteObjects {
        resource: String,
        selector: String,
    },
    /// Reboot the instance with a Multi-AZ failover.
    RebootFailover,
    StopInstance,
    /// Promote a read replica to a standalone instance.
    PromoteReplica {
        replica: String,
    },
}

impl KindFault {
    pub fn name(&self) -> &'static str {
        match self {
            KindFault::StopMember { kill: false, .. } => "stop_member",
            KindFault::StopMember { kill: true, .. } => "kill_member",
            KindFault::DeleteKeys { .. } => "delete_keys",
            KindFault::DeleteNamespace => "delete_namespace",
            KindFault::DeleteObjects { .. } => "delete_objects",
            KindFault::RebootFailover => "reboot_failover",
            KindFault::StopInstance => "stop_instance",
            KindFault::PromoteReplica { .. } => "promote_replica",
        }
    }
}

/// A check a kind runs against one of its targets in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "probe")]
pub enum KindProbe {
    /// The key exists (with this value, when given).
    EtcdKey { key: String, equals: Option<String> },
    /// The query runs (and its first value is `expect`, when given).
    Sql {
        query: String,
        expect: Option<String>,
        database: Option<String>,
    },
    /// The object exists (and is ready, when asked).
    Kube {
        resource: String,
        name: String,
        namespace: Option<String>,
        ready: bool,
    },
}

impl KindProbe {
    /// As drill files name it.
    pub fn name(&self) -> &'static str {
        match self {
            KindProbe::EtcdKey { .. } => "etcd_key",
            KindProbe::Sql { .. } => "sql",
            KindProbe::Kube { .. } => "kube",
        }
    }
}

/// One canary marker: a sequence number and when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryMark {
    pub seq: u64,
    pub at: DateTime<Utc>,
}
