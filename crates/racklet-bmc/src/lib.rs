//! The BMC firmware core: everything a tray's RP2040 does, written against the
//! `racklet-hal` traits only, so the same code drives a real board or the digital twin.
//!
//! `#![no_std]` with no heap: all state is in [`Bmc`], whose size is its whole static
//! footprint. The board's main loop calls [`Bmc::tick`] periodically, hands bytes from
//! the USB link to [`Bmc::receive`], writing back what it returns, and feeds the hardware
//! watchdog (`racklet_hal::Watchdog`) after each pass; a hung loop resets the chip, and a
//! reset while a new firmware slot is on trial falls back to the old slot.
#![no_std]

pub mod boot;
pub mod console;
pub mod power;
pub mod storage;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use embedded_hal::digital::StatefulOutputPin;
use embedded_hal::i2c::I2c;
use embedded_io::{Read, ReadReady, Write};
use racklet_hal::{Monotonic, TemperatureSensor, TrayPeripherals};
use racklet_mgmt_proto::boot_channel::{self, FromBmc, FromHost, Refusal};
use racklet_mgmt_proto::link::{BmcEvent, BmcLink};
use racklet_mgmt_proto::message::{
    BmcStatus, BootMode, ErrorCode, Inventory, PowerAction, PowerState, Reading, Request,
    RequestEnvelope, Response, ResponseEnvelope, Slot, CONSOLE_CHUNK,
};
use racklet_mgmt_proto::FrameReader;
use racklet_pac1921::{EnergyAccumulator, Pac1921, DEFAULT_ADDRESS};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};

pub use power::{PowerConfig, PowerMachine};

/// The key store's bytes at most: identity, keys and network boot fit with room to spare
/// (a flash sector is 4 KiB).
const KEY_STORE_BYTES: usize = 1024;
pub use storage::{FirmwareSlots, FirmwareState, KeyStorage, KeyStore};

/// Length of a PAC1921 integration window the BMC uses, microseconds.
pub const WINDOW_US: u64 = 500_000;
/// A measurement older than this reads as stale.
pub const STALE_US: u64 = 2_000_000;
/// How long the graceful shutdown holds the power button.
pub const BUTTON_PRESS_US: u64 = 200_000;
/// A new firmware slot must confirm within this long of booting, or the BMC falls back.
pub const TRIAL_US: u64 = 120_000_000;
/// Ed25519ph context for firmware image signatures.
pub const FIRMWARE_CONTEXT: &[u8] = racklet_mgmt_proto::bundle::SIGNATURE_CONTEXT;

/// Fixed facts about this BMC and its tray.
#[derive(Debug, Clone)]
pub struct BmcConfig {
    pub serial: u64,
    pub board: heapless::String<32>,
    pub firmware_version: u32,
    /// PAC1921 gain configuration register value for this tray's bus voltage.
    pub pac_gain: u8,
    pub power: PowerConfig,
    /// The hardware watchdog caused this boot (read from the chip's reset reason).
    pub reset_by_watchdog: bool,
    /// The slot the boot stage booted and why; `None` where there is no stage (the twin),
    /// and the core decides as the stage would.
    pub booted: Option<racklet_bootsel::BootChoice>,
}

struct Transfer {
    size: u32,
    version: u32,
    written: u32,
}

/// Something the board must do outside the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reset the microcontroller (to boot another firmware slot).
    Reboot,
}

