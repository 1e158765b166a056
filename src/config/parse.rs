//! Validation of `drtool.toml` into [`Config`]: regions, defaults, encryption,
//! and each target through the section of its kind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use toml::Spanned;

use super::raw::{
    Ctx, RawConfig, RawDefaults, RawEncryption, RawObjectLock, RawRegion, RawSigning, RawTarget,
    region_ref,
};
use super::{
    Config, ConfigError, Defaults, Encryption, KeySource, LockMode, ObjectLock, Region, Section,
    Signing, StoreUrl, Target,
};

/// Parses and validates config text; `path` is used for messages and relative paths.
pub fn parse_str(text: &str, path: &Path, sections: &[Section]) -> Result<Config, ConfigError> {
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
    let signing = raw.signing.map(|s| signing(&ctx, s)).transpose()?;
    let mut regions = BTreeMap::new();
    for (name, r) in raw.regions {
        check_name(&ctx, &name, "region")?;
        let region = region(&ctx, name.get_ref(), r)?;
        regions.insert(name.into_inner(), region);
    }
    let known: BTreeSet<String> = regions.keys().cloned().collect();
    let mut common = BTreeMap::new();
    for (name, t) in raw.targets {
        check_name(&ctx, &name, "target")?;
        let target = target(&ctx, name.get_ref(), t, &known, sections)?;
        common.insert(name.into_inner(), target);
    }
    // Each kind's section reads its targets' own fields.
    let mut targets = BTreeMap::new();
    for (kind, parse) in sections {
        let homes: BTreeMap<String, String> = common
            .iter()
            .filter(|(_, (k, _))| k == kind)
            .map(|(name, (_, t)): (&String, &(String, Common))| (name.clone(), t.home.clone()))
            .collect();
        if homes.is_empty() {
            continue;
        }
        for (name, spec) in parse(&ctx, &homes, &known)? {
            if let Some((_, c)) = common.remove(&name) {
                targets.insert(
                    name.clone(),
                    Target {
                        name,
                        home: c.home,
                        copy_to: c.copy_to,
                        labels: c.labels,
                        spec,
                    },
                );
            }
        }
    }
    // Every target's kind has a section (checked above), which reads all of
    // its targets: one left over would be a section's bug, never a silent loss.
    if let Some(name) = common.keys().next() {
        return Err(ctx.err(
            0..0,
            format!("target {name}: its kind's section did not read it (a bug: please report it)"),
        ));
    }
    Ok(Config {
        path: path.to_path_buf(),
        defaults,
        encryption,
        signing,
        regions,
        targets,
    })
}

