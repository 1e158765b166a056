//! RDS targets against moto (the RDS API of every region) and the lab's real
//! PostgreSQL: snapshots copied across regions and restored in the DR region
//! while us-east-1 is unreachable, dumps restored into new databases, failures
//! reported clearly, and the retention hook.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::*;
use drtool::engine::{Engine, EngineOptions, Outcome};
use drtool::source::rds::RdsTarget;
use drtool::source::rds::{Rds, RdsError};
use predicates::prelude::*;
use serde_json::Value;

async fn rds_client(lab: &Lab, region: &str) -> aws_sdk_rds::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await;
    let conf = aws_sdk_rds::config::Builder::from(&shared)
        .endpoint_url(&lab.env["LAB_RDS_ENDPOINT"])
        .build();
    aws_sdk_rds::Client::from_conf(conf)
}

async fn create_instance(client: &aws_sdk_rds::Client, id: &str) {
    client
        .create_db_instance()
        .db_instance_identifier(id)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .master_username("postgres")
        .master_user_password("not-used-by-tests")
        .allocated_storage(20)
        .send()
        .await
        .unwrap();
}

async fn instance_exists(client: &aws_sdk_rds::Client, id: &str) -> bool {
    client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .is_ok_and(|o| !o.db_instances().is_empty())
}

