//! The BMC core's firmware A/B on the digital twin: transfer, signature, the one try of a
//! new slot, the fall-back, the boot stage's choice, and the key store's layouts.

// reason: tests may expect, helpers included: a panic is their failure report; their
// sizes and readings are small and known.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

mod common;

use common::{ask, boot, boot_as, twin, TwinBmc};
use ed25519_dalek::SigningKey;
use racklet_bmc::{Action, FirmwareState, KeyStore, PowerConfig};
use racklet_bootsel::{BootChoice, BootKind, BootSelector};
use racklet_firmware_bundle::sign as sign_firmware;
use racklet_mgmt_proto::message::{BootMode, ErrorCode, Request, Response, Slot, FIRMWARE_CHUNK};
use racklet_twin::Twin;

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
