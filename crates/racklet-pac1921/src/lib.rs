//! Microchip PAC1921 high-side power monitor: its register map, raw-to-SI conversions and
//! a small `no_std` driver over the `embedded-hal` 1.0 I2C trait.
//!
//! The BMC firmware reads a tray's power through this driver; the digital twin models the
//! same registers (see `racklet-twin`), so both sides share these definitions.
//!
//! Facts come from the Linux driver `drivers/iio/adc/pac1921.c`, its device-tree binding,
//! and the datasheet (DS20005293) first page: results are 10-bit, left-justified in two
//! big-endian bytes; VBUS full scale is 32 V / DV gain, VSENSE full scale is 100 mV / DI
//! gain; VPOWER full scale is their product over the shunt. The chip has no long-running
//! energy counter: energy is the sum of average power × integration time, which the
//! driver keeps in [`EnergyAccumulator`].
#![no_std]

use embedded_hal::i2c::I2c;

/// 7-bit I2C address of the PAC1921 on the Racklet BMC HAT: 0x4C, chosen with the
/// ADDR_SEL resistor (the address-to-resistor table is in the datasheet).
pub const DEFAULT_ADDRESS: u8 = 0x4C;

/// Register addresses.
pub mod reg {
    pub const GAIN_CONFIG: u8 = 0x00;
    pub const INTEGRATION_CONFIG: u8 = 0x01;
    pub const CONTROL: u8 = 0x02;
    pub const VBUS_RESULT: u8 = 0x10;
    pub const VSENSE_RESULT: u8 = 0x12;
    pub const OVERFLOW_STATUS: u8 = 0x1C;
    pub const VPOWER_RESULT: u8 = 0x1D;
    pub const PRODUCT_ID: u8 = 0xFD;
    pub const MANUFACTURER_ID: u8 = 0xFE;
    pub const REVISION: u8 = 0xFF;
}

/// Value of the product ID register.
pub const PRODUCT_ID: u8 = 0x5B;
/// Value of the manufacturer ID register (Microchip).
pub const MANUFACTURER_ID: u8 = 0x5D;

/// Power-on values of the writable registers.
pub const RESET_GAIN_CONFIG: u8 = 0x00;
pub const RESET_INTEGRATION_CONFIG: u8 = 0x0C;
pub const RESET_CONTROL: u8 = 0x00;

/// Gain configuration bits.
pub mod gain {
    /// 1 = 11-bit current ADC resolution, 0 = 14-bit.
    pub const I_RES_11BIT: u8 = 1 << 7;
    /// 1 = 11-bit voltage ADC resolution, 0 = 14-bit.
    pub const V_RES_11BIT: u8 = 1 << 6;
    pub const DI_GAIN_SHIFT: u8 = 3;
    pub const DI_GAIN_MASK: u8 = 0b111 << 3;
    pub const DV_GAIN_MASK: u8 = 0b111;
}

/// Integration configuration bits.
pub mod integration {
    pub const SMPL_SHIFT: u8 = 4;
    pub const SMPL_MASK: u8 = 0xF0;
    pub const VSENSE_FILTER: u8 = 1 << 3;
    pub const VBUS_FILTER: u8 = 1 << 2;
    /// READ/INT override: when set, `INT_EN` replaces the READ/INT pin.
    pub const READ_INT_OVERRIDE: u8 = 1 << 1;
    /// With the override set: 1 = integrate, 0 = read.
    pub const INT_EN: u8 = 1 << 0;
}

/// Control register bits.
pub mod control {
    pub const MXSL_SHIFT: u8 = 6;
    pub const MXSL_MASK: u8 = 0b11 << 6;
    pub const TIMEOUT: u8 = 1 << 3;
    pub const SLEEP: u8 = 1 << 2;
}

/// Overflow status bits.
pub mod overflow {
    pub const VSENSE: u8 = 1 << 2;
    pub const VBUS: u8 = 1 << 1;
    pub const VPOWER: u8 = 1 << 0;
}

/// Largest 10-bit result code (full scale).
pub const RESULT_MAX: u16 = 1023;
/// VBUS full scale at DV gain 1, volts.
pub const VBUS_FSR_VOLTS: f64 = 32.0;
/// VSENSE full scale at DI gain 1, volts.
pub const VSENSE_FSR_VOLTS: f64 = 0.1;
/// Longest accumulation: 2048 samples.
pub const MAX_SAMPLES: u32 = 2048;

/// Measurement mode (`MXSL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Power, integration window set by the READ/INT pin (or `INT_EN` with the override).
    VPowerPinControlled = 0,
    VSenseFreeRun = 1,
    VBusFreeRun = 2,
    VPowerFreeRun = 3,
}

impl Mode {
    pub fn from_control(control: u8) -> Mode {
        match (control & control::MXSL_MASK) >> control::MXSL_SHIFT {
            0 => Mode::VPowerPinControlled,
            1 => Mode::VSenseFreeRun,
            2 => Mode::VBusFreeRun,
            _ => Mode::VPowerFreeRun,
        }
    }
}

