//! The control plane's HTTPS API, the one door to a running rack for the CLI, tests and
//! the dashboard. Objects follow the Kubernetes API conventions (types in
//! `racklet_client`): compute units, the source, racks, chassis, roll-outs, events
//! ([`objects`]); changes of desired state are commits ([`changes`]); what needs a
//! chassis (sensors, a power cycle, the console) is done with the control plane's own
//! Redfish account ([`proxy`]). Every request carries `Authorization: Bearer TOKEN`;
//! the token is made on first start in
//! `DIR/token` (owner-only), the certificate in `DIR/tls`. `POST /v1/webhook` also takes
//! the way Git servers sign their calls instead: `X-Hub-Signature-256: sha256=HMAC`
//! (GitHub, Gitea, Forgejo) of the body, keyed with its own secret, `DIR/webhook-secret`,
//! so that the Git server never holds the API token. The boot repository is served
//! under `/boot/` (`metadata/FILE`, `targets/FILE`) without a token: TUF metadata is
//! public and verifies itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use racklet_client::changes::{
    ActionRequest, ApplyRequest, DeleteRequest, NodeAction, PowerRequest,
};
use racklet_client::List;
use serde::Deserialize;

use crate::desired::Desired;
use crate::power::{node_statuses, NodeStatus};
use crate::store::{StateStore, StateStoreExt as _, StoreError};
use crate::ControlPlane;

mod auth;
pub mod changes;
mod dashboard;
pub mod edit;
pub mod objects;
pub mod proxy;
pub mod session;

/// Why the API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot create {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
    #[error("the API has no TLS identity")]
    Identity(#[from] racklet_tls::TlsError),
    #[error("cannot load the API's certificate")]
    Certificate(#[source] std::io::Error),
    #[error("the control plane's accounts")]
    Accounts(#[from] racklet_accounts::AccountError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Where the API runs and how to reach it.
#[derive(Debug, Clone)]
pub struct Running {
    pub addr: SocketAddr,
    pub token_file: PathBuf,
    /// The key Git servers sign webhook calls with.
    pub webhook_secret_file: PathBuf,
    pub cert_file: PathBuf,
    /// Where the first admin password was written (owner-only), on first start only.
    pub initial_password_file: Option<PathBuf>,
    /// The accounts (and the first admin password, `initial-admin-password`).
    pub accounts_dir: PathBuf,
}

/// The secret in `DIR/NAME` (the API token, the webhook secret), made on first start.
fn secret(dir: &Path, name: &str) -> Result<(String, PathBuf), ApiError> {
    let path = dir.join(name);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim();
        // Anything but a whole token (an empty file after a crash) is replaced, never used.
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok((t.to_string(), path));
        }
    }
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    let t = hex::encode(b);
    racklet_files::write_secret(&path, t.as_bytes())?;
    Ok((t, path))
}

struct Api<S> {
    plane: Arc<ControlPlane<S>>,
    logins: Arc<session::Logins>,
    token: String,
    webhook_secret: String,
    /// One commit at a time: each reads the branch, then commits on top of it.
    commits: Arc<tokio::sync::Mutex<()>>,
}

/// Routes without TLS: requests need `token` as their bearer token, a session of
/// `logins` (a cookie; see [`session`]), or a webhook signature keyed with
/// `webhook_secret`.
fn routes<S: StateStore>(
    plane: Arc<ControlPlane<S>>,
    logins: Arc<session::Logins>,
    token: String,
    webhook_secret: String,
) -> Router {
    let boot = plane.boot_repository();
    let state = Arc::new(Api {
        plane,
        logins: logins.clone(),
        token,
        webhook_secret,
        commits: Arc::new(tokio::sync::Mutex::new(())),
    });
    Router::new()
        .route("/v1/nodes", get(nodes::<S>))
        .route("/v1/nodes/{name}", get(node::<S>))
        .route("/v1/nodes/{name}/sensors", get(sensors::<S>))
        .route("/v1/nodes/{name}/actions", post(act::<S>))
        .route("/v1/nodes/{name}/bmc", get(bmc::<S>))
        .route("/v1/nodes/{name}/power", post(set_power::<S>))
        .route("/v1/nodes/{name}/console", get(console::<S>))
        .route("/v1/source", get(source::<S>))
        .route("/v1/racks", get(racks::<S>))
        .route("/v1/chassis", get(chassis::<S>))
        .route("/v1/events", get(events::<S>))
        .route("/v1/rollouts", get(rollouts::<S>))
        .route("/v1/apply", post(apply::<S>))
        .route("/v1/delete", post(delete::<S>))
        .route("/v1/sync", post(sync::<S>))
        .route("/v1/webhook", post(sync::<S>))
        .merge(
            Router::new()
                .route(
                    "/v1/session",
                    get(session::current).delete(session::sign_out),
                )
                .route(
                    "/v1/accounts",
                    get(session::accounts).post(session::create_account),
                )
                .with_state(logins.clone()),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::auth::<S>,
        ))
        // The dashboard's files are public; what they show comes from the API.
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        // Signing in needs no credentials but the ones it checks.
        .route("/v1/session", post(auth::sign_in::<S>))
        // Node agents authenticate by their client certificate's key, not a token.
        .route("/v1/agent/report", post(agent_report::<S>))
        .with_state(state)
        // The boot repository is public and verifies itself (TUF): no token.
        .nest("/boot", racklet_boot_repo::serve::routes(boot))
}

