//! The fan loop's plumbing around the pure zone controller (`crate::fan`): each zone's
//! thermal inputs from the sessions (fresh, stale or silent SoC temperatures of powered
//! trays), its decision applied to the fans, override reasons logged once, and thermal
//! shutdowns queued once per overheating.

use racklet_mgmt_proto::message::{PowerAction, PowerState, Reading, Request};
use racklet_rmd_api::{BmcTrust, Severity};

use super::DaemonCore;
use crate::backplane::Backplane;
use crate::fan::{Override, TrayThermal};

impl DaemonCore {
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

    pub(super) fn fan_loop(&mut self, dt: f64, bp: &mut impl Backplane) {
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
}
