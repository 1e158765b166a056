//! The TOML shape of `drtool.toml` and its validation into [`Config`].
//!
//! Fields that later need an error location are `Spanned`, so every semantic
//! error (unknown region, bad URL, ...) points at the offending value.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::{
    Config, ConfigError, DbConn, Defaults, Encryption, EtcdMember, EtcdMode, EtcdRegion,
    EtcdTarget, KubeRegion, Location, NamespaceTarget, PasswordSource, RdsMode, RdsRegion,
    RdsTarget, Region, StoreUrl, Target, TargetSpec, TlsFiles,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    defaults: Option<RawDefaults>,
    encryption: Option<RawEncryption>,
    #[serde(default)]
    regions: BTreeMap<Spanned<String>, RawRegion>,
    #[serde(default)]
    targets: BTreeMap<Spanned<String>, RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    compression_level: Option<Spanned<i64>>,
    compression_threads: Option<Spanned<i64>>,
    part_size_mib: Option<Spanned<i64>>,
    parts_in_flight: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    recipients: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    store: Spanned<String>,
    endpoint: Option<Spanned<String>>,
    #[serde(default)]
    path_style: bool,
    s3_region: Option<String>,
    profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: Spanned<String>,
    home: Spanned<String>,
    #[serde(default)]
    copy_to: Vec<Spanned<String>>,
    mode: Option<Spanned<String>>,
    // etcd
    prefix: Option<Spanned<String>>,
    // rds
    instance: Option<Spanned<String>>,
    // namespace
    namespace: Option<Spanned<String>>,
    include: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    label_selector: Option<Spanned<String>>,
    keep_last_applied: Option<Spanned<bool>>,
    #[serde(default)]
    regions: BTreeMap<Spanned<String>, Spanned<RawTargetRegion>>,
}

impl RawTarget {
    /// Where the fields of a `namespace` target are, for kinds that reject them.
    fn namespace_fields(&self) -> [(&'static str, Option<Range<usize>>); 5] {
        [
            ("namespace", span_of(&self.namespace)),
            ("include", span_of(&self.include)),
            ("exclude", span_of(&self.exclude)),
            ("label_selector", span_of(&self.label_selector)),
            ("keep_last_applied", span_of(&self.keep_last_applied)),
        ]
    }
}

/// One region of a target. The fields of every kind live here; each kind's
/// validation rejects the fields that are not its own, with their line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetRegion {
    // etcd
    endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    tls: Option<Spanned<RawTls>>,
    members: Option<Spanned<Vec<RawMember>>>,
    cluster_token: Option<Spanned<String>>,
    // rds
    endpoint: Option<Spanned<String>>,
    kms_key: Option<Spanned<String>>,
    instance_class: Option<Spanned<String>>,
    subnet_group: Option<Spanned<String>>,
    restore_identifier: Option<Spanned<String>>,
    database: Option<Spanned<RawDatabase>>,
    // namespace
    kubeconfig: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    host: Option<String>,
    port: Option<Spanned<i64>>,
    user: String,
    dbname: String,
    password_env: Option<String>,
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: Spanned<String>,
    peer_url: Spanned<String>,
    data_dir: Spanned<String>,
}

/// Turns byte offsets into `file:line:column` errors.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn location(&self, span: Range<usize>) -> Location {
        let upto = &self.text[..span.start.min(self.text.len())];
        let line = upto.matches('\n').count() + 1;
        let column = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location {
            file: self.path.to_path_buf(),
            line,
            column,
        }
    }

    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: self.location(span),
            message: message.into(),
        }
    }

    /// Relative paths in the config are relative to the config file's folder.
    fn path(&self, value: &str) -> PathBuf {
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

/// Parses and validates config text; `path` is used for messages and relative paths.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx { text, path };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ctx.err(span, e.message().trim_end().replace('\n', ": "))
    })?;
    if raw.regions.is_empty() {
        return Err(ctx.err(
            0..0,
            "no regions defined: add at least one [regions.NAME] table with a `store`",
        ));
    }
    let defaults = defaults(&ctx, raw.defaults)?;
    let encryption = raw.encryption.map(|e| encryption(&ctx, e)).transpose()?;
    let mut regions = BTreeMap::new();
    for (name, r) in raw.regions {
        check_name(&ctx, &name, "region")?;
        let region = region(&ctx, name.get_ref(), r)?;
        regions.insert(name.into_inner(), region);
    }
    let known: BTreeSet<String> = regions.keys().cloned().collect();
    let mut targets = BTreeMap::new();
    for (name, t) in raw.targets {
        check_name(&ctx, &name, "target")?;
        let target = target(&ctx, name.get_ref(), t, &known)?;
        targets.insert(name.into_inner(), target);
    }
    Ok(Config {
        path: path.to_path_buf(),
        defaults,
        encryption,
        regions,
        targets,
    })
}