/// Serves the API over HTTPS on `addr` (port 0 picks one).
pub async fn serve<S: StateStore>(
    plane: Arc<ControlPlane<S>>,
    dir: &Path,
    addr: SocketAddr,
) -> Result<Running, ApiError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(dir).map_err(|source| ApiError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let (token, token_file) = secret(dir, "token")?;
    let (webhook_secret, webhook_secret_file) = secret(dir, "webhook-secret")?;
    let accounts_dir = dir.join("accounts");
    let (logins, initial_password_file) = session::Logins::open(&accounts_dir)?;
    let identity = racklet_tls::load_or_create(&dir.join("tls"))?;
    let config = tls_config(&identity)?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ApiError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ApiError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ApiError::Bind { addr, source })?;
    plane.set_boot_uri(format!("https://{local}/boot/"), false);
    let app = routes(plane, Arc::new(logins), token, webhook_secret);
    tokio::spawn(async move {
        if let Err(e) = axum_server::from_tcp(listener)
            .acceptor(crate::agent::Acceptor::new(
                axum_server::tls_rustls::RustlsAcceptor::new(config),
            ))
            .serve(app.into_make_service())
            .await
        {
            tracing::error!("control plane API stopped: {e}");
        }
    });
    Ok(Running {
        addr: local,
        token_file,
        webhook_secret_file,
        cert_file: identity.cert,
        initial_password_file,
        accounts_dir,
    })
}

/// The API's TLS: its certificate, and a client certificate asked for (node agents) but
/// not demanded.
fn tls_config(
    identity: &racklet_tls::Identity,
) -> Result<axum_server::tls_rustls::RustlsConfig, ApiError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: rustls::pki_types::pem::Error| ApiError::Certificate(std::io::Error::other(e));
    let certs = CertificateDer::pem_file_iter(&identity.cert)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let key = PrivateKeyDer::from_pem_file(&identity.key).map_err(bad)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_client_cert_verifier(Arc::new(crate::agent::OptionalClientKey::new(provider)))
                .with_single_cert(certs, key)
        })
        .map_err(|e| ApiError::Certificate(std::io::Error::other(e)))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// A node agent's report: accepted from the node whose BMC-derived identity key the
