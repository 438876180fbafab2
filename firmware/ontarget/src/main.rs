//! The BMC's no_std core checked on a Cortex-M (Armv6-M code, soft float, 32-bit
//! pointers), where it runs on a board: the management protocol's enrollment and sealed
//! frames, the power sequencing, the PAC1921 arithmetic, and the boot stage's reading of
//! the key store. `cargo run --release` runs it in QEMU; each check prints a line, a
//! failed one panics, and the exit code is the verdict (semihosting). Host-side tests of the same crates cannot catch what differs on
//! the target: integer widths, soft-float results, stack use of the crypto.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use ed25519_dalek::SigningKey;
use panic_semihosting as _;
use racklet_bmc::power::{PowerConfig, PowerMachine};
use racklet_mgmt_proto::link::{BmcEvent, BmcLink, RmcEvent, RmcLink};
use racklet_mgmt_proto::message::{
    PowerAction, PowerState, Request, RequestEnvelope, Response, ResponseEnvelope,
};
use racklet_mgmt_proto::{Drop, FrameBuf};
use racklet_pac1921::{result_code, Config, Scale};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SERIAL: u64 = 0xE661_4103_E745_2D2F;

fn strip(frame: &FrameBuf) -> &[u8] {
    assert_eq!(frame.last(), Some(&0), "frames end with the delimiter");
    &frame[..frame.len() - 1]
}

fn reply(ev: BmcEvent) -> FrameBuf {
    match ev {
        BmcEvent::Reply(f) | BmcEvent::Enrolled(_, f) => f,
        _ => panic!("expected a reply"),
    }
}

/// Enrollment of an approved identity, then a session: both ends derive the same key.
fn enrolled_pair(rng: &mut ChaCha8Rng) -> (BmcLink, RmcLink) {
    let identity = SigningKey::from_bytes(&[0x42; 32]);
    let mut bmc = BmcLink::new(SERIAL, identity, None, 1);
    let mut rmc = RmcLink::new(SERIAL, None);
    let Some(hello) = rmc.hello(rng) else {
        panic!("hello")
    };
    let ack = reply(bmc.receive(strip(&hello), rng));
    let RmcEvent::Hello { ack, session } = rmc.receive(strip(&ack)) else {
        panic!("hello ack")
    };
    assert!(!ack.enrolled && !session, "a new BMC is not enrolled");
    let Some(offer) = rmc.enroll(ack.identity, rng) else {
        panic!("offer")
    };
    let BmcEvent::Enrolled(bmc_key, accept) = bmc.receive(strip(&offer), rng) else {
        panic!("enrolled")
    };
    let RmcEvent::Enrolled { key } = rmc.receive(strip(&accept)) else {
        panic!("rmc enrolled")
    };
    assert_eq!(key, bmc_key, "both ends derive the same link key");
    let Some(hello) = rmc.hello(rng) else {
        panic!("hello")
    };
    let ack = reply(bmc.receive(strip(&hello), rng));
    let RmcEvent::Hello { session, .. } = rmc.receive(strip(&ack)) else {
        panic!("session")
    };
    assert!(session, "an enrolled BMC proves its key");
    (bmc, rmc)
}

fn protocol_enrolls_seals_and_refuses_replays_and_tampering() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let on = RequestEnvelope {
        id: 7,
        request: Request::Power(PowerAction::On),
    };
    let Some(frame) = rmc.request(&on) else {
        panic!("sealed request")
    };
    let BmcEvent::Request(got) = bmc.receive(strip(&frame), &mut rng) else {
        panic!("request")
    };
    assert_eq!(got, on);
    assert!(
        matches!(
            bmc.receive(strip(&frame), &mut rng),
            BmcEvent::Dropped(Drop::Replayed)
        ),
        "a replayed frame is dropped"
    );
    let ack = ResponseEnvelope {
        id: 7,
        response: Response::Ack,
    };
    let Some(frame) = bmc.respond(&ack) else {
        panic!("sealed response")
    };
    let RmcEvent::Response(got) = rmc.receive(strip(&frame)) else {
        panic!("response")
    };
    assert_eq!(got, ack);
    let Some(frame) = rmc.request(&on) else {
        panic!("sealed request")
    };
    let mut bad = frame.clone();
    let last = bad.len() - 2;
    bad[last] ^= 0x01;
    assert!(
        matches!(bmc.receive(strip(&bad), &mut rng), BmcEvent::Dropped(_)),
        "a tampered frame is dropped"
    );
}

