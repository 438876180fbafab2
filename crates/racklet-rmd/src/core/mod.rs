//! The daemon's logic, synchronous and clock-agnostic: each [`DaemonCore::step`] reads the
//! hub, talks to the BMCs, runs the fan loop and records events, at the `now` it is given
//! (the daemon's clock: wall time on a board, the twin's virtual time in the simulation).
//! The async runner (`Rmd`) calls it periodically; the API methods here never block.
//!
//! Its concerns live in submodules: `config` (what the daemon runs), `session` (per-BMC
//! links and trust), `requests` (the request queue and answers), `firmware` (the update
//! as a pure state machine), `cooling` (the fan loop around `crate::fan`), `indicators`
//! (front LEDs) and `events` (the bounded event log and its subscribers).

mod config;
mod cooling;
mod events;
mod firmware;
mod indicators;
pub mod network_boot;
mod requests;
mod session;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use racklet_hal::{Indicator, PortState};
use racklet_mgmt_proto::message::{Reading, Request};
use racklet_rmd_api::{
    BmcTrust, BootOverride, Event, FanInfo, RmdError, Severity, TrayInfo, UpdateProgress,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub use self::config::{DaemonConfig, FanSpec, TraySpec, ZoneSpec};
pub use self::events::EVENTS_KEPT;
pub use self::firmware::{
    Action as FirmwareAction, FirmwareJob, FirmwareStage, Input as FirmwareInput,
};
pub use self::requests::{ReplyReceiver, ReplySender, REQUEST_TIMEOUT};
pub use self::session::{HELLO_RETRY, STATUS_EVERY};

use self::events::EventLog;
use self::requests::RequestQueue;
use self::session::Conn;
use crate::backplane::Backplane;
use crate::fan::ZoneController;
use crate::store::{Store, StoreError, TrustState};

/// How often the fan loop runs (about 10 Hz).
pub const FAN_EVERY: Duration = Duration::from_millis(100);

/// The rack management daemon's state for one chassis.
pub struct DaemonCore {
    config: DaemonConfig,
    store: Store,
    trust: TrustState,
    conns: BTreeMap<u32, Conn>,
    rng: ChaCha20Rng,
    requests: RequestQueue,
    zones: Vec<ZoneController>,
    fan_duty: Vec<f64>,
    fan_rpm: Vec<Option<u32>>,
    fan_override: Vec<Option<String>>,
    last_fan: Option<Duration>,
    events: EventLog,
    now: Duration,
    started: bool,
    firmware: Option<FirmwareJob>,
    shown: HashMap<u32, Indicator>,
    identify: BTreeSet<u32>,
    /// Boot overrides by slot, as persisted in `boot.json`.
    boot: BTreeMap<u32, BootOverride>,
    /// Network boots by slot, as persisted in `network-boot.json`.
    network: BTreeMap<u32, racklet_rmd_api::NetworkBoot>,
}

impl DaemonCore {
    pub fn new(config: DaemonConfig, store: Store, seed: Option<u64>) -> Result<Self, StoreError> {
        let mut trust = store.load()?;
        for id in &config.pre_approved {
            if !trust.approved.contains(id) {
                trust.approved.push(id.clone());
            }
        }
        store.save(&trust)?;
        let events = EventLog::load(store.clone(), &config.chassis, EVENTS_KEPT)?;
        let boot = store.load_boot_overrides()?;
        let network = store.load_network_boots()?;
        let rng = match seed {
            Some(s) => ChaCha20Rng::seed_from_u64(s),
            None => ChaCha20Rng::from_entropy(),
        };
        let fans = config.fans.len();
        Ok(DaemonCore {
            zones: vec![ZoneController::default(); config.zones.len()],
            config,
            store,
            trust,
            conns: BTreeMap::new(),
            rng,
            requests: RequestQueue::new(1),
            fan_duty: vec![0.0; fans],
            fan_rpm: vec![None; fans],
            fan_override: vec![None; fans],
            last_fan: None,
            events,
            now: Duration::ZERO,
            started: false,
            firmware: None,
            shown: HashMap::new(),
            identify: BTreeSet::new(),
            boot,
            network,
        })
    }

    pub fn config(&self) -> &DaemonConfig {
        &self.config
    }

    /// Logs an event at the daemon's current time.
    fn event(&mut self, severity: Severity, slot: Option<u32>, message: String) {
        self.events.record(self.now, severity, slot, message);
    }

    /// Queues one of the daemon's own requests (nobody waits for its answer).
    fn queue(&mut self, slot: u32, request: Request, reply: Option<ReplySender>) -> u32 {
        self.requests.push(self.now, slot, request, reply)
    }

    /// One round of work at time `now`.
    pub fn step(&mut self, now: Duration, bp: &mut impl Backplane) {
        self.now = now;
        if !self.started {
            // Ports attached before this daemon started (a restart) count as attached now.
            self.started = true;
            while bp.next_port_event().is_some() {}
            for port in 1..=bp.port_count() {
                if let PortState::Attached { serial } = bp.port_state(port) {
                    self.event(
                        Severity::Info,
                        Some(u32::from(port)),
                        format!("found BMC {serial:016x} on port {port}"),
                    );
                    self.attach(u32::from(port), serial, bp);
                }
            }
        }
        while let Some(ev) = bp.next_port_event() {
            let slot = u32::from(ev.port);
            match ev.state {
                PortState::Attached { serial } => {
                    self.event(
                        Severity::Info,
                        Some(slot),
                        format!("BMC {serial:016x} attached to port {}", ev.port),
                    );
                    self.attach(slot, serial, bp);
                }
                PortState::Empty => {
                    if self.conns.remove(&slot).is_some() {
                        self.event(
                            Severity::Warning,
                            Some(slot),
                            format!(
                                "BMC on port {} detached (tray removed or unpowered)",
                                ev.port
                            ),
                        );
                    }
                    self.requests.fail_slot(slot, &RmdError::Absent(slot));
                    if self.firmware.as_ref().is_some_and(|j| j.slot == slot) {
                        self.firmware_input(FirmwareInput::Detached);
                    }
                }
            }
        }
        let slots: Vec<u32> = self.conns.keys().copied().collect();
        for slot in slots {
            self.pump(slot, bp);
            self.keep_alive(slot, bp);
        }
        self.drive_firmware();
        self.send_pending(bp);
        self.expire_pending();
        if self
            .last_fan
            .is_none_or(|t| now.saturating_sub(t) >= FAN_EVERY)
        {
            let dt = self
                .last_fan
                .map_or(FAN_EVERY, |t| now.saturating_sub(t))
                .as_secs_f64();
            self.last_fan = Some(now);
            self.fan_loop(dt, bp);
        }
    }

    /// Sends any request to a trusted BMC: its id, and where its answer (or the reason
    /// there is none: timeout, detach, daemon restart) arrives.
    pub fn request(
        &mut self,
        slot: u32,
        request: Request,
    ) -> Result<(u32, ReplyReceiver), RmdError> {
        if !self.config.trays.iter().any(|t| t.slot == slot) {
            return Err(RmdError::NoTray(slot));
        }
        match self.conns.get(&slot).map(|c| &c.trust) {
            None => Err(RmdError::Absent(slot)),
            Some(BmcTrust::Trusted) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                Ok((self.queue(slot, request, Some(tx)), rx))
            }
            Some(_) => Err(RmdError::NotTrusted(slot)),
        }
    }

    /// Forgets a caller's request (it gave up waiting); it is not sent if still queued.
    pub fn abandon(&mut self, id: u32) {
        self.requests.abandon(id);
    }

    /// The slot of the BMC waiting for approval with this identity (lower-case hex).
    fn pending_slot(&self, identity: &str) -> Result<u32, RmdError> {
        self.conns
            .iter()
            .find(|(_, c)| matches!(&c.trust, BmcTrust::PendingApproval { identity: i, .. } if i == identity))
            .map(|(s, _)| *s)
            .ok_or_else(|| RmdError::UnknownIdentity(identity.to_string()))
    }

    /// Approves the BMC with this identity (hex); enrollment starts at the next hello.
    pub fn approve(&mut self, identity: &str) -> Result<(), RmdError> {
        let identity = identity.to_ascii_lowercase();
        let slot = self.pending_slot(&identity)?;
        if !self.trust.approved.contains(&identity) {
            self.trust.approved.push(identity.clone());
            if let Err(e) = self.store.save(&self.trust) {
                self.event(
                    Severity::Critical,
                    Some(slot),
                    format!("cannot persist approval: {}", error_chain(&e)),
                );
            }
        }
        self.event(
            Severity::Info,
            Some(slot),
            format!(
                "operator approved BMC {} in tray {slot}",
                &identity[..16.min(identity.len())]
            ),
        );
        if let Some(conn) = self.conns.get_mut(&slot) {
            conn.hello_at = Some(Duration::ZERO); // say hello again at the next step, then enroll
        }
        Ok(())
    }

    /// Rejects the BMC waiting for approval with this identity (hex): it is never enrolled,
    /// and shows as refused (persisted, so a restart does not ask again).
    pub fn reject(&mut self, identity: &str) -> Result<(), RmdError> {
        let identity = identity.to_ascii_lowercase();
        let slot = self.pending_slot(&identity)?;
        self.trust.approved.retain(|a| *a != identity);
        if !self.trust.rejected.contains(&identity) {
            self.trust.rejected.push(identity.clone());
        }
        if let Err(e) = self.store.save(&self.trust) {
            self.event(
                Severity::Critical,
                Some(slot),
                format!("cannot persist the rejection: {}", error_chain(&e)),
            );
        }
        if let Some(conn) = self.conns.get_mut(&slot) {
            conn.trust = BmcTrust::Refused {
                reason: format!("an operator rejected BMC identity {identity}"),
            };
        }
        self.event(
            Severity::Warning,
            Some(slot),
            format!(
                "operator rejected BMC {} in tray {slot}; it is not trusted",
                &identity[..16.min(identity.len())]
            ),
        );
        Ok(())
    }

    /// Forgets the enrollment key of the BMC in `slot`, which no longer proves it (a wiped
    /// BMC), and enrolls the identity it shows at its next hello: an operator's decision
    /// that this BMC is the one it claims to be. Refused for any BMC not in that state.
    pub fn forget(&mut self, slot: u32) -> Result<(), RmdError> {
        if !self.config.trays.iter().any(|t| t.slot == slot) {
            return Err(RmdError::NoTray(slot));
        }
        let Some(conn) = self.conns.get_mut(&slot) else {
            return Err(RmdError::Absent(slot));
        };
        // Only a BMC that cannot prove its key, or one an operator rejected: a trusted one
        // keeps its key, and a new one waits for approval.
        if !matches!(conn.trust, BmcTrust::Refused { .. }) {
            return Err(RmdError::Busy(format!(
                "the BMC in tray {slot} is not refused (it proves its key or waits for approval); there is no key to forget"
            )));
        }
        let serial = conn.link.serial();
        conn.link = racklet_mgmt_proto::link::RmcLink::new(serial, None);
        conn.trust = BmcTrust::Connecting;
        conn.reenroll = true;
        conn.hello_at = Some(Duration::ZERO);
        self.trust.enrolled.remove(&format!("{serial:016x}"));
        if let Err(e) = self.store.save(&self.trust) {
            self.event(
                Severity::Critical,
                Some(slot),
                format!("cannot persist the forgotten key: {}", error_chain(&e)),
            );
        }
        self.event(
            Severity::Warning,
            Some(slot),
            format!("operator forgot the enrollment key of BMC {serial:016x} in tray {slot}; enrolling the identity it shows next"),
        );
        Ok(())
    }

    pub fn trays(&self) -> Vec<TrayInfo> {
        self.config
            .trays
            .iter()
            .map(|t| {
                let conn = self.conns.get(&t.slot);
                let status = conn
                    .and_then(|c| c.status.as_ref())
                    .filter(|_| conn.is_some_and(|c| c.trust == BmcTrust::Trusted));
                let stale = conn
                    .is_some_and(|c| self.now.saturating_sub(c.status_at) > Duration::from_secs(2));
                let fresh = |r: Reading| {
                    if stale && matches!(r, Reading::Milli(_)) {
                        Reading::Stale
                    } else {
                        r
                    }
                };
                TrayInfo {
                    slot: t.slot,
                    name: t.name.clone(),
                    board: t.board.clone(),
                    bmc_serial: conn.map(|c| c.link.serial()),
                    trust: conn.map_or(BmcTrust::Absent, |c| c.trust.clone()),
                    power: status.map(|s| s.power),
                    faults: status.map_or(0, |s| s.faults),
                    power_milliwatts: status.map_or(Reading::Absent, |s| fresh(s.power_milliwatts)),
                    energy_millijoules: status.map_or(0, |s| s.energy_millijoules),
                    soc_millicelsius: status.map_or(Reading::Absent, |s| fresh(s.soc_millicelsius)),
                    frames_dropped: conn.map_or(0, |c| c.link.drops.total()),
                    firmware: conn
                        .filter(|c| c.trust == BmcTrust::Trusted)
                        .and_then(|c| c.firmware.clone()),
                    host_halted: status.is_some_and(|s| s.host_halted) && !stale,
                }
            })
            .collect()
    }

    pub fn fans(&self) -> Vec<FanInfo> {
        self.config
            .fans
            .iter()
            .enumerate()
            .map(|(i, f)| FanInfo {
                name: f.name.clone(),
                zone: f.zone.clone(),
                duty_percent: self.fan_duty[i] * 100.0,
                rpm: self.fan_rpm[i],
                override_reason: self.fan_override[i].clone(),
            })
            .collect()
    }

    /// The tray's boot override (the default until one is set).
    pub fn boot_override(&self, slot: u32) -> Result<BootOverride, RmdError> {
        if !self.config.trays.iter().any(|t| t.slot == slot) {
            return Err(RmdError::NoTray(slot));
        }
        Ok(self.boot.get(&slot).copied().unwrap_or_default())
    }

    /// Records the tray's boot override and persists it (the caller has already switched
    /// the BMC's boot mode). On a storage failure nothing changes.
    pub fn set_boot_override(&mut self, slot: u32, boot: BootOverride) -> Result<(), RmdError> {
        let old = self.boot_override(slot)?;
        if old == boot {
            return Ok(());
        }
        let mut next = self.boot.clone();
        next.insert(slot, boot);
        self.store
            .save_boot_overrides(&next)
            .map_err(|e| RmdError::Storage(error_chain(&e)))?;
        self.boot = next;
        self.event(
            Severity::Info,
            Some(slot),
            format!(
                "tray {slot} boot override: {} ({})",
                boot.target.as_redfish(),
                boot.enabled.as_redfish()
            ),
        );
        Ok(())
    }

    /// Events after sequence `since`, oldest first.
    pub fn events(&self, since: u64) -> Vec<Event> {
        self.events.since(since)
    }

    /// Changes whenever an event is logged; its value is the latest sequence number. It
    /// keeps working across [`DaemonCore::restart`].
    pub fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Empties the in-memory event log (the file keeps its history) and records that.
    pub fn clear_events(&mut self) {
        self.events.clear();
        self.event(Severity::Info, None, "event log cleared".into());
    }

    /// Frames dropped per tray, by reason.
    pub fn drops(&self) -> Vec<(u32, racklet_mgmt_proto::DropCounters)> {
        self.conns.iter().map(|(s, c)| (*s, c.link.drops)).collect()
    }
}