fn check_name(ctx: &Ctx, name: &Spanned<String>, what: &str) -> Result<(), ConfigError> {
    let ok = !name.get_ref().is_empty()
        && name
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ctx.err(
            name.span(),
            format!(
                "invalid {what} name {:?}: use letters, digits, '-', '_' and '.' only",
                name.get_ref()
            ),
        ))
    }
}

fn ranged(
    ctx: &Ctx,
    v: &Spanned<i64>,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ConfigError> {
    if range.contains(v.get_ref()) {
        Ok(*v.get_ref())
    } else {
        Err(ctx.err(
            v.span(),
            format!(
                "defaults.{field} = {} is out of range: use {}..={}",
                v.get_ref(),
                range.start(),
                range.end()
            ),
        ))
    }
}

fn defaults(ctx: &Ctx, raw: Option<RawDefaults>) -> Result<Defaults, ConfigError> {
    let mut d = Defaults::default();
    let Some(raw) = raw else { return Ok(d) };
    if let Some(v) = &raw.compression_level {
        d.compression_level = ranged(ctx, v, "compression_level", 1..=19)? as i32;
    }
    if let Some(v) = &raw.compression_threads {
        d.compression_threads = ranged(ctx, v, "compression_threads", 0..=64)? as u32;
    }
    if let Some(v) = &raw.part_size_mib {
        // S3 refuses parts under 5 MiB (except the last) and over 5 GiB.
        d.part_size = ranged(ctx, v, "part_size_mib", 5..=512)? as usize * 1024 * 1024;
    }
    if let Some(v) = &raw.parts_in_flight {
        d.parts_in_flight = ranged(ctx, v, "parts_in_flight", 1..=32)? as usize;
    }
    Ok(d)
}

fn encryption(ctx: &Ctx, raw: RawEncryption) -> Result<Encryption, ConfigError> {
    if raw.recipients.get_ref().is_empty() {
        return Err(ctx.err(
            raw.recipients.span(),
            "encryption.recipients is empty: list at least one age recipient (age1...) or remove [encryption]",
        ));
    }
    let mut recipients = Vec::new();
    for r in raw.recipients.into_inner() {
        if age::x25519::Recipient::from_str(r.get_ref()).is_err() {
            return Err(ctx.err(
                r.span(),
                format!(
                    "invalid age recipient {:?}: expected an X25519 public key starting with age1 (see `age-keygen -y`)",
                    r.get_ref()
                ),
            ));
        }
        recipients.push(r.into_inner());
    }
    Ok(Encryption { recipients })
}

fn region(ctx: &Ctx, name: &str, raw: RawRegion) -> Result<Region, ConfigError> {
    let store = store_url(ctx, &raw.store)?;
    let endpoint = match raw.endpoint {
        Some(e) => {
            let ok = url::Url::parse(e.get_ref())
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(ctx.err(
                    e.span(),
                    format!(
                        "invalid endpoint {:?} for region {name}: expected http(s)://host[:port]",
                        e.get_ref()
                    ),
                ));
            }
            if matches!(store, StoreUrl::File { .. }) {
                return Err(ctx.err(
                    e.span(),
                    format!(
                        "region {name} has a file:// store: `endpoint` only applies to s3:// stores"
                    ),
                ));
            }
            Some(e.into_inner())
        }
        None => None,
    };
    Ok(Region {
        name: name.to_string(),
        store,
        endpoint,
        path_style: raw.path_style,
        s3_region: raw.s3_region.unwrap_or_else(|| name.to_string()),
        profile: raw.profile,
    })
}

