//! The BMC core on the digital twin: power sequencing, faults, the console, the EEPROM
//! line, network boot and the node identity. Firmware A/B is in `firmware.rs`.

// reason: tests may expect, helpers included: a panic is their failure report; their
// sizes and readings are small and known.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

mod common;

use std::time::Duration;

use common::{ask, boot, boot_seeded, boot_with, os, run, twin, TwinBmc, CH};
use racklet_bmc::PowerConfig;
use racklet_mgmt_proto::message::{fault, ErrorCode, PowerAction, PowerState, Request, Response};
use racklet_twin::OsState;

#[test]
fn power_on_settles_then_graceful_shutdown_reaches_off() {
    let twin = twin();
    let mut bmc = boot(&twin, 1);
    assert!(matches!(
        ask(&mut bmc, Request::Power(PowerAction::On)),
        Response::Status(_)
    ));
    assert_eq!(bmc.power_state(), PowerState::PoweringOn);
    run(&twin, &mut bmc, Duration::from_secs(2));
    assert_eq!(bmc.power_state(), PowerState::On, "current settled");
    run(&twin, &mut bmc, Duration::from_secs(25));
    assert_eq!(os(&twin, 1), OsState::Running);
    ask(&mut bmc, Request::Power(PowerAction::GracefulShutdown));
    run(&twin, &mut bmc, Duration::from_secs(8));
    assert_eq!(
        os(&twin, 1),
        OsState::Off,
        "the OS halted, then the BMC cut power"
    );
    assert_eq!(bmc.power_state(), PowerState::Off);
    let Response::Status(s) = ask(&mut bmc, Request::Status) else {
        panic!("status")
    };
    assert!(s.energy_millijoules > 50_000, "{} mJ", s.energy_millijoules);
    // It was the power button: pressed once, and let go.
    let (presses, held) = twin
        .lock()
        .tray_mut("chassis-1", 1)
        .map(|t| (t.button_presses, t.power_button))
        .expect("tray");
    assert_eq!((presses, held), (1, false));
}

#[test]
fn the_node_identity_goes_to_the_bootstrap_before_the_hand_off_and_only_its_public_key_to_the_daemon(
) {
    let twin = twin();
    let mut bmc = boot(&twin, 3);
    ask(&mut bmc, Request::SetBootMode(BootMode::Network));
    ask(
        &mut bmc,
        Request::SetNetworkBoot(Some(network_boot_config())),
    );
    let FromBmc::NodeIdentity { seed } = on_boot_channel(&mut bmc, &FromHost::NodeIdentity) else {
        panic!("no identity")
    };
    let Response::BootReport(r) = ask(&mut bmc, Request::BootReport) else {
        panic!("report")
    };
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    assert_eq!(r.node_identity, public);
    assert_ne!(
        seed, public,
        "the report carries the public key, not the seed"
    );
    assert_ne!(
        public,
        bmc.identity().to_bytes(),
        "the node's identity is not the BMC's own"
    );
    // The same at every boot of this BMC; another BMC has another.
    let mut again = boot(&twin, 3);
    ask(&mut again, Request::SetBootMode(BootMode::Network));
    assert_eq!(
        on_boot_channel(&mut again, &FromHost::NodeIdentity),
        FromBmc::NodeIdentity { seed }
    );
    let measurement = Measurement {
        profile: heapless::String::try_from("debian").expect("short"),
        git_commit: [1; 20],
        kernel_sha256: [2; 32],
        initramfs_sha256: [3; 32],
        versions: versions(1),
        fell_back: false,
    };
    on_boot_channel(&mut again, &FromHost::Measured(measurement));
    assert_eq!(
        on_boot_channel(&mut again, &FromHost::NodeIdentity),
        FromBmc::Refused(Refusal::HandedOff),
        "the booted system cannot ask for it again"
    );
}

#[test]
fn over_temperature_latches_until_cleared() {
    let twin = twin();
    let config = PowerConfig {
        over_temperature_celsius: 40.0,
        ..PowerConfig::default()
    };
    let mut bmc = boot_with(&twin, 4, config);
    twin.set_load(CH, 4, 1.0).expect("tray");
    ask(&mut bmc, Request::Power(PowerAction::On));
    run(&twin, &mut bmc, Duration::from_secs(300));
    assert_eq!(bmc.power_state(), PowerState::Fault);
    let Response::Status(s) = ask(&mut bmc, Request::Status) else {
        panic!("status")
    };
    assert_eq!(s.faults & fault::OVER_TEMPERATURE, fault::OVER_TEMPERATURE);
    assert_eq!(os(&twin, 4), OsState::Off);
    assert_eq!(
        ask(&mut bmc, Request::Power(PowerAction::On)),
        Response::Error(ErrorCode::InvalidState)
    );
    ask(&mut bmc, Request::ClearFaults);
    assert_eq!(bmc.power_state(), PowerState::Off);
}

