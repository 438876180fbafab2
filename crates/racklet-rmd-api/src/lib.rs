//! The rack management daemon's API, as one trait: what the Redfish service (issue 4) and
//! the control plane call. The daemon (`racklet-rmd`) implements it; anything that
//! manages a chassis the same way can too.

use std::future::Future;

use racklet_mgmt_proto::message::{BootMode, PowerAction, PowerState, Reading};
pub use racklet_mgmt_proto::message::{BootStage, BootVersions};
use serde::{Deserialize, Serialize};

/// How far the daemon trusts the BMC in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BmcTrust {
    /// Nothing on this hub port.
    Absent,
    /// A BMC is attached but has not answered yet.
    Connecting,
    /// A BMC nobody approved yet: it is shown, never commanded. `identity` is its Ed25519
    /// public key in hex; `enrolled_elsewhere` when it already has another link key.
    PendingApproval {
        identity: String,
        enrolled_elsewhere: bool,
    },
    /// Enrolled and in session.
    Trusted,
    /// A BMC that answers but cannot be trusted: it no longer proves the key it was
    /// enrolled with (wiped, or an impostor). Shown, never commanded, until an operator
    /// forgets its key.
    Refused { reason: String },
}

/// One tray as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrayInfo {
    pub slot: u32,
    pub name: Option<String>,
    pub board: Option<String>,
    pub bmc_serial: Option<u64>,
    pub trust: BmcTrust,
    /// None until a trusted BMC reported.
    pub power: Option<PowerState>,
    pub faults: u8,
    pub power_milliwatts: Reading,
    pub energy_millijoules: u64,
    pub soc_millicelsius: Reading,
    pub frames_dropped: u64,
    /// What the BMC said it runs, once it answered an inventory request.
    pub firmware: Option<BmcFirmware>,
    /// Powered, but its OS has halted (the BMC sees halted-OS draw).
    #[serde(default)]
    pub host_halted: bool,
}

/// The firmware a BMC runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcFirmware {
    pub version: u32,
    /// The A/B slot it booted from: 'A' or 'B'.
    pub slot: char,
    /// True while new firmware runs on trial, before it confirmed itself.
    pub trial: bool,
}

/// A step of a BMC firmware update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateStep {
    Transferring,
    Verifying,
    Activating,
    /// The BMC reboots into the new slot and must confirm it.
    Rebooting,
    Confirmed,
    Failed(String),
}

/// Where the chassis' BMC firmware update stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateProgress {
    pub slot: u32,
    pub version: u32,
    pub step: UpdateStep,
    /// 0–100.
    pub percent: u8,
}

/// One fan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanInfo {
    pub name: String,
    pub zone: String,
    pub duty_percent: f64,
    pub rpm: Option<u32>,
    /// Why the zone runs at a fixed duty, if it does.
    pub override_reason: Option<String>,
}

/// Severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One entry of the daemon's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub sequence: u64,
    pub unix_ms: u64,
    pub severity: Severity,
    pub slot: Option<u32>,
    pub message: String,
}

/// Console output of a tray, by byte sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleChunk {
    /// Sequence number of the first byte (later than asked when history was overwritten).
    pub from: u64,
    /// Sequence number to ask for next.
    pub next: u64,
    pub data: Vec<u8>,
}

/// Where a tray boots from next, as Redfish's `BootSourceOverrideTarget` values the
/// chassis' Redfish service offers (a closed set: nothing else is accepted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BootSourceTarget {
    /// No override: the board's own boot order.
    #[default]
    None,
    /// Network boot (PXE).
    Pxe,
    /// Network boot (UEFI HTTP).
    UefiHttp,
    /// The SD card.
    #[serde(rename = "SDCard")]
    SdCard,
    /// A USB drive.
    Usb,
}

impl BootSourceTarget {
    /// Every value, in the order the Redfish service lists them.
    pub const ALL: [BootSourceTarget; 5] = [
        BootSourceTarget::None,
        BootSourceTarget::Pxe,
        BootSourceTarget::UefiHttp,
        BootSourceTarget::SdCard,
        BootSourceTarget::Usb,
    ];

    /// The Redfish spelling.
    pub fn as_redfish(self) -> &'static str {
        match self {
            BootSourceTarget::None => "None",
            BootSourceTarget::Pxe => "Pxe",
            BootSourceTarget::UefiHttp => "UefiHttp",
            BootSourceTarget::SdCard => "SDCard",
            BootSourceTarget::Usb => "Usb",
        }
    }

    /// The value with this Redfish spelling (exact, as Redfish enums are).
    pub fn from_redfish(s: &str) -> Option<BootSourceTarget> {
        Self::ALL.into_iter().find(|t| t.as_redfish() == s)
    }

    /// True for the network boot targets.
    pub fn is_network(self) -> bool {
        matches!(self, BootSourceTarget::Pxe | BootSourceTarget::UefiHttp)
    }
}

