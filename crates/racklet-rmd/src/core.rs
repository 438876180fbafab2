//! The daemon's logic, synchronous and clock-agnostic: each [`DaemonCore::step`] reads the
//! hub, talks to the BMCs, runs the fan loop and records events. The async runner (and
//! tests, on the twin's virtual clock) call it periodically.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use racklet_hal::{Indicator, PortState};
use racklet_mgmt_proto::link::{LinkKey, RmcEvent, RmcLink};
use racklet_mgmt_proto::message::{
    BmcStatus, ErrorCode, PowerAction, PowerState, Reading, Request, RequestEnvelope, Response,
};
use racklet_mgmt_proto::FrameReader;
use racklet_model::board::BoardThermal;
use racklet_rmd_api::{
    BmcFirmware, BmcTrust, Event, FanInfo, RmdError, Severity, TrayInfo, UpdateProgress, UpdateStep,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::backplane::Backplane;
use crate::fan::{FanTuning, Override, TrayThermal, ZoneController};
use crate::store::{Enrolled, Store, StoreError, TrustState};

/// How often each trusted BMC is asked for its status.
pub const STATUS_EVERY: Duration = Duration::from_millis(250);
/// How often the fan loop runs (about 10 Hz).
pub const FAN_EVERY: Duration = Duration::from_millis(100);
/// A hello without an answer is sent again after this long.
pub const HELLO_RETRY: Duration = Duration::from_secs(2);
/// A request without an answer fails after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Events kept in memory.
const EVENTS_KEPT: usize = 10_000;

/// One tray slot as configured.
#[derive(Debug, Clone)]
pub struct TraySpec {
    pub slot: u32,
    pub name: Option<String>,
    pub board: Option<String>,
    pub thermal: Option<BoardThermal>,
}

/// One fan as configured.
#[derive(Debug, Clone)]
pub struct FanSpec {
    pub name: String,
    pub zone: String,
}

/// A fan zone.
#[derive(Debug, Clone)]
pub struct ZoneSpec {
    pub name: String,
    pub trays: Vec<u32>,
}

/// How one daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub chassis: String,
    pub trays: Vec<TraySpec>,
    pub fans: Vec<FanSpec>,
    pub zones: Vec<ZoneSpec>,
    pub tuning: FanTuning,
    /// Identities (hex) approved before start, e.g. by the tool that provisioned them.
    pub pre_approved: Vec<String>,
}

impl DaemonConfig {
    /// The configuration of `chassis` from validated manifests.
    pub fn from_manifests(set: &racklet_model::ManifestSet, chassis: &str) -> Option<DaemonConfig> {
        let ch = set.chassis_named(chassis)?;
        let trays = (1..=ch.spec.trays.count)
            .map(|slot| {
                let cu = set
                    .compute_units()
                    .map(|(_, c)| c)
                    .find(|c| c.spec.chassis == chassis && c.spec.tray == slot);
                let board = cu.and_then(|c| set.board(&c.spec.board));
                TraySpec {
                    slot,
                    name: cu.map(|c| c.name().to_string()),
                    board: cu.map(|c| c.spec.board.clone()),
                    thermal: board.map(|b| b.spec.thermal.clone()),
                }
            })
            .collect();
        Some(DaemonConfig {
            chassis: chassis.into(),
            trays,
            fans: ch
                .spec
                .fans
                .iter()
                .map(|f| FanSpec {
                    name: f.name.clone(),
                    zone: f.zone.clone(),
                })
                .collect(),
            zones: ch
                .spec
                .fan_zones
                .iter()
                .map(|z| ZoneSpec {
                    name: z.name.clone(),
                    trays: z.trays.clone(),
                })
                .collect(),
            tuning: FanTuning::default(),
            pre_approved: Vec::new(),
        })
    }
}

/// What the daemon knows of the BMC on one port.
struct Conn {
    link: RmcLink,
    reader: FrameReader,
    trust: BmcTrust,
    identity: Option<[u8; 32]>,
    hello_at: Option<Duration>,
    status: Option<BmcStatus>,
    status_at: Duration,
    status_asked: Option<Duration>,
    shutdown_sent: bool,
    firmware: Option<BmcFirmware>,
}

