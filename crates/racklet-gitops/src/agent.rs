//! The node agents: the first program of each booted system reports what it booted and
//! then beats its heart, over mutual TLS on the API's own port. A node's identity is an
//! Ed25519 key its BMC derived (the BMC hands the seed to the bootstrap over the boot
//! channel; the public key reaches the control plane through Redfish, in the node's
//! `status.boot.nodeIdentity`). The agent's client certificate is self-signed: what
//! authenticates it is its public key, which must be a node's, and the TLS handshake's
//! proof that the agent holds the private key. No CA, nothing secret on the network.
//!
//! The API asks for a client certificate but does not demand one, so every other
//! client (the CLI with its bearer token, a browser) is unaffected.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use axum::middleware::AddExtension;
use axum::Extension;
use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsAcceptor;
use racklet_client::{AgentReport, NodeAgent};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tower_layer::Layer as _;

use crate::store::{StateStore, StateStoreExt as _, StoreError};

/// An agent silent this long is no longer ready (it reports every few seconds).
pub const SILENCE_MS: u64 = 15_000;

/// What the control plane keeps of a node's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub report: AgentReport,
    /// The first report with this boot id.
    pub booted_unix_ms: u64,
    pub last_unix_ms: u64,
}

impl AgentRecord {
    /// True when the agent reported within [`SILENCE_MS`] of `now_ms`.
    pub fn ready(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_unix_ms) < SILENCE_MS
    }

    pub fn to_api(&self) -> NodeAgent {
        let r = &self.report;
        NodeAgent {
            profile: r.profile.clone(),
            git_commit: r.git_commit.clone(),
            kernel_sha256: r.kernel_sha256.clone(),
            initramfs_sha256: r.initramfs_sha256.clone(),
            boot_id: r.boot_id.clone(),
            booted_at: racklet_client::time::rfc3339(self.booted_unix_ms),
            last_heartbeat: racklet_client::time::rfc3339(self.last_unix_ms),
        }
    }
}

pub fn status_key(node: &str) -> String {
    format!("status/agent/{node}")
}

/// Records a report of `node`'s agent at `now_ms`; a new boot id starts a new boot.
pub async fn record<S: StateStore>(
    store: &S,
    node: &str,
    report: AgentReport,
    now_ms: u64,
) -> Result<(), StoreError> {
    let key = status_key(node);
    let old: Option<AgentRecord> = store.get_json(&key).await?;
    let booted_unix_ms = match old {
        Some(o) if o.report.boot_id == report.boot_id => o.booted_unix_ms,
        _ => now_ms,
    };
    store
        .put_json(
            &key,
            &AgentRecord {
                report,
                booted_unix_ms,
                last_unix_ms: now_ms,
            },
        )
        .await
}

/// Every node's agent record, by node.
pub async fn records<S: StateStore>(store: &S) -> Result<HashMap<String, AgentRecord>, StoreError> {
    let mut out = HashMap::new();
    for (key, bytes) in store.list("status/agent/").await? {
        let record = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        out.insert(key.trim_start_matches("status/agent/").to_string(), record);
    }
    Ok(out)
}

/// The Ed25519 public key of the client certificate a TLS connection presented (the
/// handshake proved its holder has the private key); `None` without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKey(pub Option<[u8; 32]>);

/// The Ed25519 public key in a certificate, parsed as X.509 (not searched for).
pub fn ed25519_key(der: &[u8]) -> Option<[u8; 32]> {
    use x509_parser::prelude::FromDer as _;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_SIG_ED25519 {
        return None;
    }
    <[u8; 32]>::try_from(&spki.subject_public_key.data[..]).ok()
}

/// Asks for a client certificate, accepts any well-formed one whose handshake signature
/// verifies, and lets requests without one through: authorization is by public key, in
/// the handler.
#[derive(Debug)]
pub struct OptionalClientKey {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl OptionalClientKey {
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        OptionalClientKey { provider }
    }
}

impl ClientCertVerifier for OptionalClientKey {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if ed25519_key(end_entity).is_some() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "a node agent's certificate carries an Ed25519 key".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The API's TLS acceptor: each connection's requests carry its [`ClientKey`].
#[derive(Debug, Clone)]
pub struct Acceptor {
    inner: RustlsAcceptor,
}

impl Acceptor {
    pub fn new(inner: RustlsAcceptor) -> Self {
        Acceptor { inner }
    }
}

type Accepted<St, Sv> = Pin<Box<dyn Future<Output = io::Result<(St, Sv)>> + Send>>;

impl<I, S> Accept<I, S> for Acceptor
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = <RustlsAcceptor as Accept<I, S>>::Stream;
    type Service = AddExtension<S, ClientKey>;
    type Future = Accepted<Self::Stream, Self::Service>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (stream, service) = inner.accept(stream, service).await?;
            let key = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| ed25519_key(c));
            Ok((stream, Extension(ClientKey(key)).layer(service)))
        })
    }
}