/// connection's client certificate carries, and from nobody else.
async fn agent_report<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    key: Option<axum::Extension<crate::agent::ClientKey>>,
    Json(report): Json<racklet_client::AgentReport>,
) -> Response {
    let Some(key) = key.and_then(|k| k.0 .0) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "a node agent authenticates with the client certificate of its node identity (mutual TLS); none was presented"})),
        )
            .into_response();
    };
    let store = &**api.plane.store();
    let (boots, desired) = match (
        crate::power::network_boot::boot_statuses(store).await,
        applied(&api).await,
    ) {
        (Ok(b), Ok(d)) => (b, d),
        (Err(e), _) | (_, Err(e)) => return failed(e),
    };
    let wanted = hex::encode(key);
    // Only nodes the applied revision boots from the network: a status left behind by a
    // renamed or removed node names nobody.
    let matching: Vec<&String> = boots
        .iter()
        .filter(|(n, b)| {
            b.node_identity == wanted
                && desired
                    .nodes
                    .iter()
                    .any(|d| &d.name == *n && d.boot == crate::desired::BootMode::Network)
        })
        .map(|(n, _)| n)
        .collect();
    let node = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({"error": format!("the client key {wanted} is no node's identity; a node's BMC reports its key through Redfish once the node boots from the network")})),
            )
                .into_response()
        }
        several => {
            return (
                StatusCode::CONFLICT,
                Json(serde_json::json!({"error": format!("the client key {wanted} is the identity of several nodes ({}); their BMCs must not share an identity", several.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))})),
            )
                .into_response()
        }
    };
    match crate::agent::record(store, &node, report, crate::unix_ms()).await {
        Ok(()) => Json(serde_json::json!({"node": node})).into_response(),
        Err(e) => failed(e),
    }
}

/// An error answer: `{"error": "what went wrong: why"}` with every cause.
fn refused(status: StatusCode, e: &dyn std::error::Error) -> Response {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    (
        status,
        Json(racklet_client::meta::ErrorBody { error: message }),
    )
        .into_response()
}

fn failed(e: StoreError) -> Response {
    refused(StatusCode::INTERNAL_SERVER_ERROR, &e)
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(racklet_client::meta::ErrorBody {
            error: format!("no node named {name:?}; `racklet get nodes` lists them"),
        }),
    )
        .into_response()
}

async fn applied<S: StateStore>(api: &Api<S>) -> Result<Desired, StoreError> {
    Ok(api
        .plane
        .store()
        .get_json::<Desired>("applied/desired")
        .await?
        .unwrap_or_default())
}

async fn find_node<S: StateStore>(api: &Api<S>, name: &str) -> Result<NodeStatus, Response> {
    match node_statuses(&**api.plane.store()).await {
        Ok(nodes) => nodes
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| not_found(name)),
        Err(e) => Err(failed(e)),
    }
}

async fn nodes<S: StateStore>(State(api): State<Arc<Api<S>>>) -> Response {
    let read = async {
        Ok::<_, StoreError>((
            node_statuses(&**api.plane.store()).await?,
            applied(&api).await?,
            crate::power::network_boot::boot_statuses(&**api.plane.store()).await?,
            crate::agent::records(&**api.plane.store()).await?,
        ))
    };
    let now = crate::unix_ms();
    match read.await {
        Ok((nodes, desired, boots, agents)) => Json(List::new(
            nodes
                .iter()
                .map(|n| {
                    objects::compute_unit(n, &desired, boots.get(&n.name), agents.get(&n.name), now)
                })
                .collect(),
        ))
        .into_response(),
        Err(e) => failed(e),
    }
}

async fn node<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let n = match find_node(&api, &name).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let boot = api
        .plane
        .store()
        .get_json::<racklet_client::NodeBoot>(&crate::power::network_boot::status_key(&name))
        .await;
    let agent = api
        .plane
        .store()
        .get_json::<crate::agent::AgentRecord>(&crate::agent::status_key(&name))
        .await;
    match (applied(&api).await, boot, agent) {
        (Ok(desired), Ok(boot), Ok(agent)) => Json(objects::compute_unit(
            &n,
            &desired,
            boot.as_ref(),
            agent.as_ref(),
            crate::unix_ms(),
        ))
        .into_response(),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => failed(e),
    }
}

async fn sensors<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let n = match find_node(&api, &name).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let read = async {
        let t = proxy::target(&api.plane.config().chassis, &n)?;
        proxy::sensors(&t).await
    };
    match read.await {
        Ok(list) => Json(List::new(list)).into_response(),
        Err(e) => refused(StatusCode::BAD_GATEWAY, &e),
    }
}

