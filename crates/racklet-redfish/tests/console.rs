//! The serial console over an authenticated WebSocket: history on connect, typing as an
//! operator, refused without credentials.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use racklet_model::ManifestSet;
use racklet_sim::Rack;
use racklet_twin::TwinConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_streams_history_and_takes_input() {
    let dir = std::env::temp_dir().join(format!("racklet-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (set, _) =
        ManifestSet::load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")]);
    let mut rack = Rack::start(
        &set,
        &TwinConfig {
            step: Duration::from_millis(5),
            ..TwinConfig::default()
        },
        &dir,
        true,
    )
    .expect("rack");
    rack.advance(Duration::from_secs(3));
    let daemon = rack.daemons[0].clone();
    let id = daemon
        .core()
        .request_power(1, racklet_mgmt_proto::message::PowerAction::On)
        .expect("trusted");
    rack.advance(Duration::from_secs(25)); // node-1 boots to its login prompt
    assert!(daemon.core().take_reply(id).is_some());
    let (app, first) = racklet_redfish::app(daemon, &dir.join("redfish")).expect("app");
    let password = std::fs::read_to_string(first.expect("first"))
        .expect("pw")
        .trim()
        .to_string();
    let rack = Arc::new(std::sync::Mutex::new(rack));
    let stop = Arc::new(AtomicBool::new(false));
    let (r, s) = (rack.clone(), stop.clone());
    std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            r.lock().expect("rack").advance(Duration::from_millis(100));
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("ws://{addr}/racklet/v1/Systems/1/Console");

    // Without credentials: refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(refused.is_err(), "unauthenticated console must be refused");

    let mut req = url.as_str().into_client_request().expect("request");
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
    );
    req.headers_mut()
        .insert("Authorization", auth.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("login:") {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("history arrives")
            .expect("open")
            .expect("frame");
        if let Message::Binary(b) = msg {
            seen.push_str(&String::from_utf8_lossy(&b));
        }
    }
    assert!(
        seen.contains("Booting Linux"),
        "history from the start: {seen}"
    );
    ws.send(Message::Text("hostname\n".into()))
        .await
        .expect("send");
    let mut echo = String::new();
    while !echo.contains("node-1\r\n") {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("answer arrives")
            .expect("open")
            .expect("frame");
        if let Message::Binary(b) = msg {
            echo.push_str(&String::from_utf8_lossy(&b));
        }
    }
    stop.store(true, Ordering::SeqCst);
}
