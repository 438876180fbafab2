//! `ComputeUnit`: the board in one tray slot, its role and its desired power state.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of one compute unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComputeUnitSpec {
    /// Name of the `Chassis` it sits in.
    #[schemars(length(min = 1, max = 63))]
    pub chassis: String,
    /// Tray slot, counted from 1 at the left.
    #[schemars(range(min = 1, max = 7))]
    pub tray: u32,
    /// Name of a `BoardModel` (built-in catalog or your own).
    #[schemars(length(min = 1, max = 63))]
    pub board: String,
    /// `Rmc` for the chassis' rack management controller tray, `Worker` otherwise.
    #[serde(default)]
    pub role: Role,
    /// Whether the compute unit should be powered.
    pub power_state: PowerState,
    /// How it boots: `Local` (its own boot order) or `Network` (Racklet's network boot).
    #[serde(default, skip_serializing_if = "BootMode::is_local")]
    pub boot_mode: BootMode,
    /// Name of the `BootProfile` it boots over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub boot_profile: Option<String>,
    /// Name of the `BootProfile` to fall back to when `bootProfile` fails to verify or boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub known_good: Option<String>,
}

/// How a compute unit boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum BootMode {
    #[default]
    Local,
    Network,
}

impl BootMode {
    pub fn is_local(&self) -> bool {
        *self == BootMode::Local
    }
}

/// What a compute unit does in its chassis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum Role {
    #[default]
    Worker,
    Rmc,
}

/// Desired power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PowerState {
    On,
    Off,
}
