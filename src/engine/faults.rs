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
        let typed: T = serde_json::from_value(fields).map_err(|e| Error::input(e.to_string()))?;
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
