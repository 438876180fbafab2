//! The twin's side of the daemon's [`Backplane`] trait: the chassis' USB hub and host
//! ports, fan PWM and tachometers through the twin's `racklet-hal` handles, and the trays'
//! front indicators. Only the simulation knows the daemon runs on the twin.

use std::io;

use embedded_hal::pwm::SetDutyCycle;
use racklet_hal::{Indicator, PortEvent, PortState, SensorError, Tachometer, UsbHub};
use racklet_rmd::Backplane;
use racklet_twin::hal::{TwinFanPwm, TwinTach, TwinUsbHostPort, TwinUsbHub};
use racklet_twin::{Twin, TwinError};

/// The twin's backplane.
pub struct TwinBackplane {
    twin: Twin,
    chassis: String,
    hub: TwinUsbHub,
    ports: Vec<TwinUsbHostPort>,
    fans: Vec<(TwinFanPwm, TwinTach)>,
}

impl TwinBackplane {
    pub fn new(twin: &Twin, chassis: &str, fans: &[String]) -> Result<Self, TwinError> {
        let hub = twin.usb_hub(chassis)?;
        let ports = (1..=hub.port_count())
            .filter_map(|p| twin.usb_host_port(chassis, p).ok())
            .collect();
        let fans = fans
            .iter()
            .map(|f| twin.fan(chassis, f))
            .collect::<Result<_, _>>()?;
        Ok(TwinBackplane {
            twin: twin.clone(),
            chassis: chassis.into(),
            hub,
            ports,
            fans,
        })
    }
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "no BMC on this hub port")
}

impl Backplane for TwinBackplane {
    fn port_count(&self) -> u8 {
        self.hub.port_count()
    }

    fn port_state(&self, port: u8) -> PortState {
        self.hub.port(port)
    }

    fn next_port_event(&mut self) -> Option<PortEvent> {
        self.hub.next_event()
    }

    fn write(&mut self, port: u8, bytes: &[u8]) -> io::Result<()> {
        let p = self
            .ports
            .get(usize::from(port).wrapping_sub(1))
            .ok_or_else(detached)?;
        p.write(bytes).map_err(|_| detached())
    }

    fn read(&mut self, port: u8) -> io::Result<Vec<u8>> {
        let p = self
            .ports
            .get(usize::from(port).wrapping_sub(1))
            .ok_or_else(detached)?;
        p.read().map_err(|_| detached())
    }

    fn set_fan_duty(&mut self, fan: usize, duty: f64) {
        if let Some((pwm, _)) = self.fans.get_mut(fan) {
            let max = pwm.max_duty_cycle();
            // reason: the duty is clamped to 0..=1, so the product is in 0..=max, a u16.
            #[allow(clippy::cast_possible_truncation)]
            let duty = (duty.clamp(0.0, 1.0) * f64::from(max)).round() as u16;
            let _ = pwm.set_duty_cycle(duty);
        }
    }

    fn fan_rpm(&mut self, fan: usize) -> Result<u32, SensorError> {
        self.fans.get_mut(fan).ok_or(SensorError::Absent)?.1.rpm()
    }

    fn set_indicator(&mut self, slot: u32, indicator: Indicator) {
        if let Ok(tray) = self.twin.lock().tray_mut(&self.chassis, slot) {
            tray.indicator = indicator;
        }
    }
}
