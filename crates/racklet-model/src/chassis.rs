//! `Chassis`: tray slots (layer 1) and the passive backplane (layer 2): PSU rails,
//! USB hub, fans and fan zones.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most trays a Racklet chassis backplane carries.
pub const MAX_TRAYS: u32 = 7;

/// Desired shape of a chassis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChassisSpec {
    /// Height in rack units.
    #[schemars(range(min = 1, max = 10))]
    pub height_u: u32,
    /// The tray slots, numbered 1..=count from the left.
    pub trays: TraySlots,
    /// The tray wired as the USB hub's host: its compute unit is the chassis' rack
    /// management controller (usually the rightmost tray).
    #[schemars(range(min = 1, max = 7))]
    pub rmc_tray: u32,
    pub backplane: Backplane,
    /// Fans, each in one zone.
    #[serde(default)]
    pub fans: Vec<Fan>,
    /// Groups of trays cooled by the same fans.
    #[serde(default)]
    pub fan_zones: Vec<FanZone>,
}

/// Geometry of the tray slots; a board mounts on its long edge inside the slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraySlots {
    #[schemars(range(min = 1, max = 7))]
    pub count: u32,
    /// Slot pitch: the room across the board's thickness.
    #[schemars(range(min = 5.0, max = 200.0))]
    pub width_mm: f64,
    /// Room for the board's width (vertical, when mounted on edge).
    #[schemars(range(min = 10.0, max = 400.0))]
    pub height_mm: f64,
    /// Room for the board's length (front to back).
    #[schemars(range(min = 10.0, max = 600.0))]
    pub depth_mm: f64,
}

/// The passive backplane: power, USB hub and the tray feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backplane {
    pub psu: Psu,
    pub usb_hub: UsbHub,
    /// Each tray's DC-DC converter, switched by its BMC's `DCDC_EN`.
    pub tray_converter: TrayConverter,
    /// Worst-case draw of one BMC HAT (RP2040, PAC1921) on `+5VSB`, in watts.
    #[schemars(range(min = 0.0, max = 10.0))]
    pub bmc_watts: f64,
}

/// ATX-style power supply feeding the backplane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Psu {
    #[schemars(length(min = 1, max = 128))]
    pub model: String,
    pub rails: PsuRails,
}

/// Per-rail current limits of the PSU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PsuRails {
    #[serde(rename = "+12V")]
    pub p12v: RailLimit,
    #[serde(rename = "+5V")]
    pub p5v: RailLimit,
    #[serde(rename = "+5VSB")]
    pub p5vsb: RailLimit,
}

impl PsuRails {
    pub fn limit(&self, rail: Rail) -> &RailLimit {
        match rail {
            Rail::P12V => &self.p12v,
            Rail::P5V => &self.p5v,
            Rail::P5VSB => &self.p5vsb,
        }
    }
}

/// One PSU rail's over-current limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RailLimit {
    /// Current at which the PSU's over-current protection trips, in amperes.
    #[schemars(range(min = 0.1, max = 200.0))]
    pub limit_amps: f64,
}

/// A backplane PSU rail.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Rail {
    #[serde(rename = "+12V")]
    P12V,
    #[serde(rename = "+5V")]
    P5V,
    #[serde(rename = "+5VSB")]
    P5VSB,
}

impl Rail {
    pub const ALL: [Rail; 3] = [Rail::P12V, Rail::P5V, Rail::P5VSB];

    /// Position in [`Rail::ALL`], for per-rail arrays.
    pub fn index(self) -> usize {
        match self {
            Rail::P12V => 0,
            Rail::P5V => 1,
            Rail::P5VSB => 2,
        }
    }

    pub fn volts(self) -> f64 {
        match self {
            Rail::P12V => 12.0,
            Rail::P5V | Rail::P5VSB => 5.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rail::P12V => "+12V",
            Rail::P5V => "+5V",
            Rail::P5VSB => "+5VSB",
        }
    }

    /// The key of this rail under `spec.backplane.psu.rails`.
    pub fn pointer(self) -> &'static str {
        match self {
            Rail::P12V => "/spec/backplane/psu/rails/+12V",
            Rail::P5V => "/spec/backplane/psu/rails/+5V",
            Rail::P5VSB => "/spec/backplane/psu/rails/+5VSB",
        }
    }
}

impl std::fmt::Display for Rail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The backplane's USB 2.0 hub; the RMC tray is its host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsbHub {
    /// Downstream ports; one per tray BMC is needed.
    #[schemars(range(min = 1, max = 16))]
    pub ports: u32,
    /// Worst-case draw of the hub itself, in watts, on `+5V`.
    #[schemars(range(min = 0.0, max = 20.0))]
    pub watts: f64,
}

/// The per-tray DC-DC converter that powers a compute unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrayConverter {
    /// Rail the converter draws from.
    pub input: Rail,
    /// Conversion efficiency, 0 to 1.
    #[schemars(range(min = 0.5, max = 1.0))]
    pub efficiency: f64,
}

/// One fan: PWM in, tachometer out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fan {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Name of the fan zone it cools.
    #[schemars(length(min = 1, max = 63))]
    pub zone: String,
    pub rail: Rail,
    /// Speed at 100 % duty.
    #[schemars(range(min = 100, max = 30000))]
    pub max_rpm: u32,
    /// Worst-case draw at full speed, in watts.
    #[schemars(range(min = 0.0, max = 50.0))]
    pub max_watts: f64,
    /// Airflow at full speed, in cubic feet per minute.
    #[schemars(range(min = 0.1, max = 500.0))]
    pub max_airflow_cfm: f64,
}

/// A group of tray slots sharing the same fans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FanZone {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Tray slot numbers (1-based) in this zone.
    #[schemars(length(min = 1, max = 7))]
    pub trays: Vec<u32>,
}
