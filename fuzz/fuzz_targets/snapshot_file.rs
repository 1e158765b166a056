//! Feeds the etcd snapshot reader any bytes as a file: every input is a
//! reading or an error, never a panic, an endless walk or a read outside
//! the file. Seeds: `fuzz/seeds/snapshot_file` (a real snapshot of a small cluster).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let _ = drtool::source::etcd::snapfile::read_all(file.path());
});
