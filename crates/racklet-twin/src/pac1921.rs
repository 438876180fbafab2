//! Register-level model of the PAC1921 on each BMC HAT.
//!
//! It integrates the true bus voltage, current and power of its tray over each window and
//! exposes the results the way the chip does: 10-bit averages of full scale, saturating
//! with overflow flags. Pin-controlled mode (window set by `INT_EN` with the READ/INT
//! override; the twin has no READ/INT pin, so the pin reads low) and the three free-run
//! modes are modelled. Where the public sources are silent the choice is ours and said
//! here: overflow flags are recomputed at each result update; pin-controlled accumulation
//! stops after 2048 samples' worth of time; the revision register reads 0x02.

use racklet_pac1921::{
    integration, overflow, reg, Config, Mode, Scale, MANUFACTURER_ID, PRODUCT_ID,
};

/// A sensor fault injected into the twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SensorFault {
    #[default]
    Healthy,
    /// Answers, but its values never change again.
    Stuck,
    /// Does not answer at all (I2C NACK / no reading).
    Silent,
}

/// One PAC1921's registers and its running integration.
#[derive(Debug, Clone)]
pub struct Pac1921Model {
    config: Config,
    pointer: u8,
    shunt_ohms: f64,
    integrating: bool,
    // Integrals over the open window: volt-seconds, amp-seconds, watt-seconds, seconds.
    acc: [f64; 4],
    vbus: u16,
    vsense: u16,
    vpower: u16,
    overflow: u8,
    pub fault: SensorFault,
}

/// The I2C transaction was not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack;

impl Pac1921Model {
    pub fn new(shunt_ohms: f64) -> Self {
        Pac1921Model {
            config: Config::default(),
            pointer: 0,
            shunt_ohms,
            integrating: false,
            acc: [0.0; 4],
            vbus: 0,
            vsense: 0,
            vpower: 0,
            overflow: 0,
            fault: SensorFault::Healthy,
        }
    }

    /// Power-on reset (the HAT lost +5VSB).
    pub fn reset(&mut self) {
        let fault = self.fault;
        *self = Pac1921Model::new(self.shunt_ohms);
        self.fault = fault;
    }

    pub fn config(&self) -> Config {
        self.config
    }

    /// Advances the model by `dt` seconds during which the tray drew `amps` at `volts`.
    pub fn advance(&mut self, mut dt: f64, volts: f64, amps: f64) {
        if !self.integrating || self.config.sleeping() {
            return;
        }
        let inputs = [volts, amps, volts * amps, 1.0];
        match self.config.mode() {
            Mode::VPowerPinControlled => {
                let room = f64::from(self.config.max_integration_us()) * 1e-6 - self.acc[3];
                let used = dt.min(room.max(0.0));
                for (a, x) in self.acc.iter_mut().zip(inputs) {
                    *a += x * used;
                }
            }
            _ => {
                let period = f64::from(self.config.period_us()) * 1e-6;
                while dt > 0.0 {
                    let used = dt.min((period - self.acc[3]).max(0.0));
                    for (a, x) in self.acc.iter_mut().zip(inputs) {
                        *a += x * used;
                    }
                    dt -= used;
                    if self.acc[3] >= period - 1e-12 {
                        self.latch();
                    }
                }
            }
        }
    }

    /// Ends the window: publishes its averages and starts a new one.
    fn latch(&mut self) {
        if self.fault != SensorFault::Stuck {
            let scale = Scale::new(&self.config, self.shunt_ohms);
            let t = self.acc[3];
            let avg = |i: usize| if t > 0.0 { self.acc[i] / t } else { 0.0 };
            let (vb, vb_ovf) = Scale::encode(avg(0) / scale.vbus_fsr);
            let (vs, vs_ovf) = Scale::encode(avg(1) / scale.current_fsr);
            let (vp, vp_ovf) = Scale::encode(avg(2) / scale.power_fsr());
            let mode = self.config.mode();
            let mut ovf = 0;
            if matches!(
                mode,
                Mode::VPowerPinControlled | Mode::VPowerFreeRun | Mode::VBusFreeRun
            ) {
                self.vbus = vb;
                ovf |= if vb_ovf { overflow::VBUS } else { 0 };
            }
            if matches!(
                mode,
                Mode::VPowerPinControlled | Mode::VPowerFreeRun | Mode::VSenseFreeRun
            ) {
                self.vsense = vs;
                ovf |= if vs_ovf { overflow::VSENSE } else { 0 };
            }
            if matches!(mode, Mode::VPowerPinControlled | Mode::VPowerFreeRun) {
                self.vpower = vp;
                ovf |= if vp_ovf { overflow::VPOWER } else { 0 };
            }
            self.overflow = ovf;
        }
        self.acc = [0.0; 4];
    }

    fn reg_byte(&self, addr: u8) -> u8 {
        let [hi_b, lo_b] = self.vbus.to_be_bytes();
        let [hi_s, lo_s] = self.vsense.to_be_bytes();
        let [hi_p, lo_p] = self.vpower.to_be_bytes();
        match addr {
            reg::GAIN_CONFIG => self.config.gain,
            reg::INTEGRATION_CONFIG => self.config.integration,
            reg::CONTROL => self.config.control,
            0x10 => hi_b,
            0x11 => lo_b,
            0x12 => hi_s,
            0x13 => lo_s,
            reg::OVERFLOW_STATUS => self.overflow,
            0x1D => hi_p,
            0x1E => lo_p,
            reg::PRODUCT_ID => PRODUCT_ID,
            reg::MANUFACTURER_ID => MANUFACTURER_ID,
            reg::REVISION => 0x02,
            _ => 0,
        }
    }

    fn update_integrating(&mut self) {
        let now = self.config.integrating(false);
        match (self.integrating, now) {
            (false, true) => self.acc = [0.0; 4],
            (true, false) if self.config.mode() == Mode::VPowerPinControlled => self.latch(),
            _ => {}
        }
        self.integrating = now;
    }

    /// An I2C write: the register address, then data bytes to it and the following ones.
    pub fn i2c_write(&mut self, bytes: &[u8]) -> Result<(), Nack> {
        if self.fault == SensorFault::Silent {
            return Err(Nack);
        }
        let Some((&addr, data)) = bytes.split_first() else {
            return Ok(());
        };
        self.pointer = addr;
        for &b in data {
            let before = self.config;
            match self.pointer {
                reg::GAIN_CONFIG => self.config.gain = b,
                reg::INTEGRATION_CONFIG => self.config.integration = b,
                reg::CONTROL => self.config.control = b,
                _ => {} // read-only registers ignore writes
            }
            // A new mode, gain or sample count starts a fresh window.
            let window = |c: &Config| (c.gain, c.control, c.integration & integration::SMPL_MASK);
            if window(&before) != window(&self.config) {
                self.acc = [0.0; 4];
            }
            self.update_integrating();
            self.pointer = self.pointer.wrapping_add(1);
        }
        Ok(())
    }

    /// An I2C read from the register pointer, which auto-increments.
    pub fn i2c_read(&mut self, buf: &mut [u8]) -> Result<(), Nack> {
        if self.fault == SensorFault::Silent {
            return Err(Nack);
        }
        for b in buf {
            *b = self.reg_byte(self.pointer);
            self.pointer = self.pointer.wrapping_add(1);
        }
        Ok(())
    }
}
