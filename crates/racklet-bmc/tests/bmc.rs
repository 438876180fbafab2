//! The BMC core on the digital twin: power sequencing, faults, firmware A/B, key store.

// reason: tests may expect, helpers included: a panic is their failure report; their
// sizes and readings are small and known.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use racklet_bmc::{Action, Bmc, BmcConfig, FirmwareState, KeyStore, PowerConfig};
use racklet_bootsel::{BootChoice, BootKind, BootSelector};
use racklet_firmware_bundle::sign as sign_firmware;
use racklet_mgmt_proto::message::{
    fault, ErrorCode, PowerAction, PowerState, Request, RequestEnvelope, Response, Slot,
    FIRMWARE_CHUNK,
};
use racklet_model::ManifestSet;
use racklet_twin::hal::{TwinFlash, TwinTrayPeripherals};
use racklet_twin::{OsState, Twin, TwinConfig};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

const CH: &str = "chassis-1";
type TwinBmc = Bmc<
    racklet_twin::hal::TwinPin,
    racklet_twin::hal::TwinPin,
    racklet_twin::hal::TwinI2c,
    racklet_twin::hal::TwinConsole,
    racklet_twin::hal::TwinTemperature,
    racklet_twin::VirtualClock,
    TwinFlash,
    TwinFlash,
>;

fn twin() -> Twin {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let (set, diags) = ManifestSet::load(&[dir]);
    assert!(diags.is_empty(), "{diags:?}");
    Twin::new(
        &set,
        &TwinConfig {
            step: Duration::from_millis(5),
            ..TwinConfig::default()
        },
    )
    .expect("twin")
}

fn boot_with(twin: &Twin, slot: u32, power: PowerConfig) -> TwinBmc {
    boot_seeded(twin, slot, power, u64::from(slot))
}

fn boot_seeded(twin: &Twin, slot: u32, power: PowerConfig, seed: u64) -> TwinBmc {
    boot_as(twin, slot, power, seed, None)
}

/// Boots tray `slot`'s BMC as a boot stage that chose `booted` would start it.
fn boot_as(
    twin: &Twin,
    slot: u32,
    power: PowerConfig,
    seed: u64,
    booted: Option<BootChoice>,
) -> TwinBmc {
    let p: TwinTrayPeripherals = twin.tray_peripherals(CH, slot).expect("tray");
    let (_, flash) = twin.bmc_usb_and_flash(CH, slot).expect("tray");
    let config = BmcConfig {
        serial: u64::from(slot),
        board: heapless::String::try_from("rpi4b").expect("short"),
        firmware_version: 1,
        pac_gain: (2 << 3) | 2,
        power,
        reset_by_watchdog: false,
        booted,
    };
    Bmc::boot(
        config,
        p,
        flash.clone(),
        flash,
        &mut ChaCha8Rng::seed_from_u64(seed),
    )
    .expect("boots")
}

fn boot(twin: &Twin, slot: u32) -> TwinBmc {
    boot_with(twin, slot, PowerConfig::default())
}

/// Runs the BMC's loop every 100 ms of virtual time.
fn run(twin: &Twin, bmc: &mut TwinBmc, for_: Duration) {
    let steps = (for_.as_millis() / 100).max(1);
    for _ in 0..steps {
        twin.advance(Duration::from_millis(100));
        bmc.tick();
    }
}

fn ask(bmc: &mut TwinBmc, request: Request) -> Response {
    bmc.handle(&RequestEnvelope { id: 1, request }).response
}