/// Whether a boot override applies, as Redfish's `BootSourceOverrideEnabled`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BootSourceEnabled {
    #[default]
    Disabled,
    /// For the next boot only.
    Once,
    /// For every boot until changed.
    Continuous,
}

impl BootSourceEnabled {
    pub const ALL: [BootSourceEnabled; 3] = [
        BootSourceEnabled::Disabled,
        BootSourceEnabled::Once,
        BootSourceEnabled::Continuous,
    ];

    /// The Redfish spelling.
    pub fn as_redfish(self) -> &'static str {
        match self {
            BootSourceEnabled::Disabled => "Disabled",
            BootSourceEnabled::Once => "Once",
            BootSourceEnabled::Continuous => "Continuous",
        }
    }

    /// The value with this Redfish spelling.
    pub fn from_redfish(s: &str) -> Option<BootSourceEnabled> {
        Self::ALL.into_iter().find(|e| e.as_redfish() == s)
    }
}

/// A tray's boot override, owned and persisted by the daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BootOverride {
    pub target: BootSourceTarget,
    pub enabled: BootSourceEnabled,
}

impl BootOverride {
    /// The BMC boot mode this override means: network boot while a network target is
    /// enabled, the board's own order otherwise.
    pub fn boot_mode(self) -> BootMode {
        if self.enabled != BootSourceEnabled::Disabled && self.target.is_network() {
            BootMode::Network
        } else {
            BootMode::Local
        }
    }
}

/// A tray's network boot, owned and persisted by the daemon, kept by the BMC (which
/// serves it to the bootstrap on the boot channel) and shown by Redfish: `HttpBootUri`,
/// the `Boot/Certificates` collection, and Racklet's Oem properties for what Redfish has
/// no words for (the profile, its fallback, the TUF root the bootstrap starts from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkBoot {
    /// The boot repository (`https://…/boot/`).
    pub uri: String,
    pub profile: String,
    pub known_good: Option<String>,
    pub trusted_root: TrustedRoot,
    /// The boot server's certificate (PEM), which the bootstrap pins by its SHA-256.
    pub certificate_pem: Option<String>,
}

/// The SHA-256 of a PEM certificate's DER: how the bootstrap pins the boot server, and
/// the certificate's Redfish `Fingerprint`.
pub fn certificate_sha256(pem: &str) -> Result<[u8; 32], RmdError> {
    use rustls_pki_types::pem::PemObject as _;
    use sha2::Digest as _;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        RmdError::Invalid(format!("CertificateString is not a PEM certificate: {e}"))
    })?;
    Ok(sha2::Sha256::digest(der.as_ref()).into())
}

/// The TUF root a bootstrap starts from: its version and the SHA-256 of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedRoot {
    pub version: u64,
    /// Hex.
    pub sha256: String,
}

/// What the BMC saw of network boot on its boot channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootStatus {
    /// The BMC holds a network boot configuration (false after its flash was replaced).
    pub configured: bool,
    pub stage: BootStage,
    /// The anti-rollback counters: the highest TUF versions a bootstrap accepted.
    pub accepted: BootVersions,
    pub latest_time_unix: u64,
    pub measurement: Option<BootMeasurement>,
    /// Empty unless a bootstrap reported a failure.
    pub last_failure: String,
    /// The Ed25519 public key (hex) of the node's identity: the node agent's TLS client
    /// certificate carries it. Empty while the BMC has no identity.
    pub node_identity: String,
}

/// The digests a bootstrap measured before its hand-off (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootMeasurement {
    pub profile: String,
    pub git_commit: String,
    pub kernel_sha256: String,
    pub initramfs_sha256: String,
    pub versions: BootVersions,
    pub fell_back: bool,
}

/// An error and its causes on one line ("a: b: c"), for text that crosses the wire or
/// goes into one line (`RmdError` carries text; a Redfish message; a log line). Error
/// messages never repeat their cause, so nothing is said twice.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// What can go wrong calling the daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RmdError {
    #[error("chassis has no tray {0}")]
    NoTray(u32),
    #[error("tray {0} has no BMC attached")]
    Absent(u32),
    #[error("the BMC in tray {0} is not trusted yet: approve its identity first")]
    NotTrusted(u32),
    #[error("the BMC in tray {slot} refused: {reason}")]
    Refused { slot: u32, reason: String },
    #[error("the BMC in tray {0} did not answer in time")]
    Timeout(u32),
    #[error("no BMC waits for approval with identity {0}")]
    UnknownIdentity(String),
    #[error("the daemon is shutting down")]
    Stopped,
    #[error("busy: {0}")]
    Busy(String),
    #[error("the daemon cannot use its data dir: {0}")]
    Storage(String),
    /// A request with a value the daemon cannot use; says which and why.
    #[error("{0}")]
    Invalid(String),
}

