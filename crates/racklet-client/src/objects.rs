//! The objects the control plane serves: compute units with their status, the Git source,
//! racks, chassis, firmware roll-outs, events and sensor readings. Closed enums, not
//! strings, for every state the control plane reasons about.

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, ConditionStatus, ObjectMeta};

/// Power a compute unit should have (`spec.powerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DesiredPower {
    On,
    Off,
}

impl DesiredPower {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredPower::On => "On",
            DesiredPower::Off => "Off",
        }
    }
}

/// Power as the node's BMC reports it (Redfish `PowerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObservedPower {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    Paused,
}

impl ObservedPower {
    pub fn as_str(self) -> &'static str {
        match self {
            ObservedPower::On => "On",
            ObservedPower::Off => "Off",
            ObservedPower::PoweringOn => "PoweringOn",
            ObservedPower::PoweringOff => "PoweringOff",
            ObservedPower::Paused => "Paused",
        }
    }

    /// The Redfish `PowerState` value, if it is one.
    pub fn from_redfish(value: &str) -> Option<ObservedPower> {
        Some(match value {
            "On" => ObservedPower::On,
            "Off" => ObservedPower::Off,
            "PoweringOn" => ObservedPower::PoweringOn,
            "PoweringOff" => ObservedPower::PoweringOff,
            "Paused" => ObservedPower::Paused,
            _ => return None,
        })
    }
}

/// How a compute unit boots (`spec.bootMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BootMode {
    /// Its own boot order (SD card, eMMC, NVMe).
    #[default]
    Local,
    /// Racklet's network boot.
    Network,
}

/// What a compute unit does in its chassis (`spec.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Role {
    #[default]
    Worker,
    /// The chassis' rack management controller: it runs the rack management daemon.
    Rmc,
}

/// Whether observed state matches the applied revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sync {
    Synced,
    OutOfSync,
    Unknown,
}

impl Sync {
    pub fn as_str(self) -> &'static str {
        match self {
            Sync::Synced => "Synced",
            Sync::OutOfSync => "OutOfSync",
            Sync::Unknown => "Unknown",
        }
    }
}

/// How a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    Healthy,
    Progressing,
    Degraded,
    Missing,
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Progressing => "Progressing",
            Health::Degraded => "Degraded",
            Health::Missing => "Missing",
            Health::Unknown => "Unknown",
        }
    }
}

/// A compute unit as the control plane serves it: the applied revision's `spec`, and the
/// `status` its reconcilers published. Served as YAML or JSON it can be applied back
/// (`apply` drops `status` and `metadata.generation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeUnit {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ComputeUnitSpec,
    pub status: ComputeUnitStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeUnitSpec {
    pub chassis: String,
    pub tray: u32,
    /// The `BoardModel` in the tray.
    pub board: String,
    #[serde(default)]
    pub role: Role,
    pub power_state: DesiredPower,
    pub boot_mode: BootMode,
    /// The `BootProfile` it boots over the network, and its fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_good: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeUnitStatus {
    /// The generation of `spec` the status describes.
    pub observed_generation: u64,
    /// The Git commit `spec` comes from.
    pub revision: String,
    /// As last read from the BMC; absent when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<ObservedPower>,
    pub sync: Sync,
    pub health: Health,
    /// `Synced` and `Healthy`.
    pub conditions: Vec<Condition>,
    /// What the node's BMC saw of its network boot; absent for a node that boots locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<NodeBoot>,
    /// What the node agent of the booted system reported over mutual TLS; absent until
    /// one has reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<NodeAgent>,
}

/// The node agent's report: what it booted (as the bootstrap measured it and handed it
/// over), sent at start and then as its heartbeat (`POST /v1/agent/report`, mutual TLS
/// with the node identity its BMC derived).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentReport {
    pub profile: String,
    pub git_commit: String,
    pub kernel_sha256: String,
    pub initramfs_sha256: String,
    /// The booted kernel's boot id (`/proc/sys/kernel/random/boot_id`): a new one is a
    /// new boot.
    pub boot_id: String,
}

/// A node agent as the control plane last heard it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAgent {
    pub profile: String,
    pub git_commit: String,
    pub kernel_sha256: String,
    pub initramfs_sha256: String,
    pub boot_id: String,
    /// RFC 3339: the first report of this boot.
    pub booted_at: String,
    /// RFC 3339: the latest report.
    pub last_heartbeat: String,
}

/// A node's network boot as its BMC saw it on the boot channel: the stage, the highest
/// TUF targets version accepted (its anti-rollback counter), and the digests and Git
/// commit the bootstrap measured before its hand-off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeBoot {
    /// `Idle`, `ConfigServed`, `HandedOff` or `Failed`.
    pub stage: String,
    pub accepted_targets_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs_sha256: Option<String>,
    #[serde(default)]
    pub fell_back: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_failure: String,
    /// The Ed25519 public key (hex) the BMC derived for the node: the node agent's
    /// client certificate must carry it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_identity: String,
    /// RFC 3339: when the control plane first saw this boot handed off (a node agent
    /// reports after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_off_at: Option<String>,
}

impl ComputeUnit {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The condition of this type, if published.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status.conditions.iter().find(|c| c.type_ == type_)
    }
}