fn os(twin: &Twin, slot: u32) -> OsState {
    twin.lock().chassis[0].tray(slot).expect("tray").os
}

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

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn transfer(
    bmc: &mut TwinBmc,
    image: &[u8],
    version: u32,
    sign_with: &SigningKey,
    finish: bool,
) -> Response {
    let begin = ask(
        bmc,
        Request::FirmwareBegin {
            size: image.len() as u32,
            version,
        },
    );
    if begin != Response::Ack {
        return begin;
    }
    for (i, chunk) in image.chunks(FIRMWARE_CHUNK).enumerate() {
        let data = heapless::Vec::from_slice(chunk).expect("chunk");
        assert_eq!(
            ask(
                bmc,
                Request::FirmwareChunk {
                    offset: (i * FIRMWARE_CHUNK) as u32,
                    data
                }
            ),
            Response::Ack
        );
    }
    if !finish {
        return Response::Ack;
    }
    let sig = sign_firmware(sign_with, image, version);
    ask(
        bmc,
        Request::FirmwareFinish {
            signature: heapless::Vec::from_slice(&sig.to_bytes()).expect("64"),
        },
    )
}

#[test]
fn firmware_update_boots_once_and_stays_when_confirmed() {
    let twin = twin();
    let vendor = SigningKey::from_bytes(&[42; 32]);
    let mut bmc = boot(&twin, 5);
    bmc.add_trust_anchor(vendor.verifying_key().to_bytes())
        .expect("stored");
    assert_eq!(
        transfer(&mut bmc, &image(5000), 2, &vendor, true),
        Response::Ack
    );
    assert_eq!(ask(&mut bmc, Request::FirmwareActivate), Response::Ack);
    assert_eq!(bmc.take_action(), Some(Action::Reboot));
    let mut bmc = boot(&twin, 5); // the reboot
    let Response::Inventory(inv) = ask(&mut bmc, Request::Inventory) else {
        panic!("inventory")
    };
    assert_eq!(
        (inv.active_slot, inv.firmware_version, inv.trial),
        (Slot::B, 2, true)
    );
    let Response::Inventory(inv) = ask(&mut bmc, Request::FirmwareConfirm) else {
        panic!("inventory")
    };
    assert!(!inv.trial);
    let mut bmc = boot(&twin, 5);
    let Response::Inventory(inv) = ask(&mut bmc, Request::Inventory) else {
        panic!("inventory")
    };
    assert_eq!(
        (inv.active_slot, inv.firmware_version),
        (Slot::B, 2),
        "confirmed slot stays"
    );
    assert_eq!(
        twin.lock().chassis[0].tray(5).expect("tray").flash.slots[1],
        image(5000)
    );
}

#[test]
fn unconfirmed_new_slot_falls_back() {
    let twin = twin();
    let vendor = SigningKey::from_bytes(&[42; 32]);
    let mut bmc = boot(&twin, 6);
    bmc.add_trust_anchor(vendor.verifying_key().to_bytes())
        .expect("stored");
    assert_eq!(
        transfer(&mut bmc, &image(3000), 2, &vendor, true),
        Response::Ack
    );
    ask(&mut bmc, Request::FirmwareActivate);
    let _trial = boot(&twin, 6); // boots the new slot once, never confirms
    let mut bmc = boot(&twin, 6); // next boot
    let Response::Inventory(inv) = ask(&mut bmc, Request::Inventory) else {
        panic!("inventory")
    };
    assert_eq!(
        (inv.active_slot, inv.firmware_version, inv.trial),
        (Slot::A, 1, false)
    );
}

/// Stages and activates a signed image of version 2 on tray `slot`: the next boot is its
/// one try.
fn activate_version_2(twin: &Twin, slot: u32) {
    let vendor = SigningKey::from_bytes(&[42; 32]);
    let mut bmc = boot(twin, slot);
    bmc.add_trust_anchor(vendor.verifying_key().to_bytes())
        .expect("stored");
    assert_eq!(
        transfer(&mut bmc, &image(3000), 2, &vendor, true),
        Response::Ack
    );
    assert_eq!(ask(&mut bmc, Request::FirmwareActivate), Response::Ack);
}

fn stored_selector(twin: &Twin, slot: u32) -> Option<BootSelector> {
    let store = twin.lock().chassis[0]
        .tray(slot)
        .expect("tray")
        .flash
        .key_store
        .clone();
    BootSelector::from_payload(&store.expect("a key store"))
}

