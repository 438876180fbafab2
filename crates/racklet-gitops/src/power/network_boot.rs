//! Network boot through Redfish, node by node: a compute unit with `bootMode: Network` and
//! a `bootProfile` gets the boot repository's URI (`Boot.HttpBootUri`), its profile and
//! fallback and the TUF root the bootstrap starts from (`Boot.Oem.Racklet`), and the boot
//! server's certificate (`Boot/Certificates`); one without them has its network boot
//! forgotten. Level-triggered: the system is compared with what it should be and changed
//! only where it differs. What the BMC saw of the boot (stage, counters, the digests the
//! bootstrap measured) is published as `status/boot/NAME` for the API.

use racklet_redfish_client::{Client, ClientError, System};
use rustls_pki_types::pem::PemObject as _;
use serde_json::{json, Value};
use sha2_std::Digest as _;

use crate::desired::{BootMode, DesiredNode};
use crate::store::{StateStore, StateStoreExt as _, StoreError};

/// Where nodes boot from: the control plane's boot repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootServer {
    /// `https://HOST:PORT/boot/`, as the nodes reach it.
    pub uri: String,
    pub root_version: u64,
    /// SHA-256 of the trusted root file, hex.
    pub root_sha256: String,
    /// The server's certificate, PEM; nodes pin its SHA-256.
    pub certificate_pem: String,
}

impl BootServer {
    /// The certificate's fingerprint as Redfish shows it (SHA-256 of the DER, hex).
    pub fn fingerprint(&self) -> Option<String> {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(self.certificate_pem.as_bytes())
            .ok()?;
        Some(hex::encode(sha2_std::Sha256::digest(der.as_ref())))
    }
}

/// What a node's BMC reported of its network boot, as the API shows it.
pub use racklet_client::NodeBoot as NodeBootStatus;

/// The store key of a node's boot status.
pub fn status_key(node: &str) -> String {
    format!("status/boot/{node}")
}

/// What changed, for the event log (`None`: nothing to do).
pub(super) async fn converge(
    client: &Client,
    system: &System,
    spec: &DesiredNode,
    server: Option<&BootServer>,
) -> Result<Option<String>, ClientError> {
    let racklet = &system.body["Boot"]["Oem"]["Racklet"];
    let wanted = match (spec.boot, &spec.boot_profile, server) {
        (BootMode::Network, Some(profile), Some(server)) => Some((profile, server)),
        _ => None,
    };
    let Some((profile, server)) = wanted else {
        if system.http_boot_uri.is_some() {
            client
                .patch(&system.uri, json!({"Boot": {"HttpBootUri": ""}}))
                .await?;
            return Ok(Some(format!("{}: network boot forgotten", spec.name)));
        }
        return Ok(None);
    };
    let mut changed = Vec::new();
    let same = system.http_boot_uri.as_deref() == Some(server.uri.as_str())
        && racklet["BootProfile"].as_str() == Some(profile.as_str())
        && racklet["KnownGoodProfile"].as_str() == spec.known_good.as_deref()
        && racklet["TrustedRoot"]["Version"].as_u64() == Some(server.root_version)
        && racklet["TrustedRoot"]["Sha256"].as_str() == Some(server.root_sha256.as_str())
        // A BMC that lost its configuration (new flash) is given it again.
        && system.body["Oem"]["Racklet"]["NetworkBoot"]["Configured"].as_bool() != Some(false);
    if !same {
        client
            .patch(
                &system.uri,
                json!({"Boot": {
                    "BootSourceOverrideTarget": "UefiHttp",
                    "BootSourceOverrideEnabled": "Continuous",
                    "HttpBootUri": server.uri,
                    "Oem": {"Racklet": {
                        "BootProfile": profile,
                        "KnownGoodProfile": spec.known_good,
                        "TrustedRoot": {"Version": server.root_version, "Sha256": server.root_sha256},
                    }},
                }}),
            )
            .await?;
        changed.push(format!(
            "boots profile {profile} from {} (TUF root version {})",
            server.uri, server.root_version
        ));
    }
    if let Some(collection) = &system.boot_certificates {
        if !holds_certificate(client, collection, server).await? {
            client
                .post_json(
                    collection,
                    json!({"CertificateString": server.certificate_pem, "CertificateType": "PEM"}),
                )
                .await?;
            changed.push("pins the boot server's certificate".into());
        }
    }
    Ok((!changed.is_empty()).then(|| format!("{}: {}", spec.name, changed.join("; "))))
}

async fn holds_certificate(
    client: &Client,
    collection: &str,
    server: &BootServer,
) -> Result<bool, ClientError> {
    let want = server.fingerprint();
    let list = client.get(collection).await?;
    for m in list["Members"].as_array().into_iter().flatten() {
        if let Some(uri) = m["@odata.id"].as_str() {
            let cert = client.get(uri).await?;
            if cert["Fingerprint"].as_str().map(str::to_ascii_lowercase) == want {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Publishes what the system's BMC reported of its network boot (or removes it).
pub(super) async fn publish<S: StateStore>(
    store: &S,
    node: &str,
    system: &System,
) -> Result<(), StoreError> {
    let key = status_key(node);
    let reported = &system.body["Oem"]["Racklet"]["NetworkBoot"];
    let old: Option<NodeBootStatus> = store.get_json(&key).await?;
    let status = reported.is_object().then(|| {
        let mut s = parse(reported);
        if s.stage == "HandedOff" {
            let same_boot = old.as_ref().filter(|o| {
                o.stage == s.stage
                    && (&o.profile, &o.git_commit, &o.kernel_sha256)
                        == (&s.profile, &s.git_commit, &s.kernel_sha256)
            });
            s.handed_off_at = match same_boot {
                Some(o) => o.handed_off_at.clone(),
                None => Some(racklet_client::time::rfc3339_ms(crate::unix_ms())),
            };
        }
        s
    });
    match status {
        Some(s) if old.as_ref() != Some(&s) => store.put_json(&key, &s).await,
        None if old.is_some() => store.write(Vec::new(), vec![key]).await,
        _ => Ok(()),
    }
}

fn parse(v: &Value) -> NodeBootStatus {
    let m = &v["Measurement"];
    let text = |x: &Value| x.as_str().map(str::to_string);
    NodeBootStatus {
        stage: v["Stage"].as_str().unwrap_or("Unknown").to_string(),
        accepted_targets_version: v["AcceptedVersions"]["Targets"].as_u64().unwrap_or(0),
        profile: text(&m["Profile"]),
        git_commit: text(&m["GitCommit"]),
        kernel_sha256: text(&m["KernelSha256"]),
        initramfs_sha256: text(&m["InitramfsSha256"]),
        fell_back: m["FellBack"].as_bool().unwrap_or(false),
        last_failure: v["LastFailure"].as_str().unwrap_or_default().to_string(),
        node_identity: v["NodeIdentityEd25519"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        handed_off_at: None,
    }
}

/// Every node's published boot status, by node.
pub async fn boot_statuses<S: StateStore>(
    store: &S,
) -> Result<std::collections::HashMap<String, NodeBootStatus>, StoreError> {
    let mut out = std::collections::HashMap::new();
    for (key, bytes) in store.list("status/boot/").await? {
        let status = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        out.insert(key.trim_start_matches("status/boot/").to_string(), status);
    }
    Ok(out)
}
