//! What `racklet up` shows while it runs. On a terminal: a table of every tray that fits
//! 80 columns, redrawn in place, with the endpoints to reach the rack above it (they do
//! not scroll away) and the newest control-plane events below. Anywhere else (a pipe, a
//! log file, journald): one line per change of a tray's state and per event, never the
//! whole table again, so that a day of logs stays small.

use std::collections::{HashMap, VecDeque};

use racklet_gitops::events::Event;
use racklet_rmd_api::BmcTrust;
use racklet_sim::{RackSnapshot, TrayView};

/// Widest line the terminal view writes.
pub const COLUMNS: usize = 80;
/// Events shown under the table on a terminal.
const RECENT_EVENTS: usize = 5;

/// `text` cut to `width` characters, with `…` when something was cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The parts of a tray that change as events, not as readings.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TrayState {
    node: String,
    bmc: String,
    os: String,
}

fn bmc(v: &TrayView) -> String {
    let info = v.daemon.as_ref();
    match info.map(|i| &i.trust) {
        Some(BmcTrust::Trusted) => info
            .and_then(|i| i.power)
            .map_or("trusted".into(), |p| format!("{p:?}")),
        Some(BmcTrust::PendingApproval { .. }) => "pending".into(),
        Some(BmcTrust::Connecting) => "connecting".into(),
        _ => "-".into(),
    }
}

fn state(v: &TrayView) -> TrayState {
    let s = &v.twin;
    TrayState {
        node: s.hostname.clone().unwrap_or_else(|| "(empty)".into()),
        bmc: bmc(v),
        os: format!("{}{}", s.os.as_str(), if s.throttled { "*" } else { "" }),
    }
}

fn event_line(e: &Event) -> String {
    format!("{} {}", e.reason.as_str(), e.message)
}

/// The live view of one `racklet up`.
pub struct LiveView {
    tty: bool,
    /// Printed above the table on every redraw (where to reach the rack).
    header: Vec<String>,
    last: HashMap<(String, u32), TrayState>,
    tripped: HashMap<(String, String), bool>,
    recent: VecDeque<String>,
}

impl LiveView {
    pub fn new(tty: bool, header: Vec<String>) -> LiveView {
        LiveView {
            tty,
            header,
            last: HashMap::new(),
            tripped: HashMap::new(),
            recent: VecDeque::new(),
        }
    }

    /// What to write now for `snap` and the events recorded since the last call.
    pub fn render(&mut self, snap: &RackSnapshot, events: &[Event]) -> String {
        if self.tty {
            for e in events {
                self.recent.push_back(event_line(e));
                if self.recent.len() > RECENT_EVENTS {
                    self.recent.pop_front();
                }
            }
            table(snap, &self.header, &self.recent)
        } else {
            self.changes(snap, events)
        }
    }

    /// One line per tray whose state changed (every tray the first time), per PSU rail
    /// that tripped or recovered, and per event.
    fn changes(&mut self, snap: &RackSnapshot, events: &[Event]) -> String {
        let t = snap.now.as_secs_f64();
        let mut out = String::new();
        for v in &snap.trays {
            let key = (v.twin.chassis.clone(), v.twin.slot);
            let now = state(v);
            let line = match self.last.get(&key) {
                Some(was) if *was == now => None,
                Some(was) => {
                    let mut what = Vec::new();
                    if was.node != now.node {
                        what.push(format!("node {} -> {}", was.node, now.node));
                    }
                    if was.bmc != now.bmc {
                        what.push(format!("bmc {} -> {}", was.bmc, now.bmc));
                    }
                    if was.os != now.os {
                        what.push(format!("os {} -> {}", was.os, now.os));
                    }
                    Some(what.join(", "))
                }
                None => Some(format!("bmc {}, os {}", now.bmc, now.os)),
            };
            if let Some(line) = line {
                out.push_str(&format!(
                    "t={t:.1}s {} tray {} {}: {line}\n",
                    key.0, key.1, now.node
                ));
            }
            self.last.insert(key, now);
        }
        for p in &snap.psus {
            for r in &p.rails {
                let key = (p.chassis.clone(), r.rail.to_string());
                let was = self.tripped.insert(key, r.tripped).unwrap_or(false);
                if was != r.tripped {
                    let what = if r.tripped { "TRIPPED" } else { "back" };
                    out.push_str(&format!("t={t:.1}s {} PSU {} {what}\n", p.chassis, r.rail));
                }
            }
        }
        for e in events {
            out.push_str(&format!("event {}\n", event_line(e)));
        }
        out
    }
}

