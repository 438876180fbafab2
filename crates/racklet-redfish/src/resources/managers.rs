//! Managers: the rack management controller (`rmc`, this daemon) and each tray's BMC
//! (`bmc-N`), with the `Manager.Reset` action, `Manager.ResetToDefaults` on a BMC (the
//! chassis forgets its enrollment key and enrolls it again), (its `ResetType`s a closed enum,
//! [`ManagerResetType`]) and its ActionInfo, the rmc's network protocols, and each BMC's
//! serial console interface. The rmc's log service is in `logs`. A BMC's trust is
//! `Oem.Racklet.Trust` (and its identity while it waits); an operator approves or rejects a
//! waiting BMC with the OEM actions `RackletBmc.Approve` / `RackletBmc.Reject` (Redfish
//! has none), naming the identity they checked.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use racklet_rmd_api::{BmcTrust, ChassisManager, RmdError};
use serde_json::{json, Map, Value};

use super::systems::status;
use super::{Res, St};
use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::odata::{
    action_info, enum_parameter, listing, ok, only_known, redfish_enum, require, rmd_error,
    with_allow, RedfishEnum,
};
use crate::{json_object, AppState, Caller};

redfish_enum! {
    /// The `ResetType`s of `Manager.ResetToDefaults` on a tray's BMC.
    pub(crate) enum DefaultsResetType {
        ResetAll,
    }
}

redfish_enum! {
    /// The `ResetType`s of `Manager.Reset` this service supports.
    pub(crate) enum ManagerResetType {
        GracefulRestart,
        ForceRestart,
    }
}

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish/v1/Managers", get(managers::<M>))
        .route("/redfish/v1/Managers/{id}", get(manager::<M>))
        .route(
            "/redfish/v1/Managers/rmc/NetworkProtocol",
            get(network_protocol),
        )
        .route(
            "/redfish/v1/Managers/{id}/SerialInterfaces",
            get(serial_interfaces::<M>),
        )
        .route(
            "/redfish/v1/Managers/{id}/SerialInterfaces/Console",
            get(serial_interface::<M>),
        )
        .route(
            "/redfish/v1/Managers/{id}/ResetActionInfo",
            get(manager_reset_action_info::<M>),
        )
        .route(
            "/redfish/v1/Managers/{id}/Actions/Manager.Reset",
            post(manager_reset::<M>),
        )
        .route(
            "/redfish/v1/Managers/{id}/Actions/Manager.ResetToDefaults",
            post(reset_to_defaults::<M>),
        )
        .route(
            "/redfish/v1/Managers/{id}/Actions/Oem/RackletBmc.Approve",
            post(approve::<M>),
        )
        .route(
            "/redfish/v1/Managers/{id}/Actions/Oem/RackletBmc.Reject",
            post(reject::<M>),
        )
}

/// A BMC's trust as `Oem.Racklet`: the state, the identity of one that waits for an
/// operator, why one is refused.
fn trust_oem(trust: &BmcTrust) -> Value {
    match trust {
        BmcTrust::Absent => json!({"Trust": "Absent"}),
        BmcTrust::Connecting => json!({"Trust": "Connecting"}),
        BmcTrust::PendingApproval {
            identity,
            enrolled_elsewhere,
        } => json!({
            "Trust": "PendingApproval",
            "Identity": identity,
            "EnrolledElsewhere": enrolled_elsewhere,
        }),
        BmcTrust::Trusted => json!({"Trust": "Trusted"}),
        BmcTrust::Refused { reason } => json!({"Trust": "Refused", "Reason": reason}),
    }
}

#[derive(Clone, Copy)]
enum Decision {
    Approve,
    Reject,
}

