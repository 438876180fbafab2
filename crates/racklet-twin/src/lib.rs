//! Digital twin of RFC-0002 layers 1–2: the rack's trays, boards, backplanes, PSUs, fans
//! and USB hubs, simulated on a virtual clock, deterministic under a seed.
//!
//! The twin is a product feature: `racklet up` runs it in real time on a laptop, and
//! every test runs it faster than real time. Firmware reaches it only through the
//! hardware traits of `racklet-hal` (embedded-hal GPIO and I2C, embedded-io UART,
//! tachometers, the USB hub), exactly as it reaches a real board; see [`hal`]. Test and
//! operator controls that have no firmware counterpart (workload, faults, hot-swap) are
//! methods on [`Twin`].

pub mod chassis;
pub mod clock;
pub mod hal;
pub mod pac1921;
pub mod tray;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use racklet_model::chassis::Rail;
use racklet_model::{Diagnostic, ManifestSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use chassis::{ChassisTwin, FanTwin, RailTwin};
pub use clock::VirtualClock;
pub use pac1921::SensorFault;
pub use tray::{BmcFlash, Compute, Installed, OsState, TrayTwin};

/// Errors building or driving the twin.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error("the manifests have {} problem(s); run `racklet validate` to see them", .0.len())]
    Invalid(Vec<Diagnostic>),
    #[error("no chassis named `{0}` in the twin")]
    NoChassis(String),
    #[error("chassis `{chassis}` has no tray {slot}")]
    NoTray { chassis: String, slot: u32 },
    #[error("chassis `{chassis}` has no fan `{fan}`")]
    NoFan { chassis: String, fan: String },
    #[error("no board model `{0}`")]
    NoBoard(String),
    #[error("tray {slot} of chassis `{chassis}` is already occupied; pull it first")]
    Occupied { chassis: String, slot: u32 },
}

/// How the twin runs.
#[derive(Debug, Clone)]
pub struct TwinConfig {
    /// Seed of every random choice (sensor noise, tachometer jitter, BMC serials).
    pub seed: u64,
    /// Air temperature at the chassis intake.
    pub ambient_celsius: f64,
    /// Simulation step; physics is exact within a step for constant inputs.
    pub step: Duration,
}

impl Default for TwinConfig {
    fn default() -> Self {
        TwinConfig {
            seed: 1,
            ambient_celsius: 25.0,
            step: Duration::from_millis(1),
        }
    }
}

/// A fault or hot-swap event injected into the twin.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    FanFailed {
        chassis: String,
        fan: String,
    },
    FanRepaired {
        chassis: String,
        fan: String,
    },
    PowerMonitor {
        chassis: String,
        slot: u32,
        state: SensorFault,
    },
    TemperatureSensor {
        chassis: String,
        slot: u32,
        state: SensorFault,
    },
    Brownout {
        chassis: String,
        rail: Rail,
        volts: f64,
        duration: Duration,
    },
    /// The BMC's firmware stops running (its main loop hangs) for `duration`.
    BmcHang {
        chassis: String,
        slot: u32,
        duration: Duration,
    },
    TrayPulled {
        chassis: String,
        slot: u32,
    },
    /// A tray goes into a slot. `bmc_serial` is its BMC's USB serial number: `None` when
    /// the tray that was pulled from this slot comes back, a new number for another tray.
    TrayInserted {
        chassis: String,
        slot: u32,
        board: String,
        hostname: String,
        bmc_serial: Option<u64>,
    },
}

/// Everything the twin simulates.
#[derive(Debug)]
pub struct TwinState {
    pub chassis: Vec<ChassisTwin>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now: Duration,
    step: Duration,
    boards: ManifestSet,
}

impl TwinState {
    pub fn now_seconds(&self) -> f64 {
        self.now.as_secs_f64()
    }

