//! ComputerSystems, one per named tray: power state and status, the
//! `ComputerSystem.Reset` action (its `ResetType`s a closed enum, [`ResetType`]) with its
//! ActionInfo, and the boot source override, which the daemon owns and persists (it sets
//! the tray's boot mode on the BMC). Also the tray lookup and tray `Status` the
//! chassis and manager modules share.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use racklet_mgmt_proto::message::{PowerAction, PowerState};
use racklet_rmd_api::{BmcTrust, BootSourceEnabled, BootSourceTarget, ChassisManager, TrayInfo};
use serde_json::{json, Value};

use super::{Res, St};
use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::odata::{
    action_info, enum_parameter, listing, ok, only_known, redfish_enum, require, rmd_error,
    string_prop, with_allow, RedfishEnum,
};
use crate::{etag_of, json_object, AppState, Caller};

redfish_enum! {
    /// The `ResetType`s of `ComputerSystem.Reset` this service supports.
    pub(crate) enum ResetType {
        On,
        ForceOff,
        GracefulShutdown,
        ForceRestart,
        PowerCycle,
    }
}

impl ResetType {
    /// What the tray's BMC is told to do.
    pub(crate) fn power_action(self) -> PowerAction {
        match self {
            ResetType::On => PowerAction::On,
            ResetType::ForceOff => PowerAction::ForceOff,
            ResetType::GracefulShutdown => PowerAction::GracefulShutdown,
            ResetType::ForceRestart => PowerAction::ForceRestart,
            ResetType::PowerCycle => PowerAction::PowerCycle,
        }
    }
}

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish/v1/Systems", get(systems::<M>))
        .route(
            "/redfish/v1/Systems/{id}",
            get(system::<M>).patch(patch_system::<M>),
        )
        .route(
            "/redfish/v1/Systems/{id}/ResetActionInfo",
            get(reset_action_info::<M>),
        )
        .route(
            "/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset",
            post(reset::<M>),
        )
}

/// The tray of a `ComputerSystem` id (the slot number).
pub(super) async fn tray<M: ChassisManager>(
    s: &AppState<M>,
    id: &str,
    kind: &str,
) -> Result<TrayInfo, RedfishError> {
    let slot: u32 = id.parse().map_err(|_| RedfishError::not_found(kind, id))?;
    s.manager
        .trays()
        .await
        .into_iter()
        .find(|t| t.slot == slot)
        .ok_or_else(|| RedfishError::not_found(kind, id))
}

/// The Redfish `PowerState`; None while no trusted BMC has reported it (a BMC that
/// restarts, one waiting for approval): unknown is not `Off`.
fn redfish_power(t: &TrayInfo) -> Option<&'static str> {
    Some(match t.power? {
        PowerState::On => "On",
        PowerState::PoweringOn => "PoweringOn",
        PowerState::GracefulShutdown => "PoweringOff",
        _ => "Off",
    })
}

/// The `Status` of a tray (its system, its chassis, its BMC).
pub(super) fn status(t: &TrayInfo) -> Value {
    let (state, health) = match (&t.trust, t.power) {
        (BmcTrust::Absent, _) => ("Absent", "OK"),
        (BmcTrust::Trusted, Some(PowerState::Fault)) => ("Enabled", "Critical"),
        (BmcTrust::Trusted, _) if t.faults != 0 => ("Enabled", "Warning"),
        (BmcTrust::Trusted, Some(PowerState::Off)) => ("StandbyOffline", "OK"),
        // Powered, OS halted: it waits for a power cycle.
        (BmcTrust::Trusted, Some(PowerState::On)) if t.host_halted => ("StandbyOffline", "Warning"),
        (BmcTrust::Trusted, _) => ("Enabled", "OK"),
        (BmcTrust::PendingApproval { .. }, _) => ("UnavailableOffline", "Warning"),
        (BmcTrust::Connecting, _) => ("Starting", "OK"),
        (BmcTrust::Refused { .. }, _) => ("UnavailableOffline", "Critical"),
    };
    json!({"State": state, "Health": health})
}

async fn systems<M: ChassisManager + Clone + 'static>(State(s): St<M>) -> Response {
    let members = s
        .manager
        .trays()
        .await
        .iter()
        .filter(|t| t.name.is_some())
        .map(|t| format!("/redfish/v1/Systems/{}", t.slot))
        .collect();
    listing(
        "/redfish/v1/Systems",
        "ComputerSystemCollection",
        "Computer Systems",
        members,
        "GET, HEAD",
    )
}

