//! The power reconciler: makes every compute unit's power state what the applied revision
//! says, through each chassis' Redfish service, and publishes what it saw.
//!
//! Level-triggered and idempotent: a pass takes no input; it reads the desired state from
//! the store and the observed state from Redfish, acts only where they differ, and can run
//! any number of times. *Sync* (`Synced`/`OutOfSync`) is kept apart from *health*
//! (`Healthy`/`Progressing`/`Degraded`/`Missing`/`Unknown`). A difference after the node
//! had converged is drift: corrected or only reported, per [`DriftPolicy`]. Each chassis
//! endpoint has its own exponential back-off; actions on a node are rate-limited. A
//! powered slot no compute unit declares is shut down ([`undeclared`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use racklet_client::{Health, ObservedPower, Sync};
use racklet_redfish_client::{Client, ClientError, Endpoint};
use serde::{Deserialize, Serialize};

mod decide;
pub mod network_boot;
mod undeclared;
pub use decide::{decide, hardware_health, History, NodeReason, ResetType, Verdict};

use crate::desired::{Desired, DesiredNode, Power};
use crate::events::{EventLog, EventReason};
use crate::store::{StateStore, StateStoreExt, StoreError};
use crate::unix_ms;

/// What to do when a node that had converged differs again (e.g. powered off by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DriftPolicy {
    /// Bring it back to the desired state.
    #[default]
    Correct,
    /// Only say so in status and events.
    Report,
}

/// How the control plane reaches one chassis.
#[derive(Debug, Clone)]
pub struct ChassisEndpoint {
    pub chassis: String,
    pub endpoint: Endpoint,
    /// Redfish `ComputerSystem` id per tray; a tray not listed uses its number.
    pub systems: BTreeMap<u32, String>,
}

/// What the control plane publishes for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub chassis: String,
    pub tray: u32,
    pub desired_power: Power,
    /// Redfish `PowerState` as last seen; None when it could not be read.
    pub observed_power: Option<ObservedPower>,
    pub sync: Sync,
    pub health: Health,
    /// Why sync and health are what they are.
    pub reason: NodeReason,
    pub message: String,
    pub generation: u64,
    pub observed_generation: u64,
    pub revision: String,
    /// When `sync` last changed (the `Synced` condition's `lastTransitionTime`).
    #[serde(default, alias = "last_transition_unix_ms")]
    pub sync_since_unix_ms: u64,
    /// When `health` last changed (the `Healthy` condition's `lastTransitionTime`).
    #[serde(default)]
    pub health_since_unix_ms: u64,
}

/// Per-node bookkeeping that must survive a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct NodeRecord {
    spec: Option<DesiredNode>,
    generation: u64,
    /// The generation last seen converged; a difference after that is drift.
    converged_generation: u64,
}

struct Backoff {
    failures: u32,
    next_try: Instant,
}

/// Shortest wait between two actions on one node (a power transition takes time).
pub const ACTION_INTERVAL: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How long what follows an action someone asked for (a power cycle's off and on) is theirs,
/// not drift.
pub const USER_ACTION_GRACE: Duration = Duration::from_secs(60);

/// Actions people asked for, by node, shared by the API (which notes them) and the
/// reconciler (which leaves their node alone meanwhile).
#[derive(Debug, Default)]
pub struct UserActions(std::sync::Mutex<HashMap<String, Instant>>);

impl UserActions {
    pub fn note(&self, node: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.into(), Instant::now());
    }

    /// The action was not done after all (the chassis refused it).
    pub fn clear(&self, node: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
    }

    /// True while an action asked for on `node` may still be running.
    pub fn running(&self, node: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, at| at.elapsed() < USER_ACTION_GRACE);
        map.contains_key(node)
    }
}

/// The reconciler; one per control plane.
pub struct PowerReconciler {
    user_actions: Arc<UserActions>,
    /// Undeclared powered trays already reported, so that each is said once.
    undeclared_reported: std::sync::Mutex<std::collections::HashSet<String>>,
    endpoints: HashMap<String, (ChassisEndpoint, Arc<Client>)>,
    policy: DriftPolicy,
    backoff: HashMap<String, Backoff>,
    /// Behind a lock because chassis are reconciled concurrently.
    last_action: std::sync::Mutex<HashMap<String, (Power, Instant)>>,
    last_boot_action: std::sync::Mutex<HashMap<String, Instant>>,
    /// Where network-booting nodes boot from (none: no boot repository).
    boot_server: Option<network_boot::BootServer>,
}

