//! The control plane's state as API objects (`racklet_client`): internal records are
//! turned into Kubernetes-style objects here, at the HTTP edge, and nowhere else.

use racklet_client::time::{rfc3339, rfc3339_ms};
use racklet_client::{
    BootMode, Chassis, ChassisStatus, ComputeUnit, ComputeUnitSpec, ComputeUnitStatus, Condition,
    ConditionStatus, Event, EventType, FirmwareRollout, FirmwareRolloutSpec, FirmwareRolloutStatus,
    GitSource, GitSourceSpec, GitSourceStatus, ObjectMeta, ObjectReference, ObservedPower, Rack,
    RackStatus, Role, RolloutPhase, RolloutSummary, Sync, TrayPhase, TrayRollout, API_VERSION,
};

use crate::agent::AgentRecord;
use crate::desired::Desired;
use crate::events;
use crate::firmware::{Rollout, RolloutState, Step};
use crate::power::NodeStatus;
use crate::SourceStatus;

fn meta(name: &str, generation: u64) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        generation,
        ..ObjectMeta::default()
    }
}

/// A node's published status as a `ComputeUnit`, with its network boot and node agent as
/// of `now_ms`.
pub fn compute_unit(
    n: &NodeStatus,
    desired: &Desired,
    boot: Option<&racklet_client::NodeBoot>,
    agent: Option<&AgentRecord>,
    now_ms: u64,
) -> ComputeUnit {
    let condition =
        |type_: &str, status: ConditionStatus, reason: &str, message: &str, since: u64| Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
            last_transition_time: rfc3339(since),
            observed_generation: n.observed_generation,
        };
    // A reason about health alone (a halted OS) says nothing of sync: Synced keeps its own.
    use crate::power::NodeReason as R;
    let health_only = matches!(n.reason, R::OsHalted | R::BmcNotTrusted | R::HardwareFault);
    let (sync_reason, sync_message) = if health_only {
        let reason = match n.sync {
            racklet_client::Sync::Synced => R::Converged,
            racklet_client::Sync::OutOfSync => R::Converging,
            racklet_client::Sync::Unknown => R::PowerUnknown,
        };
        let observed = n.observed_power.map_or("unknown", |p| p.as_str());
        (
            reason.as_str(),
            format!("power is {observed}, desired {}", n.desired_power.as_str()),
        )
    } else {
        (n.reason.as_str(), n.message.clone())
    };
    let declared = desired.nodes.iter().find(|d| d.name == n.name);
    let mut metadata = meta(&n.name, n.generation);
    if let Some(d) = declared {
        metadata.labels = d.labels.clone();
        metadata.annotations = d.annotations.clone();
    }
    let network = matches!(
        declared.map(|d| d.boot),
        Some(crate::desired::BootMode::Network)
    );
    let mut conditions = vec![
        condition(
            "Synced",
            n.sync.condition_status(),
            sync_reason,
            &sync_message,
            n.sync_since_unix_ms,
        ),
        condition(
            "Healthy",
            n.health.condition_status(),
            n.reason.as_str(),
            &n.message,
            n.health_since_unix_ms,
        ),
    ];
    let mut health = n.health;
    if network {
        let powered = n.observed_power == Some(ObservedPower::On);
        let [ready, booted] =
            agent_conditions(powered, boot, agent, now_ms, n.health_since_unix_ms);
        if powered && health == racklet_client::Health::Healthy && ready.1 == "AgentSilent" {
            // The booted system stopped reporting, or never did: the node is up but not
            // known to work.
            health = racklet_client::Health::Degraded;
            conditions[1] = condition(
                "Healthy",
                ConditionStatus::False,
                ready.1,
                &ready.2,
                ready.3,
            );
        }
        for (type_, (status, reason, message, since)) in [("AgentReady", ready), ("Booted", booted)]
        {
            conditions.push(condition(type_, status, reason, &message, since));
        }
    }
    ComputeUnit {
        api_version: API_VERSION.into(),
        kind: "ComputeUnit".into(),
        metadata,
        spec: ComputeUnitSpec {
            chassis: n.chassis.clone(),
            tray: n.tray,
            board: declared.map(|d| d.board.clone()).unwrap_or_default(),
            role: match declared.map(|d| d.role) {
                Some(racklet_model::compute_unit::Role::Rmc) => Role::Rmc,
                _ => Role::Worker,
            },
            power_state: n.desired_power,
            boot_mode: match declared.map(|d| d.boot) {
                Some(crate::desired::BootMode::Network) => BootMode::Network,
                _ => BootMode::Local,
            },
            boot_profile: declared.and_then(|d| d.boot_profile.clone()),
            known_good: declared.and_then(|d| d.known_good.clone()),
        },
        status: ComputeUnitStatus {
            observed_generation: n.observed_generation,
            revision: n.revision.clone(),
            power_state: n.observed_power,
            sync: n.sync,
            health,
            conditions,
            boot: boot.cloned(),
            agent: agent.map(AgentRecord::to_api),
        },
    }
}

