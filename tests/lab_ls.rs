//! `drtool ls` against the lab: a snapshot point and a keys point of the
//! lab's etcd list exactly what etcd serves (sizes, revisions, leases,
//! binary keys, a 1.4 MiB value), from the DR region's copy, without
//! restoring; an older revision a snapshot still holds lists as etcd
//! served it; a reader that stops reading ends the listing quietly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use etcd_client::{Client, GetOptions, PutOptions};
use serde_json::Value;

/// etcd's own view under `prefix`: (key as ls names it, size, mod revision, lease).
async fn served(c: &mut Client, prefix: &str, rev: i64) -> Option<Vec<(String, u64, i64, i64)>> {
    let mut opts = GetOptions::new().with_prefix();
    if rev > 0 {
        opts = opts.with_revision(rev);
    }
    let resp = c.get(prefix, Some(opts)).await.ok()?;
    Some(
        resp.kvs()
            .iter()
            .map(|kv| {
                (
                    drtool::source::etcd::key_text(kv.key()),
                    kv.value().len() as u64,
                    kv.mod_revision(),
                    kv.lease(),
                )
            })
            .collect(),
    )
}

fn listed(doc: &Value) -> Vec<(String, u64, i64, i64)> {
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["size"].as_u64().unwrap(),
                i["details"]["mod_revision"].as_i64().unwrap(),
                i["details"]["lease"]
                    .as_str()
                    .map(|h| i64::from_str_radix(h, 16).unwrap())
                    .unwrap_or(0),
            )
        })
        .collect()
}

fn ls_json(lab: &Lab, cfg: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = lab
        .drtool(cfg)
        .arg("ls")
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code(), doc, stderr(&out))
}

