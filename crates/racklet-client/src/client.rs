//! A client of the control plane's HTTPS API: bearer token, TLS checked against the
//! control plane's own certificate, typed requests and answers, and the node console as
//! a WebSocket the control plane relays to the chassis.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::changes::{ActionRequest, ApplyRequest, ChangeResult, DeleteRequest, PowerRequest};
use crate::data_dir::{DataDir, DataDirError, CONTROL_PLANE};
use crate::meta::{ErrorBody, List};
use crate::objects::{Chassis, ComputeUnit, Event, FirmwareRollout, GitSource, Rack, Sensor};

/// Why a call to the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("the control plane's certificate is not usable")]
    Certificate(#[source] reqwest::Error),
    #[error("cannot reach the control plane at {base}: is `{started_by}` running?")]
    Unreachable {
        base: String,
        /// The command that runs it (`racklet up --data-dir DIR`).
        started_by: String,
        #[source]
        source: reqwest::Error,
    },
    /// The control plane answered with an error; `message` is its explanation.
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("the control plane's answer to {path} is not what this client expects")]
    Decode {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot attach to the console of {node}")]
    Console {
        node: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
}

impl ClientError {
    /// True when the control plane says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Refused { status: 404, .. })
    }
}

/// The console of a node: a WebSocket of raw bytes both ways.
pub type ConsoleStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client of one control plane.
#[derive(Clone)]
pub struct Client {
    base: String,
    /// How the control plane is started, for the error when it does not answer.
    started_by: String,
    token: String,
    ca_pem: Vec<u8>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The control plane of `racklet up --data-dir DIR`: its URL from `endpoints.json`,
    /// its token and certificate from `DIR/controlplane`.
    pub fn open(dir: &DataDir) -> Result<Client, ClientError> {
        let base = dir.endpoint(CONTROL_PLANE)?;
        let token = String::from_utf8_lossy(&dir.read(&dir.api_token())?)
            .trim()
            .to_string();
        let ca_pem = dir.read(&dir.api_certificate())?;
        let mut client = Client::new(base, token, ca_pem)?;
        client.started_by = format!("racklet up --data-dir {}", dir.root().display());
        Ok(client)
    }

