//! `-o json`: every command prints one JSON document on stdout, whatever
//! happened, described by `docs/output.schema.json`:
//!
//! ```json
//! { "apiVersion": "drtool/v1", "kind": "Points", "items": [...],
//!   "errors": [{"class": "unreachable", "message": "...", "region": "us-west-2"}],
//!   "exit_code": 4 }
//! ```
//!
//! `kind` names the command (one per command, see [`kind`]); `items` are its
//! records; a command may add fields of its own (`plan`, `regions`, ...) that
//! the schema names per kind. Units are machine units: durations in `*_ms`,
//! sizes in bytes, times in RFC 3339 UTC. Commands hand their records to the
//! envelope; it is printed once, after the exit code is known.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Command;
use crate::engine::{Outcome, RunReport};
use crate::error::ErrorClass;

/// The version of the envelope's shape; bumped on a breaking change.
pub const API_VERSION: &str = "drtool/v1";

/// What a command has to say in JSON, gathered until it ends.
#[derive(Debug, Default)]
pub struct Envelope {
    items: Vec<Value>,
    fields: Map<String, Value>,
    errors: Vec<Value>,
    /// Items already printed (a listing of millions of keys): the document's
    /// head and its items are out, [`Envelope::print`] closes it.
    streamed: Option<u64>,
}

fn value(v: impl Serialize) -> Value {
    // Our own plain-data types always serialize.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Envelope {
    pub fn items<T: Serialize>(&mut self, items: impl IntoIterator<Item = T>) {
        self.items.extend(items.into_iter().map(value));
    }

    pub fn field(&mut self, name: &str, v: impl Serialize) {
        self.fields.insert(name.to_string(), value(v));
    }

    /// An error with what it was about (`region`, `target`, `point`, `file`).
    pub fn error(&mut self, class: ErrorClass, message: &str, about: Map<String, Value>) {
        let mut e = Map::new();
        e.insert("class".into(), value(class));
        e.insert("message".into(), Value::String(message.to_string()));
        e.extend(about);
        self.errors.push(Value::Object(e));
    }

    /// A region a listing could not read.
    pub fn region_error(&mut self, region: &str, class: Option<ErrorClass>, message: Option<&str>) {
        if let Some(message) = message {
            let mut about = Map::new();
            about.insert("region".into(), json!(region));
            self.error(class.unwrap_or(ErrorClass::Failed), message, about);
        }
    }

    /// A run report's items; each failed or cancelled one is also an error.
    pub fn report(&mut self, report: &RunReport) {
        for r in &report.items {
            if matches!(r.outcome, Outcome::Failed | Outcome::Cancelled) {
                let mut about = Map::new();
                about.insert("operation".into(), value(r.operation));
                about.insert("target".into(), value(&r.target));
                about.insert("region".into(), value(&r.region));
                about.insert("point".into(), value(&r.point));
                self.error(
                    r.error_class.unwrap_or(ErrorClass::Failed),
                    &r.message,
                    about,
                );
            }
        }
        self.items(&report.items);
    }

    /// Prints one item at once instead of keeping it (the first one prints
    /// the document's head). Field order stays that of [`Envelope::finish`].
    pub fn stream_item(&mut self, kind: &str, item: impl Serialize) {
        let line = serde_json::to_string(&value(item)).unwrap_or_default();
        match self.streamed {
            None => {
                let head = serde_json::to_string(&json!({
                    "apiVersion": API_VERSION,
                    "kind": kind,
                }))
                .unwrap_or_default();
                let head = head.strip_suffix('}').unwrap_or(&head);
                super::output::out(format_args!("{head},\"items\":[\n{line}"), false);
            }
            Some(_) => super::output::out(format_args!(",\n{line}"), false),
        }
        self.streamed = Some(self.streamed.unwrap_or(0) + 1);
    }

    /// Prints the document (or, once items were streamed, the rest of it).
    pub fn print(self, kind: &str, exit_code: u8) {
        if self.streamed.is_none() {
            super::print_json(&self.finish(kind, exit_code));
            return;
        }
        let mut doc = self.finish(kind, exit_code);
        if let Some(o) = doc.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
            o.remove("items");
        }
        let rest = serde_json::to_string(&doc).unwrap_or_default();
        let rest = rest.strip_prefix('{').unwrap_or(&rest);
        let sep = if rest == "}" { "" } else { "," };
        super::output::out(format_args!("\n]{sep}{rest}"), true);
    }

    /// The document, with the command's kind and exit code.
    pub fn finish(self, kind: &str, exit_code: u8) -> Value {
        let mut doc = Map::new();
        doc.insert("apiVersion".into(), json!(API_VERSION));
        doc.insert("kind".into(), json!(kind));
        doc.insert("items".into(), Value::Array(self.items));
        for (k, v) in self.fields {
            doc.entry(k).or_insert(v);
        }
        doc.insert("errors".into(), Value::Array(self.errors));
        doc.insert("exit_code".into(), json!(exit_code));
        Value::Object(doc)
    }
}

