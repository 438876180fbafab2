//! Fuzzes the management-protocol decoder on both ends of an enrolled link: any byte
//! stream must be split, dropped and counted, never acted on wrongly, never a panic.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use racklet_mgmt_proto::link::{BmcEvent, BmcLink, RmcLink};
use racklet_mgmt_proto::FrameReader;

fuzz_target!(|data: &[u8]| {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let key = [7u8; 32];
    let mut bmc = BmcLink::new(1, SigningKey::from_bytes(&[9u8; 32]), Some(key), 1);
    let mut rmc = RmcLink::new(1, Some(key));
    let mut reader = FrameReader::default();
    for &b in data {
        if let Some(Ok(frame)) = reader.push(b) {
            // Without the key, no input can be an authenticated request.
            assert!(!matches!(bmc.receive(&frame, &mut rng), BmcEvent::Request(_)));
            let _ = rmc.receive(&frame);
        }
    }
});
