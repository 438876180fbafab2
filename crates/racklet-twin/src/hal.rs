//! The twin's implementations of Racklet's hardware traits: what firmware holds instead
//! of RP2040 pins, an I2C peripheral, a UART, PWM outputs and tachometers.
//!
//! A handle names its tray or fan by chassis and slot; if the hardware behind it is gone
//! (tray pulled) GPIO writes do nothing, I2C is not acknowledged and the console is
//! silent, as on a board whose tray has left the backplane.

use std::convert::Infallible;

use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin, StatefulOutputPin};
use embedded_hal::i2c::{self, I2c, Operation};
use embedded_hal::pwm::{ErrorType as PwmErrorType, SetDutyCycle};
use racklet_hal::{
    FirmwareSlots, KeyStorage, Monotonic, PortEvent, PortState, SensorError, Tachometer,
    TemperatureSensor, TrayPeripherals, UsbHub,
};

use crate::pac1921::SensorFault;
use crate::tray::{TrayTwin, SHUNT_OHMS, USB_BUFFER};
use crate::{BmcFlash, Twin, TwinError, TwinState, VirtualClock};

/// Which tray a handle belongs to.
#[derive(Debug, Clone)]
struct TrayRef {
    twin: Twin,
    chassis: usize,
    index: usize,
}

impl TrayRef {
    fn with<R>(&self, f: impl FnOnce(&mut TrayTwin, f64) -> R) -> R {
        let mut s = self.twin.lock();
        let now = s.now_seconds();
        f(&mut s.chassis[self.chassis].trays[self.index], now)
    }
}

/// Which GPIO line of the BMC HAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    DcdcEnable,
    EepromWriteProtect,
    PowerButton,
}

/// A BMC output pin.
#[derive(Debug, Clone)]
pub struct TwinPin {
    tray: TrayRef,
    line: Line,
}

impl TwinPin {
    fn set(&mut self, high: bool) {
        let line = self.line;
        self.tray.with(|t, now| {
            if t.installed.is_none() {
                return;
            }
            match line {
                Line::DcdcEnable => t.dcdc_en = high,
                Line::EepromWriteProtect => t.eeprom_wp = high,
                Line::PowerButton => t.press_power_button(high, now),
            }
        });
    }
}

impl PinErrorType for TwinPin {
    type Error = Infallible;
}

impl OutputPin for TwinPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}

impl StatefulOutputPin for TwinPin {
    fn is_set_high(&mut self) -> Result<bool, Infallible> {
        let line = self.line;
        Ok(self.tray.with(|t, _| match line {
            Line::DcdcEnable => t.dcdc_en,
            Line::EepromWriteProtect => t.eeprom_wp,
            Line::PowerButton => t.power_button,
        }))
    }

    fn is_set_low(&mut self) -> Result<bool, Infallible> {
        self.is_set_high().map(|h| !h)
    }
}

/// I2C errors of the twin's bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinI2cError;

impl i2c::Error for TwinI2cError {
    fn kind(&self) -> i2c::ErrorKind {
        i2c::ErrorKind::NoAcknowledge(i2c::NoAcknowledgeSource::Address)
    }
}

/// The BMC HAT's I2C bus, with the PAC1921 at its address.
#[derive(Debug, Clone)]
pub struct TwinI2c {
    tray: TrayRef,
}

impl i2c::ErrorType for TwinI2c {
    type Error = TwinI2cError;
}

impl I2c for TwinI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), TwinI2cError> {
        self.tray.with(|t, _| {
            if address != racklet_pac1921::DEFAULT_ADDRESS || t.installed.is_none() {
                return Err(TwinI2cError);
            }
            for op in operations {
                match op {
                    Operation::Write(bytes) => t.pac.i2c_write(bytes).map_err(|_| TwinI2cError)?,
                    Operation::Read(buf) => t.pac.i2c_read(buf).map_err(|_| TwinI2cError)?,
                }
            }
            Ok(())
        })
    }
}

