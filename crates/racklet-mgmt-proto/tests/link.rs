//! Enrollment, sessions and every way a frame must be refused.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use ed25519_dalek::SigningKey;
use racklet_mgmt_proto::link::{BmcEvent, BmcLink, RmcEvent, RmcLink};
use racklet_mgmt_proto::message::{
    PowerAction, Request, RequestEnvelope, Response, ResponseEnvelope, FIRMWARE_CHUNK,
};
use racklet_mgmt_proto::{Drop, FrameBuf, FrameReader, MAX_FRAME};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SERIAL: u64 = 0x5EB1A1;

fn strip(frame: &FrameBuf) -> &[u8] {
    assert_eq!(frame.last(), Some(&0), "frames end with the delimiter");
    &frame[..frame.len() - 1]
}

fn reply(ev: BmcEvent) -> FrameBuf {
    match ev {
        BmcEvent::Reply(f) | BmcEvent::Enrolled(_, f) => f,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// An enrolled pair with a live session.
fn enrolled_pair(rng: &mut ChaCha8Rng) -> (BmcLink, RmcLink) {
    let identity = SigningKey::generate(rng);
    let mut bmc = BmcLink::new(SERIAL, identity, None, 1);
    let mut rmc = RmcLink::new(SERIAL, None);
    let hello = rmc.hello(rng).expect("hello");
    let ack = reply(bmc.receive(strip(&hello), rng));
    let RmcEvent::Hello { ack, session } = rmc.receive(strip(&ack)) else {
        panic!("hello ack")
    };
    assert!(!ack.enrolled && !session);
    // The operator approves the identity the BMC showed.
    let offer = rmc.enroll(ack.identity, rng).expect("offer");
    let BmcEvent::Enrolled(bmc_key, accept) = bmc.receive(strip(&offer), rng) else {
        panic!("enrolled")
    };
    let RmcEvent::Enrolled { key } = rmc.receive(strip(&accept)) else {
        panic!("rmc enrolled")
    };
    assert_eq!(key, bmc_key, "both ends derive the same link key");
    connect(&mut bmc, &mut rmc, rng);
    (bmc, rmc)
}

fn connect(bmc: &mut BmcLink, rmc: &mut RmcLink, rng: &mut ChaCha8Rng) {
    let hello = rmc.hello(rng).expect("hello");
    let ack = reply(bmc.receive(strip(&hello), rng));
    let RmcEvent::Hello { session, .. } = rmc.receive(strip(&ack)) else {
        panic!("hello ack")
    };
    assert!(session, "an enrolled BMC proves the key");
}

fn power_on(id: u32) -> RequestEnvelope {
    RequestEnvelope {
        id,
        request: Request::Power(PowerAction::On),
    }
}

#[test]
fn enrolled_link_carries_requests_and_responses() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let frame = rmc.request(&power_on(7)).expect("sealed");
    let BmcEvent::Request(req) = bmc.receive(strip(&frame), &mut rng) else {
        panic!("request")
    };
    assert_eq!(req, power_on(7));
    let resp = ResponseEnvelope {
        id: 7,
        response: Response::Ack,
    };
    let frame = bmc.respond(&resp).expect("sealed");
    let RmcEvent::Response(got) = rmc.receive(strip(&frame)) else {
        panic!("response")
    };
    assert_eq!(got, resp);
}

#[test]
fn replayed_power_on_frame_is_ignored_and_counted() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let frame = rmc.request(&power_on(1)).expect("sealed");
    assert!(matches!(
        bmc.receive(strip(&frame), &mut rng),
        BmcEvent::Request(_)
    ));
    assert!(matches!(
        bmc.receive(strip(&frame), &mut rng),
        BmcEvent::Dropped(Drop::Replayed)
    ));
    assert_eq!(bmc.drops.replayed, 1);
}

#[test]
fn tampered_frames_are_dropped() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let frame = rmc.request(&power_on(1)).expect("sealed");
    for i in 0..frame.len() - 1 {
        let mut bad = frame.clone();
        bad[i] ^= 0x01;
        if bad[i] == 0 {
            continue; // would split the frame: a different drop, tested elsewhere
        }
        let ev = bmc.receive(strip(&bad), &mut rng);
        assert!(
            matches!(ev, BmcEvent::Dropped(_)),
            "byte {i} flipped: {ev:?}"
        );
    }
    assert!(bmc.drops.tampered > 0);
    // The untouched frame still works: drops did not disturb the session.
    assert!(matches!(
        bmc.receive(strip(&frame), &mut rng),
        BmcEvent::Request(_)
    ));
}

#[test]
fn truncated_garbage_and_oversized_frames_are_dropped() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let frame = rmc.request(&power_on(1)).expect("sealed");
    for cut in 1..frame.len() - 1 {
        assert!(
            matches!(bmc.receive(&frame[..cut], &mut rng), BmcEvent::Dropped(_)),
            "cut at {cut}"
        );
    }
    assert!(matches!(
        bmc.receive(&[0xFF; 40], &mut rng),
        BmcEvent::Dropped(_)
    ));
    let mut reader = FrameReader::default();
    let mut results = Vec::new();
    for b in std::iter::repeat_n(7u8, MAX_FRAME + 10)
        .chain([0u8])
        .chain(frame.iter().copied())
    {
        if let Some(r) = reader.push(b) {
            results.push(r);
        }
    }
    assert_eq!(results.len(), 2);
    assert_eq!(results[0], Err(Drop::Oversized));
    let good = results[1].as_ref().expect("the next frame survives");
    assert!(matches!(bmc.receive(good, &mut rng), BmcEvent::Request(_)));
}

