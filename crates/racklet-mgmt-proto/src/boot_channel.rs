//! The boot channel: the bootstrap agent on a compute unit and its tray's BMC, over a
//! second UART between the SBC and the BMC HAT (in the twin, a VM's second serial port).
//! It is a wire on one board, not a network: nothing on it is secret, and frames are not
//! sealed. The BMC is the root of trust for boot: it serves the configuration the daemon
//! gave it (where the boot repository is, which profile, the digests of the trusted TUF
//! root and of the server's certificate), keeps the highest TUF versions a bootstrap has
//! accepted (anti-rollback, never lowered) and the latest time one has seen, and records
//! what the bootstrap measured before it hands off.
//!
//! Frames are postcard, COBS-encoded and ended by `0x00` like the management protocol's
//! ([`crate::FrameReader`] splits them), at most [`crate::MAX_FRAME`] bytes.

use serde::{Deserialize, Serialize};

use crate::message::{BootVersions, Measurement, NetworkBootConfig, FAILURE_LEN};

/// Bootstrap → BMC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromHost {
    /// What to boot, and the floor to verify against.
    GetConfig,
    /// The bootstrap verified metadata with these versions (at the latest at
    /// `time_unix`): the BMC raises its counters to them, or refuses a rollback.
    Accept {
        versions: BootVersions,
        time_unix: u64,
    },
    /// The node's identity for the booted system; asked just before `Measured`.
    NodeIdentity,
    /// The digests of what is about to run; sent just before the hand-off.
    Measured(Measurement),
    /// The bootstrap gave up on a profile (the message is what its console said).
    Failed {
        message: heapless::String<FAILURE_LEN>,
    },
}

/// BMC → bootstrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromBmc {
    Config {
        config: NetworkBootConfig,
        /// The highest versions accepted before: metadata below them is a rollback.
        accepted: BootVersions,
        /// The latest time a bootstrap has seen; a clock earlier than it is wrong.
        latest_time_unix: u64,
    },
    Ack,
    Refused(Refusal),
    /// The seed of the node's Ed25519 identity, derived from the BMC's own; the booted
    /// system proves it in mutual TLS to the control plane, which knows the public key
    /// from Redfish. It crosses only this wire and stays in the booted system's memory.
    NodeIdentity {
        seed: [u8; 32],
    },
}

/// Why the BMC refused a boot-channel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The tray boots from its own media: there is nothing to serve.
    LocalBoot,
    /// Network boot was chosen but no configuration has been given yet.
    NotConfigured,
    /// Versions below the ones accepted before.
    Rollback,
    /// A frame that does not decode.
    BadRequest,
    /// The boot was handed off: the booted system gets no say over the counters or the
    /// measurement; the channel opens again at the next power-on.
    HandedOff,
}

/// Largest encoded boot-channel message.
pub const MAX_MESSAGE: usize = 512;

/// Encodes `msg` as one frame (COBS, `0x00`-terminated) into `out`; `None` if too big.
pub fn encode<T: Serialize>(msg: &T, out: &mut [u8; crate::MAX_FRAME]) -> Option<usize> {
    let mut plain = [0u8; MAX_MESSAGE];
    let used = postcard::to_slice(msg, &mut plain).ok()?.len();
    let n = cobs::encode(&plain[..used], &mut out[..crate::MAX_FRAME - 1]);
    out[n] = 0;
    Some(n + 1)
}

/// Decodes a frame [`crate::FrameReader`] split off (without its delimiter).
pub fn decode<'de, T: Deserialize<'de>>(
    frame: &[u8],
    buf: &'de mut [u8; MAX_MESSAGE],
) -> Option<T> {
    if frame.len() > crate::MAX_FRAME {
        return None;
    }
    let n = cobs::decode(frame, buf).ok()?;
    postcard::from_bytes(&buf[..n]).ok()
}
