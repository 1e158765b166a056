//! The drill vocabulary each kind implements in its own home: the faults it
//! injects, the probes it runs and the canary marks it writes. Each kind
//! declares their names and reads their fields into its own types; the
//! engine's `exercise` carries them to the kind as [`DrillItem`]s, the drill
//! checker makes them from a drill file.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A fault a kind injects into one of its targets in one region, or a
/// check it runs there: the kind's own typed value, named as drill files
/// name it (`delete_keys`, `etcd_key`) and carried serialized, as restore
/// options are. Read by the kind that declares the name
/// ([`Drills::read_fault`](super::kind::Drills::read_fault),
/// [`Drills::read_probe`](super::kind::Drills::read_probe)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillItem {
    name: String,
    fields: serde_json::Value,
}

/// A fault a kind injects.
pub type KindFault = DrillItem;

/// A check a kind runs.
pub type KindProbe = DrillItem;

impl DrillItem {
    /// Records a kind's typed fault or probe under its name.
    pub fn of<T: Serialize>(name: &str, item: &T) -> Result<DrillItem, Error> {
        serde_json::to_value(item)
            .map(|fields| DrillItem {
                name: name.to_string(),
                fields,
            })
            .map_err(|e| Error::failed(format!("cannot record {name}: {e}")))
    }

    /// Reads a fault's or probe's own fields into the kind's type `T`
    /// (which refuses fields it lacks) and records it; `text` says what it
    /// does.
    pub fn read<T: Serialize + DeserializeOwned>(
        name: &str,
        fields: serde_json::Value,
        text: impl FnOnce(&T) -> String,
    ) -> Result<(DrillItem, String), Error> {
        let typed: T = read_fields(fields)?;
        let text = text(&typed);
        Ok((DrillItem::of(name, &typed)?, text))
    }

    /// As drill files name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads it back as the kind's type.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.fields.clone()).map_err(|e| {
            Error::failed(format!(
                "{} holds what its kind does not read: {e}",
                self.name
            ))
        })
    }
}

/// Reads a fault's or probe's own fields into `T`. YAML gives a plain
/// scalar its type (`expect: 1` is a number, `equals: true` a boolean)
/// where the drill file meant text, as it did when drill files were read
/// straight into typed fields: when `T` refuses the fields as they are,
/// numbers, then numbers and booleans, are read again as text.
pub fn read_fields<T: DeserializeOwned>(fields: serde_json::Value) -> Result<T, Error> {
    let first = match serde_json::from_value(fields.clone()) {
        Ok(typed) => return Ok(typed),
        Err(e) => e,
    };
    for with_booleans in [false, true] {
        if let Ok(typed) = serde_json::from_value(as_text(fields.clone(), with_booleans)) {
            return Ok(typed);
        }
    }
    Err(Error::input(first.to_string()))
}

/// The same fields with numbers (and booleans) as text, at the top level.
fn as_text(fields: serde_json::Value, with_booleans: bool) -> serde_json::Value {
    let serde_json::Value::Object(map) = fields else {
        return fields;
    };
    let text = |v: serde_json::Value| match v {
        serde_json::Value::Number(n) => serde_json::Value::String(n.to_string()),
        serde_json::Value::Bool(b) if with_booleans => serde_json::Value::String(b.to_string()),
        other => other,
    };
    serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, text(v))).collect())
}

/// What a fault or probe without fields of its own reads
/// (`delete_namespace: { target, region }`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// One canary marker: a sequence number and when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryMark {
    pub seq: u64,
    pub at: DateTime<Utc>,
}