/// Approves or rejects the BMC in a slot that waits for approval. The body names the
/// `Identity` the operator checked: a BMC swapped in meanwhile is not the one decided on.
async fn decide<M: ChassisManager + Clone + 'static>(
    s: &AppState<M>,
    caller: &Caller,
    id: &str,
    body: &Bytes,
    decision: Decision,
) -> Res {
    // Redfish's privilege map would say ConfigureManager (Administrator); an Operator's,
    // like ResetToDefaults, because the control plane's chassis account is an Operator
    // and the decision names the exact identity the operator checked.
    require(caller, Role::Operator)?;
    let slot = bmc_slot(s, id).await?;
    let action = match decision {
        Decision::Approve => "RackletBmc.Approve",
        Decision::Reject => "RackletBmc.Reject",
    };
    let o = json_object(body)?;
    only_known(&o, &["Identity"])?;
    let given = o
        .get("Identity")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            RedfishError::bad_request(Message::ActionParameterMissing {
                action: action.into(),
                parameter: "Identity".into(),
            })
        })?;
    let waiting = s
        .manager
        .trays()
        .await
        .into_iter()
        .find(|t| t.slot == slot)
        .and_then(|t| match t.trust {
            BmcTrust::PendingApproval { identity, .. } => Some(identity),
            _ => None,
        });
    match waiting {
        Some(identity) if identity == given => {}
        Some(identity) => {
            let mut err = RedfishError::new(StatusCode::CONFLICT, Message::ResourceInUse);
            err.messages.push(Message::GeneralError(format!(
                "the BMC in tray {slot} shows identity {identity}, not {given}; check it again before deciding"
            )));
            return Err(err);
        }
        None => {
            let mut err = RedfishError::new(StatusCode::CONFLICT, Message::ResourceInUse);
            err.messages.push(Message::GeneralError(format!(
                "the BMC in tray {slot} does not wait for approval"
            )));
            return Err(err);
        }
    }
    match decision {
        Decision::Approve => s.manager.approve(&given).await,
        Decision::Reject => s.manager.reject(&given).await,
    }
    .map_err(busy_is_conflict)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn approve<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    decide(&s, &caller, &id, &body, Decision::Approve).await
}

async fn reject<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    decide(&s, &caller, &id, &body, Decision::Reject).await
}

/// A daemon that is busy with the target (an update, a refused state) answers 409.
fn busy_is_conflict(e: RmdError) -> RedfishError {
    match e {
        RmdError::Busy(_) => {
            let mut err = RedfishError::new(StatusCode::CONFLICT, Message::ResourceInUse);
            err.messages.push(Message::GeneralError(e.to_string()));
            err
        }
        other => rmd_error(other),
    }
}

/// `Manager.ResetToDefaults` on a tray's BMC: the chassis treats it as factory-new, forgets
/// the key it enrolled it with and enrolls the identity it shows next. Only for a BMC that
/// no longer proves its key (its flash was wiped): 409 for any other. An Operator's call
/// (the control plane's account is one), like a reset of the tray the BMC manages.
async fn reset_to_defaults<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    require(&caller, Role::Operator)?;
    let slot = bmc_slot(&s, &id).await?;
    let o = json_object(&body)?;
    let action = "Manager.ResetToDefaults";
    let kind: DefaultsResetType = enum_parameter(&o, "ResetType", action)?.ok_or_else(|| {
        RedfishError::bad_request(Message::ActionParameterMissing {
            action: action.into(),
            parameter: "ResetType".into(),
        })
    })?;
    // Only ResetAll: nothing of a BMC's network or users lives on the chassis to keep.
    let DefaultsResetType::ResetAll = kind;
    only_known(&o, &["ResetType"])?;
    s.manager.forget_bmc(slot).await.map_err(busy_is_conflict)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn managers<M: ChassisManager + Clone + 'static>(State(s): St<M>) -> Response {
    let mut members = vec!["/redfish/v1/Managers/rmc".to_string()];
    members.extend(
        s.manager
            .trays()
            .await
            .iter()
            .filter(|t| t.bmc_serial.is_some())
            .map(|t| format!("/redfish/v1/Managers/bmc-{}", t.slot)),
    );
    listing(
        "/redfish/v1/Managers",
        "ManagerCollection",
        "Managers",
        members,
        "GET, HEAD",
    )
}

