//! `BoardModel`: a single-board computer's dimensions, power and thermal figures and
//! boot methods. The built-in catalog (`catalog/boards.yaml`) cites a public source for
//! each figure; users may add their own `BoardModel` resources.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Data about one board model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoardModelSpec {
    #[schemars(length(min = 1, max = 128))]
    pub vendor: String,
    #[schemars(length(min = 1, max = 128))]
    pub soc: String,
    pub dimensions_mm: Dimensions,
    pub power: BoardPower,
    pub thermal: BoardThermal,
    /// Typical time from power-on to an idle OS, in seconds.
    #[schemars(range(min = 0.1, max = 600.0))]
    pub boot_seconds: f64,
    #[schemars(length(min = 1))]
    pub boot_methods: Vec<BootMethod>,
}

/// Outline of the board with its tallest component, in millimetres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dimensions {
    #[schemars(range(min = 1.0, max = 500.0))]
    pub length: f64,
    #[schemars(range(min = 1.0, max = 500.0))]
    pub width: f64,
    /// Board plus tallest component (and the BMC HAT where it stacks).
    #[schemars(range(min = 1.0, max = 200.0))]
    pub thickness: f64,
}

/// Power draw at the board's input, in watts, per state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoardPower {
    /// Supply voltage at the board input.
    #[schemars(range(min = 3.0, max = 24.0))]
    pub input_volts: f64,
    /// Halted or in standby with power applied.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub off_watts: f64,
    #[schemars(range(min = 0.0, max = 100.0))]
    pub booting_watts: f64,
    #[schemars(range(min = 0.0, max = 100.0))]
    pub idle_watts: f64,
    /// All cores busy: the worst case used for PSU budgets.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub load_watts: f64,
    /// Peak in-rush current when the converter switches on, in amperes at the input.
    #[schemars(range(min = 0.0, max = 50.0))]
    pub inrush_amps: f64,
    /// How long the in-rush lasts, in milliseconds.
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub inrush_millis: f64,
}

/// Thermal figures of the SoC and a first-order model of the board's cooling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoardThermal {
    /// Temperature at which the firmware starts throttling.
    #[schemars(range(min = 20.0, max = 150.0))]
    pub throttle_celsius: f64,
    /// Highest rated SoC temperature; the shutdown threshold.
    #[schemars(range(min = 20.0, max = 150.0))]
    pub limit_celsius: f64,
    /// SoC-to-ambient thermal resistance in still air, °C per watt.
    #[schemars(range(min = 0.1, max = 100.0))]
    pub still_air_celsius_per_watt: f64,
    /// Thermal resistance with the fan zone at full airflow, °C per watt.
    #[schemars(range(min = 0.1, max = 100.0))]
    pub forced_air_celsius_per_watt: f64,
    /// Heat capacity of SoC, heat sink and board, joules per °C.
    #[schemars(range(min = 0.1, max = 1000.0))]
    pub heat_capacity_joules_per_celsius: f64,
}

/// A way the board's boot ROM or bootloader can load an OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BootMethod {
    Sd,
    Emmc,
    Usb,
    Nvme,
    Network,
    Http,
}