impl Sync {
    pub fn condition_status(self) -> ConditionStatus {
        match self {
            Sync::Synced => ConditionStatus::True,
            Sync::OutOfSync => ConditionStatus::False,
            Sync::Unknown => ConditionStatus::Unknown,
        }
    }
}

impl Health {
    pub fn condition_status(self) -> ConditionStatus {
        match self {
            Health::Healthy => ConditionStatus::True,
            Health::Unknown => ConditionStatus::Unknown,
            Health::Progressing | Health::Degraded | Health::Missing => ConditionStatus::False,
        }
    }
}

/// The Git repository the control plane follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: GitSourceSpec,
    pub status: GitSourceStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitSourceSpec {
    pub url: String,
    /// `branch main`, `tag v1`, …
    #[serde(rename = "ref")]
    pub reference: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitSourceStatus {
    /// The commit in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    pub applied_subject: String,
    /// The newest commit seen at the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_revision: Option<String>,
    /// RFC 3339 with milliseconds; absent before the first fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fetch_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<String>,
    /// `Ready`: True when the newest revision is the one in force; its reason is
    /// `Applied`, `Unreachable`, `InvalidManifests`, `SignatureRefused`, …, its message
    /// every problem, one per line (`FILE:LINE:COLUMN: …`).
    pub conditions: Vec<Condition>,
}

impl GitSource {
    /// The `Ready` condition.
    pub fn ready(&self) -> Option<&Condition> {
        self.status.conditions.iter().find(|c| c.type_ == "Ready")
    }
}

/// A rack of the applied revision, with a summary of its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rack {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub status: RackStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RackStatus {
    pub chassis: u32,
    pub nodes: u32,
    pub synced_nodes: u32,
    /// True when the rack names `commitSigners`: only their signed commits are applied.
    pub signed_commits_required: bool,
}

/// A chassis of the applied revision, with a summary of its nodes and roll-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chassis {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub status: ChassisStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChassisStatus {
    pub nodes: u32,
    pub powered_on_nodes: u32,
    pub synced_nodes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    pub version: u32,
    pub phase: RolloutPhase,
    pub done_trays: u32,
    pub trays: u32,
}

/// Where a firmware roll-out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutPhase {
    Running,
    Done,
    Stopped,
}

/// Where one tray of a roll-out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrayPhase {
    Pending,
    Uploading,
    Uploaded,
    Confirmed,
    Skipped,
    Failed,
}

/// A `FirmwarePolicy` roll-out on one chassis, one tray at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareRollout {
    pub api_version: String,
    pub kind: String,
    /// Named after its chassis.
    pub metadata: ObjectMeta,
    pub spec: FirmwareRolloutSpec,
    pub status: FirmwareRolloutStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareRolloutSpec {
    pub policy: String,
    pub chassis: String,
    pub version: u32,
    pub bundle: String,
    /// The commit the bundle is read from.
    pub revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareRolloutStatus {
    pub phase: RolloutPhase,
    pub trays: Vec<TrayRollout>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrayRollout {
    pub tray: u32,
    pub phase: TrayPhase,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl FirmwareRollout {
    /// Trays that run the version (confirmed or already running it).
    pub fn done(&self) -> usize {
        self.status
            .trays
            .iter()
            .filter(|t| matches!(t.phase, TrayPhase::Confirmed | TrayPhase::Skipped))
            .count()
    }
}

/// `Normal` or `Warning`, as Kubernetes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    pub kind: String,
    pub name: String,
}

/// What the control plane did and why (after `events.k8s.io/v1` `Event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    /// Counts up; `GET /v1/events?since=N` returns the later ones.
    pub sequence: u64,
    /// RFC 3339 with milliseconds.
    pub event_time: String,
    #[serde(rename = "type")]
    pub type_: EventType,
    /// CamelCase, machine-readable.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regarding: Option<ObjectReference>,
    pub note: String,
}

impl Event {
    /// True when the event is about the compute unit `name`.
    pub fn is_about_node(&self, name: &str) -> bool {
        self.regarding
            .as_ref()
            .is_some_and(|r| r.kind == "ComputeUnit" && r.name == name)
    }
}

/// The BMC in a node's tray as its chassis sees it now (`GET /v1/nodes/{name}/bmc`): how
/// far the chassis trusts it and, while it waits for an operator, the identity to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BmcInfo {
    pub node: String,
    pub chassis: String,
    pub tray: u32,
    /// The USB serial number (hex).
    pub serial: String,
    /// `Absent`, `Connecting`, `PendingApproval`, `Trusted` or `Refused`.
    pub trust: String,
    /// Its Ed25519 identity (hex) while it waits for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Why it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The firmware version it runs (Redfish `FirmwareVersion`), once it has said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
}

/// One sensor of a node, as its chassis' Redfish service reads it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sensor {
    pub name: String,
    /// Absent when there is no reading; `state` then says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<f64>,
    /// UCUM units as Redfish gives them (`W`, `Cel`, `V`, …).
    pub units: String,
    /// Redfish `Status.State`: `Enabled`, `UnavailableOffline`, `Absent`, …
    pub state: String,
}
