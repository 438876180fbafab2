//! The rack end to end on the twin: BMC firmware cores, the management link, the rack
//! management daemon. Each fault of the firmware issue is a test here.

// reason: tests may expect, helpers included: a panic is their failure report; their
// sizes and readings are small and known.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use racklet_mgmt_proto::message::{PowerAction, PowerState, Request};
use racklet_model::ManifestSet;
use racklet_rmd_api::{BmcTrust, ChassisManager, RmdError, UpdateStep};
use racklet_sim::Rack;
use racklet_twin::{Fault, OsState, SensorFault, TwinConfig};

const CH: &str = "chassis-1";

fn examples() -> ManifestSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let (set, diags) = ManifestSet::load(&[dir]);
    assert!(diags.is_empty(), "{diags:?}");
    set
}

fn data_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("racklet-sim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config() -> TwinConfig {
    TwinConfig {
        step: Duration::from_millis(5),
        ..TwinConfig::default()
    }
}

fn start(name: &str, approve: bool) -> (Rack, ManifestSet, PathBuf) {
    let set = examples();
    let dir = data_dir(name);
    let mut rack = Rack::start(&set, &config(), &dir, approve).expect("rack starts");
    rack.advance(Duration::from_secs(3));
    (rack, set, dir)
}

/// Runs an API call that does not wait for the daemon's loop (the rack is stepped by the
/// test, so nothing else would advance it).
fn now<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn daemon(rack: &Rack) -> &racklet_rmd::Rmd<racklet_sim::TwinBackplane> {
    rack.daemon(CH).expect("daemon")
}

fn trust(rack: &Rack, slot: u32) -> BmcTrust {
    daemon(rack).snapshot().trays[(slot - 1) as usize]
        .trust
        .clone()
}

fn fans(rack: &Rack) -> Vec<racklet_rmd_api::FanInfo> {
    daemon(rack).snapshot().fans
}

fn power(rack: &mut Rack, slot: u32, action: PowerAction) -> Result<PowerState, RmdError> {
    let mut reply = daemon(rack).submit(slot, Request::Power(action))?;
    for _ in 0..100 {
        rack.advance(Duration::from_millis(100));
        if let Some(r) = reply.try_take() {
            return r.map(|resp| match resp {
                racklet_mgmt_proto::message::Response::Status(s) => s.power,
                other => panic!("unexpected answer {other:?}"),
            });
        }
    }
    panic!("no answer to {action:?} on tray {slot}");
}

fn os(rack: &Rack, slot: u32) -> OsState {
    rack.twin.lock().chassis[0].tray(slot).expect("tray").os
}

