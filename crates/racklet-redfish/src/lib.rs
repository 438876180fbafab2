//! The chassis' DMTF Redfish service, over HTTPS only, on top of the rack management
//! daemon's API ([`racklet_rmd_api::ChassisManager`]), so that Redfish tools (Ironic's
//! `sushy`, DMTF's `redfish` library and validators) drive a Racklet chassis unchanged.
//!
//! Resource map: `Systems/{tray}` (power, reset, boot override), `Chassis/{chassis}` and
//! `Chassis/tray-{n}` (sensors, fans, power), `Managers/rmc` and `Managers/bmc-{n}`,
//! `SessionService` (X-Auth-Token) and Basic auth, `AccountService` (argon2, lock-out,
//! roles Administrator/Operator/ReadOnly), `UpdateService` (signed BMC firmware as a Task),
//! `TaskService`, `EventService` (HTTPS push subscriptions and SSE). Errors carry Base
//! registry messages.

pub use racklet_accounts as accounts;
mod console;
pub mod error;
pub mod events;
mod odata;
mod resources;
pub mod tasks;
mod update;

pub use update::MAX_UPLOAD;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use racklet_rmd_api::ChassisManager;
use sha2_std::{Digest, Sha256};

use crate::accounts::{Accounts, LoginError, Role, Verifier};
use crate::error::{Message, RedfishError};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] racklet_tls::TlsError),
    #[error(transparent)]
    Accounts(#[from] accounts::AccountError),
    #[error(transparent)]
    Tasks(#[from] tasks::TaskStoreError),
    #[error(transparent)]
    Events(#[from] events::EventStoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the TLS certificate")]
    Certificate(#[source] std::io::Error),
}

/// The running service.
pub struct Running {
    pub addr: SocketAddr,
    /// Set on the first start: where the new admin password was written.
    pub initial_password_file: Option<PathBuf>,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub role: Role,
    pub session: Option<String>,
}

pub(crate) struct AppState<M> {
    pub manager: M,
    accounts: Mutex<Accounts>,
    verifier: Verifier,
    pub uuid: String,
    /// Per chassis resource id: location indicator on.
    pub indicators: Mutex<HashMap<String, bool>>,
    /// Boot override changes one at a time: each reads the daemon's override, changes
    /// the properties given and writes it back, so two PATCHes cannot lose one another.
    pub boot_changes: tokio::sync::Mutex<()>,
    tasks: Mutex<tasks::Tasks>,
    pub events: Arc<events::Hub>,
}

impl<M> AppState<M> {
    pub fn accounts(&self) -> MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks a user name and password (one argon2 verification, off the async workers;
    /// see [`Verifier`]).
    pub async fn check_credentials(&self, name: &str, password: &str) -> Result<Role, LoginError> {
        self.verifier.check(&self.accounts, name, password).await
    }

    /// Hashes a new password the way [`AppState::check_credentials`] verifies: off the
    /// async workers, with bounded concurrency, never under the accounts lock.
    pub async fn hash_password(&self, password: &str) -> Result<String, accounts::AccountError> {
        self.verifier.hash(password).await
    }

    pub fn tasks(&self) -> MutexGuard<'_, tasks::Tasks> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn stable_uuid(dir: &Path) -> String {
    let path = dir.join("service-uuid");
    if let Ok(u) = std::fs::read_to_string(&path) {
        return u.trim().to_string();
    }
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h = hex::encode(b);
    let u = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    let _ = std::fs::write(&path, &u);
    u
}

/// Starts the Redfish service for one chassis on `addr` (port 0 picks one), keeping its
/// certificate, accounts and UUID under `dir`.
pub async fn serve<M>(manager: M, dir: &Path, addr: SocketAddr) -> Result<Running, StartError>
where
    M: ChassisManager + Clone + 'static,
{
    let _ = rustls::crypto::ring::default_provider().install_default();
    let racklet_tls::Identity { cert, key } = racklet_tls::load_or_create(&dir.join("tls"))?;
    let (app, initial_password_file) = app(manager, dir)?;
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .map_err(StartError::Certificate)?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let server = axum_server::from_tcp_rustls(listener, config);
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = server.serve(service).await {
            tracing::error!("Redfish service stopped: {}", error::chain(&e));
        }
    });
    Ok(Running {
        addr: local,
        initial_password_file,
    })
}

/// The service's routes without TLS (for tests and for embedding behind a TLS listener).
pub fn app<M: ChassisManager + Clone + 'static>(
    manager: M,
    dir: &Path,
) -> Result<(Router, Option<PathBuf>), StartError> {
    let (accounts, initial_password_file) = Accounts::open(dir)?;
    let hub = events::Hub::open(dir)?;
    events::spawn_pump(manager.clone(), &hub);
    let state = Arc::new(AppState {
        tasks: Mutex::new(tasks::Tasks::open(dir)?),
        events: hub,
        manager,
        accounts: Mutex::new(accounts),
        verifier: Verifier::default(),
        uuid: stable_uuid(dir),
        indicators: Mutex::new(HashMap::new()),
        boot_changes: tokio::sync::Mutex::new(()),
    });
    Ok((router(state), initial_password_file))
}

pub(crate) fn router<M: ChassisManager + Clone + 'static>(state: Arc<AppState<M>>) -> Router {
    resources::routes::<M>()
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate::<M>,
        ))
        .layer(middleware::from_fn(headers))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn not_found(req: Request) -> RedfishError {
    RedfishError::not_found("Resource", req.uri().path())
}

