//! Sources: what drtool backs up and restores, one folder per kind of target.
//!
//! Each kind implements the engine's [`TargetKind`](crate::engine::kind::TargetKind)
//! in its folder: it produces a plaintext byte stream plus metadata for a
//! backup, plans and applies restores of its own payloads, and handles what it
//! keeps outside the bucket. Kinds talk to the engine through byte channels and
//! the job handle only, and do not import each other, with one exception:
//! `drtool init` finds a kubeadm cluster's etcd through its API server, so
//! `etcd/init.rs` reads the regions' contexts and kube-system's pods with
//! `namespace::init` (and nothing else of the namespace kind).
//!
//! Adding a kind is its folder and one line in [`registry`]; in the order a
//! newcomer would write it (`dir/`, a kind for tests only, is the smallest
//! example: steps 1, 2 and 6 in two files, `TargetKind` in its `mod.rs`;
//! steps 3 to 5 are for a kind that has options, its own failures and
//! capabilities):
//! 1. `config.rs`: its section of `drtool.toml`: the shape of its
//!    `[targets.NAME]` and region tables (`target_table!`, refusing fields
//!    it does not read), the typed section it parses them into
//!    (`KindSpec`), and `parse_all`, which `TargetKind::section` names.
//! 2. `mod.rs` (the kind's type, its payload names) and `home.rs`
//!    (`TargetKind`: backup into a byte channel, the consistency it records,
//!    restore plans made by gathering facts and deciding purely, applying a
//!    plan, reachability).
//! 3. `options.rs`: the flags it adds to `drtool restore` beside
//!    `--existing`, as `FlagSpec`s, and the typed value it reads them into;
//!    `drtool restore`, a drill step's `options:` and the dashboard's
//!    toggles all go through it.
//! 4. `error.rs`: its failures, an enum implementing `KindError`.
//! 5. The capabilities it has: `drill.rs` for `Drills` (its canary name,
//!    its probes and faults, each read from a drill file into its own
//!    types), external artefacts (`Artefacts`, as RDS snapshots),
//!    `scratch.rs` for `ScratchRestores`, `init.rs` for `Discovery` (its
//!    `drtool init` flags and what it finds), `stream.rs` for `Streams`
//!    (where its points stand, following its source into cuts, replaying
//!    their lines: etcd's watch and transactions).
//! 6. Its line in [`registry`].
//!
//! `src/seam.rs` checks that nothing outside `src/source/` names a kind (the
//! manifest's format-1 wire names and `drtool --help`'s line aside), and that
//! the `dir` kind is named only by its folder and its registry line.
//!
//! A kind's own failures are an enum in its folder (`rds::RdsError`,
//! `namespace::NamespaceError`) with the facts as fields: it implements
//! [`KindError`](crate::error::KindError), which says its class (and so the
//! exit code), and converts into `SourceError::Kind`; tests match its
//! variants through `kind_error::<E>()`, never the words.

#[cfg(any(test, feature = "test-kinds"))]
pub mod dir;
pub mod etcd;
pub mod namespace;
pub mod rds;

use std::sync::Arc;

use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::engine::kind::Registry;

/// Every kind this drtool knows: a new kind is a new folder and one line
/// here.
pub fn registry() -> Registry {
    Registry::new(vec![
        Arc::new(etcd::EtcdKind::default()),
        Arc::new(namespace::NamespaceKind::default()),
        Arc::new(rds::RdsKind::default()),
        #[cfg(any(test, feature = "test-kinds"))]
        Arc::new(dir::DirKind),
    ])
}

/// Reads and validates config text, each target through its kind's section;
/// `path` is used for messages and relative paths.
/// Hands each line (without its newline) a backup sends into `rx` to `f`,
/// until the backup ends it: how a kind reads its own live state back
/// (`drtool diff --live`) without writing a point.
pub async fn each_line(
    rx: &mut tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    what: &str,
    mut f: impl FnMut(&[u8]) -> Result<(), crate::error::Error>,
) -> Result<(), crate::error::Error> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = rx.recv().await {
        let chunk =
            chunk.map_err(|e| crate::error::Error::failed(format!("reading {what}: {e}")))?;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            f(&line[..pos])?;
        }
    }
    Ok(())
}

pub fn parse_config(text: &str, path: &Path) -> Result<Config, ConfigError> {
    crate::config::parse_str(text, path, &registry().sections())
}

/// Reads and validates a config file with every kind's section.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    Config::load(path, &registry().sections())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::PayloadKind;

    #[test]
    fn each_drill_word_belongs_to_one_kind() {
        let kinds = registry();
        // Probes, faults and canaries are named apart (`sql` is a probe and
        // a canary); within each, a name is every drill's or one kind's.
        let vocabularies = [
            ["http", "tcp", "exec"]
                .into_iter()
                .chain(kinds.probe_names())
                .collect::<Vec<_>>(),
            ["lose_region", "exec"]
                .into_iter()
                .chain(kinds.fault_names())
                .collect(),
            kinds.canary_names(),
        ];
        for mut words in vocabularies {
            let all = words.len();
            words.sort_unstable();
            words.dedup();
            assert_eq!(words.len(), all, "a drill word used twice: {words:?}");
        }
        for name in kinds.probe_names() {
            assert!(kinds.probe_kind(name).is_some(), "{name}");
        }
        for name in kinds.fault_names() {
            assert!(kinds.fault_kind(name).is_some(), "{name}");
        }
        assert_eq!(kinds.canary_kind("configmap"), Some("namespace"));
        assert_eq!(kinds.canary_kind("nope"), None);
    }

    #[test]
    fn each_payload_belongs_to_one_kind_and_says_how_it_is_read() {
        let kinds = registry();
        let mut names: Vec<&str> = kinds
            .all()
            .flat_map(|k| k.payloads())
            .map(|p| p.kind.as_str())
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a payload name used twice: {names:?}");
        // The names manifests have carried since format 1, and the test-only
        // dir kind's.
        assert_eq!(
            names,
            [
                "dir-files",
                "etcd-keys",
                "etcd-snapshot",
                "kube-namespace",
                "pg-dump",
                "rds-snapshot"
            ]
        );
        assert!(kinds.trailing_sha256(&etcd::SNAPSHOT));
        assert!(!kinds.trailing_sha256(&etcd::KEYS));
        // A payload of a newer drtool is read as it is and named as it is.
        let newer = PayloadKind::named("dynamodb-export");
        assert!(!kinds.trailing_sha256(&newer));
        assert_eq!(kinds.describe_payload(&newer), "dynamodb-export");
        assert_eq!(
            kinds.describe_payload(&namespace::PAYLOAD),
            "Kubernetes namespace (JSON Lines)"
        );
    }
}