/// Free-run integration period in microseconds for each `SMPL` code (1..2048 samples),
/// 14-bit resolution with post filters on, power mode (Linux driver, datasheet Table 4-5).
pub const PERIOD_US_14BIT_FILTERED: [u32; 12] = [
    2_720, 4_050, 6_790, 12_200, 23_000, 46_000, 92_000, 184_000, 368_000, 736_000, 1_471_000,
    2_941_000,
];
/// The same at 11-bit resolution with the filters off.
pub const PERIOD_US_11BIT_UNFILTERED: [u32; 12] = [
    930, 1_460, 2_410, 4_320, 8_050, 16_100, 32_100, 64_200, 128_300, 257_000, 513_000, 1_026_000,
];

/// Decoded configuration, as the three writable registers hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub gain: u8,
    pub integration: u8,
    pub control: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gain: RESET_GAIN_CONFIG,
            integration: RESET_INTEGRATION_CONFIG,
            control: RESET_CONTROL,
        }
    }
}

impl Config {
    pub fn mode(&self) -> Mode {
        Mode::from_control(self.control)
    }

    /// DV gain: 1, 2, 4, 8, 16 or 32 (codes above 5 are treated as 32).
    pub fn dv_gain(&self) -> u32 {
        1 << (self.gain & gain::DV_GAIN_MASK).min(5)
    }

    /// DI gain: 1 to 128.
    pub fn di_gain(&self) -> u32 {
        1 << ((self.gain & gain::DI_GAIN_MASK) >> gain::DI_GAIN_SHIFT)
    }

    /// Samples per integration (`SMPL` codes above 11 mean 2048).
    pub fn samples(&self) -> u32 {
        1 << ((self.integration & integration::SMPL_MASK) >> integration::SMPL_SHIFT).min(11)
    }

    fn high_resolution(&self) -> bool {
        self.gain & (gain::I_RES_11BIT | gain::V_RES_11BIT) == 0
    }

    fn filtered(&self) -> bool {
        self.integration & (integration::VSENSE_FILTER | integration::VBUS_FILTER) != 0
    }

    /// Free-run integration period in microseconds. Between the two published tables,
    /// 14-bit costs ×1.9 and the post filters ×1.5 (Linux driver ABI notes).
    pub fn period_us(&self) -> u32 {
        let code = ((self.integration & integration::SMPL_MASK) >> integration::SMPL_SHIFT).min(11)
            as usize;
        match (self.high_resolution(), self.filtered()) {
            (true, true) => PERIOD_US_14BIT_FILTERED[code],
            (false, false) => PERIOD_US_11BIT_UNFILTERED[code],
            (true, false) => PERIOD_US_14BIT_FILTERED[code] * 2 / 3,
            (false, true) => PERIOD_US_11BIT_UNFILTERED[code] * 3 / 2,
        }
    }

    /// Pin-controlled accumulation stops after 2048 samples: this long, in microseconds.
    pub fn max_integration_us(&self) -> u32 {
        let at_max = Config {
            integration: (self.integration & !integration::SMPL_MASK)
                | (11 << integration::SMPL_SHIFT),
            ..*self
        };
        at_max.period_us()
    }

    /// Whether the chip is integrating (READ/INT pin high, or `INT_EN` with the override).
    /// `pin` is the level of the READ/INT pin.
    pub fn integrating(&self, pin: bool) -> bool {
        if self.integration & integration::READ_INT_OVERRIDE != 0 {
            self.integration & integration::INT_EN != 0
        } else {
            pin
        }
    }

    pub fn sleeping(&self) -> bool {
        self.control & control::SLEEP != 0
    }
}

/// Converts raw results to SI units for a given configuration and shunt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub vbus_fsr: f64,
    pub current_fsr: f64,
}

impl Scale {
    pub fn new(config: &Config, shunt_ohms: f64) -> Scale {
        Scale {
            vbus_fsr: VBUS_FSR_VOLTS / f64::from(config.dv_gain()),
            current_fsr: VSENSE_FSR_VOLTS / f64::from(config.di_gain()) / shunt_ohms,
        }
    }

    pub fn power_fsr(&self) -> f64 {
        self.vbus_fsr * self.current_fsr
    }

    pub fn volts(&self, raw: u16) -> f64 {
        f64::from(raw) / f64::from(RESULT_MAX) * self.vbus_fsr
    }

    pub fn amps(&self, raw: u16) -> f64 {
        f64::from(raw) / f64::from(RESULT_MAX) * self.current_fsr
    }

    pub fn watts(&self, raw: u16) -> f64 {
        f64::from(raw) / f64::from(RESULT_MAX) * self.power_fsr()
    }

    /// One least-significant bit of a power result, in watts.
    pub fn watts_lsb(&self) -> f64 {
        self.power_fsr() / f64::from(RESULT_MAX)
    }

