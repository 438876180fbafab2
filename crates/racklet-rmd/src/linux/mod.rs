//! The RMC board's side of the [`Backplane`](crate::Backplane) trait, on Linux: BMCs are
//! USB CDC-ACM ports (`/dev/ttyACM*`) on the chassis hub, fans are hwmon PWM channels, and
//! tray indicators are LEDs under `/sys/class/leds`.
//!
//! The `/sys` and `/dev` roots are configurable, so tests run it on temporary trees whose
//! `ttyACM*` entries link to pseudo-terminals. Which hub port is which tray slot comes from
//! an explicit map (a port path such as `1-1.3`, as in the tty's sysfs device path), never
//! from enumeration order: a BMC that re-enumerates keeps its slot.

mod hwmon;
mod leds;
mod ports;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use racklet_hal::{Indicator, PortEvent, PortState, SensorError};
use serde::Deserialize;

pub use hwmon::HwmonFans;
pub use leds::Leds;
pub use ports::{UsbPorts, RACKLET_BMC_PID, RACKLET_BMC_VID};

use crate::Backplane;

/// Where the RMC's devices are and which is which.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LinuxDevices {
    /// The sysfs root (`/sys` on a board).
    #[serde(default = "default_sys")]
    pub sys_root: PathBuf,
    /// The device root (`/dev` on a board).
    #[serde(default = "default_dev")]
    pub dev_root: PathBuf,
    /// Tray slot → the USB port path of its hub port (`"1-1.3"`).
    pub ports: BTreeMap<u32, String>,
    /// Chassis fan name → its hwmon channel.
    #[serde(default)]
    pub fans: BTreeMap<String, HwmonChannel>,
    /// Tray slot → its front LEDs.
    #[serde(default)]
    pub indicators: BTreeMap<u32, TrayLeds>,
}

fn default_sys() -> PathBuf {
    PathBuf::from("/sys")
}

fn default_dev() -> PathBuf {
    PathBuf::from("/dev")
}

/// A fan's PWM output and tachometer on a hwmon chip.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HwmonChannel {
    /// The chip's `name` attribute (hwmonN numbers change between boots; names do not).
    pub chip: String,
    /// `N` of `pwmN` and `fanN_input`.
    pub channel: u32,
}

/// The LEDs (names under `/sys/class/leds`) of one tray's indicator; any may be absent.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrayLeds {
    pub ok: Option<String>,
    pub attention: Option<String>,
    pub identify: Option<String>,
}

/// Starting the Linux backplane failed.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    #[error("cannot watch {path} for hot-plug: {source}; check that the device root exists and inotify is available")]
    Watch { path: PathBuf, source: io::Error },
    #[error("hub port map: slot {slot} is outside 1..=255; a chassis has at most 255 hub ports")]
    SlotOutOfRange { slot: u32 },
    #[error("hub port map: {path:?} is given for slots {first} and {second}; each hub port is one tray slot")]
    DuplicatePort {
        path: String,
        first: u32,
        second: u32,
    },
    #[error("fan {name:?} has no hwmon channel in the device map; add [devices.fans.{name:?}] with its chip and channel")]
    FanNotMapped { name: String },
}

/// One chassis' backplane on a Linux RMC.
pub struct LinuxBackplane {
    ports: UsbPorts,
    fans: HwmonFans,
    leds: Leds,
}

impl LinuxBackplane {
    /// The backplane described by `devices`; `fans` are the chassis' fan names in the
    /// daemon's order (its fan indexes).
    pub fn new(devices: &LinuxDevices, fans: &[String]) -> Result<LinuxBackplane, LinuxError> {
        let channels = fans
            .iter()
            .map(|name| {
                devices
                    .fans
                    .get(name)
                    .cloned()
                    .ok_or_else(|| LinuxError::FanNotMapped { name: name.clone() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LinuxBackplane {
            ports: UsbPorts::new(&devices.sys_root, &devices.dev_root, &devices.ports)?,
            fans: HwmonFans::new(&devices.sys_root, channels),
            leds: Leds::new(&devices.sys_root, devices.indicators.clone()),
        })
    }
}

impl Backplane for LinuxBackplane {
    fn port_count(&self) -> u8 {
        self.ports.port_count()
    }

    fn port_state(&self, port: u8) -> PortState {
        self.ports.state(port)
    }

    fn next_port_event(&mut self) -> Option<PortEvent> {
        // Called every step: the moment to retry what could not be written before.
        self.leds.retry();
        self.ports.next_event()
    }

    fn write(&mut self, port: u8, bytes: &[u8]) -> io::Result<()> {
        self.ports.write(port, bytes)
    }

    fn read(&mut self, port: u8) -> io::Result<Vec<u8>> {
        self.ports.read(port)
    }

    fn set_fan_duty(&mut self, fan: usize, duty: f64) {
        self.fans.set_duty(fan, duty);
    }

    fn fan_rpm(&mut self, fan: usize) -> Result<u32, SensorError> {
        self.fans.rpm(fan)
    }

    fn set_indicator(&mut self, slot: u32, indicator: Indicator) {
        self.leds.set(slot, indicator);
    }
}
