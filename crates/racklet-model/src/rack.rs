//! `Rack`: the structural frame (RFC-0002 layer 1) and where each chassis sits in it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Height of one rack unit, in millimetres (1U = 1.75 in).
pub const RACK_UNIT_MM: f64 = 44.45;

/// Desired shape of a rack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RackSpec {
    /// Usable height in rack units (1U = 1.75 in).
    #[schemars(range(min = 1, max = 60))]
    pub height_u: u32,
    /// Rack standard; Racklet's reference rack is 10-inch.
    #[serde(default)]
    pub standard: RackStandard,
    /// Chassis mounted in this rack, bottom to top.
    #[serde(default)]
    pub chassis: Vec<ChassisPlacement>,
    /// When not empty, the control plane applies a later revision only if its commit is
    /// SSH-signed by one of these keys (OpenSSH public key lines, e.g. `ssh-ed25519 AAAA…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commit_signers: Vec<String>,
}

/// Rack width standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum RackStandard {
    #[default]
    #[serde(rename = "10in")]
    TenInch,
    #[serde(rename = "19in")]
    NineteenInch,
}

/// One chassis and the lowest rack unit it occupies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChassisPlacement {
    /// Name of a `Chassis` resource.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Lowest rack unit the chassis occupies, counted from 1 at the bottom.
    #[schemars(range(min = 1, max = 60))]
    pub position_u: u32,
}