/// The compute unit's UART, as the BMC sees it. Reads never block: with nothing to
/// read, `read` returns 0; check `read_ready` first.
#[derive(Debug, Clone)]
pub struct TwinConsole {
    tray: TrayRef,
}

impl embedded_io::ErrorType for TwinConsole {
    type Error = Infallible;
}

impl embedded_io::Read for TwinConsole {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        Ok(self.tray.with(|t, _| {
            let n = buf.len().min(t.console_out.len());
            for (b, v) in buf.iter_mut().zip(t.console_out.drain(..n)) {
                *b = v;
            }
            n
        }))
    }
}

impl embedded_io::ReadReady for TwinConsole {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.tray.with(|t, _| !t.console_out.is_empty()))
    }
}

impl embedded_io::Write for TwinConsole {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.tray.with(|t, now| t.console_input(buf, now));
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// The SoC temperature sensor next to the compute unit.
#[derive(Debug, Clone)]
pub struct TwinTemperature {
    tray: TrayRef,
}

impl TemperatureSensor for TwinTemperature {
    fn read_millicelsius(&mut self) -> Result<i32, SensorError> {
        let mut s = self.tray.twin.lock();
        let noise = s.noise(0.15);
        let t = &s.chassis[self.tray.chassis].trays[self.tray.index];
        if t.installed.is_none() {
            return Err(SensorError::Absent);
        }
        let celsius = match t.temperature_fault {
            SensorFault::Silent => return Err(SensorError::Absent),
            SensorFault::Stuck => t.stuck_celsius.unwrap_or(t.soc_celsius),
            SensorFault::Healthy => t.soc_celsius + noise,
        };
        // The sensor resolves 0.1 °C.
        // reason: a modelled SoC temperature in 0.1 °C is far inside i32; `as` saturates.
        #[allow(clippy::cast_possible_truncation)]
        let decicelsius = (celsius * 10.0).round() as i32;
        Ok(decicelsius.saturating_mul(100))
    }
}

/// A fan's PWM input. Duty is in thousandths.
#[derive(Debug, Clone)]
pub struct TwinFanPwm {
    twin: Twin,
    chassis: usize,
    fan: usize,
}

impl PwmErrorType for TwinFanPwm {
    type Error = Infallible;
}

impl SetDutyCycle for TwinFanPwm {
    fn max_duty_cycle(&self) -> u16 {
        1000
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), Infallible> {
        let mut s = self.twin.lock();
        s.chassis[self.chassis].fans[self.fan].duty = f64::from(duty.min(1000)) / 1000.0;
        Ok(())
    }
}

/// A fan's tachometer: two pulses per revolution counted over a one-second gate, so it
/// resolves 30 RPM.
#[derive(Debug, Clone)]
pub struct TwinTach {
    twin: Twin,
    chassis: usize,
    fan: usize,
}

impl Tachometer for TwinTach {
    fn rpm(&mut self) -> Result<u32, SensorError> {
        let mut s = self.twin.lock();
        let jitter = s.noise(0.005);
        let rpm = s.chassis[self.chassis].fans[self.fan].rpm * (1.0 + jitter);
        // reason: a modelled fan turns a few thousand RPM, far inside u32; `as` saturates.
        #[allow(clippy::cast_possible_truncation)]
        let pulses = (rpm / 30.0).round().max(0.0) as u32;
        Ok(pulses.saturating_mul(30))
    }
}

/// The backplane USB hub as its host (the RMC) sees it.
#[derive(Debug, Clone)]
pub struct TwinUsbHub {
    twin: Twin,
    chassis: usize,
}

impl UsbHub for TwinUsbHub {
    fn port_count(&self) -> u8 {
        u8::try_from(self.twin.lock().chassis[self.chassis].hub_ports.len()).unwrap_or(u8::MAX)
    }

    fn port(&self, port: u8) -> PortState {
        let s = self.twin.lock();
        s.chassis[self.chassis]
            .hub_ports
            .get(usize::from(port).wrapping_sub(1))
            .copied()
            .unwrap_or(PortState::Empty)
    }