    /// Encodes a value (as a fraction of full scale) into the 16-bit register word,
    /// saturating at full scale. Returns the word and whether it overflowed.
    pub fn encode(fraction: f64) -> (u16, bool) {
        // no_std has no f64::round; values are non-negative, so +0.5 and truncate.
        let scaled = fraction * f64::from(RESULT_MAX) + 0.5;
        let overflow = scaled >= f64::from(RESULT_MAX) + 1.0;
        // reason: the last branch runs only for 0 <= scaled < RESULT_MAX + 1, which fits u16.
        #[allow(clippy::cast_possible_truncation)]
        let code = if scaled.is_nan() || scaled < 0.0 {
            0
        } else if overflow {
            RESULT_MAX
        } else {
            scaled as u16
        };
        (code << 6, overflow)
    }
}

/// Extracts the 10-bit result from a register word (big-endian bytes, 6 zero bits below).
pub fn result_code(word: [u8; 2]) -> u16 {
    u16::from_be_bytes(word) >> 6
}

/// Driver errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The I2C transaction failed (no device, NACK, bus error).
    Bus(E),
    /// Something answered, but it is not a PAC1921 (product, manufacturer IDs).
    NotPac1921 { product: u8, manufacturer: u8 },
}

/// Energy from successive average-power readings over known windows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EnergyAccumulator {
    pub joules: f64,
    pub seconds: f64,
}

impl EnergyAccumulator {
    pub fn add(&mut self, average_watts: f64, window_seconds: f64) {
        self.joules += average_watts * window_seconds;
        self.seconds += window_seconds;
    }
}

/// One power reading: the results of a finished integration window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub volts: f64,
    pub amps: f64,
    pub watts: f64,
    /// Overflow bits (see [`overflow`]).
    pub overflow: u8,
}

/// PAC1921 driver in pin-controlled power mode with the READ/INT override, so that the
/// BMC sets each integration window by register and no pin is needed.
pub struct Pac1921<I> {
    i2c: I,
    address: u8,
    config: Config,
    scale: Scale,
}

impl<I: I2c> Pac1921<I> {
    /// A driver for the chip at `address`; nothing is sent until [`Pac1921::init`].
    pub fn new(i2c: I, address: u8, gain_config: u8, shunt_ohms: f64) -> Self {
        let config = Config {
            gain: gain_config,
            integration: (11 << integration::SMPL_SHIFT)
                | integration::VSENSE_FILTER
                | integration::VBUS_FILTER
                | integration::READ_INT_OVERRIDE,
            control: (Mode::VPowerPinControlled as u8) << control::MXSL_SHIFT,
        };
        Pac1921 {
            i2c,
            address,
            config,
            scale: Scale::new(&config, shunt_ohms),
        }
    }

    /// Checks the IDs, configures the gains and starts the first integration window.
    /// Safe to call again after a power loss of the chip.
    pub fn init(&mut self) -> Result<(), Error<I::Error>> {
        let product = self.read_u8(reg::PRODUCT_ID)?;
        let manufacturer = self.read_u8(reg::MANUFACTURER_ID)?;
        if product != PRODUCT_ID || manufacturer != MANUFACTURER_ID {
            return Err(Error::NotPac1921 {
                product,
                manufacturer,
            });
        }
        let config = self.config;
        self.write(reg::GAIN_CONFIG, config.gain)?;
        self.write(reg::CONTROL, config.control)?;
        self.write(
            reg::INTEGRATION_CONFIG,
            config.integration | integration::INT_EN,
        )?;
        Ok(())
    }

    pub fn scale(&self) -> Scale {
        self.scale
    }

    fn write(&mut self, register: u8, value: u8) -> Result<(), Error<I::Error>> {
        self.i2c
            .write(self.address, &[register, value])
            .map_err(Error::Bus)
    }

    fn read_u8(&mut self, register: u8) -> Result<u8, Error<I::Error>> {
        let mut buf = [0u8; 1];
        self.i2c
            .write_read(self.address, &[register], &mut buf)
            .map_err(Error::Bus)?;
        Ok(buf[0])
    }

    fn read_code(&mut self, register: u8) -> Result<u16, Error<I::Error>> {
        let mut buf = [0u8; 2];
        self.i2c
            .write_read(self.address, &[register], &mut buf)
            .map_err(Error::Bus)?;
        Ok(result_code(buf))
    }

    /// Ends the current window (READ), reads its results, and starts the next window.
    /// The caller knows the window's length and adds `watts × window` to its energy.
    pub fn finish_window(&mut self) -> Result<Reading, Error<I::Error>> {
        self.write(reg::INTEGRATION_CONFIG, self.config.integration)?;
        let scale = self.scale;
        let volts = scale.volts(self.read_code(reg::VBUS_RESULT)?);
        let amps = scale.amps(self.read_code(reg::VSENSE_RESULT)?);
        let watts = scale.watts(self.read_code(reg::VPOWER_RESULT)?);
        let overflow = self.read_u8(reg::OVERFLOW_STATUS)?;
        self.write(
            reg::INTEGRATION_CONFIG,
            self.config.integration | integration::INT_EN,
        )?;
        Ok(Reading {
            volts,
            amps,
            watts,
            overflow,
        })
    }

    pub fn release(self) -> I {
        self.i2c
    }
}