#[test]
fn the_key_store_starts_with_the_selector_the_boot_stage_reads() {
    let twin = twin();
    activate_version_2(&twin, 3);
    assert_eq!(
        stored_selector(&twin, 3),
        Some(BootSelector {
            active: 1,
            trial: true,
            trial_booted: false
        }),
        "activated: slot B, its try not used yet"
    );
    let trial = boot(&twin, 3);
    drop(trial);
    assert_eq!(
        stored_selector(&twin, 3),
        Some(BootSelector {
            active: 1,
            trial: true,
            trial_booted: true
        }),
        "the try is recorded as soon as the new firmware runs"
    );
}

#[test]
fn a_trial_the_boot_stage_cut_short_falls_back_to_the_old_version() {
    // The new image died before it could record its try; the stage saw its scratch mark
    // and booted slot A.
    let twin = twin();
    activate_version_2(&twin, 4);
    let fell_back = BootChoice {
        slot: 0,
        kind: BootKind::FellBack,
    };
    let mut bmc = boot_as(&twin, 4, PowerConfig::default(), 4, Some(fell_back));
    let Response::Inventory(inv) = ask(&mut bmc, Request::Inventory) else {
        panic!("inventory")
    };
    assert_eq!(
        (inv.active_slot, inv.firmware_version, inv.trial),
        (Slot::A, 1, false)
    );
}

#[test]
fn the_firmware_state_follows_every_choice_of_the_boot_stage() {
    let on_trial = FirmwareState {
        active: 1,
        active_version: 2,
        staged_version: Some(1),
        trial: true,
        trial_booted: false,
        boot_count: 3,
    };
    let confirmed = FirmwareState {
        active: 1,
        active_version: 2,
        ..FirmwareState::default()
    };
    let choice = |slot, kind| BootChoice { slot, kind };
    let cases = [
        // (before, choice, built version) -> (active, version, staged, trial, trial_booted)
        (
            on_trial,
            choice(1, BootKind::Trial),
            9,
            (1, 2, Some(1), true, true),
        ),
        (
            on_trial,
            choice(0, BootKind::FellBack),
            9,
            (0, 1, None, false, false),
        ),
        (
            confirmed,
            choice(1, BootKind::Normal),
            9,
            (1, 2, None, false, false),
        ),
        // Slot B held no image: the stage booted A, whose version only the image knows.
        (
            confirmed,
            choice(0, BootKind::FellBack),
            9,
            (0, 9, None, false, false),
        ),
        // A UF2 wrote slot A, and the state named B: the running image is adopted.
        (
            confirmed,
            choice(0, BootKind::Normal),
            9,
            (0, 9, None, false, false),
        ),
    ];
    for (before, booted, built, expected) in cases {
        let mut fw = before;
        fw.reconcile(booted, built);
        assert_eq!(
            (
                fw.active,
                fw.active_version,
                fw.staged_version,
                fw.trial,
                fw.trial_booted
            ),
            expected,
            "{before:?} booted {booted:?}"
        );
        assert_eq!(fw.boot_count, before.boot_count + 1, "every boot counts");
    }
}

#[test]
fn a_key_store_round_trips_and_one_whose_selector_disagrees_is_refused() {
    let mut keys = KeyStore {
        identity_seed: Some([7; 32]),
        ..KeyStore::default()
    };
    keys.firmware.active = 1;
    let mut buf = [0u8; 1024];
    let bytes = keys.encode(&mut buf).expect("fits").to_vec();
    assert_eq!(KeyStore::decode(&bytes), Some(keys.clone()));
    let mut damaged = bytes.clone();
    damaged[1] = 0; // the selector says slot A, the state slot B
    assert_eq!(KeyStore::decode(&damaged), None);
    // Layout 2 (the same postcard without the selector) still loads.
    let layout_2 = postcard::to_allocvec(&keys).expect("encodes");
    assert_eq!(KeyStore::decode(&layout_2), Some(keys));
}