    /// A control plane at `base` (`https://HOST:PORT`) with this token and certificate.
    pub fn new(base: String, token: String, ca_pem: Vec<u8>) -> Result<Client, ClientError> {
        let cert = reqwest::Certificate::from_pem(&ca_pem).map_err(ClientError::Certificate)?;
        // Only the control plane's own certificate: the token goes nowhere else.
        let http = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(ClientError::Certificate)?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            started_by: "racklet up".into(),
            token,
            ca_pem,
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                base: self.base.clone(),
                started_by: self.started_by.clone(),
                source,
            })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or_else(|_| format!("{path} answered {status}: {text}"));
            return Err(ClientError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        resp.json().await.map_err(|source| ClientError::Decode {
            path: path.into(),
            source,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(path, request).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(path, request).await
    }

    pub async fn nodes(&self) -> Result<List<ComputeUnit>, ClientError> {
        self.get("/v1/nodes").await
    }

    pub async fn node(&self, name: &str) -> Result<ComputeUnit, ClientError> {
        self.get(&format!("/v1/nodes/{}", segment(name))).await
    }

    /// The node's sensors, read from its chassis now.
    pub async fn sensors(&self, name: &str) -> Result<List<Sensor>, ClientError> {
        self.get(&format!("/v1/nodes/{}/sensors", segment(name)))
            .await
    }

    pub async fn source(&self) -> Result<GitSource, ClientError> {
        self.get("/v1/source").await
    }

    pub async fn racks(&self) -> Result<List<Rack>, ClientError> {
        self.get("/v1/racks").await
    }

    pub async fn chassis(&self) -> Result<List<Chassis>, ClientError> {
        self.get("/v1/chassis").await
    }

    pub async fn rollouts(&self) -> Result<List<FirmwareRollout>, ClientError> {
        self.get("/v1/rollouts").await
    }

    /// Events after sequence number `since` (0: all kept).
    pub async fn events(&self, since: u64) -> Result<List<Event>, ClientError> {
        self.get(&format!("/v1/events?since={since}")).await
    }

    /// Asks for a fetch of the source now.
    pub async fn sync(&self) -> Result<(), ClientError> {
        let _: serde_json::Value = self.post("/v1/sync", &serde_json::json!({})).await?;
        Ok(())
    }

    /// Commits the resources of manifest files (or says what they would change, with
    /// `dry_run`).
    pub async fn apply(&self, request: &ApplyRequest) -> Result<ChangeResult, ClientError> {
        self.post("/v1/apply", request).await
    }

    /// Commits the removal of resources (or says what it would change, with `dry_run`).
    pub async fn delete(&self, request: &DeleteRequest) -> Result<ChangeResult, ClientError> {
        self.post("/v1/delete", request).await
    }

    /// Commits a new desired power state for a node.
    pub async fn set_power(
        &self,
        node: &str,
        request: &PowerRequest,
    ) -> Result<ChangeResult, ClientError> {
        self.post(&format!("/v1/nodes/{}/power", segment(node)), request)
            .await
    }

    /// An imperative action on a node, done by its BMC now (`force` for a chassis' RMC).
    /// The BMC in the node's tray, read from its chassis now.
    pub async fn bmc(&self, node: &str) -> Result<crate::BmcInfo, ClientError> {
        self.get(&format!("/v1/nodes/{}/bmc", segment(node))).await
    }

    pub async fn act(&self, node: &str, request: &ActionRequest) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .post(&format!("/v1/nodes/{}/actions", segment(node)), request)
            .await?;
        Ok(())
    }

    /// Attaches to a node's serial console, relayed by the control plane.
    pub async fn console(&self, node: &str) -> Result<ConsoleStream, ClientError> {
        let failed = |e: tokio_tungstenite::tungstenite::Error| ClientError::Console {
            node: node.into(),
            source: Box::new(e),
        };
        let url = format!(
            "{}/v1/nodes/{}/console",
            self.base.replacen("https://", "wss://", 1),
            segment(node)
        );
        let mut request = url.as_str().into_client_request().map_err(failed)?;
        let bearer = format!("Bearer {}", self.token).parse().map_err(|e| {
            failed(tokio_tungstenite::tungstenite::Error::HttpFormat(
                tokio_tungstenite::tungstenite::http::Error::from(e),
            ))
        })?;
        request.headers_mut().insert("Authorization", bearer);
        let tls = tls_config(&self.ca_pem).map_err(failed)?;
        let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls));
        match tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
            .await
        {
            Ok((ws, _)) => Ok(ws),
            // Refused before the upgrade: the control plane's answer says why.
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().unwrap_or_default();
                let message = serde_json::from_slice::<ErrorBody>(body)
                    .map(|b| b.error)
                    .unwrap_or_else(|_| format!("the console of {node} answered {status}"));
                Err(ClientError::Refused { status, message })
            }
            Err(e) => Err(failed(e)),
        }
    }
}

/// A name as one URL path segment (names are DNS labels, but never trust that here).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// TLS that trusts exactly the certificates in `ca_pem`.
pub fn tls_config(
    ca_pem: &[u8],
) -> Result<rustls::ClientConfig, tokio_tungstenite::tungstenite::Error> {
    use rustls::pki_types::pem::PemObject as _;
    use tokio_tungstenite::tungstenite::error::TlsError;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|_| TlsError::InvalidDnsName)?;
        roots.add(cert).map_err(|e| TlsError::Rustls(Box::new(e)))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(Box::new(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn names_are_escaped_as_one_path_segment() {
        assert_eq!(segment("node-1"), "node-1");
        assert_eq!(segment("../x"), "..%2Fx");
        assert_eq!(segment("a b?"), "a%20b%3F");
    }
}
