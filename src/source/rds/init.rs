//! What `drtool init` finds of RDS: every region's instances, when there is
//! an RDS API to ask, one snapshot target each, homed where it was found.

use async_trait::async_trait;

use super::RdsKind;
use crate::engine::kind::{
    Discovery, FlagShape, FlagSpec, InitAsk, InitFound, target_name, toml_list, toml_string,
};
use crate::error::KindError;

const INSTANCE: &str = "rds-instance";
const ENDPOINT: &str = "rds-endpoint";

const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        long: INSTANCE,
        value_name: "ID",
        help: "Only these RDS instances (repeatable; default: every instance found)",
        shape: FlagShape::Many,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: ENDPOINT,
        value_name: "URL",
        help: "The RDS API's address (default: AWS's). RDS is looked at when this is given or AWS credentials are in the environment",
        shape: FlagShape::One,
        file: false,
        needs: None,
    },
];

/// The instances of every region taken: (region, instance id).
async fn instances(ask: &InitAsk<'_>, notes: &mut Vec<String>) -> Vec<(String, String)> {
    let given = ask.flags.values(INSTANCE);
    let endpoint = ask.flags.value(ENDPOINT);
    let mut found = Vec::new();
    for r in ask.regions {
        let api = super::Rds::new(r, endpoint).await;
        match tokio::time::timeout(std::time::Duration::from_secs(30), api.list_instances()).await {
            Ok(Ok(instances)) => {
                let all = instances.len();
                let taken: Vec<String> = instances
                    .into_iter()
                    .map(|(id, _)| id)
                    .filter(|id| given.is_empty() || given.contains(id))
                    .collect();
                notes.push(format!(
                    "{r}: {all} RDS instance(s), {} taken{}",
                    taken.len(),
                    if given.is_empty() { "" } else { " (as given)" }
                ));
                found.extend(taken.into_iter().map(|id| (r.clone(), id)));
            }
            Ok(Err(e)) => notes.push(format!("{r}: RDS instances not listed ({e})")),
            Err(_) => notes.push(format!("{r}: the RDS API did not answer in 30 s")),
        }
    }
    for id in given {
        if !found.iter().any(|(_, x)| x == id) {
            notes.push(format!("RDS instance {id} was not found in any region"));
        }
    }
    found
}

/// An instance's target, copied to the other regions.
fn section(ask: &InitAsk<'_>, found: &[(String, String)], found_in: &str, id: &str) -> String {
    let twice = found.iter().filter(|(_, x)| x == id).count() > 1;
    let name = if twice {
        target_name("rds-", &format!("{id}-{found_in}"))
    } else {
        target_name("rds-", id)
    };
    let elsewhere: Vec<String> = ask
        .regions
        .iter()
        .filter(|r| *r != found_in)
        .cloned()
        .collect();
    let mut t = format!(
        "# RDS instance {id} in {found_in}: native snapshots, copied to the DR\n# regions. For pg_dump archives too, set mode = \"both\" and give each\n# region a database = {{ host, port, user, dbname, password_env }}.\n[targets.{name}]\nkind = \"rds\"\nmode = \"snapshot\"\ninstance = {}\nhome = {}\ncopy_to = {}\n",
        toml_string(id),
        toml_string(found_in),
        toml_list(&elsewhere)
    );
    for r in ask.regions {
        t.push_str(&format!("\n[targets.{name}.regions.{r}]\n"));
        if let Some(e) = ask.flags.value(ENDPOINT) {
            t.push_str(&format!("endpoint = {}\n", toml_string(e)));
        }
    }
    t
}

#[async_trait]
impl Discovery for RdsKind {
    fn init_flags(&self) -> &'static [FlagSpec] {
        FLAGS
    }

    async fn discover(
        &self,
        ask: &InitAsk<'_>,
        found: &mut InitFound,
    ) -> Result<(), Box<dyn KindError>> {
        let credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            || std::env::var_os("AWS_PROFILE").is_some();
        if ask.flags.value(ENDPOINT).is_none() && !credentials {
            found.notes.push(
                "no AWS credentials in the environment and no --rds-endpoint: RDS not looked at"
                    .into(),
            );
            return Ok(());
        }
        let taken = instances(ask, &mut found.notes).await;
        for (found_in, id) in &taken {
            found.sections.push(section(ask, &taken, found_in, id));
        }
        Ok(())
    }
}
