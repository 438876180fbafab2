//! The rack management daemon on the Linux backplane, against BMC cores behind
//! pseudo-terminals that temporary `sys/` and `dev/` trees present as USB CDC-ACM ports:
//! enrollment and sessions, power, unplug and replug, a BMC that moves port, a new BMC in
//! a known slot, and fans through hwmon files.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{port_path, wait_for, BmcOnPty, Tree, CHASSIS};
use racklet_mgmt_proto::message::PowerAction;
use racklet_rmd::linux::{HwmonChannel, LinuxBackplane, LinuxDevices, TrayLeds};
use racklet_rmd::{Clock, DaemonConfig, DaemonCore, Rmd, Store};
use racklet_rmd_api::{BmcTrust, ChassisManager, TrayInfo};
use racklet_twin::Fault;

const WITHIN: Duration = Duration::from_secs(20);

/// The daemon of the example chassis on `tree`, trusting `approved` from the start.
fn daemon(tree: &Tree, approved: &[&BmcOnPty]) -> Rmd<LinuxBackplane> {
    daemon_with_leds(tree, approved, BTreeMap::new())
}

fn daemon_with_leds(
    tree: &Tree,
    approved: &[&BmcOnPty],
    indicators: BTreeMap<u32, TrayLeds>,
) -> Rmd<LinuxBackplane> {
    let set = common::example_set();
    let mut config = DaemonConfig::from_manifests(&set, CHASSIS).expect("chassis");
    config.pre_approved = approved.iter().map(|b| b.identity.clone()).collect();
    let fans: Vec<String> = config.fans.iter().map(|f| f.name.clone()).collect();
    let devices = LinuxDevices {
        sys_root: tree.sys.clone(),
        dev_root: tree.dev.clone(),
        ports: (1..=7).map(|s| (s, port_path(s))).collect(),
        fans: fans
            .iter()
            .zip(1..)
            .map(|(name, channel)| {
                (
                    name.clone(),
                    HwmonChannel {
                        chip: "emc2305".into(),
                        channel,
                    },
                )
            })
            .collect(),
        indicators,
    };
    let backplane = LinuxBackplane::new(&devices, &fans).expect("backplane");
    let store = Store::open(&tree.root.join("state")).expect("store");
    let core = DaemonCore::new(config, store, Some(7)).expect("core");
    let clock: Clock = Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    });
    Rmd::spawn(core, backplane, clock, Duration::from_millis(5))
}

async fn tray(rmd: &Rmd<LinuxBackplane>, slot: u32) -> TrayInfo {
    rmd.trays()
        .await
        .into_iter()
        .find(|t| t.slot == slot)
        .expect("slot in the chassis")
}