impl PowerReconciler {
    pub fn new(
        endpoints: Vec<ChassisEndpoint>,
        policy: DriftPolicy,
        user_actions: Arc<UserActions>,
    ) -> Result<PowerReconciler, ClientError> {
        let mut map = HashMap::new();
        for e in endpoints {
            let client = Arc::new(Client::new(e.endpoint.clone(), Duration::from_secs(5))?);
            map.insert(e.chassis.clone(), (e, client));
        }
        Ok(PowerReconciler {
            user_actions,
            undeclared_reported: Default::default(),
            endpoints: map,
            policy,
            backoff: HashMap::new(),
            last_action: std::sync::Mutex::new(HashMap::new()),
            last_boot_action: std::sync::Mutex::new(HashMap::new()),
            boot_server: None,
        })
    }

    /// Sets where network-booting nodes boot from, for the passes to come.
    pub fn set_boot_server(&mut self, server: Option<network_boot::BootServer>) {
        self.boot_server = server;
    }

    /// The writes that adopt a newly applied revision: the generation of every node whose
    /// spec changed goes up (its published status shows the new generation at once), nodes
    /// that left are forgotten. The caller commits them with the revision, in one write.
    pub async fn adopt<S: StateStore>(
        &self,
        store: &S,
        desired: &Desired,
    ) -> Result<(Vec<(String, Vec<u8>)>, Vec<String>), StoreError> {
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        let known = store.list("nodes/").await?;
        for (key, _) in &known {
            let name = key.trim_start_matches("nodes/");
            if !desired.nodes.iter().any(|n| n.name == name) {
                deletes.push(key.clone());
                deletes.push(format!("status/nodes/{name}"));
            }
        }
        for node in &desired.nodes {
            let key = format!("nodes/{}", node.name);
            let mut rec: NodeRecord = store.get_json(&key).await?.unwrap_or_default();
            if rec.spec.as_ref() != Some(node) {
                rec.spec = Some(node.clone());
                rec.generation += 1;
                let status_key = format!("status/nodes/{}", node.name);
                if let Some(mut status) = store.get_json::<NodeStatus>(&status_key).await? {
                    status.generation = rec.generation;
                    status.desired_power = node.power;
                    puts.push((status_key, json_bytes(&status)?));
                }
                puts.push((key, json_bytes(&rec)?));
            }
        }
        Ok((puts, deletes))
    }

