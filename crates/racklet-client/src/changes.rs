//! Requests that change the rack. Desired state changes only through Git: `apply`,
//! `delete` and `power on|off` ask the control plane to make a commit (author and message
//! from the caller) and to sync; `power cycle` is the one imperative action, since a
//! cycle is not a state to declare. `apply` and `delete` work on resources, as kubectl's
//! do: a resource is found by kind and name wherever it lives in the repository.

use serde::{Deserialize, Serialize};

use crate::objects::DesiredPower;

/// Who asks for a change: the commit's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// One manifest file of a request: its resources are applied (or deleted) one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    /// Relative to the source's path (e.g. `nodes.yaml`); no `..`, not absolute. New
    /// resources go to this file; the others stay where they are declared.
    pub path: String,
    /// UTF-8 YAML or JSON.
    pub content: String,
}

/// `POST /v1/apply`: create or update the resources of these files, never removing
/// anything unless `prune` (or, with `dryRun`, only say what would change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    pub files: Vec<ManifestFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub author: Author,
    #[serde(default)]
    pub dry_run: bool,
    /// Also remove the resources of the kinds these files hold that they do not name.
    #[serde(default)]
    pub prune: bool,
}

/// A resource by kind and name, e.g. `ComputeUnit` `node-6`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub kind: String,
    pub name: String,
}

/// `POST /v1/delete`: remove these resources (named, or the ones the files declare) from
/// the repository. A compute unit removed is powered off: nothing runs unmanaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    #[serde(default)]
    pub resources: Vec<ResourceRef>,
    #[serde(default)]
    pub files: Vec<ManifestFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub author: Author,
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /v1/nodes/{name}/power`: commit a new `powerState` for the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PowerRequest {
    pub power_state: DesiredPower,
    /// Needed to switch off a chassis' RMC (it runs the rack management daemon).
    #[serde(default)]
    pub force: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub author: Author,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeResult {
    /// One line per resource added or removed, one per field changed:
    /// `+ ComputeUnit/node-8: …`, `~ ComputeUnit/node-6: spec.powerState: Off -> On`,
    /// `- ComputeUnit/node-9`.
    pub changes: Vec<String>,
    /// The commit made; absent for a dry run or when nothing changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The repository committed to.
    pub repository: String,
    pub message: String,
}

/// An imperative action on a node, passed through to its BMC. The control plane records
/// it as the caller's and does not take what follows for drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeAction {
    /// Redfish `ComputerSystem.Reset` with `PowerCycle`.
    PowerCycle,
    /// Redfish `ForceOff`: power cut now, without waiting for the OS (ipmitool's `off`
    /// where a graceful `powerState: Off` is its `soft`).
    ForceOff,
    /// Forget the key the chassis enrolled the node's BMC with, and enroll the identity it
    /// shows next: for a BMC whose flash was wiped (Redfish `Manager.ResetToDefaults` on
    /// the tray's BMC).
    ForgetBmcKey,
    /// Trust the BMC that waits for approval in the node's tray and enroll it; the request
    /// names the identity the operator checked (`bmcIdentity`).
    ApproveBmc,
    /// Refuse that BMC for good (until `ForgetBmcKey`).
    RejectBmc,
}

impl NodeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeAction::PowerCycle => "PowerCycle",
            NodeAction::ForceOff => "ForceOff",
            NodeAction::ForgetBmcKey => "ForgetBmcKey",
            NodeAction::ApproveBmc => "ApproveBmc",
            NodeAction::RejectBmc => "RejectBmc",
        }
    }

    /// True for the actions on the tray's BMC (its trust), not on the node's power.
    pub fn is_about_the_bmc(self) -> bool {
        matches!(
            self,
            NodeAction::ForgetBmcKey | NodeAction::ApproveBmc | NodeAction::RejectBmc
        )
    }
}

/// `POST /v1/nodes/{name}/actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRequest {
    pub action: NodeAction,
    /// Needed to act on a chassis' RMC (it runs the rack management daemon).
    #[serde(default)]
    pub force: bool,
    /// Who asks, for the event log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    /// With `ApproveBmc`/`RejectBmc`: the BMC identity (hex Ed25519 key) decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_identity: Option<String>,
}