async fn wait_trust(
    rmd: &Rmd<LinuxBackplane>,
    slot: u32,
    what: &str,
    want: impl Fn(&BmcTrust) -> bool,
) {
    wait_for(what, WITHIN, async || want(&tray(rmd, slot).await.trust)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_bmcs_on_ttyacm_ports_enroll_and_power_on_drives_dcdc_en() {
    let tree = Tree::new();
    let a = BmcOnPty::start(1, 1);
    let b = BmcOnPty::start(1, 2);
    tree.plug("ttyACM0", 1, a.serial, &a.link());
    tree.plug("ttyACM1", 2, b.serial, &b.link());
    let rmd = daemon(&tree, &[&a, &b]);
    wait_trust(&rmd, 1, "tray 1 trusted", |t| *t == BmcTrust::Trusted).await;
    wait_trust(&rmd, 2, "tray 2 trusted", |t| *t == BmcTrust::Trusted).await;
    assert_eq!(tray(&rmd, 1).await.bmc_serial, Some(a.serial));

    assert!(!a.dcdc_en(), "the daemon never powers a tray on by itself");
    rmd.power(1, PowerAction::On).await.expect("power on");
    wait_for("DCDC_EN high on tray 1", WITHIN, async || a.dcdc_en()).await;
    wait_for("tray 1's watts reach the daemon", WITHIN, async || {
        matches!(tray(&rmd, 1).await.power_milliwatts, racklet_mgmt_proto::message::Reading::Milli(mw) if mw > 500)
    })
    .await;
    assert!(!b.dcdc_en(), "only tray 1 was powered on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_bmc_is_detached_and_trusted_again_when_it_enumerates_anew() {
    let tree = Tree::new();
    let a = BmcOnPty::start(2, 3);
    tree.plug("ttyACM0", 3, a.serial, &a.link());
    let rmd = daemon(&tree, &[&a]);
    wait_trust(&rmd, 3, "tray 3 trusted", |t| *t == BmcTrust::Trusted).await;

    tree.unplug("ttyACM0");
    a.unlink();
    wait_trust(&rmd, 3, "tray 3 absent after unplug", |t| {
        *t == BmcTrust::Absent
    })
    .await;

    // It comes back under another node name, as a re-enumerated device may.
    tree.plug("ttyACM4", 3, a.serial, &a.link());
    wait_trust(&rmd, 3, "tray 3 trusted after replug", |t| {
        *t == BmcTrust::Trusted
    })
    .await;
    rmd.power(3, PowerAction::On)
        .await
        .expect("the session works after replug");
    wait_for("DCDC_EN high on tray 3", WITHIN, async || a.dcdc_en()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_whose_link_ends_without_unplug_is_detached_once() {
    let tree = Tree::new();
    let a = BmcOnPty::start(3, 1);
    tree.plug("ttyACM0", 1, a.serial, &a.link());
    let rmd = daemon(&tree, &[&a]);
    wait_trust(&rmd, 1, "tray 1 trusted", |t| *t == BmcTrust::Trusted).await;
    // The far end hangs up (the BMC resets) while the node stays: EOF/EIO is a detach.
    a.unlink();
    wait_trust(&rmd, 1, "tray 1 absent after its link ended", |t| {
        *t == BmcTrust::Absent
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // past a full rescan
    assert_eq!(
        tray(&rmd, 1).await.trust,
        BmcTrust::Absent,
        "a dead node is not reopened"
    );
    let detaches = rmd
        .events(0)
        .await
        .iter()
        .filter(|e| e.message.contains("detached"))
        .count();
    assert_eq!(detaches, 1, "one detach, no flapping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_moved_to_another_hub_port_is_found_in_its_new_slot() {
    let tree = Tree::new();
    let a = BmcOnPty::start(4, 2);
    tree.plug("ttyACM0", 2, a.serial, &a.link());
    let rmd = daemon(&tree, &[&a]);
    wait_trust(&rmd, 2, "tray 2 trusted", |t| *t == BmcTrust::Trusted).await;

    tree.unplug("ttyACM0");
    a.unlink();
    tree.plug("ttyACM0", 4, a.serial, &a.link());
    wait_trust(&rmd, 2, "slot 2 empty", |t| *t == BmcTrust::Absent).await;
    wait_trust(&rmd, 4, "the BMC trusted in slot 4", |t| {
        *t == BmcTrust::Trusted
    })
    .await;
    assert_eq!(tray(&rmd, 4).await.bmc_serial, Some(a.serial));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bmc_in_a_known_slot_is_not_trusted_until_an_operator_approves_it() {
    let tree = Tree::new();
    let old = BmcOnPty::start(5, 1);
    tree.plug("ttyACM0", 1, old.serial, &old.link());
    let rmd = daemon(&tree, &[&old]);
    wait_trust(&rmd, 1, "the old BMC trusted", |t| *t == BmcTrust::Trusted).await;

    tree.unplug("ttyACM0");
    old.unlink();
    let new = BmcOnPty::start(6, 1); // another board: another serial and identity
    assert_ne!(new.identity, old.identity);
    tree.plug("ttyACM0", 1, new.serial, &new.link());
    let identity = new.identity.clone();
    wait_trust(
        &rmd,
        1,
        "the new BMC pending approval",
        |t| matches!(t, BmcTrust::PendingApproval { identity: i, .. } if *i == identity),
    )
    .await;
    assert!(
        rmd.power(1, PowerAction::On).await.is_err(),
        "an unapproved BMC is never commanded"
    );
    assert!(!new.dcdc_en());

    rmd.approve(&new.identity).await.expect("approve");
    wait_trust(&rmd, 1, "the new BMC trusted once approved", |t| {
        *t == BmcTrust::Trusted
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_pwm_follows_the_trays_temperatures_through_hwmon_goes_failsafe_when_one_is_silent_and_is_given_back(
) {
    let tree = Tree::new();
    let hwmon = tree.hwmon(3, "emc2305", 2);
    let a = BmcOnPty::start(7, 1);
    tree.plug("ttyACM0", 1, a.serial, &a.link());
    let rmd = daemon(&tree, &[&a]);
    wait_trust(&rmd, 1, "tray 1 trusted", |t| *t == BmcTrust::Trusted).await;
    rmd.power(1, PowerAction::On).await.expect("power on");
    let pwm = |c: u32| -> Option<u32> {
        std::fs::read_to_string(hwmon.join(format!("pwm{c}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    // A cool, powered tray: the zone runs at its minimum (duty 0.2 of 255).
    wait_for("pwm1 at the minimum duty", WITHIN, async || {
        pwm(1) == Some(51)
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(hwmon.join("pwm1_enable"))
            .expect("enable")
            .trim(),
        "1",
        "the daemon takes manual control of the PWM"
    );
    let fans = rmd.fans().await;
    assert!(fans.iter().all(|f| f.rpm == Some(1200)), "{fans:?}");

    a.twin
        .inject(Fault::TemperatureSensor {
            chassis: CHASSIS.into(),
            slot: 1,
            state: racklet_twin::SensorFault::Silent,
        })
        .expect("fault");
    // The powered tray's temperature is gone: its zone goes to the failsafe duty (0.8).
    wait_for("pwm1 at the failsafe duty", WITHIN, async || {
        pwm(1) == Some(204)
    })
    .await;
    assert_eq!(pwm(2), Some(51), "the other zone is not affected");

    // A stopped daemon gives the fans back to the chip's own control (mode 2 here).
    drop(rmd);
    let enable = || std::fs::read_to_string(hwmon.join("pwm1_enable")).unwrap_or_default();
    wait_for("pwm1_enable restored", WITHIN, async || {
        enable().trim() == "2"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tray_led_that_could_not_be_written_is_written_once_it_can_be() {
    let tree = Tree::new();
    let class = tree.sys.join("class/leds");
    let green = class.join("racklet:green:tray1");
    let amber = class.join("racklet:amber:tray1");
    for led in [&green, &amber] {
        std::fs::create_dir_all(led).expect("LED dir");
        std::fs::write(led.join("max_brightness"), "255\n").expect("max");
        std::fs::write(led.join("brightness"), "0\n").expect("off");
    }
    let brightness =
        |led: &std::path::Path| std::fs::read_to_string(led.join("brightness")).unwrap_or_default();
    let a = BmcOnPty::start(8, 1);
    tree.plug("ttyACM0", 1, a.serial, &a.link());
    let leds = TrayLeds {
        ok: Some("racklet:green:tray1".into()),
        attention: Some("racklet:amber:tray1".into()),
        identify: None,
    };
    let rmd = daemon_with_leds(&tree, &[], BTreeMap::from([(1, leds)]));
    // Not approved: its indicator asks for a person (amber).
    wait_for("amber lit", WITHIN, async || {
        brightness(&amber).trim() == "255"
    })
    .await;

    // The amber LED's attribute cannot be written for a while (not a file); approving the
    // BMC (its tray is off) turns the indicator off: green is written, amber fails.
    std::fs::remove_file(amber.join("brightness")).expect("unplug amber");
    std::fs::create_dir(amber.join("brightness")).expect("broken amber");
    std::fs::write(green.join("brightness"), "255\n").expect("green marker");
    rmd.approve(&a.identity).await.expect("approve");
    wait_for("green written off", WITHIN, async || {
        brightness(&green).trim() == "0"
    })
    .await;

    // Once the attribute can be written again, a retry turns amber off too.
    std::fs::remove_dir(amber.join("brightness")).expect("fix amber");
    std::fs::write(amber.join("brightness"), "255\n").expect("stale amber");
    wait_for("amber turned off by a retry", WITHIN, async || {
        brightness(&amber).trim() == "0"
    })
    .await;
}
