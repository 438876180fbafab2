//! `FirmwarePolicy`: which BMC firmware a chassis' trays should run. The control plane
//! rolls it out one tray at a time, stopping at the first failure.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired firmware of one chassis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirmwarePolicySpec {
    /// Name of the `Chassis` whose BMCs this is for.
    #[schemars(length(min = 1, max = 63))]
    pub chassis: String,
    /// The BMC firmware every tray of the chassis should run.
    pub bmc: FirmwareTarget,
}

/// One firmware image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirmwareTarget {
    /// The version the image carries (and the BMC reports once it runs it).
    #[schemars(range(min = 1))]
    pub version: u32,
    /// The signed bundle, as a path in the repository relative to the manifests' directory.
    #[schemars(length(min = 1, max = 255))]
    pub bundle: String,
}
