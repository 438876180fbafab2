//! The example rack on the simulation with the Redfish service of its first chassis, shared
//! by the integration tests. The service runs without TLS here; the DMTF validators in
//! `scripts/redfish-conformance` exercise it over HTTPS.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::Engine;
use racklet_model::ManifestSet;
use racklet_sim::{Rack, RunningRack};
use racklet_twin::TwinConfig;
use serde_json::Value;
use tower::ServiceExt;

pub struct SimService {
    /// The Redfish service's router, for in-process requests or [`serve`].
    pub app: Router,
    /// The first start's `admin` password.
    pub password: String,
    /// The rack, running at ten times real time.
    pub rack: RunningRack,
    /// The data dir: the daemons' files under `rmd/`, the service's under `redfish/`.
    pub dir: PathBuf,
}

/// Starts the example rack in a fresh data dir named after `name`, lets its BMCs enroll
/// (3 s simulated), runs `prepare` on the rack and the service's data dir, then starts the
/// Redfish service of the first chassis and keeps the rack running at ten times real time.
pub fn start(name: &str, prepare: impl FnOnce(&mut Rack, &Path)) -> SimService {
    start_with(name, true, prepare)
}

/// [`start`], with the daemons trusting the rack's BMCs (`approve`) or every BMC waiting
/// for an operator.
pub fn start_with(name: &str, approve: bool, prepare: impl FnOnce(&mut Rack, &Path)) -> SimService {
    let dir = std::env::temp_dir().join(format!("racklet-redfish-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let service_dir = dir.join("redfish");
    std::fs::create_dir_all(&service_dir).expect("data dir");
    let (set, diags) =
        ManifestSet::load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")]);
    assert!(diags.is_empty(), "{diags:?}");
    let mut rack = Rack::start(
        &set,
        &TwinConfig {
            step: Duration::from_millis(5),
            ..TwinConfig::default()
        },
        &dir,
        approve,
    )
    .expect("rack");
    rack.advance(Duration::from_secs(3));
    prepare(&mut rack, &service_dir);
    let (app, first) = racklet_redfish::app(rack.daemons[0].clone(), &service_dir).expect("app");
    let password = std::fs::read_to_string(first.expect("first start"))
        .expect("password")
        .trim()
        .to_string();
    SimService {
        app,
        password,
        rack: rack.run_in_background(Duration::from_millis(10)),
        dir,
    }
}

/// Serves `app` on a loopback port (with peer addresses, as `racklet up` does); returns
/// the socket address.
pub async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    addr
}

/// An HTTP Basic `Authorization` value.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Polls `condition` (every 20 ms) until it holds or `within` has passed; returns whether
/// it held. For waiting on the rack instead of sleeping a guessed time.
pub async fn wait_until<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tray `slot` of the first chassis as the twin shows it now (a snapshot: no twin lock is
/// held by the test).
pub fn tray(twin: &racklet_twin::Twin, slot: u32) -> racklet_twin::TraySnapshot {
    twin.snapshot()
        .into_iter()
        .find(|t| t.slot == slot)
        .expect("the tray is in the twin")
}

/// One request to the service in process: status, headers and the JSON body (`Null`
/// when there is none).
pub async fn call(
    f: &SimService,
    method: Method,
    uri: &str,
    auth: Option<String>,
    body: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("Content-Type", "application/json");
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = f
        .app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The `MessageId` of an error body's first message.
pub fn message_id(v: &Value) -> String {
    v["error"]["@Message.ExtendedInfo"][0]["MessageId"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn admin(f: &SimService) -> Option<String> {
    Some(basic("admin", &f.password))
}