async fn system<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    let t = tray(&s, &id, "ComputerSystem").await?;
    if t.name.is_none() {
        return Err(RedfishError::not_found("ComputerSystem", &id));
    }
    // Owned and persisted by the daemon; a tray it cannot answer for has none.
    let boot = s.manager.boot_override(t.slot).await.unwrap_or_default();
    let targets: Vec<&str> = BootSourceTarget::ALL
        .iter()
        .map(|t| t.as_redfish())
        .collect();
    let mut body = json!({
        "@odata.id": format!("/redfish/v1/Systems/{id}"),
        "@odata.type": "#ComputerSystem.v1_27_0.ComputerSystem",
        "Id": id,
        "Name": t.name.clone().unwrap_or_default(),
        "HostName": t.name.clone().unwrap_or_default(),
        "SystemType": "Physical",
        "Model": t.board.clone().unwrap_or_default(),
        "Status": status(&t),
        "Boot": {
            "BootSourceOverrideTarget": boot.target.as_redfish(),
            "BootSourceOverrideEnabled": boot.enabled.as_redfish(),
            "BootSourceOverrideTarget@Redfish.AllowableValues": targets,
        },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset"),
                "@Redfish.ActionInfo": format!("/redfish/v1/Systems/{id}/ResetActionInfo"),
            }
        },
        "Links": {
            "Chassis": [{"@odata.id": format!("/redfish/v1/Chassis/tray-{}", t.slot)}],
            "ManagedBy": [{"@odata.id": format!("/redfish/v1/Managers/bmc-{}", t.slot)}],
        },
        "Oem": {},
    });
    if let Some(power) = redfish_power(&t) {
        body["PowerState"] = json!(power);
    }
    super::boot::show(&s, &id, t.slot, &mut body).await;
    Ok(with_allow(ok(body), "GET, HEAD, PATCH"))
}

async fn reset_action_info<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    tray(&s, &id, "ComputerSystem").await?;
    Ok(action_info(
        &format!("/redfish/v1/Systems/{id}/ResetActionInfo"),
        "Reset Action Info",
        "ResetType",
        true,
        &ResetType::allowable_values(),
    ))
}

async fn reset<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    let t = tray(&s, &id, "ComputerSystem").await?;
    require(&caller, Role::Operator)?;
    let o = json_object(&body)?;
    let action = "ComputerSystem.Reset";
    let kind: ResetType = enum_parameter(&o, "ResetType", action)?.ok_or_else(|| {
        RedfishError::bad_request(Message::ActionParameterMissing {
            action: action.into(),
            parameter: "ResetType".into(),
        })
    })?;
    let power = kind.power_action();
    s.manager.power(t.slot, power).await.map_err(rmd_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn patch_system<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let t = tray(&s, &id, "ComputerSystem").await?;
    require(&caller, Role::Operator)?;
    let o = json_object(&body)?;
    only_known(&o, &["Boot"])?;
    let Some(boot) = o.get("Boot") else {
        return Ok(ok(json!({})));
    };
    let Value::Object(boot) = boot else {
        return Err(RedfishError::bad_request(Message::PropertyValueTypeError {
            value: boot.to_string(),
            property: "Boot".into(),
        }));
    };
    only_known(
        boot,
        &[
            "BootSourceOverrideTarget",
            "BootSourceOverrideEnabled",
            "HttpBootUri",
            "Oem",
        ],
    )?;
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        // The ETag of the system as a client last read it.
        let current = system::<M>(State(s.clone()), Path(id.clone())).await?;
        let etag = current
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(current.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let etag = etag.unwrap_or_else(|| etag_of(&body));
        if m != "*" && m != etag {
            return Err(RedfishError::new(
                StatusCode::PRECONDITION_FAILED,
                Message::PreconditionFailed,
            ));
        }
    }
    let target = match string_prop(boot, "BootSourceOverrideTarget")? {
        Some(v) => Some(BootSourceTarget::from_redfish(v).ok_or_else(|| {
            RedfishError::bad_request(Message::PropertyValueNotInList {
                value: v.into(),
                property: "BootSourceOverrideTarget".into(),
            })
        })?),
        None => None,
    };
    let enabled = match string_prop(boot, "BootSourceOverrideEnabled")? {
        Some(v) => Some(BootSourceEnabled::from_redfish(v).ok_or_else(|| {
            RedfishError::bad_request(Message::PropertyValueNotInList {
                value: v.into(),
                property: "BootSourceOverrideEnabled".into(),
            })
        })?),
        None => None,
    };
    let one_at_a_time = s.boot_changes.lock().await;
    super::boot::patch(&s, t.slot, boot).await?;
    let mut new = s.manager.boot_override(t.slot).await.map_err(rmd_error)?;
    new.target = target.unwrap_or(new.target);
    new.enabled = enabled.unwrap_or(new.enabled);
    s.manager
        .set_boot_override(t.slot, new)
        .await
        .map_err(rmd_error)?;
    drop(one_at_a_time);
    system::<M>(State(s), Path(id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_types_are_the_ones_clients_were_offered() {
        assert_eq!(
            ResetType::allowable_values(),
            [
                "On",
                "ForceOff",
                "GracefulShutdown",
                "ForceRestart",
                "PowerCycle"
            ]
        );
        assert_eq!(
            ResetType::parse("PowerCycle").map(ResetType::power_action),
            Some(PowerAction::PowerCycle)
        );
        assert_eq!(ResetType::parse("Explode"), None);
    }
}
