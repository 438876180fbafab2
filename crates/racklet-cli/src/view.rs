//! How `racklet get` and `describe` print: a table (kubectl's default), a wide table,
//! or the API's objects as JSON or YAML, exactly as `kubectl get -o json|yaml` prints
//! them. Pure functions of the API's answers, golden-tested.

use racklet_client::time::{parse_rfc3339, rfc3339};
use racklet_client::{
    BootMode, Chassis, ComputeUnit, ConditionStatus, Event, FirmwareRollout, GitSource, List, Rack,
    RolloutPhase, Sensor,
};
use serde::Serialize;

/// `-o`: how to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
}

pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).map_or_else(|e| format!("{e}\n"), |s| s + "\n")
}

fn yaml<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(value) => racklet_model::emit::yaml(&value),
        Err(e) => format!("{e}\n"),
    }
}

/// One object as JSON or YAML.
pub fn object<T: Serialize>(v: &T, output: Output) -> String {
    match output {
        Output::Yaml => yaml(v),
        _ => json(v),
    }
}

/// `racklet get nodes`: a table, or the `List` of `ComputeUnit`s as the API serves it.
pub fn nodes(list: &List<ComputeUnit>, output: Output) -> String {
    match output {
        Output::Json => return json(list),
        Output::Yaml => return yaml(list),
        Output::Table | Output::Wide => {}
    }
    let wide = output == Output::Wide;
    let mut headers = vec![
        "NAME", "CHASSIS", "TRAY", "DESIRED", "OBSERVED", "SYNC", "HEALTH",
    ];
    if wide {
        headers.extend([
            "GENERATION",
            "REVISION",
            "BOOTED",
            "AGENT",
            "REASON",
            "MESSAGE",
        ]);
    }
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|n| {
            let mut r = vec![
                n.metadata.name.clone(),
                n.spec.chassis.clone(),
                n.spec.tray.to_string(),
                n.spec.power_state.as_str().to_string(),
                n.status
                    .power_state
                    .map_or("<unknown>", |p| p.as_str())
                    .to_string(),
                n.status.sync.as_str().to_string(),
                n.status.health.as_str().to_string(),
            ];
            if wide {
                let synced = n.condition("Synced");
                // The reasons say more than True/False (Measured, Reporting, AgentSilent);
                // only a node that boots from the network has these: "-" otherwise.
                let of = |type_: &str| {
                    n.condition(type_)
                        .map_or("-".to_string(), |c| c.reason.clone())
                };
                r.extend([
                    format!("{}/{}", n.status.observed_generation, n.metadata.generation),
                    short(&n.status.revision).to_string(),
                    of("Booted"),
                    of("AgentReady"),
                    synced.map(|c| c.reason.clone()).unwrap_or_default(),
                    synced.map(|c| c.message.clone()).unwrap_or_default(),
                ]);
            }
            r
        })
        .collect();
    table(&headers, &rows)
}

/// The first 12 hex digits of a commit id.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// `racklet get source`.
pub fn source(s: &GitSource, output: Output) -> String {
    match output {
        Output::Json => json(s),
        Output::Yaml => yaml(s),
        Output::Table | Output::Wide => {
            let applied = s.status.applied_revision.as_deref().map_or("<none>", short);
            let ready = s.ready();
            let mut headers = vec!["URL", "REFERENCE", "PATH", "APPLIED", "READY", "REASON"];
            let mut row = vec![
                s.spec.url.clone(),
                s.spec.reference.clone(),
                s.spec.path.clone(),
                applied.to_string(),
                ready
                    .is_some_and(|c| c.status == ConditionStatus::True)
                    .to_string(),
                ready.map(|c| c.reason.clone()).unwrap_or_default(),
            ];
            if output == Output::Wide {
                headers.push("SUBJECT");
                row.push(s.status.applied_subject.clone());
            }
            let mut out = table(&headers, &[row]);
            if let Some(message) = ready.map(|c| &c.message).filter(|m| !m.is_empty()) {
                out.push('\n');
                out.push_str(message);
                out.push('\n');
            }
            out
        }
    }
}