#[test]
fn approved_bmcs_enroll_and_obey_power_requests() {
    let (mut rack, _, dir) = start("enroll", true);
    for slot in 1..=7 {
        assert_eq!(trust(&rack, slot), BmcTrust::Trusted, "tray {slot}");
    }
    assert!(matches!(
        power(&mut rack, 1, PowerAction::On),
        Ok(PowerState::PoweringOn | PowerState::On)
    ));
    rack.advance(Duration::from_secs(25));
    assert_eq!(os(&rack, 1), OsState::Running);
    let metrics = rack.daemon(CH).expect("daemon").metrics();
    assert!(
        metrics
            .contains("racklet_node_power_watts{chassis=\"chassis-1\",tray=\"1\",node=\"node-1\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("racklet_bmc_up{chassis=\"chassis-1\",tray=\"7\"} 1"));
    assert!(metrics.ends_with("# EOF\n"));
    let state = std::fs::read_to_string(dir.join("rmd/chassis-1/state.json")).expect("persisted");
    assert_eq!(
        state.matches("\"key\"").count(),
        7,
        "seven link keys persisted"
    );
}

#[test]
fn unknown_bmc_is_not_trusted_until_approved() {
    let (mut rack, _, _) = start("approval", false);
    let BmcTrust::PendingApproval {
        identity,
        enrolled_elsewhere,
    } = trust(&rack, 2)
    else {
        panic!("pending: {:?}", trust(&rack, 2))
    };
    assert!(!enrolled_elsewhere);
    let indicator = |rack: &Rack| rack.twin.lock().chassis[0].tray(2).expect("tray").indicator;
    assert_eq!(
        indicator(&rack),
        racklet_hal::Indicator::Attention,
        "a person must look at it"
    );
    let refused = daemon(&rack).submit(2, Request::Power(PowerAction::On));
    assert_eq!(refused.err(), Some(RmdError::NotTrusted(2)));
    assert_eq!(os(&rack, 2), OsState::Off);
    now(daemon(&rack).approve(&identity)).expect("pending identity");
    rack.advance(Duration::from_secs(3));
    assert_eq!(trust(&rack, 2), BmcTrust::Trusted);
    assert_eq!(
        indicator(&rack),
        racklet_hal::Indicator::Off,
        "trusted and off"
    );
    assert!(
        matches!(trust(&rack, 3), BmcTrust::PendingApproval { .. }),
        "only the approved one"
    );
}

#[test]
fn a_rejected_bmc_stays_refused_after_the_daemon_restarts_until_an_operator_resets_it() {
    let (mut rack, set, dir) = start("rejection", false);
    let BmcTrust::PendingApproval { identity, .. } = trust(&rack, 2) else {
        panic!("pending: {:?}", trust(&rack, 2))
    };
    now(daemon(&rack).reject(&identity)).expect("pending identity");
    assert!(matches!(trust(&rack, 2), BmcTrust::Refused { .. }));
    rack.restart_daemon(&set, CH, &dir, 5).expect("restarts");
    rack.advance(Duration::from_secs(3));
    let BmcTrust::Refused { reason } = trust(&rack, 2) else {
        panic!("refused after a restart: {:?}", trust(&rack, 2))
    };
    assert!(reason.contains("rejected"), "{reason}");
    assert_eq!(
        daemon(&rack)
            .submit(2, Request::Power(PowerAction::On))
            .err(),
        Some(RmdError::NotTrusted(2))
    );
    // The operator changes their mind: ResetToDefaults enrolls the identity it shows.
    now(daemon(&rack).forget_bmc(2)).expect("refused, so it may be reset");
    rack.advance(Duration::from_secs(3));
    assert_eq!(trust(&rack, 2), BmcTrust::Trusted);
}

#[test]
fn tray_pulled_while_on_comes_back_without_re_enrollment() {
    let (mut rack, _, dir) = start("hotswap", true);
    power(&mut rack, 1, PowerAction::On).expect("on");
    rack.advance(Duration::from_secs(5));
    let keys_before = std::fs::read_to_string(dir.join("rmd/chassis-1/state.json")).expect("state");
    rack.twin
        .inject(Fault::TrayPulled {
            chassis: CH.into(),
            slot: 1,
        })
        .expect("tray");
    rack.advance(Duration::from_secs(1));
    assert_eq!(trust(&rack, 1), BmcTrust::Absent);
    assert_eq!(
        power(&mut rack, 1, PowerAction::On),
        Err(RmdError::Absent(1))
    );
    rack.twin
        .inject(Fault::TrayInserted {
            chassis: CH.into(),
            slot: 1,
            board: "rpi4b".into(),
            hostname: "node-1".into(),
            bmc_serial: None,
        })
        .expect("slot free");
    rack.advance(Duration::from_secs(3));
    assert_eq!(
        trust(&rack, 1),
        BmcTrust::Trusted,
        "the same BMC, with its key, is trusted again"
    );
    let keys_after = std::fs::read_to_string(dir.join("rmd/chassis-1/state.json")).expect("state");
    assert_eq!(keys_before, keys_after, "no new enrollment");
    assert_eq!(
        os(&rack, 1),
        OsState::Off,
        "a re-inserted tray stays off until asked"
    );
}

#[test]
fn failed_fan_keeps_temperatures_bounded() {
    let (mut rack, _, _) = start("fan-fail", true);
    for slot in 1..=7 {
        power(&mut rack, slot, PowerAction::On).expect("on");
        rack.twin.set_load(CH, slot, 1.0).expect("tray");
    }
    rack.advance(Duration::from_secs(300));
    rack.twin
        .inject(Fault::FanFailed {
            chassis: CH.into(),
            fan: "fan-left".into(),
        })
        .expect("fan");
    let mut hottest: f64 = 0.0;
    for _ in 0..60 {
        rack.advance(Duration::from_secs(10));
        for slot in 1..=7 {
            for (s, t) in rack.twin.snapshot().iter().map(|t| (t.slot, t.soc_celsius)) {
                if s == slot {
                    hottest = hottest.max(t.unwrap_or(0.0));
                }
            }
        }
    }
    // Pi 4/5 limit is 85 °C: the zone goes to full speed at 80 °C and the daemon powers a
    // tray off past 85 °C, so nothing runs away.
    eprintln!("hottest SoC after the fan failed: {hottest:.1} °C");
    assert!(hottest > 70.0, "the test must load the zone: {hottest} °C");
    assert!(hottest < 86.0, "hottest SoC reached {hottest} °C");
    let fans = fans(&rack);
    let left = fans.iter().find(|f| f.name == "fan-left").expect("fan");
    assert_eq!(left.rpm, Some(0), "the failed fan reads 0 RPM");
}

#[test]
fn silent_sensor_triggers_the_failsafe_within_two_seconds() {
    let (mut rack, _, _) = start("silent", true);
    for slot in 1..=3 {
        power(&mut rack, slot, PowerAction::On).expect("on");
    }
    rack.advance(Duration::from_secs(30));
    let before = fans(&rack);
    assert!(
        before.iter().all(|f| f.override_reason.is_none()),
        "{before:?}"
    );
    rack.twin
        .inject(Fault::TemperatureSensor {
            chassis: CH.into(),
            slot: 2,
            state: SensorFault::Silent,
        })
        .expect("tray");
    rack.advance(Duration::from_secs(2));
    let fans = fans(&rack);
    let left = fans.iter().find(|f| f.name == "fan-left").expect("fan");
    assert!(
        left.override_reason
            .as_deref()
            .is_some_and(|r| r.contains("failsafe")),
        "{left:?}"
    );
    assert!((left.duty_percent - 80.0).abs() < 1e-9);
}

#[test]
fn replayed_power_on_frame_is_ignored_and_counted() {
    let (mut rack, _, _) = start("replay", true);
    let mut reply = daemon(&rack)
        .submit(3, Request::Power(PowerAction::On))
        .expect("trusted");
    rack.daemon(CH).expect("daemon").step(); // the sealed request goes onto the bus
                                             // An eavesdropper on the shared hub copies it.
    let captured: Vec<u8> = rack.twin.lock().chassis[0]
        .tray(3)
        .expect("tray")
        .usb_to_bmc
        .iter()
        .copied()
        .collect();
    assert!(!captured.is_empty());
    rack.advance(Duration::from_secs(1));
    assert!(reply.try_take().is_some());
    power(&mut rack, 3, PowerAction::ForceOff).expect("off");
    rack.advance(Duration::from_secs(1));
    assert_eq!(os(&rack, 3), OsState::Off);
    // Replay.
    rack.twin.lock().chassis[0]
        .tray_mut(3)
        .expect("tray")
        .usb_to_bmc
        .extend(captured);
    rack.advance(Duration::from_secs(2));
    assert_eq!(
        os(&rack, 3),
        OsState::Off,
        "the replayed power-on did nothing"
    );
    let replayed = rack.bmcs[2].bmc().expect("booted").link().drops.replayed;
    assert_eq!(replayed, 1);
}

#[test]
fn daemon_restart_does_not_change_power() {
    let (mut rack, set, dir) = start("restart", true);
    power(&mut rack, 1, PowerAction::On).expect("on");
    power(&mut rack, 2, PowerAction::On).expect("on");
    rack.advance(Duration::from_secs(25));
    let dcdc = |rack: &Rack| -> Vec<bool> {
        rack.twin.lock().chassis[0]
            .trays
            .iter()
            .map(|t| t.dcdc_en)
            .collect()
    };
    let before = dcdc(&rack);
    rack.restart_daemon(&set, CH, &dir, 99).expect("restarts");
    rack.advance(Duration::from_secs(5));
    assert_eq!(dcdc(&rack), before);
    let trays = daemon(&rack).snapshot().trays;
    assert_eq!(
        trays[0].power,
        Some(PowerState::On),
        "read back from the BMC"
    );
    assert_eq!(trays[2].power, Some(PowerState::Off));
    assert_eq!(
        trays[0].trust,
        BmcTrust::Trusted,
        "keys persisted across the restart"
    );
}

#[test]
fn fans_follow_load() {
    let (mut rack, _, _) = start("fan-load", true);
    for slot in 1..=7 {
        power(&mut rack, slot, PowerAction::On).expect("on");
        rack.twin.set_load(CH, slot, 0.0).expect("tray");
    }
    rack.advance(Duration::from_secs(300));
    let idle = fans(&rack)[0].duty_percent;
    for slot in 1..=7 {
        rack.twin.set_load(CH, slot, 1.0).expect("tray");
    }
    rack.advance(Duration::from_secs(300));
    let loaded = fans(&rack)[0].duty_percent;
    eprintln!("fan duty {idle:.1}% idle, {loaded:.1}% loaded");
    assert!(loaded > idle + 5.0, "duty {idle}% idle, {loaded}% loaded");
}

fn signed_image(
    len: usize,
    version: u32,
) -> (std::sync::Arc<Vec<u8>>, Vec<u8>, ed25519_dalek::SigningKey) {
    let vendor = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let image: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
    let sig = racklet_firmware_bundle::sign(&vendor, &image, version)
        .to_bytes()
        .to_vec();
    (std::sync::Arc::new(image), sig, vendor)
}

/// Provisions tray 4's BMC with the vendor's firmware signing key.
fn trust_vendor(rack: &mut Rack, vendor: &ed25519_dalek::SigningKey) {
    rack.bmcs[3]
        .bmc()
        .expect("booted")
        .add_trust_anchor(vendor.verifying_key().to_bytes())
        .expect("anchor");
}

fn start_update(rack: &Rack, slot: u32, image: std::sync::Arc<Vec<u8>>, sig: &[u8]) {
    let sig: [u8; 64] = sig.try_into().expect("64-byte signature");
    now(daemon(rack).update_firmware(slot, image, 2, sig)).expect("starts");
}

fn update_step(rack: &Rack) -> UpdateStep {
    daemon(rack).snapshot().update.expect("job").step
}

fn run_update(
    rack: &mut Rack,
    slot: u32,
    image: std::sync::Arc<Vec<u8>>,
    sig: &[u8],
) -> UpdateStep {
    start_update(rack, slot, image, sig);
    for _ in 0..600 {
        rack.advance(Duration::from_millis(100));
        let step = update_step(rack);
        if matches!(step, UpdateStep::Confirmed | UpdateStep::Failed(_)) {
            return step;
        }
    }
    panic!("firmware update did not finish");
}

#[test]
fn firmware_update_over_the_link_reboots_once_and_confirms() {
    let (mut rack, _, _) = start("fw-ok", true);
    let (image, sig, vendor) = signed_image(20_000, 2);
    trust_vendor(&mut rack, &vendor);
    let boots = rack.bmcs[3].boots();
    let stage = run_update(&mut rack, 4, image.clone(), &sig);
    assert_eq!(stage, UpdateStep::Confirmed);
    assert_eq!(daemon(&rack).snapshot().update.map(|u| u.version), Some(2));
    assert_eq!(
        rack.bmcs[3].boots(),
        boots + 1,
        "one reboot into the new slot"
    );
    assert_eq!(
        rack.twin.lock().chassis[0]
            .tray(4)
            .expect("tray")
            .flash
            .slots[1],
        *image
    );
}

#[test]
fn bad_image_signature_is_refused_over_the_link() {
    let (mut rack, _, _) = start("fw-bad", true);
    let (image, _, vendor) = signed_image(4_000, 2);
    trust_vendor(&mut rack, &vendor);
    let forged =
        racklet_firmware_bundle::sign(&ed25519_dalek::SigningKey::from_bytes(&[1; 32]), &image, 2);
    let stage = run_update(&mut rack, 4, image, &forged.to_bytes());
    assert!(
        matches!(stage, UpdateStep::Failed(ref r) if r.contains("signature")),
        "{stage:?}"
    );
    assert_eq!(rack.bmcs[3].boots(), 1, "no reboot");
}

#[test]
fn interrupted_transfer_leaves_the_old_slot_running() {
    let (mut rack, _, _) = start("fw-cut", true);
    let (image, sig, vendor) = signed_image(200_000, 2);
    trust_vendor(&mut rack, &vendor);
    start_update(&rack, 4, image, &sig);
    rack.advance(Duration::from_secs(2)); // part of the image is across
    rack.twin
        .inject(Fault::TrayPulled {
            chassis: CH.into(),
            slot: 4,
        })
        .expect("tray");
    rack.advance(Duration::from_secs(1));
    let stage = update_step(&rack);
    assert!(matches!(stage, UpdateStep::Failed(_)), "{stage:?}");
    rack.twin
        .inject(Fault::TrayInserted {
            chassis: CH.into(),
            slot: 4,
            board: "rpi5".into(),
            hostname: "node-4".into(),
            bmc_serial: None,
        })
        .expect("slot");
    rack.advance(Duration::from_secs(3));
    let fw = rack.bmcs[3].bmc().expect("booted").key_store().firmware;
    assert_eq!(
        (fw.active, fw.active_version, fw.staged_version, fw.trial),
        (0, 1, None, false)
    );
}

#[test]
fn hung_bmc_is_reset_by_its_watchdog_and_the_zone_fails_safe_meanwhile() {
    let (mut rack, _, _) = start("hang", true);
    for slot in 1..=3 {
        power(&mut rack, slot, PowerAction::On).expect("on");
    }
    rack.advance(Duration::from_secs(30));
    let boots = rack.bmcs[1].boots();
    rack.twin
        .inject(Fault::BmcHang {
            chassis: CH.into(),
            slot: 2,
            duration: Duration::from_secs(60),
        })
        .expect("tray");
    rack.advance(Duration::from_millis(900));
    assert_eq!(rack.bmcs[1].boots(), boots, "not yet reset");
    rack.advance(Duration::from_secs(3));
    assert_eq!(
        rack.bmcs[1].boots(),
        boots + 1,
        "the watchdog reset the BMC"
    );
    let inv = rack.bmcs[1].bmc().expect("running").handle(
        &racklet_mgmt_proto::message::RequestEnvelope {
            id: 1,
            request: racklet_mgmt_proto::message::Request::Inventory,
        },
    );
    assert!(
        matches!(inv.response, racklet_mgmt_proto::message::Response::Inventory(ref i) if i.last_reset_watchdog),
        "{inv:?}"
    );
    assert_eq!(
        os(&rack, 2),
        OsState::Running,
        "a BMC reset keeps the tray powered"
    );
    rack.advance(Duration::from_secs(3));
    assert_eq!(trust(&rack, 2), BmcTrust::Trusted, "back in session");
}

#[test]
fn quiet_bmc_makes_its_zone_fail_safe_within_two_seconds() {
    let (mut rack, _, _) = start("quiet", true);
    power(&mut rack, 5, PowerAction::On).expect("on");
    rack.advance(Duration::from_secs(30));
    // Its firmware hangs: no more status, so the temperature goes stale.
    rack.twin
        .inject(Fault::BmcHang {
            chassis: CH.into(),
            slot: 5,
            duration: Duration::from_millis(900),
        })
        .expect("tray");
    rack.advance(Duration::from_millis(500));
    let right = |rack: &Rack| {
        fans(rack)
            .into_iter()
            .find(|f| f.name == "fan-right")
            .expect("fan")
    };
    assert!(right(&rack).override_reason.is_none(), "still fresh");
    // 900 ms hang, then the watchdog reset and a new session: longer than 2 s of silence.
    rack.twin
        .inject(Fault::BmcHang {
            chassis: CH.into(),
            slot: 5,
            duration: Duration::from_secs(600),
        })
        .expect("tray");
    let mut failsafe_after = None;
    for tenth in 1..=30 {
        rack.advance(Duration::from_millis(100));
        if right(&rack)
            .override_reason
            .as_deref()
            .is_some_and(|r| r.contains("failsafe"))
        {
            failsafe_after = Some(tenth);
            break;
        }
    }
    let tenths = failsafe_after.expect("failsafe engaged");
    assert!(
        tenths <= 25,
        "failsafe after {} ms of silence",
        tenths * 100
    );
}

#[test]
fn unconfirmed_firmware_that_hangs_falls_back_through_the_watchdog() {
    let (mut rack, _, _) = start("fw-hang", true);
    let (image, sig, vendor) = signed_image(8_000, 2);
    trust_vendor(&mut rack, &vendor);
    start_update(&rack, 4, image, &sig);
    // Run until the BMC reboots into the trial slot.
    let boots = rack.bmcs[3].boots();
    for _ in 0..300 {
        rack.advance(Duration::from_millis(100));
        if rack.bmcs[3].boots() > boots {
            break;
        }
    }
    assert_eq!(
        rack.bmcs[3].boots(),
        boots + 1,
        "rebooted into the trial slot"
    );
    // The new firmware hangs before it can confirm.
    rack.twin
        .inject(Fault::BmcHang {
            chassis: CH.into(),
            slot: 4,
            duration: Duration::from_secs(60),
        })
        .expect("tray");
    rack.advance(Duration::from_secs(5));
    let fw = rack.bmcs[3]
        .bmc()
        .expect("running again")
        .key_store()
        .firmware;
    assert_eq!(
        (fw.active, fw.active_version, fw.trial),
        (0, 1, false),
        "back on the old slot"
    );
}

#[test]
fn boot_override_is_persisted_by_the_daemon_across_restarts() {
    use racklet_rmd_api::{BootOverride, BootSourceEnabled, BootSourceTarget};
    let pxe = BootOverride {
        target: BootSourceTarget::Pxe,
        enabled: BootSourceEnabled::Continuous,
    };
    let (rack, set, dir) = start("boot", true);
    let d = daemon(&rack).clone();
    let running = rack.run_in_background(Duration::from_millis(1));
    now(async {
        assert_eq!(d.boot_override(1).await, Ok(BootOverride::default()));
        assert_eq!(d.boot_override(99).await, Err(RmdError::NoTray(99)));
        tokio::time::timeout(Duration::from_secs(20), d.set_boot_override(1, pxe))
            .await
            .expect("the BMC answers")
            .expect("set");
        assert_eq!(d.boot_override(1).await, Ok(pxe));
        // ChassisManager::restart reloads the daemon's state from its data dir.
        d.restart().await.expect("restarts");
        assert_eq!(d.boot_override(1).await, Ok(pxe));
        assert_eq!(d.boot_override(2).await, Ok(BootOverride::default()));
    });
    // A new daemon process on the same data dir.
    running
        .lock()
        .restart_daemon(&set, CH, &dir, 7)
        .expect("restarts");
    let fresh = running.lock().daemon(CH).expect("daemon").clone();
    assert_eq!(now(fresh.boot_override(1)), Ok(pxe));
    let file = std::fs::read_to_string(dir.join("rmd/chassis-1/boot.json")).expect("persisted");
    assert!(file.contains("\"Pxe\""), "{file}");
}

#[test]
fn boot_override_is_not_recorded_when_the_bmc_cannot_apply_it() {
    use racklet_rmd_api::{BootOverride, BootSourceEnabled, BootSourceTarget};
    let (rack, _, dir) = start("boot-untrusted", false);
    let usb = BootOverride {
        target: BootSourceTarget::Usb,
        enabled: BootSourceEnabled::Once,
    };
    assert_eq!(
        now(daemon(&rack).set_boot_override(1, usb)),
        Err(RmdError::NotTrusted(1))
    );
    assert_eq!(
        now(daemon(&rack).boot_override(1)),
        Ok(BootOverride::default())
    );
    assert!(!dir.join("rmd/chassis-1/boot.json").exists());
}

/// `racklet up`, stop, `racklet up` again on the same data dir: the BMCs boot from the
/// flash they kept, so the daemon finds the BMCs it enrolled and nobody approves again.
#[test]
fn a_restarted_rack_finds_its_enrolled_bmcs_without_re_enrollment() {
    let (rack, set, dir) = start("restart", true);
    for slot in 1..=7 {
        assert_eq!(trust(&rack, slot), BmcTrust::Trusted, "tray {slot}");
    }
    let identities: Vec<_> = rack.twin.snapshot().iter().map(|t| t.slot).collect();
    let first_run = now(racklet_rmd_api::ChassisManager::events(daemon(&rack), 0));
    let last = first_run.last().map_or(0, |e| e.sequence);
    drop(rack);
    // The second run approves nothing itself: only what was kept can make it trusted.
    let mut again = Rack::start(&set, &config(), &dir, false).expect("rack starts again");
    again.advance(Duration::from_secs(3));
    for slot in identities {
        assert_eq!(
            trust(&again, slot),
            BmcTrust::Trusted,
            "tray {slot} after the restart"
        );
    }
    // The second run's log (the daemon keeps its log across runs): trust, no enrollment.
    let events = now(racklet_rmd_api::ChassisManager::events(
        daemon(&again),
        last,
    ));
    assert!(
        events.iter().any(|e| e.message.contains("is trusted")),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.message.contains("no longer proves") || e.message.contains("enroll")),
        "{events:?}"
    );
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A BMC whose flash was wiped no longer proves the key the daemon enrolled it with: the
/// daemon refuses it, shows why (not "connecting" for ever) and says so once, not every
/// hello.
#[test]
fn a_wiped_bmc_is_refused_with_a_reason_and_the_warning_is_said_once() {
    let (rack, set, dir) = start("wiped", true);
    assert_eq!(trust(&rack, 3), BmcTrust::Trusted);
    drop(rack);
    let flash = dir.join("twin/chassis-1/tray-3.flash.json");
    std::fs::remove_file(&flash).expect("the BMC's flash is wiped");
    let mut again = Rack::start(&set, &config(), &dir, false).expect("rack starts again");
    again.advance(Duration::from_secs(10));
    assert!(
        matches!(trust(&again, 3), BmcTrust::Refused { reason } if reason.contains("no longer proves")),
        "{:?}",
        trust(&again, 3)
    );
    assert_eq!(trust(&again, 2), BmcTrust::Trusted);
    let events = now(racklet_rmd_api::ChassisManager::events(daemon(&again), 0));
    let warnings = events
        .iter()
        .filter(|e| e.message.contains("no longer proves"))
        .count();
    assert_eq!(warnings, 1, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("racklet bmc forget NODE")),
        "the warning names the way out: {events:?}"
    );
    // The operator's way out: forget its key; the identity it shows next is enrolled.
    now(racklet_rmd_api::ChassisManager::forget_bmc(
        daemon(&again),
        3,
    ))
    .expect("forget");
    again.advance(Duration::from_secs(5));
    assert_eq!(trust(&again, 3), BmcTrust::Trusted);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}
