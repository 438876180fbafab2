//! The whole rack on one machine: the digital twin, one BMC firmware core per tray (booted
//! when its tray has standby power, gone when the tray is pulled), and one rack management
//! daemon per chassis, all stepped on the twin's clock so runs are deterministic.
//! `racklet up` and the end-to-end tests run this.
//!
//! The daemon knows only its [`racklet_rmd::Backplane`] trait; [`TwinBackplane`] (in
//! `backplane.rs`) is the twin's side of it. Readers outside the simulation take
//! [`Rack::snapshot`] (owned values) rather than the twin's or a daemon's lock.

pub mod backplane;
pub mod flash;
pub mod qemu;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use embedded_io::{Read, Write};
use racklet_bmc::{Action, Bmc, BmcConfig, PowerConfig};
use racklet_hal::Watchdog;
use racklet_model::board::BoardPower;
use racklet_model::chassis::Rail;
use racklet_model::ManifestSet;
use racklet_rmd::{ChassisSnapshot, DaemonConfig, DaemonCore, Rmd, Store, StoreError};
use racklet_rmd_api::TrayInfo;
use racklet_twin::hal::{
    TwinConsole, TwinFlash, TwinI2c, TwinPin, TwinTemperature, TwinUsbDevice, TwinWatchdog,
};
use racklet_twin::{TraySnapshot, Twin, TwinConfig, TwinError, VirtualClock};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub use crate::backplane::TwinBackplane;

/// The BMC core as the twin runs it.
pub type TwinBmc = Bmc<
    TwinPin,
    TwinPin,
    TwinI2c,
    TwinConsole,
    TwinTemperature,
    VirtualClock,
    TwinFlash,
    TwinFlash,
>;

/// How often BMCs and daemons run, in virtual time.
pub const TICK: Duration = Duration::from_millis(100);
/// Firmware version the twin's BMCs are built as.
pub const BMC_FIRMWARE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Twin(#[from] TwinError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Flash(#[from] flash::FlashError),
}

/// PAC1921 gains for a board: bus full scale ≥ 1.25 × input, current full scale ≥ 2 × load.
pub fn pac_gain(power: &BoardPower) -> u8 {
    let dv = (0..=5u8)
        .rev()
        .find(|c| 32.0 / f64::from(1u32 << c) >= 1.25 * power.input_volts)
        .unwrap_or(0);
    let max_amps = (power.load_watts / power.input_volts).max(0.1);
    let di = (0..=7u8)
        .rev()
        .find(|c| 10.0 / f64::from(1u32 << c) >= 2.0 * max_amps)
        .unwrap_or(0);
    (di << 3) | dv
}

/// The serial of the BMC in `slot` of `chassis`, as the chassis' USB hub reports it; None
/// while nothing is attached there (no tray, or no standby power yet).
pub fn bmc_serial(twin: &Twin, chassis: &str, slot: u32) -> Result<Option<u64>, TwinError> {
    use racklet_hal::UsbHub;
    let port = u8::try_from(slot).unwrap_or(0);
    Ok(match twin.usb_hub(chassis)?.port(port) {
        racklet_hal::PortState::Attached { serial } => Some(serial),
        racklet_hal::PortState::Empty => None,
    })
}

/// Power-sequencing limits for a board.
pub fn power_config(power: &BoardPower, limit_celsius: f64) -> PowerConfig {
    PowerConfig {
        settled_watts: power.booting_watts.min(power.idle_watts) * 0.5,
        over_current_watts: power.load_watts * 1.5,
        // The BMC's own backstop, above the daemon's shutdown threshold.
        over_temperature_celsius: limit_celsius + 5.0,
        halted_watts: (power.off_watts + power.idle_watts) / 2.0,
        ..PowerConfig::default()
    }
}

/// One tray's BMC, booted while its tray has standby power.
pub struct BmcRunner {
    twin: Twin,
    chassis: String,
    slot: u32,
    rng: ChaCha20Rng,
    bmc: Option<TwinBmc>,
    usb: TwinUsbDevice,
    watchdog: TwinWatchdog,
    boots: u64,
}

impl BmcRunner {
    fn new(twin: &Twin, chassis: &str, slot: u32, seed: u64) -> Result<Self, TwinError> {
        let (usb, _) = twin.bmc_usb_and_flash(chassis, slot)?;
        let watchdog = twin.bmc_watchdog(chassis, slot)?;
        Ok(BmcRunner {
            twin: twin.clone(),
            chassis: chassis.into(),
            slot,
            rng: ChaCha20Rng::seed_from_u64(seed ^ (u64::from(slot) << 32)),
            bmc: None,
            usb,
            watchdog,
            boots: 0,
        })
    }