impl DaemonCore {
    /// Starts updating the firmware of the BMC in `slot` with a signed image: transfer
    /// over the link, verify, activate (the BMC reboots into it once), confirm.
    pub fn start_firmware_update(
        &mut self,
        slot: u32,
        image: Arc<Vec<u8>>,
        version: u32,
        signature: &[u8],
    ) -> Result<(), RmdError> {
        match self.conns.get(&slot).map(|c| &c.trust) {
            None => return Err(RmdError::Absent(slot)),
            Some(BmcTrust::Trusted) => {}
            Some(_) => return Err(RmdError::NotTrusted(slot)),
        }
        if self.firmware.as_ref().is_some_and(|j| j.stage.is_active()) {
            return Err(RmdError::Refused {
                slot,
                reason: "another firmware update is running".into(),
            });
        }
        let size = image.len();
        let job = FirmwareJob::new(slot, image, version, signature)?;
        self.event(
            Severity::Info,
            Some(slot),
            format!("firmware update of tray {slot} to version {version} started ({size} bytes)"),
        );
        self.firmware = Some(job);
        Ok(())
    }

    pub fn firmware_job(&self) -> Option<&FirmwareJob> {
        self.firmware.as_ref()
    }

    /// The latest firmware update as the API reports it.
    pub fn update_progress(&self) -> Option<UpdateProgress> {
        self.firmware.as_ref().map(FirmwareJob::progress)
    }

