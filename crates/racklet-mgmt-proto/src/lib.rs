//! The management protocol between a tray's BMC and its chassis' rack management daemon.
//!
//! The USB hub broadcasts downstream traffic to every BMC, so every frame is bound to one
//! BMC and, after enrollment, sealed with a key only that BMC and the daemon hold:
//!
//! - **Framing**: `header ‖ payload`, COBS-encoded and ended by `0x00`; at most
//!   [`MAX_FRAME`] bytes on the wire. Oversized, truncated and malformed frames are dropped
//!   and counted ([`Drop`], [`DropCounters`]), never acted on.
//! - **Enrollment** (once, after an operator approves the BMC's Ed25519 identity): X25519
//!   key agreement, the BMC signs the transcript, both sides derive the long-term link key
//!   with HKDF-SHA256 and persist it. An enrolled BMC refuses to enroll again unless its
//!   owner re-opens enrollment on the BMC itself.
//! - **Sessions**: each connection derives a fresh key from the link key and two nonces
//!   (the BMC proves the key with an HMAC); frames are ChaCha20-Poly1305 with the header
//!   as associated data and a per-direction counter as nonce, so replays and reorders are
//!   dropped.
//! - **Messages** ([`message`]): a closed enum encoded with postcard.
#![no_std]
// Without a heap, messages and events are fixed-size values; boxing big variants is not an option.
#![allow(clippy::large_enum_variant)]

pub mod boot_channel;
pub mod bundle;
pub mod link;
pub mod message;

use serde::{Deserialize, Serialize};

/// Version of the wire format and message set (3: `BootReport` carries the node identity).
pub const PROTOCOL_VERSION: u8 = 3;
/// Largest frame on the wire, COBS overhead and delimiter included.
pub const MAX_FRAME: usize = 1024;
/// Bytes of the plain header.
pub const HEADER_LEN: usize = 20;
const MAGIC: u8 = 0x52; // 'R'
/// Largest `header ‖ payload` that still fits [`MAX_FRAME`] once COBS-encoded.
pub const MAX_DECODED: usize = MAX_FRAME - 1 - MAX_FRAME.div_ceil(254);

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Daemon → BMC: a session nonce.
    Hello = 0,
    /// BMC → daemon: identity, enrollment state, session nonce and key proof.
    HelloAck = 1,
    /// Daemon → BMC: the daemon's X25519 public key (operator approved this BMC).
    EnrollOffer = 2,
    /// BMC → daemon: the BMC's X25519 public key, signed with its identity.
    EnrollAccept = 3,
    /// An encrypted, authenticated message.
    Sealed = 4,
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    ToBmc = 0,
    ToRmc = 1,
}

/// The plain header of every frame (authenticated as associated data when sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: FrameKind,
    pub direction: Direction,
    /// The BMC's serial number (its USB serial): the frame is for, or from, this BMC.
    pub bmc: u64,
    /// Per-session, per-direction counter of sealed frames; 0 otherwise.
    pub counter: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = MAGIC;
        h[1] = PROTOCOL_VERSION;
        h[2] = self.kind as u8;
        h[3] = self.direction as u8;
        h[4..12].copy_from_slice(&self.bmc.to_le_bytes());
        h[12..20].copy_from_slice(&self.counter.to_le_bytes());
        h
    }

    pub fn decode(bytes: &[u8]) -> Result<Header, Drop> {
        if bytes.len() < HEADER_LEN {
            return Err(Drop::Truncated);
        }
        if bytes[0] != MAGIC || bytes[1] != PROTOCOL_VERSION {
            return Err(Drop::Malformed);
        }
        let kind = match bytes[2] {
            0 => FrameKind::Hello,
            1 => FrameKind::HelloAck,
            2 => FrameKind::EnrollOffer,
            3 => FrameKind::EnrollAccept,
            4 => FrameKind::Sealed,
            _ => return Err(Drop::Malformed),
        };
        let direction = match bytes[3] {
            0 => Direction::ToBmc,
            1 => Direction::ToRmc,
            _ => return Err(Drop::Malformed),
        };
        let mut bmc = [0u8; 8];
        bmc.copy_from_slice(&bytes[4..12]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&bytes[12..20]);
        Ok(Header {
            kind,
            direction,
            bmc: u64::from_le_bytes(bmc),
            counter: u64::from_le_bytes(counter),
        })
    }
}

