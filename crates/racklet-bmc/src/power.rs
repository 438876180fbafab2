//! The tray's power state machine, as pure logic: it reads measurements and the clock and
//! says what `DCDC_EN` must be. Faults latch until cleared.
//!
//! ```text
//! Off ──On──> PoweringOn ──current settles──> On ──GracefulShutdown──> GracefulShutdown ──halted/timeout──> Off
//!  ▲              │ timeout                    │ over-current / over-temperature
//!  └──ForceOff────┴──────────> Fault (latched; ClearFaults) <──┘
//! ```

use racklet_mgmt_proto::message::{fault, PowerAction, PowerState};

/// Limits and timings of one tray.
#[derive(Debug, Clone, Copy)]
pub struct PowerConfig {
    /// Draw that shows the board is up, watts.
    pub settled_watts: f64,
    /// How long power-on may take to settle, microseconds.
    pub power_on_timeout_us: u64,
    /// Draw above which the tray is shut off, watts.
    pub over_current_watts: f64,
    /// SoC temperature above which the tray is shut off, °C.
    pub over_temperature_celsius: f64,
    /// Draw below which a shut-down OS counts as halted, watts.
    pub halted_watts: f64,
    /// How long a graceful shutdown may take before the BMC forces off, microseconds.
    pub shutdown_timeout_us: u64,
    /// Off time of a power cycle and of a forced restart, microseconds.
    pub cycle_off_us: u64,
    pub restart_off_us: u64,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            settled_watts: 1.0,
            power_on_timeout_us: 2_000_000,
            over_current_watts: 30.0,
            over_temperature_celsius: 90.0,
            halted_watts: 2.0,
            shutdown_timeout_us: 30_000_000,
            cycle_off_us: 3_000_000,
            restart_off_us: 500_000,
        }
    }
}

/// Power-on actions are refused while a fault is latched; clear it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultLatched;

/// What the state machine wants done this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Ask the OS to shut down (over the console).
    RequestShutdown,
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct PowerMachine {
    pub config: PowerConfig,
    state: PowerState,
    since_us: u64,
    /// Latched fault bits.
    pub faults: u8,
    /// When set, power on again at this time (power cycle / restart).
    on_at_us: Option<u64>,
    /// Since when the draw has been below `halted_watts` while `On`.
    low_since_us: Option<u64>,
}

/// How long a powered tray draws halted-OS power before its host counts as halted.
pub const HALTED_AFTER_US: u64 = 2_000_000;

impl PowerMachine {
    pub fn new(config: PowerConfig, dcdc_on: bool, now_us: u64) -> Self {
        // A BMC that restarts while the tray is on adopts that state.
        PowerMachine {
            config,
            state: if dcdc_on {
                PowerState::On
            } else {
                PowerState::Off
            },
            since_us: now_us,
            faults: 0,
            on_at_us: None,
            low_since_us: None,
        }
    }

    /// Powered, but its OS has halted: it has drawn halted-OS power for a while.
    pub fn host_halted(&self, now_us: u64) -> bool {
        self.state == PowerState::On
            && self
                .low_since_us
                .is_some_and(|t| now_us.saturating_sub(t) >= HALTED_AFTER_US)
    }

    pub fn state(&self) -> PowerState {
        self.state
    }

    /// Whether `DCDC_EN` must be high.
    pub fn dcdc_enabled(&self) -> bool {
        matches!(
            self.state,
            PowerState::PoweringOn | PowerState::On | PowerState::GracefulShutdown
        )
    }

    fn go(&mut self, state: PowerState, now_us: u64) {
        self.state = state;
        self.since_us = now_us;
        self.low_since_us = None;
    }

    fn latch(&mut self, bit: u8, now_us: u64) {
        self.faults |= bit;
        self.on_at_us = None;
        self.go(PowerState::Fault, now_us);
    }

    /// Applies an action; refused while a fault is latched.
    pub fn act(
        &mut self,
        action: PowerAction,
        now_us: u64,
    ) -> Result<Option<Command>, FaultLatched> {
        if self.faults != 0
            && matches!(
                action,
                PowerAction::On | PowerAction::ForceRestart | PowerAction::PowerCycle
            )
        {
            return Err(FaultLatched);
        }
        match action {
            PowerAction::On => {
                self.on_at_us = None;
                if matches!(self.state, PowerState::Off) {
                    self.go(PowerState::PoweringOn, now_us);
                }
            }
            PowerAction::ForceOff => {
                self.on_at_us = None;
                if self.state != PowerState::Fault {
                    self.go(PowerState::Off, now_us);
                }
            }
            PowerAction::GracefulShutdown => {
                self.on_at_us = None;
                if self.state == PowerState::On {
                    self.go(PowerState::GracefulShutdown, now_us);
                    return Ok(Some(Command::RequestShutdown));
                }
            }
            PowerAction::ForceRestart => {
                self.go(PowerState::Off, now_us);
                self.on_at_us = Some(now_us + self.config.restart_off_us);
            }
            PowerAction::PowerCycle => {
                self.go(PowerState::Off, now_us);
                self.on_at_us = Some(now_us + self.config.cycle_off_us);
            }
        }
        Ok(None)
    }

    pub fn clear_faults(&mut self, now_us: u64) {
        self.faults = 0;
        if self.state == PowerState::Fault {
            self.go(PowerState::Off, now_us);
        }
    }

    /// Advances on fresh measurements: `watts` at the board input (None when the monitor
    /// gave nothing), `celsius` of the SoC (None when unknown).
    pub fn tick(&mut self, now_us: u64, watts: Option<f64>, celsius: Option<f64>) {
        if let Some(t) = celsius {
            if t > self.config.over_temperature_celsius && self.dcdc_enabled() {
                self.latch(fault::OVER_TEMPERATURE, now_us);
                return;
            }
        }
        if let Some(w) = watts {
            if w > self.config.over_current_watts && self.dcdc_enabled() {
                self.latch(fault::OVER_CURRENT, now_us);
                return;
            }
        }
        let elapsed = now_us.saturating_sub(self.since_us);
        match self.state {
            PowerState::Off => {
                if self.on_at_us.is_some_and(|t| now_us >= t) {
                    self.on_at_us = None;
                    self.go(PowerState::PoweringOn, now_us);
                }
            }
            PowerState::PoweringOn => {
                if watts.is_some_and(|w| w >= self.config.settled_watts) {
                    self.go(PowerState::On, now_us);
                } else if elapsed > self.config.power_on_timeout_us {
                    self.latch(fault::POWER_ON_TIMEOUT, now_us);
                }
            }
            PowerState::GracefulShutdown => {
                // Give the OS a moment to start shutting down before trusting low draw.
                let halted =
                    elapsed > 1_000_000 && watts.is_some_and(|w| w < self.config.halted_watts);
                if halted || elapsed > self.config.shutdown_timeout_us {
                    self.go(PowerState::Off, now_us);
                }
            }
            PowerState::On => match watts {
                Some(w) if w < self.config.halted_watts => {
                    self.low_since_us.get_or_insert(now_us);
                }
                Some(_) => self.low_since_us = None,
                None => {}
            },
            PowerState::Fault => {}
        }
    }
}