fn store_url(ctx: &Ctx, raw: &Spanned<String>) -> Result<StoreUrl, ConfigError> {
    let bad = |why: &str| {
        ctx.err(
            raw.span(),
            format!(
                "invalid store URL {:?}: {why} (expected s3://bucket[/prefix] or file:///absolute/dir)",
                raw.get_ref()
            ),
        )
    };
    let value = raw.get_ref();
    if let Some(rest) = value.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !bucket_ok {
            return Err(bad(
                "bucket names are 3-63 lowercase letters, digits, '-' or '.'",
            ));
        }
        Ok(StoreUrl::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    } else if let Some(rest) = value.strip_prefix("file://") {
        if rest.is_empty() {
            return Err(bad("the path is empty"));
        }
        if !rest.starts_with('/') {
            // file://relative/dir is allowed for demos: relative to the config file.
            return Ok(StoreUrl::File {
                root: ctx.path(rest),
                prefix: String::new(),
            });
        }
        Ok(StoreUrl::File {
            root: PathBuf::from(rest),
            prefix: String::new(),
        })
    } else {
        Err(bad("unknown scheme"))
    }
}

fn region_ref(
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

fn target(
    ctx: &Ctx,
    name: &str,
    raw: RawTarget,
    known: &BTreeSet<String>,
) -> Result<Target, ConfigError> {
    let home = region_ref(ctx, &raw.home, known, name, "home")?;
    let mut copy_to = Vec::new();
    for r in &raw.copy_to {
        let region = region_ref(ctx, r, known, name, "copy_to")?;
        if region == home || copy_to.contains(&region) {
            return Err(ctx.err(
                r.span(),
                format!(
                    "target {name}: copy_to lists {region:?} twice or repeats the home region; list each other region once"
                ),
            ));
        }
        copy_to.push(region);
    }
    let spec = match raw.kind.get_ref().as_str() {
        "etcd" => TargetSpec::Etcd(etcd_target(ctx, name, raw, known, &home)?),
        "rds" => TargetSpec::Rds(rds_target(ctx, name, raw, known, &home)?),
        "namespace" => TargetSpec::Namespace(namespace_target(ctx, name, raw, known, &home)?),
        other => {
            return Err(ctx.err(
                raw.kind.span(),
                format!("target {name}: unknown kind {other:?} (supported: etcd, rds, namespace)"),
            ));
        }
    };
    Ok(Target {
        name: name.to_string(),
        home,
        copy_to,
        spec,
    })
}

fn etcd_target(
    ctx: &Ctx,
    name: &str,
    raw: RawTarget,
    known: &BTreeSet<String>,
    home: &str,
) -> Result<EtcdTarget, ConfigError> {
    let mode = match raw.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("snapshot", _)) => EtcdMode::Snapshot,
        Some(("keys", _)) => EtcdMode::Keys,
        Some((other, span)) => {
            return Err(ctx.err(
                span,
                format!("target {name}: mode {other:?} is not one of \"snapshot\", \"keys\""),
            ));
        }
    };
    not_for_kind(
        ctx,
        name,
        "etcd",
        &[("instance", raw.instance.as_ref().map(Spanned::span))],
    )?;
    not_for_kind(ctx, name, "etcd", &raw.namespace_fields())?;
    if let (EtcdMode::Snapshot, Some(p)) = (mode, &raw.prefix) {
        return Err(ctx.err(
            p.span(),
            format!(
                "target {name}: `prefix` only applies to mode = \"keys\" (a snapshot always holds the whole keyspace)"
            ),
        ));
    }
    let mut regions = BTreeMap::new();
    for (region, r) in raw.regions {
        let region = region_ref(ctx, &region, known, name, "regions")?;
        regions.insert(region.clone(), etcd_region(ctx, name, &region, r)?);
    }
    if !regions.contains_key(home) {
        return Err(ctx.err(
            raw.home.span(),
            format!(
                "target {name}: no [targets.{name}.regions.{home}] table with the endpoints of its home region"
            ),
        ));
    }
    Ok(EtcdTarget {
        mode,
        prefix: raw.prefix.map(Spanned::into_inner),
        regions,
    })
}

/// Fails on the first field that is set but does not belong to `kind`.
fn not_for_kind(
    ctx: &Ctx,
    target: &str,
    kind: &str,
    fields: &[(&str, Option<Range<usize>>)],
) -> Result<(), ConfigError> {
    match fields
        .iter()
        .find_map(|(f, span)| span.clone().map(|s| (f, s)))
    {
        Some((field, span)) => Err(ctx.err(
            span,
            format!("target {target}: `{field}` does not apply to a target of kind {kind}"),
        )),
        None => Ok(()),
    }
}

fn span_of<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}