/// Keys of every size a cluster holds, a binary key, leased keys, then a
/// delete and overwrites; the revision between the two.
async fn write(c: &mut Client, prefix: &str) -> i64 {
    for i in 0..60usize {
        c.put(
            format!("{prefix}cm/{i:03}"),
            object_value(i, 1024 + (i * 997) % 19_456),
            None,
        )
        .await
        .unwrap();
    }
    c.put(
        format!("{prefix}secret/big"),
        object_value(7, 1_400_000),
        None,
    )
    .await
    .unwrap();
    c.put(
        [prefix.as_bytes(), b"bin/\x00\xff"].concat(),
        vec![1, 2, 3],
        None,
    )
    .await
    .unwrap();
    let lease = c.lease_grant(600, None).await.unwrap().id();
    for i in 0..3 {
        c.put(
            format!("{prefix}leased/{i}"),
            object_value(i, 300),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    }
    let mid = c.status().await.unwrap().header().unwrap().revision();
    c.delete(format!("{prefix}cm/010"), None).await.unwrap();
    c.put(format!("{prefix}cm/020"), object_value(99, 5000), None)
        .await
        .unwrap();
    mid
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_point_lists_what_etcd_serves_without_restoring() {
    let lab = Lab::get();
    let name = unique("ls-snap");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{}{}",
            lab.regions_toml(&name),
            lab.etcd_target_toml("snap", "snapshot", None, "")
        ),
    );
    let mut c = etcd_client(&lab.etcd(EAST)).await;
    let mid = write(&mut c, &prefix).await;
    // A custom resource no API server serves, stored encrypted at rest.
    c.put(
        format!("/registry/example.com/gadgets/{name}/g1"),
        "k8s:enc:aescbc:v1:key1:\u{1}\u{2}sealed",
        None,
    )
    .await
    .unwrap();
    let then = served(&mut c, &prefix, mid).await;
    let now = served(&mut c, &prefix, 0).await.unwrap();
    let out = lab
        .drtool(&cfg)
        .args(["backup", "-t", "snap"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // From the DR region's copy: every key as etcd serves it.
    let (code, doc, err) = ls_json(&lab, &cfg, &["-t", "snap", "-r", WEST, "--prefix", &prefix]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(listed(&doc), now);
    assert_eq!(doc["total"]["items"], now.len());
    let leased = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == format!("{prefix}leased/1"))
        .unwrap();
    let ttl = leased["details"]["lease_ttl"].as_i64().unwrap();
    assert!((1..=600).contains(&ttl), "{leased}");
    let binary = format!("{prefix}bin/\\x00\\xff");
    assert!(
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == binary
                && i["details"]["key_hex"]
                    .as_str()
                    .is_some_and(|h| h.ends_with("00ff"))),
        "{doc}"
    );

    // As of an older revision: what etcd served then, unless the lab's
    // API server compacted past it meanwhile (then the listing says so).
    let mid_text = mid.to_string();
    let (code, doc, err) = ls_json(
        &lab,
        &cfg,
        &["-t", "snap", "--prefix", &prefix, "--revision", &mid_text],
    );
    match then {
        Some(then) if code == Some(0) => {
            assert_eq!(listed(&doc), then);
            assert!(then.iter().any(|k| k.0.ends_with("cm/010")));
        }
        _ => {
            assert_eq!(code, Some(2), "{doc}");
            assert!(err.contains("holds revisions"), "{err}");
        }
    }
    let (code, _, err) = ls_json(
        &lab,
        &cfg,
        &["-t", "snap", "--revision", "18446744073709551615"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not 18446744073709551615"), "{err}");

    // A table for people; a reader that stops reading ends it quietly.
    let out = lab
        .drtool(&cfg)
        .args(["ls", "-t", "snap", "--prefix", &format!("{prefix}secret/")])
        .output()
        .unwrap();
    let text = stdout(&out);
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.trim_start().starts_with("SIZE  REVISION  LEASE") && header.ends_with("NAME"),
        "{text}"
    );
    assert!(
        text.contains("1.3 MiB") && text.contains("secret/big"),
        "{text}"
    );
    assert!(stderr(&out).contains("1 items"), "{}", stderr(&out));
    let piped = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} --config {} ls -t snap | head -n 3",
            drtool_bin().display(),
            cfg.display()
        ))
        .envs(lab.env.iter())
        .output()
        .unwrap();
    assert_eq!(stdout(&piped).lines().count(), 3);
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(!stderr(&piped).contains("error"), "{}", stderr(&piped));

    // A key-level restore from the snapshot: only the keys under a prefix,
    // into us-west-2's live cluster, leases attached; the rest untouched.
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    let restore = |extra: &[&str]| {
        lab.drtool(&cfg)
            .args(["restore", "-r", WEST, "-t", "snap", "--prefix"])
            .arg(format!("{prefix}leased/"))
            .args(extra)
            .output()
            .unwrap()
    };
    let plan = restore(&["--dry-run"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains("3 under prefix") && stdout(&plan).contains("create     3"),
        "{}",
        stdout(&plan)
    );
    assert!(served(&mut west, &prefix, 0).await.unwrap().is_empty());
    let done = restore(&["--yes"]);
    assert!(done.status.success(), "{}{}", stdout(&done), stderr(&done));
    let restored = west
        .get(
            format!("{prefix}leased/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(restored.kvs().len(), 3);
    for kv in restored.kvs() {
        let i: usize = kv
            .key_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(kv.value(), object_value(i, 300).as_slice());
        assert_eq!(kv.lease(), restored.kvs()[0].lease());
    }
    // One lease for the three: revoking it takes them all.
    let first = &restored.kvs()[0];
    assert_leased_then_revoke(&mut west, first.key().to_vec(), first.lease(), 600).await;
    assert_eq!(served(&mut west, &prefix, 0).await.unwrap().len(), 0);
    // Again: the keys exist now (they were revoked above, so put one back).
    west.put(format!("{prefix}leased/0"), "newer", None)
        .await
        .unwrap();
    let again = restore(&["--yes"]);
    assert_eq!(again.status.code(), Some(9), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already exist"),
        "{}",
        stderr(&again)
    );
    let skip = restore(&["--yes", "--existing", "skip"]);
    assert!(skip.status.success(), "{}", stderr(&skip));
    let kept = west.get(format!("{prefix}leased/0"), None).await.unwrap();
    assert_eq!(kept.kvs()[0].value(), b"newer");
    assert_eq!(
        west.get(
            format!("{prefix}leased/"),
            Some(GetOptions::new().with_prefix())
        )
        .await
        .unwrap()
        .kvs()
        .len(),
        3
    );
    west.delete(
        prefix.as_str(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();

    // Named keys: exactly those, and a name the point lacks is refused.
    let keys = |extra: &[&str]| {
        lab.drtool(&cfg)
            .args(["restore", "-r", WEST, "-t", "snap"])
            .args(extra)
            .output()
            .unwrap()
    };
    let (one, big) = (format!("{prefix}cm/001"), format!("{prefix}secret/big"));
    let done = keys(&["--key", &one, "--key", &big, "--yes"]);
    assert!(done.status.success(), "{}{}", stdout(&done), stderr(&done));
    assert!(stdout(&done).contains("2 named"), "{}", stdout(&done));
    let got = served(&mut west, &prefix, 0).await.unwrap();
    let names: Vec<&str> = got.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(names, [one.as_str(), big.as_str()]);
    assert_eq!(got[1].1, 1_400_000);
    let lacking = keys(&["--key", &format!("{prefix}cm/999"), "--dry-run"]);
    assert_eq!(lacking.status.code(), Some(2), "{}", stderr(&lacking));
    assert!(
        stderr(&lacking).contains("does not hold"),
        "{}",
        stderr(&lacking)
    );
    // An object by kind and name; one encrypted at rest needs saying so.
    let object = format!("gadgets.example.com/{name}/g1");
    let plan = keys(&["--object", &object, "--dry-run"]);
    assert_eq!(plan.status.code(), Some(2), "{}", stderr(&plan));
    assert!(
        stderr(&plan).contains("encrypted at rest"),
        "{}",
        stderr(&plan)
    );
    let plan = keys(&["--object", &object, "--allow-encrypted", "--dry-run"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains(&format!("/registry/example.com/gadgets/{name}/g1")),
        "{}",
        stdout(&plan)
    );
    let both = keys(&["--prefix", "/x", "--key", "/y", "--dry-run"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    west.delete(
        prefix.as_str(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
    c.delete(
        format!("/registry/example.com/gadgets/{name}/"),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keys_point_lists_its_keys_and_refuses_a_revision_it_does_not_hold() {
    let lab = Lab::get();
    let name = unique("ls-keys");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{}{}",
            lab.regions_toml(&name),
            lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
        ),
    );
    let mut c = etcd_client(&lab.etcd(EAST)).await;
    write(&mut c, &prefix).await;
    let now = served(&mut c, &prefix, 0).await.unwrap();
    let out = lab
        .drtool(&cfg)
        .args(["backup", "-t", "kv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, doc, err) = ls_json(&lab, &cfg, &["-t", "kv", "-r", WEST]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(listed(&doc), now);
    let (code, doc, err) = ls_json(
        &lab,
        &cfg,
        &["-t", "kv", "--prefix", &format!("{prefix}leased/")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(doc["items"].as_array().unwrap().len(), 3);
    assert!(
        doc["items"][0]["details"]["lease_ttl"]
            .as_i64()
            .is_some_and(|t| (1..=600).contains(&t)),
        "{doc}"
    );
    let (code, _, err) = ls_json(&lab, &cfg, &["-t", "kv", "--revision", "3"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("keys point"), "{err}");
    // --before picks by time (none that old here); --bytes gives exact sizes.
    let (code, _, err) = ls_json(&lab, &cfg, &["-t", "kv", "--before", "2000-01-01"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("drtool points"), "{err}");
    let exact = lab
        .drtool(&cfg)
        .args([
            "ls",
            "-t",
            "kv",
            "--bytes",
            "--prefix",
            &format!("{prefix}secret/"),
        ])
        .output()
        .unwrap();
    assert!(stdout(&exact).contains("1400000  "), "{}", stdout(&exact));

    // diff: the point against the live cluster, then against a newer point.
    let first = doc["point"]["id"].as_str().unwrap().to_string();
    let diff = |args: &[&str]| {
        lab.drtool(&cfg)
            .args(["diff", "-t", "kv"])
            .args(args)
            .output()
            .unwrap()
    };
    let same = diff(&["--live"]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}{}",
        stdout(&same),
        stderr(&same)
    );
    assert!(
        stdout(&same).contains("0 added, 0 removed, 0 changed, 64 the same"),
        "{}",
        stdout(&same)
    );
    c.put(format!("{prefix}cm/005"), "text\nchanged\n", None)
        .await
        .unwrap();
    c.put(format!("{prefix}cm/new"), "fresh", None)
        .await
        .unwrap();
    c.delete(format!("{prefix}cm/006"), None).await.unwrap();
    c.put(
        [prefix.as_bytes(), b"bin/\x00\xff"].concat(),
        vec![9u8, 0xfe],
        None,
    )
    .await
    .unwrap();
    let live = diff(&["--live"]);
    assert_eq!(live.status.code(), Some(1), "{}", stderr(&live));
    let text = stdout(&live);
    assert!(text.contains(&format!("+ {prefix}cm/new  (5 B)")), "{text}");
    assert!(text.contains(&format!("- {prefix}cm/006  (")), "{text}");
    assert!(text.contains(&format!("~ {prefix}cm/005  (")), "{text}");
    assert!(
        text.contains(&format!("~ {prefix}bin/\\x00\\xff  (3 B sha256 ")),
        "{text}"
    );
    assert!(
        text.contains("1 added, 1 removed, 2 changed, 61 the same"),
        "{text}"
    );
    let out = lab
        .drtool(&cfg)
        .args(["backup", "-t", "kv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json = diff(&[
        "--point",
        &first,
        "--against",
        &point_of(&stdout(&out)),
        "--stat",
        "-o",
        "json",
    ]);
    assert_eq!(json.status.code(), Some(1), "{}", stderr(&json));
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["kind"], "Diff");
    assert_eq!(doc["compared"]["changed"], 2, "{doc}");
    assert_eq!(doc["compared"]["added"], 1);
    assert_eq!(doc["compared"]["removed"], 1);
    let changed: Vec<&Value> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["change"] == "changed")
        .collect();
    assert!(
        changed.iter().all(|c| c["text_diff"].is_null()),
        "--stat: no text diffs"
    );
    assert_ne!(changed[0]["from"]["sha256"], changed[0]["to"]["sha256"]);
    // A text value changed since the newest point: a line-level diff.
    c.put(format!("{prefix}cm/005"), "text\nchanged again\n", None)
        .await
        .unwrap();
    let text = stdout(&diff(&["--live"]));
    assert!(
        text.contains("    -changed\n    +changed again\n"),
        "{text}"
    );
    assert!(
        text.contains("0 added, 0 removed, 1 changed, 63 the same"),
        "{text}"
    );
    // A restore plan over the live keys says which differ, and how.
    let plan = lab
        .drtool(&cfg)
        .args([
            "restore",
            "-r",
            EAST,
            "-t",
            "kv",
            "--existing",
            "overwrite",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(
        text.contains("differ     1 of them hold another value (63 identical)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{prefix}cm/005 (19 B live -> 13 B in the point; live --- / point +++)"
        )),
        "{text}"
    );
    assert!(
        text.contains(" -changed again\n") && text.contains(" +changed\n"),
        "{text}"
    );
    let refused = lab
        .drtool(&cfg)
        .args(["restore", "-r", EAST, "-t", "kv"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(9), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("1 hold another value, 63 the point's"),
        "{}",
        stderr(&refused)
    );
    let missing = diff(&["--live", "--point", "20200101T000000Z-00000000"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    let neither = diff(&[]);
    assert_eq!(neither.status.code(), Some(2), "{}", stderr(&neither));
}
