//! How `racklet get` and `describe` print: a table (kubectl's default), a wide table,
//! JSON or YAML. Pure functions of the status, golden-tested.

use racklet_gitops::events::Event;
use racklet_gitops::power::NodeStatus;
use racklet_gitops::SourceStatus;
use serde::Serialize;

/// `-o`: how to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
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
    let value = serde_json::to_value(v).unwrap_or_default();
    let mut out = String::new();
    let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
    match emitter.dump(&to_yaml(&value)) {
        Ok(()) => out + "\n",
        Err(e) => format!("{e}\n"),
    }
}

fn to_yaml(v: &serde_json::Value) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    match v {
        serde_json::Value::Null => Yaml::Null,
        serde_json::Value::Bool(b) => Yaml::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        serde_json::Value::String(s) => Yaml::String(s.clone()),
        serde_json::Value::Array(a) => Yaml::Array(a.iter().map(to_yaml).collect()),
        serde_json::Value::Object(o) => Yaml::Hash(
            o.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

fn debug_name<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

/// `racklet get nodes`.
pub fn nodes(nodes: &[NodeStatus], output: Output) -> String {
    match output {
        Output::Json => return json(&nodes),
        Output::Yaml => return yaml(&nodes),
        Output::Table | Output::Wide => {}
    }
    let wide = output == Output::Wide;
    let mut headers = vec![
        "NAME", "CHASSIS", "TRAY", "DESIRED", "OBSERVED", "SYNC", "HEALTH",
    ];
    if wide {
        headers.extend(["GENERATION", "REVISION", "REASON", "MESSAGE"]);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let mut r = vec![
                n.name.clone(),
                n.chassis.clone(),
                n.tray.to_string(),
                n.desired_power.as_str().to_string(),
                n.observed_power
                    .clone()
                    .unwrap_or_else(|| "<unknown>".into()),
                debug_name(&n.sync),
                debug_name(&n.health),
            ];
            if wide {
                r.extend([
                    format!("{}/{}", n.observed_generation, n.generation),
                    racklet_gitops::short(&n.revision).to_string(),
                    n.reason.clone(),
                    n.message.clone(),
                ]);
            }
            r
        })
        .collect();
    table(&headers, &rows)
}

/// `racklet get source`.
pub fn source(s: &SourceStatus, output: Output) -> String {
    match output {
        Output::Json => json(s),
        Output::Yaml => yaml(s),
        Output::Table | Output::Wide => {
            let applied = s.applied.as_deref().map_or("<none>", racklet_gitops::short);
            let mut headers = vec!["URL", "REFERENCE", "PATH", "APPLIED", "READY", "REASON"];
            let mut row = vec![
                s.url.clone(),
                s.reference.clone(),
                s.path.clone(),
                applied.to_string(),
                s.ready.to_string(),
                s.reason.clone(),
            ];
            if output == Output::Wide {
                headers.push("SUBJECT");
                row.push(s.applied_subject.clone());
            }
            let mut out = table(&headers, &[row]);
            if !s.message.is_empty() {
                out.push('\n');
                out.push_str(&s.message);
                out.push('\n');
            }
            out
        }
    }
}

/// `racklet get racks`: the revision's racks (all chassis count toward the one rack a
/// Racklet rack is; sync counts are over every node).
pub fn racks(
    desired: &racklet_gitops::desired::Desired,
    nodes: &[NodeStatus],
    output: Output,
) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        name: &'a str,
        chassis: usize,
        nodes: usize,
        synced: usize,
        signed_commits_required: bool,
    }
    let rows: Vec<Row> = desired
        .racks
        .iter()
        .map(|r| Row {
            name: r,
            chassis: desired.chassis.len(),
            nodes: nodes.len(),
            synced: nodes
                .iter()
                .filter(|n| n.sync == racklet_gitops::power::Sync::Synced)
                .count(),
            signed_commits_required: !desired.signers.is_empty(),
        })
        .collect();
    match output {
        Output::Json => json(&rows),
        Output::Yaml => yaml(&rows),
        Output::Table | Output::Wide => table(
            &["NAME", "CHASSIS", "NODES", "SYNCED", "SIGNED COMMITS"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.to_string(),
                        r.chassis.to_string(),
                        r.nodes.to_string(),
                        format!("{}/{}", r.synced, r.nodes),
                        if r.signed_commits_required {
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

/// `racklet get chassis`.
pub fn chassis(
    desired: &racklet_gitops::desired::Desired,
    nodes: &[NodeStatus],
    rollouts: &[racklet_gitops::firmware::Rollout],
    output: Output,
) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        name: &'a str,
        nodes: usize,
        on: usize,
        synced: usize,
        firmware: String,
    }
    let rows: Vec<Row> = desired
        .chassis
        .iter()
        .map(|c| {
            let mine: Vec<&NodeStatus> = nodes.iter().filter(|n| n.chassis == *c).collect();
            let firmware = rollouts.iter().find(|r| r.chassis == *c).map_or_else(
                || "-".to_string(),
                |r| {
                    format!(
                        "v{} {:?} {}/{}",
                        r.version,
                        r.state,
                        r.done(),
                        r.trays.len()
                    )
                },
            );
            Row {
                name: c,
                nodes: mine.len(),
                on: mine
                    .iter()
                    .filter(|n| n.observed_power.as_deref() == Some("On"))
                    .count(),
                synced: mine
                    .iter()
                    .filter(|n| n.sync == racklet_gitops::power::Sync::Synced)
                    .count(),
                firmware,
            }
        })
        .collect();
    match output {
        Output::Json => json(&rows),
        Output::Yaml => yaml(&rows),
        Output::Table | Output::Wide => table(
            &["NAME", "NODES", "ON", "SYNCED", "FIRMWARE"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.to_string(),
                        r.nodes.to_string(),
                        r.on.to_string(),
                        format!("{}/{}", r.synced, r.nodes),
                        r.firmware.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
}

/// `racklet get rollouts`.
pub fn rollouts(rollouts: &[racklet_gitops::firmware::Rollout], output: Output) -> String {
    match output {
        Output::Json => return json(&rollouts),
        Output::Yaml => return yaml(&rollouts),
        Output::Table | Output::Wide => {}
    }
    let rows: Vec<Vec<String>> = rollouts
        .iter()
        .map(|r| {
            vec![
                r.chassis.clone(),
                r.policy.clone(),
                r.version.to_string(),
                debug_name(&r.state),
                format!("{}/{}", r.done(), r.trays.len()),
                r.message.clone(),
            ]
        })
        .collect();
    table(
        &["CHASSIS", "POLICY", "VERSION", "STATE", "TRAYS", "MESSAGE"],
        &rows,
    )
}

/// One event per line: `TIME  MESSAGE`.
pub fn events(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| format!("{}  {}\n", rfc3339(e.unix_ms), e.message))
        .collect()
}

/// `racklet describe node N`.
/// `describe node`: status, conditions, the tray's sensors as read from Redfish just now
/// (or why they could not be), and the node's recent events.
pub fn describe(
    n: &NodeStatus,
    events: &[Event],
    sensors: &Result<Vec<racklet_redfish_client::Sensor>, String>,
) -> String {
    let mut out = String::new();
    let field = |out: &mut String, k: &str, v: &str| out.push_str(&format!("{k:<20}{v}\n"));
    field(&mut out, "Name:", &n.name);
    field(&mut out, "Chassis:", &n.chassis);
    field(&mut out, "Tray:", &n.tray.to_string());
    field(&mut out, "Desired power:", n.desired_power.as_str());
    field(
        &mut out,
        "Observed power:",
        n.observed_power.as_deref().unwrap_or("<unknown>"),
    );
    field(&mut out, "Revision:", &n.revision);
    field(
        &mut out,
        "Generation:",
        &format!("{} (observed {})", n.generation, n.observed_generation),
    );
    out.push_str("Conditions:\n");
    out.push_str(&format!(
        "  {:<10}{:<13}{:<14}{}\n",
        "TYPE", "STATUS", "REASON", "SINCE"
    ));
    let since = rfc3339(n.last_transition_unix_ms);
    out.push_str(&format!(
        "  {:<10}{:<13}{:<14}{}\n",
        "Synced",
        debug_name(&n.sync),
        n.reason,
        since
    ));
    out.push_str(&format!(
        "  {:<10}{:<13}{:<14}{}\n",
        "Healthy",
        debug_name(&n.health),
        n.reason,
        since
    ));
    field(&mut out, "Message:", &n.message);
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
        .filter(|e| e.message.starts_with(&format!("{}:", n.name)))
        .collect();
    if mine.is_empty() {
        out.push_str("  <none>\n");
    }
    for e in mine.iter().rev().take(10).rev() {
        out.push_str(&format!("  {}  {}\n", rfc3339(e.unix_ms), e.message));
    }
    out
}

pub use racklet_gitops::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;
    use racklet_gitops::desired::Power;
    use racklet_gitops::power::{Health, Sync};

    fn sample() -> Vec<NodeStatus> {
        let n = |name: &str,
                 tray,
                 desired,
                 observed: Option<&str>,
                 sync,
                 health,
                 reason: &str,
                 message: &str| NodeStatus {
            name: name.into(),
            chassis: "chassis-1".into(),
            tray,
            desired_power: desired,
            observed_power: observed.map(str::to_string),
            sync,
            health,
            reason: reason.into(),
            message: message.into(),
            generation: 2,
            observed_generation: 2,
            revision: "5d677d8a1b2c3d4e5f60718293a4b5c6d7e8f901".into(),
            last_transition_unix_ms: 1_795_698_748_832,
        };
        vec![
            n(
                "node-1",
                1,
                Power::On,
                Some("On"),
                Sync::Synced,
                Health::Healthy,
                "Converged",
                "power is On, as desired",
            ),
            n(
                "node-6",
                6,
                Power::On,
                Some("PoweringOn"),
                Sync::OutOfSync,
                Health::Progressing,
                "Converging",
                "On sent; power was Off",
            ),
            n(
                "node-7",
                7,
                Power::Off,
                None,
                Sync::Unknown,
                Health::Unknown,
                "ChassisUnreachable",
                "cannot reach the Redfish service",
            ),
        ]
    }

    fn sample_events() -> Vec<Event> {
        vec![
            Event {
                sequence: 1,
                unix_ms: 1_795_698_700_000,
                message: "applied 5d677d8a1b2c: Seed the rack".into(),
            },
            Event {
                sequence: 2,
                unix_ms: 1_795_698_748_900,
                message: "node-6: power is Off, desired On (desired state changed): On".into(),
            },
        ]
    }

    fn sample_sensors() -> Vec<racklet_redfish_client::Sensor> {
        vec![
            racklet_redfish_client::Sensor {
                name: "Tray 6 power".into(),
                reading: Some(2.414),
                units: "W".into(),
                state: "Enabled".into(),
            },
            racklet_redfish_client::Sensor {
                name: "Tray 6 SoC temperature".into(),
                reading: None,
                units: "Cel".into(),
                state: "UnavailableOffline".into(),
            },
        ]
    }

    #[test]
    fn describe_says_why_sensors_are_missing() {
        let page = describe(
            &sample()[1],
            &sample_events(),
            &Err("cannot reach the Redfish service".into()),
        );
        assert!(
            page.contains("Sensors:\n  <cannot read them: cannot reach the Redfish service>\n"),
            "{page}"
        );
        let page = describe(&sample()[1], &sample_events(), &Ok(Vec::new()));
        assert!(page.contains("Sensors:\n  <none>\n"), "{page}");
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
    fn get_nodes_output_formats_match_their_golden_files() {
        golden("nodes.txt", &nodes(&sample(), Output::Table));
        golden("nodes-wide.txt", &nodes(&sample(), Output::Wide));
        golden("nodes.json", &nodes(&sample(), Output::Json));
        golden("nodes.yaml", &nodes(&sample(), Output::Yaml));
    }

    #[test]
    fn describe_and_source_match_their_golden_files() {
        golden(
            "describe-node-6.txt",
            &describe(&sample()[1], &sample_events(), &Ok(sample_sensors())),
        );
        let s = SourceStatus {
            url: "file:///srv/racklet/repo".into(),
            reference: "branch main".into(),
            path: "rack".into(),
            applied: Some("5d677d8a1b2c3d4e5f60718293a4b5c6d7e8f901".into()),
            applied_subject: "Seed the rack".into(),
            fetched: Some("9f00aa11bb22cc33dd44ee55ff6600778899aabb".into()),
            ready: false,
            reason: "InvalidManifests".into(),
            message: "rack/bad.yaml:4:30: tray 9 is outside chassis-1's 7 slots".into(),
            last_fetch_unix_ms: 1_795_698_800_000,
            last_applied_unix_ms: 1_795_698_700_000,
        };
        golden("source.txt", &source(&s, Output::Table));
        golden("events.txt", &events(&sample_events()));
        use racklet_gitops::firmware::{Rollout, RolloutState, Step, TrayStep};
        let r = Rollout {
            policy: "bmc-v2".into(),
            chassis: "chassis-1".into(),
            version: 2,
            bundle: "firmware/racklet-bmc-2.bin".into(),
            commit: "5d677d8a1b2c3d4e5f60718293a4b5c6d7e8f901".into(),
            state: RolloutState::Running,
            trays: vec![
                TrayStep {
                    tray: 1,
                    step: Step::Confirmed,
                },
                TrayStep {
                    tray: 2,
                    step: Step::Uploaded {
                        monitor: "/redfish/v1/TaskService/TaskMonitors/2".into(),
                    },
                },
                TrayStep {
                    tray: 3,
                    step: Step::Pending,
                },
            ],
            message: "tray 2: 40 % (Running)".into(),
        };
        golden(
            "rollouts.txt",
            &rollouts(std::slice::from_ref(&r), Output::Table),
        );
        let desired = racklet_gitops::desired::Desired {
            racks: vec!["rack-1".into()],
            chassis: vec!["chassis-1".into()],
            signers: vec!["ssh-ed25519 AAAA ops".into()],
            ..Default::default()
        };
        golden("racks.txt", &racks(&desired, &sample(), Output::Table));
        golden(
            "chassis.txt",
            &chassis(&desired, &sample(), &[r], Output::Table),
        );
    }
}