fn rds_target(
    lab: &Lab,
    instance: &str,
    east_endpoint: &str,
    mode: &str,
    extra_east: &str,
    extra_west: &str,
) -> String {
    format!(
        r#"
[targets.db]
kind = "rds"
mode = "{mode}"
instance = "{instance}"
home = "{EAST}"
copy_to = ["{WEST}"]

[targets.db.regions.{EAST}]
endpoint = "{east_endpoint}"
{extra_east}

[targets.db.regions.{WEST}]
endpoint = "{moto}"
instance_class = "db.t3.small"
restore_identifier = "{{instance}}-dr-{{point}}"
{extra_west}
"#,
        moto = lab.env["LAB_RDS_ENDPOINT"]
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_copied_and_restored_in_west_while_east_fails() {
    let lab = Lab::get();
    let name = unique("rds");
    let instance = format!("{name}-db");
    let east = rds_client(&lab, EAST).await;
    let west = rds_client(&lab, WEST).await;
    create_instance(&east, &instance).await;
    let tmp = tempfile::tempdir().unwrap();
    let moto = lab.env["LAB_RDS_ENDPOINT"].clone();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        rds_target(&lab, &instance, &moto, "snapshot", "", "")
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let point = point_of(&stdout(&out));
    assert!(stdout(&out).contains("OK      copy"), "{}", stdout(&out));

    let out = lab
        .drtool(&cfg)
        .args(["points", "--region", WEST, "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["items"][0];
    assert_eq!(p["payload"], "rds-snapshot");
    assert_eq!(p["data_file"], Value::Null);
    let snaps = p["rds"]["snapshots"].as_object().unwrap();
    assert!(
        snaps[EAST].as_str().unwrap().contains(":us-east-1:"),
        "{snaps:?}"
    );
    assert!(
        snaps[WEST].as_str().unwrap().contains(":us-west-2:"),
        "{snaps:?}"
    );
    lab.drtool(&cfg)
        .args(["verify", "--region", WEST])
        .assert()
        .success()
        .stdout(predicate::str::contains("RDS snapshot"))
        .stdout(predicate::str::contains("available"));

    // us-east-1 is gone: its store and its RDS API answer nothing.
    let dead = format!(
        "{}{}",
        lab.regions_toml(&name)
            .replace(&lab.s3(EAST), "http://127.0.0.1:1"),
        rds_target(&lab, &instance, "http://127.0.0.1:1", "snapshot", "", "")
    );
    assert!(!dead.contains(&lab.s3(EAST)) && dead.matches(moto.as_str()).count() == 1);
    let dead_cfg = tmp.path().join("dead.toml");
    std::fs::write(&dead_cfg, &dead).unwrap();
    let expected = format!("{instance}-dr-{}", point.to_lowercase());
    lab.drtool(&dead_cfg)
        .args(["restore", "--region", WEST, "--target", "db", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "NEW RDS instance {expected}"
        )))
        .stdout(predicate::str::contains("db.t3.small"));
    lab.drtool(&dead_cfg)
        .args(["restore", "--region", WEST, "--target", "db"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "instance {expected} is available"
        )));
    assert!(instance_exists(&west, &expected).await);
    assert!(!instance_exists(&east, &expected).await);
    // A second restore would collide with the instance just made: refused.
    lab.drtool(&dead_cfg)
        .args(["restore", "--region", WEST, "--target", "db", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));

    // Retention: deleting the point removes its snapshots in both regions.
    let engine = Engine::new(
        drtool::source::load_config(&cfg).unwrap(),
        drtool::source::registry(),
        EngineOptions::default(),
    )
    .unwrap();
    let report = engine
        .delete_point("db", &point.parse().unwrap())
        .await
        .unwrap();
    assert!(
        report.items.iter().all(|r| r.outcome == Outcome::Ok),
        "{report:?}"
    );
    assert_eq!(report.items.len(), 2);
    let snapshot = drtool::source::rds::snapshot_id("db", &point);
    for client in [&east, &west] {
        let found = client
            .describe_db_snapshots()
            .db_snapshot_identifier(&snapshot)
            .send()
            .await;
        assert!(found.is_err() || found.unwrap().db_snapshots().is_empty());
    }
    lab.drtool(&cfg)
        .args(["points", "--region", WEST, "--target", "db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no recovery points"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unmanaged_snapshots_are_never_deleted_and_failover_helpers_wait() {
    let lab = Lab::get();
    let name = unique("rdsops");
    let instance = format!("{name}-db");
    let east = rds_client(&lab, EAST).await;
    create_instance(&east, &instance).await;
    east.create_db_snapshot()
        .db_instance_identifier(&instance)
        .db_snapshot_identifier(format!("{name}-manual"))
        .send()
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let moto = lab.env["LAB_RDS_ENDPOINT"].clone();
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{}{}",
            lab.regions_toml(&name),
            rds_target(&lab, &instance, &moto, "snapshot", "", "")
        ),
    );
    let parsed = drtool::source::load_config(&cfg).unwrap();
    let Some(spec) = parsed.target("db").and_then(|t| t.spec.get::<RdsTarget>()) else {
        panic!("not an rds target")
    };
    let endpoint = spec.regions.get(EAST).and_then(|r| r.endpoint.clone());
    let mut api = Rds::new(EAST, endpoint.as_deref()).await;
    api.poll = std::time::Duration::from_millis(50);
    let err = api
        .delete_managed_snapshot(&format!("{name}-manual"))
        .await
        .err();
    assert!(
        matches!(
            err.as_ref().and_then(|e| e.kind_error::<RdsError>()),
            Some(RdsError::NotManaged { snapshot, region }) if *snapshot == format!("{name}-manual") && region == EAST
        ),
        "{err:?}"
    );

    let noop = |_: &str| {};
    assert!(api.stop(&instance, &noop).await.is_ok());
    assert_eq!(api.instance(&instance).await.unwrap().status, "stopped");
    assert!(api.start(&instance, &noop).await.is_ok());
    assert!(api.reboot(&instance, true, &noop).await.is_ok());
    let replica = format!("{name}-replica");
    east.create_db_instance_read_replica()
        .db_instance_identifier(&replica)
        .source_db_instance_identifier(&instance)
        .send()
        .await
        .unwrap();
    assert!(api.promote_read_replica(&replica, &noop).await.is_ok());
    assert_eq!(api.instance(&replica).await.unwrap().status, "available");

    // Point-in-time restore from the automated backups, no recovery point needed.
    let at = (chrono::Utc::now() - chrono::Duration::seconds(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "db",
            "--pitr",
            &at,
            "--dry-run",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "automated backups of {instance} in {EAST}"
        )))
        .stdout(predicate::str::contains("point ").not());
    let restored = format!(
        "{instance}-pitr-{}",
        at.replace(['-', ':'], "").to_lowercase()
    );
    lab.drtool(&cfg)
        .args(["restore", "--region", EAST, "--target", "db", "--pitr", &at])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "instance {restored} is available"
        )));
}

