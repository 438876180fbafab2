//! Who this BMC is: the flash chip's 64-bit unique ID (its USB serial number, by which the
//! rack management daemon tells BMCs apart), and a seeded CSPRNG for its keys.

use embassy_rp::clocks::RoscRng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// Where an emulator build reads its unique ID (rp2040js has no boot ROM, so the flash's
/// unique-ID command cannot be sent): the harness writes 8 bytes at this flash offset.
#[cfg(feature = "emulator")]
pub const EMULATED_ID_OFFSET: u32 = 0x1F_D000;

/// The flash chip's unique ID.
#[cfg(not(feature = "emulator"))]
pub fn unique_id(flash: crate::storage::SharedFlash) -> u64 {
    let mut id = [0u8; 8];
    // A failed read leaves zeros: the daemon then sees serial 0 and refuses to trust it
    // alongside another BMC with the same serial, which is the safe outcome.
    let _ = flash.borrow_mut().blocking_unique_id(&mut id);
    u64::from_be_bytes(id)
}

/// The ID the emulator harness put in flash.
#[cfg(feature = "emulator")]
pub fn unique_id() -> u64 {
    let at = (0x1000_0000 + EMULATED_ID_OFFSET) as *const [u8; 8];
    // SAFETY: the address is inside the memory-mapped XIP flash, always readable, and
    // aligned for a byte array.
    u64::from_be_bytes(unsafe { core::ptr::read_volatile(at) })
}

/// The USB serial-number string: 16 upper-case hex digits of `id`.
pub fn serial_string(id: u64) -> heapless::String<16> {
    let mut s = heapless::String::new();
    for shift in (0..16).rev() {
        let nibble = ((id >> (shift * 4)) & 0xF) as u8;
        let c = if nibble < 10 {
            b'0' + nibble
        } else {
            b'A' + nibble - 10
        };
        let _ = s.push(char::from(c));
    }
    s
}

/// A ChaCha20 generator seeded from 32 bytes of the ring oscillator's random bit,
/// the unique ID and the time since reset, hashed together.
pub fn rng(id: u64, now_micros: u64) -> ChaCha20Rng {
    let mut entropy = [0u8; 32];
    RoscRng.fill_bytes(&mut entropy);
    let mut h = Sha256::new();
    h.update(entropy);
    h.update(id.to_le_bytes());
    h.update(now_micros.to_le_bytes());
    ChaCha20Rng::from_seed(h.finalize().into())
}
