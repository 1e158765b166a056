//! One region's store together with the key layout of its prefix: the unit
//! every listing, backup, copy and restore reads and writes through.

use std::sync::Arc;

use crate::archive::Layout;
use crate::config::{Region, StoreUrl};
use crate::store::{FsStore, ObjectStore, S3Store};

#[derive(Clone)]
pub struct RegionStore {
    pub region: String,
    pub store: Arc<dyn ObjectStore>,
    pub layout: Layout,
}

impl RegionStore {
    /// Builds the store of one region. Creates no connection: S3 clients connect on
    /// first use, so regions that are down cost nothing until touched.
    pub async fn open(region: &Region) -> RegionStore {
        let store: Arc<dyn ObjectStore> = match &region.store {
            StoreUrl::S3 { bucket, .. } => Arc::new(S3Store::new(region, bucket).await),
            StoreUrl::File { root, .. } => Arc::new(FsStore::new(root.clone())),
        };
        RegionStore {
            region: region.name.clone(),
            store,
            layout: Layout::new(region.store.prefix()),
        }
    }
}
