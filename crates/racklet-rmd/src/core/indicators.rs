//! Indicators: what each tray's front LED shows (identify wins, then attention for a
//! BMC waiting for approval or a tray with faults, then OK while powered), the operator's
//! identify requests, and pushing changes to the backplane only when they change.

use racklet_hal::Indicator;
use racklet_mgmt_proto::message::PowerState;
use racklet_rmd_api::{BmcTrust, RmdError};

use super::DaemonCore;
use crate::backplane::Backplane;

impl DaemonCore {
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
            (BmcTrust::PendingApproval { .. } | BmcTrust::Refused { .. }, _) => {
                Indicator::Attention
            }
            (BmcTrust::Trusted, Some(s)) if s.faults != 0 || s.power == PowerState::Fault => {
                Indicator::Attention
            }
            (BmcTrust::Trusted, Some(s)) if s.power != PowerState::Off => Indicator::Ok,
            _ => Indicator::Off,
        }
    }

    pub(super) fn indicators(&mut self, bp: &mut impl Backplane) {
        for t in &self.config.trays {
            let want = self.indicator(t.slot);
            if self.shown.get(&t.slot) != Some(&want) {
                bp.set_indicator(t.slot, want);
                self.shown.insert(t.slot, want);
            }
        }
    }
}
