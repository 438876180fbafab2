//! The `racklet-rmd` program end to end: its configuration file, the Linux backplane over
//! temporary `sys/` and `dev/` trees with a BMC core behind a pseudo-terminal, Redfish over
//! HTTPS with the account it creates, journald-style logs, SIGTERM, and a restart that
//! leaves the tray's power as it was.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

mod common;

use common::daemon::{field, write_config, Daemon, Redfish, WITHIN};
use common::{wait_for, BmcOnPty, Tree};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racklet_rmd_serves_redfish_for_bmcs_on_ttyacm_ports_and_stops_cleanly_on_sigterm() {
    let tree = Tree::new();
    let bmc = BmcOnPty::start(11, 1);
    tree.plug("ttyACM0", 1, bmc.serial, &bmc.link());
    let config = write_config(&tree, &[&bmc.identity]);

    let mut daemon = Daemon::start(&config, false);
    let redfish = daemon.first_redfish(&tree);
    let password = redfish.password.clone();

    wait_for("bmc-1 trusted in Redfish", WITHIN, async || {
        redfish.trust(1).await == "Trusted"
    })
    .await;
    let status = redfish
        .post(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            serde_json::json!({"ResetType": "On"}),
        )
        .await;
    assert!(status.is_success(), "Reset On: {status}");
    wait_for("DCDC_EN high", WITHIN, async || bmc.dcdc_en()).await;
    let log = daemon.terminate();
    assert!(
        log.iter().any(|l| l.contains("SIGTERM: stopping")),
        "{log:#?}"
    );

    // A restart, logging for journald: the tray keeps its power; the BMC is trusted again.
    let mut daemon = Daemon::start(&config, true);
    let serving = daemon.wait_line("serving");
    assert!(
        serving.starts_with("<6>"),
        "journald priority prefix: {serving}"
    );
    let base = field(&serving, "redfish")
        .trim_end_matches("/redfish/v1")
        .to_string();
    let redfish = Redfish::new(&tree, base, password);
    wait_for("bmc-1 trusted after the restart", WITHIN, async || {
        redfish.trust(1).await == "Trusted"
    })
    .await;
    assert!(bmc.dcdc_en(), "a daemon start never changes a tray's power");
    wait_for("the system On in Redfish", WITHIN, async || {
        redfish.get("/redfish/v1/Systems/1").await["PowerState"] == "On"
    })
    .await;
    assert!(bmc.dcdc_en());
    daemon.terminate();
}
