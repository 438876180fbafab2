//! The BMC core booted on the digital twin's trays, for the tests in this directory.

// reason: each test file uses some of these helpers; the rest would warn there.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use racklet_bmc::{Bmc, BmcConfig, PowerConfig};
use racklet_bootsel::BootChoice;
use racklet_mgmt_proto::message::{Request, RequestEnvelope, Response};
use racklet_model::ManifestSet;
use racklet_twin::hal::{TwinFlash, TwinTrayPeripherals};
use racklet_twin::{OsState, Twin, TwinConfig};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub const CH: &str = "chassis-1";
pub type TwinBmc = Bmc<
    racklet_twin::hal::TwinPin,
    racklet_twin::hal::TwinPin,
    racklet_twin::hal::TwinI2c,
    racklet_twin::hal::TwinConsole,
    racklet_twin::hal::TwinTemperature,
    racklet_twin::VirtualClock,
    TwinFlash,
    TwinFlash,
>;

pub fn twin() -> Twin {
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

pub fn boot_with(twin: &Twin, slot: u32, power: PowerConfig) -> TwinBmc {
    boot_seeded(twin, slot, power, u64::from(slot))
}

pub fn boot_seeded(twin: &Twin, slot: u32, power: PowerConfig, seed: u64) -> TwinBmc {
    boot_as(twin, slot, power, seed, None)
}

/// Boots tray `slot`'s BMC as a boot stage that chose `booted` would start it.
pub fn boot_as(
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

pub fn boot(twin: &Twin, slot: u32) -> TwinBmc {
    boot_with(twin, slot, PowerConfig::default())
}

/// Runs the BMC's loop every 100 ms of virtual time.
pub fn run(twin: &Twin, bmc: &mut TwinBmc, for_: Duration) {
    let steps = (for_.as_millis() / 100).max(1);
    for _ in 0..steps {
        twin.advance(Duration::from_millis(100));
        bmc.tick();
    }
}

pub fn ask(bmc: &mut TwinBmc, request: Request) -> Response {
    bmc.handle(&RequestEnvelope { id: 1, request }).response
}

pub fn os(twin: &Twin, slot: u32) -> OsState {
    twin.lock().chassis[0].tray(slot).expect("tray").os
}