    /// Asks the BMC in `slot` to restart (its firmware; tray power stays as it is).
    pub fn reset_bmc(&mut self, slot: u32) -> Result<(u32, ReplyReceiver), RmdError> {
        if self
            .firmware
            .as_ref()
            .is_some_and(|j| j.slot == slot && j.stage.is_active())
        {
            return Err(RmdError::Busy(format!(
                "a firmware update of tray {slot} is running; restart its BMC after it ends"
            )));
        }
        self.request(slot, Request::Reboot)
    }

    /// Starts over from the data dir, as a restarted process would: every session is
    /// dropped and re-established, power states are read back, nothing is commanded.
    pub fn restart(&mut self) -> Result<(), RmdError> {
        if self.firmware.as_ref().is_some_and(|j| j.stage.is_active()) {
            return Err(RmdError::Busy(
                "a firmware update is running; restart the daemon after it ends".into(),
            ));
        }
        let mut fresh = DaemonCore::new(self.config.clone(), self.store.clone(), None)
            .map_err(|e| RmdError::Storage(error_chain(&e)))?;
        // Request ids keep counting, and whoever still waits hears that the daemon stopped,
        // so no caller can take the answer to someone else's later request.
        fresh.requests = RequestQueue::new(self.requests.next_id());
        self.requests.stop();
        // Event subscribers keep listening; the clock does not restart.
        fresh.events.take_subscribers(&self.events);
        fresh.now = self.now;
        *self = fresh;
        self.event(
            Severity::Info,
            None,
            "rack management daemon restarted on request".into(),
        );
        Ok(())
    }

