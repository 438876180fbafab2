//! The hardware boundary between RFC-0002's electrical layer and the firmware above it.
//!
//! Firmware (the BMC core, the rack management daemon) is written against these traits
//! only. Real boards implement them with RP2040 GPIO/I2C/UART and Linux sysfs; the digital
//! twin (`racklet-twin`) implements them over its simulation. Where a standard trait
//! exists it is used as is: `embedded-hal` 1.0 for GPIO, I2C and PWM, `embedded-io` for
//! the console byte stream. The rest are small traits of our own.
#![no_std]

pub use embedded_hal;
pub use embedded_io;

use embedded_hal::digital::StatefulOutputPin;
use embedded_hal::i2c::I2c;
use embedded_io::{Read, ReadReady, Write};

/// A monotonic clock in microseconds since an arbitrary start (the RP2040 timer; the
/// twin's virtual clock).
pub trait Monotonic {
    fn now_micros(&self) -> u64;
}

/// Why a sensor gave no value. Sensor states are named, never a NaN or a 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorError {
    /// Nothing answers: the part is missing, unpowered or dead.
    Absent,
    /// The part answered, but with no new value for longer than it should.
    Stale,
}

/// A temperature sensor next to the compute unit's SoC.
pub trait TemperatureSensor {
    /// Temperature in milli-degrees Celsius.
    fn read_millicelsius(&mut self) -> Result<i32, SensorError>;
}

/// Everything one BMC drives on its tray.
///
/// `I2C` carries the PAC1921 power monitor (address 0x4C); `DcdcEnable` switches the
/// compute unit's DC-DC converter; `Line` is a GPIO line to the compute unit (its EEPROM
/// write-protect and its power button); `Console` is the compute unit's UART.
pub struct TrayPeripherals<DcdcEnable, Line, I2cBus, Console, Temp, Clock>
where
    DcdcEnable: StatefulOutputPin,
    Line: StatefulOutputPin,
    I2cBus: I2c,
    Console: Read + Write + ReadReady,
    Temp: TemperatureSensor,
    Clock: Monotonic,
{
    pub dcdc_enable: DcdcEnable,
    pub eeprom_wp: Line,
    /// The compute unit's power button (high = pressed): on a Raspberry Pi the shutdown
    /// GPIO, in a QEMU tray the ACPI power button. The BMC's graceful shutdown presses it.
    pub power_button: Line,
    pub i2c: I2cBus,
    pub console: Console,
    pub soc_temperature: Temp,
    pub clock: Clock,
    /// Shunt resistance of the PAC1921 on this HAT, in ohms.
    pub shunt_ohms: f64,
}

/// A fan's tachometer.
pub trait Tachometer {
    /// Measured speed in revolutions per minute; a stopped or failed fan reads 0.
    fn rpm(&mut self) -> Result<u32, SensorError>;
}

/// A USB hub port as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Empty,
    /// A device is attached; `serial` identifies it (the BMC's USB serial number).
    Attached {
        serial: u64,
    },
}

/// A change on a hub port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortEvent {
    pub port: u8,
    pub state: PortState,
    pub at_micros: u64,
}

/// The backplane USB hub, from the RMC (its host).
pub trait UsbHub {
    fn port_count(&self) -> u8;
    fn port(&self, port: u8) -> PortState;
    /// The next port change since the last call, oldest first.
    fn next_event(&mut self) -> Option<PortEvent>;
}

/// Persistent storage for a BMC's key store (a flash sector on the board).
pub trait KeyStorage {
    type Error: core::fmt::Debug;
    /// The stored bytes, or `None` when nothing was ever stored.
    fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error>;
    fn store(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

/// A BMC's two firmware slots (flash partitions).
pub trait FirmwareSlots {
    type Error: core::fmt::Debug;
    fn capacity(&self) -> u32;
    fn erase(&mut self, slot: u8) -> Result<(), Self::Error>;
    fn write(&mut self, slot: u8, offset: u32, data: &[u8]) -> Result<(), Self::Error>;
    fn read(&mut self, slot: u8, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// A tray's front indicator, driven by the backplane microcontroller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Indicator {
    #[default]
    Off,
    /// Green: trusted and powered.
    Ok,
    /// Amber: needs a person (fault latched, BMC waiting for approval).
    Attention,
    /// Blue: "this one" (Redfish location indicator).
    Identify,
}

/// The microcontroller's hardware watchdog: unless fed, it resets the chip.
pub trait Watchdog {
    fn feed(&mut self);
    /// Whether the watchdog caused the last reset (the RP2040's reason register).
    fn caused_last_reset(&self) -> bool;
}