/// Why a received frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Longer than [`MAX_FRAME`] before its delimiter.
    Oversized,
    /// Shorter than a header, or bad COBS.
    Truncated,
    /// Bad magic, version, kind or message encoding.
    Malformed,
    /// Failed authentication: altered, or sealed with another key.
    Tampered,
    /// A counter not above the highest seen in this session.
    Replayed,
    /// For another BMC (normal on a shared hub; counted, not an error).
    NotForUs,
    /// Valid, but not expected now (e.g. enrollment offered to an enrolled BMC, or a sealed
    /// frame with no session).
    Unexpected,
}

/// How many frames were dropped, per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounters {
    pub oversized: u32,
    pub truncated: u32,
    pub malformed: u32,
    pub tampered: u32,
    pub replayed: u32,
    pub not_for_us: u32,
    pub unexpected: u32,
}

impl DropCounters {
    pub fn count(&mut self, d: Drop) {
        let c = match d {
            Drop::Oversized => &mut self.oversized,
            Drop::Truncated => &mut self.truncated,
            Drop::Malformed => &mut self.malformed,
            Drop::Tampered => &mut self.tampered,
            Drop::Replayed => &mut self.replayed,
            Drop::NotForUs => &mut self.not_for_us,
            Drop::Unexpected => &mut self.unexpected,
        };
        *c = c.saturating_add(1);
    }

    pub fn total(&self) -> u64 {
        [
            self.oversized,
            self.truncated,
            self.malformed,
            self.tampered,
            self.replayed,
            self.not_for_us,
            self.unexpected,
        ]
        .iter()
        .map(|c| u64::from(*c))
        .sum()
    }
}

/// One encoded frame, ready for the wire (delimiter included).
pub type FrameBuf = heapless::Vec<u8, MAX_FRAME>;

/// COBS-encodes `header ‖ payload` and appends the delimiter.
pub fn encode_frame(header: &Header, payload: &[u8]) -> Option<FrameBuf> {
    let mut raw: heapless::Vec<u8, MAX_DECODED> = heapless::Vec::new();
    raw.extend_from_slice(&header.encode()).ok()?;
    raw.extend_from_slice(payload).ok()?;
    let mut out = [0u8; MAX_FRAME];
    if cobs::max_encoding_length(raw.len()) + 1 > MAX_FRAME {
        return None;
    }
    let n = cobs::encode(&raw, &mut out);
    let mut frame = FrameBuf::new();
    frame.extend_from_slice(&out[..n]).ok()?;
    frame.push(0).ok()?;
    Some(frame)
}

/// Decodes one frame (without its delimiter) into `buf`, returning the header and payload.
pub fn decode_frame<'b>(
    frame: &[u8],
    buf: &'b mut [u8; MAX_FRAME],
) -> Result<(Header, &'b [u8]), Drop> {
    if frame.len() >= MAX_FRAME {
        return Err(Drop::Oversized);
    }
    let n = cobs::decode(frame, buf).map_err(|()| Drop::Truncated)?;
    let header = Header::decode(&buf[..n])?;
    Ok((header, &buf[HEADER_LEN..n]))
}

/// Splits a byte stream into frames at `0x00` delimiters, dropping oversized ones.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: heapless::Vec<u8, MAX_FRAME>,
    skipping: bool,
}

impl FrameReader {
    /// Feeds one byte; returns a complete frame (without delimiter), or the reason one was
    /// dropped, when this byte ends it.
    pub fn push(&mut self, byte: u8) -> Option<Result<heapless::Vec<u8, MAX_FRAME>, Drop>> {
        if byte == 0 {
            let skipped = core::mem::replace(&mut self.skipping, false);
            let frame = core::mem::take(&mut self.buf);
            if skipped {
                return Some(Err(Drop::Oversized));
            }
            return (!frame.is_empty()).then_some(Ok(frame));
        }
        if !self.skipping && self.buf.push(byte).is_err() {
            self.skipping = true;
            self.buf.clear();
        }
        None
    }
}
