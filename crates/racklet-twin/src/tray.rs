//! One tray: the compute unit's power draw by OS state, in-rush, a first-order thermal
//! model with throttling, its UART console, the EEPROM write-protect line, and the BMC
//! HAT's `DCDC_EN` switch and PAC1921.

use std::collections::VecDeque;
use std::sync::Arc;

use racklet_model::board::{BoardModelSpec, BoardThermal};

use crate::pac1921::{Pac1921Model, SensorFault};

/// Console bytes kept for the host before the oldest are dropped (a real UART FIFO
/// overflows too; the BMC's history ring buffer is where history lives).
const CONSOLE_BUFFER: usize = 64 * 1024;
/// Time the emulated OS takes from `poweroff` to halted.
const SHUTDOWN_SECONDS: f64 = 3.0;
/// Shunt of the PAC1921 on the Racklet BMC HAT.
pub const SHUNT_OHMS: f64 = 0.010;

/// What the compute unit's operating system is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsState {
    /// No power.
    Off,
    Booting,
    Running,
    ShuttingDown,
    /// Powered but halted (after `poweroff`); draws the board's off/standby power.
    Halted,
}

impl OsState {
    pub fn as_str(self) -> &'static str {
        match self {
            OsState::Off => "off",
            OsState::Booting => "booting",
            OsState::Running => "running",
            OsState::ShuttingDown => "shutting-down",
            OsState::Halted => "halted",
        }
    }
}

/// What runs on a tray's compute unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// The twin's own OS model: a scripted boot, a tiny shell, power by OS state.
    #[default]
    Emulated,
    /// A real machine outside the twin (a QEMU VM, `racklet_sim::qemu`): the twin
    /// switches its power and carries its serial ports; the machine's driver says when it
    /// runs and halts and how busy its CPU is.
    Machine,
}

/// A board in a tray slot.
#[derive(Debug, Clone)]
pub struct Installed {
    pub board_name: String,
    pub board: Arc<BoardModelSpec>,
    pub hostname: String,
}

/// One tray slot of a chassis.
#[derive(Debug, Clone)]
pub struct TrayTwin {
    pub slot: u32,
    pub installed: Option<Installed>,
    /// USB serial number of this slot's BMC, stable across re-inserts of the same slot.
    pub bmc_serial: u64,
    pub dcdc_en: bool,
    /// High = the compute unit's EEPROM is write-protected (the safe default).
    pub eeprom_wp: bool,
    /// The compute unit's power button, as the BMC holds it (high = pressed).
    pub power_button: bool,
    /// Presses of the power button so far (a machine's driver passes each on).
    pub button_presses: u64,
    pub compute: Compute,
    /// Times the compute unit got power: a machine started for an earlier one is stale.
    pub power_ons: u64,
    /// Console bytes for a [`Compute::Machine`] (the BMC typing at its serial port).
    pub console_to_machine: VecDeque<u8>,
    /// The boot channel, the compute unit's second UART: bytes to the BMC, and to the
    /// machine.
    pub boot_to_bmc: VecDeque<u8>,
    pub boot_to_machine: VecDeque<u8>,
    pub os: OsState,
    os_since: f64,
    powered_since: f64,
    /// Demanded utilisation, 0 to 1 (what the workload wants, before throttling).
    pub load: f64,
    pub soc_celsius: f64,
    pub throttled: bool,
    /// Watts drawn at the board input in the last step.
    pub board_watts: f64,
    /// Exact integral of `board_watts`, in joules.
    pub energy_joules: f64,
    pub pac: Pac1921Model,
    pub temperature_fault: SensorFault,
    pub stuck_celsius: Option<f64>,
    /// Successful writes to the compute unit's bootloader EEPROM.
    pub eeprom_writes: u32,
    pub console_out: VecDeque<u8>,
    console_line: Vec<u8>,
    pub console_dropped: u64,
    /// USB CDC link between this slot's BMC and the hub's host (the RMC).
    pub usb_to_bmc: VecDeque<u8>,
    pub usb_to_host: VecDeque<u8>,
    /// The BMC's flash: key store and the two firmware slots. It travels with the tray.
    pub flash: BmcFlash,
    /// The slot's front indicator (driven from the backplane, so it stays with the slot).
    pub indicator: racklet_hal::Indicator,
    /// The BMC's watchdog: last feed (virtual seconds) and whether it fired.
    pub watchdog_fed_at: f64,
    pub watchdog_fired: bool,
    /// The BMC's firmware is stuck until this time (a fault; its main loop stops).
    pub bmc_hung_until: f64,
}