    /// One pass over every node of the applied revision.
    pub async fn reconcile<S: StateStore>(
        &mut self,
        store: &S,
        revision: &str,
        events: &EventLog<S>,
    ) -> Result<(), StoreError> {
        let records = store.list("nodes/").await?;
        let mut by_chassis: BTreeMap<String, Vec<NodeRecord>> = BTreeMap::new();
        for (key, bytes) in records {
            let rec: NodeRecord =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    key,
                    reason: e.to_string(),
                })?;
            if let Some(spec) = &rec.spec {
                by_chassis
                    .entry(spec.chassis.clone())
                    .or_default()
                    .push(rec);
            }
        }
        let now = Instant::now();
        // Chassis are independent: reconcile them concurrently, each one's nodes in turn.
        let mut passes = Vec::new();
        for (chassis, nodes) in by_chassis {
            if self.backoff.get(&chassis).is_some_and(|b| b.next_try > now) {
                continue; // its status already says why
            }
            passes.push(self.chassis_pass(store, chassis, nodes, revision, events));
        }
        let results = futures_util::future::join_all(passes).await;
        for result in results {
            let (chassis, failed) = result?;
            match failed {
                Some(reason) => {
                    let b = self.backoff.entry(chassis.clone()).or_insert(Backoff {
                        failures: 0,
                        next_try: now,
                    });
                    b.failures += 1;
                    let wait = BACKOFF_BASE
                        .saturating_mul(1 << b.failures.min(8))
                        .min(BACKOFF_MAX);
                    b.next_try = now + wait;
                    if b.failures == 1 {
                        events
                            .record(EventReason::ChassisUnreachable, &format!("chassis {chassis} is unreachable ({reason}); retrying with back-off"))
                            .await?;
                    }
                }
                None => {
                    if self.backoff.remove(&chassis).is_some() {
                        events
                            .record(
                                EventReason::ChassisAnswers,
                                &format!("chassis {chassis} answers again"),
                            )
                            .await?;
                    }
                }
            }
        }
        if let Some(desired) = store.get_json::<Desired>("applied/desired").await? {
            self.undeclared(&desired, events).await?;
        }
        Ok(())
    }

    fn boot_actions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last_boot_action
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn actions(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Power, Instant)>> {
        self.last_action.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reconciles one chassis' nodes in turn; returns the chassis and, if it stopped
    /// answering, why.
    async fn chassis_pass<S: StateStore>(
        &self,
        store: &S,
        chassis: String,
        nodes: Vec<NodeRecord>,
        revision: &str,
        events: &EventLog<S>,
    ) -> Result<(String, Option<String>), StoreError> {
        let Some((endpoint, client)) = self.endpoints.get(&chassis).cloned() else {
            for rec in nodes {
                let Some(spec) = rec.spec.clone() else {
                    continue;
                };
                self.publish(
                    store,
                    &rec,
                    &spec,
                    revision,
                    None,
                    Sync::Unknown,
                    Health::Missing,
                    NodeReason::NoEndpoint,
                    &format!("no Redfish endpoint is configured for chassis {chassis}"),
                )
                .await?;
            }
            return Ok((chassis, None));
        };
        let mut failed: Option<String> = None;
        for rec in nodes {
            if let Some(reason) = &failed {
                // The chassis stopped answering: say so for every node behind it.
                if let Some(spec) = rec.spec.clone() {
                    self.publish(
                        store,
                        &rec,
                        &spec,
                        revision,
                        None,
                        Sync::Unknown,
                        Health::Unknown,
                        NodeReason::ChassisUnreachable,
                        reason,
                    )
                    .await?;
                }
                continue;
            }
            if let Err(e) = self
                .node(store, &endpoint, &client, &rec, revision, events)
                .await
            {
                match e {
                    NodeError::Store(e) => return Err(e),
                    NodeError::Redfish(e) if e.is_transient() => {
                        failed = Some(e.to_string());
                    }
                    NodeError::Redfish(_) => {}
                }
            }
        }
        Ok((chassis, failed))
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish<S: StateStore>(
        &self,
        store: &S,
        rec: &NodeRecord,
        spec: &DesiredNode,
        revision: &str,
        observed: Option<ObservedPower>,
        sync: Sync,
        health: Health,
        reason: NodeReason,
        message: &str,
    ) -> Result<(), StoreError> {
        let key = format!("status/nodes/{}", spec.name);
        let old: Option<NodeStatus> = store.get_json(&key).await?;
        let (sync_since, health_since) = transitions(old.as_ref(), sync, health, unix_ms());
        let seen = observed.is_some();
        let status = NodeStatus {
            name: spec.name.clone(),
            chassis: spec.chassis.clone(),
            tray: spec.tray,
            desired_power: spec.power,
            observed_power: observed,
            sync,
            health,
            reason,
            message: message.into(),
            generation: rec.generation,
            // Only a pass that read the system observed this generation.
            observed_generation: if seen {
                rec.generation
            } else {
                old.as_ref().map_or(0, |o| o.observed_generation)
            },
            revision: revision.into(),
            sync_since_unix_ms: sync_since,
            health_since_unix_ms: health_since,
        };
        if old.as_ref() != Some(&status) {
            store.put_json(&key, &status).await?;
        }
        Ok(())
    }

    async fn node<S: StateStore>(
        &self,
        store: &S,
        endpoint: &ChassisEndpoint,
        client: &Client,
        rec: &NodeRecord,
        revision: &str,
        events: &EventLog<S>,
    ) -> Result<(), NodeError> {
        let Some(spec) = rec.spec.clone() else {
            return Ok(());
        };
        let id = endpoint
            .systems
            .get(&spec.tray)
            .cloned()
            .unwrap_or_else(|| spec.tray.to_string());
        let uri = format!("/redfish/v1/Systems/{id}");
        let system = match client.system(&uri).await {
            Ok(s) => s,
            Err(e) => {
                let (health, reason) = match &e {
                    ClientError::Status { status: 404, .. } => {
                        (Health::Missing, NodeReason::NoSuchSystem)
                    }
                    _ => (Health::Unknown, NodeReason::ChassisUnreachable),
                };
                self.publish(
                    store,
                    rec,
                    &spec,
                    revision,
                    None,
                    Sync::Unknown,
                    health,
                    reason,
                    &e.to_string(),
                )
                .await?;
                return Err(NodeError::Redfish(e));
            }
        };
        // Parsed at the protocol edge: a value Redfish does not define counts as unknown.
        let observed = system
            .power_state
            .as_deref()
            .and_then(ObservedPower::from_redfish);
        let want_network = spec.boot == crate::desired::BootMode::Network;
        let boot_recently = self
            .boot_actions()
            .get(&spec.name)
            .is_some_and(|at| at.elapsed() < ACTION_INTERVAL);
        if system.boots_from_network() != want_network && !boot_recently {
            self.boot_actions()
                .insert(spec.name.clone(), Instant::now());
            let (body, mode) = if want_network {
                (
                    serde_json::json!({"Boot": {"BootSourceOverrideTarget": "UefiHttp", "BootSourceOverrideEnabled": "Continuous"}}),
                    "Network",
                )
            } else {
                (
                    serde_json::json!({"Boot": {"BootSourceOverrideEnabled": "Disabled"}}),
                    "Local",
                )
            };
            if let Err(e) = client.patch(&uri, body).await {
                self.publish(
                    store,
                    rec,
                    &spec,
                    revision,
                    observed,
                    Sync::OutOfSync,
                    Health::Degraded,
                    NodeReason::ActionFailed,
                    &format!("cannot set the boot mode: {e}"),
                )
                .await?;
                return Err(NodeError::Redfish(e));
            }
            events
                .record_node(
                    EventReason::BootModeSet,
                    &spec.name,
                    &format!("{}: boot mode set to {mode}", spec.name),
                )
                .await?;
        }
        match network_boot::converge(client, &system, &spec, self.boot_server.as_ref()).await {
            Ok(Some(done)) => {
                events
                    .record_node(EventReason::BootModeSet, &spec.name, &done)
                    .await?
            }
            Ok(None) => {}
            // The next pass tries again; the event log is for what changed.
            Err(e) => tracing::warn!("{}: cannot set network boot: {e}", spec.name),
        }
        network_boot::publish(store, &spec.name, &system).await?;
        let status_key = format!("status/nodes/{}", spec.name);
        let drift_reported = store
            .get_json::<NodeStatus>(&status_key)
            .await?
            .is_some_and(|s| s.reason == NodeReason::Drifted);
        let acted_recently = self
            .actions()
            .get(&spec.name)
            .is_some_and(|(p, at)| *p == spec.power && at.elapsed() < ACTION_INTERVAL);
        // A power cycle someone asked for turns the node off and on: theirs, not drift.
        let user_acting = self.user_actions.running(&spec.name);
        let history = History {
            converged_once: rec.converged_generation == rec.generation,
            acted_recently,
            drift_reported,
            user_acting,
        };
        let verdict = decide(spec.power, observed, self.policy, history);
        let (sync, health, reason) = verdict.status();
        let want = spec.power.as_str();
        let is = observed.map_or("unknown", ObservedPower::as_str);
        let message = match verdict {
            Verdict::Wait { .. } => {
                "the chassis does not know this tray's power state right now".to_string()
            }
            Verdict::Converged => {
                if rec.converged_generation != rec.generation {
                    let mut r = rec.clone();
                    r.converged_generation = rec.generation;
                    store.put_json(&format!("nodes/{}", spec.name), &r).await?;
                }
                self.actions().remove(&spec.name);
                format!("power is {want}, as desired")
            }
            Verdict::ReportDrift { announce } => {
                let msg = format!("power is {is} but the revision says {want}; drift is only reported (policy Report)");
                if announce {
                    events
                        .record_node(
                            EventReason::Drifted,
                            &spec.name,
                            &format!("{}: {msg}", spec.name),
                        )
                        .await?;
                }
                msg
            }
            Verdict::Progressing if user_acting => {
                format!("power is {is}: an action someone asked for runs")
            }
            Verdict::Progressing => format!("power is {is}, going to {want}"),
            Verdict::Act { reset, drift } => {
                let why = if drift {
                    "drift corrected"
                } else {
                    "desired state changed"
                };
                let reset = reset.as_str();
                events
                    .record_node(
                        EventReason::PowerAction,
                        &spec.name,
                        &format!(
                            "{}: power is {is}, desired {want} ({why}): {reset}",
                            spec.name
                        ),
                    )
                    .await?;
                self.actions()
                    .insert(spec.name.clone(), (spec.power, Instant::now()));
                if let Err(e) = client.reset(&system, reset).await {
                    self.publish(
                        store,
                        rec,
                        &spec,
                        revision,
                        observed,
                        Sync::OutOfSync,
                        Health::Degraded,
                        NodeReason::ActionFailed,
                        &e.to_string(),
                    )
                    .await?;
                    return Err(NodeError::Redfish(e));
                }
                format!("{reset} sent; power was {is}")
            }
        };
        // Health follows what the hardware reports, not only whether power matches.
        let (health, reason, message) = match hardware_health(
            observed,
            system.state.as_deref(),
            system.health.as_deref(),
        ) {
            None => (health, reason, message),
            Some(why) => {
                let name = &spec.name;
                let what = match why {
                    NodeReason::OsHalted => format!(
                        "power is {is} but its OS has halted; power cycle it (racklet power cycle {name}) or look at its console"
                    ),
                    NodeReason::BmcNotTrusted => {
                        "the chassis does not trust this tray's BMC; see `racklet events` and the chassis' log".to_string()
                    }
                    _ => format!(
                        "the BMC reports {} health; see `racklet describe node {name}`",
                        system.health.as_deref().unwrap_or("bad")
                    ),
                };
                (Health::Degraded, why, what)
            }
        };
        self.publish(
            store, rec, &spec, revision, observed, sync, health, reason, &message,
        )
        .await?;
        Ok(())
    }
}

/// When `sync` and `health` last changed, given the published status before: each
/// condition's time moves only when its own status does, as in Kubernetes.
fn transitions(old: Option<&NodeStatus>, sync: Sync, health: Health, now: u64) -> (u64, u64) {
    let keep = |same: bool, at: u64| if same && at > 0 { at } else { now };
    match old {
        None => (now, now),
        Some(o) => (
            keep(o.sync == sync, o.sync_since_unix_ms),
            keep(o.health == health, o.health_since_unix_ms),
        ),
    }
}

enum NodeError {
    Store(StoreError),
    Redfish(ClientError),
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        NodeError::Store(e)
    }
}