/// The envelope's `kind` for a command line: the command's path in PascalCase.
pub fn kind(command: Option<&Command>) -> &'static str {
    use super::{ConfigCommand, drill, report, schedule};
    let Some(command) = command else {
        return "Usage";
    };
    match command {
        Command::Backup(_) => "Backup",
        Command::Points(a) if a.command.is_some() => "PointsRetain",
        Command::Points(_) => "Points",
        Command::Ls(_) => "Ls",
        Command::Diff(_) => "Diff",
        Command::Restore(_) => "Restore",
        Command::Copy(_) => "Copy",
        Command::Verify(_) => "Verify",
        Command::Gc(_) => "Gc",
        Command::Prune(_) => "Prune",
        Command::RestoreTest(_) => "RestoreTest",
        Command::Schedule(c) => match c {
            schedule::Command::List(_) => "ScheduleList",
            schedule::Command::Check(_) => "ScheduleCheck",
            schedule::Command::Run(_) => "ScheduleRun",
            schedule::Command::Export(_) => "ScheduleExport",
        },
        Command::Stream(c) => match c {
            super::stream::Command::Run(_) => "StreamRun",
            super::stream::Command::Status(_) => "StreamStatus",
        },
        Command::Drill(c) => match c {
            drill::Command::Run(_) => "DrillRun",
            drill::Command::Validate(_) => "DrillValidate",
            drill::Command::List(_) => "DrillList",
            drill::Command::Cleanup(_) => "DrillCleanup",
        },
        Command::Report(c) => match c {
            report::Command::List(_) => "ReportList",
            report::Command::Show(_) => "ReportShow",
            report::Command::History(_) => "ReportHistory",
            report::Command::Note(_) => "ReportNote",
            report::Command::Verify(_) => "ReportVerify",
            report::Command::Schema => "ReportSchema",
        },
        Command::Config(ConfigCommand::Check(_)) => "ConfigCheck",
        Command::Ui(_) => "Ui",
        Command::Completions(_) => "Completions",
        Command::Man(_) => "Man",
        Command::Init(_) => "Init",
    }
}

/// Whether raw arguments ask for JSON (for errors clap finds before parsing
/// is done).
pub fn wanted(args: &[std::ffi::OsString]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.windows(2)
        .any(|w| matches!(w[0], "-o" | "--output") && w[1] == "json")
        || args
            .iter()
            .any(|a| matches!(*a, "-ojson" | "--output=json" | "-o=json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_has_its_fields_in_order_and_own_fields_cannot_shadow_them() {
        let mut e = Envelope::default();
        e.items([1, 2]);
        e.field("kind", "other");
        e.field("plan", json!({"steps": 1}));
        e.error(ErrorClass::Unreachable, "down", Map::new());
        let doc = e.finish("Points", 4);
        assert_eq!(doc["kind"], "Points");
        assert_eq!(doc["items"], json!([1, 2]));
        assert_eq!(doc["plan"]["steps"], 1);
        assert_eq!(doc["errors"][0]["class"], "unreachable");
        assert_eq!(doc["exit_code"], 4);
        assert_eq!(doc["apiVersion"], API_VERSION);
    }

    #[test]
    fn json_is_found_in_every_spelling() {
        let os = |v: &[&str]| {
            v.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert!(wanted(&os(&["drtool", "points", "-o", "json"])));
        assert!(wanted(&os(&["drtool", "--output=json", "x"])));
        assert!(wanted(&os(&["drtool", "-ojson"])));
        assert!(!wanted(&os(&["drtool", "points", "-o", "text"])));
        assert!(!wanted(&os(&["drtool", "json"])));
    }
}
