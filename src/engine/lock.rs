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

/// What taking a lock came to.
#[derive(Debug)]
pub enum Locked {
    /// Ours now, until the guard is released (or dropped).
    Taken(LockGuard),
    /// Someone else's, still valid.
    Busy(Lock),
}

/// What reading a lock's object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Absent,
    Held(Lock),
    /// There, but not a lock drtool can read (why): it may be held.
    Unreadable(String),
}

/// What to do next while taking a lock: a pure decision over what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Taken(Lock),
    Busy(Lock),
    /// Expired (a crashed run): remove it and try again.
    TakeOver,
    /// Gone in between: try again.
    Retry,
    /// Never taken over: what cannot be read may be held.
    Refuse(String),
}

/// The next step, given what was read back (`written`: right after our own
/// write, which the store accepted) or found in the way (our write was
/// refused: someone's lock is there).
pub fn decide_take(found: Found, written: bool, owner: &str, now: DateTime<Utc>) -> Step {
    match found {
        // Ours (also when our write was refused because it was already there).
        Found::Held(l) if l.owner == owner => Step::Taken(l),
        Found::Held(l) if written || l.until > now => Step::Busy(l),
        Found::Held(_) => Step::TakeOver,
        Found::Absent => Step::Retry,
        Found::Unreadable(why) => Step::Refuse(why),
    }
}

/// What releasing does with a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Ours: remove it.
    Remove,
    /// Someone else's, or gone: leave it.
    Leave,
    /// Not readable (why): left where it is, and said.
    Unreadable(String),
}

/// Releasing removes only our own lock; someone else's and one that cannot
/// be read are left where they are.
pub fn decide_release(found: &Found, owner: &str) -> Release {
    match found {
        Found::Held(l) if l.owner == owner => Release::Remove,
        Found::Held(_) | Found::Absent => Release::Leave,
        Found::Unreadable(why) => Release::Unreadable(why.clone()),
    }
}

/// A lock this process holds. `release` removes it; a guard dropped
/// unreleased (an early return, a panic, a task aborted on shutdown)
/// removes it from a task of its own, so a lock never outlives its run by
/// more than that.
pub struct LockGuard {
    engine: Option<Engine>,
    region: String,
    owner: String,
    pub lock: Lock,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("region", &self.region)
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// Extends a lock held for long work (a stream) by `ttl` from now. Fails
    /// when it is no longer ours (it expired and another run took it): the
    /// work must stop then.
    pub async fn renew(&mut self, ttl: std::time::Duration) -> Result<(), Error> {
        let Some(engine) = self.engine.as_ref() else {
            return Err(Error::failed("the lock was released"));
        };
        let rs = engine.store(&self.region).await?;
        let key = rs.layout.lock_key(&self.lock.name);
        match read_lock(&rs.store, &key).await? {
            Found::Held(l) if l.owner == self.owner => {}
            found => {
                return Err(Error::exists(format!(
                    "lock {key} in {} is no longer ours ({}): another run may hold it; stopping",
                    self.region,
                    match found {
                        Found::Held(l) => format!("held by {}", l.owner),
                        Found::Absent => "gone".into(),
                        Found::Unreadable(why) => why,
                    }
                )));
            }
        }
        let mut lock = self.lock.clone();
        lock.until = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
        let body = serde_json::to_vec(&lock).map_err(Error::failed)?;
        rs.store.put(&key, body.into(), Keep::Normal).await?;
        self.lock = lock;
        Ok(())
    }

