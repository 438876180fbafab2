//! The power reconciler's decision, as a pure function of what is desired, what the BMC
//! reports and what the reconciler remembers. No I/O and no clock: the reconciler
//! gathers the inputs, calls [`decide`], and carries out the [`Verdict`].

use racklet_client::{DesiredPower, Health, ObservedPower, Sync};
use serde::{Deserialize, Serialize};

use super::DriftPolicy;

/// Why a node's status is what it is (`status.conditions[].reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeReason {
    /// Power is as desired.
    Converged,
    /// An action was sent or a transition runs.
    Converging,
    /// It had converged and differs again; the policy only reports it.
    Drifted,
    /// The BMC does not know the tray's power right now (restarting, not trusted yet).
    PowerUnknown,
    /// The chassis refused an action.
    ActionFailed,
    /// The chassis' Redfish service does not answer.
    ChassisUnreachable,
    /// The chassis has no system for the node's tray.
    NoSuchSystem,
    /// No Redfish endpoint is configured for the node's chassis.
    NoEndpoint,
    /// Powered, but its OS has halted (the BMC reports `StandbyOffline` while `On`).
    OsHalted,
    /// The chassis does not trust the tray's BMC (`UnavailableOffline`, `Critical`).
    BmcNotTrusted,
    /// The BMC reports a fault (`Health: Critical` or `Warning`).
    HardwareFault,
}

impl NodeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeReason::Converged => "Converged",
            NodeReason::Converging => "Converging",
            NodeReason::Drifted => "Drifted",
            NodeReason::PowerUnknown => "PowerUnknown",
            NodeReason::ActionFailed => "ActionFailed",
            NodeReason::ChassisUnreachable => "ChassisUnreachable",
            NodeReason::NoSuchSystem => "NoSuchSystem",
            NodeReason::NoEndpoint => "NoEndpoint",
            NodeReason::OsHalted => "OsHalted",
            NodeReason::BmcNotTrusted => "BmcNotTrusted",
            NodeReason::HardwareFault => "HardwareFault",
        }
    }
}

/// The Redfish `ResetType` the reconciler sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetType {
    On,
    GracefulShutdown,
}

impl ResetType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetType::On => "On",
            ResetType::GracefulShutdown => "GracefulShutdown",
        }
    }

    fn towards(power: DesiredPower) -> ResetType {
        match power {
            DesiredPower::On => ResetType::On,
            DesiredPower::Off => ResetType::GracefulShutdown,
        }
    }
}

/// What the reconciler remembers of a node between passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    /// The current generation had converged once: a difference now is drift.
    pub converged_once: bool,
    /// An action towards the desired power was sent less than `ACTION_INTERVAL` ago.
    pub acted_recently: bool,
    /// The published status already says `Drifted`.
    pub drift_reported: bool,
    /// Someone asked for an action on the node (a power cycle) that may still run: what
    /// it does is theirs, neither drift nor something to correct.
    pub user_acting: bool,
}

/// What to do about one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to act on until the BMC reports its power.
    Wait { reason: NodeReason },
    /// Power is as desired.
    Converged,
    /// Drift under the `Report` policy: publish it; `announce` when it is news.
    ReportDrift { announce: bool },
    /// A transition runs, or an action was just sent: give it time.
    Progressing,
    /// Send this reset; `drift` says whether it corrects drift or follows a new revision.
    Act { reset: ResetType, drift: bool },
}

impl Verdict {
    /// The sync, health and reason a node has while this verdict holds (before an action
    /// is sent).
    pub fn status(self) -> (Sync, Health, NodeReason) {
        match self {
            Verdict::Wait { reason } => (Sync::Unknown, Health::Unknown, reason),
            Verdict::Converged => (Sync::Synced, Health::Healthy, NodeReason::Converged),
            Verdict::ReportDrift { .. } => (Sync::OutOfSync, Health::Degraded, NodeReason::Drifted),
            Verdict::Progressing | Verdict::Act { .. } => {
                (Sync::OutOfSync, Health::Progressing, NodeReason::Converging)
            }
        }
    }
}

/// Decides what to do about a node whose BMC reports `observed` while the revision wants
/// `desired`.
pub fn decide(
    desired: DesiredPower,
    observed: Option<ObservedPower>,
    policy: DriftPolicy,
    history: History,
) -> Verdict {
    let Some(observed) = observed else {
        return Verdict::Wait {
            reason: NodeReason::PowerUnknown,
        };
    };
    let matches = matches!(
        (desired, observed),
        (DesiredPower::On, ObservedPower::On) | (DesiredPower::Off, ObservedPower::Off)
    );
    if matches {
        return Verdict::Converged;
    }
    let transitioning = matches!(
        observed,
        ObservedPower::PoweringOn | ObservedPower::PoweringOff
    );
    if history.user_acting {
        return Verdict::Progressing;
    }
    let drift = history.converged_once;
    if drift && policy == DriftPolicy::Report && !transitioning {
        return Verdict::ReportDrift {
            announce: !history.drift_reported,
        };
    }
    if transitioning || history.acted_recently {
        return Verdict::Progressing;
    }
    Verdict::Act {
        reset: ResetType::towards(desired),
        drift,
    }
}