/// `racklet get racks`.
pub fn racks(list: &List<Rack>, output: Output) -> String {
    match output {
        Output::Json => json(list),
        Output::Yaml => yaml(list),
        Output::Table | Output::Wide => table(
            &["NAME", "CHASSIS", "NODES", "SYNCED", "SIGNED COMMITS"],
            &list
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.metadata.name.clone(),
                        r.status.chassis.to_string(),
                        r.status.nodes.to_string(),
                        format!("{}/{}", r.status.synced_nodes, r.status.nodes),
                        if r.status.signed_commits_required {
                            "required"
                        } else {
                            "-"
                        }
                        .to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
}

fn phase(p: RolloutPhase) -> &'static str {
    match p {
        RolloutPhase::Running => "Running",
        RolloutPhase::Done => "Done",
        RolloutPhase::Stopped => "Stopped",
    }
}

/// `racklet get chassis`.
pub fn chassis(list: &List<Chassis>, output: Output) -> String {
    match output {
        Output::Json => json(list),
        Output::Yaml => yaml(list),
        Output::Table | Output::Wide => table(
            &["NAME", "NODES", "ON", "SYNCED", "FIRMWARE"],
            &list
                .items
                .iter()
                .map(|c| {
                    let s = &c.status;
                    vec![
                        c.metadata.name.clone(),
                        s.nodes.to_string(),
                        s.powered_on_nodes.to_string(),
                        format!("{}/{}", s.synced_nodes, s.nodes),
                        s.rollout.as_ref().map_or_else(
                            || "-".to_string(),
                            |r| {
                                format!(
                                    "v{} {} {}/{}",
                                    r.version,
                                    phase(r.phase),
                                    r.done_trays,
                                    r.trays
                                )
                            },
                        ),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
}

/// `racklet get rollouts`.
pub fn rollouts(list: &List<FirmwareRollout>, output: Output) -> String {
    match output {
        Output::Json => return json(list),
        Output::Yaml => return yaml(list),
        Output::Table | Output::Wide => {}
    }
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|r| {
            vec![
                r.spec.chassis.clone(),
                r.spec.policy.clone(),
                r.spec.version.to_string(),
                phase(r.status.phase).to_string(),
                format!("{}/{}", r.done(), r.status.trays.len()),
                r.status.message.clone(),
            ]
        })
        .collect();
    table(
        &["CHASSIS", "POLICY", "VERSION", "STATE", "TRAYS", "MESSAGE"],
        &rows,
    )
}

/// Whole seconds of an RFC 3339 time with fractions, as the tables show time.
fn seconds(time: &str) -> String {
    parse_rfc3339(time).map_or_else(|| time.to_string(), rfc3339)
}

/// One event per line: `TIME  MESSAGE`.
pub fn events(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| format!("{}  {}\n", seconds(&e.event_time), e.note))
        .collect()
}

/// `racklet describe node N`: status, conditions, the tray's sensors as read through the
/// control plane just now (or why they could not be), and the node's recent events.
pub fn describe(
    n: &ComputeUnit,
    events: &[Event],
    sensors: &Result<Vec<Sensor>, String>,
) -> String {
    let mut out = String::new();
    let field = |out: &mut String, k: &str, v: &str| out.push_str(&format!("{k:<20}{v}\n"));
    field(&mut out, "Name:", &n.metadata.name);
    field(&mut out, "Chassis:", &n.spec.chassis);
    field(&mut out, "Tray:", &n.spec.tray.to_string());
    field(&mut out, "Board:", &n.spec.board);
    let boot = match (n.spec.boot_mode, &n.spec.boot_profile) {
        (BootMode::Local, _) => "Local".to_string(),
        (BootMode::Network, None) => "Network".to_string(),
        (BootMode::Network, Some(p)) => match &n.spec.known_good {
            Some(k) => format!("Network, profile {p} (falls back to {k})"),
            None => format!("Network, profile {p}"),
        },
    };
    field(&mut out, "Boot:", &boot);
    if let Some(b) = &n.status.boot {
        let short = |d: &Option<String>| {
            d.as_deref()
                .map_or("<none>".to_string(), |d| d.chars().take(16).collect())
        };
        let mut seen = format!(
            "{}, accepted targets version {}",
            b.stage, b.accepted_targets_version
        );
        if let Some(p) = &b.profile {
            seen.push_str(&format!(
                "; booted {p}{} from {}: kernel sha256:{} initramfs sha256:{}",
                if b.fell_back { " (fallback)" } else { "" },
                short(&b.git_commit),
                short(&b.kernel_sha256),
                short(&b.initramfs_sha256)
            ));
        }
        if !b.last_failure.is_empty() {
            seen.push_str(&format!("; last failure: {}", b.last_failure));
        }
        field(&mut out, "Network boot:", &seen);
    }
    if let Some(a) = &n.status.agent {
        let short = |d: &str| d.chars().take(16).collect::<String>();
        field(
            &mut out,
            "Node agent:",
            &format!(
                "booted {} from {}: kernel sha256:{} initramfs sha256:{}; up since {}, last report {}",
                a.profile,
                short(&a.git_commit),
                short(&a.kernel_sha256),
                short(&a.initramfs_sha256),
                a.booted_at,
                a.last_heartbeat
            ),
        );
    }
    field(&mut out, "Desired power:", n.spec.power_state.as_str());
    field(
        &mut out,
        "Observed power:",
        n.status.power_state.map_or("<unknown>", |p| p.as_str()),
    );
    field(&mut out, "Revision:", &n.status.revision);
    field(
        &mut out,
        "Generation:",
        &format!(
            "{} (observed {})",
            n.metadata.generation, n.status.observed_generation
        ),
    );
    field(&mut out, "Sync:", n.status.sync.as_str());
    field(&mut out, "Health:", n.status.health.as_str());
    // As `kubectl describe` shows conditions: type, True/False/Unknown, reason, message.
    out.push_str("Conditions:\n");
    out.push_str(&format!(
        "  {:<12}{:<9}{:<20}{:<22}{}\n",
        "TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"
    ));
    for c in &n.status.conditions {
        out.push_str(&format!(
            "  {:<12}{:<9}{:<20}{:<22}{}\n",
            c.type_,
            c.status.as_str(),
            c.reason,
            c.last_transition_time,
            c.message
        ));
    }
    out.push_str("Sensors:\n");
    match sensors {
        Err(e) => out.push_str(&format!("  <cannot read them: {e}>\n")),
        Ok(list) if list.is_empty() => out.push_str("  <none>\n"),
        Ok(list) => {
            // Names and states come from the chassis: no control characters reach the terminal.
            let printable = |t: &str| t.chars().filter(|c| !c.is_control()).collect::<String>();
            let names: Vec<String> = list.iter().map(|s| printable(&s.name)).collect();
            let width = names
                .iter()
                .map(|n| n.chars().count())
                .max()
                .unwrap_or(0)
                .max(4)
                + 2;
            out.push_str(&format!("  {:<width$}READING\n", "NAME"));
            for (s, name) in list.iter().zip(&names) {
                let reading = match s.reading {
                    // The named state says why there is no number (e.g. UnavailableOffline).
                    None => format!("<{}>", printable(&s.state)),
                    Some(v) => {
                        let units = if s.units == "Cel" {
                            "°C".to_string()
                        } else {
                            printable(&s.units)
                        };
                        format!("{v:.2} {units}")
                    }
                };
                out.push_str(&format!("  {name:<width$}{reading}\n"));
            }
        }
    }
    out.push_str("Events:\n");
    let mine: Vec<&Event> = events
        .iter()
        .filter(|e| e.is_about_node(&n.metadata.name))
        .collect();
    if mine.is_empty() {
        out.push_str("  <none>\n");
    }
    for e in mine.iter().rev().take(10).rev() {
        out.push_str(&format!("  {}  {}\n", seconds(&e.event_time), e.note));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use racklet_client::time::rfc3339_ms;
    use racklet_client::{
        BootMode, ChassisStatus, ComputeUnitSpec, ComputeUnitStatus, Condition, DesiredPower,
        EventType, FirmwareRolloutSpec, FirmwareRolloutStatus, GitSourceSpec, GitSourceStatus,
        Health, ObjectMeta, ObjectReference, ObservedPower, RackStatus, Role, RolloutSummary, Sync,
        TrayPhase, TrayRollout, API_VERSION,
    };

    const REVISION: &str = "5d677d8a1b2c3d4e5f60718293a4b5c6d7e8f901";

    fn meta(name: &str, generation: u64) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            generation,
            ..ObjectMeta::default()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn unit(
        name: &str,
        tray: u32,
        desired: DesiredPower,
        observed: Option<ObservedPower>,
        sync: Sync,
        health: Health,
        reason: &str,
        message: &str,
    ) -> ComputeUnit {
        let condition = |type_: &str, status| Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
            last_transition_time: rfc3339(1_795_698_748_832),
            observed_generation: 2,
        };
        ComputeUnit {
            api_version: API_VERSION.into(),
            kind: "ComputeUnit".into(),
            metadata: meta(name, 2),
            spec: ComputeUnitSpec {
                chassis: "chassis-1".into(),
                tray,
                board: "rpi4b".into(),
                role: Role::Worker,
                power_state: desired,
                boot_mode: BootMode::Local,
                boot_profile: None,
                known_good: None,
            },
            status: ComputeUnitStatus {
                agent: None,
                observed_generation: 2,
                revision: REVISION.into(),
                power_state: observed,
                sync,
                health,
                conditions: vec![
                    condition("Synced", sync.condition_status()),
                    condition("Healthy", health.condition_status()),
                ],
                boot: None,
            },
        }
    }

    fn sample() -> List<ComputeUnit> {
        List::new(vec![
            unit(
                "node-1",
                1,
                DesiredPower::On,
                Some(ObservedPower::On),
                Sync::Synced,
                Health::Healthy,
                "Converged",
                "power is On, as desired",
            ),
            unit(
                "node-6",
                6,
                DesiredPower::On,
                Some(ObservedPower::PoweringOn),
                Sync::OutOfSync,
                Health::Progressing,
                "Converging",
                "On sent; power was Off",
            ),
            unit(
                "node-7",
                7,
                DesiredPower::Off,
                None,
                Sync::Unknown,
                Health::Unknown,
                "ChassisUnreachable",
                "cannot reach the Redfish service",
            ),
        ])
    }

    fn event(sequence: u64, unix_ms: u64, node: Option<&str>, reason: &str, note: &str) -> Event {
        Event {
            api_version: API_VERSION.into(),
            kind: "Event".into(),
            metadata: meta(&format!("event-{sequence}"), 0),
            sequence,
            event_time: rfc3339_ms(unix_ms),
            type_: EventType::Normal,
            reason: reason.into(),
            regarding: node.map(|n| ObjectReference {
                kind: "ComputeUnit".into(),
                name: n.into(),
            }),
            note: note.into(),
        }
    }

    fn sample_events() -> Vec<Event> {
        vec![
            event(
                1,
                1_795_698_700_000,
                None,
                "Applied",
                "applied 5d677d8a1b2c: Seed the rack",
            ),
            event(
                2,
                1_795_698_748_900,
                Some("node-6"),
                "PowerAction",
                "node-6: power is Off, desired On (desired state changed): On",
            ),
        ]
    }

    fn sample_sensors() -> Vec<Sensor> {
        vec![
            Sensor {
                name: "Tray 6 power".into(),
                reading: Some(2.414),
                units: "W".into(),
                state: "Enabled".into(),
            },
            Sensor {
                name: "Tray 6 SoC temperature".into(),
                reading: None,
                units: "Cel".into(),
                state: "UnavailableOffline".into(),
            },
        ]
    }

    #[test]
    fn describe_says_why_sensors_are_missing() {
        let node = &sample().items[1];
        let page = describe(
            node,
            &sample_events(),
            &Err("cannot reach the Redfish service".into()),
        );
        assert!(
            page.contains("Sensors:\n  <cannot read them: cannot reach the Redfish service>\n"),
            "{page}"
        );
        let page = describe(node, &sample_events(), &Ok(Vec::new()));
        assert!(page.contains("Sensors:\n  <none>\n"), "{page}");
    }

    #[test]
    fn describe_shows_the_events_about_the_node_and_no_others() {
        // A message that merely starts with the name is not about the node.
        let mut events = sample_events();
        events.push(event(
            3,
            1_795_698_749_000,
            None,
            "Applied",
            "node-6: not about it",
        ));
        let page = describe(&sample().items[1], &events, &Ok(Vec::new()));
        assert!(page.contains("desired state changed"), "{page}");
        assert!(!page.contains("not about it"), "{page}");
    }

    /// Compares with `tests/golden/NAME`; `RACKLET_BLESS=1` rewrites the file.
    fn golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("RACKLET_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(&path, actual).expect("bless");
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} (bless with RACKLET_BLESS=1)", path.display()));
        assert_eq!(actual, expected, "{name} differs from its golden file");
    }

    #[test]
    fn describe_says_which_profile_a_node_boots_and_its_fallback() {
        let mut n = sample().items[1].clone();
        n.spec.boot_mode = BootMode::Network;
        n.spec.boot_profile = Some("debian".into());
        n.spec.known_good = Some("debian-old".into());
        n.status.boot = Some(racklet_client::NodeBoot {
            stage: "HandedOff".into(),
            accepted_targets_version: 4,
            profile: Some("debian".into()),
            git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            kernel_sha256: Some("aa".repeat(32)),
            initramfs_sha256: Some("bb".repeat(32)),
            fell_back: false,
            last_failure: String::new(),
            node_identity: String::new(),
            handed_off_at: None,
        });
        let page = describe(&n, &[], &Ok(Vec::new()));
        assert!(
            page.contains(
                "Boot:               Network, profile debian (falls back to debian-old)\n"
            ),
            "{page}"
        );
        assert!(
            page.contains("Network boot:       HandedOff, accepted targets version 4; booted debian from 0123456789abcdef: kernel sha256:aaaaaaaaaaaaaaaa initramfs sha256:bbbbbbbbbbbbbbbb\n"),
            "{page}"
        );
    }

    #[test]
    fn get_nodes_output_formats_match_their_golden_files() {
        golden("nodes.txt", &nodes(&sample(), Output::Table));
        golden("nodes-wide.txt", &nodes(&sample(), Output::Wide));
        golden("nodes.json", &nodes(&sample(), Output::Json));
        golden("nodes.yaml", &nodes(&sample(), Output::Yaml));
    }

    #[test]
    fn json_output_follows_the_kubernetes_api_conventions() {
        let v: serde_json::Value =
            serde_json::from_str(&nodes(&sample(), Output::Json)).expect("JSON");
        assert_eq!(
            (v["apiVersion"].as_str(), v["kind"].as_str()),
            (Some("v1"), Some("List"))
        );
        let item = &v["items"][1];
        assert_eq!(item["apiVersion"], API_VERSION);
        assert_eq!(item["kind"], "ComputeUnit");
        assert_eq!(item["metadata"]["name"], "node-6");
        assert_eq!(item["spec"]["powerState"], "On");
        assert_eq!(item["status"]["observedGeneration"], 2);
        let synced = &item["status"]["conditions"][0];
        assert_eq!(
            (
                synced["type"].as_str(),
                synced["status"].as_str(),
                synced["reason"].as_str()
            ),
            (Some("Synced"), Some("False"), Some("Converging"))
        );
        let time = synced["lastTransitionTime"].as_str().expect("a time");
        assert!(parse_rfc3339(time).is_some(), "{time} is RFC 3339");
        // Unknown power is left out, never null.
        assert!(v["items"][2]["status"].get("powerState").is_none());
    }

    #[test]
    fn describe_and_source_match_their_golden_files() {
        golden(
            "describe-node-6.txt",
            &describe(&sample().items[1], &sample_events(), &Ok(sample_sensors())),
        );
        let s = GitSource {
            api_version: API_VERSION.into(),
            kind: "GitSource".into(),
            metadata: meta("rack", 0),
            spec: GitSourceSpec {
                url: "file:///srv/racklet/repo".into(),
                reference: "branch main".into(),
                path: "rack".into(),
            },
            status: GitSourceStatus {
                applied_revision: Some(REVISION.into()),
                applied_subject: "Seed the rack".into(),
                fetched_revision: Some("9f00aa11bb22cc33dd44ee55ff6600778899aabb".into()),
                last_fetch_time: Some(rfc3339_ms(1_795_698_800_000)),
                last_applied_time: Some(rfc3339_ms(1_795_698_700_000)),
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: ConditionStatus::False,
                    reason: "InvalidManifests".into(),
                    message: "rack/bad.yaml:4:30: tray 9 is outside chassis-1's 7 slots".into(),
                    last_transition_time: rfc3339(1_795_698_800_000),
                    observed_generation: 0,
                }],
            },
        };
        golden("source.txt", &source(&s, Output::Table));
        golden("events.txt", &events(&sample_events()));
        let r = FirmwareRollout {
            api_version: API_VERSION.into(),
            kind: "FirmwareRollout".into(),
            metadata: meta("chassis-1", 0),
            spec: FirmwareRolloutSpec {
                policy: "bmc-v2".into(),
                chassis: "chassis-1".into(),
                version: 2,
                bundle: "firmware/racklet-bmc-2.bin".into(),
                revision: REVISION.into(),
            },
            status: FirmwareRolloutStatus {
                phase: RolloutPhase::Running,
                trays: vec![
                    TrayRollout {
                        tray: 1,
                        phase: TrayPhase::Confirmed,
                        message: String::new(),
                    },
                    TrayRollout {
                        tray: 2,
                        phase: TrayPhase::Uploaded,
                        message: "/redfish/v1/TaskService/TaskMonitors/2".into(),
                    },
                    TrayRollout {
                        tray: 3,
                        phase: TrayPhase::Pending,
                        message: String::new(),
                    },
                ],
                message: "tray 2: 40 % (Running)".into(),
            },
        };
        golden(
            "rollouts.txt",
            &rollouts(&List::new(vec![r]), Output::Table),
        );
        let rack = Rack {
            api_version: API_VERSION.into(),
            kind: "Rack".into(),
            metadata: meta("rack-1", 0),
            status: RackStatus {
                chassis: 1,
                nodes: 3,
                synced_nodes: 1,
                signed_commits_required: true,
            },
        };
        golden("racks.txt", &racks(&List::new(vec![rack]), Output::Table));
        let chassis_1 = Chassis {
            api_version: API_VERSION.into(),
            kind: "Chassis".into(),
            metadata: meta("chassis-1", 0),
            status: ChassisStatus {
                nodes: 3,
                powered_on_nodes: 1,
                synced_nodes: 1,
                rollout: Some(RolloutSummary {
                    version: 2,
                    phase: RolloutPhase::Running,
                    done_trays: 1,
                    trays: 3,
                }),
            },
        };
        golden(
            "chassis.txt",
            &chassis(&List::new(vec![chassis_1]), Output::Table),
        );
    }
}