    pub fn chassis_index(&self, name: &str) -> Result<usize, TwinError> {
        self.chassis
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| TwinError::NoChassis(name.into()))
    }

    pub fn chassis_mut(&mut self, name: &str) -> Result<&mut ChassisTwin, TwinError> {
        let i = self.chassis_index(name)?;
        Ok(&mut self.chassis[i])
    }

    pub fn tray_mut(&mut self, chassis: &str, slot: u32) -> Result<&mut TrayTwin, TwinError> {
        self.chassis_mut(chassis)?
            .tray_mut(slot)
            .ok_or_else(|| TwinError::NoTray {
                chassis: chassis.into(),
                slot,
            })
    }

    /// Advances the simulation by `by`, in fixed steps.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now.saturating_add(by);
        while self.now < end {
            let dt = self.step.min(end - self.now);
            self.now += dt;
            let now = self.now.as_secs_f64();
            let dt = dt.as_secs_f64();
            for c in &mut self.chassis {
                c.step(now, dt);
            }
        }
    }

    fn installed(&self, board: &str, hostname: &str) -> Result<Installed, TwinError> {
        let b = self
            .boards
            .board(board)
            .ok_or_else(|| TwinError::NoBoard(board.into()))?;
        Ok(Installed {
            board_name: board.into(),
            board: Arc::new(b.spec.clone()),
            hostname: hostname.into(),
        })
    }

    pub fn inject(&mut self, fault: Fault) -> Result<(), TwinError> {
        let now = self.now_seconds();
        match fault {
            Fault::FanFailed { chassis, fan } => self.fan_mut(&chassis, &fan)?.failed = true,
            Fault::FanRepaired { chassis, fan } => self.fan_mut(&chassis, &fan)?.failed = false,
            Fault::PowerMonitor {
                chassis,
                slot,
                state,
            } => self.tray_mut(&chassis, slot)?.pac.fault = state,
            Fault::TemperatureSensor {
                chassis,
                slot,
                state,
            } => {
                let tray = self.tray_mut(&chassis, slot)?;
                tray.temperature_fault = state;
                tray.stuck_celsius = (state == SensorFault::Stuck).then_some(tray.soc_celsius);
            }
            Fault::Brownout {
                chassis,
                rail,
                volts,
                duration,
            } => {
                self.chassis_mut(&chassis)?
                    .brownout(rail, volts, now + duration.as_secs_f64());
            }
            Fault::BmcHang {
                chassis,
                slot,
                duration,
            } => {
                self.tray_mut(&chassis, slot)?.bmc_hung_until = now + duration.as_secs_f64();
            }
            Fault::TrayPulled { chassis, slot } => {
                let tray = self.tray_mut(&chassis, slot)?;
                tray.installed = None;
                tray.usb_to_bmc.clear();
                tray.usb_to_host.clear();
                tray.dcdc_en = false; // the BMC leaves with the tray; a new one boots with DCDC_EN low
                tray.eeprom_wp = true;
                tray.load = 0.0;
                tray.pac.reset();
            }
            Fault::TrayInserted {
                chassis,
                slot,
                board,
                hostname,
                bmc_serial,
            } => {
                let inst = self.installed(&board, &hostname)?;
                let ambient = self.chassis_mut(&chassis)?.ambient_celsius;
                let tray = self.tray_mut(&chassis, slot)?;
                if tray.installed.is_some() {
                    return Err(TwinError::Occupied { chassis, slot });
                }
                tray.installed = Some(inst);
                if let Some(serial) = bmc_serial {
                    tray.bmc_serial = serial;
                }
                tray.soc_celsius = ambient;
                tray.console_out.clear();
            }
        }
        Ok(())
    }

    fn fan_mut(&mut self, chassis: &str, fan: &str) -> Result<&mut FanTwin, TwinError> {
        self.chassis_mut(chassis)?
            .fans
            .iter_mut()
            .find(|f| f.name == fan)
            .ok_or_else(|| TwinError::NoFan {
                chassis: chassis.into(),
                fan: fan.into(),
            })
    }

    pub(crate) fn noise(&mut self, amplitude: f64) -> f64 {
        self.rng.random_range(-amplitude..=amplitude)
    }
}

/// A handle to the running twin; cheap to clone, shared by every hardware handle.
#[derive(Debug, Clone)]
pub struct Twin {
    state: Arc<Mutex<TwinState>>,
    clock: VirtualClock,
}