fn power_sequencing_settles_and_latches_over_current() {
    let config = PowerConfig::default();
    let mut p = PowerMachine::new(config, false, 0);
    assert_eq!(p.state(), PowerState::Off);
    assert!(matches!(p.act(PowerAction::On, 10), Ok(None)));
    assert!(p.dcdc_enabled(), "power on drives DCDC_EN");
    p.tick(500_000, Some(config.settled_watts + 0.5), Some(40.0));
    assert_eq!(p.state(), PowerState::On);
    p.tick(600_000, Some(config.over_current_watts + 1.0), Some(40.0));
    assert_eq!(p.state(), PowerState::Fault);
    assert!(!p.dcdc_enabled(), "a fault cuts the converter");
    assert!(
        p.act(PowerAction::On, 700_000).is_err(),
        "refused while latched"
    );
    p.clear_faults(800_000);
    assert_eq!(p.state(), PowerState::Off);
    // A power-on that never draws times out into a fault.
    let mut p = PowerMachine::new(config, false, 0);
    assert!(p.act(PowerAction::On, 0).is_ok());
    p.tick(config.power_on_timeout_us + 1, Some(0.0), None);
    assert_eq!(p.state(), PowerState::Fault);
}

fn pac1921_arithmetic_matches_the_recorded_trace() {
    // The codes of crates/racklet-rmd-daemon/tests/data/pac1921.trace, gain 0x0a, 10 mΩ.
    let scale = Scale::new(
        &Config {
            gain: 0x0a,
            integration: 0,
            control: 0,
        },
        0.010,
    );
    let volts = scale.volts(result_code([0xa3, 0x00]));
    let amps = scale.amps(result_code([0x1f, 0x00]));
    let watts = scale.watts(result_code([0x13, 0xc0]));
    let near = |a: f64, b: f64| (a - b) < 1e-9 && (b - a) < 1e-9;
    assert!(near(volts, 5.098_729_227_761_486), "volts");
    assert!(near(amps, 0.606_060_606_060_606_1), "amps");
    assert!(near(watts, 3.088_954_056_695_992), "watts");
}

/// The boot stage's decision from a key store written by the core: the record format,
/// the selector at its start, the one try of a new slot and the fall-back after it.
// reason: a check's panic is its failure report.
#[allow(clippy::expect_used)]
fn boot_stage_reads_the_key_store_the_core_writes() {
    use racklet_bmc::{FirmwareState, KeyStore};
    use racklet_bootsel::record::{self, SECTOR};
    use racklet_bootsel::select::{self, BootKind};

    let keys = KeyStore {
        firmware: FirmwareState {
            active: 1,
            active_version: 2,
            staged_version: Some(1),
            trial: true,
            trial_booted: false,
            boot_count: 3,
        },
        ..KeyStore::default()
    };
    let mut buf = [0u8; 1024];
    let payload = keys.encode(&mut buf).expect("fits");
    let mut newer = [0xFFu8; SECTOR];
    record::build(8, payload, &mut newer).expect("record");
    let older_payload = KeyStore::default();
    let mut older_buf = [0u8; 1024];
    let mut older = [0xFFu8; SECTOR];
    record::build(
        7,
        older_payload.encode(&mut older_buf).expect("fits"),
        &mut older,
    )
    .expect("record");

    let (index, r) = record::newest([&older, &newer]).expect("a record");
    assert_eq!((index, r.sequence), (1, 8), "the newer record wins");
    let selector = r
        .payload(&newer)
        .and_then(select::BootSelector::from_payload);
    let trial = select::decide(selector, false, |_| true).expect("bootable");
    assert_eq!((trial.slot, trial.kind), (1, BootKind::Trial));
    let tried = select::decide(selector, true, |_| true).expect("bootable");
    assert_eq!((tried.slot, tried.kind), (0, BootKind::FellBack));
    assert_eq!(
        select::parse_handoff(select::handoff_word(tried)),
        Some(tried)
    );
    assert_eq!(
        KeyStore::decode(r.payload(&newer).expect("payload")),
        Some(keys),
        "the core reads back what it wrote"
    );

    // A write cut short (the newer sector torn): the older record is read.
    newer[record::HEADER_BYTES] ^= 0xFF;
    assert_eq!(record::newest([&older, &newer]).map(|(i, _)| i), Some(0));
}

#[entry]
fn main() -> ! {
    let checks: [(&str, fn()); 4] = [
        (
            "protocol_enrolls_seals_and_refuses_replays_and_tampering",
            protocol_enrolls_seals_and_refuses_replays_and_tampering,
        ),
        (
            "power_sequencing_settles_and_latches_over_current",
            power_sequencing_settles_and_latches_over_current,
        ),
        (
            "pac1921_arithmetic_matches_the_recorded_trace",
            pac1921_arithmetic_matches_the_recorded_trace,
        ),
        (
            "boot_stage_reads_the_key_store_the_core_writes",
            boot_stage_reads_the_key_store_the_core_writes,
        ),
    ];
    for (name, check) in checks {
        check();
        hprintln!("on target: {} ... ok", name);
    }
    hprintln!("on target: {} checks passed", checks.len());
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        // Unreachable: QEMU exits on the semihosting call.
        cortex_m::asm::wfi();
    }
}
