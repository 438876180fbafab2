//! The GitOps control plane: the rack follows a Git repository.
//!
//! Level-triggered: on a poll interval or a trigger (`racklet sync`, the webhook) it
//! fetches the source ([`git`]), checks the signature policy, validates the revision as
//! a whole ([`desired`]) and, only if all of that holds, adopts it as the applied
//! revision; on every period, and whenever a chassis' Redfish event stream reports a
//! change, it runs the power reconciler ([`power`]) against the applied revision, and
//! beside that loop the firmware roll-outs ([`firmware`]) take their next
//! step, all through Redfish only. Anything refused leaves the last good revision
//! in force and says why in the source status. State lives in a [`store::StateStore`]
//! (embedded redb by default), so a restart resumes where it stopped. [`api`] serves
//! status, events and the sync trigger over HTTPS with a bearer token.

pub mod agent;
pub mod api;
pub mod boot;
pub mod desired;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod events;
pub mod firmware;
pub mod git;
pub mod local;
pub mod onboard;
pub mod power;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use racklet_redfish_client::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

use crate::desired::Desired;
use crate::events::{EventLog, EventReason};
use crate::firmware::FirmwareReconciler;
use crate::git::{GitSource, SourceError, SourceSpec};
use crate::power::{ChassisEndpoint, DriftPolicy, PowerReconciler};
use crate::store::{StateStore, StateStoreExt, StoreError};

pub(crate) use racklet_client::time::unix_ms;

/// How the control plane runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceSpec,
    /// `DATA_DIR/controlplane`: the Git mirror, TLS identity, token.
    pub dir: PathBuf,
    /// How often the source is fetched without a trigger.
    pub poll: Duration,
    /// How often the reconcilers run without a change.
    pub period: Duration,
    pub chassis: Vec<ChassisEndpoint>,
    pub drift: DriftPolicy,
    /// The boot repository's keys (`racklet boot keys`); `None` publishes no boot
    /// repository.
    pub boot_keys: Option<PathBuf>,
}

/// Why the control plane cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Redfish(#[from] racklet_redfish_client::ClientError),
}

/// Why the source's newest revision is or is not in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceReason {
    Applied,
    Unreachable,
    InvalidManifests,
    SignatureRefused,
    NoSuchPath,
    /// Nothing fetched yet (also what an unknown stored value, such as the empty reason
    /// of state written before reasons were typed, reads as).
    #[default]
    #[serde(other)]
    NotFetched,
}

impl SourceReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceReason::NotFetched => "NotFetched",
            SourceReason::Applied => "Applied",
            SourceReason::Unreachable => "Unreachable",
            SourceReason::InvalidManifests => "InvalidManifests",
            SourceReason::SignatureRefused => "SignatureRefused",
            SourceReason::NoSuchPath => "NoSuchPath",
        }
    }
}

impl std::fmt::Display for SourceReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for SourceReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Where the source stands, as published.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub url: String,
    pub reference: String,
    pub path: String,
    /// The revision in force.
    pub applied: Option<String>,
    pub applied_subject: String,
    /// The newest revision seen at the source.
    pub fetched: Option<String>,
    /// True when the newest revision is the applied one.
    pub ready: bool,
    pub reason: SourceReason,
    /// Details: every problem, one per line.
    pub message: String,
    pub last_fetch_unix_ms: u64,
    pub last_applied_unix_ms: u64,
}

/// The running control plane.
pub struct ControlPlane<S> {
    config: Config,
    store: Arc<S>,
    source: Arc<GitSource>,
    events: EventLog<S>,
    reconciler: Mutex<PowerReconciler>,
    user_actions: Arc<power::UserActions>,
    firmware: Mutex<FirmwareReconciler>,
    trigger: Notify,
    /// A chassis reported a change (a Redfish event): reconcile power now.
    observed: Notify,
    power_passes: tokio::sync::watch::Sender<u64>,
    boot: Mutex<boot::BootState>,
    /// The boot repository's URL as nodes reach it (the API sets it when it starts).
    boot_uri: std::sync::Mutex<Option<String>>,
}