/// The contents of a BMC's flash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BmcFlash {
    pub key_store: Option<Vec<u8>>,
    pub slots: [Vec<u8>; 2],
    /// Counts writes, so that whoever keeps the flash on disk knows when to save it.
    pub writes: u64,
}

/// Bytes a USB link buffers in each direction before the oldest are dropped.
pub const USB_BUFFER: usize = 64 * 1024;

impl TrayTwin {
    pub fn new(slot: u32, bmc_serial: u64, installed: Option<Installed>, ambient: f64) -> Self {
        TrayTwin {
            slot,
            installed,
            bmc_serial,
            dcdc_en: false,
            eeprom_wp: true,
            power_button: false,
            button_presses: 0,
            compute: Compute::Emulated,
            power_ons: 0,
            console_to_machine: VecDeque::new(),
            boot_to_bmc: VecDeque::new(),
            boot_to_machine: VecDeque::new(),
            os: OsState::Off,
            os_since: 0.0,
            powered_since: 0.0,
            load: 0.0,
            soc_celsius: ambient,
            throttled: false,
            board_watts: 0.0,
            energy_joules: 0.0,
            pac: Pac1921Model::new(SHUNT_OHMS),
            temperature_fault: SensorFault::Healthy,
            stuck_celsius: None,
            eeprom_writes: 0,
            console_out: VecDeque::new(),
            console_line: Vec::new(),
            console_dropped: 0,
            usb_to_bmc: VecDeque::new(),
            usb_to_host: VecDeque::new(),
            flash: BmcFlash::default(),
            indicator: racklet_hal::Indicator::Off,
            watchdog_fed_at: 0.0,
            watchdog_fired: false,
            bmc_hung_until: 0.0,
        }
    }

    pub fn input_volts(&self) -> f64 {
        self.installed
            .as_ref()
            .map_or(0.0, |i| i.board.power.input_volts)
    }

    fn emit(&mut self, text: &str) {
        for b in text.bytes() {
            if self.console_out.len() >= CONSOLE_BUFFER {
                self.console_out.pop_front();
                self.console_dropped += 1;
            }
            self.console_out.push_back(b);
        }
    }

    fn set_os(&mut self, os: OsState, now: f64) {
        self.os = os;
        self.os_since = now;
    }