    fn next_event(&mut self) -> Option<PortEvent> {
        self.twin.lock().chassis[self.chassis]
            .hub_events
            .pop_front()
    }
}

impl Monotonic for Twin {
    fn now_micros(&self) -> u64 {
        self.clock().now_micros()
    }
}

/// The peripherals one tray's BMC drives, backed by the twin.
pub type TwinTrayPeripherals =
    TrayPeripherals<TwinPin, TwinPin, TwinI2c, TwinConsole, TwinTemperature, VirtualClock>;

fn locate(s: &TwinState, chassis: &str, slot: u32) -> Result<(usize, usize), TwinError> {
    let c = s.chassis_index(chassis)?;
    let i = s.chassis[c]
        .trays
        .iter()
        .position(|t| t.slot == slot)
        .ok_or_else(|| TwinError::NoTray {
            chassis: chassis.into(),
            slot,
        })?;
    Ok((c, i))
}

impl Twin {
    /// The hardware of one tray's BMC.
    pub fn tray_peripherals(
        &self,
        chassis: &str,
        slot: u32,
    ) -> Result<TwinTrayPeripherals, TwinError> {
        let (c, i) = locate(&self.lock(), chassis, slot)?;
        let tray = TrayRef {
            twin: self.clone(),
            chassis: c,
            index: i,
        };
        Ok(TrayPeripherals {
            dcdc_enable: TwinPin {
                tray: tray.clone(),
                line: Line::DcdcEnable,
            },
            eeprom_wp: TwinPin {
                tray: tray.clone(),
                line: Line::EepromWriteProtect,
            },
            power_button: TwinPin {
                tray: tray.clone(),
                line: Line::PowerButton,
            },
            i2c: TwinI2c { tray: tray.clone() },
            console: TwinConsole { tray: tray.clone() },
            soc_temperature: TwinTemperature { tray },
            clock: self.clock(),
            shunt_ohms: SHUNT_OHMS,
        })
    }

    /// PWM input and tachometer of one fan.
    pub fn fan(&self, chassis: &str, fan: &str) -> Result<(TwinFanPwm, TwinTach), TwinError> {
        let s = self.lock();
        let c = s.chassis_index(chassis)?;
        let f = s.chassis[c]
            .fans
            .iter()
            .position(|x| x.name == fan)
            .ok_or_else(|| TwinError::NoFan {
                chassis: chassis.into(),
                fan: fan.into(),
            })?;
        Ok((
            TwinFanPwm {
                twin: self.clone(),
                chassis: c,
                fan: f,
            },
            TwinTach {
                twin: self.clone(),
                chassis: c,
                fan: f,
            },
        ))
    }

    /// The chassis' USB hub, for its RMC.
    pub fn usb_hub(&self, chassis: &str) -> Result<TwinUsbHub, TwinError> {
        let c = self.lock().chassis_index(chassis)?;
        Ok(TwinUsbHub {
            twin: self.clone(),
            chassis: c,
        })
    }
}

/// The link is gone: the tray was pulled or lost standby power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the USB device is not attached")]
pub struct Detached;

impl embedded_io::Error for Detached {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::NotConnected
    }
}

fn push_bounded(q: &mut std::collections::VecDeque<u8>, bytes: &[u8]) {
    for &b in bytes {
        if q.len() >= USB_BUFFER {
            q.pop_front();
        }
        q.push_back(b);
    }
}

/// The BMC's end of its USB CDC link. Reads never block: 0 means nothing yet.
#[derive(Debug, Clone)]
pub struct TwinUsbDevice {
    tray: TrayRef,
}

impl embedded_io::ErrorType for TwinUsbDevice {
    type Error = Detached;
}

