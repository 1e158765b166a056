//! Scheduled headless backups: `schedules/*.toml` ([`spec`]), crontab lines
//! evaluated in a time zone ([`cron`]), and the daemon that runs what is due;
//! retention itself is the catalog's (`catalog::retention`).
//!
//! Schedules call the engine like every other face; nothing here prints.

pub mod cron;
pub mod daemon;
pub mod export;
pub mod metrics;
pub mod notify;
pub mod run;
pub mod spec;
pub mod streams;

pub use spec::{Schedule, ScheduleError};
