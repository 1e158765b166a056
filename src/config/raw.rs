//! The TOML shape of `drtool.toml` (what every target has; each kind's
//! section reads its own tables again with [`kind_tables`]) and the helpers
//! every section's validation uses.
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
pub struct RawConfig {
    pub defaults: Option<RawDefaults>,
    pub encryption: Option<RawEncryption>,
    pub signing: Option<RawSigning>,
    #[serde(default)]
    pub regions: BTreeMap<Spanned<String>, RawRegion>,
    #[serde(default)]
    pub targets: BTreeMap<Spanned<String>, RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub compression_level: Option<Spanned<i64>>,
    pub compression_adapt: Option<bool>,
    pub compression_threads: Option<Spanned<i64>>,
    pub part_size_mib: Option<Spanned<i64>>,
    pub parts_in_flight: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    pub recipients: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    pub key_file: Option<Spanned<String>>,
    pub key_env: Option<Spanned<String>>,
    #[serde(default)]
    pub verify_keys: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub store: Spanned<String>,
    pub endpoint: Option<Spanned<String>>,
    #[serde(default)]
    pub path_style: bool,
    pub s3_region: Option<String>,
    pub profile: Option<String>,
    pub object_lock: Option<Spanned<RawObjectLock>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectLock {
    pub mode: Spanned<String>,
    pub retain: Spanned<String>,
}

/// A target table as every kind has it: the kind's own fields (and any
/// misspelt one) are read, and refused, by the kind's section
/// ([`kind_tables`]).
#[derive(Deserialize)]
pub struct RawTarget {
    pub kind: Spanned<String>,
    pub home: Spanned<String>,
    #[serde(default)]
    pub copy_to: Vec<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A kind's shape of a `[targets.NAME]` table: the fields every target has
/// and the kind's own, refusing any other.
macro_rules! target_table {
    ($(#[$sm:meta])* $name:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        $(#[$sm])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[allow(dead_code)]
            pub kind: toml::Spanned<String>,
            pub home: toml::Spanned<String>,
            #[serde(default)]
            #[allow(dead_code)]
            copy_to: serde::de::IgnoredAny,
            #[serde(default)]
            #[allow(dead_code)]
            labels: serde::de::IgnoredAny,
            $( $(#[$fm])* pub $field: $ty, )*
        }
    };
}
pub(crate) use target_table;

/// How a kind reads one of its tables: the target's name, its table in the
/// kind's shape `R`, the known regions and the target's home.
pub type ParseTable<R, S> = fn(&Ctx, &str, R, &BTreeSet<String>, &str) -> Result<S, ConfigError>;

/// The targets of kind `kind` (`homes`: name -> home region): their
/// `[targets.NAME]` tables read again from the file as the kind's own shape
/// `R` (every other table is skipped), each parsed by `parse`. A field `R`
/// does not have is refused as not applying to the kind.
pub fn kind_tables<R: serde::de::DeserializeOwned, S: super::KindSpec>(
    ctx: &Ctx,
    kind: &str,
    homes: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
    parse: ParseTable<R, S>,
) -> Result<BTreeMap<String, super::TargetSpec>, ConfigError> {
    use serde::de::DeserializeSeed;
    let names: BTreeSet<String> = homes.keys().cloned().collect();
    let doc = Pick {
        keys: PickKeys::Targets,
        names: &names,
        t: std::marker::PhantomData::<R>,
    };
    let tables = doc
        .deserialize(toml::Deserializer::new(ctx.text))
        .map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim_end().replace('\n', ": ");
            ctx.err(span, not_for_kind(&message, kind).unwrap_or(message))
        })?;
    let mut out = BTreeMap::new();
    for (name, table) in tables {
        let home = homes.get(&name).map_or("", String::as_str);
        let spec = parse(ctx, &name, table.into_inner(), known, home)?;
        out.insert(name, super::TargetSpec::new(spec));
    }
    Ok(out)
}

/// "unknown field `x`, expected one of `a`, `b`" as a field that does not
/// apply to `kind` where it is (a target's table, a region's, or one inside
/// them such as `database`).
fn not_for_kind(message: &str, kind: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let fields = expected
        .trim_start_matches(", expected one of ")
        .trim_start_matches(", expected ")
        .replace('`', "");
    Some(format!(
        "`{field}` does not apply to a target of kind {kind} here (the fields here: {fields})"
    ))
}

enum PickKeys {
    /// The document: only `targets`.
    Targets,
    /// `targets`: only the names asked for.
    Names,
}

/// Walks the document down to the asked targets' tables.
struct Pick<'n, T> {
    keys: PickKeys,
    names: &'n BTreeSet<String>,
    t: std::marker::PhantomData<T>,
}

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for Pick<'_, T> {
    type Value = BTreeMap<String, Spanned<T>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Pick<'_, T> {
    type Value = BTreeMap<String, Spanned<T>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.keys {
                PickKeys::Targets if key == "targets" => {
                    out = map.next_value_seed(Pick {
                        keys: PickKeys::Names,
                        names: self.names,
                        t: std::marker::PhantomData::<T>,
                    })?;
                }
                PickKeys::Names if self.names.contains(&key) => {
                    let table: Spanned<T> = map.next_value()?;
                    out.insert(key, table);
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Turns byte offsets into `file:line:column` errors.
pub struct Ctx<'a> {
    pub text: &'a str,
    pub path: &'a Path,
}

impl Ctx<'_> {
    pub fn location(&self, span: Range<usize>) -> Location {
        Location::of(self.path, self.text, span.start)
    }

    pub fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: self.location(span),
            message: message.into(),
        }
    }

    /// Relative paths in the config are relative to the config file's folder.
    pub fn path(&self, value: &str) -> PathBuf {
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

pub fn region_ref(
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
pub fn mode<T: Copy>(
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
pub fn regions<R, T>(
    ctx: &Ctx,
    target: &str,
    raw: BTreeMap<Spanned<String>, Spanned<R>>,
    known: &BTreeSet<String>,
    mut parse: impl FnMut(&str, Spanned<R>) -> Result<T, ConfigError>,
) -> Result<BTreeMap<String, T>, ConfigError> {
    let mut out = BTreeMap::new();
    for (region, r) in raw {
        let region = region_ref(ctx, &region, known, target, "regions")?;
        let parsed = parse(&region, r)?;
        out.insert(region, parsed);
    }
    Ok(out)
}

pub fn check_url(
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
