//! Trays no compute unit declares. A compute unit removed from the repository (`racklet
//! delete`, `apply --prune`, a commit) leaves its board in its slot: a pass finds every
//! powered slot of a chassis that the applied revision does not declare and shuts it
//! down (under the `Report` drift policy: says so), so nothing runs unmanaged and unseen,
//! each tray said once. The RMC's slot is left alone: it runs the rack management daemon.
//! Level-triggered like the rest of the reconciler: it looks at what the chassis reports,
//! every pass.

use std::time::Instant;

use racklet_client::ObservedPower;
use racklet_redfish_client::ClientError;

use super::{DriftPolicy, PowerReconciler, ResetType, ACTION_INTERVAL};
use crate::desired::{Desired, Power};
use crate::events::{EventLog, EventReason};
use crate::store::{StateStore, StoreError};

impl PowerReconciler {
    fn reported(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.undeclared_reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Shuts down the powered slots `desired` does not declare, chassis by chassis.
    pub(super) async fn undeclared<S: StateStore>(
        &self,
        desired: &Desired,
        events: &EventLog<S>,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        for layout in &desired.layouts {
            let Some((endpoint, client)) = self.endpoints.get(&layout.chassis) else {
                continue;
            };
            if self
                .backoff
                .get(&layout.chassis)
                .is_some_and(|b| b.next_try > now)
            {
                continue;
            }
            let declared: Vec<u32> = desired
                .nodes
                .iter()
                .filter(|n| n.chassis == layout.chassis)
                .map(|n| n.tray)
                .collect();
            for tray in
                (1..=layout.trays).filter(|t| *t != layout.rmc_tray && !declared.contains(t))
            {
                let id = endpoint
                    .systems
                    .get(&tray)
                    .cloned()
                    .unwrap_or_else(|| tray.to_string());
                let system = match client.system(&format!("/redfish/v1/Systems/{id}")).await {
                    Ok(s) => s,
                    // An empty slot.
                    Err(ClientError::Status { status: 404, .. }) => continue,
                    // The chassis' own pass reports it; try again next pass.
                    Err(_) => break,
                };
                let powered = matches!(
                    system
                        .power_state
                        .as_deref()
                        .and_then(ObservedPower::from_redfish),
                    Some(ObservedPower::On | ObservedPower::PoweringOn)
                );
                let key = format!("{}/tray-{tray}", layout.chassis);
                if !powered {
                    self.reported().remove(&key);
                    continue;
                }
                let correct = self.policy == DriftPolicy::Correct;
                if self.reported().insert(key.clone()) {
                    let what = if correct {
                        "shutting it down"
                    } else {
                        "only reported (policy Report)"
                    };
                    events
                        .record(
                            EventReason::Undeclared,
                            &format!(
                                "tray {tray} of {} is powered but no ComputeUnit declares it (removed from the repository?): {what}",
                                layout.chassis
                            ),
                        )
                        .await?;
                }
                let acted_recently = self
                    .actions()
                    .get(&key)
                    .is_some_and(|(_, at)| at.elapsed() < ACTION_INTERVAL);
                if !correct || acted_recently {
                    continue;
                }
                self.actions().insert(key, (Power::Off, Instant::now()));
                if let Err(e) = client
                    .reset(&system, ResetType::GracefulShutdown.as_str())
                    .await
                {
                    tracing::warn!(
                        "control plane: cannot shut down undeclared tray {tray} of {}: {e}",
                        layout.chassis
                    );
                }
            }
        }
        Ok(())
    }
}
