//! The serial console over an authenticated WebSocket: history on connect, typing as an
//! operator, refused without credentials.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_streams_history_and_takes_input() {
    let sim = common::start("console", |rack, _| {
        let daemon = rack.daemons[0].clone();
        let mut reply = daemon
            .submit(
                1,
                racklet_mgmt_proto::message::Request::Power(
                    racklet_mgmt_proto::message::PowerAction::On,
                ),
            )
            .expect("trusted");
        rack.advance(Duration::from_secs(25)); // node-1 boots to its login prompt
        assert!(reply.try_take().is_some());
    });
    let addr = common::serve(sim.app.clone()).await;
    let url = format!("ws://{addr}/racklet/v1/Systems/1/Console");

    // Without credentials: refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(refused.is_err(), "unauthenticated console must be refused");

    let mut req = url.as_str().into_client_request().expect("request");
    let auth = common::basic("admin", &sim.password);
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
}
