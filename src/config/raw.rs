//! The TOML shape of `drtool.toml`, the table of which kind owns which target
//! field, and the helpers every section's validation uses.
//!
//! Fields that later need an error location are `Spanned`, so every semantic
//! error (unknown region, bad URL, ...) points at the offending value.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Location};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) defaults: Option<RawDefaults>,
    pub(super) encryption: Option<RawEncryption>,
    pub(super) signing: Option<RawSigning>,
    #[serde(default)]
    pub(super) regions: BTreeMap<Spanned<String>, RawRegion>,
    #[serde(default)]
    pub(super) targets: BTreeMap<Spanned<String>, RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) compression_level: Option<Spanned<i64>>,
    pub(super) compression_threads: Option<Spanned<i64>>,
    pub(super) part_size_mib: Option<Spanned<i64>>,
    pub(super) parts_in_flight: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEncryption {
    pub(super) recipients: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigning {
    pub(super) key_file: Option<Spanned<String>>,
    pub(super) key_env: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) verify_keys: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    pub(super) store: Spanned<String>,
    pub(super) endpoint: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) path_style: bool,
    pub(super) s3_region: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) object_lock: Option<Spanned<RawObjectLock>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObjectLock {
    pub(super) mode: Spanned<String>,
    pub(super) retain: Spanned<String>,
}

/// Every kind of target.
pub(super) const ALL: &[&str] = &["etcd", "rds", "namespace"];

/// Which kinds read each field of a `[targets.NAME]` table. A field set on a
/// target of another kind is an error that names it. [`RawTarget::fields`]
/// lists every field of the struct (a new one does not compile until it is
/// listed there) and a test checks that each has a row here, so no field is
/// ever silently accepted by a kind that ignores it.
pub(super) const TARGET_FIELDS: &[(&str, &[&str])] = &[
    ("kind", ALL),
    ("home", ALL),
    ("copy_to", ALL),
    ("regions", ALL),
    ("labels", ALL),
    ("mode", &["etcd", "rds"]),
    ("prefix", &["etcd"]),
    ("instance", &["rds"]),
    ("namespace", &["namespace"]),
    ("include", &["namespace"]),
    ("exclude", &["namespace"]),
    ("label_selector", &["namespace"]),
    ("keep_last_applied", &["namespace"]),
    ("page_size", &["namespace"]),
];

/// The same for each `[targets.NAME.regions.REGION]` table.
pub(super) const REGION_FIELDS: &[(&str, &[&str])] = &[
    ("endpoints", &["etcd"]),
    ("tls", &["etcd"]),
    ("members", &["etcd"]),
    ("cluster_token", &["etcd"]),
    ("max_request_bytes", &["etcd"]),
    ("endpoint", &["rds"]),
    ("kms_key", &["rds"]),
    ("instance_class", &["rds"]),
    ("subnet_group", &["rds"]),
    ("restore_identifier", &["rds"]),
    ("database", &["rds"]),
    ("kubeconfig", &["namespace"]),
    ("context", &["namespace"]),
];

/// A target table: the fields of every kind; each kind reads its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) kind: Spanned<String>,
    pub(super) home: Spanned<String>,
    #[serde(default)]
    pub(super) copy_to: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) instance: Option<Spanned<String>>,
    pub(super) namespace: Option<Spanned<String>>,
    pub(super) include: Option<Spanned<Vec<String>>>,
    pub(super) exclude: Option<Spanned<Vec<String>>>,
    pub(super) label_selector: Option<Spanned<String>>,
    pub(super) keep_last_applied: Option<Spanned<bool>>,
    pub(super) page_size: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) regions: BTreeMap<Spanned<String>, Spanned<RawTargetRegion>>,
}

impl RawTarget {
    /// Every field with where it was set (none when absent or always allowed).
    pub(super) fn fields(&self) -> Vec<(&'static str, Option<Range<usize>>)> {
        // No `..`: a new field must be listed here to compile.
        let RawTarget {
            kind: _,
            home: _,
            copy_to: _,
            regions: _,
            labels: _,
            mode,
            prefix,
            instance,
            namespace,
            include,
            exclude,
            label_selector,
            keep_last_applied,
            page_size,
        } = self;
        vec![
            ("kind", None),
            ("home", None),
            ("copy_to", None),
            ("regions", None),
            ("labels", None),
            ("mode", span_of(mode)),
            ("prefix", span_of(prefix)),
            ("instance", span_of(instance)),
            ("namespace", span_of(namespace)),
            ("include", span_of(include)),
            ("exclude", span_of(exclude)),
            ("label_selector", span_of(label_selector)),
            ("keep_last_applied", span_of(keep_last_applied)),
            ("page_size", span_of(page_size)),
        ]
    }
}

/// One region of a target: the fields of every kind; each kind reads its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTargetRegion {
    pub(super) endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) tls: Option<Spanned<RawTls>>,
    pub(super) members: Option<Spanned<Vec<RawMember>>>,
    pub(super) cluster_token: Option<Spanned<String>>,
    pub(super) max_request_bytes: Option<Spanned<i64>>,
    pub(super) endpoint: Option<Spanned<String>>,
    pub(super) kms_key: Option<Spanned<String>>,
    pub(super) instance_class: Option<Spanned<String>>,
    pub(super) subnet_group: Option<Spanned<String>>,
    pub(super) restore_identifier: Option<Spanned<String>>,
    pub(super) database: Option<Spanned<RawDatabase>>,
    pub(super) kubeconfig: Option<Spanned<String>>,
    pub(super) context: Option<Spanned<String>>,
}