#[test]
fn bad_signature_is_refused_and_nothing_is_staged() {
    let twin = twin();
    let vendor = SigningKey::from_bytes(&[42; 32]);
    let stranger = SigningKey::from_bytes(&[13; 32]);
    let mut bmc = boot(&twin, 2);
    bmc.add_trust_anchor(vendor.verifying_key().to_bytes())
        .expect("stored");
    assert_eq!(
        transfer(&mut bmc, &image(2000), 2, &stranger, true),
        Response::Error(ErrorCode::BadSignature)
    );
    assert_eq!(
        ask(&mut bmc, Request::FirmwareActivate),
        Response::Error(ErrorCode::InvalidState)
    );
    assert!(
        twin.lock().chassis[0].tray(2).expect("tray").flash.slots[1].is_empty(),
        "the slot was erased"
    );
    // A version below the running one is a rollback.
    assert_eq!(
        transfer(&mut bmc, &image(10), 1, &vendor, true),
        Response::Error(ErrorCode::Rollback)
    );
}

#[test]
fn interrupted_transfer_writes_nothing_usable_and_keeps_the_old_slot() {
    let twin = twin();
    let vendor = SigningKey::from_bytes(&[42; 32]);
    let mut bmc = boot(&twin, 1);
    bmc.add_trust_anchor(vendor.verifying_key().to_bytes())
        .expect("stored");
    assert_eq!(
        transfer(&mut bmc, &image(4000)[..1024], 2, &vendor, false),
        Response::Ack
    );
    // The link drops; the BMC restarts.
    let mut bmc = boot(&twin, 1);
    assert_eq!(
        ask(&mut bmc, Request::FirmwareActivate),
        Response::Error(ErrorCode::InvalidState)
    );
    let Response::Inventory(inv) = ask(&mut bmc, Request::Inventory) else {
        panic!("inventory")
    };
    assert_eq!((inv.active_slot, inv.firmware_version), (Slot::A, 1));
    // And an incomplete image never verifies.
    ask(
        &mut bmc,
        Request::FirmwareBegin {
            size: 4000,
            version: 2,
        },
    );
    let sig = sign_firmware(&vendor, &image(4000), 2);
    assert_eq!(
        ask(
            &mut bmc,
            Request::FirmwareFinish {
                signature: heapless::Vec::from_slice(&sig.to_bytes()).expect("64")
            }
        ),
        Response::Error(ErrorCode::BadImage)
    );
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

#[test]
fn a_key_store_written_before_network_boot_still_loads_with_its_identity() {
    #[derive(serde::Serialize)]
    struct KeyStoreV1 {
        identity_seed: Option<[u8; 32]>,
        link_key: Option<[u8; 32]>,
        trust_anchors: heapless::Vec<[u8; 32], 4>,
        rollback_counter: u64,
        firmware_floor: u32,
        firmware: racklet_bmc::FirmwareState,
        boot_mode: BootMode,
    }
    let old = KeyStoreV1 {
        identity_seed: Some([42; 32]),
        link_key: Some([43; 32]),
        trust_anchors: heapless::Vec::new(),
        rollback_counter: 9,
        firmware_floor: 1,
        firmware: racklet_bmc::FirmwareState::default(),
        boot_mode: BootMode::Network,
    };
    let bytes = postcard::to_allocvec(&old).expect("encodes");
    let keys = racklet_bmc::KeyStore::decode(&bytes).expect("the old layout is read");
    assert_eq!(keys.identity_seed, Some([42; 32]));
    assert_eq!(keys.link_key, Some([43; 32]));
    assert_eq!(keys.boot_mode, BootMode::Network);
    assert_eq!(keys.boot_accepted.targets, 9);
    assert!(keys.network_boot.is_none());
}

use racklet_mgmt_proto::boot_channel::{self, FromBmc, FromHost, Refusal};
use racklet_mgmt_proto::message::{
    BootMode, BootStage, BootVersions, Measurement, NetworkBootConfig,
};
