//! Locks with an expiry in a region's store, so runs of one schedule never
//! overlap, also across machines: taken with a conditional write where the
//! store supports it (`If-None-Match: *`), and confirmed by reading it back.
//! And small state documents a schedule keeps between runs.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::root::Engine;
use crate::error::Error;
use crate::store::{Keep, StoreError};

/// How long a new lock settles before it is read back.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(800);

/// Who holds a lock, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub name: String,
    pub owner: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// Ours now.
    Taken(Lock),
    /// Someone else's, still valid.
    Busy(Lock),
}

/// A name for this process as a lock owner: host, pid and a random part.
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

impl Engine {
    /// Takes lock `name` in `region` for `ttl`, unless someone holds it.
    pub async fn try_lock(
        &self,
        region: &str,
        name: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<Locked, Error> {
        let rs = self.store(region).await?;
        let key = rs.layout.lock_key(name);
        let now = Utc::now();
        let lock = Lock {
            name: name.to_string(),
            owner: owner.to_string(),
            since: now,
            until: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
        };
        let body = serde_json::to_vec(&lock).map_err(Error::failed)?;
        for _ in 0..2 {
            if rs.store.put_new(&key, body.clone().into()).await? {
                // Read back after a moment: a store without conditional
                // writes (Garage) could have let another writer in between;
                // the last one wins and the other sees it.
                tokio::time::sleep(SETTLE).await;
                return match read::<Lock>(&rs.store, &key).await? {
                    Some(l) if l.owner == owner => Ok(Locked::Taken(l)),
                    Some(l) => Ok(Locked::Busy(l)),
                    None => Ok(Locked::Taken(lock)),
                };
            }
            match read::<Lock>(&rs.store, &key).await? {
                Some(held) if held.until > now => return Ok(Locked::Busy(held)),
                // Expired (a crashed run): take it over.
                _ => rs.store.delete(&key).await?,
            }
        }
        match read::<Lock>(&rs.store, &key).await? {
            Some(held) => Ok(Locked::Busy(held)),
            None => Err(Error::failed(format!(
                "could not take lock {name} in {region}"
            ))),
        }
    }

    /// Releases a lock this owner holds (another's is left alone).
    pub async fn unlock(&self, region: &str, name: &str, owner: &str) -> Result<(), Error> {
        let rs = self.store(region).await?;
        let key = rs.layout.lock_key(name);
        if let Some(l) = read::<Lock>(&rs.store, &key).await?
            && l.owner == owner
        {
            rs.store.delete(&key).await?;
        }
        Ok(())
    }

    /// Reads a schedule's state document, if it has one.
    pub async fn schedule_state<T: DeserializeOwned>(
        &self,
        region: &str,
        schedule: &str,
    ) -> Result<Option<T>, Error> {
        let rs = self.store(region).await?;
        read(&rs.store, &rs.layout.schedule_state_key(schedule)).await
    }

    pub async fn save_schedule_state<T: Serialize>(
        &self,
        region: &str,
        schedule: &str,
        state: &T,
    ) -> Result<(), Error> {
        let rs = self.store(region).await?;
        let body = serde_json::to_vec_pretty(state).map_err(Error::failed)?;
        rs.store
            .put(
                &rs.layout.schedule_state_key(schedule),
                body.into(),
                Keep::Normal,
            )
            .await?;
        Ok(())
    }
}

async fn read<T: DeserializeOwned>(
    store: &std::sync::Arc<dyn crate::store::ObjectStore>,
    key: &str,
) -> Result<Option<T>, Error> {
    match store.get(key).await {
        Ok(body) => Ok(serde_json::from_slice(&body).ok()),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