fn etcd_region(
    ctx: &Ctx,
    target: &str,
    region: &str,
    raw: Spanned<RawTargetRegion>,
) -> Result<EtcdRegion, ConfigError> {
    let table = raw.span();
    let raw = raw.into_inner();
    not_for_kind(
        ctx,
        target,
        "etcd",
        &[
            ("endpoint", span_of(&raw.endpoint)),
            ("kms_key", span_of(&raw.kms_key)),
            ("instance_class", span_of(&raw.instance_class)),
            ("subnet_group", span_of(&raw.subnet_group)),
            ("restore_identifier", span_of(&raw.restore_identifier)),
            ("database", span_of(&raw.database)),
            ("kubeconfig", span_of(&raw.kubeconfig)),
            ("context", span_of(&raw.context)),
        ],
    )?;
    let Some(raw_endpoints) = raw.endpoints else {
        return Err(ctx.err(
            table,
            format!("target {target}, region {region}: `endpoints` is missing (the etcd client URLs there)"),
        ));
    };
    if raw_endpoints.get_ref().is_empty() {
        return Err(ctx.err(
            raw_endpoints.span(),
            format!("target {target}, region {region}: endpoints is empty"),
        ));
    }
    let mut endpoints = Vec::new();
    for e in raw_endpoints.into_inner() {
        check_url(ctx, &e, target, region, "endpoint")?;
        endpoints.push(e.into_inner());
    }
    let tls = raw
        .tls
        .map(|t| tls(ctx, target, region, t.into_inner()))
        .transpose()?;
    let mut members = Vec::new();
    let mut names = BTreeSet::new();
    for m in raw.members.map(Spanned::into_inner).unwrap_or_default() {
        check_url(ctx, &m.peer_url, target, region, "peer_url")?;
        if !names.insert(m.name.get_ref().clone()) {
            return Err(ctx.err(
                m.name.span(),
                format!(
                    "target {target}, region {region}: duplicate member name {:?}",
                    m.name.get_ref()
                ),
            ));
        }
        members.push(EtcdMember {
            name: m.name.into_inner(),
            peer_url: m.peer_url.into_inner(),
            data_dir: ctx.path(m.data_dir.get_ref()),
        });
    }
    Ok(EtcdRegion {
        endpoints,
        tls,
        members,
        cluster_token: raw
            .cluster_token
            .map(Spanned::into_inner)
            .unwrap_or_else(|| format!("drtool-{target}-{region}")),
    })
}

fn rds_target(
    ctx: &Ctx,
    name: &str,
    raw: RawTarget,
    known: &BTreeSet<String>,
    home: &str,
) -> Result<RdsTarget, ConfigError> {
    not_for_kind(ctx, name, "rds", &[("prefix", span_of(&raw.prefix))])?;
    not_for_kind(ctx, name, "rds", &raw.namespace_fields())?;
    let mode = match raw.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("snapshot", _)) => RdsMode::Snapshot,
        Some(("dump", _)) => RdsMode::Dump,
        Some(("both", _)) => RdsMode::Both,
        Some((other, span)) => {
            return Err(ctx.err(
                span,
                format!(
                    "target {name}: mode {other:?} is not one of \"snapshot\", \"dump\", \"both\""
                ),
            ));
        }
    };
    let Some(instance) = raw.instance else {
        return Err(ctx.err(
            raw.kind.span(),
            format!("target {name}: `instance` (the RDS DB instance identifier) is missing"),
        ));
    };
    let mut regions = BTreeMap::new();
    for (region, r) in raw.regions {
        let region = region_ref(ctx, &region, known, name, "regions")?;
        regions.insert(region.clone(), rds_region(ctx, name, &region, r)?);
    }
    if mode != RdsMode::Snapshot && regions.get(home).is_none_or(|r| r.database.is_none()) {
        return Err(ctx.err(
            raw.home.span(),
            format!(
                "target {name}: mode \"{}\" dumps the database, so [targets.{name}.regions.{home}] needs \
                 `database = {{ user, dbname, password_env or password_file }}`",
                mode.name()
            ),
        ));
    }
    Ok(RdsTarget {
        mode,
        instance: instance.into_inner(),
        regions,
    })
}