struct Pending {
    slot: u32,
    queued_at: Duration,
    sent_at: Option<Duration>,
    request: Request,
    /// Where the answer goes, for requests an API caller waits for.
    reply: Option<ReplySender>,
}

/// The answer to one request, as an API caller receives it.
pub type ReplySender = tokio::sync::oneshot::Sender<Result<Response, RmdError>>;
/// The receiving end of [`ReplySender`].
pub type ReplyReceiver = tokio::sync::oneshot::Receiver<Result<Response, RmdError>>;

/// The rack management daemon's state for one chassis.
pub struct DaemonCore {
    config: DaemonConfig,
    store: Store,
    trust: TrustState,
    conns: BTreeMap<u32, Conn>,
    rng: ChaCha20Rng,
    next_id: u32,
    pending: HashMap<u32, Pending>,
    zones: Vec<ZoneController>,
    fan_duty: Vec<f64>,
    fan_rpm: Vec<Option<u32>>,
    fan_override: Vec<Option<String>>,
    last_fan: Option<Duration>,
    events: Vec<Event>,
    next_event: u64,
    now: Duration,
    started: bool,
    firmware: Option<FirmwareJob>,
    shown: HashMap<u32, Indicator>,
    identify: std::collections::BTreeSet<u32>,
}

/// Where a BMC firmware update stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareStage {
    Transferring {
        sent: u32,
        size: u32,
    },
    Verifying,
    Activating,
    /// The BMC reboots into the new slot; the daemon waits for it to come back.
    Rebooting,
    Confirmed {
        version: u32,
    },
    Failed(String),
}

impl FirmwareStage {
    pub fn is_active(&self) -> bool {
        !matches!(
            self,
            FirmwareStage::Confirmed { .. } | FirmwareStage::Failed(_)
        )
    }
}