#[test]
fn silent_power_monitor_times_out_power_on() {
    let twin = twin();
    let mut bmc = boot(&twin, 2);
    twin.inject(racklet_twin::Fault::PowerMonitor {
        chassis: CH.into(),
        slot: 2,
        state: racklet_twin::SensorFault::Silent,
    })
    .expect("tray");
    ask(&mut bmc, Request::Power(PowerAction::On));
    run(&twin, &mut bmc, Duration::from_secs(3));
    let Response::Status(s) = ask(&mut bmc, Request::Status) else {
        panic!("status")
    };
    assert_eq!(s.power, PowerState::Fault);
    assert_eq!(s.faults & fault::POWER_ON_TIMEOUT, fault::POWER_ON_TIMEOUT);
    assert_eq!(
        s.power_milliwatts,
        racklet_mgmt_proto::message::Reading::Absent
    );
}

#[test]
fn bmc_reset_does_not_change_the_trays_power() {
    let twin = twin();
    let mut bmc = boot(&twin, 3);
    ask(&mut bmc, Request::Power(PowerAction::On));
    run(&twin, &mut bmc, Duration::from_secs(2));
    let identity = bmc.identity();
    drop(bmc);
    // Another random source: an identity regenerated at boot would differ.
    let mut again = boot_seeded(&twin, 3, PowerConfig::default(), 777);
    assert_eq!(
        again.power_state(),
        PowerState::On,
        "adopts the running tray"
    );
    assert_eq!(
        again.identity(),
        identity,
        "identity generated once, kept in flash"
    );
    run(&twin, &mut again, Duration::from_secs(1));
    assert!(twin.lock().chassis[0].tray(3).expect("tray").dcdc_en);
}

#[test]
fn console_history_is_read_by_sequence() {
    let twin = twin();
    let mut bmc = boot(&twin, 7);
    ask(&mut bmc, Request::Power(PowerAction::On));
    run(&twin, &mut bmc, Duration::from_secs(25));
    let Response::Console { from, next, data } = ask(&mut bmc, Request::ConsoleRead { from: 0 })
    else {
        panic!("console")
    };
    assert_eq!(from, 0);
    assert_eq!(next, data.len() as u64);
    assert!(String::from_utf8_lossy(&data).contains("Booting Linux"));
}

#[test]
fn eeprom_stays_protected_unless_released() {
    let twin = twin();
    let mut bmc = boot(&twin, 1);
    assert!(twin.lock().chassis[0].tray(1).expect("tray").eeprom_wp);
    ask(&mut bmc, Request::SetEepromWriteProtect(false));
    assert!(!twin.lock().chassis[0].tray(1).expect("tray").eeprom_wp);
    let Response::Status(s) = ask(&mut bmc, Request::Status) else {
        panic!("status")
    };
    assert!(!s.eeprom_write_protected);
}

fn network_boot_config() -> NetworkBootConfig {
    NetworkBootConfig {
        uri: heapless::String::try_from("https://10.0.2.2:8443/boot/").expect("short"),
        profile: heapless::String::try_from("debian").expect("short"),
        known_good: Some(heapless::String::try_from("debian-old").expect("short")),
        root_version: 3,
        root_sha256: [7; 32],
        server_certificate_sha256: [9; 32],
    }
}

/// One boot-channel message from the bootstrap, and the BMC's answer.
fn on_boot_channel(bmc: &mut TwinBmc, msg: &FromHost) -> FromBmc {
    let mut frame = [0u8; racklet_mgmt_proto::MAX_FRAME];
    let n = boot_channel::encode(msg, &mut frame).expect("fits");
    let mut answers = Vec::new();
    bmc.boot_channel_bytes(&frame[..n], |bytes| answers.push(bytes.to_vec()));
    assert_eq!(answers.len(), 1, "one answer per frame");
    let answer = &answers[0];
    let mut plain = [0u8; boot_channel::MAX_MESSAGE];
    boot_channel::decode(&answer[..answer.len() - 1], &mut plain).expect("decodes")
}

fn versions(n: u64) -> BootVersions {
    BootVersions {
        root: 1,
        targets: n,
        snapshot: n,
        timestamp: n,
    }
}

