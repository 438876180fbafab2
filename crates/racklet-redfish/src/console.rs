//! The serial console of each tray over an authenticated WebSocket
//! (`/racklet/v1/Systems/{tray}/Console`; Redfish session token or Basic auth, as for every
//! other resource). On connect the client gets the console history the BMC holds, then
//! live output; text or binary messages from the client are typed into the console.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use racklet_rmd_api::ChassisManager;

use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::{AppState, Caller};

/// How often the console is polled for new output.
const POLL: Duration = Duration::from_millis(100);

pub(crate) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new().route("/racklet/v1/Systems/{id}/Console", get(console::<M>))
}

async fn console<M: ChassisManager + Clone + 'static>(
    State(s): State<Arc<AppState<M>>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, RedfishError> {
    let slot: u32 = id
        .parse()
        .map_err(|_| RedfishError::not_found("ComputerSystem", &id))?;
    if !s.manager.trays().await.iter().any(|t| t.slot == slot) {
        return Err(RedfishError::not_found("ComputerSystem", &id));
    }
    // Typing into a console is operating the system.
    let may_type = caller.role >= Role::Operator;
    Ok(ws
        .on_upgrade(move |socket| stream(s, slot, socket, may_type))
        .into_response())
}

async fn stream<M: ChassisManager + Clone + 'static>(
    s: Arc<AppState<M>>,
    slot: u32,
    mut socket: WebSocket,
    may_type: bool,
) {
    let mut next = 0u64;
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                match s.manager.console_read(slot, next).await {
                    Ok(chunk) => {
                        next = chunk.next;
                        if !chunk.data.is_empty() && socket.send(WsMessage::Binary(chunk.data.into())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = socket.send(WsMessage::Text(format!("\r\n[racklet: console unavailable: {e}]\r\n").into())).await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            incoming = socket.recv() => {
                let bytes = match incoming {
                    Some(Ok(WsMessage::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                if !may_type {
                    let (_, text, _, _) = Message::InsufficientPrivilege.parts();
                    let _ = socket.send(WsMessage::Text(format!("\r\n[racklet: {text}]\r\n").into())).await;
                    continue;
                }
                if let Err(e) = s.manager.console_write(slot, &bytes).await {
                    let _ = socket.send(WsMessage::Text(format!("\r\n[racklet: {e}]\r\n").into())).await;
                }
            }
        }
    }
}