impl embedded_io::Read for TwinUsbDevice {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Detached> {
        self.tray.with(|t, _| {
            if t.installed.is_none() {
                return Err(Detached);
            }
            let n = buf.len().min(t.usb_to_bmc.len());
            for (b, v) in buf.iter_mut().zip(t.usb_to_bmc.drain(..n)) {
                *b = v;
            }
            Ok(n)
        })
    }
}

impl embedded_io::Write for TwinUsbDevice {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Detached> {
        self.tray.with(|t, _| {
            if t.installed.is_none() {
                return Err(Detached);
            }
            push_bounded(&mut t.usb_to_host, buf);
            Ok(buf.len())
        })
    }

    fn flush(&mut self) -> Result<(), Detached> {
        Ok(())
    }
}

/// The host's (RMC's) end of the USB link to one hub port.
#[derive(Debug, Clone)]
pub struct TwinUsbHostPort {
    twin: Twin,
    chassis: usize,
    index: usize,
}

impl TwinUsbHostPort {
    fn with<R>(&self, f: impl FnOnce(&mut TrayTwin) -> Result<R, Detached>) -> Result<R, Detached> {
        let mut s = self.twin.lock();
        let standby = s.chassis[self.chassis].hub_ports.get(self.index).copied();
        if !matches!(standby, Some(PortState::Attached { .. })) {
            return Err(Detached);
        }
        f(&mut s.chassis[self.chassis].trays[self.index])
    }

    /// Sends bytes to the BMC.
    pub fn write(&self, bytes: &[u8]) -> Result<(), Detached> {
        self.with(|t| {
            push_bounded(&mut t.usb_to_bmc, bytes);
            Ok(())
        })
    }

    /// Takes whatever the BMC sent.
    pub fn read(&self) -> Result<Vec<u8>, Detached> {
        self.with(|t| Ok(t.usb_to_host.drain(..).collect()))
    }
}

/// A BMC's flash, kept in the twin's tray (it travels with the tray).
#[derive(Debug, Clone)]
pub struct TwinFlash {
    tray: TrayRef,
}

/// Size of each firmware slot: the RP2040 board's 2 MiB flash, halved, less the key store.
pub const SLOT_BYTES: u32 = 960 * 1024;

impl KeyStorage for TwinFlash {
    type Error = Detached;

    fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Detached> {
        self.tray.with(|t, _| {
            Ok(t.flash.key_store.as_ref().map(|k| {
                let n = k.len().min(buf.len());
                buf[..n].copy_from_slice(&k[..n]);
                n
            }))
        })
    }

    fn store(&mut self, bytes: &[u8]) -> Result<(), Detached> {
        self.tray.with(|t, _| {
            t.flash.key_store = Some(bytes.to_vec());
            t.flash.writes += 1;
            Ok(())
        })
    }
}

impl FirmwareSlots for TwinFlash {
    type Error = Detached;

    fn capacity(&self) -> u32 {
        SLOT_BYTES
    }

    fn erase(&mut self, slot: u8) -> Result<(), Detached> {
        self.tray.with(|t, _| {
            t.flash.slots[usize::from(slot & 1)].clear();
            t.flash.writes += 1;
            Ok(())
        })
    }

    fn write(&mut self, slot: u8, offset: u32, data: &[u8]) -> Result<(), Detached> {
        self.tray.with(|t, _| {
            let s = &mut t.flash.slots[usize::from(slot & 1)];
            let end = offset as usize + data.len();
            if end > SLOT_BYTES as usize {
                return Err(Detached);
            }
            if s.len() < end {
                s.resize(end, 0xFF);
            }
            s[offset as usize..end].copy_from_slice(data);
            t.flash.writes += 1;
            Ok(())
        })
    }

    fn read(&mut self, slot: u8, offset: u32, buf: &mut [u8]) -> Result<(), Detached> {
        self.tray.with(|t, _| {
            let s = &t.flash.slots[usize::from(slot & 1)];
            for (i, b) in buf.iter_mut().enumerate() {
                *b = s.get(offset as usize + i).copied().unwrap_or(0xFF);
            }
            Ok(())
        })
    }
}

