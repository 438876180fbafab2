//! The etcd backend: the state store on an etcd cluster, and leader election, so several
//! control-plane replicas can run and exactly one acts.
//!
//! A replica campaigns on `PREFIX/leader` with a lease of [`LEASE_TTL_SECS`]; while it
//! keeps the lease alive it is the leader. Every write is a transaction guarded by the
//! leader key's creation revision (a fencing token), so a replica that lost its lease —
//! paused, partitioned, killed — cannot write after a successor was elected: its writes
//! fail with [`StoreError::NotLeader`] and it stops. A successor takes over within the
//! lease time and resumes from the stored state.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaderKey, Txn, TxnOp};
use tokio::sync::watch;

use crate::store::{StateStore, StoreError};

/// Seconds a leader's lease lives without a keep-alive.
pub const LEASE_TTL_SECS: i64 = 3;

fn io(e: etcd_client::Error) -> StoreError {
    StoreError::Io(format!("etcd: {e}"))
}

/// The store on etcd, under a key prefix, fenced by a leadership.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    fence: Option<LeaderKey>,
}

impl EtcdStore {
    /// Connects to `endpoints` (`host:port`); keys live under `prefix/state/`.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| StoreError::Open {
                path: endpoints.join(",").into(),
                reason: format!("{e}; check that etcd runs there"),
            })?;
        Ok(EtcdStore {
            client,
            prefix: format!("{}/state/", prefix.trim_end_matches('/')),
            fence: None,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl StateStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.client.clone();
        let resp = c.get(self.key(key), None).await.map_err(io)?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut c = self.client.clone();
        let resp = c
            .get(self.key(prefix), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(io)?;
        let mut out: Vec<(String, Vec<u8>)> = resp
            .kvs()
            .iter()
            .map(|kv| {
                let k = String::from_utf8_lossy(kv.key()).to_string();
                (
                    k[self.prefix.len().min(k.len())..].to_string(),
                    kv.value().to_vec(),
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn write(
        &self,
        puts: Vec<(String, Vec<u8>)>,
        deletes: Vec<String>,
    ) -> Result<(), StoreError> {
        let mut ops: Vec<TxnOp> = puts
            .into_iter()
            .map(|(k, v)| TxnOp::put(self.key(&k), v, None))
            .collect();
        ops.extend(
            deletes
                .into_iter()
                .map(|k| TxnOp::delete(self.key(&k), None)),
        );
        let mut txn = Txn::new();
        if let Some(leader) = &self.fence {
            txn = txn.when([Compare::create_revision(
                leader.key(),
                CompareOp::Equal,
                leader.rev(),
            )]);
        }
        let mut c = self.client.clone();
        let resp = c.txn(txn.and_then(ops)).await.map_err(io)?;
        if !resp.succeeded() {
            return Err(StoreError::NotLeader);
        }
        Ok(())
    }
}

/// A won election: the fenced store, and a watch that turns `false` when the lease is lost.
pub struct Leadership {
    pub store: EtcdStore,
    pub held: watch::Receiver<bool>,
}

/// Waits until this replica (`name`) is the leader; then keeps its lease alive in the
/// background until the lease is lost.
pub async fn lead(
    endpoints: &[String],
    prefix: &str,
    name: &str,
) -> Result<Leadership, StoreError> {
    let mut store = EtcdStore::connect(endpoints, prefix).await?;
    let mut c = store.client.clone();
    let lease = c.lease_grant(LEASE_TTL_SECS, None).await.map_err(io)?.id();
    let (mut keeper, mut answers) = c.lease_keep_alive(lease).await.map_err(io)?;
    let (tx, held) = watch::channel(true);
    let tx = Arc::new(tx);
    // Keep the lease alive from now on: campaigning can take longer than its TTL.
    let alive = tx.clone();
    let keep_alive = tokio::spawn(async move {
        let every = Duration::from_millis((LEASE_TTL_SECS as u64 * 1000) / 3);
        loop {
            let ok = keeper.keep_alive().await.is_ok()
                && matches!(answers.message().await, Ok(Some(r)) if r.ttl() > 0);
            if !ok {
                let _ = alive.send(false);
                break;
            }
            tokio::time::sleep(every).await;
        }
    });
    let election = format!("{}/leader", prefix.trim_end_matches('/'));
    // A standby waits in `campaign` for as long as the leader lives: no request timeout.
    let campaigner = Client::connect(
        endpoints,
        Some(ConnectOptions::new().with_connect_timeout(Duration::from_secs(2))),
    )
    .await;
    let won = match campaigner {
        Ok(mut campaigner) => campaigner.campaign(election, name, lease).await,
        Err(e) => Err(e),
    };
    let won = match won {
        Ok(w) => w,
        Err(e) => {
            // Give the lease back instead of keeping it alive for nothing.
            keep_alive.abort();
            let _ = c.lease_revoke(lease).await;
            return Err(io(e));
        }
    };
    let leader = won
        .leader()
        .cloned()
        .ok_or_else(|| StoreError::Io("etcd: campaign answered without a leader key".into()))?;
    store.fence = Some(leader);
    Ok(Leadership { store, held })
}

/// The name of the current leader, if any.
pub async fn leader(endpoints: &[String], prefix: &str) -> Result<Option<String>, StoreError> {
    let store = EtcdStore::connect(endpoints, prefix).await?;
    let mut c = store.client.clone();
    let election = format!("{}/leader", prefix.trim_end_matches('/'));
    match c.leader(election).await {
        Ok(r) => Ok(r
            .kv()
            .map(|kv| String::from_utf8_lossy(kv.value()).to_string())),
        Err(_) => Ok(None),
    }
}