/// The BMC in the node's tray, read from its chassis now.
async fn bmc<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let n = match find_node(&api, &name).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let read = async {
        let t = proxy::target(&api.plane.config().chassis, &n)?;
        proxy::bmc(&t, &name).await
    };
    match read.await {
        Ok(info) => Json(info).into_response(),
        Err(e) => refused(StatusCode::BAD_GATEWAY, &e),
    }
}

async fn act<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    axum::Extension(caller): axum::Extension<session::Caller>,
    UrlPath(name): UrlPath<String>,
    Json(request): Json<ActionRequest>,
) -> Response {
    let n = match find_node(&api, &name).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    // Only power actions stop the RMC's rack daemon.
    if !request.force && !request.action.is_about_the_bmc() {
        match applied(&api).await {
            Ok(d) if d.rmc_nodes.contains(&name) => {
                let what = match request.action {
                    NodeAction::PowerCycle => "a power cycle",
                    _ => "switching it off",
                };
                let e = changes::ChangeError::Conflict(changes::rmc_refusal(&name, what));
                return change_refused(e);
            }
            Ok(_) => {}
            Err(e) => return failed(e),
        }
    }
    // The author goes into the event log: the same rules as a commit's author.
    let mut request = request;
    if let Some(author) = account_author(&caller) {
        request.author = Some(author);
    }
    let by = match request.author.as_ref().map(changes::author).transpose() {
        Ok(a) => a.map_or_else(
            || "the API".to_string(),
            |a| format!("{} <{}>", a.name, a.email),
        ),
        Err(e) => return change_refused(e),
    };
    // Noted before it is sent, so that no pass in between takes its effect for drift.
    if !request.action.is_about_the_bmc() {
        api.plane.user_actions().note(&name);
    }
    if matches!(
        request.action,
        NodeAction::ApproveBmc | NodeAction::RejectBmc
    ) && request.bmc_identity.is_none()
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "bmcIdentity is required: the identity the BMC shows (racklet bmc list), which the operator checked"})),
        )
            .into_response();
    }
    let done = async {
        let t = proxy::target(&api.plane.config().chassis, &n)?;
        proxy::act(&t, request.action, request.bmc_identity.as_deref()).await
    };
    match done.await {
        Err(e) => {
            api.plane.user_actions().clear(&name);
            refused(StatusCode::BAD_GATEWAY, &e)
        }
        Ok(()) => {
            let message = format!("{name}: {} asked for by {by}", request.action.as_str());
            if let Err(e) = api
                .plane
                .events()
                .record_node(crate::events::EventReason::UserAction, &name, &message)
                .await
            {
                return failed(e);
            }
            Json(serde_json::json!({"node": name, "action": request.action})).into_response()
        }
    }
}

async fn console<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    UrlPath(name): UrlPath<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let n = match find_node(&api, &name).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    // The chassis side is opened first, so a failure is an HTTP answer, not a dead socket.
    let opened = async {
        let t = proxy::target(&api.plane.config().chassis, &n)?;
        proxy::open_console(&t).await
    };
    match opened.await {
        Ok(chassis) => ws.on_upgrade(move |caller| proxy::relay(caller, chassis)),
        Err(e) => refused(StatusCode::BAD_GATEWAY, &e),
    }
}