/// (status, reason, message, since) of a condition.
type ConditionParts = (ConditionStatus, &'static str, String, u64);

/// `AgentReady` (the booted system's agent reported lately) and `Booted` (it booted what
/// its BMC measured) of a node that boots from the network.
fn agent_conditions(
    powered: bool,
    boot: Option<&racklet_client::NodeBoot>,
    agent: Option<&AgentRecord>,
    now_ms: u64,
    power_since_ms: u64,
) -> [ConditionParts; 2] {
    use ConditionStatus::{False, True};
    let stage = boot.map_or("", |b| b.stage.as_str());
    // When the control plane saw this boot handed off: reports before it are an earlier
    // boot's, and the new system's agent has until SILENCE_MS after it to speak.
    let handed_off_ms = boot
        .and_then(|b| b.handed_off_at.as_deref())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .and_then(|t| u64::try_from(t.as_millisecond()).ok());
    let fresh = agent.filter(|a| handed_off_ms.is_none_or(|h| a.last_unix_ms >= h));
    let ready = fresh.filter(|a| a.ready(now_ms));
    let silent_since = |last_ms: u64| {
        (
            False,
            "AgentSilent",
            format!(
                "the node agent has not reported since {} (it reports every few seconds; silent for {} s)",
                rfc3339(last_ms),
                now_ms.saturating_sub(last_ms) / 1000
            ),
            last_ms + crate::agent::SILENCE_MS,
        )
    };
    let agent_ready = match (ready, fresh, handed_off_ms) {
        (Some(a), _, _) => (
            True,
            "Reporting",
            format!("the node agent reported at {}", rfc3339(a.last_unix_ms)),
            a.booted_unix_ms,
        ),
        _ if !powered => (
            False,
            "PoweredOff",
            "the node is not on".into(),
            power_since_ms,
        ),
        _ if stage == "Failed" => (
            False,
            "BootFailed",
            format!(
                "the bootstrap failed: {}",
                boot.map_or("", |b| b.last_failure.as_str())
            ),
            power_since_ms,
        ),
        _ if !stage.is_empty() && stage != "HandedOff" => (
            False,
            "Booting",
            format!("the bootstrap is at stage {stage}"),
            power_since_ms,
        ),
        (None, Some(a), _) => silent_since(a.last_unix_ms),
        (None, None, Some(h)) if now_ms.saturating_sub(h) < crate::agent::SILENCE_MS => (
            False,
            "Starting",
            format!(
                "handed off at {}; the booted system's agent has not reported yet",
                rfc3339(h)
            ),
            h,
        ),
        (None, None, Some(h)) => silent_since(h),
        (None, None, None) => (
            False,
            "NotReported",
            "no node agent has reported yet".into(),
            power_since_ms,
        ),
    };
    let measured = boot.and_then(|b| {
        Some((
            b.profile.as_deref()?,
            b.git_commit.as_deref()?,
            b.kernel_sha256.as_deref()?,
            b.initramfs_sha256.as_deref()?,
        ))
    });
    let booted = match (ready, measured) {
        (Some(a), Some(m)) => {
            let r = &a.report;
            let said = (
                r.profile.as_str(),
                r.git_commit.as_str(),
                r.kernel_sha256.as_str(),
                r.initramfs_sha256.as_str(),
            );
            if said == m {
                (
                    True,
                    "Measured",
                    format!(
                        "booted profile {} from commit {}, as its BMC measured",
                        r.profile, r.git_commit
                    ),
                    a.booted_unix_ms,
                )
            } else {
                (
                    False,
                    "MeasurementMismatch",
                    format!(
                        "the node agent reports profile {} (kernel sha256:{}), its BMC measured profile {} (kernel sha256:{})",
                        r.profile, r.kernel_sha256, m.0, m.2
                    ),
                    a.last_unix_ms,
                )
            }
        }
        (Some(a), None) => (
            False,
            "NotMeasured",
            "the node agent reports, but its BMC holds no measurement of this boot".into(),
            a.last_unix_ms,
        ),
        (None, _) => (False, agent_ready.1, agent_ready.2.clone(), agent_ready.3),
    };
    [agent_ready, booted]
}

/// The source's status as a `GitSource`.
pub fn git_source(s: &SourceStatus) -> GitSource {
    let time = |ms: u64| (ms > 0).then(|| rfc3339_ms(ms));
    let since = if s.ready {
        s.last_applied_unix_ms
    } else {
        s.last_fetch_unix_ms
    };
    GitSource {
        api_version: API_VERSION.into(),
        kind: "GitSource".into(),
        metadata: meta("rack", 0),
        spec: GitSourceSpec {
            url: s.url.clone(),
            reference: s.reference.clone(),
            path: s.path.clone(),
        },
        status: GitSourceStatus {
            applied_revision: s.applied.clone(),
            applied_subject: s.applied_subject.clone(),
            fetched_revision: s.fetched.clone(),
            last_fetch_time: time(s.last_fetch_unix_ms),
            last_applied_time: time(s.last_applied_unix_ms),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if s.ready {
                    ConditionStatus::True
                } else if s.reason == crate::SourceReason::NotFetched {
                    ConditionStatus::Unknown
                } else {
                    ConditionStatus::False
                },
                reason: s.reason.as_str().into(),
                message: s.message.clone(),
                last_transition_time: rfc3339(since),
                observed_generation: 0,
            }],
        },
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The revision's racks; every node counts toward the rack (a Racklet rack is one).
pub fn racks(desired: &Desired, nodes: &[NodeStatus]) -> Vec<Rack> {
    let synced = nodes.iter().filter(|n| n.sync == Sync::Synced).count();
    desired
        .racks
        .iter()
        .map(|r| Rack {
            api_version: API_VERSION.into(),
            kind: "Rack".into(),
            metadata: meta(r, 0),
            status: RackStatus {
                chassis: count(desired.chassis.len()),
                nodes: count(nodes.len()),
                synced_nodes: count(synced),
                signed_commits_required: !desired.signers.is_empty(),
            },
        })
        .collect()
}

/// The revision's chassis, with their nodes and roll-out.
pub fn chassis(desired: &Desired, nodes: &[NodeStatus], rollouts: &[Rollout]) -> Vec<Chassis> {
    desired
        .chassis
        .iter()
        .map(|c| {
            let mine: Vec<&NodeStatus> = nodes.iter().filter(|n| n.chassis == *c).collect();
            let rollout = rollouts
                .iter()
                .find(|r| r.chassis == *c)
                .map(|r| RolloutSummary {
                    version: r.version,
                    phase: phase(r.state),
                    done_trays: count(r.done()),
                    trays: count(r.trays.len()),
                });
            Chassis {
                api_version: API_VERSION.into(),
                kind: "Chassis".into(),
                metadata: meta(c, 0),
                status: ChassisStatus {
                    nodes: count(mine.len()),
                    powered_on_nodes: count(
                        mine.iter()
                            .filter(|n| n.observed_power == Some(ObservedPower::On))
                            .count(),
                    ),
                    synced_nodes: count(mine.iter().filter(|n| n.sync == Sync::Synced).count()),
                    rollout,
                },
            }
        })
        .collect()
}

fn phase(state: RolloutState) -> RolloutPhase {
    match state {
        RolloutState::Running => RolloutPhase::Running,
        RolloutState::Done => RolloutPhase::Done,
        RolloutState::Stopped => RolloutPhase::Stopped,
    }
}

/// A persisted roll-out as a `FirmwareRollout`.
pub fn rollout(r: &Rollout) -> FirmwareRollout {
    FirmwareRollout {
        api_version: API_VERSION.into(),
        kind: "FirmwareRollout".into(),
        metadata: meta(&r.chassis, 0),
        spec: FirmwareRolloutSpec {
            policy: r.policy.clone(),
            chassis: r.chassis.clone(),
            version: r.version,
            bundle: r.bundle.clone(),
            revision: r.commit.clone(),
        },
        status: FirmwareRolloutStatus {
            phase: phase(r.state),
            trays: r
                .trays
                .iter()
                .map(|t| {
                    let (phase, message) = match &t.step {
                        Step::Pending => (TrayPhase::Pending, String::new()),
                        Step::Uploading { .. } => (TrayPhase::Uploading, String::new()),
                        Step::Uploaded { monitor } => (TrayPhase::Uploaded, monitor.clone()),
                        Step::Confirmed => (TrayPhase::Confirmed, String::new()),
                        Step::Skipped => (TrayPhase::Skipped, String::new()),
                        Step::Failed { reason } => (TrayPhase::Failed, reason.clone()),
                    };
                    TrayRollout {
                        tray: t.tray,
                        phase,
                        message,
                    }
                })
                .collect(),
            message: r.message.clone(),
        },
    }
}

/// A logged event as an `Event`.
pub fn event(e: &events::Event) -> Event {
    Event {
        api_version: API_VERSION.into(),
        kind: "Event".into(),
        metadata: meta(&format!("event-{}", e.sequence), 0),
        sequence: e.sequence,
        event_time: rfc3339_ms(e.unix_ms),
        type_: if e.reason.is_warning() {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: e.reason.as_str().into(),
        regarding: e.node.as_ref().map(|name| ObjectReference {
            kind: "ComputeUnit".into(),
            name: name.clone(),
        }),
        note: e.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use racklet_client::{AgentReport, NodeBoot};

    fn measured() -> NodeBoot {
        NodeBoot {
            stage: "HandedOff".into(),
            profile: Some("debian".into()),
            git_commit: Some("ab".repeat(20)),
            kernel_sha256: Some("cd".repeat(32)),
            initramfs_sha256: Some("ef".repeat(32)),
            ..NodeBoot::default()
        }
    }

    fn agent(kernel: &str, last_unix_ms: u64) -> AgentRecord {
        AgentRecord {
            report: AgentReport {
                profile: "debian".into(),
                git_commit: "ab".repeat(20),
                kernel_sha256: kernel.into(),
                initramfs_sha256: "ef".repeat(32),
                boot_id: "b".into(),
            },
            booted_unix_ms: 1_000,
            last_unix_ms,
        }
    }

    fn reasons(c: &[ConditionParts; 2]) -> [(ConditionStatus, &'static str); 2] {
        [(c[0].0, c[0].1), (c[1].0, c[1].1)]
    }

    #[test]
    fn an_agent_that_reports_what_its_bmc_measured_is_ready_and_booted() {
        let a = agent(&"cd".repeat(32), 10_000);
        let c = agent_conditions(true, Some(&measured()), Some(&a), 12_000, 0);
        assert_eq!(
            reasons(&c),
            [
                (ConditionStatus::True, "Reporting"),
                (ConditionStatus::True, "Measured")
            ]
        );
    }

    #[test]
    fn an_agent_that_reports_other_digests_than_its_bmc_measured_is_not_booted() {
        let a = agent(&"00".repeat(32), 10_000);
        let c = agent_conditions(true, Some(&measured()), Some(&a), 12_000, 0);
        assert_eq!(c[1].1, "MeasurementMismatch");
        assert!(c[1].2.contains(&"00".repeat(32)), "{}", c[1].2);
    }

    #[test]
    fn a_silent_agent_is_named_silent_while_powered_and_powered_off_otherwise() {
        let a = agent(&"cd".repeat(32), 10_000);
        let late = 10_000 + crate::agent::SILENCE_MS;
        let c = agent_conditions(true, Some(&measured()), Some(&a), late, 5);
        assert_eq!(
            reasons(&c),
            [
                (ConditionStatus::False, "AgentSilent"),
                (ConditionStatus::False, "AgentSilent")
            ]
        );
        assert_eq!(c[0].3, late, "silent since the last report plus the grace");
        let c = agent_conditions(false, Some(&measured()), Some(&a), late, 5);
        assert_eq!(c[0].1, "PoweredOff");
        assert_eq!(c[0].3, 5);
        let c = agent_conditions(true, Some(&measured()), None, late, 5);
        assert_eq!(c[0].1, "NotReported");
    }

    #[test]
    fn a_new_boot_is_booting_then_starting_and_an_earlier_boots_reports_do_not_count() {
        let old = agent(&"cd".repeat(32), 10_000);
        // Powered on again: the BMC's stage went back before the hand-off.
        let mut boot = NodeBoot {
            stage: "ConfigServed".into(),
            ..NodeBoot::default()
        };
        let late = 10_000 + 2 * crate::agent::SILENCE_MS;
        let c = agent_conditions(true, Some(&boot), Some(&old), late, 5);
        assert_eq!(c[0].1, "Booting", "not silent: a new boot is under way");
        // Handed off at 40 s: the old report does not count; the agent has its grace.
        boot = measured();
        boot.handed_off_at = Some(rfc3339_ms(40_000));
        let c = agent_conditions(true, Some(&boot), Some(&old), 41_000, 5);
        assert_eq!(c[0].1, "Starting");
        assert_eq!(c[1].0, ConditionStatus::False);
        // It never speaks: silent since the hand-off.
        let c = agent_conditions(
            true,
            Some(&boot),
            Some(&old),
            40_000 + crate::agent::SILENCE_MS,
            5,
        );
        assert_eq!(c[0].1, "AgentSilent");
        // It speaks: ready and booted.
        let new = agent(&"cd".repeat(32), 42_000);
        let c = agent_conditions(true, Some(&boot), Some(&new), 43_000, 5);
        assert_eq!(reasons(&c)[1], (ConditionStatus::True, "Measured"));
        // The bootstrap failed: said so, and not silent.
        boot.stage = "Failed".into();
        boot.last_failure = "profile debian: the boot server stalled".into();
        let c = agent_conditions(true, Some(&boot), None, 43_000, 5);
        assert_eq!(c[0].1, "BootFailed");
        assert!(c[0].2.contains("stalled"), "{}", c[0].2);
    }
}