/// Paths anyone may read (and the login).
fn public(method: &Method, path: &str) -> bool {
    matches!(
        path,
        "/redfish"
            | "/redfish/"
            | "/redfish/v1"
            | "/redfish/v1/"
            | "/redfish/v1/odata"
            | "/redfish/v1/$metadata"
    ) && (method == Method::GET || method == Method::HEAD)
        || (matches!(
            path.trim_end_matches('/'),
            "/redfish/v1/SessionService/Sessions" | "/redfish/v1/SessionService/Sessions/Members"
        ) && method == Method::POST)
}

async fn authenticate<M: ChassisManager + Clone + 'static>(
    State(state): State<Arc<AppState<M>>>,
    mut req: Request,
    next: Next,
) -> Response {
    if public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let caller = if let Some(token) = headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) {
        state.accounts().session_by_token(token).map(|s| Caller {
            user: s.user,
            role: s.role,
            session: Some(s.id),
        })
    } else if let Some((user, pass)) = basic(headers) {
        let checked = state.check_credentials(&user, &pass).await;
        checked.ok().map(|role| Caller {
            user,
            role,
            session: None,
        })
    } else {
        None
    };
    let Some(caller) = caller else {
        return RedfishError::new(StatusCode::UNAUTHORIZED, Message::NoValidSession)
            .into_response();
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Request checks every resource shares, the headers every response carries, and
/// ETags and `Link: rel=describedby` on JSON resources.
async fn headers(req: Request, next: Next) -> Response {
    if let Some(v) = req.headers().get("OData-Version") {
        if v.as_bytes() != b"4.0" {
            return with_common(
                RedfishError::new(StatusCode::PRECONDITION_FAILED, Message::PreconditionFailed)
                    .into_response(),
            );
        }
    }
    // No query options are supported (ProtocolFeaturesSupported says so).
    if let Some(q) = req.uri().query() {
        if q.split('&')
            .any(|kv| kv.starts_with('$') || kv.starts_with("only"))
        {
            let e = RedfishError::new(StatusCode::NOT_IMPLEMENTED, Message::GeneralError("Query parameters are not supported by this service; request the resource without them.".into()));
            return with_common(e.into_response());
        }
    }
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let method = req.method().clone();
    let resp = next.run(req).await;
    // Framework rejections (body too large, method not allowed) get Redfish bodies too.
    let is_json = |r: &Response| {
        r.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    };
    let resp = match resp.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !is_json(&resp) => {
            RedfishError::new(StatusCode::PAYLOAD_TOO_LARGE, Message::PayloadTooLarge)
                .into_response()
        }
        StatusCode::METHOD_NOT_ALLOWED if !is_json(&resp) => {
            let allow = resp.headers().get(header::ALLOW).cloned();
            let mut r =
                RedfishError::new(StatusCode::METHOD_NOT_ALLOWED, Message::OperationNotAllowed)
                    .into_response();
            if let Some(a) = allow {
                r.headers_mut().insert(header::ALLOW, a);
            }
            r
        }
        _ => resp,
    };
    let (mut parts, body) = with_common(resp).into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(is_json
        && (method == Method::GET || method == Method::HEAD)
        && parts.status == StatusCode::OK)
    {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !parts.headers.contains_key(header::LINK) {
        // Only `@odata.type` is read: the rest of the body is skipped, not built as a tree.
        let schema = serde_json::from_slice::<OdataType<'_>>(&bytes)
            .ok()
            .and_then(|v| v.odata_type)
            .and_then(|t| {
                t.strip_prefix('#')
                    .and_then(|t| t.rsplit_once('.'))
                    .map(|(ns, _)| ns.to_string())
            });
        if let Some(v) = schema.and_then(|ns| {
            HeaderValue::from_str(&format!(
                "<http://redfish.dmtf.org/schemas/v1/{ns}.json>; rel=describedby"
            ))
            .ok()
        }) {
            parts.headers.insert(header::LINK, v);
        }
    }
    if !parts.headers.contains_key(header::ETAG) {
        let etag = etag_of(&bytes);
        if let Ok(v) = HeaderValue::from_str(&etag) {
            parts.headers.insert(header::ETAG, v);
        }
    }
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .zip(
            parts
                .headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok()),
        )
        .is_some_and(|(a, b)| a == b);
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The one member of a resource the `Link` header needs.
#[derive(serde::Deserialize)]
struct OdataType<'a> {
    #[serde(rename = "@odata.type", borrow)]
    odata_type: Option<std::borrow::Cow<'a, str>>,
}

fn with_common(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

pub(crate) fn etag_of(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    format!("W/\"{}\"", hex::encode(&d[..8]))
}

/// Parses a request body as a JSON object, or says why not.
pub(crate) fn json_object(
    body: &Bytes,
) -> Result<serde_json::Map<String, serde_json::Value>, RedfishError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) | Err(_) => Err(RedfishError::bad_request(Message::MalformedJson)),
    }
}