fn change_refused(e: changes::ChangeError) -> Response {
    use changes::ChangeError as E;
    let status = match &e {
        E::BadRequest(_) => StatusCode::BAD_REQUEST,
        E::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::NoSuchNode(_) | E::NotFound(_) => StatusCode::NOT_FOUND,
        E::Conflict(_) => StatusCode::CONFLICT,
        E::Repository(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refused(status, &e)
}

/// Runs a change of the local repository off the async workers, one at a time, and asks
/// for a sync when it made a commit.
async fn change<S: StateStore>(
    api: &Api<S>,
    make: impl FnOnce(
            &std::path::Path,
            &str,
        ) -> Result<racklet_client::changes::ChangeResult, changes::ChangeError>
        + Send
        + 'static,
) -> Response {
    let spec = api.plane.config().source.clone();
    let rack_signers = match applied(api).await {
        Ok(d) => d.signers,
        Err(e) => return failed(e),
    };
    let repo = match changes::local_repository(&spec, &rack_signers) {
        Ok(r) => r,
        Err(e) => return change_refused(e),
    };
    // Held by the blocking work itself, so a caller that hangs up cannot let a second
    // change in while the first still writes.
    let one_at_a_time = api.commits.clone().lock_owned().await;
    let made = tokio::task::spawn_blocking(move || {
        let _held = one_at_a_time;
        make(&repo, &spec.path)
    })
    .await;
    match made {
        Ok(Ok(result)) => {
            if result.commit.is_some() {
                api.plane.trigger();
            }
            Json(result).into_response()
        }
        Ok(Err(e)) => change_refused(e),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// The author a signed-in account's changes carry, whatever the request says (`None`
/// for the API token's caller, who names its author).
fn account_author(caller: &session::Caller) -> Option<racklet_client::changes::Author> {
    match caller {
        session::Caller::User { name, .. } => Some(racklet_client::changes::Author {
            name: name.clone(),
            email: format!("{name}@{}", session::ACCOUNT_EMAIL_DOMAIN),
        }),
        session::Caller::Token => None,
    }
}

async fn apply<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    axum::Extension(caller): axum::Extension<session::Caller>,
    Json(mut request): Json<ApplyRequest>,
) -> Response {
    if let Some(author) = account_author(&caller) {
        request.author = author;
    }
    change(&api, move |repo, sub| changes::apply(repo, sub, &request)).await
}

async fn delete<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    axum::Extension(caller): axum::Extension<session::Caller>,
    Json(mut request): Json<DeleteRequest>,
) -> Response {
    if let Some(author) = account_author(&caller) {
        request.author = author;
    }
    change(&api, move |repo, sub| changes::delete(repo, sub, &request)).await
}

async fn set_power<S: StateStore>(
    State(api): State<Arc<Api<S>>>,
    axum::Extension(caller): axum::Extension<session::Caller>,
    UrlPath(name): UrlPath<String>,
    Json(mut request): Json<PowerRequest>,
) -> Response {
    if let Some(author) = account_author(&caller) {
        request.author = author;
    }
    change(&api, move |repo, sub| {
        changes::set_power(repo, sub, &name, &request)
    })
    .await
}

async fn source<S: StateStore>(State(api): State<Arc<Api<S>>>) -> Response {
    match api.plane.source_status().await {
        Ok(s) => Json(objects::git_source(&s)).into_response(),
        Err(e) => failed(e),
    }
}

async fn racks<S: StateStore>(State(api): State<Arc<Api<S>>>) -> Response {
    let read = async {
        Ok::<_, StoreError>((
            applied(&api).await?,
            node_statuses(&**api.plane.store()).await?,
        ))
    };
    match read.await {
        Ok((desired, nodes)) => Json(List::new(objects::racks(&desired, &nodes))).into_response(),
        Err(e) => failed(e),
    }
}

async fn chassis<S: StateStore>(State(api): State<Arc<Api<S>>>) -> Response {
    let read = async {
        Ok::<_, StoreError>((
            applied(&api).await?,
            node_statuses(&**api.plane.store()).await?,
            crate::firmware::rollouts(&**api.plane.store()).await?,
        ))
    };
    match read.await {
        Ok((desired, nodes, rollouts)) => {
            Json(List::new(objects::chassis(&desired, &nodes, &rollouts))).into_response()
        }
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn events<S: StateStore>(State(api): State<Arc<Api<S>>>, Query(q): Query<Since>) -> Response {
    match api.plane.events().since(q.since).await {
        Ok(e) => Json(List::new(e.iter().map(objects::event).collect())).into_response(),
        Err(e) => failed(e),
    }
}

async fn sync<S: StateStore>(State(api): State<Arc<Api<S>>>) -> Response {
    api.plane.trigger();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"sync": "requested"})),
    )
        .into_response()
}

async fn rollouts<S: StateStore>(State(api): State<Arc<Api<S>>>) -> Response {
    match crate::firmware::rollouts(&**api.plane.store()).await {
        Ok(r) => Json(List::new(r.iter().map(objects::rollout).collect())).into_response(),
        Err(e) => failed(e),
    }
}