    pub fn bmc(&mut self) -> Option<&mut TwinBmc> {
        self.bmc.as_mut()
    }

    pub fn boots(&self) -> u64 {
        self.boots
    }

    fn boot(&mut self) -> Option<TwinBmc> {
        let (serial, board) = {
            let s = self.twin.lock();
            let c = s.chassis.iter().find(|c| c.name == self.chassis)?;
            let t = c.tray(self.slot)?;
            (t.bmc_serial, t.installed.clone()?)
        };
        let p = self.twin.tray_peripherals(&self.chassis, self.slot).ok()?;
        let (_, flash) = self.twin.bmc_usb_and_flash(&self.chassis, self.slot).ok()?;
        let config = BmcConfig {
            serial,
            board: heapless::String::try_from(board.board_name.as_str()).unwrap_or_default(),
            firmware_version: BMC_FIRMWARE_VERSION,
            pac_gain: pac_gain(&board.board.power),
            power: power_config(&board.board.power, board.board.thermal.limit_celsius),
            reset_by_watchdog: self.watchdog.caused_last_reset(),
            booted: None,
        };
        self.watchdog.clear_reason();
        self.watchdog.feed();
        self.boots += 1;
        Bmc::boot(config, p, flash.clone(), flash, &mut self.rng).ok()
    }

    /// One pass of the BMC's main loop.
    pub fn tick(&mut self) {
        let powered = {
            let s = self.twin.lock();
            s.chassis
                .iter()
                .find(|c| c.name == self.chassis)
                .is_some_and(|c| {
                    let i = (self.slot - 1) as usize;
                    c.tray(self.slot).is_some_and(|t| t.installed.is_some())
                        && matches!(
                            c.hub_ports.get(i),
                            Some(racklet_hal::PortState::Attached { .. })
                        )
                })
        };
        if !powered {
            self.bmc = None; // no standby power: the RP2040 is off
            return;
        }
        if self.watchdog.hung() {
            // The firmware's loop is stuck: nothing runs, nothing feeds the watchdog.
            if self.watchdog.expired() {
                self.bmc = None; // the watchdog resets the chip
            }
            return;
        }
        if self.bmc.is_none() {
            self.bmc = self.boot();
        }
        let Some(bmc) = self.bmc.as_mut() else { return };
        let mut buf = [0u8; 2048];
        loop {
            match self.usb.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let usb = &mut self.usb;
                    bmc.receive(&buf[..n], &mut self.rng, |frame| {
                        let _ = usb.write_all(frame);
                    });
                }
            }
        }
        // The boot channel: the compute unit's second UART.
        let incoming: Vec<u8> = self
            .twin
            .lock()
            .tray_mut(&self.chassis, self.slot)
            .map(|t| t.boot_to_bmc.drain(..).collect())
            .unwrap_or_default();
        if !incoming.is_empty() {
            let mut answers = Vec::new();
            bmc.boot_channel_bytes(&incoming, |frame| answers.extend_from_slice(frame));
            if let Ok(t) = self.twin.lock().tray_mut(&self.chassis, self.slot) {
                t.boot_to_machine.extend(answers);
            }
        }
        bmc.tick();
        self.watchdog.feed();
        if bmc.take_action() == Some(Action::Reboot) {
            self.bmc = None;
        }
    }
}

/// A daemon's clock in the simulation: `epoch` plus the twin's virtual time.
fn daemon_clock(twin: &Twin, epoch: Duration) -> racklet_rmd::Clock {
    let clock = twin.clock();
    Arc::new(move || epoch + clock.now())
}

/// The whole simulated rack.
pub struct Rack {
    pub twin: Twin,
    pub bmcs: Vec<BmcRunner>,
    pub daemons: Vec<Rmd<TwinBackplane>>,
    /// Wall time (since the Unix epoch) when the rack started: the daemons' clocks read
    /// it plus the twin's virtual time, so their events carry plausible dates.
    epoch: Duration,
    /// Where each BMC's flash is kept, and its write count when it was last kept.
    kept_flash: Vec<(std::path::PathBuf, u64)>,
    /// Trays whose compute unit is a QEMU VM (see [`Rack::use_qemu`]).
    qemu: Option<qemu::QemuTrays>,
}