/// Names become parts of object keys: a safe set of characters, no `..`.
fn check_name(ctx: &Ctx, name: &Spanned<String>, what: &str) -> Result<(), ConfigError> {
    let n = name.get_ref();
    let ok = (1..=63).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !n.contains("..")
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        let shown: String = n.chars().take(80).collect();
        Err(ctx.err(
            name.span(),
            format!(
                "invalid {what} name {shown:?}{}: use 1 to 63 letters, digits, '-', '_' and '.', starting with a letter or digit, without \"..\"",
                if n.chars().count() > 80 { "..." } else { "" }
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
    if let Some(v) = raw.compression_adapt {
        d.compression_adapt = v;
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

fn signing(ctx: &Ctx, raw: RawSigning) -> Result<Signing, ConfigError> {
    let key = match (raw.key_file, raw.key_env) {
        (Some(f), Some(e)) => {
            return Err(ctx.err(
                e.span().start.min(f.span().start)..e.span().end.max(f.span().end),
                "signing: set key_file or key_env, not both",
            ));
        }
        (Some(f), None) => Some(KeySource::File(ctx.path(f.get_ref()))),
        (None, Some(e)) => {
            if e.get_ref().is_empty() {
                return Err(ctx.err(
                    e.span(),
                    "signing.key_env is empty: name an environment variable",
                ));
            }
            Some(KeySource::Env(e.into_inner()))
        }
        (None, None) => None,
    };
    if key.is_none() && raw.verify_keys.is_empty() {
        return Err(ctx.err(
            0..0,
            "[signing] sets neither key_file/key_env (to sign) nor verify_keys (to check): set one or remove [signing]",
        ));
    }
    Ok(Signing {
        key,
        verify_keys: raw
            .verify_keys
            .iter()
            .map(|k| ctx.path(k.get_ref()))
            .collect(),
    })
}

fn object_lock(
    ctx: &Ctx,
    name: &str,
    raw: Spanned<RawObjectLock>,
) -> Result<ObjectLock, ConfigError> {
    let raw = raw.into_inner();
    let mode = match raw.mode.get_ref().as_str() {
        "governance" => LockMode::Governance,
        "compliance" => LockMode::Compliance,
        other => {
            return Err(ctx.err(
                raw.mode.span(),
                format!(
                    "region {name}: object_lock.mode {other:?} is not \"governance\" or \"compliance\""
                ),
            ));
        }
    };
    let retain = super::duration::parse_bounded(
        raw.retain.get_ref(),
        std::time::Duration::ZERO,
        super::duration::CENTURY,
    )
    .map_err(|e| {
        ctx.err(
            raw.retain.span(),
            format!("region {name}: object_lock.retain {e}"),
        )
    })?;
    if retain < std::time::Duration::from_secs(86_400) {
        return Err(ctx.err(
            raw.retain.span(),
            format!(
                "region {name}: object_lock.retain {:?} is under a day: S3 Object Lock retention is whole days or more",
                raw.retain.get_ref()
            ),
        ));
    }
    Ok(ObjectLock { mode, retain })
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
    let object_lock = match raw.object_lock {
        Some(lock) if matches!(store, StoreUrl::File { .. }) => {
            return Err(ctx.err(
                lock.span(),
                format!(
                    "region {name} has a file:// store: `object_lock` needs an s3:// store with Object Lock enabled on its bucket"
                ),
            ));
        }
        Some(lock) => Some(object_lock(ctx, name, lock)?),
        None => None,
    };
    Ok(Region {
        name: name.to_string(),
        store,
        endpoint,
        path_style: raw.path_style,
        s3_region: raw.s3_region.unwrap_or_else(|| name.to_string()),
        profile: raw.profile,
        object_lock,
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

/// What every target has, whatever its kind.
struct Common {
    home: String,
    copy_to: Vec<String>,
    labels: BTreeMap<String, String>,
}

/// A target's common fields, checked; its kind, checked against the
/// sections drtool has.
fn target(
    ctx: &Ctx,
    name: &str,
    raw: RawTarget,
    known: &BTreeSet<String>,
    sections: &[Section],
) -> Result<(String, Common), ConfigError> {
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
    let kind = raw.kind.get_ref().clone();
    if !sections.iter().any(|(k, _)| *k == kind) {
        let all: Vec<&str> = sections.iter().map(|(k, _)| *k).collect();
        return Err(ctx.err(
            raw.kind.span(),
            format!(
                "target {name}: unknown kind {kind:?} (supported: {})",
                all.join(", ")
            ),
        ));
    }
    Ok((
        kind,
        Common {
            home,
            copy_to,
            labels: raw.labels,
        },
    ))
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::source::etcd::EtcdMode;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        crate::source::parse_config(text, Path::new("/etc/drtool/drtool.toml"))
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
        let Some(e) = t.spec.get::<crate::source::etcd::EtcdTarget>() else {
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
    fn a_stream_is_read_with_its_bounds_in_either_mode() -> Result<(), ConfigError> {
        let keys = GOOD.replace(
            "kind = \"etcd\"\nhome",
            "kind = \"etcd\"\nmode = \"keys\"\ncontinuous = { segment = \"250ms\", max_segment = \"1MiB\" }\nhome",
        );
        let c = parse(&keys)?;
        let Some(e) = c.targets["main"]
            .spec
            .get::<crate::source::etcd::EtcdTarget>()
        else {
            panic!("expected an etcd target")
        };
        let Some(s) = e.continuous else {
            panic!("expected a stream")
        };
        assert_eq!(s.segment, std::time::Duration::from_millis(250));
        assert_eq!(s.max_segment, 1 << 20);
        let defaults =
            parse(&keys.replace("{ segment = \"250ms\", max_segment = \"1MiB\" }", "{}"))?;
        let e = defaults.targets["main"]
            .spec
            .get::<crate::source::etcd::EtcdTarget>();
        assert_eq!(
            e.and_then(|e| e.continuous)
                .map(|s| (s.segment, s.max_segment)),
            Some((std::time::Duration::from_secs(1), 8 << 20))
        );
        let cases = [
            ("250ms", "18446744073709551615GiB", "continuous.max_segment"),
            ("250ms", "1KiB", "out of range"),
            ("250ms", "lots", "not a size"),
            ("18446744073709551615s", "1MiB", "continuous.segment"),
            ("1ms", "1MiB", "out of range"),
        ];
        for (segment, max, says) in cases {
            let bad = keys
                .replace("250ms", segment)
                .replace("\"1MiB\"", &format!("{max:?}"));
            let m = message(&bad);
            assert!(
                m.contains(says) && m.contains(":13:"),
                "{segment} {max}: {m}"
            );
        }
        let m = message(&keys.replace("segment = ", "segmnet = "));
        assert!(m.contains("segmnet"), "{m}");
        let snapshot = GOOD.replace(
            "kind = \"etcd\"\nhome",
            "kind = \"etcd\"\ncontinuous = {}\nhome",
        );
        let c = parse(&snapshot)?;
        let e = c.targets["main"]
            .spec
            .get::<crate::source::etcd::EtcdTarget>();
        assert!(
            e.is_some_and(|e| e.continuous.is_some()),
            "snapshot mode streams too"
        );
        Ok(())
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
    fn a_field_is_read_by_its_own_kind_only() {
        // (field = value, the kind that reads it, whether it is a region's)
        let fields: &[(&str, &str, bool)] = &[
            ("prefix = \"/\"", "etcd", false),
            ("instance = \"i\"", "rds", false),
            ("namespace = \"n\"", "namespace", false),
            ("page_size = 100", "namespace", false),
            ("endpoints = []", "etcd", true),
            ("members = []", "etcd", true),
            ("database = { user = \"u\", dbname = \"d\" }", "rds", true),
            ("kms_key = \"k\"", "rds", true),
            ("kubeconfig = \"k\"", "namespace", true),
        ];
        for (field, owner, in_region) in fields {
            let name = field.split(' ').next().unwrap_or_default();
            for kind in ["etcd", "rds", "namespace"]
                .into_iter()
                .filter(|k| k != owner)
            {
                let (target, region) = if *in_region {
                    ("", *field)
                } else {
                    (*field, "")
                };
                let text = format!(
                    "[regions.r]\nstore = \"file:///tmp/x\"\n[targets.t]\nkind = \"{kind}\"\nhome = \"r\"\n\
                     {target}\n[targets.t.regions.r]\n{region}\n"
                );
                let m = message(&text);
                let line = if *in_region { ":8:" } else { ":6:" };
                assert!(
                    m.contains(line)
                        && m.contains(&format!(
                            "`{name}` does not apply to a target of kind {kind}"
                        )),
                    "{field} in {kind}: {m}"
                );
            }
        }
    }

    #[test]
    fn a_field_of_another_kind_is_named_with_its_line() {
        let ns = GOOD.replace(
            "copy_to = [\"us-west-2\"]",
            "copy_to = [\"us-west-2\"]\nlabel_selector = \"app=x\"",
        );
        let m = message(&ns);
        assert!(m.contains(":14:"), "{m}");
        assert!(
            m.contains("`label_selector` does not apply to a target of kind etcd"),
            "{m}"
        );
        let region = GOOD.replace(
            "endpoints = [\"http://127.0.0.1:2379\"]",
            "endpoints = [\"http://127.0.0.1:2379\"]\nkubeconfig = \"k\"",
        );
        assert!(message(&region).contains("`kubeconfig` does not apply to a target of kind etcd"));
    }

    #[test]
    fn unsafe_names_are_refused() {
        let long = "a".repeat(64);
        for bad in ["..", ".hidden", "-x", "a..b", long.as_str(), "a/b", ""] {
            let text = GOOD.replace("targets.main", &format!("targets.{bad:?}"));
            let m = message(&text);
            assert!(m.contains("invalid target name"), "{bad}: {m}");
        }
        assert!(parse(&GOOD.replace("targets.main", "targets.\"a.b_c-1\"")).is_ok());
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