#[test]
fn frames_for_another_bmc_are_not_acted_on() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (_, mut rmc) = enrolled_pair(&mut rng);
    let mut neighbour = BmcLink::new(SERIAL + 1, SigningKey::generate(&mut rng), None, 1);
    let frame = rmc.request(&power_on(1)).expect("sealed");
    assert!(matches!(
        neighbour.receive(strip(&frame), &mut rng),
        BmcEvent::Dropped(Drop::NotForUs)
    ));
}

#[test]
fn enrolled_bmc_is_not_re_enrolled_by_surprise() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (mut bmc, _) = enrolled_pair(&mut rng);
    let mut intruder = RmcLink::new(SERIAL, None);
    let offer = intruder
        .enroll(bmc.identity().to_bytes(), &mut rng)
        .expect("offer");
    assert!(matches!(
        bmc.receive(strip(&offer), &mut rng),
        BmcEvent::Dropped(Drop::Unexpected)
    ));
    bmc.reopen_enrollment();
    assert!(matches!(
        bmc.receive(strip(&offer), &mut rng),
        BmcEvent::Enrolled(..)
    ));
}

#[test]
fn enrollment_answered_by_an_unapproved_identity_is_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut impostor = BmcLink::new(SERIAL, SigningKey::generate(&mut rng), None, 1);
    let approved = SigningKey::generate(&mut rng).verifying_key().to_bytes();
    let mut rmc = RmcLink::new(SERIAL, None);
    let offer = rmc.enroll(approved, &mut rng).expect("offer");
    let accept = reply(impostor.receive(strip(&offer), &mut rng));
    assert!(matches!(
        rmc.receive(strip(&accept)),
        RmcEvent::Dropped(Drop::Tampered)
    ));
}

#[test]
fn replayed_hello_does_not_break_the_live_session() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let old_hello = rmc.hello(&mut rng).expect("hello");
    let ack = reply(bmc.receive(strip(&old_hello), &mut rng));
    assert!(matches!(
        rmc.receive(strip(&ack)),
        RmcEvent::Hello { session: true, .. }
    ));
    // The daemon's first request makes the session live.
    let first = rmc.request(&power_on(2)).expect("sealed");
    assert!(matches!(
        bmc.receive(strip(&first), &mut rng),
        BmcEvent::Request(_)
    ));
    // Someone replays the hello: the BMC offers yet another session, but keeps this one.
    let _ = bmc.receive(strip(&old_hello), &mut rng);
    let frame = rmc.request(&power_on(3)).expect("sealed");
    assert!(matches!(
        bmc.receive(strip(&frame), &mut rng),
        BmcEvent::Request(_)
    ));
}

#[test]
fn frames_from_an_earlier_session_are_refused_after_reconnect() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let old = rmc.request(&power_on(1)).expect("sealed");
    connect(&mut bmc, &mut rmc, &mut rng);
    // Counter 1 in both sessions: only the key tells them apart.
    assert!(matches!(
        bmc.receive(strip(&old), &mut rng),
        BmcEvent::Dropped(Drop::Tampered)
    ));
    let new = rmc.request(&power_on(2)).expect("sealed");
    assert!(matches!(
        bmc.receive(strip(&new), &mut rng),
        BmcEvent::Request(_)
    ));
}

#[test]
fn replayed_hello_ack_cannot_rebuild_a_session() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let hello = rmc.hello(&mut rng).expect("hello");
    let ack = reply(bmc.receive(strip(&hello), &mut rng));
    assert!(matches!(
        rmc.receive(strip(&ack)),
        RmcEvent::Hello { session: true, .. }
    ));
    let req = rmc.request(&power_on(1)).expect("sealed");
    let BmcEvent::Request(_) = bmc.receive(strip(&req), &mut rng) else {
        panic!("request")
    };
    let resp = bmc
        .respond(&ResponseEnvelope {
            id: 1,
            response: Response::Ack,
        })
        .expect("sealed");
    assert!(matches!(rmc.receive(strip(&resp)), RmcEvent::Response(_)));
    // Replaying the ack must not reset the daemon's counters (nonce reuse, old responses).
    assert!(matches!(
        rmc.receive(strip(&ack)),
        RmcEvent::Dropped(Drop::Unexpected)
    ));
    assert!(matches!(
        rmc.receive(strip(&resp)),
        RmcEvent::Dropped(Drop::Replayed)
    ));
}

#[test]
fn largest_messages_fit_in_one_kibibyte() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let (mut bmc, mut rmc) = enrolled_pair(&mut rng);
    let data = heapless::Vec::from_slice(&[0u8; FIRMWARE_CHUNK]).expect("fits");
    let req = RequestEnvelope {
        id: u32::MAX,
        request: Request::FirmwareChunk {
            offset: u32::MAX,
            data,
        },
    };
    let frame = rmc.request(&req).expect("fits a frame");
    assert!(frame.len() <= MAX_FRAME);
    assert!(matches!(
        bmc.receive(strip(&frame), &mut rng),
        BmcEvent::Request(_)
    ));
}
