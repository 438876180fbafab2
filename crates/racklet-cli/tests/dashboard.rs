//! The dashboard in a real browser (Debian's chromium through playwright-core, driven by
//! `dashboard/e2e/run.mjs`) against `racklet up`: signing in (a wrong password refused),
//! the rack with all seven trays, a ReadOnly account's power controls disabled and
//! refused by the server, a forged change without the CSRF token refused, node-6 powered
//! on from the page (its tray comes on in the page and in Redfish, and the change is a
//! commit by the signed-in user), its serial console in the page both ways, and the
//! GitOps and events views. Screenshots of each view, at 1280×800 and at phone
//! width, go to `target/dashboard-screenshots/`.
//!
//! Whole-stack tier: needs `chromium` (Debian) and `npm ci` in `dashboard/`, which
//! `scripts/test` provides.
#![cfg(feature = "whole-stack-tests")]
// reason: tests may expect: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{redfish_power, root, scratch, up_ready};

fn endpoint(dir: &std::path::Path, name: &str) -> String {
    let endpoints: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("endpoints.json")).expect("endpoints"))
            .expect("JSON");
    endpoints
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["url"].as_str())
        .unwrap_or_else(|| panic!("no endpoint {name}: {endpoints:?}"))
        .to_string()
}

#[test]
fn the_dashboard_signs_in_shows_the_rack_and_powers_a_tray_on_as_a_commit_by_its_user() {
    let dir = scratch("dashboard");
    let _up = up_ready(&dir);
    let shots = root().join("target/dashboard-screenshots");
    let out = Command::new("node")
        .arg(root().join("dashboard/e2e/run.mjs"))
        .env("RACKLET_DASHBOARD_URL", endpoint(&dir, "dashboard"))
        .env(
            "RACKLET_ADMIN_PASSWORD_FILE",
            endpoint(&dir, "dashboard-admin-password").trim_start_matches("file://"),
        )
        .env(
            "RACKLET_CERT",
            racklet_client::data_dir::DataDir::new(dir.clone()).api_certificate(),
        )
        .env("RACKLET_SCREENSHOTS", &shots)
        .output()
        .expect("node runs dashboard/e2e/run.mjs (npm ci in dashboard/)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary from the browser run:\n{stdout}\n{stderr}"));
    assert_eq!(summary["ok"], true, "{summary:#}\n{stderr}");
    assert_eq!(
        summary["trays"].as_array().map(Vec::len),
        Some(7),
        "{summary:#}"
    );
    assert_eq!(summary["readOnlyRefused"], 403, "{summary:#}");
    assert_eq!(summary["forgedStatus"], 403, "{summary:#}");
    assert_eq!(summary["readOnlyConsole"], "refused", "{summary:#}");
    assert_eq!(
        summary["console"], true,
        "typed bytes reached the tray's UART: {summary:#}"
    );

    // Seen in Redfish too, not only in the page.
    let deadline = Instant::now() + Duration::from_secs(30);
    while redfish_power(&dir, 6).as_deref() != Some("On") {
        assert!(
            Instant::now() < deadline,
            "node-6 (tray 6) did not come on in Redfish"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The change is a commit by the signed-in user.
    let log = Command::new("git")
        .args(["log", "--format=%an <%ae>|%s"])
        .current_dir(dir.join("repo"))
        .output()
        .expect("git runs");
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.lines()
            .any(|l| l.starts_with("admin <admin@racklet.invalid>|") && l.contains("node-6")),
        "no commit by admin about node-6:\n{log}"
    );
    for shot in [
        "signin-1280x800.png",
        "rack-1280x800.png",
        "rack-390x844.png",
        "confirm-1280x800.png",
    ] {
        let path: PathBuf = shots.join(shot);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 1000),
            "{} was not written",
            path.display()
        );
    }
}
