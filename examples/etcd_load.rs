//! Loads an etcd cluster with test data for demos and benchmarks:
//! `cargo run --release --example etcd_load -- ENDPOINT PREFIX COUNT SIZE`.
//! Values are pseudo-random (so they compress like real data, not like zeros).

use etcd_client::{Client, Txn, TxnOp};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, prefix, count, size] = args.as_slice() else {
        return Err("usage: etcd_load ENDPOINT PREFIX COUNT SIZE".into());
    };
    let count: usize = count.parse()?;
    let size: usize = size.parse()?;
    let mut client = Client::connect([endpoint.as_str()], None).await?;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut ops = Vec::with_capacity(100);
    for i in 0..count {
        // Half random bytes, half repeated text: roughly 2:1 under zstd -3.
        let mut value = Vec::with_capacity(size);
        while value.len() < size / 2 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            value.extend_from_slice(&state.to_le_bytes());
        }
        value.truncate(size / 2);
        while value.len() < size {
            value.extend_from_slice(b"replicas: 3 image: registry/app:v1 ");
        }
        value.truncate(size);
        ops.push(TxnOp::put(format!("{prefix}{i:08}"), value, None));
        if ops.len() == 100 || i + 1 == count {
            client
                .txn(Txn::new().and_then(std::mem::take(&mut ops)))
                .await?;
        }
    }
    println!("loaded {count} keys of {size} bytes under {prefix}");
    Ok(())
}