/// What the hardware says beyond power: Redfish `Status.State` and `Status.Health` of the
/// node's system. `Some` when health is worse than power alone shows: a halted OS under
/// power, a BMC the chassis does not trust, a fault the BMC reports.
pub fn hardware_health(
    observed: Option<ObservedPower>,
    state: Option<&str>,
    health: Option<&str>,
) -> Option<NodeReason> {
    match (observed, state, health) {
        (_, Some("UnavailableOffline"), Some("Critical")) => Some(NodeReason::BmcNotTrusted),
        (Some(ObservedPower::On), Some("StandbyOffline"), _) => Some(NodeReason::OsHalted),
        (Some(_), _, Some("Critical" | "Warning")) => Some(NodeReason::HardwareFault),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DesiredPower as D;
    use ObservedPower as O;

    const FRESH: History = History {
        converged_once: false,
        acted_recently: false,
        drift_reported: false,
        user_acting: false,
    };
    const USER: History = History {
        user_acting: true,
        ..CONVERGED
    };
    const CONVERGED: History = History {
        converged_once: true,
        ..FRESH
    };
    const ACTED: History = History {
        acted_recently: true,
        ..FRESH
    };
    const REPORTED: History = History {
        drift_reported: true,
        ..CONVERGED
    };

    #[test]
    fn decide_table() {
        use DriftPolicy::{Correct, Report};
        let act = |reset, drift| Verdict::Act { reset, drift };
        #[rustfmt::skip]
        let table: &[(D, Option<O>, DriftPolicy, History, Verdict)] = &[
            // Unknown power: never act on a guess.
            (D::On,  None,                 Correct, FRESH,     Verdict::Wait { reason: NodeReason::PowerUnknown }),
            (D::Off, None,                 Report,  CONVERGED, Verdict::Wait { reason: NodeReason::PowerUnknown }),
            // As desired.
            (D::On,  Some(O::On),          Correct, FRESH,     Verdict::Converged),
            (D::Off, Some(O::Off),         Report,  REPORTED,  Verdict::Converged),
            // A new revision: act towards it.
            (D::On,  Some(O::Off),         Correct, FRESH,     act(ResetType::On, false)),
            (D::Off, Some(O::On),          Report,  FRESH,     act(ResetType::GracefulShutdown, false)),
            (D::On,  Some(O::Paused),      Correct, FRESH,     act(ResetType::On, false)),
            // An action in flight or a transition: wait.
            (D::On,  Some(O::Off),         Correct, ACTED,     Verdict::Progressing),
            (D::On,  Some(O::PoweringOn),  Correct, FRESH,     Verdict::Progressing),
            (D::Off, Some(O::PoweringOff), Report,  CONVERGED, Verdict::Progressing),
            // Drift: corrected, or reported once.
            (D::On,  Some(O::Off),         Correct, CONVERGED, act(ResetType::On, true)),
            (D::On,  Some(O::Off),         Report,  CONVERGED, Verdict::ReportDrift { announce: true }),
            (D::On,  Some(O::Off),         Report,  REPORTED,  Verdict::ReportDrift { announce: false }),
            // A power cycle someone asked for: theirs, under either policy.
            (D::On,  Some(O::Off),         Correct, USER,      Verdict::Progressing),
            (D::On,  Some(O::Off),         Report,  USER,      Verdict::Progressing),
        ];
        for (i, (desired, observed, policy, history, want)) in table.iter().enumerate() {
            let got = decide(*desired, *observed, *policy, *history);
            assert_eq!(
                got, *want,
                "row {i}: {desired:?} {observed:?} {policy:?} {history:?}"
            );
        }
    }

    #[test]
    fn hardware_health_follows_the_bmcs_status() {
        let on = Some(O::On);
        assert_eq!(hardware_health(on, Some("Enabled"), Some("OK")), None);
        assert_eq!(
            hardware_health(on, Some("StandbyOffline"), Some("Warning")),
            Some(NodeReason::OsHalted)
        );
        // Off and standby is simply off.
        assert_eq!(
            hardware_health(Some(O::Off), Some("StandbyOffline"), Some("OK")),
            None
        );
        assert_eq!(
            hardware_health(None, Some("UnavailableOffline"), Some("Critical")),
            Some(NodeReason::BmcNotTrusted)
        );
        // Waiting for approval is not a fault of the node.
        assert_eq!(
            hardware_health(None, Some("UnavailableOffline"), Some("Warning")),
            None
        );
        assert_eq!(
            hardware_health(on, Some("Enabled"), Some("Critical")),
            Some(NodeReason::HardwareFault)
        );
    }

    #[test]
    fn statuses_keep_sync_and_health_apart() {
        assert_eq!(
            Verdict::Converged.status(),
            (Sync::Synced, Health::Healthy, NodeReason::Converged)
        );
        assert_eq!(
            Verdict::ReportDrift { announce: false }.status(),
            (Sync::OutOfSync, Health::Degraded, NodeReason::Drifted)
        );
        assert_eq!(
            Verdict::Wait {
                reason: NodeReason::PowerUnknown
            }
            .status(),
            (Sync::Unknown, Health::Unknown, NodeReason::PowerUnknown)
        );
    }
}
