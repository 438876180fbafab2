//! The firmware roll-out: brings every BMC of a chassis to its `FirmwarePolicy` version,
//! one tray at a time, through Redfish (`UpdateService` push, then the task monitor),
//! and stops at the first failure.
//!
//! The roll-out is a persisted list of steps (`rollouts/CHASSIS` in the state store),
//! written *before* each action, so a control plane that crashes anywhere resumes where
//! it stopped and never does a step twice: an upload whose task monitor was recorded is
//! followed, not repeated; an upload that may have been sent without its monitor being
//! recorded is looked up among the service's tasks first. A tray's failure stops the
//! roll-out; the BMC's own A/B trial boot has already fallen back to its old firmware.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use racklet_redfish_client::{Client, ClientError};
use serde::{Deserialize, Serialize};

use crate::desired::{Desired, DesiredFirmware};
use crate::events::{EventLog, EventReason};
use crate::git::GitSource;
use crate::power::ChassisEndpoint;
use crate::store::{StateStore, StateStoreExt, StoreError};
use crate::unix_ms;

/// Where one tray stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Pending,
    /// The upload is about to be sent (or was, if the control plane died right then);
    /// the service's tasks before it, so that a task it started for it can be told apart.
    Uploading {
        since_unix_ms: u64,
        tasks_before: Vec<String>,
    },
    /// Sent; the service runs it as the task behind this monitor.
    Uploaded {
        monitor: String,
    },
    Confirmed,
    /// It already ran the version.
    Skipped,
    Failed {
        reason: String,
    },
}

/// One tray's step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrayStep {
    pub tray: u32,
    pub step: Step,
}

/// Where a roll-out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutState {
    Running,
    Done,
    Stopped,
}

/// A persisted roll-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub policy: String,
    pub chassis: String,
    pub version: u32,
    pub bundle: String,
    /// The revision the bundle is read from.
    pub commit: String,
    pub state: RolloutState,
    pub trays: Vec<TrayStep>,
    pub message: String,
}

impl Rollout {
    pub fn done(&self) -> usize {
        self.trays
            .iter()
            .filter(|t| matches!(t.step, Step::Confirmed | Step::Skipped))
            .count()
    }
}

/// Runs roll-outs.
pub struct FirmwareReconciler {
    clients: HashMap<String, Arc<Client>>,
    source: Arc<GitSource>,
    bundles: HashMap<(String, String), Arc<Vec<u8>>>,
    /// What was last written per chassis, so an unchanged roll-out is not rewritten.
    saved: HashMap<String, Rollout>,
}

fn key(chassis: &str) -> String {
    format!("rollouts/{chassis}")
}

impl FirmwareReconciler {
    pub fn new(endpoints: &[ChassisEndpoint], source: Arc<GitSource>) -> Result<Self, ClientError> {
        let mut clients = HashMap::new();
        for e in endpoints {
            // Uploads of a few hundred KiB over a slow link take longer than a status read.
            clients.insert(
                e.chassis.clone(),
                Arc::new(Client::new(e.endpoint.clone(), Duration::from_secs(60))?),
            );
        }
        Ok(FirmwareReconciler {
            clients,
            source,
            bundles: HashMap::new(),
            saved: HashMap::new(),
        })
    }

