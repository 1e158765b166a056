//! Times the snapshot file reader on a file: the revision (rightmost pages
//! only), then the live keys under a prefix (every page of the key bucket):
//! `cargo run --release --example bbolt_scan -- SNAPSHOT.db [PREFIX]`.

use std::path::Path;
use std::time::Instant;

use drtool::source::etcd::snapfile::SnapshotFile;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, prefix) = match args.as_slice() {
        [path] => (path, ""),
        [path, prefix] => (path, prefix.as_str()),
        _ => return Err("usage: bbolt_scan SNAPSHOT.db [PREFIX]".into()),
    };
    let started = Instant::now();
    let snap = SnapshotFile::open(Path::new(path))?;
    let revision = snap.revision()?;
    let opened = started.elapsed();
    let (mut keys, mut bytes) = (0usize, 0usize);
    snap.each_live(None, prefix.as_bytes(), |kv| {
        keys += 1;
        bytes += kv.key.len() + kv.value.len();
        Ok(())
    })?;
    println!(
        "revision {revision} (compacted at {:?}) read in {:.1} ms; {} live keys under {prefix:?}, {bytes} bytes, scanned in {:.2} s",
        snap.compacted()?,
        opened.as_secs_f64() * 1000.0,
        keys,
        (started.elapsed() - opened).as_secs_f64()
    );
    Ok(())
}
