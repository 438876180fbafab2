//! What the BMC keeps across resets, and where: the key store (identity, link key, trust
//! anchors, anti-rollback counter) and the A/B firmware slots. On the RP2040 these are
//! flash sectors; the twin keeps them in files.

use racklet_mgmt_proto::message::BootMode;
use serde::{Deserialize, Serialize};

/// Most trust anchors (Ed25519 public keys) the BMC holds.
pub const MAX_ANCHORS: usize = 4;

/// The persisted key store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyStore {
    /// Seed of the BMC's Ed25519 identity, generated once on first boot.
    pub identity_seed: Option<[u8; 32]>,
    /// The link key agreed at enrollment.
    pub link_key: Option<[u8; 32]>,
    /// Keys whose signatures the BMC accepts on firmware images and boot metadata.
    pub trust_anchors: heapless::Vec<[u8; 32], MAX_ANCHORS>,
    /// Highest boot-metadata version seen (TUF rollback protection); never decreases.
    pub rollback_counter: u64,
    /// Lowest firmware version the BMC will install.
    pub firmware_floor: u32,
    pub firmware: FirmwareState,
    /// The boot mode last asked for.
    pub boot_mode: BootMode,
}

/// Which slot holds what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FirmwareState {
    /// Slot the BMC boots by default (0 = A, 1 = B).
    pub active: u8,
    pub active_version: u32,
    /// A verified image waiting in the other slot: its version.
    pub staged_version: Option<u32>,
    /// Running (or about to boot) a new slot that has not confirmed yet.
    pub trial: bool,
    /// The trial slot has been booted once; booting again unconfirmed falls back.
    pub trial_booted: bool,
    pub boot_count: u64,
}

pub use racklet_hal::{FirmwareSlots, KeyStorage};