fn rds_region(
    ctx: &Ctx,
    target: &str,
    region: &str,
    raw: Spanned<RawTargetRegion>,
) -> Result<RdsRegion, ConfigError> {
    let raw = raw.into_inner();
    not_for_kind(
        ctx,
        target,
        "rds",
        &[
            ("endpoints", span_of(&raw.endpoints)),
            ("tls", span_of(&raw.tls)),
            ("members", span_of(&raw.members)),
            ("cluster_token", span_of(&raw.cluster_token)),
            ("kubeconfig", span_of(&raw.kubeconfig)),
            ("context", span_of(&raw.context)),
        ],
    )?;
    if let Some(e) = &raw.endpoint {
        check_url(ctx, e, target, region, "endpoint")?;
    }
    let database = match raw.database {
        None => None,
        Some(d) => {
            let span = d.span();
            let d = d.into_inner();
            let password = match (d.password_env, d.password_file) {
                (Some(env), None) => PasswordSource::Env(env),
                (None, Some(file)) => PasswordSource::File(ctx.path(file.get_ref())),
                (None, None) => PasswordSource::None,
                (Some(_), Some(f)) => {
                    return Err(ctx.err(
                        f.span(),
                        format!(
                            "target {target}, region {region}: database has both password_env and password_file; keep one"
                        ),
                    ));
                }
            };
            let port = match d.port {
                None => 5432,
                Some(p) if (1..=65535).contains(p.get_ref()) => *p.get_ref() as u16,
                Some(p) => {
                    return Err(ctx.err(
                        p.span(),
                        format!(
                            "target {target}, region {region}: database.port {} is not a TCP port",
                            p.get_ref()
                        ),
                    ));
                }
            };
            if d.user.is_empty() || d.dbname.is_empty() {
                return Err(ctx.err(
                    span,
                    format!("target {target}, region {region}: database.user and database.dbname must not be empty"),
                ));
            }
            Some(DbConn {
                host: d.host,
                port,
                user: d.user,
                dbname: d.dbname,
                password,
            })
        }
    };
    Ok(RdsRegion {
        endpoint: raw.endpoint.map(Spanned::into_inner),
        kms_key: raw.kms_key.map(Spanned::into_inner),
        instance_class: raw.instance_class.map(Spanned::into_inner),
        subnet_group: raw.subnet_group.map(Spanned::into_inner),
        restore_identifier: raw
            .restore_identifier
            .map(Spanned::into_inner)
            .unwrap_or_else(|| "{instance}-{point}".to_string()),
        database,
    })
}