#[test]
fn the_boot_channel_is_refused_until_network_boot_is_chosen_and_configured() {
    let twin = twin();
    let mut bmc = boot(&twin, 2);
    assert_eq!(
        on_boot_channel(&mut bmc, &FromHost::GetConfig),
        FromBmc::Refused(Refusal::LocalBoot)
    );
    assert_eq!(
        ask(&mut bmc, Request::SetBootMode(BootMode::Network)),
        Response::Ack
    );
    assert_eq!(
        on_boot_channel(&mut bmc, &FromHost::GetConfig),
        FromBmc::Refused(Refusal::NotConfigured)
    );
    let mut garbage = vec![0x55u8; 40];
    garbage.push(0);
    let mut answers = Vec::new();
    bmc.boot_channel_bytes(&garbage, |b| answers.push(b.to_vec()));
    assert_eq!(
        answers.len(),
        1,
        "a frame that does not decode is answered, not acted on"
    );
}

#[test]
fn the_bmc_serves_its_configuration_and_never_lowers_its_counters_across_a_reset() {
    let twin = twin();
    let mut bmc = boot(&twin, 2);
    ask(&mut bmc, Request::SetBootMode(BootMode::Network));
    assert_eq!(
        ask(
            &mut bmc,
            Request::SetNetworkBoot(Some(network_boot_config()))
        ),
        Response::Ack
    );
    let FromBmc::Config {
        config,
        accepted,
        latest_time_unix,
    } = on_boot_channel(&mut bmc, &FromHost::GetConfig)
    else {
        panic!("no configuration served");
    };
    assert_eq!(config, network_boot_config());
    assert_eq!((accepted, latest_time_unix), (BootVersions::default(), 0));
    let accept = |n, t| FromHost::Accept {
        versions: versions(n),
        time_unix: t,
    };
    assert_eq!(
        on_boot_channel(&mut bmc, &accept(5, 1_800_000_000)),
        FromBmc::Ack
    );

    // A BMC reset keeps the counters and the configuration: they are in its flash.
    drop(bmc);
    let mut bmc = boot(&twin, 2);
    assert_eq!(
        on_boot_channel(&mut bmc, &accept(4, 1_900_000_000)),
        FromBmc::Refused(Refusal::Rollback)
    );
    let Response::BootReport(report) = ask(&mut bmc, Request::BootReport) else {
        panic!("no report");
    };
    assert!(report.configured);
    assert_eq!(report.accepted, versions(5));
    assert_eq!(
        report.latest_time_unix, 1_800_000_000,
        "a refused message changes nothing"
    );
    assert_eq!(report.stage, BootStage::Failed);
    assert!(
        report.last_failure.contains("rollback"),
        "{}",
        report.last_failure
    );
    let FromBmc::Config {
        accepted,
        latest_time_unix,
        ..
    } = on_boot_channel(&mut bmc, &FromHost::GetConfig)
    else {
        panic!("no configuration served");
    };
    assert_eq!((accepted, latest_time_unix), (versions(5), 1_800_000_000));
}

#[test]
fn a_measurement_is_reported_until_the_tray_is_switched_on_again() {
    let twin = twin();
    let mut bmc = boot(&twin, 2);
    ask(&mut bmc, Request::SetBootMode(BootMode::Network));
    ask(
        &mut bmc,
        Request::SetNetworkBoot(Some(network_boot_config())),
    );
    let measurement = Measurement {
        profile: heapless::String::try_from("debian").expect("short"),
        git_commit: [1; 20],
        kernel_sha256: [2; 32],
        initramfs_sha256: [3; 32],
        versions: versions(1),
        fell_back: false,
    };
    assert_eq!(
        on_boot_channel(&mut bmc, &FromHost::Measured(measurement.clone())),
        FromBmc::Ack
    );
    let report = |bmc: &mut TwinBmc| match ask(bmc, Request::BootReport) {
        Response::BootReport(r) => r,
        other => panic!("{other:?}"),
    };
    let r = report(&mut bmc);
    assert_eq!(
        (r.stage, r.measurement),
        (BootStage::HandedOff, Some(measurement))
    );
    // The booted system may not raise the counters or rewrite the measurement.
    let raise = FromHost::Accept {
        versions: versions(u64::MAX),
        time_unix: u64::MAX,
    };
    assert_eq!(
        on_boot_channel(&mut bmc, &raise),
        FromBmc::Refused(Refusal::HandedOff)
    );
    assert_eq!(report(&mut bmc).accepted, BootVersions::default());
    ask(&mut bmc, Request::Power(PowerAction::On));
    let r = report(&mut bmc);
    assert_eq!((r.stage, r.measurement), (BootStage::Idle, None));
}

use racklet_mgmt_proto::boot_channel::{self, FromBmc, FromHost, Refusal};
use racklet_mgmt_proto::message::{
    BootMode, BootStage, BootVersions, Measurement, NetworkBootConfig,
};