impl Rack {
    /// Builds the twin of `set`, boots every BMC, and starts one daemon per chassis with
    /// its files under `data_dir/rmd/CHASSIS`. With `approve` the daemons trust exactly the
    /// BMCs this rack created (the operator is whoever runs it); otherwise every BMC waits
    /// for approval.
    pub fn start(
        set: &ManifestSet,
        twin_config: &TwinConfig,
        data_dir: &Path,
        approve: bool,
    ) -> Result<Rack, SimError> {
        let twin = Twin::new(set, twin_config)?;
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        twin.advance(Duration::from_millis(1)); // hub ports come up with +5VSB
        let mut bmcs = Vec::new();
        for chassis in twin.chassis_names() {
            let count = set
                .chassis_named(&chassis)
                .map_or(0, |c| c.spec.trays.count);
            for slot in 1..=count {
                // The BMC boots from the flash it had when the rack last ran.
                let kept = flash::path(data_dir, &chassis, slot);
                if let Some(f) = flash::load(&kept)? {
                    twin.restore_bmc_flash(&chassis, slot, f)?;
                }
                let mut r = BmcRunner::new(&twin, &chassis, slot, twin_config.seed)?;
                r.tick();
                bmcs.push(r);
            }
        }
        let mut daemons = Vec::new();
        for chassis in twin.chassis_names() {
            let Some(mut config) = DaemonConfig::from_manifests(set, &chassis) else {
                continue;
            };
            if approve {
                config.pre_approved = bmcs
                    .iter_mut()
                    .filter(|r| r.chassis == chassis)
                    .filter_map(|r| r.bmc().map(|b| hex::encode(b.identity().to_bytes())))
                    .collect();
            }
            let fans: Vec<String> = config.fans.iter().map(|f| f.name.clone()).collect();
            let store = Store::open(&data_dir.join("rmd").join(&chassis))?;
            let core = DaemonCore::new(config, store, Some(twin_config.seed))?;
            let backplane = TwinBackplane::new(&twin, &chassis, &fans)?;
            daemons.push(Rmd::new(core, backplane, daemon_clock(&twin, epoch)));
        }
        let kept_flash = bmcs
            .iter()
            .map(|r| (flash::path(data_dir, &r.chassis, r.slot), 0))
            .collect();
        let mut rack = Rack {
            twin,
            bmcs,
            daemons,
            epoch,
            kept_flash,
            qemu: None,
        };
        rack.keep_flash()?;
        Ok(rack)
    }

    /// Makes the compute units of `trays` QEMU virtual machines from now on.
    pub fn use_qemu(
        &mut self,
        config: qemu::QemuConfig,
        trays: Vec<(String, u32)>,
    ) -> Result<(), qemu::QemuError> {
        self.qemu = Some(qemu::QemuTrays::new(config, &self.twin, trays)?);
        Ok(())
    }

    /// QEMU VMs running now.
    pub fn machines_running(&self) -> usize {
        self.qemu.as_ref().map_or(0, qemu::QemuTrays::running)
    }

    /// Writes every BMC flash that changed since it was last kept.
    pub fn keep_flash(&mut self) -> Result<(), SimError> {
        for (r, (path, kept)) in self.bmcs.iter().zip(self.kept_flash.iter_mut()) {
            let writes = self.twin.bmc_flash_writes(&r.chassis, r.slot)?;
            if writes != *kept || !path.exists() {
                flash::save(path, &self.twin.bmc_flash(&r.chassis, r.slot)?)?;
                *kept = writes;
            }
        }
        Ok(())
    }

    /// Advances everything by `by`, in [`TICK`] steps.
    pub fn advance(&mut self, by: Duration) {
        let mut left = by;
        while !left.is_zero() {
            let dt = left.min(TICK);
            left -= dt;
            self.twin.advance(dt);
            for b in &mut self.bmcs {
                b.tick();
            }
            if let Some(q) = &mut self.qemu {
                q.pump(&self.twin);
            }
            for d in &self.daemons {
                d.step();
            }
        }
        // As a BMC's own flash is: kept before the call returns (one write per change).
        if let Err(e) = self.keep_flash() {
            tracing::warn!(
                "cannot keep the BMCs' flash: {}",
                racklet_rmd_api::error_chain(&e)
            );
        }
    }

    pub fn daemon(&self, chassis: &str) -> Option<&Rmd<TwinBackplane>> {
        self.daemons
            .iter()
            .find(|d| racklet_rmd_api::ChassisManager::chassis_name(*d) == chassis)
    }

    /// Replaces a daemon by a fresh one over the same data dir (a restart of the process).
    pub fn restart_daemon(
        &mut self,
        set: &ManifestSet,
        chassis: &str,
        data_dir: &Path,
        seed: u64,
    ) -> Result<(), SimError> {
        let Some(i) = self
            .daemons
            .iter()
            .position(|d| racklet_rmd_api::ChassisManager::chassis_name(d) == chassis)
        else {
            return Ok(());
        };
        let Some(config) = DaemonConfig::from_manifests(set, chassis) else {
            return Ok(());
        };
        let fans: Vec<String> = config.fans.iter().map(|f| f.name.clone()).collect();
        let core = DaemonCore::new(
            config,
            Store::open(&data_dir.join("rmd").join(chassis))?,
            Some(seed),
        )?;
        let backplane = TwinBackplane::new(&self.twin, chassis, &fans)?;
        self.daemons[i] = Rmd::new(core, backplane, daemon_clock(&self.twin, self.epoch));
        Ok(())
    }
}