/// The operations of one chassis' rack management daemon.
pub trait ChassisManager: Send + Sync {
    fn chassis_name(&self) -> &str;
    fn trays(&self) -> impl Future<Output = Vec<TrayInfo>> + Send;
    fn fans(&self) -> impl Future<Output = Vec<FanInfo>> + Send;
    fn power(
        &self,
        slot: u32,
        action: PowerAction,
    ) -> impl Future<Output = Result<PowerState, RmdError>> + Send;
    /// Clears latched faults (over-current, over-temperature, power-on timeout).
    fn clear_faults(&self, slot: u32) -> impl Future<Output = Result<PowerState, RmdError>> + Send;
    /// Console bytes from sequence `from` on: (first sequence returned, next, bytes).
    fn console_read(
        &self,
        slot: u32,
        from: u64,
    ) -> impl Future<Output = Result<ConsoleChunk, RmdError>> + Send;
    /// Types bytes into the tray's console.
    fn console_write(
        &self,
        slot: u32,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// Chooses how the tray boots next (its own boot order, or Racklet's network boot).
    fn set_boot_mode(
        &self,
        slot: u32,
        mode: BootMode,
    ) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// The tray's boot override (the default, `None`/`Disabled`, until one is set).
    fn boot_override(
        &self,
        slot: u32,
    ) -> impl Future<Output = Result<BootOverride, RmdError>> + Send;
    /// Sets the tray's boot override: its BMC is switched to the boot mode it means
    /// ([`BootOverride::boot_mode`], as [`ChassisManager::set_boot_mode`] does), then the
    /// daemon persists it, so it survives a daemon restart. Nothing is recorded if the
    /// BMC refuses or cannot be reached.
    fn set_boot_override(
        &self,
        slot: u32,
        boot: BootOverride,
    ) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// The tray's network boot (`None` until one is set).
    fn network_boot(
        &self,
        slot: u32,
    ) -> impl Future<Output = Result<Option<NetworkBoot>, RmdError>> + Send;
    /// Gives the tray's BMC its network boot (`None` forgets it), then persists it;
    /// nothing is recorded if the BMC refuses or cannot be reached.
    fn set_network_boot(
        &self,
        slot: u32,
        boot: Option<NetworkBoot>,
    ) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// What the tray's BMC saw on its boot channel (asked now).
    fn boot_status(&self, slot: u32) -> impl Future<Output = Result<BootStatus, RmdError>> + Send;
    /// Trusts the BMC that showed this identity (hex Ed25519 public key) and enrolls it.
    fn approve(&self, identity: &str) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// Refuses the BMC waiting for approval with this identity, for good (persisted).
    fn reject(&self, identity: &str) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// Forgets the enrollment key of the BMC in `slot` and enrolls it again with the
    /// identity it shows next (a BMC whose flash was wiped).
    fn forget_bmc(&self, slot: u32) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// The log's events after sequence `since`, oldest first.
    fn events(&self, since: u64) -> impl Future<Output = Vec<Event>> + Send;
    /// A subscription to the event log: it changes whenever an event is logged, and its
    /// value is the latest sequence number. A subscriber awaits `changed()` and then reads
    /// [`ChassisManager::events`] since the last sequence it handled, so it misses nothing
    /// however late it reads. It survives [`ChassisManager::restart`]; `changed()` fails
    /// only once the daemon is gone.
    fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Lights (or clears) a tray's identify indicator, so a person finds it in the rack.
    fn set_identify(
        &self,
        slot: u32,
        on: bool,
    ) -> impl Future<Output = Result<(), RmdError>> + Send;
    fn identify(&self, slot: u32) -> impl Future<Output = bool> + Send;
    /// Empties the event log (a logged operator action; later events keep counting up).
    fn clear_events(&self) -> impl Future<Output = ()> + Send;
    /// Starts updating the firmware of the BMC in `slot` with a signed image: transfer,
    /// verification by the BMC, one trial boot, confirmation. One update at a time.
    fn update_firmware(
        &self,
        slot: u32,
        image: std::sync::Arc<Vec<u8>>,
        version: u32,
        signature: [u8; 64],
    ) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// The latest firmware update, running or finished.
    fn update_progress(&self) -> impl Future<Output = Option<UpdateProgress>> + Send;
    /// Restarts the BMC in `slot` (its firmware, not the tray's power).
    fn reset_bmc(&self, slot: u32) -> impl Future<Output = Result<(), RmdError>> + Send;
    /// Restarts the daemon itself: it drops every BMC session, reloads its state from its
    /// data dir and reconnects, as after a process restart. Tray power is not touched.
    /// Refused while a firmware update runs.
    fn restart(&self) -> impl Future<Output = Result<(), RmdError>> + Send;
}