const CHECKSUM: &str = "SELECT (SELECT count(*) FROM pgbench_accounts) || ':' || \
    (SELECT count(*) FROM pgbench_branches) || ':' || (SELECT count(*) FROM pgbench_tellers) || ':' || \
    (SELECT md5(string_agg(aid::text || ',' || abalance || ',' || filler, ';' ORDER BY aid)) FROM pgbench_accounts)";

fn database(dbname: &str, password_env: &str, port: &str) -> String {
    format!(
        "database = {{ host = \"127.0.0.1\", port = {port}, user = \"postgres\", dbname = \"{dbname}\", password_env = \"{password_env}\" }}",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dump_restores_into_a_new_database_with_equal_rows() {
    let lab = Lab::get();
    let name = unique("dump").replace('-', "_");
    let src = format!("{name}_src");
    let dst = format!("{name}_dst");
    psql(&lab, "postgres", &format!("CREATE DATABASE {src}"));
    let pgbench = format!("{}/pgbench", lab.env["LAB_PG_BIN"]);
    let out = Command::new(pgbench)
        .args([
            "-i",
            "-s",
            "1",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &lab.env["LAB_PG_PORT"],
            "-U",
            "postgres",
            &src,
        ])
        .env("PGPASSWORD", &lab.env["LAB_PG_PASSWORD"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pgbench -i: {}", stderr(&out));
    psql(
        &lab,
        &src,
        "UPDATE pgbench_accounts SET abalance = aid % 97",
    );
    let expected = psql(&lab, &src, CHECKSUM);

    let tmp = tempfile::tempdir().unwrap();
    let port = lab.env["LAB_PG_PORT"].clone();
    let moto = lab.env["LAB_RDS_ENDPOINT"].clone();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name.replace('_', "-")),
        rds_target(
            &lab,
            "unused-instance",
            &moto,
            "dump",
            &database(&src, "LAB_PG_PASSWORD", &port),
            &database(&dst, "LAB_PG_PASSWORD", &port),
        )
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("OK      copy"), "{}", stdout(&out));

    // `drtool ls`: the dump's table of contents, from the DR copy.
    let ls = lab
        .drtool(&cfg)
        .args(["ls", "-t", "db", "-r", WEST, "--prefix", "public.pgbench_a"])
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}", stderr(&ls));
    let text = stdout(&ls);
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].starts_with("KIND") && rows[0].contains("OWNER"),
        "{text}"
    );
    for kind in ["TABLE", "TABLE DATA"] {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(&format!("{kind} "))
                    && r.ends_with("public.pgbench_accounts")),
            "{kind}: {text}"
        );
    }
    assert!(
        rows.iter()
            .any(|r| r.starts_with("CONSTRAINT ") && r.ends_with("pgbench_accounts_pkey")),
        "{text}"
    );
    assert!(stderr(&ls).contains("tables"), "{}", stderr(&ls));
    // Each table's rows, counted from the dump itself: what the source held.
    let accounts: u64 = psql(&lab, &src, "SELECT count(*) FROM pgbench_accounts")
        .trim()
        .parse()
        .unwrap();
    assert!(accounts > 0);
    assert!(rows[0].contains("ROWS"), "{text}");
    for kind in ["TABLE", "TABLE DATA"] {
        assert!(
            rows.iter().any(|r| r.starts_with(&format!("{kind} "))
                && r.ends_with("public.pgbench_accounts")
                && r.split_whitespace().any(|w| w == accounts.to_string())),
            "{kind} with {accounts} rows: {text}"
        );
    }
    let all = lab
        .drtool(&cfg)
        .args(["ls", "-t", "db", "-o", "json"])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    let counted: u64 = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "TABLE DATA")
        .filter_map(|i| i["details"]["rows"].as_u64())
        .sum();
    let total: u64 = psql(
        &lab,
        &src,
        "SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_branches) \
         + (SELECT count(*) FROM pgbench_tellers) + (SELECT count(*) FROM pgbench_history)",
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(counted, total, "rows listed against pgbench's tables");
    assert!(
        all["about"].as_array().unwrap().iter().any(|a| a
            .as_str()
            .is_some_and(|a| a.ends_with(&format!("{counted} rows")))),
        "{}",
        all["about"]
    );

    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "db", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("it will be CREATED"));
    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "db"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "dump restored into postgres@127.0.0.1:{port}/{dst}"
        )));
    assert_eq!(psql(&lab, &dst, CHECKSUM), expected);

    // The database is no longer empty: refused without --existing overwrite
    // (exit 9, the existing-policy's own code); `skip` means nothing for a
    // dump that lands whole, and is refused as bad input.
    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "db"])
        .assert()
        .code(9)
        .stderr(predicate::str::contains("refusing to restore over them"));
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            WEST,
            "--target",
            "db",
            "--existing",
            "skip",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a dump is restored whole"));
    psql(&lab, &dst, "UPDATE pgbench_accounts SET abalance = 0");
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            WEST,
            "--target",
            "db",
            "--existing",
            "overwrite",
            "--yes",
        ])
        .assert()
        .success();
    assert_eq!(psql(&lab, &dst, CHECKSUM), expected);
    // Or next to it, in a database of its own.
    let other = format!("{name}_other");
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            WEST,
            "--target",
            "db",
            "--database",
            &other,
        ])
        .assert()
        .success();
    assert_eq!(psql(&lab, &other, CHECKSUM), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_dump_failures_are_clear_and_leave_no_point() {
    let lab = Lab::get();
    let name = unique("dumpfail");
    let tmp = tempfile::tempdir().unwrap();
    let port = lab.env["LAB_PG_PORT"].clone();
    let moto = lab.env["LAB_RDS_ENDPOINT"].clone();
    let with = |db: String| {
        format!(
            "{}{}",
            lab.regions_toml(&name),
            rds_target(&lab, "unused-instance", &moto, "dump", &db, "")
        )
    };
    let cfg = write_config(
        tmp.path(),
        &with(database("postgres", "DRTOOL_TEST_WRONG_PW", &port)),
    );
    lab.drtool(&cfg)
        .env("DRTOOL_TEST_WRONG_PW", "certainly-wrong")
        .arg("backup")
        .assert()
        .failure()
        .stdout(predicate::str::contains("password authentication failed"))
        .stdout(predicate::str::contains("certainly-wrong").not());
    lab.drtool(&cfg)
        .arg("backup")
        .assert()
        .code(2)
        .stdout(predicate::str::contains("DRTOOL_TEST_WRONG_PW is not set"));
    let cfg = write_config(
        tmp.path(),
        &with(database("postgres", "LAB_PG_PASSWORD", "1")),
    );
    lab.drtool(&cfg)
        .arg("backup")
        .assert()
        .code(4)
        .stdout(predicate::str::contains(
            "cannot reach PostgreSQL database postgres at 127.0.0.1:1",
        ));
    let out = lab
        .drtool(&cfg)
        .args(["points", "--region", EAST, "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = region_view(&v, EAST);
    assert!(v["points"].as_array().unwrap().is_empty());
    assert!(v["orphans"].as_array().unwrap().is_empty());
    let parsed = drtool::source::load_config(&cfg).unwrap();
    let rs = drtool::catalog::RegionStore::open(parsed.region(EAST).unwrap()).await;
    assert!(
        rs.store
            .unfinished(&rs.layout.points_prefix(None))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_pg_restore_stops_it_and_says_what_is_left() {
    let lab = Lab::get();
    let name = unique("pgcancel").replace('-', "_");
    let src = format!("{name}_src");
    let dst = format!("{name}_dst");
    psql(&lab, "postgres", &format!("CREATE DATABASE {src}"));
    psql(
        &lab,
        &src,
        "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 20000) g",
    );
    let tmp = tempfile::tempdir().unwrap();
    let port = lab.env["LAB_PG_PORT"].clone();
    let moto = lab.env["LAB_RDS_ENDPOINT"].clone();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name.replace('_', "-")),
        rds_target(
            &lab,
            "unused-instance",
            &moto,
            "dump",
            &database(&src, "LAB_PG_PASSWORD", &port),
            &database(&dst, "LAB_PG_PASSWORD", &port),
        )
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // pg_restore is the real one, started 30 s late so the signal lands while it runs.
    let tools = tmp.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let pidfile = tmp.path().join("pg_restore.pid");
    delayed_tool(&tools, "pg_restore", &which("pg_restore"), &pidfile, 30);
    let child = lab.spawn_drtool(
        &cfg,
        &["restore", "--region", WEST, "--target", "db"],
        Some(&tools),
    );
    let started = std::time::Instant::now();
    while !pidfile.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "pg_restore never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(child.id(), "TERM");
    let (code, out, err) = finish(child);
    assert_eq!(code, Some(143), "{out}{err}");
    assert!(err.contains("pg_restore was stopped"), "{err}");
    assert!(out.contains("CANCELLED"), "{out}");
    // The database the restore created is dropped again.
    assert!(err.contains("is dropped again"), "{err}");
    assert_eq!(
        psql(
            &lab,
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{dst}'")
        ),
        "0"
    );
    let gone = std::time::Instant::now();
    while alive(pid) {
        assert!(
            gone.elapsed() < std::time::Duration::from_secs(5),
            "pg_restore {pid} still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn pgbench_init(lab: &Lab, db: &str, scale: &str) {
    let pgbench = format!("{}/pgbench", lab.env["LAB_PG_BIN"]);
    let out = Command::new(pgbench)
        .args([
            "-i",
            "-s",
            scale,
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &lab.env["LAB_PG_PORT"],
            "-U",
            "postgres",
            db,
        ])
        .env("PGPASSWORD", &lab.env["LAB_PG_PASSWORD"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pgbench -i: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overwrite_interrupted_mid_restore_leaves_the_database_as_it_was() {
    let lab = Lab::get();
    let name = unique("pgatomic").replace('-', "_");
    let src = format!("{name}_src");
    let dst = format!("{name}_dst");
    for db in [&src, &dst] {
        psql(&lab, "postgres", &format!("CREATE DATABASE {db}"));
    }
    pgbench_init(&lab, &src, "20");
    // The target holds other data under the same table names, and a table the
    // dump does not have.
    pgbench_init(&lab, &dst, "1");
    psql(
        &lab,
        &dst,
        "UPDATE pgbench_accounts SET abalance = aid % 13; CREATE TABLE local_notes(n int)",
    );
    let before = psql(&lab, &dst, CHECKSUM);

    let tmp = tempfile::tempdir().unwrap();
    let port = lab.env["LAB_PG_PORT"].clone();
    let moto = lab.env["LAB_RDS_ENDPOINT"].clone();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name.replace('_', "-")),
        rds_target(
            &lab,
            "unused-instance",
            &moto,
            "dump",
            &database(&src, "LAB_PG_PASSWORD", &port),
            &database(&dst, "LAB_PG_PASSWORD", &port),
        )
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The plan names what is dropped, and what stays.
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            WEST,
            "--target",
            "db",
            "--existing",
            "overwrite",
            "--dry-run",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "4 held by the dump will be DROPPED and replaced, 1 others kept",
        ))
        .stdout(predicate::str::contains(
            "DROP       public.pgbench_accounts",
        ));

    // The real pg_restore, signalled a second after it started.
    let tools = tmp.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let pidfile = tmp.path().join("pg_restore.pid");
    delayed_tool(&tools, "pg_restore", &which("pg_restore"), &pidfile, 0);
    let child = lab.spawn_drtool(
        &cfg,
        &[
            "restore",
            "--region",
            WEST,
            "--target",
            "db",
            "--existing",
            "overwrite",
            "--yes",
        ],
        Some(&tools),
    );
    let started = std::time::Instant::now();
    while !pidfile.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "pg_restore never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1000));
    signal(child.id(), "INT");
    let (code, out, err) = finish(child);
    assert_eq!(
        code,
        Some(130),
        "the restore ended before the signal: {out}{err}"
    );
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(psql(&lab, &dst, CHECKSUM), before, "the database changed");
    assert_eq!(psql(&lab, &dst, "SELECT count(*) FROM local_notes"), "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_lost_mid_restore_leaves_the_database_as_it_was() {
    let lab = Lab::get();
    let name = unique("pgcut").replace('-', "_");
    let src = format!("{name}_src");
    let dst = format!("{name}_dst");
    for db in [&src, &dst] {
        psql(&lab, "postgres", &format!("CREATE DATABASE {db}"));
    }
    pgbench_init(&lab, &src, "10");
    // 64 MB that does not compress, so the download is still running when
    // the store goes away.
    psql(
        &lab,
        &src,
        "CREATE TABLE noise AS SELECT i, decode(md5(random()::text) || md5(random()::text) || \
         md5(random()::text) || md5(random()::text), 'hex') AS b FROM generate_series(1, 1000000) i",
    );
    pgbench_init(&lab, &dst, "1");
    psql(
        &lab,
        &dst,
        "UPDATE pgbench_accounts SET abalance = aid % 7; CREATE TABLE local_notes(n int)",
    );
    let before = psql(&lab, &dst, CHECKSUM);

    let tmp = tempfile::tempdir().unwrap();
    let port = lab.env["LAB_PG_PORT"].clone();
    let moto = lab.env["LAB_RDS_ENDPOINT"].clone();
    let target = rds_target(
        &lab,
        "unused-instance",
        &moto,
        "dump",
        &database(&src, "LAB_PG_PASSWORD", &port),
        &database(&dst, "LAB_PG_PASSWORD", &port),
    );
    let prefix = name.replace('_', "-");
    let cfg = write_config(
        tmp.path(),
        &format!("{}{target}", lab.regions_toml(&prefix)),
    );
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The restore reads us-west-2's store through a proxy that is cut while
    // pg_restore runs.
    let west = lab.s3(WEST);
    let proxy = Proxy::start(west.trim_start_matches("http://"));
    let restore_dir = tmp.path().join("restore");
    std::fs::create_dir_all(&restore_dir).unwrap();
    let cut_cfg = write_config(
        &restore_dir,
        &format!("{}{target}", lab.regions_toml(&prefix)).replace(&west, &proxy.url()),
    );
    let tools = tmp.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let pidfile = tmp.path().join("pg_restore.pid");
    delayed_tool(&tools, "pg_restore", &which("pg_restore"), &pidfile, 2);
    let child = lab.spawn_drtool(
        &cut_cfg,
        &[
            "restore",
            "--region",
            WEST,
            "--target",
            "db",
            "--existing",
            "overwrite",
            "--yes",
        ],
        Some(&tools),
    );
    let started = std::time::Instant::now();
    while !pidfile.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "pg_restore never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    proxy.cut();
    let (code, out, err) = finish(child);
    assert_eq!(code, Some(4), "a lost store is unreachable: {out}{err}");
    assert!(err.contains("before it committed"), "{err}");
    assert_eq!(psql(&lab, &dst, CHECKSUM), before, "the database changed");
    assert_eq!(psql(&lab, &dst, "SELECT count(*) FROM local_notes"), "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backup_leaves_leftovers_that_points_lists_and_gc_removes() {
    let lab = Lab::get();
    let name = unique("gc");
    let db = name.replace('-', "_");
    psql(&lab, "postgres", &format!("CREATE DATABASE {db}"));
    // Data that does not compress, so the dump fills several parts.
    psql(
        &lab,
        &db,
        "CREATE TABLE noise AS SELECT i, decode(md5(random()::text) || md5(random()::text), 'hex') AS b \
         FROM generate_series(1, 1000000) i",
    );
    let tmp = tempfile::tempdir().unwrap();
    let port = lab.env["LAB_PG_PORT"].clone();
    let moto = lab.env["LAB_RDS_ENDPOINT"].clone();
    let target = rds_target(
        &lab,
        "unused-instance",
        &moto,
        "dump",
        &database(&db, "LAB_PG_PASSWORD", &port),
        "",
    );
    // us-east-1 on Garage in one config, on a file:// store in the other:
    // both kinds of unfinished write.
    let files = tmp.path().join("east-store");
    let garage = format!(
        "[defaults]\npart_size_mib = 5\n{}{target}",
        lab.regions_toml(&name)
    );
    let on_files = garage.replace(
        &format!(
            "store = \"s3://drtool-{EAST}/{name}\"\nendpoint = \"{}\"\npath_style = true",
            lab.s3(EAST)
        ),
        &format!("store = \"file://{}\"", files.display()),
    );
    assert_ne!(garage, on_files);
    // A pg_dump that sends 40 MB and then hangs: the upload has started.
    let tools = tmp.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let pidfile = tmp.path().join("pg_dump.pid");
    let script = format!(
        "#!/bin/sh\necho $$ > '{}'\n'{}' \"$@\" | head -c 40000000\nexec sleep 60\n",
        pidfile.display(),
        which("pg_dump").display()
    );
    std::fs::write(tools.join("pg_dump"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        tools.join("pg_dump"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut configs = Vec::new();
    for (n, config) in [garage, on_files].iter().enumerate() {
        let dir = tmp.path().join(format!("c{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = write_config(&dir, config);
        let _ = std::fs::remove_file(&pidfile);
        let mut child = lab.spawn_drtool(&cfg, &["backup", "--no-copy"], Some(&tools));
        let parsed = drtool::source::load_config(&cfg).unwrap();
        let rs = drtool::catalog::RegionStore::open(parsed.region(EAST).unwrap()).await;
        let started = std::time::Instant::now();
        let prefix = rs.layout.points_prefix(None);
        while rs.store.unfinished(&prefix).await.unwrap().is_empty() {
            if child.try_wait().unwrap().is_some() {
                let (code, out, err) = finish(child);
                panic!("the backup ended ({code:?}) before it was killed: {out}{err}");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "the backup never started its upload"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // No chance to clean up: the upload it started stays open.
        signal(child.id(), "KILL");
        let _ = finish(child);
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        configs.push(cfg);
    }
    for cfg in &configs {
        let out = lab
            .drtool(cfg)
            .args(["points", "--region", EAST])
            .output()
            .unwrap();
        let listed = stdout(&out);
        assert!(out.status.success(), "{listed}{}", stderr(&out));
        assert!(
            listed.contains("LEFTOVER: open multipart upload"),
            "{listed}"
        );
        assert_eq!(listed.matches("LEFTOVER").count(), 1, "{listed}");
        let v: Value = serde_json::from_slice(
            &lab.drtool(cfg)
                .args(["points", "--region", EAST, "-o", "json"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let v = region_view(&v, EAST);
        let leftovers = v["leftovers"].as_array().unwrap();
        assert_eq!(leftovers.len(), 1, "{v}");
        assert!(leftovers[0]["since"].is_string(), "with its age: {v}");
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    for cfg in &configs {
        gc_removes_the_leftover(&lab, cfg).await;
    }
    assert!(
        std::fs::read_dir(files.join(".drtool-uploads"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "parts left under .drtool-uploads"
    );
}

async fn gc_removes_the_leftover(lab: &Lab, cfg: &std::path::Path) {
    // Within the grace period nothing is removed.
    lab.drtool(cfg)
        .args(["gc", "--region", EAST, "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "may belong to a backup or copy still running",
        ))
        .stdout(predicate::str::contains("nothing to remove"));
    // The plan first; without a terminal nothing is removed unconfirmed.
    lab.drtool(cfg)
        .args(["gc", "--region", EAST, "--older-than", "1s", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("REMOVE open multipart upload"))
        .stdout(predicate::str::contains("dry run: nothing was removed"));
    lab.drtool(cfg)
        .args(["gc", "--region", EAST, "--older-than", "1s"])
        .assert()
        .code(6);
    lab.drtool(cfg)
        .args(["gc", "--region", EAST, "--older-than", "1s", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed 1 leftovers"));
    let parsed = drtool::source::load_config(cfg).unwrap();
    let rs = drtool::catalog::RegionStore::open(parsed.region(EAST).unwrap()).await;
    assert!(
        rs.store
            .unfinished(&rs.layout.points_prefix(None))
            .await
            .unwrap()
            .is_empty(),
        "unfinished writes left"
    );
}
