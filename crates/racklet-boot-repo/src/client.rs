//! The verifying side: loads the boot repository over HTTPS with `tough` (signature
//! thresholds, expiry, versions, the root chain), refuses versions below an anti-rollback
//! floor (what a BMC has accepted before), and streams targets with their length and
//! SHA-256 checked before anything is used. The server's certificate is pinned: no system
//! roots, so a boot server presenting another certificate is refused.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt as _;
use tough::schema::RoleType;
use tough::{RepositoryLoader, TargetName};
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use crate::profile::ProfileDocument;
use crate::publish::Versions;

/// Why a repository or a target was refused. Each message names what failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("boot repository: {role} metadata has expired; the boot server's clock or its signer is behind")]
    Expired { role: String },
    #[error("boot repository: rollback refused: {role} version {got} is below version {floor}, which was accepted before")]
    Rollback {
        role: &'static str,
        got: u64,
        floor: u64,
    },
    #[error("boot repository: metadata refused: {reason}")]
    Metadata { reason: String },
    #[error("boot repository: cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("boot repository: no target {name:?} is signed")]
    NoSuchTarget { name: String },
    #[error("boot repository: target {name:?} refused: {reason}")]
    Target { name: String, reason: String },
    #[error("boot repository: profile document {name:?} is malformed: {reason}")]
    Profile { name: String, reason: String },
    #[error("boot repository: bad URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("boot repository: the server certificate is not PEM: {0}")]
    Certificate(String),
}

/// A client certificate and its key, for mutual TLS.
pub type ClientIdentity = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// TLS that trusts exactly the server certificate whose DER has this SHA-256 (see
/// [`HttpsTransport::pinned_sha256`]), presenting `client` if given.
pub fn pinned_sha256_tls(
    sha256: [u8; 32],
    client: Option<ClientIdentity>,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Certificate(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(DigestPin { sha256, provider }));
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| ClientError::Certificate(e.to_string())),
    }
}

/// HTTPS transport with one pinned certificate (or CA), bounded connect and read times:
/// a server that stalls mid-file fails the download instead of hanging the boot.
#[derive(Debug, Clone)]
pub struct HttpsTransport {
    client: reqwest::Client,
}

impl HttpsTransport {
    pub fn pinned(certificate_pem: &[u8], read_timeout: Duration) -> Result<Self, ClientError> {
        let cert = reqwest::Certificate::from_pem(certificate_pem)
            .map_err(|e| ClientError::Certificate(e.to_string()))?;
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(read_timeout)
            .build()
            .map_err(|e| ClientError::Certificate(e.to_string()))?;
        Ok(HttpsTransport { client })
    }

    /// Trusts exactly the server certificate whose DER has this SHA-256 (what a BMC
    /// pins), whatever name or issuer it has; the TLS handshake's signatures are still
    /// verified, so only the holder of that certificate's key gets through.
    pub fn pinned_sha256(sha256: [u8; 32], read_timeout: Duration) -> Result<Self, ClientError> {
        let tls = pinned_sha256_tls(sha256, None)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(read_timeout)
            .build()
            .map_err(|e| ClientError::Certificate(e.to_string()))?;
        Ok(HttpsTransport { client })
    }

    /// GETs `url` whole (a root file, before any metadata is trusted), at most `limit`
    /// bytes.
    pub async fn get(&self, url: &Url, limit: usize) -> Result<Vec<u8>, ClientError> {
        let failed = |reason: String| ClientError::Transport {
            url: url.to_string(),
            reason,
        };
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| failed(chain(&e)))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(chain(&e)))? {
            if out.len() + chunk.len() > limit {
                return Err(failed(format!("more than {limit} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// The certificate a BMC pinned is not the one the server presented. Its `Debug` is its
/// message too: rustls shows the cause of a refused certificate with `Debug`.
struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the boot server presented a certificate other than the one its BMC pinned")
    }
}

impl std::fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for PinMismatch {}

#[derive(Debug)]
struct DigestPin {
    sha256: [u8; 32],
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for DigestPin {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if crate::publish::sha256(end_entity.as_ref()) == self.sha256 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(std::sync::Arc::new(
                    PinMismatch,
                ))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tough::async_trait]
impl Transport for HttpsTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let response = self.client.get(url.clone()).send().await.map_err(|e| {
            TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), chain(&e))
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(TransportError::new(
                TransportErrorKind::FileNotFound,
                url.as_str(),
            ));
        }
        if !status.is_success() {
            return Err(TransportError::new_with_cause(
                TransportErrorKind::Other,
                url.as_str(),
                format!("HTTP {status}"),
            ));
        }
        let u = url.to_string();
        let stream = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| {
                TransportError::new_with_cause(TransportErrorKind::Other, u.as_str(), chain(&e))
            })
        });
        Ok(Box::pin(stream))
    }
}

/// A repository whose metadata verified.
#[derive(Debug)]
pub struct VerifiedRepository {
    repo: tough::Repository,
}

/// A target as the signed metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    pub length: u64,
    pub sha256: String,
    pub git_commit: Option<String>,
}