/// One BMC firmware update, driven a request at a time.
#[derive(Debug, Clone)]
pub struct FirmwareJob {
    pub slot: u32,
    image: std::sync::Arc<Vec<u8>>,
    version: u32,
    signature: heapless::Vec<u8, 64>,
    pub stage: FirmwareStage,
    begun: bool,
    awaiting: Option<u32>,
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
        let (events, last_event) = store.load_events(EVENTS_KEPT)?;
        let next_event = last_event + 1;
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
            next_id: 1,
            pending: HashMap::new(),
            fan_duty: vec![0.0; fans],
            fan_rpm: vec![None; fans],
            fan_override: vec![None; fans],
            last_fan: None,
            events,
            next_event,
            now: Duration::ZERO,
            started: false,
            firmware: None,
            shown: HashMap::new(),
            identify: std::collections::BTreeSet::new(),
        })
    }

    pub fn config(&self) -> &DaemonConfig {
        &self.config
    }

    fn event(&mut self, severity: Severity, slot: Option<u32>, message: String) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let e = Event {
            sequence: self.next_event,
            unix_ms,
            severity,
            slot,
            message,
        };
        self.next_event += 1;
        tracing::info!(chassis = %self.config.chassis, ?severity, slot, "{}", e.message);
        if let Ok(line) = serde_json::to_string(&e) {
            if let Err(err) = self.store.append_event(&line) {
                tracing::warn!("{err}");
            }
        }
        if self.events.len() >= EVENTS_KEPT {
            self.events.remove(0);
        }
        self.events.push(e);
    }

    fn key_for(&self, serial: u64) -> Option<LinkKey> {
        let e = self.trust.enrolled.get(&format!("{serial:016x}"))?;
        hex::decode(&e.key).ok()?.try_into().ok()
    }

    fn attach(&mut self, slot: u32, serial: u64, bp: &mut impl Backplane) {
        let key = self.key_for(serial);
        self.conns.insert(
            slot,
            Conn {
                link: RmcLink::new(serial, key),
                reader: FrameReader::default(),
                trust: BmcTrust::Connecting,
                identity: None,
                hello_at: None,
                status: None,
                status_at: Duration::ZERO,
                status_asked: None,
                shutdown_sent: false,
                firmware: None,
            },
        );
        self.send_hello(slot, bp);
    }

    fn send_hello(&mut self, slot: u32, bp: &mut impl Backplane) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&slot) else {
            return;
        };
        if let Some(frame) = conn.link.hello(&mut self.rng) {
            conn.hello_at = Some(now);
            let _ = bp.write(slot as u8, &frame);
        }
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
                    self.fail_pending(slot, RmdError::Absent(slot));
                    // A BMC rebooting into new firmware re-enumerates on USB: that detach is
                    // expected. Anything else ends the update.
                    let affected = self.firmware.as_ref().is_some_and(|j| {
                        j.slot == slot && j.stage.is_active() && j.stage != FirmwareStage::Rebooting
                    });
                    if affected {
                        self.fail_firmware(
                            "the BMC detached during the update; its running slot is unchanged"
                                .into(),
                        );
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

    fn pump(&mut self, slot: u32, bp: &mut impl Backplane) {
        let bytes = match bp.read(slot as u8) {
            Ok(b) => b,
            Err(_) => return,
        };
        let mut frames = Vec::new();
        if let Some(conn) = self.conns.get_mut(&slot) {
            for b in bytes {
                match conn.reader.push(b) {
                    Some(Ok(f)) => frames.push(f),
                    Some(Err(d)) => conn.link.drops.count(d),
                    None => {}
                }
            }
        }
        for frame in frames {
            let Some(conn) = self.conns.get_mut(&slot) else {
                return;
            };
            match conn.link.receive(&frame) {
                RmcEvent::Hello { ack, session } => self.on_hello(slot, ack, session, bp),
                RmcEvent::Enrolled { key } => self.on_enrolled(slot, key, bp),
                RmcEvent::Response(r) => self.on_response(slot, r),
                RmcEvent::Dropped(d) => {
                    if d == racklet_mgmt_proto::Drop::Tampered {
                        self.event(
                            Severity::Warning,
                            Some(slot),
                            "dropped a frame that failed authentication".into(),
                        );
                    }
                }
            }
        }
    }

    fn on_hello(
        &mut self,
        slot: u32,
        ack: racklet_mgmt_proto::link::HelloAck,
        session: bool,
        bp: &mut impl Backplane,
    ) {
        let identity = hex::encode(ack.identity);
        let Some(conn) = self.conns.get_mut(&slot) else {
            return;
        };
        conn.identity = Some(ack.identity);
        conn.hello_at = None;
        if session {
            let was = std::mem::replace(&mut conn.trust, BmcTrust::Trusted);
            conn.status_asked = None;
            if was != BmcTrust::Trusted {
                self.event(
                    Severity::Info,
                    Some(slot),
                    format!(
                        "BMC in tray {slot} is trusted (identity {})",
                        &identity[..16]
                    ),
                );
            }
            // The first request makes the session live on the BMC.
            self.queue(slot, Request::Status, None);
            self.queue(slot, Request::Inventory, None);
            return;
        }
        let serial = conn.link.serial();
        if self.key_for(serial).is_some() {
            // We hold a key for this BMC but it answered without proving it: a wiped BMC
            // or an impostor. Trust nothing; keep asking.
            let Some(conn) = self.conns.get_mut(&slot) else {
                return;
            };
            conn.trust = BmcTrust::Connecting;
            conn.hello_at = Some(self.now);
            self.event(
                Severity::Warning,
                Some(slot),
                format!("BMC {serial:016x} in tray {slot} no longer proves its enrollment key; if it was wiped, forget its key to enroll it again"),
            );
            return;
        }
        let approved = self.trust.approved.contains(&identity);
        let Some(conn) = self.conns.get_mut(&slot) else {
            return;
        };
        conn.trust = BmcTrust::PendingApproval {
            identity: identity.clone(),
            enrolled_elsewhere: ack.enrolled && !ack.enrollment_open,
        };
        if approved && ack.enrollment_open {
            if let Some(frame) = conn.link.enroll(ack.identity, &mut self.rng) {
                let _ = bp.write(slot as u8, &frame);
            }
            self.event(
                Severity::Info,
                Some(slot),
                format!("enrolling approved BMC {} in tray {slot}", &identity[..16]),
            );
        } else if !approved {
            self.event(
                Severity::Warning,
                Some(slot),
                format!("unknown BMC in tray {slot} (identity {identity}) waits for approval; it is not trusted until then"),
            );
        } else {
            self.event(
                Severity::Warning,
                Some(slot),
                format!("BMC {} in tray {slot} is enrolled with another rack manager; re-open enrollment on the BMC to move it here", &identity[..16]),
            );
        }
    }

    fn on_enrolled(&mut self, slot: u32, key: LinkKey, bp: &mut impl Backplane) {
        let Some(conn) = self.conns.get(&slot) else {
            return;
        };
        let serial = conn.link.serial();
        let identity = conn.identity.map(hex::encode).unwrap_or_default();
        self.trust.enrolled.insert(
            format!("{serial:016x}"),
            Enrolled {
                key: hex::encode(key),
                identity: identity.clone(),
            },
        );
        if let Err(e) = self.store.save(&self.trust) {
            self.event(
                Severity::Critical,
                Some(slot),
                format!("cannot persist enrollment: {e}"),
            );
            return;
        }
        self.event(
            Severity::Info,
            Some(slot),
            format!(
                "BMC {} in tray {slot} enrolled",
                &identity[..identity.len().min(16)]
            ),
        );
        self.send_hello(slot, bp);
    }

    fn on_response(&mut self, slot: u32, r: racklet_mgmt_proto::message::ResponseEnvelope) {
        // Only an answer to a request this tray was sent counts; ids are not secrets, so
        // a BMC must not settle another tray's requests.
        let Some(p) = self
            .pending
            .get(&r.id)
            .filter(|p| p.slot == slot && p.sent_at.is_some())
        else {
            return;
        };
        let p_request = p.request.clone();
        let reply = self.pending.remove(&r.id).and_then(|p| p.reply);
        let now = self.now;
        if let Response::Error(_) = &r.response {
            if let Some(conn) = self.conns.get_mut(&slot) {
                conn.shutdown_sent = false; // a refused thermal shutdown is tried again
            }
        }
        if let Response::Inventory(inv) = &r.response {
            if let Some(conn) = self.conns.get_mut(&slot) {
                conn.firmware = Some(BmcFirmware {
                    version: inv.firmware_version,
                    slot: match inv.active_slot {
                        racklet_mgmt_proto::message::Slot::A => 'A',
                        racklet_mgmt_proto::message::Slot::B => 'B',
                    },
                    trial: inv.trial,
                });
            }
        }
        let rebooted = matches!((&p_request, &r.response), (Request::Reboot, Response::Ack));
        if rebooted {
            // The BMC restarts now: its session ends. Greet it again.
            if let Some(conn) = self.conns.get_mut(&slot) {
                conn.trust = BmcTrust::Connecting;
                conn.hello_at = Some(Duration::ZERO);
            }
            self.event(
                Severity::Info,
                Some(slot),
                format!("tray {slot}'s BMC restarts on request"),
            );
        }
        if let Response::Status(s) = &r.response {
            if let Some(conn) = self.conns.get_mut(&slot) {
                if conn.status.as_ref().map(|o| o.power) != Some(s.power) {
                    let msg = format!("tray {slot} power state {:?}", s.power);
                    conn.status = Some(s.clone());
                    conn.status_at = now;
                    self.event(Severity::Info, Some(slot), msg);
                } else {
                    conn.status = Some(s.clone());
                    conn.status_at = now;
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(&slot) {
            conn.status_asked = None;
        }
        if self
            .firmware
            .as_ref()
            .is_some_and(|j| j.awaiting == Some(r.id))
        {
            self.firmware_response(r.response.clone());
        }
        if let Some(reply) = reply {
            let result = match r.response {
                Response::Error(code) => Err(RmdError::Refused {
                    slot,
                    reason: refusal(code).into(),
                }),
                other => Ok(other),
            };
            // The caller may have given up; then nobody listens, which is fine.
            let _ = reply.send(result);
        }
    }

    fn keep_alive(&mut self, slot: u32, bp: &mut impl Backplane) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&slot) else {
            return;
        };
        if conn
            .hello_at
            .is_some_and(|t| now.saturating_sub(t) >= HELLO_RETRY)
        {
            self.send_hello(slot, bp);
            return;
        }
        let due = conn.trust == BmcTrust::Trusted
            && conn.status_asked.is_none()
            && now.saturating_sub(conn.status_at) >= STATUS_EVERY;
        if due {
            conn.status_asked = Some(now);
            self.queue(slot, Request::Status, None);
        } else if conn
            .status_asked
            .is_some_and(|t| now.saturating_sub(t) >= HELLO_RETRY)
        {
            // The BMC stopped answering (it may have reset): start a new session.
            conn.status_asked = None;
            self.send_hello(slot, bp);
        }
    }

    fn queue(&mut self, slot: u32, request: Request, reply: Option<ReplySender>) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.pending.insert(
            id,
            Pending {
                slot,
                queued_at: self.now,
                sent_at: None,
                request,
                reply,
            },
        );
        id
    }

    fn send_pending(&mut self, bp: &mut impl Backplane) {
        let now = self.now;
        for (id, p) in self.pending.iter_mut().filter(|(_, p)| p.sent_at.is_none()) {
            let Some(conn) = self.conns.get_mut(&p.slot) else {
                continue;
            };
            if conn.trust != BmcTrust::Trusted {
                continue;
            }
            if let Some(frame) = conn.link.request(&RequestEnvelope {
                id: *id,
                request: p.request.clone(),
            }) {
                if bp.write(p.slot as u8, &frame).is_ok() {
                    p.sent_at = Some(now);
                }
            }
        }
    }

    fn expire_pending(&mut self) {
        let now = self.now;
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                now.saturating_sub(p.sent_at.unwrap_or(p.queued_at)) >= REQUEST_TIMEOUT
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                if let Some(reply) = p.reply {
                    let _ = reply.send(Err(RmdError::Timeout(p.slot)));
                }
                if let Some(conn) = self.conns.get_mut(&p.slot) {
                    conn.shutdown_sent = false; // an unanswered thermal shutdown is tried again
                }
                if self
                    .firmware
                    .as_ref()
                    .is_some_and(|j| j.awaiting == Some(id))
                {
                    self.fail_firmware("the BMC stopped answering during the update".into());
                }
            }
        }
    }

    fn fail_pending(&mut self, slot: u32, err: RmdError) {
        let ids: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.slot == slot)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(p) = self.pending.remove(&id) {
                if let Some(reply) = p.reply {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    fn thermal_of(&self, slot: u32) -> Option<TrayThermal> {
        let spec = self.config.trays.iter().find(|t| t.slot == slot)?;
        let thermal = spec.thermal.as_ref()?;
        let conn = self.conns.get(&slot)?;
        let status = conn.status.as_ref();
        // Only trays that are powered heat up; their sensors must be fresh.
        let powered = status.is_some_and(|s| {
            matches!(
                s.power,
                PowerState::On | PowerState::PoweringOn | PowerState::GracefulShutdown
            )
        });
        let trusted = conn.trust == BmcTrust::Trusted;
        let age = self.now.saturating_sub(conn.status_at).as_secs_f64();
        let fresh = status.is_some() && age <= self.config.tuning.stale_after;
        // A tray known to be off does not heat; one whose BMC went quiet is unknown.
        if trusted && fresh && !powered {
            return None;
        }
        let celsius = match status.map(|s| s.soc_millicelsius) {
            Some(Reading::Milli(m)) if trusted => Some((m as f64 / 1000.0, age)),
            _ => None,
        };
        Some(TrayThermal {
            slot,
            celsius,
            throttle_celsius: thermal.throttle_celsius,
            shutdown_celsius: thermal.limit_celsius,
        })
    }

    fn fan_loop(&mut self, dt: f64, bp: &mut impl Backplane) {
        let zones = self.config.zones.clone();
        for (zi, zone) in zones.iter().enumerate() {
            let trays: Vec<TrayThermal> = zone
                .trays
                .iter()
                .filter_map(|s| self.thermal_of(*s))
                .collect();
            let decision = self.zones[zi].decide(&self.config.tuning, &trays, dt);
            for slot in decision.shutdown {
                let sent = self.conns.get(&slot).is_some_and(|c| c.shutdown_sent);
                if !sent {
                    if let Some(c) = self.conns.get_mut(&slot) {
                        c.shutdown_sent = true;
                    }
                    self.event(
                        Severity::Critical,
                        Some(slot),
                        format!("tray {slot} is above its shutdown temperature: powering it off"),
                    );
                    self.queue(slot, Request::Power(PowerAction::ForceOff), None);
                }
            }
            let reason = decision.override_.map(|o| match o {
                Override::SensorSilent(s) => {
                    format!("failsafe: tray {s}'s temperature is silent or stale")
                }
                Override::Critical(s) => format!("full speed: tray {s} is at its throttle point"),
            });
            for (fi, fan) in self.config.fans.clone().iter().enumerate() {
                if fan.zone != zone.name {
                    continue;
                }
                if self.fan_override[fi] != reason {
                    if let Some(r) = &reason {
                        self.event(Severity::Warning, None, format!("zone {}: {r}", zone.name));
                    }
                    self.fan_override[fi] = reason.clone();
                }
                self.fan_duty[fi] = decision.duty;
                bp.set_fan_duty(fi, decision.duty);
                self.fan_rpm[fi] = bp.fan_rpm(fi).ok();
            }
        }
        for c in self.conns.values_mut() {
            if c.status
                .as_ref()
                .is_some_and(|s| s.power == PowerState::Off)
            {
                c.shutdown_sent = false;
            }
        }
        self.indicators(bp);
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
        if self.pending.get(&id).is_some_and(|p| p.sent_at.is_none()) {
            self.pending.remove(&id);
        }
    }

    /// Approves the BMC with this identity (hex); enrollment starts at the next hello.
    pub fn approve(&mut self, identity: &str) -> Result<(), RmdError> {
        let identity = identity.to_ascii_lowercase();
        let slot = self
            .conns
            .iter()
            .find(|(_, c)| matches!(&c.trust, BmcTrust::PendingApproval { identity: i, .. } if *i == identity))
            .map(|(s, _)| *s)
            .ok_or_else(|| RmdError::UnknownIdentity(identity.clone()))?;
        if !self.trust.approved.contains(&identity) {
            self.trust.approved.push(identity.clone());
            if let Err(e) = self.store.save(&self.trust) {
                self.event(
                    Severity::Critical,
                    Some(slot),
                    format!("cannot persist approval: {e}"),
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

    pub fn events(&self, since: u64) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.sequence > since)
            .cloned()
            .collect()
    }

    /// Turns a tray's identify (locate) indicator on or off.
    pub fn set_identify(&mut self, slot: u32, on: bool) -> Result<(), RmdError> {
        if !self.config.trays.iter().any(|t| t.slot == slot) {
            return Err(RmdError::NoTray(slot));
        }
        if on {
            self.identify.insert(slot);
        } else {
            self.identify.remove(&slot);
        }
        Ok(())
    }

    pub fn identify(&self, slot: u32) -> bool {
        self.identify.contains(&slot)
    }

    /// Empties the in-memory event log (the file keeps its history) and records that.
    pub fn clear_events(&mut self) {
        self.events.clear();
        if let Err(e) = self.store.mark_cleared(self.next_event - 1) {
            tracing::warn!("{e}");
        }
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
        image: std::sync::Arc<Vec<u8>>,
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
        let signature = heapless::Vec::from_slice(signature).map_err(|_| RmdError::Refused {
            slot,
            reason: "a signature is 64 bytes".into(),
        })?;
        let size = u32::try_from(image.len()).map_err(|_| RmdError::Refused {
            slot,
            reason: "image too large".into(),
        })?;
        self.event(
            Severity::Info,
            Some(slot),
            format!("firmware update of tray {slot} to version {version} started ({size} bytes)"),
        );
        self.firmware = Some(FirmwareJob {
            slot,
            image,
            version,
            signature,
            stage: FirmwareStage::Transferring { sent: 0, size },
            begun: false,
            awaiting: None,
        });
        Ok(())
    }

    pub fn firmware_job(&self) -> Option<&FirmwareJob> {
        self.firmware.as_ref()
    }

    /// The latest firmware update as the API reports it.
    pub fn update_progress(&self) -> Option<UpdateProgress> {
        let job = self.firmware.as_ref()?;
        let (step, percent) = match &job.stage {
            // The transfer is most of the time: 0–80 %, then 85, 90, 100.
            FirmwareStage::Transferring { sent, size } => (
                UpdateStep::Transferring,
                (u64::from(*sent) * 80 / u64::from((*size).max(1))) as u8,
            ),
            FirmwareStage::Verifying => (UpdateStep::Verifying, 80),
            FirmwareStage::Activating => (UpdateStep::Activating, 85),
            FirmwareStage::Rebooting => (UpdateStep::Rebooting, 90),
            FirmwareStage::Confirmed { .. } => (UpdateStep::Confirmed, 100),
            FirmwareStage::Failed(reason) => (UpdateStep::Failed(reason.clone()), 100),
        };
        Some(UpdateProgress {
            slot: job.slot,
            version: job.version,
            step,
            percent,
        })
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
            .map_err(|e| RmdError::Storage(e.to_string()))?;
        // Request ids keep counting, and whoever still waits hears that the daemon stopped,
        // so no caller can take the answer to someone else's later request.
        fresh.next_id = self.next_id;
        for (_, p) in self.pending.drain() {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(RmdError::Stopped));
            }
        }
        *self = fresh;
        self.event(
            Severity::Info,
            None,
            "rack management daemon restarted on request".into(),
        );
        Ok(())
    }

    fn fail_firmware(&mut self, reason: String) {
        let Some(job) = self.firmware.as_mut() else {
            return;
        };
        let slot = job.slot;
        job.stage = FirmwareStage::Failed(reason.clone());
        job.awaiting = None;
        self.event(
            Severity::Warning,
            Some(slot),
            format!("firmware update of tray {slot} failed: {reason}"),
        );
    }

    fn drive_firmware(&mut self) {
        let Some(job) = self.firmware.as_ref() else {
            return;
        };
        if job.awaiting.is_some() || !job.stage.is_active() {
            return;
        }
        let slot = job.slot;
        if self.conns.get(&slot).map(|c| &c.trust) != Some(&BmcTrust::Trusted) {
            return; // wait for the session (e.g. after the reboot)
        }
        let request = match &job.stage {
            FirmwareStage::Transferring { sent, size } => {
                if !job.begun {
                    Request::FirmwareBegin {
                        size: *size,
                        version: job.version,
                    }
                } else if sent < size {
                    let end = (*sent as usize + racklet_mgmt_proto::message::FIRMWARE_CHUNK)
                        .min(*size as usize);
                    let data = heapless::Vec::from_slice(&job.image[*sent as usize..end])
                        .unwrap_or_default();
                    Request::FirmwareChunk {
                        offset: *sent,
                        data,
                    }
                } else {
                    Request::FirmwareFinish {
                        signature: job.signature.clone(),
                    }
                }
            }
            FirmwareStage::Verifying => Request::FirmwareFinish {
                signature: job.signature.clone(),
            },
            FirmwareStage::Activating => Request::FirmwareActivate,
            FirmwareStage::Rebooting => Request::FirmwareConfirm,
            FirmwareStage::Confirmed { .. } | FirmwareStage::Failed(_) => return,
        };
        let id = self.queue(slot, request, None);
        if let Some(job) = self.firmware.as_mut() {
            job.awaiting = Some(id);
        }
    }

    fn firmware_response(&mut self, response: Response) {
        let Some(job) = self.firmware.as_mut() else {
            return;
        };
        job.awaiting = None;
        let slot = job.slot;
        let version = job.version;
        match (&job.stage, response) {
            (_, Response::Error(code)) => {
                let reason = refusal(code).to_string();
                self.fail_firmware(reason);
            }
            (FirmwareStage::Transferring { sent, size }, Response::Ack) => {
                let (sent, size) = (*sent, *size);
                if !job.begun {
                    job.begun = true;
                } else if sent < size {
                    let chunk = racklet_mgmt_proto::message::FIRMWARE_CHUNK as u32;
                    job.stage = FirmwareStage::Transferring {
                        sent: (sent + chunk).min(size),
                        size,
                    };
                } else {
                    job.stage = FirmwareStage::Activating;
                }
            }
            (FirmwareStage::Verifying, Response::Ack) => job.stage = FirmwareStage::Activating,
            (FirmwareStage::Activating, Response::Ack) => {
                job.stage = FirmwareStage::Rebooting;
                // The BMC resets now: its session ends. Greet the new firmware.
                if let Some(conn) = self.conns.get_mut(&slot) {
                    conn.trust = BmcTrust::Connecting;
                    conn.hello_at = Some(Duration::ZERO);
                }
                self.event(
                    Severity::Info,
                    Some(slot),
                    format!("tray {slot}'s BMC reboots into firmware {version}"),
                );
            }
            (FirmwareStage::Rebooting, Response::Inventory(inv)) => {
                if inv.firmware_version == version && !inv.trial {
                    job.stage = FirmwareStage::Confirmed { version };
                    self.event(
                        Severity::Info,
                        Some(slot),
                        format!("tray {slot}'s BMC runs and confirmed firmware {version}"),
                    );
                } else {
                    self.fail_firmware(format!(
                        "the BMC came back with firmware {}, not {version}",
                        inv.firmware_version
                    ));
                }
            }
            (_, other) => {
                let reason = format!("unexpected answer {other:?}");
                self.fail_firmware(reason);
            }
        }
    }
}

impl DaemonCore {
    /// What each tray's front indicator should show.
    pub fn indicator(&self, slot: u32) -> Indicator {
        // A person asked to find this tray: that wins over every status colour.
        if self.identify.contains(&slot) {
            return Indicator::Identify;
        }
        let Some(conn) = self.conns.get(&slot) else {
            return Indicator::Off;
        };
        match (&conn.trust, conn.status.as_ref()) {
            (BmcTrust::PendingApproval { .. }, _) => Indicator::Attention,
            (BmcTrust::Trusted, Some(s)) if s.faults != 0 || s.power == PowerState::Fault => {
                Indicator::Attention
            }
            (BmcTrust::Trusted, Some(s)) if s.power != PowerState::Off => Indicator::Ok,
            _ => Indicator::Off,
        }
    }

    fn indicators(&mut self, bp: &mut impl Backplane) {
        for t in &self.config.trays {
            let want = self.indicator(t.slot);
            if self.shown.get(&t.slot) != Some(&want) {
                bp.set_indicator(t.slot, want);
                self.shown.insert(t.slot, want);
            }
        }
    }
}

fn refusal(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidState => {
            "not possible in the current state (a latched fault? clear it first)"
        }
        ErrorCode::BadRequest => "bad request",
        ErrorCode::BadSignature => "the firmware signature does not verify",
        ErrorCode::BadImage => "the firmware image is incomplete or too large",
        ErrorCode::Rollback => "the firmware is older than the BMC allows",
    }
}