impl<S: StateStore> ControlPlane<S> {
    pub async fn new(config: Config, store: Arc<S>) -> Result<Arc<Self>, StartError> {
        let source = Arc::new(GitSource::new(
            config.source.clone(),
            &config.dir.join("mirror.git"),
        )?);
        let user_actions = Arc::new(power::UserActions::default());
        let reconciler =
            PowerReconciler::new(config.chassis.clone(), config.drift, user_actions.clone())?;
        let firmware = FirmwareReconciler::new(&config.chassis, source.clone())?;
        let events = EventLog::open(store.clone()).await?;
        Ok(Arc::new(ControlPlane {
            config,
            store,
            source,
            events,
            reconciler: Mutex::new(reconciler),
            user_actions,
            firmware: Mutex::new(firmware),
            trigger: Notify::new(),
            observed: Notify::new(),
            power_passes: tokio::sync::watch::Sender::new(0),
            boot: Mutex::new(boot::BootState::default()),
            boot_uri: std::sync::Mutex::new(None),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn events(&self) -> &EventLog<S> {
        &self.events
    }

    /// Actions people asked for: the power reconciler leaves their node alone meanwhile.
    pub fn user_actions(&self) -> &power::UserActions {
        &self.user_actions
    }

    /// Asks for a fetch now (the `sync` command, the webhook).
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }

    pub async fn source_status(&self) -> Result<SourceStatus, StoreError> {
        Ok(self
            .store
            .get_json("status/source")
            .await?
            .unwrap_or_default())
    }

    /// Runs until the process ends, or until this replica is no longer the leader. Firmware
    /// roll-outs run beside fetching and power, so an upload to a slow chassis delays
    /// neither; the chassis' Redfish events wake the power reconciler between periods.
    pub async fn run(self: Arc<Self>) {
        if let Err(e) = power::mark_unobserved(&*self.store).await {
            tracing::error!("control plane: cannot mark earlier statuses as unobserved: {e}");
        }
        tokio::select! {
            () = self.run_source_and_power() => {}
            () = self.run_firmware() => {}
            () = self.watch_chassis_events() => {}
        }
    }

    /// Follows every chassis' Redfish SSE stream: any event (a power change, a BMC coming
    /// or going) wakes the power reconciler at once instead of at its next period. A
    /// service without a stream is retried with back-off; the period still covers it.
    async fn watch_chassis_events(&self) {
        let watchers = self.config.chassis.iter().map(|c| self.watch_events(c));
        futures_util::future::join_all(watchers).await;
        // Nothing to watch (or no watcher could start): the other loops go on alone.
        std::future::pending::<()>().await;
    }

    async fn watch_events(&self, chassis: &ChassisEndpoint) {
        let client = match Client::for_events(chassis.endpoint.clone()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("chassis {}: no Redfish event stream: {e}", chassis.chassis);
                return;
            }
        };
        let mut backoff = Duration::from_secs(1);
        loop {
            match client.event_stream().await {
                Ok(mut stream) => {
                    // Anything may have changed while no stream was open.
                    self.observed.notify_one();
                    loop {
                        match stream.next().await {
                            Ok(Some(_)) => {
                                // A stream that delivers is healthy again.
                                backoff = Duration::from_secs(1);
                                self.observed.notify_one();
                            }
                            Err(racklet_redfish_client::ClientError::Malformed {
                                reason, ..
                            }) => {
                                tracing::debug!("chassis {}: {reason}", chassis.chassis)
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::debug!("chassis {}: event stream: {e}", chassis.chassis);
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!("chassis {}: no Redfish event stream: {e}", chassis.chassis)
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    async fn run_source_and_power(&self) {
        // Event bursts (or a chatty service) wake the loop at most this often.
        const MIN_EVENT_GAP: Duration = Duration::from_millis(200);
        let mut next_poll = Instant::now();
        loop {
            let pass_started = Instant::now();
            if Instant::now() >= next_poll {
                match self.sync().await {
                    Err(StoreError::NotLeader) => return,
                    Err(e) => tracing::error!("control plane: {e}"),
                    Ok(()) => {}
                }
                match self.reconcile_boot().await {
                    Err(StoreError::NotLeader) => return,
                    Err(e) => tracing::error!("control plane: boot repository: {e}"),
                    Ok(()) => {}
                }
                next_poll = Instant::now() + self.config.poll;
            }
            match self.reconcile_power().await {
                Err(StoreError::NotLeader) => return,
                Err(e) => tracing::error!("control plane: {e}"),
                Ok(()) => {}
            }
            let wait = self
                .config
                .period
                .min(next_poll.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.trigger.notified() => next_poll = Instant::now(),
                _ = self.observed.notified() => {
                    tokio::time::sleep_until((pass_started + MIN_EVENT_GAP).into()).await;
                }
            }
        }
    }

    async fn run_firmware(&self) {
        loop {
            match self.reconcile_firmware().await {
                Err(StoreError::NotLeader) => return,
                Err(e) => tracing::error!("control plane: firmware: {e}"),
                Ok(()) => {}
            }
            tokio::time::sleep(self.config.period).await;
        }
    }

    /// One pass of every reconciler over the applied revision: power, then firmware.
    pub async fn reconcile(&self) -> Result<(), StoreError> {
        self.reconcile_power().await?;
        self.reconcile_firmware().await
    }

    /// One pass of the power and boot-mode reconciler over the applied revision.
    pub async fn reconcile_power(&self) -> Result<(), StoreError> {
        let revision = self.source_status().await?.applied.unwrap_or_default();
        let mut reconciler = self.reconciler.lock().await;
        reconciler.set_boot_server(self.boot_server());
        reconciler
            .reconcile(&*self.store, &revision, &self.events)
            .await?;
        drop(reconciler);
        self.power_passes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Counts finished power passes, so a caller can wait for the reconciler to have
    /// looked again (e.g. to see that it left something alone) instead of sleeping.
    pub fn power_passes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.power_passes.subscribe()
    }

    /// One step of each firmware roll-out of the applied revision.
    pub async fn reconcile_firmware(&self) -> Result<(), StoreError> {
        let revision = self.source_status().await?.applied.unwrap_or_default();
        let desired = self.store.get_json::<Desired>("applied/desired").await?;
        // A revision adopted between the two reads would pair its policies with the old
        // commit's bundles: the next pass sees both of the same revision.
        if self.source_status().await?.applied.unwrap_or_default() != revision {
            return Ok(());
        }
        if let Some(desired) = desired {
            self.firmware
                .lock()
                .await
                .reconcile(&*self.store, &desired, &revision, &self.events)
                .await?;
        }
        Ok(())
    }

    /// Fetches the source and adopts its newest revision if it is acceptable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let mut status = self.source_status().await?;
        let spec = self.source.spec();
        status.url = spec.url.clone();
        status.reference = match &spec.reference {
            git::Reference::Branch(b) => format!("branch {b}"),
            git::Reference::Tag(t) => format!("tag {t}"),
        };
        status.path = spec.path.clone();
        status.last_fetch_unix_ms = unix_ms();
        let source = self.source.clone();
        let applied = status.applied.clone();
        // The revision in force says who may sign the next one.
        let rack_signers = self
            .store
            .get_json::<Desired>("applied/desired")
            .await?
            .map(|d| d.signers)
            .unwrap_or_default();
        let fetched = tokio::task::spawn_blocking(move || -> Result<_, SourceError> {
            let tip = source.fetch()?;
            if applied.as_deref() == Some(tip.as_str()) {
                return Ok((tip, None, true));
            }
            let descends = match &applied {
                Some(old) => source.descends(&tip, old)?,
                None => true,
            };
            let revision = source.read_with_policy(&tip, &rack_signers)?;
            Ok((tip, Some(revision), descends))
        })
        .await
        .map_err(|e| StoreError::Io(e.to_string()))?;
        let (tip, revision, descends) = match fetched {
            Ok(x) => x,
            Err(e) => {
                let reason = match &e {
                    SourceError::Unsigned { .. } | SourceError::BadSignature { .. } => {
                        SourceReason::SignatureRefused
                    }
                    SourceError::NoSuchPath { .. } => SourceReason::NoSuchPath,
                    _ => SourceReason::Unreachable,
                };
                return self.refuse(status, reason, e.to_string(), None).await;
            }
        };
        status.fetched = Some(tip.clone());
        let Some(revision) = revision else {
            status.ready = true;
            status.reason = SourceReason::Applied;
            status.message.clear();
            return self.store.put_json("status/source", &status).await;
        };
        let desired = match desired::desired_from(&revision.files) {
            Ok(d) => d,
            Err(problems) => {
                return self
                    .refuse(
                        status,
                        SourceReason::InvalidManifests,
                        problems.join("\n"),
                        Some(&tip),
                    )
                    .await;
            }
        };
        if !descends {
            self.events
                .record(
                    EventReason::HistoryRewritten,
                    &format!(
                        "history rewritten: {} does not descend from the applied {}; applying it",
                        short(&tip),
                        short(status.applied.as_deref().unwrap_or_default())
                    ),
                )
                .await?;
        }
        let (mut puts, deletes) = self
            .reconciler
            .lock()
            .await
            .adopt(&*self.store, &desired)
            .await?;
        status.applied = Some(tip.clone());
        status.applied_subject = revision.subject.clone();
        status.ready = true;
        status.reason = SourceReason::Applied;
        status.message.clear();
        status.last_applied_unix_ms = unix_ms();
        // The revision, its desired state and the node records change together or not at all.
        let json = |v: serde_json::Result<Vec<u8>>| v.map_err(|e| StoreError::Io(e.to_string()));
        puts.push((
            "applied/desired".into(),
            json(serde_json::to_vec(&desired))?,
        ));
        puts.push(("status/source".into(), json(serde_json::to_vec(&status))?));
        self.store.write(puts, deletes).await?;
        self.events
            .record(
                EventReason::Applied,
                &format!("applied {}: {}", short(&tip), revision.subject),
            )
            .await?;
        Ok(())
    }

    async fn refuse(
        &self,
        mut status: SourceStatus,
        reason: SourceReason,
        message: String,
        commit: Option<&str>,
    ) -> Result<(), StoreError> {
        let news = status.reason != reason || status.message != message;
        status.ready = false;
        status.reason = reason;
        status.message = message.clone();
        self.store.put_json("status/source", &status).await?;
        if news {
            let what = commit.map_or_else(String::new, |c| format!(" {}", short(c)));
            let kept = status.applied.as_deref().map_or_else(
                || "nothing applied yet".to_string(),
                |a| format!("{} stays in force", short(a)),
            );
            self.events
                .record(
                    EventReason::Refused,
                    &format!(
                        "refused{what} ({reason}; {kept}): {}",
                        message.lines().next().unwrap_or_default()
                    ),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(feature = "etcd")]
/// Runs one control-plane replica on etcd: waits until it leads, acts while its lease
/// lives, and campaigns again after losing it. Only the leader fetches, reconciles or
/// writes; the others wait.
pub async fn run_replica(config: Config, endpoints: Vec<String>, prefix: String, name: String) {
    loop {
        let leadership = match etcd::lead(&endpoints, &prefix, &name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("replica {name}: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut held = leadership.held.clone();
        let plane = match ControlPlane::new(config.clone(), Arc::new(leadership.store)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("replica {name}: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = plane
            .events
            .record(EventReason::Leading, &format!("replica {name} leads"))
            .await
        {
            tracing::warn!("replica {name}: {e}");
        }
        tokio::select! {
            _ = plane.clone().run() => {}
            _ = held.wait_for(|h| !*h) => {}
        }
        tracing::warn!("replica {name} lost the leadership; campaigning again");
    }
}

/// The first 12 hex digits of a commit id.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
