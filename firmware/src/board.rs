//! The Racklet BMC HAT: which RP2040 pin does what, and the tray's electrical figures the
//! firmware needs. One place, so a board revision changes one file.
//!
//! | RP2040 | HAT net | direction |
//! |---|---|---|
//! | GPIO0 / GPIO1 | UART0 TX / RX: the compute unit's serial console (its GPIO15 / GPIO14) | both |
//! | GPIO2 | `DCDC_EN`: the tray's DC-DC converter (external pull-down: off while the BMC resets, so a BMC reset power-cycles the tray on this revision) | out |
//! | GPIO3 | `EEPROM_WP`: the compute unit's HAT EEPROM write protect (high = protected) | out |
//! | GPIO4 / GPIO5 | I2C0 SDA / SCL: PAC1921 power monitor at 0x4C | both |
//! | GPIO6 | power button: the compute unit's shutdown GPIO (high = pressed) | out |
//! | GPIO8 / GPIO9 | UART1 TX / RX: the boot channel to the compute unit's second UART | both |
//! | GPIO25 | identify LED (blue) | out |
//! | USB | management link: USB CDC-ACM to the chassis hub | both |

use racklet_bmc::PowerConfig;

/// Console and boot-channel baud rate (the Raspberry Pi default).
pub const BAUD: u32 = 115_200;

/// The PAC1921's shunt on the HAT, ohms (same part as the twin's model).
pub const SHUNT_OHMS: f64 = 0.010;

/// PAC1921 gain register: bus full scale 8 V (DV gain 4x, for the 5.1 V rail) and sense
/// full scale 50 mV (DI gain 2x: 5 A through 10 mΩ, twice a Raspberry Pi's 2.5 A budget).
pub const PAC_GAIN: u8 = (1 << 3) | 2;

/// This image's firmware version (the key store keeps the version that is running).
pub const FIRMWARE_VERSION: u32 = 1;

/// The board name the BMC reports in its inventory.
pub const BOARD: &str = "racklet-bmc-hat-rp2040";

/// Power sequencing for a Raspberry Pi 4 tray (the built-in catalog's `rpi4`: boots at
/// 3.6 W, idles at 3.1 W, 6.4 W under load, 0.12 W halted), with the thresholds
/// `racklet_sim::power_config` derives for the twin.
pub fn power_config() -> PowerConfig {
    PowerConfig {
        settled_watts: 1.55,
        over_current_watts: 9.6,
        over_temperature_celsius: 90.0,
        halted_watts: 1.61,
        ..PowerConfig::default()
    }
}