impl VerifiedRepository {
    /// Loads and verifies the repository at `base` (which has `metadata/` and `targets/`)
    /// starting from `trusted_root`, following its root chain. `datastore` keeps the last
    /// metadata and the latest time seen, so a clock set back is noticed; `None` uses a
    /// temporary one.
    pub async fn load(
        trusted_root: &[u8],
        base: &Url,
        transport: HttpsTransport,
        floor: Versions,
        datastore: Option<PathBuf>,
    ) -> Result<VerifiedRepository, ClientError> {
        let join = |p: &str| {
            base.join(p).map_err(|e| ClientError::Url {
                url: format!("{base}{p}"),
                reason: e.to_string(),
            })
        };
        let mut loader =
            RepositoryLoader::new(&trusted_root, join("metadata/")?, join("targets/")?)
                .transport(transport);
        if let Some(d) = datastore {
            loader = loader.datastore(d);
        }
        let repo = loader.load().await.map_err(refusal)?;
        let repo = VerifiedRepository { repo };
        let got = repo.versions();
        for (role, got, floor) in [
            ("root", got.root, floor.root),
            ("targets", got.targets, floor.targets),
            ("snapshot", got.snapshot, floor.snapshot),
            ("timestamp", got.timestamp, floor.timestamp),
        ] {
            if got < floor {
                return Err(ClientError::Rollback { role, got, floor });
            }
        }
        Ok(repo)
    }

    pub fn versions(&self) -> Versions {
        Versions {
            root: self.repo.root().signed.version.get(),
            targets: self.repo.targets().signed.version.get(),
            snapshot: self.repo.snapshot().signed.version.get(),
            timestamp: self.repo.timestamp().signed.version.get(),
        }
    }

    /// When the timestamp expires.
    pub fn timestamp_expires(&self) -> jiff::Timestamp {
        self.repo.timestamp().signed.expires
    }

    /// Every signed target name.
    pub fn target_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .repo
            .all_targets()
            .map(|(n, _)| n.raw().to_string())
            .collect();
        names.sort();
        names
    }

    pub fn target(&self, name: &str) -> Option<TargetInfo> {
        self.repo
            .all_targets()
            .find(|(n, _)| n.raw() == name)
            .map(|(_, t)| TargetInfo {
                length: t.length,
                sha256: hex::encode(&t.hashes.sha256),
                git_commit: t
                    .custom
                    .get("racklet")
                    .and_then(|c| c.get("gitCommit"))
                    .and_then(|c| c.as_str())
                    .map(str::to_string),
            })
    }

    /// Streams target `name` into `sink`; the bytes a sink saw count only when this
    /// returns `Ok`: a length or digest mismatch fails at the end. Returns the length
    /// and the SHA-256 of the bytes (tough hashed them as they streamed and they matched
    /// the signed digest, so that digest is what was measured).
    pub async fn read_target(
        &self,
        name: &str,
        mut sink: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(u64, [u8; 32]), ClientError> {
        let target = TargetName::new(name).map_err(|e| ClientError::Target {
            name: name.into(),
            reason: e.to_string(),
        })?;
        let refused = |reason: String| ClientError::Target {
            name: name.into(),
            reason,
        };
        let Some(mut stream) = self
            .repo
            .read_target(&target)
            .await
            .map_err(|e| refused(chain(&e)))?
        else {
            return Err(ClientError::NoSuchTarget { name: name.into() });
        };
        let mut length = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| refused(chain(&e)))?;
            length += chunk.len() as u64;
            sink(&chunk).map_err(refused)?;
        }
        let signed = self
            .target(name)
            .ok_or_else(|| ClientError::NoSuchTarget { name: name.into() })?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&signed.sha256, &mut digest).map_err(|e| refused(e.to_string()))?;
        if length != signed.length {
            return Err(refused(format!(
                "{length} bytes arrived, {} are signed",
                signed.length
            )));
        }
        Ok((length, digest))
    }

    /// A whole target in memory (profile documents, small files).
    pub async fn fetch(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.read_target(name, |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// The signed document of profile `profile`.
    pub async fn profile(&self, profile: &str) -> Result<ProfileDocument, ClientError> {
        let name = crate::Part::Profile.target(profile);
        let bytes = self.fetch(&name).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Profile {
            name,
            reason: e.to_string(),
        })
    }
}

/// The SHA-256 of `bytes` (a root file a BMC pinned by its digest).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    crate::publish::sha256(bytes)
}

/// tough's error as one of ours, with its cause chain in one line.
fn refusal(e: tough::error::Error) -> ClientError {
    match &e {
        tough::error::Error::ExpiredMetadata { role, .. } => ClientError::Expired {
            role: role_name(*role).into(),
        },
        tough::error::Error::Transport { source, .. } => ClientError::Transport {
            url: source.url().to_string(),
            reason: chain(&e),
        },
        _ => ClientError::Metadata { reason: chain(&e) },
    }
}

fn role_name(role: RoleType) -> &'static str {
    match role {
        RoleType::Root => "root",
        RoleType::Snapshot => "snapshot",
        RoleType::Targets => "targets",
        RoleType::Timestamp => "timestamp",
        RoleType::DelegatedTargets => "delegated targets",
    }
}

/// An error and its sources, `: `-separated, each once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