fn namespace_target(
    ctx: &Ctx,
    name: &str,
    raw: RawTarget,
    known: &BTreeSet<String>,
    home: &str,
) -> Result<NamespaceTarget, ConfigError> {
    not_for_kind(
        ctx,
        name,
        "namespace",
        &[
            ("prefix", span_of(&raw.prefix)),
            ("instance", span_of(&raw.instance)),
            ("mode", span_of(&raw.mode)),
        ],
    )?;
    let Some(namespace) = raw.namespace else {
        return Err(ctx.err(
            raw.kind.span(),
            format!("target {name}: `namespace` (the Kubernetes namespace to back up) is missing"),
        ));
    };
    if !is_dns_label(namespace.get_ref()) {
        return Err(ctx.err(
            namespace.span(),
            format!(
                "target {name}: namespace {:?} is not a valid Kubernetes namespace name (lowercase letters, digits, '-', at most 63)",
                namespace.get_ref()
            ),
        ));
    }
    let mut regions = BTreeMap::new();
    for (region, r) in raw.regions {
        let region = region_ref(ctx, &region, known, name, "regions")?;
        let table = r.span();
        let r = r.into_inner();
        not_for_kind(
            ctx,
            name,
            "namespace",
            &[
                ("endpoints", span_of(&r.endpoints)),
                ("tls", span_of(&r.tls)),
                ("members", span_of(&r.members)),
                ("cluster_token", span_of(&r.cluster_token)),
                ("endpoint", span_of(&r.endpoint)),
                ("kms_key", span_of(&r.kms_key)),
                ("instance_class", span_of(&r.instance_class)),
                ("subnet_group", span_of(&r.subnet_group)),
                ("restore_identifier", span_of(&r.restore_identifier)),
                ("database", span_of(&r.database)),
            ],
        )?;
        let Some(kubeconfig) = r.kubeconfig else {
            return Err(ctx.err(
                table,
                format!("target {name}, region {region}: `kubeconfig` (path of the kubeconfig file) is missing"),
            ));
        };
        regions.insert(
            region,
            KubeRegion {
                kubeconfig: ctx.path(kubeconfig.get_ref()),
                context: r.context.map(Spanned::into_inner),
            },
        );
    }
    if !regions.contains_key(home) {
        return Err(ctx.err(
            raw.home.span(),
            format!("target {name}: no [targets.{name}.regions.{home}] table with the kubeconfig of its home region"),
        ));
    }
    Ok(NamespaceTarget {
        namespace: namespace.into_inner(),
        include: raw.include.map(Spanned::into_inner).unwrap_or_default(),
        exclude: raw.exclude.map(Spanned::into_inner).unwrap_or_default(),
        label_selector: raw.label_selector.map(Spanned::into_inner),
        keep_last_applied: raw.keep_last_applied.is_some_and(|k| *k.get_ref()),
        regions,
    })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_url(
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

fn tls(ctx: &Ctx, target: &str, region: &str, raw: RawTls) -> Result<TlsFiles, ConfigError> {
    let file = |v: &Option<Spanned<String>>, what: &str| -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let p = ctx.path(v.get_ref());
        if p.is_file() {
            Ok(Some(p))
        } else {
            Err(ctx.err(
                v.span(),
                format!(
                    "target {target}, region {region}: tls.{what} file {} does not exist",
                    p.display()
                ),
            ))
        }
    };
    let files = TlsFiles {
        ca: file(&raw.ca, "ca")?,
        cert: file(&raw.cert, "cert")?,
        key: file(&raw.key, "key")?,
    };
    if files.cert.is_some() != files.key.is_some() {
        let span = raw
            .cert
            .as_ref()
            .or(raw.key.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(ctx.err(
            span,
            format!("target {target}, region {region}: tls needs both `cert` and `key` for a client certificate"),
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, Path::new("/etc/drtool/drtool.toml"))
    }

    const GOOD: &str = r#"
[regions.us-east-1]
store = "s3://bucket-a/pre/fix/"
endpoint = "http://127.0.0.1:3900"
path_style = true

[regions.us-west-2]
store = "file:///var/lib/drtool"

[targets.main]
kind = "etcd"
home = "us-east-1"
copy_to = ["us-west-2"]

[targets.main.regions.us-east-1]
endpoints = ["http://127.0.0.1:2379"]

[targets.main.regions.us-west-2]
endpoints = ["http://127.0.0.1:2479"]
members = [{ name = "a", peer_url = "http://127.0.0.1:2480", data_dir = "restore/a" }]
"#;

    #[test]
    fn parses_a_good_config() -> Result<(), ConfigError> {
        let c = parse(GOOD)?;
        let r = &c.regions["us-east-1"];
        assert_eq!(
            r.store,
            StoreUrl::S3 {
                bucket: "bucket-a".into(),
                prefix: "pre/fix".into()
            }
        );
        assert_eq!(r.s3_region, "us-east-1");
        let t = &c.targets["main"];
        assert_eq!(t.regions().collect::<Vec<_>>(), ["us-east-1", "us-west-2"]);
        let TargetSpec::Etcd(e) = &t.spec else {
            panic!("expected an etcd target")
        };
        assert_eq!(e.mode, EtcdMode::Snapshot);
        assert_eq!(
            e.regions["us-west-2"].members[0].data_dir,
            PathBuf::from("/etc/drtool/restore/a")
        );
        assert_eq!(c.defaults, Defaults::default());
        Ok(())
    }

    fn message(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("config should not parse"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_region_names_line_and_value() {
        let bad = GOOD.replace(r#"copy_to = ["us-west-2"]"#, r#"copy_to = ["eu-west-9"]"#);
        let m = message(&bad);
        assert!(m.starts_with("/etc/drtool/drtool.toml:13:"), "{m}");
        assert!(m.contains("unknown region \"eu-west-9\""), "{m}");
    }

    #[test]
    fn unknown_field_names_line() {
        let bad = GOOD.replace("path_style = true", "path_styel = true");
        let m = message(&bad);
        assert!(m.contains(":5:"), "{m}");
        assert!(m.contains("path_styel"), "{m}");
    }

    #[test]
    fn duplicate_target_is_an_error() {
        let bad = format!("{GOOD}\n[targets.main]\nkind = \"etcd\"\nhome = \"us-east-1\"\n");
        let m = message(&bad);
        assert!(m.contains("duplicate") || m.contains("redefin"), "{m}");
    }

    #[test]
    fn bad_store_url() {
        let m = message(&GOOD.replace("s3://bucket-a/pre/fix/", "gs://x"));
        assert!(m.contains("invalid store URL \"gs://x\""), "{m}");
    }

    #[test]
    fn out_of_range_default() {
        let m = message(&format!("[defaults]\ncompression_level = 42\n{GOOD}"));
        assert!(
            m.contains(":2:") && m.contains("compression_level = 42"),
            "{m}"
        );
    }
}
