//! Where the control plane keeps what must survive a crash: the last applied revision,
//! published status, events and the steps of multi-step operations.
//!
//! [`StateStore`] is the seam; [`RedbStore`] is the embedded default (one file in the data
//! dir, every write a committed transaction). Keys are `/`-separated paths; values JSON.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableDatabase, TableDefinition};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store {path}: {reason}; check the data dir (only when no racklet process uses it and the file is damaged, move it away to start over)")]
    Open { path: PathBuf, reason: String },
    #[error("the state store failed: {0}")]
    Io(String),
    #[error("the value at {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("lost the leadership: another replica acts now")]
    NotLeader,
}

/// A key-value store with prefix listing and atomic multi-key writes.
pub trait StateStore: Send + Sync + 'static {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StoreError>> + Send;
    /// Writes `puts` and removes `deletes` in one transaction.
    fn write(
        &self,
        puts: Vec<(String, Vec<u8>)>,
        deletes: Vec<String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Typed helpers over any store.
pub trait StateStoreExt: StateStore {
    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<T>, StoreError>> + Send {
        async move {
            match self.get(key).await? {
                None => Ok(None),
                Some(b) => serde_json::from_slice(&b)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        key: key.to_string(),
                        reason: e.to_string(),
                    }),
            }
        }
    }

    fn put_json<T: serde::Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Io(e.to_string()));
        async move {
            self.write(vec![(key.to_string(), bytes?)], Vec::new())
                .await
        }
    }
}

impl<S: StateStore> StateStoreExt for S {}

/// The embedded store: a redb file, crash-safe (copy-on-write B-trees, fsync on commit).
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<redb::Database>,
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let open = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open(e.to_string()))?;
        }
        let db = redb::Database::create(path).map_err(|e| open(e.to_string()))?;
        let txn = db.begin_write().map_err(|e| open(e.to_string()))?;
        txn.open_table(TABLE).map_err(|e| open(e.to_string()))?;
        txn.commit().map_err(|e| open(e.to_string()))?;
        Ok(RedbStore { db: Arc::new(db) })
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl StateStore for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        Ok(table.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(io)? {
            let (k, v) = item.map_err(io)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    async fn write(
        &self,
        puts: Vec<(String, Vec<u8>)>,
        deletes: Vec<String>,
    ) -> Result<(), StoreError> {
        let db = self.db.clone();
        // A commit fsyncs: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(io)?;
            {
                let mut table = txn.open_table(TABLE).map_err(io)?;
                for (k, v) in &puts {
                    table.insert(k.as_str(), v.as_slice()).map_err(io)?;
                }
                for k in &deletes {
                    table.remove(k.as_str()).map_err(io)?;
                }
            }
            txn.commit().map_err(io)
        })
        .await
        .map_err(io)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_survive_reopening_and_prefixes_list_only_their_keys() {
        let dir = std::env::temp_dir().join(format!("racklet-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state.redb");
        {
            let s = RedbStore::open(&path).expect("open");
            s.write(
                vec![
                    ("status/node-1".into(), b"1".to_vec()),
                    ("status/node-2".into(), b"2".to_vec()),
                    ("statusx".into(), b"x".to_vec()),
                ],
                Vec::new(),
            )
            .await
            .expect("write");
            s.write(Vec::new(), vec!["status/node-2".into()])
                .await
                .expect("delete");
        }
        let s = RedbStore::open(&path).expect("reopen");
        let listed = s.list("status/").await.expect("list");
        assert_eq!(listed, vec![("status/node-1".to_string(), b"1".to_vec())]);
        assert_eq!(s.get("statusx").await.expect("get"), Some(b"x".to_vec()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
