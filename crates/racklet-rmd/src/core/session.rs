//! Sessions: what the daemon knows of the BMC on each hub port (its link, trust, latest
//! status and firmware) and how that changes: attach and hello, enrollment of approved
//! identities, answers (status, inventory, reboots), keep-alive status polling, and the
//! sealing of queued requests onto the link.

use std::io;
use std::time::Duration;

use racklet_mgmt_proto::link::{LinkKey, RmcEvent, RmcLink};
use racklet_mgmt_proto::message::{BmcStatus, Request, Response};
use racklet_mgmt_proto::FrameReader;
use racklet_rmd_api::{BmcFirmware, BmcTrust, Severity};

use super::firmware::Input;
use super::DaemonCore;
use crate::backplane::Backplane;
use crate::store::Enrolled;

/// How often each trusted BMC is asked for its status.
pub const STATUS_EVERY: Duration = Duration::from_millis(250);
/// A hello without an answer is sent again after this long.
pub const HELLO_RETRY: Duration = Duration::from_secs(2);

/// The hub port of `slot`. Connections are attached from `u8` ports, so this fails only
/// for a slot no BMC can be on.
fn port(slot: u32) -> io::Result<u8> {
    u8::try_from(slot)
        .map_err(|_| io::Error::new(io::ErrorKind::NotFound, format!("no hub port {slot}")))
}

/// What the daemon knows of the BMC on one port.
pub(super) struct Conn {
    pub(super) link: RmcLink,
    pub(super) reader: FrameReader,
    pub(super) trust: BmcTrust,
    pub(super) identity: Option<[u8; 32]>,
    pub(super) hello_at: Option<Duration>,
    pub(super) status: Option<BmcStatus>,
    pub(super) status_at: Duration,
    pub(super) status_asked: Option<Duration>,
    pub(super) shutdown_sent: bool,
    pub(super) firmware: Option<BmcFirmware>,
    /// An operator forgot this BMC's key: enroll the identity it shows next.
    pub(super) reenroll: bool,
}

impl DaemonCore {
    pub(super) fn key_for(&self, serial: u64) -> Option<LinkKey> {
        let e = self.trust.enrolled.get(&format!("{serial:016x}"))?;
        hex::decode(&e.key).ok()?.try_into().ok()
    }

    pub(super) fn attach(&mut self, slot: u32, serial: u64, bp: &mut impl Backplane) {
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
                reenroll: false,
            },
        );
        self.send_hello(slot, bp);
    }

    pub(super) fn send_hello(&mut self, slot: u32, bp: &mut impl Backplane) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&slot) else {
            return;
        };
        if let Some(frame) = conn.link.hello(&mut self.rng) {
            conn.hello_at = Some(now);
            let _ = port(slot).and_then(|p| bp.write(p, &frame));
        }
    }

    pub(super) fn pump(&mut self, slot: u32, bp: &mut impl Backplane) {
        let bytes = match port(slot).and_then(|p| bp.read(p)) {
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
            let reason = format!("BMC {serial:016x} no longer proves its enrollment key");
            let repeated = conn.trust
                == (BmcTrust::Refused {
                    reason: reason.clone(),
                });
            conn.trust = BmcTrust::Refused { reason };
            conn.hello_at = Some(self.now);
            if repeated {
                return; // said once; the status shows it for as long as it lasts
            }
            self.event(
                Severity::Warning,
                Some(slot),
                format!("BMC {serial:016x} in tray {slot} no longer proves its enrollment key; if it was wiped, enroll it again with `racklet bmc forget NODE` (Redfish: Manager.ResetToDefaults on Managers/bmc-{slot})"),
            );
            return;
        }
        let reenroll = self.conns.get(&slot).is_some_and(|c| c.reenroll);
        if !reenroll && self.trust.rejected.contains(&identity) {
            let Some(conn) = self.conns.get_mut(&slot) else {
                return;
            };
            let reason = format!("an operator rejected BMC identity {identity}");
            let repeated = conn.trust
                == BmcTrust::Refused {
                    reason: reason.clone(),
                };
            conn.trust = BmcTrust::Refused { reason };
            conn.hello_at = Some(self.now);
            if !repeated {
                self.event(
                    Severity::Warning,
                    Some(slot),
                    format!("BMC in tray {slot} shows identity {} that an operator rejected; it is not trusted (to trust it after all: Manager.ResetToDefaults on Managers/bmc-{slot})", &identity[..16]),
                );
            }
            return;
        }
        if reenroll && !self.trust.approved.contains(&identity) {
            // The operator's ResetToDefaults: trusted now, even if rejected before.
            self.trust.rejected.retain(|r| *r != identity);
            self.trust.approved.push(identity.clone());
            if let Err(e) = self.store.save(&self.trust) {
                self.event(
                    Severity::Critical,
                    Some(slot),
                    format!("cannot persist approval: {}", super::error_chain(&e)),
                );
            }
        }
        let approved = self.trust.approved.contains(&identity);
        let Some(conn) = self.conns.get_mut(&slot) else {
            return;
        };
        conn.reenroll = false;
        conn.trust = BmcTrust::PendingApproval {
            identity: identity.clone(),
            enrolled_elsewhere: ack.enrolled && !ack.enrollment_open,
        };
        if approved && ack.enrollment_open {
            if let Some(frame) = conn.link.enroll(ack.identity, &mut self.rng) {
                let _ = port(slot).and_then(|p| bp.write(p, &frame));
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
                format!("cannot persist enrollment: {}", super::error_chain(&e)),
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
        let Some(answered) = self.requests.answered(r.id, slot) else {
            return;
        };
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
        let rebooted = matches!(
            (&answered.request, &r.response),
            (Request::Reboot, Response::Ack)
        );
        if rebooted {
            self.greet_again(slot);
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
            .is_some_and(|j| j.awaiting() == Some(r.id))
        {
            self.firmware_input(Input::Answer(r.response.clone()));
        }
        answered.reply(slot, r.response);
    }

    pub(super) fn keep_alive(&mut self, slot: u32, bp: &mut impl Backplane) {
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
}

impl DaemonCore {
    /// Seals every queued request whose BMC is in session onto its link.
    pub(super) fn send_pending(&mut self, bp: &mut impl Backplane) {
        let conns = &mut self.conns;
        self.requests.send_unsent(self.now, |slot, envelope| {
            let Some(conn) = conns.get_mut(&slot) else {
                return false;
            };
            if conn.trust != BmcTrust::Trusted {
                return false;
            }
            conn.link
                .request(envelope)
                .is_some_and(|frame| port(slot).and_then(|p| bp.write(p, &frame)).is_ok())
        });
    }

    /// The BMC in `slot` restarts (on request or into new firmware): its session is
    /// over; say hello again at the next step.
    pub(super) fn greet_again(&mut self, slot: u32) {
        if let Some(conn) = self.conns.get_mut(&slot) {
            conn.trust = BmcTrust::Connecting;
            conn.hello_at = Some(Duration::ZERO);
        }
    }
}