impl Twin {
    /// Builds the twin of a validated manifest set: every chassis with its trays, boards,
    /// fans and PSU. All trays start unpowered (`DCDC_EN` low), as real BMCs boot.
    pub fn new(set: &ManifestSet, config: &TwinConfig) -> Result<Twin, TwinError> {
        let problems = racklet_model::validate::validate(set);
        if !problems.is_empty() {
            return Err(TwinError::Invalid(problems));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut chassis_list: Vec<_> = set.chassis().map(|(_, c)| c).collect();
        chassis_list.sort_by(|a, b| a.name().cmp(b.name()));
        let mut boards = ManifestSet::default();
        boards.entries = set.boards().map(|(e, _)| e.clone()).collect();
        let mut state = TwinState {
            chassis: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0x5EED),
            now: Duration::ZERO,
            step: config.step.max(Duration::from_micros(10)),
            boards,
        };
        for ch in chassis_list {
            let mut trays = Vec::new();
            for slot in 1..=ch.spec.trays.count {
                let cu = set
                    .compute_units()
                    .map(|(_, cu)| cu)
                    .find(|cu| cu.spec.chassis == ch.name() && cu.spec.tray == slot);
                let installed = match cu {
                    Some(cu) => Some(state.installed(&cu.spec.board, cu.name())?),
                    None => None,
                };
                trays.push(TrayTwin::new(
                    slot,
                    rng.random(),
                    installed,
                    config.ambient_celsius,
                ));
            }
            let mut c = ChassisTwin::new(
                ch.name().into(),
                ch.spec.clone(),
                trays,
                config.ambient_celsius,
            );
            c.step(0.0, 0.0);
            state.chassis.push(c);
        }
        Ok(Twin {
            state: Arc::new(Mutex::new(state)),
            clock: VirtualClock::default(),
        })
    }

    /// Locks the whole simulation (for reading snapshots or driving it directly).
    pub fn lock(&self) -> MutexGuard<'_, TwinState> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn clock(&self) -> VirtualClock {
        self.clock.clone()
    }

    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Advances virtual time by `by`.
    pub fn advance(&self, by: Duration) {
        let mut s = self.lock();
        s.advance(by);
        self.clock.set(s.now);
    }

    pub fn inject(&self, fault: Fault) -> Result<(), TwinError> {
        self.lock().inject(fault)
    }

    /// Sets the demanded utilisation (0 to 1) of a tray's workload.
    pub fn set_load(&self, chassis: &str, slot: u32, load: f64) -> Result<(), TwinError> {
        self.lock().tray_mut(chassis, slot)?.load = load.clamp(0.0, 1.0);
        Ok(())
    }

    /// Clears latched PSU over-current trips (an AC power cycle of the PSU).
    pub fn reset_psu(&self, chassis: &str) -> Result<(), TwinError> {
        self.lock().chassis_mut(chassis)?.reset_psu();
        Ok(())
    }

    /// Names of the chassis, in order.
    pub fn chassis_names(&self) -> Vec<String> {
        self.lock().chassis.iter().map(|c| c.name.clone()).collect()
    }

    /// A consistent view of every tray, for tables and metrics.
    pub fn snapshot(&self) -> Vec<TraySnapshot> {
        let s = self.lock();
        let mut out = Vec::new();
        for c in &s.chassis {
            for (i, t) in c.trays.iter().enumerate() {
                let airflow = c.airflow(i);
                let zone_rpm: Vec<f64> = c.fans_of_tray(i).map(|f| f.rpm).collect();
                out.push(TraySnapshot {
                    chassis: c.name.clone(),
                    slot: t.slot,
                    hostname: t.installed.as_ref().map(|i| i.hostname.clone()),
                    board: t.installed.as_ref().map(|i| i.board_name.clone()),
                    dcdc_en: t.dcdc_en,
                    os: t.os,
                    watts: t.board_watts,
                    energy_joules: t.energy_joules,
                    soc_celsius: t.installed.as_ref().map(|_| t.soc_celsius),
                    throttled: t.throttled,
                    indicator: t.indicator,
                    airflow,
                    fan_rpm: if zone_rpm.is_empty() {
                        None
                    } else {
                        Some(zone_rpm.iter().sum::<f64>() / zone_rpm.len() as f64)
                    },
                });
            }
        }
        out
    }
}

/// One tray's state at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct TraySnapshot {
    pub chassis: String,
    pub slot: u32,
    pub hostname: Option<String>,
    pub board: Option<String>,
    pub dcdc_en: bool,
    pub os: OsState,
    pub watts: f64,
    pub energy_joules: f64,
    /// None for an empty slot.
    pub soc_celsius: Option<f64>,
    pub throttled: bool,
    /// What the tray's front LED shows.
    pub indicator: racklet_hal::Indicator,
    pub airflow: f64,
    /// Mean speed of the tray's zone fans; None when the tray is in no zone.
    pub fan_rpm: Option<f64>,
}