/// The terminal table: header lines, one row per tray, PSU rails, recent events; no line
/// wider than [`COLUMNS`].
fn table(snap: &RackSnapshot, header: &[String], recent: &VecDeque<String>) -> String {
    let mut out = String::from("\x1b[H\x1b[2J");
    let mut line = |text: String| {
        out.push_str(&fit(&text, COLUMNS));
        out.push('\n');
    };
    line(format!("racklet twin  t={:.1}s", snap.now.as_secs_f64()));
    for h in header {
        line(h.clone());
    }
    line(format!(
        "{:<10} {:>2} {:<8} {:<9} {:<10} {:<11} {:>6} {:>5} {:>5} {:>4}",
        "CHASSIS", "T", "NODE", "BOARD", "BMC", "OS", "WATTS", "°C", "RPM", "DUTY"
    ));
    for v in &snap.trays {
        let s = &v.twin;
        let now = state(v);
        let celsius = s.soc_celsius.map_or("-".to_string(), |c| format!("{c:.1}"));
        let rpm = s.fan_rpm.map_or("-".to_string(), |r| format!("{r:.0}"));
        let duty = v
            .zone_duty_percent
            .map_or("-".to_string(), |d| format!("{d:.0}%"));
        line(format!(
            "{:<10} {:>2} {:<8} {:<9} {:<10} {:<11} {:>6.2} {:>5} {:>5} {:>4}",
            fit(&s.chassis, 10),
            s.slot,
            fit(&now.node, 8),
            fit(s.board.as_deref().unwrap_or("-"), 9),
            fit(&now.bmc, 10),
            fit(&now.os, 11),
            s.watts,
            fit(&celsius, 5),
            fit(&rpm, 5),
            fit(&duty, 4),
        ));
    }
    for c in &snap.psus {
        let rails: Vec<String> = c
            .rails
            .iter()
            .map(|r| {
                format!(
                    "{} {:.2}/{}A{}",
                    r.rail,
                    r.amps,
                    r.limit_amps,
                    if r.tripped { " TRIPPED" } else { "" }
                )
            })
            .collect();
        line(format!("{} PSU  {}", c.chassis, rails.join("  ")));
    }
    if !recent.is_empty() {
        line("EVENTS (racklet events --watch for all)".into());
        for e in recent {
            line(format!("  {e}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(test: &str) -> RackSnapshot {
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let (set, diags) = racklet_model::ManifestSet::load(&[examples]);
        assert!(diags.is_empty(), "{diags:?}");
        let dir =
            std::env::temp_dir().join(format!("racklet-up-view-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut rack = crate::chassis::enrolled_rack(&set, &dir).expect("rack");
        rack.advance(std::time::Duration::from_secs(5));
        let snap = rack.snapshot();
        let _ = std::fs::remove_dir_all(&dir);
        snap
    }

    fn event(message: &str) -> Event {
        Event {
            sequence: 1,
            unix_ms: 0,
            reason: racklet_gitops::events::EventReason::PowerAction,
            node: None,
            message: message.into(),
        }
    }

    #[test]
    fn the_terminal_table_fits_80_columns() {
        let long = format!("controlplane https://127.0.0.1:40000/{}", "x".repeat(100));
        let mut view = LiveView::new(true, vec![long]);
        let text = view.render(&snapshot("columns"), &[event(&"a long event ".repeat(20))]);
        for l in text.lines() {
            assert!(
                l.chars().count() <= COLUMNS,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(
            text.contains("controlplane https://127.0.0.1:40000/"),
            "{text}"
        );
        assert!(text.contains("node-6"), "{text}");
    }

    #[test]
    fn a_log_gets_lines_of_changes_not_the_table_again() {
        let mut view = LiveView::new(false, Vec::new());
        let snap = snapshot("log");
        let first = view.render(&snap, &[]);
        assert_eq!(first.lines().count(), snap.trays.len(), "{first}");
        assert!(!first.contains("CHASSIS"), "{first}");
        // Nothing changed: nothing written.
        assert_eq!(view.render(&snap, &[]), "");
        let events = view.render(&snap, &[event("node-6: power is Off, desired On")]);
        assert_eq!(
            events,
            "event PowerAction node-6: power is Off, desired On\n"
        );
        let mut changed = snap.clone();
        changed.trays[0].twin.os = racklet_twin::OsState::Halted;
        let line = view.render(&changed, &[]);
        assert!(
            line.starts_with("t=") && line.contains("-> halted"),
            "{line}"
        );
    }
}
