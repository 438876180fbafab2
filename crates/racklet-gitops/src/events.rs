//! The control plane's event log: what it did and why, newest last, kept in the state
//! store (`events/NNNNNNNNNNNNNNNNNNNN`) and trimmed to the last [`KEPT`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::store::{StateStore, StoreError};
use crate::unix_ms;

/// Events kept.
pub const KEPT: u64 = 1000;

/// Why an event happened: machine-readable, so nobody parses messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventReason {
    /// A revision was adopted.
    Applied,
    /// A revision was refused; the last good one stays in force.
    Refused,
    /// The source's history was rewritten.
    HistoryRewritten,
    /// An etcd replica took the leadership.
    Leading,
    /// A chassis stopped answering.
    ChassisUnreachable,
    /// A chassis answers again.
    ChassisAnswers,
    /// A node's boot mode was set.
    BootModeSet,
    /// A power action was sent to a node.
    PowerAction,
    /// A powered tray that no compute unit declares was switched off.
    Undeclared,
    /// Someone asked for an action on a node (a power cycle, a forced off).
    UserAction,
    /// A node drifted and the policy only reports it.
    Drifted,
    /// A firmware roll-out started, progressed or ended.
    Rollout,
    /// A firmware roll-out stopped at a failure or was withdrawn.
    RolloutStopped,
    /// The boot repository signed new metadata (a new revision's profiles, new keys,
    /// or a timestamp renewed before it expires).
    BootRepositoryPublished,
    /// The boot repository could not be published; the last signed metadata stays.
    BootRepositoryFailed,
    /// Someone signed in to the control plane (the dashboard).
    SignedIn,
    /// A sign-in was refused (a wrong password, or an account locked after failures).
    SignInRefused,
    /// Events written before reasons were recorded.
    #[serde(other)]
    Unspecified,
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Applied => "Applied",
            EventReason::Refused => "Refused",
            EventReason::HistoryRewritten => "HistoryRewritten",
            EventReason::Leading => "Leading",
            EventReason::ChassisUnreachable => "ChassisUnreachable",
            EventReason::ChassisAnswers => "ChassisAnswers",
            EventReason::BootModeSet => "BootModeSet",
            EventReason::PowerAction => "PowerAction",
            EventReason::Undeclared => "Undeclared",
            EventReason::UserAction => "UserAction",
            EventReason::Drifted => "Drifted",
            EventReason::Rollout => "Rollout",
            EventReason::RolloutStopped => "RolloutStopped",
            EventReason::BootRepositoryPublished => "BootRepositoryPublished",
            EventReason::BootRepositoryFailed => "BootRepositoryFailed",
            EventReason::SignedIn => "SignedIn",
            EventReason::SignInRefused => "SignInRefused",
            EventReason::Unspecified => "Unspecified",
        }
    }

    /// Something an operator should look at.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventReason::Refused
                | EventReason::HistoryRewritten
                | EventReason::ChassisUnreachable
                | EventReason::Drifted
                | EventReason::RolloutStopped
                | EventReason::BootRepositoryFailed
                | EventReason::SignInRefused
        )
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub sequence: u64,
    pub unix_ms: u64,
    #[serde(default = "unspecified")]
    pub reason: EventReason,
    /// The compute unit it is about, if it is about one.
    #[serde(default)]
    pub node: Option<String>,
    pub message: String,
}

fn unspecified() -> EventReason {
    EventReason::Unspecified
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

    /// Records an event of the control plane as a whole.
    pub async fn record(&self, reason: EventReason, message: &str) -> Result<(), StoreError> {
        self.append(reason, None, message).await
    }

    /// Records an event about the compute unit `node`.
    pub async fn record_node(
        &self,
        reason: EventReason,
        node: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        self.append(reason, Some(node), message).await
    }

    async fn append(
        &self,
        reason: EventReason,
        node: Option<&str>,
        message: &str,
    ) -> Result<(), StoreError> {
        let sequence = self.next.fetch_add(1, Ordering::SeqCst);
        tracing::info!("{message}");
        let e = Event {
            sequence,
            unix_ms: unix_ms(),
            reason,
            node: node.map(str::to_string),
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