    /// Feeds the firmware job one input and carries out what it asks for.
    fn firmware_input(&mut self, input: FirmwareInput) {
        let Some(job) = self.firmware.as_mut() else {
            return;
        };
        let slot = job.slot;
        for action in job.on(input) {
            match action {
                FirmwareAction::Log(severity, message) => self.event(severity, Some(slot), message),
                FirmwareAction::Greet => self.greet_again(slot),
            }
        }
    }

    /// Sends the firmware job's next request once its BMC is in session.
    fn drive_firmware(&mut self) {
        let Some(job) = self.firmware.as_ref() else {
            return;
        };
        let slot = job.slot;
        if self.conns.get(&slot).map(|c| &c.trust) != Some(&BmcTrust::Trusted) {
            return; // wait for the session (e.g. after the reboot)
        }
        let Some(request) = job.next_request() else {
            return;
        };
        let id = self.queue(slot, request, None);
        if let Some(job) = self.firmware.as_mut() {
            job.sent(id);
        }
    }

    /// Fails requests that got no answer in time; an expired firmware step fails the job,
    /// an expired thermal shutdown is tried again.
    fn expire_pending(&mut self) {
        for expired in self.requests.expire(self.now) {
            if let Some(conn) = self.conns.get_mut(&expired.slot) {
                conn.shutdown_sent = false;
            }
            if self
                .firmware
                .as_ref()
                .is_some_and(|j| j.awaiting() == Some(expired.id))
            {
                self.firmware_input(FirmwareInput::NoAnswer);
            }
        }
    }
}

pub(crate) use racklet_rmd_api::error_chain;
