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

use crate::engine::Engine;
use crate::report::{DrillReport, ReportSignature, store};

/// Signs the report (with the config's signing key, over its timeline's hash
/// chain) and stores it in the drill's regions that are not lost; one line
/// per region saying where it went or why not.
pub async fn file_report(
    engine: &Engine,
    drill: &spec::Drill,
    report: &mut DrillReport,
) -> Vec<String> {
    let mut said = Vec::new();
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
    let files = match store::rendered(report) {
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