    /// Output of a [`Compute::Machine`]'s console.
    pub fn machine_console(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.console_out.len() >= CONSOLE_BUFFER {
                self.console_out.pop_front();
                self.console_dropped += 1;
            }
            self.console_out.push_back(b);
        }
    }

    /// Bytes a [`Compute::Machine`] wrote to its boot channel (bounded like a UART FIFO
    /// that overflows: the oldest go).
    pub fn boot_channel_from_machine(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.boot_to_bmc.len() >= CONSOLE_BUFFER {
                self.boot_to_bmc.pop_front();
            }
            self.boot_to_bmc.push_back(b);
        }
    }

    /// A [`Compute::Machine`] started running (`true`) or ended while powered (`false`:
    /// it halted, and draws what a halted board draws).
    pub fn machine_running(&mut self, running: bool, now: f64) {
        match (running, self.os) {
            (true, OsState::Booting) => self.set_os(OsState::Running, now),
            (false, OsState::Booting | OsState::Running | OsState::ShuttingDown) => {
                self.set_os(OsState::Halted, now);
            }
            _ => {}
        }
    }

    /// The BMC presses (`true`) or releases the power button.
    pub fn press_power_button(&mut self, pressed: bool, now: f64) {
        if pressed && !self.power_button {
            self.button_presses += 1;
            if self.compute == Compute::Emulated && self.os == OsState::Running {
                self.emit("\r\nsystemd-logind: Power key pressed short.\r\n");
                self.begin_shutdown(now);
            }
        }
        self.power_button = pressed;
    }

    fn begin_shutdown(&mut self, now: f64) {
        self.emit("[  OK  ] Stopped target multi-user.target\r\n");
        self.set_os(OsState::ShuttingDown, now);
    }

    /// Bytes written by the host (the BMC) to the compute unit's console.
    pub fn console_input(&mut self, bytes: &[u8], now: f64) {
        if self.compute == Compute::Machine {
            if self.os != OsState::Off {
                for &b in bytes {
                    if self.console_to_machine.len() < CONSOLE_BUFFER {
                        self.console_to_machine.push_back(b);
                    }
                }
            }
            return;
        }
        if !matches!(self.os, OsState::Booting | OsState::Running) {
            return; // nobody is listening
        }
        for &b in bytes {
            match b {
                b'\r' | b'\n' => {
                    let line = String::from_utf8_lossy(&self.console_line)
                        .trim()
                        .to_string();
                    self.console_line.clear();
                    self.emit("\r\n");
                    if self.os == OsState::Running {
                        self.run_command(&line, now);
                    }
                }
                _ => {
                    if self.console_line.len() < 256 {
                        self.console_line.push(b);
                    }
                    self.emit(std::str::from_utf8(&[b]).unwrap_or("?"));
                }
            }
        }
    }

    fn run_command(&mut self, line: &str, now: f64) {
        let host = self
            .installed
            .as_ref()
            .map_or("node", |i| i.hostname.as_str())
            .to_string();
        match line {
            "" => {}
            "poweroff" | "halt" | "shutdown -h now" => {
                self.begin_shutdown(now);
                return;
            }
            "reboot" => {
                self.emit("[  OK  ] Reached target reboot.target\r\nreboot: Restarting system\r\n");
                self.start_boot(now);
                return;
            }
            "rpi-eeprom-update -a" => {
                if self.eeprom_wp {
                    self.emit(
                        "rpi-eeprom-update: EEPROM is write-protected (WP asserted by the BMC)\r\n",
                    );
                } else {
                    self.eeprom_writes += 1;
                    self.emit("rpi-eeprom-update: EEPROM updated\r\n");
                }
            }
            "uname" => self.emit("Linux\r\n"),
            "hostname" => self.emit(&format!("{host}\r\n")),
            other => self.emit(&format!("-sh: {other}: not found\r\n")),
        }
        self.emit(&format!("root@{host}:~# "));
    }

    fn start_boot(&mut self, now: f64) {
        self.set_os(OsState::Booting, now);
        let board = self
            .installed
            .as_ref()
            .map_or("?", |i| i.board_name.as_str())
            .to_string();
        self.emit(&format!(
            "\r\n[    0.000000] Booting Linux on physical CPU 0x0\r\n[    0.000000] Machine model: racklet twin {board}\r\n"
        ));
    }

    /// Average draw at the board input over the step `[start, start + dt]`, in watts:
    /// the in-rush counts for the part of the step it overlaps.
    fn demand_watts(&self, start: f64, dt: f64) -> f64 {
        let Some(inst) = &self.installed else {
            return 0.0;
        };
        let p = &inst.board.power;
        let base = match self.os {
            OsState::Off => 0.0,
            OsState::Booting => p.booting_watts,
            OsState::Running | OsState::ShuttingDown => {
                let dynamic = (p.load_watts - p.idle_watts).max(0.0) * self.load.clamp(0.0, 1.0);
                p.idle_watts + dynamic * self.throttle_factor()
            }
            OsState::Halted => p.off_watts,
        };
        let inrush_end = self.powered_since + p.inrush_millis * 1e-3;
        let overlap = (inrush_end - start).clamp(0.0, dt);
        let inrush = p.inrush_amps * p.input_volts;
        if self.os != OsState::Off && overlap > 0.0 && inrush > base && dt > 0.0 {
            base + (inrush - base) * overlap / dt
        } else {
            base
        }
    }

    /// Fraction of the dynamic power the SoC may use: 1 below the throttle point, down to
    /// 0.3 at the limit (firmware DVFS steps down progressively).
    fn throttle_factor(&self) -> f64 {
        let Some(inst) = &self.installed else {
            return 1.0;
        };
        let t = &inst.board.thermal;
        if self.soc_celsius <= t.throttle_celsius {
            return 1.0;
        }
        let span = (t.limit_celsius - t.throttle_celsius).max(0.1);
        (1.0 - 0.7 * (self.soc_celsius - t.throttle_celsius) / span).max(0.3)
    }

    /// Advances the tray by `dt` seconds ending at `now`. `supplied` says whether the
    /// converter has input power; `airflow` is the zone's airflow fraction (0 to 1).
    pub fn step(&mut self, now: f64, dt: f64, supplied: bool, airflow: f64, ambient: f64) {
        let powered = supplied && self.dcdc_en && self.installed.is_some();
        let start = now - dt;
        if !powered && self.os != OsState::Off {
            self.set_os(OsState::Off, start);
            self.console_to_machine.clear();
            self.boot_to_bmc.clear();
            self.boot_to_machine.clear();
        } else if powered && self.os == OsState::Off {
            self.powered_since = start;
            self.power_ons += 1;
            match self.compute {
                Compute::Emulated => self.start_boot(start),
                // The machine's driver starts it and says when it runs.
                Compute::Machine => self.set_os(OsState::Booting, start),
            }
        }
        if let Some(inst) = self
            .installed
            .clone()
            .filter(|_| self.compute == Compute::Emulated)
        {
            match self.os {
                OsState::Booting if now - self.os_since >= inst.board.boot_seconds => {
                    self.set_os(OsState::Running, now);
                    self.emit(&format!(
                        "[  OK  ] Reached target multi-user.target\r\n\r\n{} login: root (automatic login)\r\nroot@{}:~# ",
                        inst.hostname, inst.hostname
                    ));
                }
                OsState::ShuttingDown if now - self.os_since >= SHUTDOWN_SECONDS => {
                    self.set_os(OsState::Halted, now);
                    self.emit("reboot: Power down\r\n");
                }
                _ => {}
            }
        }
        self.board_watts = if powered {
            self.demand_watts(start, dt)
        } else {
            0.0
        };
        self.energy_joules += self.board_watts * dt;
        let volts = if powered { self.input_volts() } else { 0.0 };
        let amps = if volts > 0.0 {
            self.board_watts / volts
        } else {
            0.0
        };
        self.pac.advance(dt, volts, amps);
        // First-order thermal model, integrated exactly for a constant power over dt.
        if let Some(inst) = &self.installed {
            let t = &inst.board.thermal;
            let r = thermal_resistance(t, airflow);
            let tau = r * t.heat_capacity_joules_per_celsius;
            let steady = ambient + self.board_watts * r;
            self.soc_celsius = steady + (self.soc_celsius - steady) * (-dt / tau).exp();
            self.throttled = self.soc_celsius > t.throttle_celsius && self.os == OsState::Running;
        } else {
            self.soc_celsius = ambient;
            self.throttled = false;
        }
    }

    /// The analytic steady-state SoC temperature for the current draw and airflow.
    pub fn steady_state_celsius(&self, airflow: f64, ambient: f64) -> Option<f64> {
        let inst = self.installed.as_ref()?;
        Some(ambient + self.board_watts * thermal_resistance(&inst.board.thermal, airflow))
    }
}

/// SoC-to-ambient thermal resistance at an airflow fraction (0 still air, 1 full fans).
pub fn thermal_resistance(t: &BoardThermal, airflow: f64) -> f64 {
    t.still_air_celsius_per_watt
        - (t.still_air_celsius_per_watt - t.forced_air_celsius_per_watt) * airflow.clamp(0.0, 1.0)
}
