//! The engine: one [`Engine`] value built from the config and the registry of
//! target kinds, offering selection-level operations (back up, copy, verify,
//! list points, plan and execute restores, delete points, check reachability)
//! that return typed run reports, and publishing typed job events.
//!
//! It never prints and knows no terminal: the CLI, the dashboard, the scheduler
//! and the drill runner are faces over the same calls. Its generic code never
//! matches on target kinds: each kind implements [`kind::TargetKind`] in its own
//! folder under `source/`.

pub mod backup;
pub mod browse;
pub mod contents;
pub mod copy;
pub mod delete;
pub mod diff;
pub mod events;
pub mod exercise;
pub mod faults;
pub mod gc;
pub mod kind;
pub mod lock;
pub mod options;
pub mod point;
pub mod points;
pub mod prune;
pub mod reach;
pub mod replay;
pub mod report;
pub mod restore;
pub mod restore_test;
pub mod root;
pub mod stream;
pub mod verify;

pub use backup::BackupRequest;
pub use copy::{CopyPair, CopyRequest, copy_pairs};
pub use events::{EventKind, Job, JobEvent, JobId, JobSpec};
pub use gc::{GcAction, GcPlan, GcRequest};
pub use kind::{Reachability, Registry, TargetKind};
pub use options::{Existing, FlagValues, KindOptions, RestoreOptions};
pub use points::{RegionPoints, listing_verdict};
pub use prune::{PrunePlan, PruneRequest};
pub use report::{ItemReport, Operation, Outcome, RunReport, Verdict};
pub use restore::{RestorePlan, RestoreRequest};
pub use root::{Engine, EngineOptions, Scope};
pub use verify::VerifyRequest;
