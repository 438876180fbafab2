//! The booted system's side. The bootstrap hands the booted system a [`Handover`] (what it
//! booted, where the control plane is and how to pin it, the network, and the node
//! identity's seed from the BMC) as a second cpio archive appended to the verified
//! initramfs in memory: never on the kernel command line, never on the network. The
//! node agent ([`Agent`]), the booted system's first program, reports to the control
//! plane over mutual TLS with a certificate for that identity, then beats its heart.

use std::time::Duration;

use racklet_client::AgentReport;
use serde::{Deserialize, Serialize};
use url::Url;

/// Where the handover is in the booted system.
pub const HANDOVER_PATH: &str = "etc/racklet/node.json";
/// How often the agent reports (the control plane calls an agent silent after 15 s).
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// The node's address, as the bootstrap had it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// `ADDR/PREFIX`.
    pub address: String,
    pub gateway: Option<String>,
}

/// What the bootstrap hands the booted system.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handover {
    /// `https://HOST:PORT/`: the boot repository's origin, the control plane's API.
    pub control_plane: String,
    /// SHA-256 (hex) of the control plane's certificate, as the BMC pinned it.
    pub server_certificate_sha256: String,
    pub profile: String,
    pub git_commit: String,
    pub kernel_sha256: String,
    pub initramfs_sha256: String,
    pub network: Option<Network>,
    /// The node identity's seed (hex), from the BMC. Secret.
    pub identity_seed: String,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover")
            .field("control_plane", &self.control_plane)
            .field("profile", &self.profile)
            .field("git_commit", &self.git_commit)
            .field("identity_seed", &"(secret)")
            .finish_non_exhaustive()
    }
}

impl Handover {
    /// The handover as a gzip'd cpio archive, to append to an initramfs (the kernel
    /// unpacks concatenated archives in order).
    pub fn archive(&self) -> Result<Vec<u8>, crate::initramfs::InitramfsError> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::initramfs::overlay(&[(HANDOVER_PATH, json, 0o600)])
    }
}

/// Why the agent could not report.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "the handover is unreadable: {0}; the bootstrap writes it, so boot through the bootstrap"
    )]
    Handover(String),
    #[error("cannot make the node's client certificate: {0}")]
    Identity(String),
    #[error("cannot reach the control plane at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("the control plane refused the report ({status}): {body}")]
    Refused { status: u16, body: String },
}

/// The node agent.
pub struct Agent {
    client: reqwest::Client,
    url: Url,
    report: AgentReport,
}

impl Agent {
    /// An agent for the handover, reporting `boot_id` (this kernel's boot id).
    pub fn new(handover: &Handover, boot_id: String) -> Result<Agent, AgentError> {
        let bad = |e: String| AgentError::Handover(e);
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&handover.identity_seed, &mut seed)
            .map_err(|_| bad("identitySeed is not 32 bytes of hex".into()))?;
        let mut pin = [0u8; 32];
        hex::decode_to_slice(&handover.server_certificate_sha256, &mut pin)
            .map_err(|_| bad("serverCertificateSha256 is not a SHA-256".into()))?;
        let url = Url::parse(&handover.control_plane)
            .and_then(|u| u.join("v1/agent/report"))
            .map_err(|e| bad(format!("controlPlane: {e}")))?;
        let (cert, key) = racklet_tls::ed25519_client_certificate(&seed, "racklet node agent")
            .map_err(|e| AgentError::Identity(e.to_string()))?;
        let tls = racklet_boot_repo::client::pinned_sha256_tls(
            pin,
            Some((
                vec![cert.into()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key).into(),
            )),
        )
        .map_err(|e| AgentError::Identity(e.to_string()))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AgentError::Identity(e.to_string()))?;
        Ok(Agent {
            client,
            url,
            report: AgentReport {
                profile: handover.profile.clone(),
                git_commit: handover.git_commit.clone(),
                kernel_sha256: handover.kernel_sha256.clone(),
                initramfs_sha256: handover.initramfs_sha256.clone(),
                boot_id,
            },
        })
    }

    /// Reports once; returns the node the control plane knows this identity as.
    pub async fn report(&self) -> Result<String, AgentError> {
        let failed = |e: reqwest::Error| AgentError::Transport {
            url: self.url.to_string(),
            reason: error_chain(&e),
        };
        let response = self
            .client
            .post(self.url.clone())
            .json(&self.report)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let body = response.text().await.map_err(failed)?;
        if !status.is_success() {
            return Err(AgentError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        Ok(answer["node"].as_str().unwrap_or("?").to_string())
    }

    /// Reports every [`HEARTBEAT`] forever; a console line whenever the outcome changes.
    pub async fn run(self, mut console: impl FnMut(&str)) -> ! {
        let mut last: Option<Result<String, String>> = None;
        loop {
            let now = self.report().await.map_err(|e| e.to_string());
            if last.as_ref() != Some(&now) {
                match &now {
                    Ok(node) => console(&format!(
                        "racklet-node: reported to {} as node {node}: profile {} from commit {}",
                        self.url, self.report.profile, self.report.git_commit
                    )),
                    Err(e) => console(&format!("racklet-node: {e}")),
                }
                last = Some(now);
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