async fn manager<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    let chassis = s.manager.chassis_name().to_string();
    let body = if id == "rmc" {
        json!({
            "@odata.id": "/redfish/v1/Managers/rmc",
            "@odata.type": "#Manager.v1_24_0.Manager",
            "Id": "rmc",
            "Name": "Rack management controller",
            "ManagerType": "EnclosureManager",
            "FirmwareVersion": env!("CARGO_PKG_VERSION"),
            "UUID": s.uuid,
            "Status": {"State": "Enabled", "Health": "OK"},
            "LogServices": {"@odata.id": "/redfish/v1/Managers/rmc/LogServices"},
            "Actions": manager_actions("rmc"),
            "NetworkProtocol": {"@odata.id": "/redfish/v1/Managers/rmc/NetworkProtocol"},
            "Links": {"ManagerForChassis": [{"@odata.id": format!("/redfish/v1/Chassis/{chassis}")}]},
        })
    } else {
        let slot = id
            .strip_prefix("bmc-")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| RedfishError::not_found("Manager", &id))?;
        let t = s
            .manager
            .trays()
            .await
            .into_iter()
            .find(|t| t.slot == slot && t.bmc_serial.is_some())
            .ok_or_else(|| RedfishError::not_found("Manager", &id))?;
        json!({
            "@odata.id": format!("/redfish/v1/Managers/{id}"),
            "@odata.type": "#Manager.v1_24_0.Manager",
            "Id": id,
            "Name": format!("BMC of tray {slot}"),
            "ManagerType": "BMC",
            "SerialNumber": t.bmc_serial.map(|s| format!("{s:016x}")).unwrap_or_default(),
            "SerialInterfaces": {"@odata.id": format!("/redfish/v1/Managers/{id}/SerialInterfaces")},
            "FirmwareVersion": t.firmware.as_ref().map(|f| f.version.to_string()).unwrap_or_default(),
            "Actions": {
                "#Manager.Reset": manager_actions(&id)["#Manager.Reset"].clone(),
                "#Manager.ResetToDefaults": {
                    "target": format!("/redfish/v1/Managers/{id}/Actions/Manager.ResetToDefaults"),
                    "ResetType@Redfish.AllowableValues": DefaultsResetType::allowable_values(),
                },
                "Oem": {
                    "#RackletBmc.Approve": {
                        "target": format!("/redfish/v1/Managers/{id}/Actions/Oem/RackletBmc.Approve"),
                    },
                    "#RackletBmc.Reject": {
                        "target": format!("/redfish/v1/Managers/{id}/Actions/Oem/RackletBmc.Reject"),
                    },
                },
            },
            "Oem": {"Racklet": trust_oem(&t.trust)},
            "Status": status(&t),
            "Links": {
                "ManagerForServers": [{"@odata.id": format!("/redfish/v1/Systems/{slot}")}],
                "ManagerForChassis": [{"@odata.id": format!("/redfish/v1/Chassis/tray-{slot}")}],
            },
        })
    };
    Ok(with_allow(ok(body), "GET, HEAD"))
}

fn manager_actions(id: &str) -> Value {
    json!({
        "#Manager.Reset": {
            "target": format!("/redfish/v1/Managers/{id}/Actions/Manager.Reset"),
            "@Redfish.ActionInfo": format!("/redfish/v1/Managers/{id}/ResetActionInfo"),
        },
    })
}

/// `rmc` or the slot of an attached `bmc-N`.
async fn manager_target<M: ChassisManager>(
    s: &AppState<M>,
    id: &str,
) -> Result<Option<u32>, RedfishError> {
    if id == "rmc" {
        return Ok(None);
    }
    bmc_slot(s, id).await.map(Some)
}

