//! The BMC core on the digital twin: power sequencing, faults, firmware A/B, key store.

// reason: tests may expect, helpers included: a panic is their failure report; their
// sizes and readings are small and known.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use racklet_bmc::{Action, Bmc, BmcConfig, PowerConfig};
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
    let p: TwinTrayPeripherals = twin.tray_peripherals(CH, slot).expect("tray");
    let (_, flash) = twin.bmc_usb_and_flash(CH, slot).expect("tray");
    let config = BmcConfig {
        serial: u64::from(slot),
        board: heapless::String::try_from("rpi4b").expect("short"),
        firmware_version: 1,
        pac_gain: (2 << 3) | 2,
        power,
        reset_by_watchdog: false,
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
