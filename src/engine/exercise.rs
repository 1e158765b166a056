//! What failover drills ask of the engine: faults, probes and canaries that
//! each target kind implements in its own home, regions a drill declares
//! lost, and undoing what a drill's restore made.
//!
//! The drill runner (`drill/`) decides when; this module only does, through
//! the same [`TargetKind`] the rest of the engine uses, and refuses to touch a
//! lost region.

use super::events::JobSpec;
use super::faults::{CanaryMark, KindFault, KindProbe};
use super::kind::{Drills, KindPlan, not_for_kind};
use super::report::Operation;
use super::restore::RestorePlan;
use super::root::Engine;
use crate::config::Target;
use crate::error::Error;
use crate::store::Keep;

impl Engine {
    /// From now on nothing in `region` is contacted by this engine (and the
    /// engines detached from it): its store, its endpoints.
    pub fn lose_region(&self, region: &str) -> Result<(), Error> {
        self.region(region)?;
        self.mark_lost(region);
        Ok(())
    }

    /// Undoes [`Engine::lose_region`]: the region is back (a fail-back).
    pub fn regain_region(&self, region: &str) -> Result<(), Error> {
        self.region(region)?;
        self.mark_regained(region);
        Ok(())
    }

    fn drill_target(&self, target: &str, region: &str) -> Result<&Target, Error> {
        let t = self.target(target)?;
        self.region(region)?;
        self.check_reachable(region)?;
        Ok(t)
    }

    /// The drill side of a target's kind; refused, naming the kind, when it
    /// has none (`what`: what was asked of it).
    fn drills_of(&self, t: &Target, what: &str) -> Result<&dyn Drills, Error> {
        let kind = self.kinds().get(t.spec.kind())?;
        kind.drills()
            .ok_or_else(|| not_for_kind(kind.name(), &t.name, what))
    }

    /// Injects a fault through the target's kind; says what was done.
    pub async fn inject_fault(
        &self,
        target: &str,
        region: &str,
        fault: &KindFault,
    ) -> Result<String, Error> {
        let t = self.drill_target(target, region)?;
        let kind = self.drills_of(t, fault.name())?;
        let job = self.job(JobSpec::new(Operation::Fault).target(target).region(region));
        let done = kind.fault(t, region, fault, &job).await;
        job.settle(done, |m| m.clone())
    }

    /// Runs a kind's probe once: `Ok(detail)` when it passes.
    pub async fn probe_target(
        &self,
        target: &str,
        region: &str,
        probe: &KindProbe,
    ) -> Result<String, Error> {
        let t = self.drill_target(target, region)?;
        self.drills_of(t, &format!("{} probe", probe.name()))?
            .probe(t, region, probe)
            .await
    }

    pub async fn canary_write(
        &self,
        target: &str,
        region: &str,
        run: &str,
        mark: CanaryMark,
    ) -> Result<(), Error> {
        let t = self.drill_target(target, region)?;
        self.drills_of(t, "canary")?
            .canary_write(t, region, run, mark)
            .await
    }

    pub async fn canary_read(
        &self,
        target: &str,
        region: &str,
        run: &str,
    ) -> Result<Vec<CanaryMark>, Error> {
        let t = self.drill_target(target, region)?;
        self.drills_of(t, "canary")?
            .canary_read(t, region, run)
            .await
    }

    /// Removes a run's canary data; how many markers were removed.
    pub async fn canary_clear(&self, target: &str, region: &str, run: &str) -> Result<u64, Error> {
        let t = self.drill_target(target, region)?;
        self.drills_of(t, "canary")?
            .canary_clear(t, region, run)
            .await
    }

    /// Stores one file of a drill run's report in a region's store.
    pub async fn put_drill_file(
        &self,
        region: &str,
        run: &str,
        name: &str,
        body: Vec<u8>,
    ) -> Result<(), Error> {
        let rs = self.store(region).await?;
        let key = rs.layout.drill_file_key(run, name);
        rs.store.put(&key, body.into(), Keep::Normal).await?;
        Ok(())
    }

    /// Signs `message` with the config's signing key: its fingerprint and the
    /// signature (base64), or none without a key.
    pub fn sign(&self, message: &[u8]) -> Result<Option<(String, String)>, Error> {
        Ok(self.signer()?.map(|s| s.sign_bytes(message)))
    }

    /// Undoes what executing `plan` made (a drill's cleanup); says what.
    pub async fn undo_restore(&self, plan: &RestorePlan) -> Result<String, Error> {
        self.check_reachable(&plan.region)?;
        let kind = self.kind_named(&plan.kind)?;
        let job = self.job(
            JobSpec::new(Operation::Cleanup)
                .target(&plan.target)
                .region(&plan.region)
                .point(plan.point.as_ref().map(|p| p.id.clone())),
        );
        let kind_plan = KindPlan {
            action: plan.action.clone(),
            lines: plan.summary.clone(),
            destructive: plan.destructive,
            verified: plan.verified,
        };
        let undone = match kind.drills() {
            Some(d) => d.undo(&kind_plan, &job).await,
            None => Ok("nothing to undo".into()),
        };
        job.settle(undone, |m| m.clone())
    }
}
