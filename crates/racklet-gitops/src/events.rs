//! The control plane's event log: what it did and why, newest last, kept in the state
//! store (`events/NNNNNNNNNNNNNNNNNNNN`) and trimmed to the last [`KEPT`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::store::{StateStore, StoreError};
use crate::unix_ms;

/// Events kept.
pub const KEPT: u64 = 1000;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub sequence: u64,
    pub unix_ms: u64,
    pub message: String,
}

/// Appends events to a store.
pub struct EventLog<S> {
    store: Arc<S>,
    next: AtomicU64,
}

fn key(sequence: u64) -> String {
    format!("events/{sequence:020}")
}

impl<S: StateStore> EventLog<S> {
    pub async fn open(store: Arc<S>) -> Result<EventLog<S>, StoreError> {
        let last = store
            .list("events/")
            .await?
            .last()
            .and_then(|(k, _)| k.trim_start_matches("events/").parse::<u64>().ok())
            .unwrap_or(0);
        Ok(EventLog {
            store,
            next: AtomicU64::new(last + 1),
        })
    }

    pub async fn record(&self, message: &str) -> Result<(), StoreError> {
        let sequence = self.next.fetch_add(1, Ordering::SeqCst);
        tracing::info!("{message}");
        let e = Event {
            sequence,
            unix_ms: unix_ms(),
            message: message.to_string(),
        };
        let bytes = serde_json::to_vec(&e).map_err(|e| StoreError::Io(e.to_string()))?;
        let deletes = if sequence > KEPT {
            vec![key(sequence - KEPT)]
        } else {
            Vec::new()
        };
        self.store
            .write(vec![(key(sequence), bytes)], deletes)
            .await
    }

    /// Events after `since`, oldest first.
    pub async fn since(&self, since: u64) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.store.list("events/").await? {
            let e: Event = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: k,
                reason: e.to_string(),
            })?;
            if e.sequence > since {
                out.push(e);
            }
        }
        Ok(out)
    }
}
