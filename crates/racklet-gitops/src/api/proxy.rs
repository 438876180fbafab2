//! What the API does on a node's chassis for its callers, with the control plane's own
//! Redfish account, so that clients never hold chassis credentials: the tray's sensors
//! read now, imperative actions (a power cycle), and the serial console, relayed between
//! the caller's WebSocket and the chassis' console WebSocket.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as Downstream, WebSocket};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use racklet_client::changes::NodeAction;
use racklet_client::Sensor;
use racklet_redfish_client::{Client, ClientError};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message as Upstream;

use crate::power::{ChassisEndpoint, NodeStatus};

/// Why a chassis could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no Redfish endpoint is configured for chassis {0}")]
    NoChassis(String),
    #[error("chassis {chassis} refused or failed")]
    Redfish {
        chassis: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot attach to the console of tray {tray} of {chassis}")]
    Console {
        chassis: String,
        tray: u32,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
}

/// Where a node lives on its chassis.
pub struct Target<'a> {
    pub chassis: &'a ChassisEndpoint,
    /// `/redfish/v1/Systems/ID`.
    pub system_uri: String,
    pub tray: u32,
}

/// The chassis endpoint and Redfish system of `node`.
pub fn target<'a>(
    chassis: &'a [ChassisEndpoint],
    node: &NodeStatus,
) -> Result<Target<'a>, ProxyError> {
    let endpoint = chassis
        .iter()
        .find(|c| c.chassis == node.chassis)
        .ok_or_else(|| ProxyError::NoChassis(node.chassis.clone()))?;
    let id = endpoint
        .systems
        .get(&node.tray)
        .cloned()
        .unwrap_or_else(|| node.tray.to_string());
    Ok(Target {
        chassis: endpoint,
        system_uri: format!("/redfish/v1/Systems/{id}"),
        tray: node.tray,
    })
}

fn client(t: &Target<'_>) -> Result<Client, ProxyError> {
    Client::new(t.chassis.endpoint.clone(), Duration::from_secs(30)).map_err(|source| {
        ProxyError::Redfish {
            chassis: t.chassis.chassis.clone(),
            source,
        }
    })
}

/// The node's sensors, read from its chassis now.
pub async fn sensors(t: &Target<'_>) -> Result<Vec<Sensor>, ProxyError> {
    let c = client(t)?;
    let read = c.system_sensors(&t.system_uri).await;
    c.logout().await;
    let read = read.map_err(|source| ProxyError::Redfish {
        chassis: t.chassis.chassis.clone(),
        source,
    })?;
    Ok(read
        .into_iter()
        .map(|s| Sensor {
            name: s.name,
            reading: s.reading,
            units: s.units,
            state: s.state,
        })
        .collect())
}

/// The BMC in the node's tray as its chassis shows it (`Managers/bmc-N`, `Oem.Racklet`).
pub async fn bmc(t: &Target<'_>, node: &str) -> Result<racklet_client::BmcInfo, ProxyError> {
    let c = client(t)?;
    let read = c.get(&format!("/redfish/v1/Managers/bmc-{}", t.tray)).await;
    c.logout().await;
    let m = read.map_err(|source| ProxyError::Redfish {
        chassis: t.chassis.chassis.clone(),
        source,
    })?;
    let oem = &m["Oem"]["Racklet"];
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    Ok(racklet_client::BmcInfo {
        node: node.into(),
        chassis: t.chassis.chassis.clone(),
        tray: t.tray,
        serial: text(&m["SerialNumber"]).unwrap_or_default(),
        trust: text(&oem["Trust"]).unwrap_or_else(|| "Unknown".into()),
        identity: text(&oem["Identity"]),
        reason: text(&oem["Reason"]),
        firmware_version: text(&m["FirmwareVersion"]).filter(|v| !v.is_empty()),
    })
}

/// Does `action` on the node's BMC now (`identity`: the one an approval or rejection is
/// about).
pub async fn act(
    t: &Target<'_>,
    action: NodeAction,
    identity: Option<&str>,
) -> Result<(), ProxyError> {
    let c = client(t)?;
    let done = async {
        match action {
            NodeAction::PowerCycle | NodeAction::ForceOff => {
                let system = c.system(&t.system_uri).await?;
                c.reset(&system, action.as_str()).await
            }
            // Factory defaults of the tray's BMC: the chassis enrolls it anew.
            NodeAction::ForgetBmcKey => c
                .post_json(
                    &format!(
                        "/redfish/v1/Managers/bmc-{}/Actions/Manager.ResetToDefaults",
                        t.tray
                    ),
                    serde_json::json!({"ResetType": "ResetAll"}),
                )
                .await
                .map(|_| ()),
            NodeAction::ApproveBmc | NodeAction::RejectBmc => {
                let name = if action == NodeAction::ApproveBmc {
                    "Approve"
                } else {
                    "Reject"
                };
                c.post_json(
                    &format!(
                        "/redfish/v1/Managers/bmc-{}/Actions/Oem/RackletBmc.{name}",
                        t.tray
                    ),
                    serde_json::json!({"Identity": identity.unwrap_or_default()}),
                )
                .await
                .map(|_| ())
            }
        }
    }
    .await;
    c.logout().await;
    done.map_err(|source| ProxyError::Redfish {
        chassis: t.chassis.chassis.clone(),
        source,
    })
}

/// The chassis' console WebSocket for the node's tray, opened with the control plane's
/// account and the chassis' certificate.
pub async fn open_console(
    t: &Target<'_>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    ProxyError,
> {
    let failed = |e: tokio_tungstenite::tungstenite::Error| ProxyError::Console {
        chassis: t.chassis.chassis.clone(),
        tray: t.tray,
        source: Box::new(e),
    };
    let endpoint = &t.chassis.endpoint;
    let base = endpoint
        .base
        .trim_end_matches('/')
        .replacen("https://", "wss://", 1);
    let url = format!("{base}/racklet/v1/Systems/{}/Console", t.tray);
    let mut request = url.as_str().into_client_request().map_err(failed)?;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", endpoint.user, endpoint.password));
    if let Ok(value) = format!("Basic {basic}").parse() {
        request.headers_mut().insert("Authorization", value);
    }
    let tls = racklet_client::client::tls_config(endpoint.ca_pem.as_deref().unwrap_or_default())
        .map_err(failed)?;
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls));
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
            .await
            .map_err(failed)?;
    Ok(ws)
}

/// Relays bytes both ways until either side closes.
pub async fn relay(
    caller: WebSocket,
    chassis: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) {
    let (mut to_caller, mut from_caller) = caller.split();
    let (mut to_chassis, mut from_chassis) = chassis.split();
    loop {
        tokio::select! {
            m = from_chassis.next() => {
                let out = match m {
                    Some(Ok(Upstream::Binary(b))) => Downstream::Binary(b),
                    Some(Ok(Upstream::Text(t))) => Downstream::Binary(t.as_bytes().to_vec().into()),
                    Some(Ok(Upstream::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if to_caller.send(out).await.is_err() {
                    break;
                }
            }
            m = from_caller.next() => {
                let out = match m {
                    Some(Ok(Downstream::Binary(b))) => Upstream::Binary(b),
                    Some(Ok(Downstream::Text(t))) => Upstream::Binary(t.as_bytes().to_vec().into()),
                    Some(Ok(Downstream::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if to_chassis.send(out).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_chassis.send(Upstream::Close(None)).await;
    let _ = to_caller.send(Downstream::Close(None)).await;
}