impl RawTargetRegion {
    pub(super) fn fields(&self) -> Vec<(&'static str, Option<Range<usize>>)> {
        // No `..`: a new field must be listed here to compile.
        let RawTargetRegion {
            endpoints,
            tls,
            members,
            cluster_token,
            max_request_bytes,
            endpoint,
            kms_key,
            instance_class,
            subnet_group,
            restore_identifier,
            database,
            kubeconfig,
            context,
        } = self;
        vec![
            ("endpoints", span_of(endpoints)),
            ("tls", span_of(tls)),
            ("members", span_of(members)),
            ("cluster_token", span_of(cluster_token)),
            ("max_request_bytes", span_of(max_request_bytes)),
            ("endpoint", span_of(endpoint)),
            ("kms_key", span_of(kms_key)),
            ("instance_class", span_of(instance_class)),
            ("subnet_group", span_of(subnet_group)),
            ("restore_identifier", span_of(restore_identifier)),
            ("database", span_of(database)),
            ("kubeconfig", span_of(kubeconfig)),
            ("context", span_of(context)),
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) host: Option<String>,
    pub(super) port: Option<Spanned<i64>>,
    pub(super) user: String,
    pub(super) dbname: String,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) ca: Option<Spanned<String>>,
    pub(super) cert: Option<Spanned<String>>,
    pub(super) key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMember {
    pub(super) name: Spanned<String>,
    pub(super) peer_url: Spanned<String>,
    pub(super) data_dir: Spanned<String>,
}

/// Turns byte offsets into `file:line:column` errors.
pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn location(&self, span: Range<usize>) -> Location {
        Location::of(self.path, self.text, span.start)
    }

    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: self.location(span),
            message: message.into(),
        }
    }

    /// Relative paths in the config are relative to the config file's folder.
    pub(super) fn path(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            // Absolute, so plans and errors show where things really are.
            std::path::absolute(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .join(p)
        }
    }
}

pub(super) fn region_ref(
    ctx: &Ctx,
    r: &Spanned<String>,
    known: &BTreeSet<String>,
    target: &str,
    field: &str,
) -> Result<String, ConfigError> {
    if known.contains(r.get_ref()) {
        Ok(r.get_ref().clone())
    } else {
        let list: Vec<&str> = known.iter().map(String::as_str).collect();
        Err(ctx.err(
            r.span(),
            format!(
                "target {target}: {field} refers to unknown region {:?} (defined regions: {})",
                r.get_ref(),
                list.join(", ")
            ),
        ))
    }
}

/// The `mode` of a target: one of `modes` (the first is the default).
pub(super) fn mode<T: Copy>(
    ctx: &Ctx,
    target: &str,
    raw: &Option<Spanned<String>>,
    modes: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(given) = raw else {
        return modes
            .first()
            .map(|(_, m)| *m)
            .ok_or_else(|| ctx.err(0..0, format!("target {target}: no modes defined")));
    };
    match modes.iter().find(|(name, _)| name == given.get_ref()) {
        Some((_, m)) => Ok(*m),
        None => {
            let names: Vec<String> = modes.iter().map(|(n, _)| format!("{n:?}")).collect();
            Err(ctx.err(
                given.span(),
                format!(
                    "target {target}: mode {:?} is not one of {}",
                    given.get_ref(),
                    names.join(", ")
                ),
            ))
        }
    }
}

/// A target's region tables, each checked against the known regions and
/// parsed by its kind.
pub(super) fn regions<T>(
    ctx: &Ctx,
    target: &str,
    raw: BTreeMap<Spanned<String>, Spanned<RawTargetRegion>>,
    known: &BTreeSet<String>,
    mut parse: impl FnMut(&str, Spanned<RawTargetRegion>) -> Result<T, ConfigError>,
) -> Result<BTreeMap<String, T>, ConfigError> {
    let mut out = BTreeMap::new();
    for (region, r) in raw {
        let region = region_ref(ctx, &region, known, target, "regions")?;
        let parsed = parse(&region, r)?;
        out.insert(region, parsed);
    }
    Ok(out)
}

/// Fails on the first field that is set but that `kind` does not read.
pub(super) fn check_fields(
    ctx: &Ctx,
    target: &str,
    kind: &str,
    fields: &[(&'static str, Option<Range<usize>>)],
    table: &[(&str, &[&str])],
) -> Result<(), ConfigError> {
    for (field, span) in fields {
        let Some(span) = span else { continue };
        let owners = table
            .iter()
            .find(|(f, _)| f == field)
            .map_or(&[][..], |(_, kinds)| *kinds);
        if !owners.contains(&kind) {
            return Err(ctx.err(
                span.clone(),
                format!("target {target}: `{field}` does not apply to a target of kind {kind}"),
            ));
        }
    }
    Ok(())
}

pub(super) fn span_of<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}

pub(super) fn check_url(
    ctx: &Ctx,
    v: &Spanned<String>,
    target: &str,
    region: &str,
    what: &str,
) -> Result<(), ConfigError> {
    let ok = url::Url::parse(v.get_ref())
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(ctx.err(
            v.span(),
            format!(
                "target {target}, region {region}: invalid {what} {:?}: expected http(s)://host:port",
                v.get_ref()
            ),
        ))
    }
}