    /// Removes the lock (if it is still ours).
    pub async fn release(mut self) -> Result<(), Error> {
        match self.engine.take() {
            Some(engine) => {
                engine
                    .unlock(&self.region, &self.lock.name, &self.owner)
                    .await
            }
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(engine) = self.engine.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(lock = %self.lock.name, "lock left until it expires: no runtime to release it");
            return;
        };
        let (region, name, owner) = (
            self.region.clone(),
            self.lock.name.clone(),
            self.owner.clone(),
        );
        rt.spawn(async move {
            if let Err(e) = engine.unlock(&region, &name, &owner).await {
                tracing::warn!(lock = %name, "lock left until it expires: {e}");
            }
        });
    }
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
        let unreadable = |why: String| {
            Error::failed(format!(
                "lock {key} in {region} cannot be read ({why}): drtool treats it as held and did not run; \
                 if no run holds it, remove it with `drtool gc --region {region} --force-unlock {name}`"
            ))
        };
        for _ in 0..3 {
            let written = rs.store.put_new(&key, body.clone().into()).await?;
            if written {
                // Read back after a moment: a store without conditional
                // writes (Garage) could have let another writer in between;
                // the last one wins and the other sees it.
                tokio::time::sleep(SETTLE).await;
            }
            let found = read_lock(&rs.store, &key).await?;
            match decide_take(found, written, owner, Utc::now()) {
                Step::Taken(lock) => {
                    return Ok(Locked::Taken(LockGuard {
                        engine: Some(self.detached()),
                        region: region.to_string(),
                        owner: owner.to_string(),
                        lock,
                    }));
                }
                Step::Busy(held) => return Ok(Locked::Busy(held)),
                Step::TakeOver => rs.store.delete(&key).await?,
                Step::Retry => {}
                Step::Refuse(why) => return Err(unreadable(why)),
            }
        }
        match read_lock(&rs.store, &key).await? {
            Found::Held(held) => Ok(Locked::Busy(held)),
            Found::Unreadable(why) => Err(unreadable(why)),
            Found::Absent => Err(Error::failed(format!(
                "could not take lock {name} in {region}: it changed hands three times in a row; try again"
            ))),
        }
    }

    /// Releases a lock this owner holds (another's is left alone; one that
    /// cannot be read is left and said).
    pub async fn unlock(&self, region: &str, name: &str, owner: &str) -> Result<(), Error> {
        let rs = self.store(region).await?;
        let key = rs.layout.lock_key(name);
        let found = read_lock(&rs.store, &key).await?;
        match decide_release(&found, owner) {
            Release::Remove => Ok(rs.store.delete(&key).await?),
            Release::Leave => Ok(()),
            Release::Unreadable(why) => Err(Error::failed(format!(
                "lock {key} in {region} cannot be read ({why}): it was left in place; \
                 if no run holds it, remove it with `drtool gc --region {region} --force-unlock {name}`"
            ))),
        }
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

/// What is at a lock's key.
pub(crate) async fn read_lock(
    store: &std::sync::Arc<dyn crate::store::ObjectStore>,
    key: &str,
) -> Result<Found, Error> {
    match store.get(key).await {
        Ok(body) => Ok(match serde_json::from_slice::<Lock>(&body) {
            Ok(l) => Found::Held(l),
            Err(e) => Found::Unreadable(format!("not a drtool lock: {e}")),
        }),
        Err(StoreError::NotFound { .. }) => Ok(Found::Absent),
        Err(e) => Err(e.into()),
    }
}

async fn read<T: DeserializeOwned>(
    store: &std::sync::Arc<dyn crate::store::ObjectStore>,
    key: &str,
) -> Result<Option<T>, Error> {
    match store.get(key).await {
        Ok(body) => match serde_json::from_slice(&body) {
            Ok(v) => Ok(Some(v)),
            // A schedule's state is a cache of what runs did: read as absent,
            // a run goes ahead (never skipped on its account) and rewrites
            // it. Said, so a damaged object is not silently papered over.
            Err(e) => {
                tracing::warn!(
                    key,
                    "schedule state unreadable ({e}): read as absent; the next run rewrites it"
                );
                Ok(None)
            }
        },
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(owner: &str, until: DateTime<Utc>) -> Lock {
        Lock {
            name: "schedule.nightly".into(),
            owner: owner.into(),
            since: until - chrono::Duration::hours(1),
            until,
        }
    }

    #[test]
    fn taking_a_lock_never_takes_over_what_is_valid_or_unreadable() {
        let now = Utc::now();
        let later = now + chrono::Duration::minutes(5);
        let earlier = now - chrono::Duration::minutes(5);
        let bad = || Found::Unreadable("not a drtool lock: EOF".into());
        let cases = [
            // Read back after our write: ours, or the other writer won.
            (
                Found::Held(lock("me", later)),
                true,
                Step::Taken(lock("me", later)),
            ),
            (
                Found::Held(lock("you", later)),
                true,
                Step::Busy(lock("you", later)),
            ),
            (Found::Absent, true, Step::Retry),
            (bad(), true, Step::Refuse("not a drtool lock: EOF".into())),
            // Found in the way of our write.
            (
                Found::Held(lock("you", later)),
                false,
                Step::Busy(lock("you", later)),
            ),
            (Found::Held(lock("you", earlier)), false, Step::TakeOver),
            (
                Found::Held(lock("me", later)),
                false,
                Step::Taken(lock("me", later)),
            ),
            (Found::Absent, false, Step::Retry),
            (bad(), false, Step::Refuse("not a drtool lock: EOF".into())),
        ];
        for (found, written, want) in cases {
            let what = format!("{found:?} written={written}");
            assert_eq!(decide_take(found, written, "me", now), want, "{what}");
        }
    }

    #[test]
    fn releasing_removes_only_our_own_readable_lock() {
        let until = Utc::now();
        let cases = [
            (Found::Held(lock("me", until)), Release::Remove),
            (Found::Held(lock("you", until)), Release::Leave),
            (Found::Absent, Release::Leave),
            (
                Found::Unreadable("garbage".into()),
                Release::Unreadable("garbage".into()),
            ),
        ];
        for (found, want) in cases {
            assert_eq!(decide_release(&found, "me"), want, "{found:?}");
        }
    }
}
