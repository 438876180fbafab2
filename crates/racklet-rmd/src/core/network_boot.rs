//! Network boot in the daemon: each tray's [`NetworkBoot`] is checked, turned into the
//! BMC's compact form (digests instead of the certificate), persisted in
//! `network-boot.json`, and the BMC's boot report is turned back into API types.

use racklet_mgmt_proto::message::{BootReport, NetworkBootConfig, BOOT_URI_LEN, PROFILE_NAME_LEN};
use racklet_rmd_api::{
    certificate_sha256, error_chain, BootMeasurement, BootStatus, NetworkBoot, RmdError,
};

use super::{DaemonCore, Severity};

/// What the BMC keeps of `boot`: the URI and names, the root's digest, and the SHA-256 of
/// the certificate's DER (zeros when there is none: the bootstrap then refuses to fetch).
pub fn bmc_config(boot: &NetworkBoot) -> Result<NetworkBootConfig, RmdError> {
    let invalid = |m: String| RmdError::Invalid(m);
    if !boot.uri.starts_with("https://") {
        return Err(invalid(format!(
            "HttpBootUri {:?} must be an https:// URL: network boot never uses plain HTTP",
            boot.uri
        )));
    }
    let short = |what: &str, value: &str, max: usize| {
        if value.len() > max || value.is_empty() {
            Err(invalid(format!(
                "{what} {value:?} must be 1 to {max} bytes"
            )))
        } else {
            Ok(())
        }
    };
    short("HttpBootUri", &boot.uri, BOOT_URI_LEN)?;
    short("BootProfile", &boot.profile, PROFILE_NAME_LEN)?;
    if let Some(k) = &boot.known_good {
        short("KnownGoodProfile", k, PROFILE_NAME_LEN)?;
    }
    let root_sha256 = digest_hex("TrustedRoot.Sha256", &boot.trusted_root.sha256)?;
    let server_certificate_sha256 = match &boot.certificate_pem {
        Some(pem) => certificate_sha256(pem)?,
        None => [0; 32],
    };
    let text =
        |s: &str| heapless::String::try_from(s).map_err(|_| invalid(format!("{s:?} is too long")));
    Ok(NetworkBootConfig {
        uri: heapless::String::try_from(boot.uri.as_str())
            .map_err(|_| invalid("HttpBootUri is too long".into()))?,
        profile: text(&boot.profile)?,
        known_good: boot.known_good.as_deref().map(text).transpose()?,
        root_version: boot.trusted_root.version,
        root_sha256,
        server_certificate_sha256,
    })
}

fn digest_hex(what: &str, hex_text: &str) -> Result<[u8; 32], RmdError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).map_err(|_| {
        RmdError::Invalid(format!(
            "{what} {hex_text:?} must be a SHA-256 in hex (64 digits)"
        ))
    })?;
    Ok(out)
}

/// The BMC's report in API terms.
pub fn boot_status(report: BootReport) -> BootStatus {
    BootStatus {
        configured: report.configured,
        stage: report.stage,
        accepted: report.accepted,
        latest_time_unix: report.latest_time_unix,
        measurement: report.measurement.map(|m| BootMeasurement {
            profile: m.profile.to_string(),
            git_commit: hex::encode(m.git_commit),
            kernel_sha256: hex::encode(m.kernel_sha256),
            initramfs_sha256: hex::encode(m.initramfs_sha256),
            versions: m.versions,
            fell_back: m.fell_back,
        }),
        last_failure: report.last_failure.to_string(),
        node_identity: if report.node_identity == [0; 32] {
            String::new()
        } else {
            hex::encode(report.node_identity)
        },
    }
}

impl DaemonCore {
    /// The tray's network boot (`None` until one is set).
    pub fn network_boot(&self, slot: u32) -> Result<Option<NetworkBoot>, RmdError> {
        self.boot_override(slot)?; // no such tray: say so
        Ok(self.network.get(&slot).cloned())
    }

    /// Records the tray's network boot and persists it (the caller has already given it
    /// to the BMC). On a storage failure nothing changes.
    pub fn set_network_boot(
        &mut self,
        slot: u32,
        boot: Option<NetworkBoot>,
    ) -> Result<(), RmdError> {
        if self.network_boot(slot)? == boot {
            return Ok(());
        }
        let mut next = self.network.clone();
        match &boot {
            Some(b) => next.insert(slot, b.clone()),
            None => next.remove(&slot),
        };
        self.store
            .save_network_boots(&next)
            .map_err(|e| RmdError::Storage(error_chain(&e)))?;
        self.network = next;
        let text = match &boot {
            Some(b) => format!(
                "tray {slot} network boot: profile {} from {} (TUF root version {})",
                b.profile, b.uri, b.trusted_root.version
            ),
            None => format!("tray {slot} network boot forgotten"),
        };
        self.event(Severity::Info, Some(slot), text);
        Ok(())
    }
}
