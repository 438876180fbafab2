//! What the BMC keeps across resets, and where: the key store (identity, link key, trust
//! anchors, network boot and its anti-rollback counters) and the A/B firmware slots. On
//! the RP2040 these are flash sectors; the twin keeps them in files. The key store is
//! postcard, which has no field names: a layout change keeps a decoder for the layout
//! before it, so an update never loses a BMC's identity.
//!
//! Layout 3 (this one) starts with the four fixed bytes of a `racklet_bootsel`
//! [`BootSelector`], which the boot stage reads to pick the slot, then the postcard
//! [`KeyStore`]; layout 2 is that postcard alone, layout 1 the one before network boot.

use racklet_bootsel::select::SELECTOR_BYTES;
use racklet_bootsel::{BootChoice, BootKind, BootSelector};
use racklet_mgmt_proto::message::{BootMode, BootVersions, NetworkBootConfig};
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
    /// The highest TUF metadata versions a bootstrap accepted (anti-rollback); never lowered.
    pub boot_accepted: BootVersions,
    /// Lowest firmware version the BMC will install.
    pub firmware_floor: u32,
    pub firmware: FirmwareState,
    /// The boot mode last asked for.
    pub boot_mode: BootMode,
    /// Where and what the tray boots over the network.
    pub network_boot: Option<NetworkBootConfig>,
    /// The latest time (Unix seconds) a bootstrap has seen: a clock behind it is wrong.
    pub boot_latest_time_unix: u64,
}

/// The layout before network boot (firmware of protocol version 1).
#[derive(Deserialize)]
struct KeyStoreV1 {
    identity_seed: Option<[u8; 32]>,
    link_key: Option<[u8; 32]>,
    trust_anchors: heapless::Vec<[u8; 32], MAX_ANCHORS>,
    rollback_counter: u64,
    firmware_floor: u32,
    firmware: FirmwareState,
    boot_mode: BootMode,
}

impl KeyStore {
    /// The key store in layout 3 (selector, then postcard) into `buf`; the bytes used.
    pub fn encode<'a>(&self, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        let (head, rest) = buf.split_at_mut_checked(SELECTOR_BYTES)?;
        head.copy_from_slice(&self.firmware.selector().to_bytes());
        let used = postcard::to_slice(self, rest).ok()?.len();
        buf.get(..SELECTOR_BYTES + used)
    }

    /// The key store in `bytes`, in the current layout or one before it.
    pub fn decode(bytes: &[u8]) -> Option<KeyStore> {
        if let Some(selector) = BootSelector::from_payload(bytes) {
            let rest = bytes.get(SELECTOR_BYTES..)?;
            // A layout must use every byte: a damaged store must not pass for an older one.
            let (k, []) = postcard::take_from_bytes::<KeyStore>(rest).ok()? else {
                return None;
            };
            // The selector is written from the same state: a difference is damage.
            return (k.firmware.selector() == selector).then_some(k);
        }
        if let Ok((k, [])) = postcard::take_from_bytes::<KeyStore>(bytes) {
            return Some(k);
        }
        let (v1, []) = postcard::take_from_bytes::<KeyStoreV1>(bytes).ok()? else {
            return None;
        };
        Some(KeyStore {
            identity_seed: v1.identity_seed,
            link_key: v1.link_key,
            trust_anchors: v1.trust_anchors,
            boot_accepted: BootVersions {
                targets: v1.rollback_counter,
                ..BootVersions::default()
            },
            firmware_floor: v1.firmware_floor,
            firmware: v1.firmware,
            boot_mode: v1.boot_mode,
            network_boot: None,
            boot_latest_time_unix: 0,
        })
    }
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

impl FirmwareState {
    /// What the boot stage needs of this state.
    pub fn selector(&self) -> BootSelector {
        BootSelector {
            active: self.active,
            trial: self.trial,
            trial_booted: self.trial_booted,
        }
    }

    /// Brings the state in line with the slot that booted and why (the boot stage's
    /// choice), counting the boot. `built_version` is the running image's own version,
    /// taken when the stage booted a slot this state does not account for.
    pub fn reconcile(&mut self, booted: BootChoice, built_version: u32) {
        self.boot_count += 1;
        match booted.kind {
            // The one try: the next unconfirmed reset falls back.
            BootKind::Trial => {
                self.active = booted.slot;
                self.trial = true;
                self.trial_booted = true;
            }
            BootKind::FellBack => {
                // On trial, staged_version holds the version to fall back to.
                self.active_version = match (self.trial, self.staged_version.take()) {
                    (true, Some(previous)) => previous,
                    _ => built_version,
                };
                self.active = booted.slot;
                self.trial = false;
                self.trial_booted = false;
            }
            BootKind::Normal if booted.slot != self.active || self.trial => {
                // Another image than this state names (a UF2 was written): adopt it.
                self.active = booted.slot;
                self.active_version = built_version;
                self.staged_version = None;
                self.trial = false;
                self.trial_booted = false;
            }
            BootKind::Normal => {}
        }
    }
}

pub use racklet_hal::{FirmwareSlots, KeyStorage};