    /// One pass: starts roll-outs for new policies and advances running ones by a step.
    pub async fn reconcile<S: StateStore>(
        &mut self,
        store: &S,
        desired: &Desired,
        commit: &str,
        events: &EventLog<S>,
    ) -> Result<(), StoreError> {
        for policy in &desired.firmware {
            let mut rollout: Option<Rollout> = store.get_json(&key(&policy.chassis)).await?;
            let stale = rollout
                .as_ref()
                .is_none_or(|r| r.version != policy.version || r.bundle != policy.bundle);
            // A tray in the middle of an update finishes it before a new policy replaces
            // the roll-out: its task runs on regardless.
            let in_flight = rollout.as_ref().is_some_and(|r| {
                r.state == RolloutState::Running
                    && r.trays
                        .iter()
                        .any(|t| matches!(t.step, Step::Uploading { .. } | Step::Uploaded { .. }))
            });
            if stale && !in_flight {
                let r = new_rollout(policy, commit);
                self.save(store, &r).await?;
                events
                    .record(EventReason::Rollout, &format!(
                        "firmware roll-out of BMC version {} to chassis {} started ({} trays, one at a time)",
                        r.version,
                        r.chassis,
                        r.trays.len()
                    ))
                    .await?;
                rollout = Some(r);
            }
            if let Some(mut r) = rollout.filter(|r| r.state == RolloutState::Running) {
                self.advance(store, &mut r, events).await?;
            }
        }
        // Roll-outs whose policy left the repository stop where they are.
        for mut r in rollouts(store).await? {
            let kept = desired.firmware.iter().any(|p| p.chassis == r.chassis);
            if !kept && r.state == RolloutState::Running {
                r.state = RolloutState::Stopped;
                r.message = "stopped: its FirmwarePolicy was removed from the repository".into();
                self.save(store, &r).await?;
                events
                    .record(
                        EventReason::RolloutStopped,
                        &format!(
                            "firmware roll-out of version {} on {} stopped: its policy was removed",
                            r.version, r.chassis
                        ),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn bundle(&mut self, commit: &str, path: &str) -> Result<Arc<Vec<u8>>, String> {
        let k = (commit.to_string(), path.to_string());
        if let Some(b) = self.bundles.get(&k) {
            return Ok(b.clone());
        }
        let source = self.source.clone();
        let c = commit.to_string();
        let revision = tokio::task::spawn_blocking(move || source.read(&c))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let bytes = revision
            .files
            .into_iter()
            .find(|(p, _)| p == std::path::Path::new(path))
            .map(|(_, b)| Arc::new(b))
            .ok_or_else(|| format!("bundle {path} is not in revision {commit}"))?;
        self.bundles.insert(k, bytes.clone());
        Ok(bytes)
    }

    async fn save<S: StateStore>(&mut self, store: &S, r: &Rollout) -> Result<(), StoreError> {
        if self.saved.get(&r.chassis) == Some(r) {
            return Ok(());
        }
        store.put_json(&key(&r.chassis), r).await?;
        self.saved.insert(r.chassis.clone(), r.clone());
        Ok(())
    }

    async fn advance<S: StateStore>(
        &mut self,
        store: &S,
        r: &mut Rollout,
        events: &EventLog<S>,
    ) -> Result<(), StoreError> {
        let Some(client) = self.clients.get(&r.chassis).cloned() else {
            r.message = format!(
                "no Redfish endpoint is configured for chassis {}",
                r.chassis
            );
            return self.save(store, r).await;
        };
        let Some(i) = r
            .trays
            .iter()
            .position(|t| !matches!(t.step, Step::Confirmed | Step::Skipped))
        else {
            r.state = RolloutState::Done;
            r.message = format!("all {} trays run version {}", r.trays.len(), r.version);
            self.save(store, r).await?;
            return events
                .record(
                    EventReason::Rollout,
                    &format!(
                        "firmware roll-out of BMC version {} to chassis {} is done",
                        r.version, r.chassis
                    ),
                )
                .await;
        };
        let tray = r.trays[i].tray;
        let target = format!("/redfish/v1/Managers/bmc-{tray}");
        match r.trays[i].step.clone() {
            Step::Pending => {
                match installed(&client, tray).await {
                    Ok(Some(v)) if v == r.version => {
                        r.trays[i].step = Step::Skipped;
                        return self.save(store, r).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        r.message = format!("tray {tray}: {e}; retrying");
                        return self.save(store, r).await;
                    }
                }
                let bundle = match self.bundle(&r.commit, &r.bundle).await {
                    Ok(b) => b,
                    Err(e) => return self.stop(store, r, i, e, events).await,
                };
                let (push, tasks_before) = match (client.push_uri().await, task_ids(&client).await)
                {
                    (Ok(p), Ok(t)) => (p, t),
                    (Err(e), _) | (_, Err(e)) => {
                        // Nothing was sent yet: the same step is tried again.
                        r.message = format!("tray {tray}: {e}; retrying");
                        return self.save(store, r).await;
                    }
                };
                // Written before the upload: a crash from here on is recognised on resume.
                r.trays[i].step = Step::Uploading {
                    since_unix_ms: unix_ms(),
                    tasks_before,
                };
                self.save(store, r).await?;
                match client
                    .push_firmware_to(&push, &target, bundle.to_vec())
                    .await
                {
                    Ok(monitor) => {
                        r.trays[i].step = Step::Uploaded { monitor };
                        r.message = format!("tray {tray}: uploaded; the BMC verifies and boots it");
                        self.save(store, r).await?;
                        events
                            .record(
                                EventReason::Rollout,
                                &format!(
                                    "firmware roll-out on {}: tray {tray} uploaded ({} of {})",
                                    r.chassis,
                                    i + 1,
                                    r.trays.len()
                                ),
                            )
                            .await
                    }
                    Err(e) if e.is_transient() => {
                        // The service may have taken it anyway: the next pass looks for its
                        // task before anything is sent again.
                        r.message =
                            format!("tray {tray}: {e}; checking whether the upload arrived");
                        self.save(store, r).await
                    }
                    Err(e) => self.stop(store, r, i, e.to_string(), events).await,
                }
            }
            Step::Uploading { tasks_before, .. } => {
                // The control plane died between recording the upload and its answer, or the
                // answer was lost: a new task for this BMC is the upload's.
                match find_task(&client, &target, &tasks_before).await {
                    Ok(Some(monitor)) => {
                        r.trays[i].step = Step::Uploaded { monitor };
                        r.message = format!("tray {tray}: resumed following its update task");
                        self.save(store, r).await
                    }
                    Ok(None) => match installed(&client, tray).await {
                        Ok(Some(v)) if v == r.version => {
                            r.trays[i].step = Step::Confirmed;
                            self.save(store, r).await
                        }
                        Ok(_) => {
                            // The upload never reached the service: sending it is not a repeat.
                            r.trays[i].step = Step::Pending;
                            self.save(store, r).await
                        }
                        Err(e) => {
                            r.message = format!("tray {tray}: {e}; retrying");
                            self.save(store, r).await
                        }
                    },
                    Err(e) => {
                        r.message = format!("tray {tray}: {e}; retrying");
                        self.save(store, r).await
                    }
                }
            }
            Step::Uploaded { monitor } => match client.task(&monitor).await {
                Ok(t) if !t.finished() => {
                    r.message = format!("tray {tray}: {} % ({})", t.percent, t.state);
                    self.save(store, r).await
                }
                Ok(t) if t.state == "Completed" => match installed(&client, tray).await {
                    Ok(Some(v)) if v == r.version => {
                        r.trays[i].step = Step::Confirmed;
                        r.message = format!("tray {tray}: runs version {v}");
                        self.save(store, r).await?;
                        events
                            .record(
                                EventReason::Rollout,
                                &format!(
                                "firmware roll-out on {}: tray {tray} runs version {} ({} of {})",
                                r.chassis,
                                r.version,
                                r.done(),
                                r.trays.len()
                            ),
                            )
                            .await
                    }
                    Ok(v) => {
                        let reason = format!(
                            "the update task completed but the BMC reports version {v:?}, not {}",
                            r.version
                        );
                        self.stop(store, r, i, reason, events).await
                    }
                    Err(e) => {
                        r.message = format!("tray {tray}: {e}; retrying");
                        self.save(store, r).await
                    }
                },
                Ok(t) => {
                    let reason = format!(
                        "the update task ended {}: {}",
                        t.state,
                        t.messages.join("; ")
                    );
                    self.stop(store, r, i, reason, events).await
                }
                Err(ClientError::Status { status: 404, .. }) => {
                    // The service lost the task (it restarted): judge by what runs.
                    match installed(&client, tray).await {
                        Ok(Some(v)) if v == r.version => {
                            r.trays[i].step = Step::Confirmed;
                            self.save(store, r).await
                        }
                        _ => {
                            let reason = "the update task disappeared and the BMC does not run the new version".to_string();
                            self.stop(store, r, i, reason, events).await
                        }
                    }
                }
                Err(e) => {
                    r.message = format!("tray {tray}: {e}; retrying");
                    self.save(store, r).await
                }
            },
            Step::Confirmed | Step::Skipped | Step::Failed { .. } => Ok(()),
        }
    }

    async fn stop<S: StateStore>(
        &mut self,
        store: &S,
        r: &mut Rollout,
        i: usize,
        reason: String,
        events: &EventLog<S>,
    ) -> Result<(), StoreError> {
        let tray = r.trays[i].tray;
        r.trays[i].step = Step::Failed {
            reason: reason.clone(),
        };
        r.state = RolloutState::Stopped;
        r.message = format!(
            "stopped at tray {tray}: {reason}. Commit a policy with a fixed bundle or another version to start again"
        );
        self.save(store, r).await?;
        events
            .record(
                EventReason::RolloutStopped,
                &format!(
                    "firmware roll-out of version {} on {} stopped at tray {tray}: {reason}",
                    r.version, r.chassis
                ),
            )
            .await
    }
}

fn new_rollout(policy: &DesiredFirmware, commit: &str) -> Rollout {
    Rollout {
        policy: policy.policy.clone(),
        chassis: policy.chassis.clone(),
        version: policy.version,
        bundle: policy.bundle.clone(),
        commit: commit.to_string(),
        state: RolloutState::Running,
        trays: policy
            .trays
            .iter()
            .map(|&tray| TrayStep {
                tray,
                step: Step::Pending,
            })
            .collect(),
        message: String::new(),
    }
}

/// The firmware version the BMC of `tray` reports (its FirmwareInventory entry).
async fn installed(client: &Client, tray: u32) -> Result<Option<u32>, ClientError> {
    match client
        .get(&format!(
            "/redfish/v1/UpdateService/FirmwareInventory/bmc-{tray}"
        ))
        .await
    {
        Ok(v) => Ok(v["Version"].as_str().and_then(|s| s.parse().ok())),
        Err(ClientError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every task the service lists (URIs).
async fn task_ids(client: &Client) -> Result<Vec<String>, ClientError> {
    let list = client.get("/redfish/v1/TaskService/Tasks").await?;
    Ok(list["Members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["@odata.id"].as_str().map(str::to_string))
        .collect())
}

/// The monitor of a task that appeared since `before` and names `target`, if any.
async fn find_task(
    client: &Client,
    target: &str,
    before: &[String],
) -> Result<Option<String>, ClientError> {
    for uri in task_ids(client).await? {
        if before.contains(&uri) {
            continue;
        }
        let t = client.get(&uri).await?;
        // The update's `TargetDetermined` message names its device exactly.
        let names_target = t["Messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["MessageArgs"].as_array())
            .flatten()
            .any(|a| a.as_str() == Some(target));
        if names_target {
            return Ok(Some(
                t["TaskMonitor"]
                    .as_str()
                    .map_or_else(|| uri.clone(), str::to_string),
            ));
        }
    }
    Ok(None)
}

/// Every persisted roll-out.
pub async fn rollouts<S: StateStore>(store: &S) -> Result<Vec<Rollout>, StoreError> {
    let mut out = Vec::new();
    for (k, v) in store.list("rollouts/").await? {
        out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
            key: k,
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}
