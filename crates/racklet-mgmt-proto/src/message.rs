//! The closed set of messages. Adding a variant is a protocol change: bump
//! [`crate::PROTOCOL_VERSION`].

use heapless::Vec;
use serde::{Deserialize, Serialize};

/// Largest console chunk in one message.
pub const CONSOLE_CHUNK: usize = 384;
/// Largest firmware chunk in one message.
pub const FIRMWARE_CHUNK: usize = 512;
/// Longest boot repository URI.
pub const BOOT_URI_LEN: usize = 160;
/// Longest boot profile name (a Kubernetes-style name).
pub const PROFILE_NAME_LEN: usize = 63;
/// Longest failure message kept from a bootstrap.
pub const FAILURE_LEN: usize = 120;

/// A request from the rack management daemon to a BMC, with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    pub id: u32,
    pub request: Request,
}

/// A BMC's answer to the request with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    pub id: u32,
    pub response: Response,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Status,
    Power(PowerAction),
    ClearFaults,
    ConsoleWrite(Vec<u8, CONSOLE_CHUNK>),
    /// Console bytes from sequence number `from` on (the BMC keeps a history ring).
    ConsoleRead {
        from: u64,
    },
    SetBootMode(BootMode),
    SetEepromWriteProtect(bool),
    Inventory,
    /// Starts a firmware transfer into the inactive slot.
    FirmwareBegin {
        size: u32,
        version: u32,
    },
    FirmwareChunk {
        offset: u32,
        data: Vec<u8, FIRMWARE_CHUNK>,
    },
    /// Ends the transfer; the BMC verifies the Ed25519 signature before marking the slot.
    FirmwareFinish {
        signature: Vec<u8, 64>,
    },
    /// Boots the new slot once; it must confirm or the BMC falls back.
    FirmwareActivate,
    /// Confirms the running slot as good.
    FirmwareConfirm,
    /// Restarts the BMC itself (the same firmware slot); tray power is not touched.
    Reboot,
    /// Where and what the tray boots over the network (`None` forgets it). Kept in the
    /// key store; served to the bootstrap on the boot channel.
    SetNetworkBoot(Option<NetworkBootConfig>),
    /// What the boot channel saw: accepted versions, stage, the last measurement.
    BootReport,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Ack,
    Status(BmcStatus),
    Console {
        from: u64,
        next: u64,
        data: Vec<u8, CONSOLE_CHUNK>,
    },
    Inventory(Inventory),
    BootReport(BootReport),
    Error(ErrorCode),
}

/// A tray's network boot, as the daemon gives it to the BMC: where the boot repository
/// is, which profile (and fallback) to boot, and the digests that anchor trust — of the
/// TUF root the bootstrap starts from and of the boot server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkBootConfig {
    pub uri: heapless::String<BOOT_URI_LEN>,
    pub profile: heapless::String<PROFILE_NAME_LEN>,
    pub known_good: Option<heapless::String<PROFILE_NAME_LEN>>,
    pub root_version: u64,
    pub root_sha256: [u8; 32],
    pub server_certificate_sha256: [u8; 32],
}

/// TUF metadata versions (anti-rollback counters when a BMC keeps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BootVersions {
    pub root: u64,
    pub targets: u64,
    pub snapshot: u64,
    pub timestamp: u64,
}

impl BootVersions {
    /// True when any of `self` is below `floor`'s.
    pub fn below(&self, floor: &BootVersions) -> bool {
        self.root < floor.root
            || self.targets < floor.targets
            || self.snapshot < floor.snapshot
            || self.timestamp < floor.timestamp
    }

    /// The higher of each.
    pub fn max(&self, other: &BootVersions) -> BootVersions {
        BootVersions {
            root: self.root.max(other.root),
            targets: self.targets.max(other.targets),
            snapshot: self.snapshot.max(other.snapshot),
            timestamp: self.timestamp.max(other.timestamp),
        }
    }
}

/// What a bootstrap measured just before handing off to a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    pub profile: heapless::String<PROFILE_NAME_LEN>,
    /// The Git commit (SHA-1) the profile was published from.
    pub git_commit: [u8; 20],
    pub kernel_sha256: [u8; 32],
    pub initramfs_sha256: [u8; 32],
    pub versions: BootVersions,
    /// It is the known-good fallback, booted after the profile failed.
    pub fell_back: bool,
}

/// Where the boot channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BootStage {
    /// Nothing asked since the BMC started (or since the tray was powered on).
    #[default]
    Idle,
    /// A bootstrap asked for the configuration.
    ConfigServed,
    /// A bootstrap reported its measurement and handed off.
    HandedOff,
    /// A bootstrap reported a failure.
    Failed,
}

/// The BMC's view of network boot, for the daemon (and Redfish).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BootReport {
    pub configured: bool,
    pub accepted: BootVersions,
    pub latest_time_unix: u64,
    pub stage: BootStage,
    pub measurement: Option<Measurement>,
    pub last_failure: heapless::String<FAILURE_LEN>,
    /// The Ed25519 public key of the node's identity (see `boot_channel::FromBmc::
    /// NodeIdentity`): the control plane accepts the node agent's TLS client certificate
    /// by it. Not a secret.
    pub node_identity: [u8; 32],
}

/// Power actions (the Redfish `ResetType`s a tray supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerAction {
    On,
    ForceOff,
    GracefulShutdown,
    ForceRestart,
    PowerCycle,
}

/// The BMC's power state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    Off,
    PoweringOn,
    On,
    GracefulShutdown,
    /// Off because of a latched fault; `ClearFaults` first.
    Fault,
}

/// Latched faults, as bits.
pub mod fault {
    pub const OVER_CURRENT: u8 = 1 << 0;
    pub const OVER_TEMPERATURE: u8 = 1 << 1;
    pub const POWER_ON_TIMEOUT: u8 = 1 << 2;
    pub const WATCHDOG: u8 = 1 << 3;
}

/// A sensor value or why there is none; never a NaN or a made-up 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reading {
    /// Milli-units: mW, m°C.
    Milli(i64),
    Absent,
    Stale,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcStatus {
    pub power: PowerState,
    pub faults: u8,
    pub power_milliwatts: Reading,
    pub energy_millijoules: u64,
    pub soc_millicelsius: Reading,
    pub boot_mode: BootMode,
    pub eeprom_write_protected: bool,
    pub uptime_ms: u64,
    /// Powered, but drawing what a halted OS draws for a while: the OS stopped (a
    /// `poweroff` on its console) and nothing will switch the tray off or on again.
    pub host_halted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BootMode {
    /// The board's own boot order (SD, eMMC, USB ...).
    #[default]
    Local,
    /// Racklet's zero-trust network boot.
    Network,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Slot {
    A,
    B,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub board: heapless::String<32>,
    pub serial: u64,
    pub firmware_version: u32,
    pub active_slot: Slot,
    /// True while running a new slot that has not confirmed yet.
    pub trial: bool,
    pub boot_counter: u64,
    /// The hardware watchdog caused the last reset (the firmware hung).
    pub last_reset_watchdog: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Not possible in the current state (e.g. power on with a latched fault).
    InvalidState,
    BadRequest,
    /// The firmware image's signature does not verify with the rack's trust anchors.
    BadSignature,
    /// A chunk outside the announced image, or the image is incomplete.
    BadImage,
    /// An older firmware version than the anti-rollback counter allows.
    Rollback,
}
