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

/// Renders one chassis' metrics, ending with `# EOF`.
pub fn render(
    chassis: &str,
    trays: &[TrayInfo],
    fans: &[FanInfo],
    drops: &[(u32, DropCounters)],
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# TYPE racklet_build_info gauge\n# HELP racklet_build_info Racklet build."
    );
    let _ = writeln!(
        o,
        "racklet_build_info{{version=\"{}\",component=\"rmd\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(o, "# TYPE racklet_bmc_up gauge\n# HELP racklet_bmc_up 1 when the tray's BMC is trusted and in session.");
    for t in trays {
        let up = u8::from(t.trust == BmcTrust::Trusted);
        let _ = writeln!(
            o,
            "racklet_bmc_up{{chassis=\"{chassis}\",tray=\"{}\"}} {up}",
            t.slot
        );
    }
    let node = |t: &TrayInfo| {
        format!(
            "chassis=\"{chassis}\",tray=\"{}\",node=\"{}\"",
            t.slot,
            t.name.as_deref().unwrap_or("")
        )
    };
    let _ = writeln!(o, "# TYPE racklet_node_power_watts gauge\n# UNIT racklet_node_power_watts watts\n# HELP racklet_node_power_watts Power at the board input.");
    for t in trays {
        if let Reading::Milli(mw) = t.power_milliwatts {
            let _ = writeln!(
                o,
                "racklet_node_power_watts{{{}}} {}",
                node(t),
                mw as f64 / 1000.0
            );
        }
    }
    let _ = writeln!(o, "# TYPE racklet_node_power_state gauge\n# HELP racklet_node_power_state State of the power reading (1 for the current state).");
    for t in trays {
        let _ = writeln!(
            o,
            "racklet_node_power_state{{{},state=\"{}\"}} 1",
            node(t),
            state(t.power_milliwatts)
        );
    }
    let _ = writeln!(o, "# TYPE racklet_node_energy_joules counter\n# UNIT racklet_node_energy_joules joules\n# HELP racklet_node_energy_joules Energy since the BMC started.");
    for t in trays.iter().filter(|t| t.trust == BmcTrust::Trusted) {
        let _ = writeln!(
            o,
            "racklet_node_energy_joules_total{{{}}} {}",
            node(t),
            t.energy_millijoules as f64 / 1000.0
        );
    }
    let _ = writeln!(o, "# TYPE racklet_node_temperature_celsius gauge\n# UNIT racklet_node_temperature_celsius celsius\n# HELP racklet_node_temperature_celsius SoC temperature.");
    for t in trays {
        if let Reading::Milli(m) = t.soc_millicelsius {
            let _ = writeln!(
                o,
                "racklet_node_temperature_celsius{{{}}} {}",
                node(t),
                m as f64 / 1000.0
            );
        }
    }
    let _ = writeln!(o, "# TYPE racklet_node_temperature_state gauge\n# HELP racklet_node_temperature_state State of the temperature reading.");
    for t in trays {
        let _ = writeln!(
            o,
            "racklet_node_temperature_state{{{},state=\"{}\"}} 1",
            node(t),
            state(t.soc_millicelsius)
        );
    }
    let _ = writeln!(
        o,
        "# TYPE racklet_fan_speed_rpm gauge\n# HELP racklet_fan_speed_rpm Tachometer reading."
    );
    for f in fans {
        if let Some(rpm) = f.rpm {
            let _ = writeln!(
                o,
                "racklet_fan_speed_rpm{{chassis=\"{chassis}\",fan=\"{}\",zone=\"{}\"}} {rpm}",
                f.name, f.zone
            );
        }
    }
    let _ = writeln!(o, "# TYPE racklet_fan_duty_ratio gauge\n# HELP racklet_fan_duty_ratio PWM duty the fan loop set.");
    for f in fans {
        let _ = writeln!(
            o,
            "racklet_fan_duty_ratio{{chassis=\"{chassis}\",fan=\"{}\",zone=\"{}\"}} {}",
            f.name,
            f.zone,
            f.duty_percent / 100.0
        );
    }
    let _ = writeln!(o, "# TYPE racklet_mgmt_frames_dropped counter\n# HELP racklet_mgmt_frames_dropped Management frames dropped, by reason.");
    for (slot, d) in drops {
        for (reason, n) in [
            ("oversized", d.oversized),
            ("truncated", d.truncated),
            ("malformed", d.malformed),
            ("tampered", d.tampered),
            ("replayed", d.replayed),
            ("not_for_us", d.not_for_us),
            ("unexpected", d.unexpected),
        ] {
            let _ = writeln!(o, "racklet_mgmt_frames_dropped_total{{chassis=\"{chassis}\",tray=\"{slot}\",reason=\"{reason}\"}} {n}");
        }
    }
    let total: f64 = trays
        .iter()
        .filter_map(|t| match t.power_milliwatts {
            Reading::Milli(mw) => Some(mw as f64 / 1000.0),
            _ => None,
        })
        .sum();
    let _ = writeln!(o, "# TYPE racklet_chassis_power_watts gauge\n# UNIT racklet_chassis_power_watts watts\n# HELP racklet_chassis_power_watts Sum of the trays' measured power.");
    let _ = writeln!(
        o,
        "racklet_chassis_power_watts{{chassis=\"{chassis}\"}} {total}"
    );
    o.push_str("# EOF\n");
    o
}