/// The BMC.
pub struct Bmc<D, W, I, C, T, M, K, F>
where
    D: StatefulOutputPin,
    W: StatefulOutputPin,
    I: I2c,
    C: Read + Write + ReadReady,
    T: TemperatureSensor,
    M: Monotonic,
    K: KeyStorage,
    F: FirmwareSlots,
{
    config: BmcConfig,
    dcdc: D,
    eeprom_wp: W,
    power_button: W,
    /// While the power button is held: until when (microseconds).
    button_until_us: Option<u64>,
    pac: Pac1921<I>,
    pac_ready: bool,
    console: C,
    history: console::ConsoleHistory,
    temperature: T,
    clock: M,
    keys: KeyStore,
    key_storage: K,
    slots: F,
    power: PowerMachine,
    energy: EnergyAccumulator,
    window_start_us: u64,
    watts: Reading,
    watts_at_us: u64,
    celsius: Reading,
    boot_mode: BootMode,
    link: BmcLink,
    reader: FrameReader,
    /// The boot channel's frames and state.
    boot_reader: FrameReader,
    boot: boot::BootChannel,
    transfer: Option<Transfer>,
    booted_us: u64,
    pending_action: Option<Action>,
    /// The EEPROM write-protect line was released on request (it boots protected).
    wp_released: bool,
}

/// Writes `keys` to `storage`.
fn persist_keys<K: KeyStorage>(keys: &KeyStore, storage: &mut K) -> Result<(), K::Error> {
    let mut buf = [0u8; KEY_STORE_BYTES];
    match keys.encode(&mut buf) {
        Some(bytes) => storage.store(bytes),
        None => Ok(()), // the key store always fits its buffer
    }
}

/// Errors starting the BMC.
#[derive(Debug)]
pub enum BootError<K> {
    /// The key store could not be read or written.
    Storage(K),
    /// The key store exists but does not parse; recover it by hand (re-provision).
    Corrupt,
}

