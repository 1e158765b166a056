//! Failover drills: the drill file ([`spec`]), the runner that injects the
//! fault and recovers ([`runner`]), probe checks ([`probe`]) and the RTO/RPO
//! arithmetic ([`measure`]).
//!
//! Drills call the engine like every other face; what a fault, probe or
//! canary does to a target is its kind's, in `source/`. Nothing here prints.

pub mod measure;
pub mod probe;
pub mod runner;
pub mod spec;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::engine::Engine;
use crate::error::Error;
use crate::report::{DrillReport, ReportSignature, ReportStore};

/// A drill run and where its report went.
pub struct Filed {
    pub report: DrillReport,
    /// The report's folder in the local store, or why it could not be written.
    pub folder: Result<PathBuf, Error>,
    /// Per region of the drill: where the report was stored, or why not.
    pub uploaded: Vec<String>,
}

/// Runs a drill, then signs its report and stores it in the drill's regions
/// and in `store`: what `drill run` and the dashboard do alike.
pub async fn run_and_file(
    engine: &Engine,
    drill: &spec::Drill,
    opts: runner::RunOptions,
    operator: Arc<dyn runner::Operator>,
    events: broadcast::Sender<runner::DrillEvent>,
    store: &ReportStore,
) -> Filed {
    let mut report = runner::run(engine, drill, opts, operator, events).await;
    let uploaded = file_report(engine, drill, &mut report).await;
    let folder = store.write(&report);
    Filed {
        report,
        folder,
        uploaded,
    }
}

/// Signs the report (with the config's signing key, over its timeline's hash
/// chain) and stores it in the drill's regions that are not lost; one line
/// per region saying where it went or why not.
pub async fn file_report(
    engine: &Engine,
    drill: &spec::Drill,
    report: &mut DrillReport,
) -> Vec<String> {
    let mut said = Vec::new();
    report.seal_now();
    let head = report.chain_head();
    match engine.sign(&report.signed_message(&head)) {
        Ok(Some((key, value))) => {
            report.signature = Some(ReportSignature {
                algorithm: "ed25519".into(),
                key,
                chain_head: head,
                value,
            })
        }
        Ok(None) => {}
        Err(e) => said.push(format!("not signed: {e}")),
    }
    let mut regions: Vec<String> = if drill.regions.is_empty() {
        drill
            .targets
            .iter()
            .filter_map(|t| engine.config().target(t))
            .flat_map(|t| t.regions().map(str::to_string).collect::<Vec<_>>())
            .collect()
    } else {
        drill.regions.clone()
    };
    regions.sort();
    regions.dedup();
    let lost = engine.lost_regions();
    let files = match crate::report::rendered(report) {
        Ok(f) => f,
        Err(e) => return vec![format!("not stored: {e}")],
    };
    for region in regions {
        if lost.contains(&region) {
            said.push(format!(
                "not stored in {region}: the drill declared it lost"
            ));
            continue;
        }
        let mut ok = true;
        for (name, body) in &files {
            if let Err(e) = engine
                .put_drill_file(&region, &report.run_id, name, body.clone())
                .await
            {
                said.push(format!("not stored in {region}: {e}"));
                ok = false;
                break;
            }
        }
        if ok {
            report.uploaded_to.push(region.clone());
            said.push(format!(
                "stored in {region} under drills/{}/",
                report.run_id
            ));
        }
    }
    said
}