/// The whole rack at one instant, as owned values: what a live table shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RackSnapshot {
    /// The twin's virtual time.
    pub now: Duration,
    /// Every tray of every chassis, in order.
    pub trays: Vec<TrayView>,
    /// Every chassis' PSU rails, in order.
    pub psus: Vec<PsuView>,
    /// What each daemon knows, in the order of [`Rack::daemons`].
    pub daemons: Vec<ChassisSnapshot>,
}

/// One tray: the twin's physics beside what its chassis' daemon knows.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayView {
    pub twin: TraySnapshot,
    /// None when the chassis has no daemon.
    pub daemon: Option<TrayInfo>,
    /// The fan zone the tray is in, if any.
    pub zone: Option<String>,
    /// The duty the daemon drives that zone's fans at, in percent.
    pub zone_duty_percent: Option<f64>,
}

/// One chassis' PSU.
#[derive(Debug, Clone, PartialEq)]
pub struct PsuView {
    pub chassis: String,
    pub rails: Vec<RailView>,
}

/// One PSU rail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RailView {
    pub rail: Rail,
    pub amps: f64,
    pub limit_amps: f64,
    /// Its over-current protection latched.
    pub tripped: bool,
}

impl Rack {
    /// The whole rack now, as owned values (no lock is held after it returns).
    pub fn snapshot(&self) -> RackSnapshot {
        // (chassis, slot) -> fan zone, and each chassis' PSU, under one short lock.
        let mut zones: Vec<(String, u32, String)> = Vec::new();
        let mut psus = Vec::new();
        for c in &self.twin.lock().chassis {
            for z in &c.spec.fan_zones {
                zones.extend(z.trays.iter().map(|t| (c.name.clone(), *t, z.name.clone())));
            }
            psus.push(PsuView {
                chassis: c.name.clone(),
                rails: c
                    .rails
                    .iter()
                    .map(|r| RailView {
                        rail: r.rail,
                        amps: r.amps,
                        limit_amps: r.limit_amps,
                        tripped: r.tripped,
                    })
                    .collect(),
            });
        }
        let daemons: Vec<ChassisSnapshot> = self.daemons.iter().map(Rmd::snapshot).collect();
        let trays = self
            .twin
            .snapshot()
            .into_iter()
            .map(|t| {
                let daemon = daemons.iter().find(|d| d.chassis == t.chassis);
                let zone = zones
                    .iter()
                    .find(|(c, s, _)| *c == t.chassis && *s == t.slot)
                    .map(|(_, _, name)| name.clone());
                let zone_duty_percent = daemon.zip(zone.as_ref()).and_then(|(d, zone)| {
                    d.fans
                        .iter()
                        .find(|f| f.zone == *zone)
                        .map(|f| f.duty_percent)
                });
                TrayView {
                    daemon: daemon
                        .and_then(|d| d.trays.iter().find(|i| i.slot == t.slot))
                        .cloned(),
                    zone,
                    zone_duty_percent,
                    twin: t,
                }
            })
            .collect();
        RackSnapshot {
            now: self.twin.now(),
            trays,
            psus,
            daemons,
        }
    }
}

impl Rack {
    /// Hands the rack to a background thread that advances it by [`TICK`] every `pause` of
    /// real time (10 ms: ten times real time) until the returned handle is dropped.
    pub fn run_in_background(self, pause: Duration) -> RunningRack {
        let rack = Arc::new(Mutex::new(self));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (rack.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                r.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .advance(TICK);
                std::thread::sleep(pause);
            }
        });
        RunningRack {
            rack,
            stop,
            thread: Some(thread),
        }
    }
}

/// A rack that a background thread keeps advancing; see [`Rack::run_in_background`].
/// Dropping the handle stops the thread and waits for it, so nothing writes to the data
/// dir afterwards.
pub struct RunningRack {
    rack: Arc<Mutex<Rack>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningRack {
    /// The rack, paused while the guard is held.
    pub fn lock(&self) -> MutexGuard<'_, Rack> {
        self.rack.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the background thread now (it also stops on drop).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for RunningRack {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            // A simulation that panicked must not pass for one that merely stopped.
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("the rack's simulation thread panicked");
            }
        }
    }
}