impl<D, W, I, C, T, M, K, F> Bmc<D, W, I, C, T, M, K, F>
where
    D: StatefulOutputPin,
    W: StatefulOutputPin,
    I: I2c,
    C: Read + Write + ReadReady,
    T: TemperatureSensor,
    M: Monotonic,
    K: KeyStorage,
    F: FirmwareSlots,
{
    /// Boots the core: loads (or creates) the key store, settles the firmware slots, and
    /// adopts the tray's current power state (a BMC reset never changes it).
    pub fn boot<R: RngCore + CryptoRng>(
        config: BmcConfig,
        p: TrayPeripherals<D, W, I, C, T, M>,
        mut key_storage: K,
        slots: F,
        rng: &mut R,
    ) -> Result<Self, BootError<K::Error>> {
        let mut buf = [0u8; KEY_STORE_BYTES];
        let mut keys: KeyStore = match key_storage.load(&mut buf).map_err(BootError::Storage)? {
            // A key store that does not parse is never overwritten with defaults: that
            // would forget the identity, the trust anchors and the rollback floor.
            Some(n) => buf
                .get(..n)
                .and_then(KeyStore::decode)
                .ok_or(BootError::Corrupt)?,
            None => KeyStore::default(),
        };
        let identity = match keys.identity_seed {
            Some(seed) => SigningKey::from_bytes(&seed),
            None => {
                let key = SigningKey::generate(rng);
                keys.identity_seed = Some(key.to_bytes());
                key
            }
        };
        // A/B: the slot the boot stage chose (a trial boot that rebooted again without
        // confirming falls back). Without a stage (the twin) the same choice is made here.
        let booted = config
            .booted
            .unwrap_or_else(|| racklet_bootsel::choose(Some(keys.firmware.selector()), false));
        keys.firmware.reconcile(booted, config.firmware_version);
        let mut dcdc = p.dcdc_enable;
        let on = dcdc.is_set_high().unwrap_or(false);
        let mut eeprom_wp = p.eeprom_wp;
        let _ = eeprom_wp.set_high(); // protected unless asked otherwise
        let mut power_button = p.power_button;
        let _ = power_button.set_low();
        let now = p.clock.now_micros();
        // A fresh key store starts at the version this firmware was built as.
        let firmware_version = if keys.firmware.boot_count <= 1 {
            keys.firmware.active_version.max(config.firmware_version)
        } else {
            keys.firmware.active_version
        };
        keys.firmware.active_version = firmware_version;
        persist_keys(&keys, &mut key_storage).map_err(BootError::Storage)?;
        let link = BmcLink::new(config.serial, identity, keys.link_key, firmware_version);
        let boot = boot::BootChannel::new(&keys);
        let boot_mode = keys.boot_mode;
        // Built in the return value, with nothing done to it afterwards: the struct is
        // large, and on the RP2040 every copy of it is stack.
        Ok(Bmc {
            pac: Pac1921::new(p.i2c, DEFAULT_ADDRESS, config.pac_gain, p.shunt_ohms),
            power: PowerMachine::new(config.power, on, now),
            config,
            dcdc,
            eeprom_wp,
            power_button,
            button_until_us: None,
            pac_ready: false,
            console: p.console,
            history: console::ConsoleHistory::default(),
            temperature: p.soc_temperature,
            clock: p.clock,
            keys,
            key_storage,
            slots,
            energy: EnergyAccumulator::default(),
            window_start_us: now,
            watts: Reading::Absent,
            watts_at_us: now,
            celsius: Reading::Absent,
            boot_mode,
            link,
            reader: FrameReader::default(),
            boot_reader: FrameReader::default(),
            boot,
            transfer: None,
            booted_us: now,
            pending_action: None,
            wp_released: false,
        })
    }

    fn persist(&mut self) -> Result<(), K::Error> {
        persist_keys(&self.keys, &mut self.key_storage)
    }

    pub fn serial(&self) -> u64 {
        self.config.serial
    }

    pub fn identity(&self) -> VerifyingKey {
        self.link.identity()
    }

    pub fn power_state(&self) -> PowerState {
        self.power.state()
    }

    pub fn link(&self) -> &BmcLink {
        &self.link
    }

    /// Lets an enrolled BMC enroll again (a button press on the board).
    pub fn reopen_enrollment(&mut self) {
        self.link.reopen_enrollment();
    }

    /// Adds a trust anchor for firmware and boot metadata (at provisioning).
    pub fn add_trust_anchor(&mut self, key: [u8; 32]) -> Result<(), K::Error> {
        if !self.keys.trust_anchors.contains(&key) {
            let _ = self.keys.trust_anchors.push(key);
        }
        self.persist()
    }

    /// Bytes from the boot channel (the compute unit's second UART); the answer to each
    /// complete frame goes to `reply`, after any change it made is persisted.
    pub fn boot_channel_bytes(&mut self, bytes: &[u8], mut reply: impl FnMut(&[u8])) {
        for &b in bytes {
            let answer = match self.boot_reader.push(b) {
                None => continue,
                Some(Err(_)) => FromBmc::Refused(Refusal::BadRequest),
                Some(Ok(frame)) => {
                    let mut plain = [0u8; boot_channel::MAX_MESSAGE];
                    match boot_channel::decode::<FromHost>(&frame, &mut plain) {
                        None => FromBmc::Refused(Refusal::BadRequest),
                        Some(msg) => {
                            let before = self.keys.clone();
                            let (answer, changed) =
                                self.boot.answer(msg, self.boot_mode, &mut self.keys);
                            if changed && self.persist().is_err() {
                                // Counters that are not durable are not promised, nor kept
                                // in memory only: a retry must try to store them again.
                                self.keys = before;
                                FromBmc::Refused(Refusal::BadRequest)
                            } else {
                                answer
                            }
                        }
                    }
                }
            };
            let mut out = [0u8; racklet_mgmt_proto::MAX_FRAME];
            if let Some(n) = boot_channel::encode(&answer, &mut out) {
                reply(&out[..n]);
            }
        }
    }

    pub fn key_store(&self) -> &KeyStore {
        &self.keys
    }

    /// What the board must do (taken once).
    pub fn take_action(&mut self) -> Option<Action> {
        self.pending_action.take()
    }

    /// Periodic work: console, measurements, power sequencing, trial timeout.
    pub fn tick(&mut self) {
        let now = self.clock.now_micros();
        let mut buf = [0u8; 128];
        while self.console.read_ready().unwrap_or(false) {
            match self.console.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.history.push(&buf[..n]),
            }
        }
        if now.saturating_sub(self.window_start_us) >= WINDOW_US {
            self.measure(now);
        }
        if now.saturating_sub(self.watts_at_us) > STALE_US && self.watts != Reading::Absent {
            self.watts = Reading::Stale;
        }
        self.celsius = match self.temperature.read_millicelsius() {
            Ok(m) => Reading::Milli(i64::from(m)),
            Err(racklet_hal::SensorError::Absent) => Reading::Absent,
            Err(racklet_hal::SensorError::Stale) => Reading::Stale,
        };
        let watts = match self.watts {
            Reading::Milli(mw) if now.saturating_sub(self.watts_at_us) <= STALE_US => {
                Some(mw as f64 / 1000.0)
            }
            _ => None,
        };
        let celsius = match self.celsius {
            Reading::Milli(m) => Some(m as f64 / 1000.0),
            _ => None,
        };
        if self.button_until_us.is_some_and(|t| now >= t) {
            self.button_until_us = None;
            let _ = self.power_button.set_low();
        }
        self.power.tick(now, watts, celsius);
        self.apply_power();
        if self.keys.firmware.trial && now.saturating_sub(self.booted_us) > TRIAL_US {
            self.pending_action = Some(Action::Reboot); // unconfirmed: boot the old slot
        }
    }

    fn measure(&mut self, now: u64) {
        let window = now.saturating_sub(self.window_start_us) as f64 * 1e-6;
        self.window_start_us = now;
        if !self.pac_ready {
            self.pac_ready = self.pac.init().is_ok();
            return;
        }
        match self.pac.finish_window() {
            Ok(r) => {
                self.energy.add(r.watts, window);
                // reason: a tray draws tens of watts, far inside i64 mW; `as` saturates anyway.
                #[allow(clippy::cast_possible_truncation)]
                let milliwatts = (r.watts * 1000.0) as i64;
                self.watts = Reading::Milli(milliwatts);
                self.watts_at_us = now;
            }
            Err(_) => {
                self.pac_ready = false;
                self.watts = Reading::Absent;
            }
        }
    }

    fn apply_power(&mut self) {
        let want = self.power.dcdc_enabled();
        if self.dcdc.is_set_high().ok() != Some(want) {
            let _ = if want {
                self.dcdc.set_high()
            } else {
                self.dcdc.set_low()
            };
        }
    }

    /// Feeds bytes from the USB link; `send` gets every frame to write back.
    pub fn receive<R: RngCore + CryptoRng>(
        &mut self,
        bytes: &[u8],
        rng: &mut R,
        mut send: impl FnMut(&[u8]),
    ) {
        for &b in bytes {
            let Some(framed) = self.reader.push(b) else {
                continue;
            };
            let frame = match framed {
                Ok(f) => f,
                Err(d) => {
                    self.link.drops.count(d);
                    continue;
                }
            };
            match self.link.receive(&frame, rng) {
                BmcEvent::Reply(out) => send(&out),
                BmcEvent::Enrolled(key, out) => {
                    // Accept only what is safely stored; otherwise stay unenrolled.
                    let previous = self.keys.link_key.replace(key);
                    if self.persist().is_ok() {
                        send(&out);
                    } else {
                        self.keys.link_key = previous;
                        self.link.revert_enrollment(previous);
                    }
                }
                BmcEvent::Request(req) => {
                    let response = self.handle(&req);
                    if let Some(out) = self.link.respond(&response) {
                        send(&out);
                    }
                }
                BmcEvent::Dropped(_) => {}
            }
        }
    }

    fn status(&self) -> BmcStatus {
        // reason: u64 mJ outlasts any uptime at tray power; `as` saturates (and maps NaN to 0).
        #[allow(clippy::cast_possible_truncation)]
        let energy_millijoules = (self.energy.joules * 1000.0) as u64;
        BmcStatus {
            power: self.power.state(),
            faults: self.power.faults,
            power_milliwatts: self.watts,
            energy_millijoules,
            soc_millicelsius: self.celsius,
            boot_mode: self.boot_mode,
            eeprom_write_protected: !self.wp_released,
            uptime_ms: self.clock.now_micros().saturating_sub(self.booted_us) / 1000,
            host_halted: self.power.host_halted(self.clock.now_micros()),
        }
    }

    /// Answers one authenticated request.
    pub fn handle(&mut self, req: &RequestEnvelope) -> ResponseEnvelope {
        let now = self.clock.now_micros();
        let response = match &req.request {
            Request::Status => Response::Status(self.status()),
            Request::Power(action) => match self.power.act(*action, now) {
                Ok(cmd) => {
                    if matches!(
                        action,
                        PowerAction::On | PowerAction::ForceRestart | PowerAction::PowerCycle
                    ) {
                        self.boot.power_on();
                        // A frame half-sent by the last system is not the next one's.
                        self.boot_reader = FrameReader::default();
                    }
                    if cmd.is_some() {
                        // A press the OS sees (a short one, as a finger's).
                        let _ = self.power_button.set_high();
                        self.button_until_us = Some(now + BUTTON_PRESS_US);
                    }
                    self.apply_power();
                    Response::Status(self.status())
                }
                Err(power::FaultLatched) => Response::Error(ErrorCode::InvalidState),
            },
            Request::ClearFaults => {
                self.power.clear_faults(now);
                self.apply_power();
                Response::Status(self.status())
            }
            Request::ConsoleWrite(bytes) => match self.console.write_all(bytes) {
                Ok(()) => Response::Ack,
                Err(_) => Response::Error(ErrorCode::InvalidState),
            },
            Request::ConsoleRead { from } => {
                let mut data = [0u8; CONSOLE_CHUNK];
                let (start, n) = self.history.read(*from, &mut data);
                Response::Console {
                    from: start,
                    next: start + n as u64,
                    data: heapless::Vec::from_slice(&data[..n]).unwrap_or_default(),
                }
            }
            Request::SetNetworkBoot(config) => {
                self.keys.network_boot = config.clone();
                match self.persist() {
                    Ok(()) => Response::Ack,
                    Err(_) => Response::Error(ErrorCode::InvalidState),
                }
            }
            Request::BootReport => Response::BootReport(self.boot.report(&self.keys)),
            Request::SetBootMode(mode) => {
                self.boot_mode = *mode;
                self.keys.boot_mode = *mode;
                let _ = self.persist();
                Response::Ack
            }
            Request::SetEepromWriteProtect(protect) => {
                let _ = if *protect {
                    self.eeprom_wp.set_high()
                } else {
                    self.eeprom_wp.set_low()
                };
                self.wp_released = !*protect;
                Response::Ack
            }
            Request::Inventory => Response::Inventory(self.inventory()),
            Request::Reboot => {
                self.pending_action = Some(Action::Reboot);
                Response::Ack
            }
            Request::FirmwareBegin { size, version } => self.firmware_begin(*size, *version),
            Request::FirmwareChunk { offset, data } => self.firmware_chunk(*offset, data),
            Request::FirmwareFinish { signature } => self.firmware_finish(signature),
            Request::FirmwareActivate => {
                if self.keys.firmware.staged_version.is_some() && !self.keys.firmware.trial {
                    let fw = &mut self.keys.firmware;
                    let staged = fw.staged_version.unwrap_or(fw.active_version);
                    fw.staged_version = Some(fw.active_version); // what to fall back to
                    fw.active ^= 1;
                    fw.active_version = staged;
                    fw.trial = true;
                    fw.trial_booted = false;
                    let _ = self.persist();
                    self.pending_action = Some(Action::Reboot);
                    Response::Ack
                } else {
                    Response::Error(ErrorCode::InvalidState)
                }
            }
            Request::FirmwareConfirm => {
                let fw = &mut self.keys.firmware;
                // Only the new firmware, running, can confirm itself.
                if fw.trial && !fw.trial_booted {
                    return ResponseEnvelope {
                        id: req.id,
                        response: Response::Error(ErrorCode::InvalidState),
                    };
                }
                if fw.trial {
                    fw.trial = false;
                    fw.trial_booted = false;
                    fw.staged_version = None;
                    self.keys.firmware_floor = self.keys.firmware_floor.max(fw.active_version);
                    let _ = self.persist();
                }
                Response::Inventory(self.inventory())
            }
        };
        ResponseEnvelope {
            id: req.id,
            response,
        }
    }

    fn inventory(&self) -> Inventory {
        let fw = &self.keys.firmware;
        Inventory {
            board: self.config.board.clone(),
            serial: self.config.serial,
            firmware_version: fw.active_version,
            active_slot: if fw.active == 0 { Slot::A } else { Slot::B },
            trial: fw.trial,
            boot_counter: fw.boot_count,
            last_reset_watchdog: self.config.reset_by_watchdog,
        }
    }

    fn firmware_begin(&mut self, size: u32, version: u32) -> Response {
        if self.keys.firmware.trial {
            return Response::Error(ErrorCode::InvalidState);
        }
        if size == 0 || size > self.slots.capacity() {
            return Response::Error(ErrorCode::BadImage);
        }
        if version < self.keys.firmware_floor || version <= self.keys.firmware.active_version {
            return Response::Error(ErrorCode::Rollback);
        }
        let inactive = self.keys.firmware.active ^ 1;
        // Forget the staged image durably before touching its slot.
        self.keys.firmware.staged_version = None;
        if self.persist().is_err() || self.slots.erase(inactive).is_err() {
            return Response::Error(ErrorCode::InvalidState);
        }
        self.transfer = Some(Transfer {
            size,
            version,
            written: 0,
        });
        Response::Ack
    }

    fn firmware_chunk(&mut self, offset: u32, data: &[u8]) -> Response {
        let inactive = self.keys.firmware.active ^ 1;
        let Some(t) = self.transfer.as_mut() else {
            return Response::Error(ErrorCode::InvalidState);
        };
        let Some(end) = u32::try_from(data.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
        else {
            return Response::Error(ErrorCode::BadImage);
        };
        if offset != t.written || end > t.size {
            return Response::Error(ErrorCode::BadImage);
        }
        if self.slots.write(inactive, offset, data).is_err() {
            return Response::Error(ErrorCode::InvalidState);
        }
        t.written = end;
        Response::Ack
    }

    fn firmware_finish(&mut self, signature: &[u8]) -> Response {
        let Some(t) = self.transfer.take() else {
            return Response::Error(ErrorCode::InvalidState);
        };
        if t.written != t.size {
            return Response::Error(ErrorCode::BadImage);
        }
        let Ok(sig) = Signature::from_slice(signature) else {
            return Response::Error(ErrorCode::BadSignature);
        };
        // Verify what is in flash, not what streamed past; the signature covers the
        // image and its version.
        let inactive = self.keys.firmware.active ^ 1;
        let mut digest = Sha512::new();
        const CHUNK: u32 = 256;
        let mut chunk = [0u8; CHUNK as usize];
        let mut offset = 0u32;
        while offset < t.size {
            let step = (t.size - offset).min(CHUNK);
            let n = step as usize;
            if self.slots.read(inactive, offset, &mut chunk[..n]).is_err() {
                return Response::Error(ErrorCode::InvalidState);
            }
            digest.update(&chunk[..n]);
            offset += step;
        }
        digest.update(t.version.to_le_bytes());
        let ok = self.keys.trust_anchors.iter().any(|anchor| {
            VerifyingKey::from_bytes(anchor).is_ok_and(|vk| {
                vk.verify_prehashed(digest.clone(), Some(FIRMWARE_CONTEXT), &sig)
                    .is_ok()
            })
        });
        if !ok {
            let _ = self.slots.erase(self.keys.firmware.active ^ 1);
            return Response::Error(ErrorCode::BadSignature);
        }
        self.keys.firmware.staged_version = Some(t.version);
        let _ = self.persist();
        Response::Ack
    }
}