fn json_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Io(e.to_string()))
}

/// Marks every published status as not observed by this run: statuses an earlier run left
/// describe what was, not what is, until this run's first pass has read each node's BMC.
/// Called by the leader when it starts (only the leader writes).
pub async fn mark_unobserved<S: StateStore>(store: &S) -> Result<(), StoreError> {
    let now = unix_ms();
    for old in node_statuses(store).await? {
        let (sync_since, health_since) =
            transitions(Some(&old), Sync::Unknown, Health::Unknown, now);
        let status = NodeStatus {
            observed_power: None,
            sync: Sync::Unknown,
            health: Health::Unknown,
            reason: NodeReason::PowerUnknown,
            message: "the control plane started and has not read this node's BMC yet".into(),
            sync_since_unix_ms: sync_since,
            health_since_unix_ms: health_since,
            ..old.clone()
        };
        store
            .put_json(&format!("status/nodes/{}", old.name), &status)
            .await?;
    }
    Ok(())
}

/// The published status of every node, by name.
pub async fn node_statuses<S: StateStore>(store: &S) -> Result<Vec<NodeStatus>, StoreError> {
    let mut out = Vec::new();
    for (key, bytes) in store.list("status/nodes/").await? {
        out.push(
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                key,
                reason: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_condition_keeps_its_own_transition_time() {
        let old = NodeStatus {
            name: "node-1".into(),
            chassis: "chassis-1".into(),
            tray: 1,
            desired_power: Power::On,
            observed_power: Some(ObservedPower::Off),
            sync: Sync::OutOfSync,
            health: Health::Progressing,
            reason: NodeReason::Converging,
            message: String::new(),
            generation: 1,
            observed_generation: 1,
            revision: String::new(),
            sync_since_unix_ms: 100,
            health_since_unix_ms: 200,
        };
        assert_eq!(
            transitions(None, Sync::Synced, Health::Healthy, 900),
            (900, 900)
        );
        // Health changes, sync does not: only health's time moves.
        assert_eq!(
            transitions(Some(&old), Sync::OutOfSync, Health::Degraded, 900),
            (100, 900)
        );
        assert_eq!(
            transitions(Some(&old), Sync::Synced, Health::Progressing, 900),
            (900, 200)
        );
        // A status written before the times were kept (0) gets one now.
        let older = NodeStatus {
            sync_since_unix_ms: 0,
            ..old
        };
        assert_eq!(
            transitions(Some(&older), Sync::OutOfSync, Health::Progressing, 900),
            (900, 200)
        );
    }
}
