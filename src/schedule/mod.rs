//! Scheduled headless backups: `schedules/*.toml` ([`spec`]), crontab lines
//! evaluated in a time zone ([`cron`]), grandfather-father-son retention with
//! a reason for every kept point ([`retention`]), and the daemon that runs
//! what is due.
//!
//! Schedules call the engine like every other face; nothing here prints.

pub mod cron;
pub mod retention;
pub mod spec;

pub use spec::{Schedule, ScheduleError};