impl Twin {
    /// The BMC's end of a tray's USB link, and its flash.
    pub fn bmc_usb_and_flash(
        &self,
        chassis: &str,
        slot: u32,
    ) -> Result<(TwinUsbDevice, TwinFlash), TwinError> {
        let (c, i) = locate(&self.lock(), chassis, slot)?;
        let tray = TrayRef {
            twin: self.clone(),
            chassis: c,
            index: i,
        };
        Ok((TwinUsbDevice { tray: tray.clone() }, TwinFlash { tray }))
    }

    /// How many times the BMC in `slot` has written its flash (cheap: no copy).
    pub fn bmc_flash_writes(&self, chassis: &str, slot: u32) -> Result<u64, TwinError> {
        let s = self.lock();
        let (c, i) = locate(&s, chassis, slot)?;
        Ok(s.chassis[c].trays[i].flash.writes)
    }

    /// A copy of the flash of the BMC in `slot`, to keep it across runs as a real BMC's
    /// flash keeps it.
    pub fn bmc_flash(&self, chassis: &str, slot: u32) -> Result<BmcFlash, TwinError> {
        let s = self.lock();
        let (c, i) = locate(&s, chassis, slot)?;
        Ok(s.chassis[c].trays[i].flash.clone())
    }

    /// Puts back the flash of the BMC in `slot` (before it boots), as kept from a run
    /// before.
    pub fn restore_bmc_flash(
        &self,
        chassis: &str,
        slot: u32,
        flash: BmcFlash,
    ) -> Result<(), TwinError> {
        let mut s = self.lock();
        let (c, i) = locate(&s, chassis, slot)?;
        s.chassis[c].trays[i].flash = flash;
        Ok(())
    }

    /// The host's end of the USB link on hub port `port` (1-based, = tray slot).
    pub fn usb_host_port(&self, chassis: &str, port: u8) -> Result<TwinUsbHostPort, TwinError> {
        let (c, i) = locate(&self.lock(), chassis, u32::from(port))?;
        Ok(TwinUsbHostPort {
            twin: self.clone(),
            chassis: c,
            index: i,
        })
    }
}

/// Watchdog timeout of the twin's BMCs.
pub const WATCHDOG_TIMEOUT_SECONDS: f64 = 1.0;

/// A tray BMC's watchdog.
#[derive(Debug, Clone)]
pub struct TwinWatchdog {
    tray: TrayRef,
}

impl racklet_hal::Watchdog for TwinWatchdog {
    fn feed(&mut self) {
        self.tray.with(|t, now| t.watchdog_fed_at = now);
    }

    fn caused_last_reset(&self) -> bool {
        self.tray.with(|t, _| t.watchdog_fired)
    }
}

impl TwinWatchdog {
    /// Whether the BMC's firmware is hung (a fault) right now.
    pub fn hung(&self) -> bool {
        self.tray.with(|t, now| now < t.bmc_hung_until)
    }

    /// Checks the timeout; true when the watchdog resets the BMC now.
    pub fn expired(&self) -> bool {
        self.tray.with(|t, now| {
            let fired = now - t.watchdog_fed_at > WATCHDOG_TIMEOUT_SECONDS;
            if fired {
                // The reset ends the hang: the firmware starts from scratch.
                t.watchdog_fired = true;
                t.watchdog_fed_at = now;
                t.bmc_hung_until = 0.0;
            }
            fired
        })
    }

    /// Clears the reset reason once the BMC has read it.
    pub fn clear_reason(&self) {
        self.tray.with(|t, _| t.watchdog_fired = false);
    }
}

impl Twin {
    /// A tray BMC's hardware watchdog.
    pub fn bmc_watchdog(&self, chassis: &str, slot: u32) -> Result<TwinWatchdog, TwinError> {
        let (c, i) = locate(&self.lock(), chassis, slot)?;
        Ok(TwinWatchdog {
            tray: TrayRef {
                twin: self.clone(),
                chassis: c,
                index: i,
            },
        })
    }
}
