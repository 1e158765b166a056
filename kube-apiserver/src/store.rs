//! Objects in etcd: the key layout and the few transactions the API needs.
//!
//! Every key is built here and nowhere else:
//! `<prefix>/<key_prefix>/<namespace>/<name>` for namespaced kinds and
//! `<prefix>/<key_prefix>/<name>` for cluster-scoped ones, `key_prefix` coming
//! from the [`ResourceType`] (kube-apiserver's layout). Values are the
//! object's JSON without `metadata.resourceVersion`, which is the key's
//! `mod_revision` and is filled in on every read, as kube-apiserver does.
//! Writes are compare-and-swap transactions on `create_revision` /
//! `mod_revision`, so two servers on one etcd stay consistent.

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse,
};
use serde_json::Value;

use crate::registry::ResourceType;
use crate::status::ApiError;

/// Stay well below etcd's default limit of 128 operations per transaction.
const MAX_TXN_OPS: usize = 100;

/// An object read from etcd.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub object: Value,
    pub mod_revision: i64,
}

/// One page of a range read.
pub struct Page {
    pub items: Vec<Stored>,
    /// The etcd revision the page was read at (pinned across pages).
    pub revision: i64,
    /// True if the range holds more keys after the last one returned.
    pub more: bool,
    /// Keys in the range from the start key on, including the returned ones.
    pub count: i64,
}

/// Outcome of a conditional write.
pub enum Written {
    /// The write happened at this revision.
    Ok(i64),
    /// The compare failed: the key exists (create) or changed (update/delete).
    Failed,
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    prefix: String,
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map(|h| h.revision()).unwrap_or_default()
}

impl Store {
    pub fn new(client: Client, prefix: &str) -> Self {
        Store {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    pub fn object_key(&self, rt: &ResourceType, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if rt.namespaced => format!("{}/{}/{ns}/{name}", self.prefix, rt.key_prefix),
            _ => format!("{}/{}/{name}", self.prefix, rt.key_prefix),
        }
    }

    /// Prefix of a collection: one namespace, or all of them when `namespace`
    /// is `None` (also for cluster-scoped kinds). Ends with `/`.
    pub fn collection_prefix(&self, rt: &ResourceType, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if rt.namespaced => format!("{}/{}/{ns}/", self.prefix, rt.key_prefix),
            _ => format!("{}/{}/", self.prefix, rt.key_prefix),
        }
    }

    fn decode(kv: &KeyValue) -> Result<Stored, ApiError> {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let object: Value = serde_json::from_slice(kv.value()).map_err(|e| {
            ApiError::Internal(format!("object at etcd key {key} is not valid JSON: {e}"))
        })?;
        Ok(Stored {
            key,
            object,
            mod_revision: kv.mod_revision(),
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Stored>, ApiError> {
        let resp = self.client.kv_client().get(key, None).await?;
        resp.kvs().first().map(Self::decode).transpose()
    }

    /// Read up to `limit` keys (0 = all) of `prefix`, starting at `start`
    /// (a full key, inclusive) or the beginning, at `revision` (0 = latest).
    pub async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> Result<Page, ApiError> {
        let from = start.unwrap_or(prefix);
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_revision(revision)
            .with_limit(limit);
        let resp = self.client.kv_client().get(from, Some(opts)).await?;
        let items = resp
            .kvs()
            .iter()
            .map(Self::decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            revision: header_revision(resp.header()),
            more: resp.more(),
            count: resp.count(),
        })
    }

    /// Create `key` only if it does not exist.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<Written, ApiError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.client.kv_client().txn(txn).await?;
        Ok(if resp.succeeded() {
            Written::Ok(header_revision(resp.header()))
        } else {
            Written::Failed
        })
    }

    /// Overwrite `key` only if its `mod_revision` is still `expected`.
    pub async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: i64,
    ) -> Result<Written, ApiError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.client.kv_client().txn(txn).await?;
        Ok(if resp.succeeded() {
            Written::Ok(header_revision(resp.header()))
        } else {
            Written::Failed
        })
    }

    /// Delete `key` only if its `mod_revision` is still `expected`, together
    /// with every key under `also` (contents of a namespace, objects of a CRD).
    /// More than one transaction's worth of prefixes are deleted first, in
    /// batches; the guarded delete of `key` comes last.
    pub async fn delete(
        &self,
        key: &str,
        expected: i64,
        also: &[String],
    ) -> Result<Written, ApiError> {
        let mut kv = self.client.kv_client();
        let (early, with_key) = if also.len() >= MAX_TXN_OPS {
            also.split_at(also.len() - (MAX_TXN_OPS - 1))
        } else {
            also.split_at(0)
        };
        for chunk in early.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|p| TxnOp::delete(p.as_str(), Some(DeleteOptions::new().with_prefix())))
                .collect();
            kv.txn(Txn::new().and_then(ops)).await?;
        }
        let mut ops: Vec<TxnOp> = with_key
            .iter()
            .map(|p| TxnOp::delete(p.as_str(), Some(DeleteOptions::new().with_prefix())))
            .collect();
        ops.push(TxnOp::delete(key, None));
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then(ops);
        let resp = kv.txn(txn).await?;
        if !resp.succeeded() {
            return Ok(Written::Failed);
        }
        let deleted_key = resp
            .op_responses()
            .last()
            .is_some_and(|r| matches!(r, TxnOpResponse::Delete(d) if d.deleted() > 0));
        Ok(if deleted_key {
            Written::Ok(header_revision(resp.header()))
        } else {
            Written::Failed
        })
    }

    /// The current etcd revision (for lists that read nothing).
    pub async fn revision(&self) -> Result<i64, ApiError> {
        let opts = GetOptions::new().with_count_only();
        let resp = self
            .client
            .kv_client()
            .get(self.prefix.as_str(), Some(opts))
            .await?;
        Ok(header_revision(resp.header()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/a/"), b"/registry/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