async fn manager_reset_action_info<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    manager_target(&s, &id).await?;
    Ok(action_info(
        &format!("/redfish/v1/Managers/{id}/ResetActionInfo"),
        "Reset Action Info",
        "ResetType",
        false,
        &ManagerResetType::allowable_values(),
    ))
}

/// Restarts a BMC's firmware, or the rack management daemon itself; tray power stays.
async fn manager_reset<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    require(&caller, Role::Administrator)?;
    let target = manager_target(&s, &id).await?;
    let o = if body.is_empty() {
        Map::new()
    } else {
        json_object(&body)?
    };
    let action = "Manager.Reset";
    let kind: Option<ManagerResetType> = enum_parameter(&o, "ResetType", action)?;
    // A BMC or the daemon restarts one way only: every kind (and none) means it.
    let (None | Some(ManagerResetType::GracefulRestart | ManagerResetType::ForceRestart)) = kind;
    only_known(&o, &["ResetType"])?;
    let done = match target {
        None => s.manager.restart().await,
        Some(slot) => s.manager.reset_bmc(slot).await,
    };
    done.map_err(busy_is_conflict)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn network_protocol() -> Response {
    with_allow(
        ok(json!({
            "@odata.id": "/redfish/v1/Managers/rmc/NetworkProtocol",
            "@odata.type": "#ManagerNetworkProtocol.v1_12_0.ManagerNetworkProtocol",
            "Id": "NetworkProtocol",
            "Name": "Manager network protocols",
            "HTTPS": {"ProtocolEnabled": true},
            "HTTP": {"ProtocolEnabled": false},
            "SSH": {"ProtocolEnabled": false},
            "IPMI": {"ProtocolEnabled": false},
        })),
        "GET, HEAD",
    )
}

/// The slot of an attached `bmc-N`; not found otherwise.
async fn bmc_slot<M: ChassisManager>(s: &AppState<M>, id: &str) -> Result<u32, RedfishError> {
    let slot = id
        .strip_prefix("bmc-")
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| RedfishError::not_found("Manager", id))?;
    s.manager
        .trays()
        .await
        .iter()
        .find(|t| t.slot == slot && t.bmc_serial.is_some())
        .map(|t| t.slot)
        .ok_or_else(|| RedfishError::not_found("Manager", id))
}

async fn serial_interfaces<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    bmc_slot(&s, &id).await?;
    Ok(listing(
        &format!("/redfish/v1/Managers/{id}/SerialInterfaces"),
        "SerialInterfaceCollection",
        "Serial interfaces",
        vec![format!(
            "/redfish/v1/Managers/{id}/SerialInterfaces/Console"
        )],
        "GET, HEAD",
    ))
}

async fn serial_interface<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    let slot = bmc_slot(&s, &id).await?;
    Ok(with_allow(
        ok(json!({
            "@odata.id": format!("/redfish/v1/Managers/{id}/SerialInterfaces/Console"),
            "@odata.type": "#SerialInterface.v1_3_0.SerialInterface",
            "Id": "Console",
            "Name": format!("Console of tray {slot}"),
            "Description": format!("The compute unit's UART, bridged by its BMC; WebSocket at /racklet/v1/Systems/{slot}/Console"),
            "InterfaceEnabled": true,
            "BitRate": "115200",
            "Parity": "None",
            "DataBits": "8",
            "StopBits": "1",
            "FlowControl": "None",
        })),
        "GET, HEAD",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_reset_types_are_the_ones_clients_were_offered() {
        assert_eq!(
            ManagerResetType::allowable_values(),
            ["GracefulRestart", "ForceRestart"]
        );
        assert_eq!(
            ManagerResetType::parse("ForceRestart"),
            Some(ManagerResetType::ForceRestart)
        );
        assert_eq!(ManagerResetType::parse("On"), None);
    }
}
