//! What the daemon drives on its chassis: the USB hub and its ports, and the fans. The
//! RMC board implements it with Linux devices (`/dev/ttyACM*`, hwmon PWM and tach); the
//! simulation (`racklet-sim`) with the digital twin. The daemon knows only this trait.

use std::io;

use racklet_hal::{Indicator, PortEvent, PortState, SensorError};

/// One chassis' backplane, from its RMC.
pub trait Backplane: Send + 'static {
    fn port_count(&self) -> u8;
    fn port_state(&self, port: u8) -> PortState;
    fn next_port_event(&mut self) -> Option<PortEvent>;
    /// Sends bytes to the BMC on `port` (1-based).
    fn write(&mut self, port: u8, bytes: &[u8]) -> io::Result<()>;
    /// Takes what the BMC on `port` sent.
    fn read(&mut self, port: u8) -> io::Result<Vec<u8>>;
    /// Fan `fan` (index in the chassis spec) to `duty` (0 to 1).
    fn set_fan_duty(&mut self, fan: usize, duty: f64);
    fn fan_rpm(&mut self, fan: usize) -> Result<u32, SensorError>;
    fn set_indicator(&mut self, slot: u32, indicator: Indicator);
}
