//! An `https://` source with its own CA: the control plane fetches over smart HTTP with
//! gix (rustls), from a real Git HTTP server — `git http-backend` behind an HTTPS
//! listener, the server side Git ships; only this test runs the git binary, as a server.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use racklet_gitops::git::{commit_files, Reference, SourceSpec};
use racklet_gitops::power::DriftPolicy;
use racklet_gitops::store::RedbStore;
use racklet_gitops::{Config, ControlPlane};
use tokio::io::AsyncWriteExt;

mod common;
use common::{examples, with_power};

/// Runs `git http-backend` as a CGI program for one request.
async fn cgi(State(root): State<Arc<PathBuf>>, headers: HeaderMap, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut child = match tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root.as_path())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let Ok(out) = child.wait_with_output().await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut resp = Response::new(axum::body::Body::from(Bytes::copy_from_slice(
        &raw[at + sep..],
    )));
    for line in String::from_utf8_lossy(&raw[..at]).lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            if let Some(code) = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
            {
                *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            }
        } else if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.trim().as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// Serves the repositories under `root` over HTTPS; returns the port and the CA.
async fn git_server(root: &Path, tls: &Path) -> (u16, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let racklet_tls::Identity { cert, key } = racklet_tls::load_or_create(tls).expect("cert");
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .expect("tls");
    let app = axum::Router::new()
        .fallback(cgi)
        .with_state(Arc::new(root.to_path_buf()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, config)
            .serve(app.into_make_service())
            .await
    });
    (port, std::fs::read(&cert).expect("cert"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_source_with_its_own_ca_is_fetched_and_followed() {
    let dir = std::env::temp_dir().join(format!("racklet-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let served = dir.join("served");
    let repo = served.join("rack.git");
    let first = commit_files(&repo, &examples(), "seed").expect("seed");
    let branch = racklet_gitops::git::current_branch(&repo).expect("branch");
    let (port, ca) = git_server(&served, &dir.join("tls")).await;
    let config = |ca_pem: Option<Vec<u8>>, name: &str| Config {
        source: SourceSpec {
            url: format!("https://127.0.0.1:{port}/rack.git"),
            reference: Reference::Branch(branch.clone()),
            path: "rack".into(),
            signers: None,
            ca_pem,
        },
        dir: dir.join(name),
        poll: Duration::from_secs(3600),
        period: Duration::from_secs(3600),
        chassis: Vec::new(),
        drift: DriftPolicy::Correct,
        boot_keys: None,
    };
    // Without the CA the server's certificate is not trusted: refused, nothing applied.
    let store = Arc::new(RedbStore::open(&dir.join("untrusted/state.redb")).expect("store"));
    let p = ControlPlane::new(config(None, "untrusted"), store)
        .await
        .expect("plane");
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!(
        (s.reason.as_str(), s.applied.as_deref()),
        ("Unreachable", None),
        "{s:?}"
    );

    let store = Arc::new(RedbStore::open(&dir.join("trusted/state.redb")).expect("store"));
    let p = ControlPlane::new(config(Some(ca), "trusted"), store)
        .await
        .expect("plane");
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!(
        (s.reason.as_str(), s.applied.as_deref()),
        ("Applied", Some(first.as_str())),
        "{s:?}"
    );

    // A new commit on the server is fetched and adopted.
    let second =
        commit_files(&repo, &with_power(&examples(), "node-6", "On"), "node-6 on").expect("commit");
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!(s.applied.as_deref(), Some(second.as_str()), "{s:?}");
    assert_eq!(s.applied_subject, "node-6 on");
    let _ = std::fs::remove_dir_all(&dir);
}
