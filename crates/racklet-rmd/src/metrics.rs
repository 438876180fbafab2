//! OpenMetrics exposition (names in base units, as BRIEF §5 lists them).

use std::fmt::Write;

use racklet_mgmt_proto::message::Reading;
use racklet_mgmt_proto::DropCounters;
use racklet_rmd_api::{BmcTrust, FanInfo, TrayInfo};

fn state(r: Reading) -> &'static str {
    match r {
        Reading::Milli(_) => "ok",
        Reading::Absent => "absent",
        Reading::Stale => "stale",
    }
}

/// One chassis' state, as the exposition needs it.
pub struct ChassisMetrics {
    pub chassis: String,
    pub trays: Vec<TrayInfo>,
    pub fans: Vec<FanInfo>,
    pub drops: Vec<(u32, DropCounters)>,
}

/// Escapes a label value (OpenMetrics: backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(o: &mut String, name: &str, kind: &str, unit: Option<&str>, help: &str) {
    let _ = writeln!(o, "# TYPE {name} {kind}");
    if let Some(u) = unit {
        let _ = writeln!(o, "# UNIT {name} {u}");
    }
    let _ = writeln!(o, "# HELP {name} {help}");
}

/// Renders every chassis' metrics as one exposition, each family once, ending `# EOF`.
pub fn render(all: &[ChassisMetrics]) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "racklet_build_info",
        "gauge",
        None,
        "Racklet build.",
    );
    let _ = writeln!(
        o,
        "racklet_build_info{{version=\"{}\",component=\"rmd\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let node = |c: &str, t: &TrayInfo| {
        format!(
            "chassis=\"{}\",tray=\"{}\",node=\"{}\"",
            esc(c),
            t.slot,
            esc(t.name.as_deref().unwrap_or(""))
        )
    };
    family(
        &mut o,
        "racklet_bmc_up",
        "gauge",
        None,
        "1 when the tray's BMC is trusted and in session.",
    );
    for m in all {
        for t in &m.trays {
            let up = u8::from(t.trust == BmcTrust::Trusted);
            let _ = writeln!(
                o,
                "racklet_bmc_up{{chassis=\"{}\",tray=\"{}\"}} {up}",
                esc(&m.chassis),
                t.slot
            );
        }
    }
    family(
        &mut o,
        "racklet_bmc_trust",
        "stateset",
        None,
        "How far the chassis trusts the tray's BMC: absent, connecting, pending approval (an operator must approve or reject it), trusted, refused.",
    );
    for m in all {
        for t in &m.trays {
            let now = match t.trust {
                BmcTrust::Absent => "absent",
                BmcTrust::Connecting => "connecting",
                BmcTrust::PendingApproval { .. } => "pending_approval",
                BmcTrust::Trusted => "trusted",
                BmcTrust::Refused { .. } => "refused",
            };
            for state in [
                "absent",
                "connecting",
                "pending_approval",
                "trusted",
                "refused",
            ] {
                let _ = writeln!(
                    o,
                    "racklet_bmc_trust{{chassis=\"{}\",tray=\"{}\",racklet_bmc_trust=\"{state}\"}} {}",
                    esc(&m.chassis),
                    t.slot,
                    u8::from(state == now)
                );
            }
        }
    }
    family(
        &mut o,
        "racklet_node_power_watts",
        "gauge",
        Some("watts"),
        "Power at the board input.",
    );
    for m in all {
        for t in &m.trays {
            if let Reading::Milli(mw) = t.power_milliwatts {
                let _ = writeln!(
                    o,
                    "racklet_node_power_watts{{{}}} {}",
                    node(&m.chassis, t),
                    mw as f64 / 1000.0
                );
            }
        }
    }
    family(
        &mut o,
        "racklet_node_power_state",
        "gauge",
        None,
        "State of the power reading (1 for the current state).",
    );
    for m in all {
        for t in &m.trays {
            let _ = writeln!(
                o,
                "racklet_node_power_state{{{},state=\"{}\"}} 1",
                node(&m.chassis, t),
                state(t.power_milliwatts)
            );
        }
    }
    family(
        &mut o,
        "racklet_node_energy_joules",
        "counter",
        Some("joules"),
        "Energy since the BMC started.",
    );
    for m in all {
        for t in m.trays.iter().filter(|t| t.trust == BmcTrust::Trusted) {
            let _ = writeln!(
                o,
                "racklet_node_energy_joules_total{{{}}} {}",
                node(&m.chassis, t),
                t.energy_millijoules as f64 / 1000.0
            );
        }
    }
    family(
        &mut o,
        "racklet_node_temperature_celsius",
        "gauge",
        Some("celsius"),
        "SoC temperature.",
    );
    for m in all {
        for t in &m.trays {
            if let Reading::Milli(v) = t.soc_millicelsius {
                let _ = writeln!(
                    o,
                    "racklet_node_temperature_celsius{{{}}} {}",
                    node(&m.chassis, t),
                    v as f64 / 1000.0
                );
            }
        }
    }
    family(
        &mut o,
        "racklet_node_temperature_state",
        "gauge",
        None,
        "State of the temperature reading.",
    );
    for m in all {
        for t in &m.trays {
            let _ = writeln!(
                o,
                "racklet_node_temperature_state{{{},state=\"{}\"}} 1",
                node(&m.chassis, t),
                state(t.soc_millicelsius)
            );
        }
    }
    family(
        &mut o,
        "racklet_fan_speed_rpm",
        "gauge",
        None,
        "Tachometer reading.",
    );
    for m in all {
        for f in &m.fans {
            if let Some(rpm) = f.rpm {
                let _ = writeln!(
                    o,
                    "racklet_fan_speed_rpm{{chassis=\"{}\",fan=\"{}\",zone=\"{}\"}} {rpm}",
                    esc(&m.chassis),
                    esc(&f.name),
                    esc(&f.zone)
                );
            }
        }
    }
    family(
        &mut o,
        "racklet_fan_duty_ratio",
        "gauge",
        None,
        "PWM duty the fan loop set.",
    );
    for m in all {
        for f in &m.fans {
            let _ = writeln!(
                o,
                "racklet_fan_duty_ratio{{chassis=\"{}\",fan=\"{}\",zone=\"{}\"}} {}",
                esc(&m.chassis),
                esc(&f.name),
                esc(&f.zone),
                f.duty_percent / 100.0
            );
        }
    }
    family(
        &mut o,
        "racklet_mgmt_frames_dropped",
        "counter",
        None,
        "Management frames dropped, by reason.",
    );
    for m in all {
        for (slot, d) in &m.drops {
            for (reason, n) in [
                ("oversized", d.oversized),
                ("truncated", d.truncated),
                ("malformed", d.malformed),
                ("tampered", d.tampered),
                ("replayed", d.replayed),
                ("not_for_us", d.not_for_us),
                ("unexpected", d.unexpected),
            ] {
                let _ = writeln!(o, "racklet_mgmt_frames_dropped_total{{chassis=\"{}\",tray=\"{slot}\",reason=\"{reason}\"}} {n}", esc(&m.chassis));
            }
        }
    }
    family(
        &mut o,
        "racklet_chassis_power_watts",
        "gauge",
        Some("watts"),
        "Sum of the trays' measured power.",
    );
    for m in all {
        let total: f64 = m
            .trays
            .iter()
            .filter_map(|t| match t.power_milliwatts {
                Reading::Milli(mw) => Some(mw as f64 / 1000.0),
                _ => None,
            })
            .sum();
        let _ = writeln!(
            o,
            "racklet_chassis_power_watts{{chassis=\"{}\"}} {total}",
            esc(&m.chassis)
        );
    }
    o.push_str("# EOF\n");
    o
}
