//! etcd `keys` mode with the sizes a real /registry has: thousands of 8 KiB
//! values, hundreds of 20 KiB ones and Secrets near etcd's 1.5 MiB request
//! limit, keys with every byte value, empty values and keys under a lease,
//! backed up, copied and restored into the other region's cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use etcd_client::{PutOptions, Txn, TxnOp};

/// Puts keys in transactions under etcd's op and byte limits.
async fn put_all(
    client: &mut etcd_client::Client,
    kvs: Vec<(Vec<u8>, Vec<u8>)>,
    lease: Option<i64>,
) {
    let mut ops = Vec::new();
    let mut bytes = 0;
    for (k, v) in kvs {
        if !ops.is_empty() && (ops.len() == 100 || bytes + k.len() + v.len() > 1_000_000) {
            client
                .txn(Txn::new().and_then(std::mem::take(&mut ops)))
                .await
                .unwrap();
            bytes = 0;
        }
        bytes += k.len() + v.len();
        let opts = lease.map(|id| PutOptions::new().with_lease(id));
        ops.push(TxnOp::put(k, v, opts));
    }
    if !ops.is_empty() {
        client.txn(Txn::new().and_then(ops)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_of_every_size_and_byte_round_trip_across_regions() {
    let lab = Lab::get();
    let name = unique("keys");
    let prefix = format!("/{name}/");
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    let key = |rest: &[u8]| [prefix.as_bytes(), rest].concat();
    let mut kvs = Vec::new();
    kvs.extend((0..2000).map(|i| {
        (
            key(format!("pods/p{i:05}").as_bytes()),
            object_value(i, 8 * 1024),
        )
    }));
    kvs.extend((0..300).map(|i| {
        (
            key(format!("configmaps/c{i:04}").as_bytes()),
            object_value(i, 20 * 1024),
        )
    }));
    kvs.extend((0..3).map(|i| {
        (
            key(format!("secrets/big{i}").as_bytes()),
            object_value(i, 1_468_006),
        )
    }));
    kvs.extend((0u8..=255).map(|b| (key(&[b'b', b'/', b]), vec![b])));
    kvs.push((key(b"empty"), Vec::new()));
    put_all(&mut east, kvs, None).await;
    let lease = east.lease_grant(3600, None).await.unwrap().id();
    put_all(
        &mut east,
        (0..20)
            .map(|i| (key(format!("leases/l{i}").as_bytes()), object_value(i, 512)))
            .collect(),
        Some(lease),
    )
    .await;
    // A lease left to run out: it must run out in the restored cluster too.
    let short = east.lease_grant(90, None).await.unwrap().id();
    put_all(
        &mut east,
        vec![(key(b"leases/short"), object_value(1, 100))],
        Some(short),
    )
    .await;
    let before = dump(&mut east, &prefix).await;
    assert_eq!(before.len(), 2000 + 300 + 3 + 256 + 1 + 21);

    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("OK      copy"), "{}", stdout(&out));

    let out = lab
        .drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "kv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("2581 keys created"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("2 leases granted with their remaining TTL"),
        "{}",
        stdout(&out)
    );
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    let after = dump(&mut west, &prefix).await;
    assert_eq!(after.len(), before.len());
    assert!(after == before, "values differ after the round trip");
    // Keys come back on their lease, under its id, with the TTL it had left.
    // Revoking one in the restored cluster takes its keys: they are attached.
    assert_leased_then_revoke(&mut west, key(b"leases/l0"), lease, 3600).await;
    assert_leased_then_revoke(&mut west, key(b"leases/short"), short, 90).await;
    east.lease_revoke(lease).await.unwrap();
    east.lease_revoke(short).await.unwrap();
}
