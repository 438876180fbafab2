//! Chassis: the enclosure (named after the chassis) and one `Sled` per tray (`tray-N`),
//! with their location indicator (a tray's is its identify LED), PowerSubsystem and
//! EnvironmentMetrics. Sensors and fans are in their own modules.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use racklet_mgmt_proto::message::Reading;
use racklet_rmd_api::{ChassisManager, TrayInfo};
use serde_json::{json, Value};

use super::systems::status;
use super::{Res, St};
use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::odata::{listing, ok, only_known, require, rmd_error, with_allow};
use crate::{json_object, AppState, Caller};

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish/v1/Chassis", get(chassis_collection::<M>))
        .route(
            "/redfish/v1/Chassis/{id}",
            get(chassis::<M>).patch(patch_chassis::<M>),
        )
        .route(
            "/redfish/v1/Chassis/{id}/PowerSubsystem",
            get(power_subsystem::<M>),
        )
        .route(
            "/redfish/v1/Chassis/{id}/EnvironmentMetrics",
            get(environment::<M>),
        )
}

fn tray_id(id: &str) -> Option<u32> {
    id.strip_prefix("tray-")?.parse().ok()
}

async fn chassis_collection<M: ChassisManager + Clone + 'static>(State(s): St<M>) -> Response {
    let mut members = vec![format!("/redfish/v1/Chassis/{}", s.manager.chassis_name())];
    members.extend(
        s.manager
            .trays()
            .await
            .iter()
            .map(|t| format!("/redfish/v1/Chassis/tray-{}", t.slot)),
    );
    listing(
        "/redfish/v1/Chassis",
        "ChassisCollection",
        "Chassis",
        members,
        "GET, HEAD",
    )
}

/// `None` for the enclosure, the tray of a `tray-N` id; not found otherwise.
pub(super) async fn known_chassis<M: ChassisManager>(
    s: &AppState<M>,
    id: &str,
) -> Result<Option<TrayInfo>, RedfishError> {
    if id == s.manager.chassis_name() {
        return Ok(None);
    }
    let slot = tray_id(id).ok_or_else(|| RedfishError::not_found("Chassis", id))?;
    s.manager
        .trays()
        .await
        .into_iter()
        .find(|t| t.slot == slot)
        .map(Some)
        .ok_or_else(|| RedfishError::not_found("Chassis", id))
}

async fn chassis<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    let t = known_chassis(&s, &id).await?;
    let indicator = match &t {
        Some(t) => s.manager.identify(t.slot).await,
        None => s
            .indicators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
            .unwrap_or(false),
    };
    let mut body = json!({
        "@odata.id": format!("/redfish/v1/Chassis/{id}"),
        "@odata.type": "#Chassis.v1_28_0.Chassis",
        "Id": id,
        "LocationIndicatorActive": indicator,
        "Sensors": {"@odata.id": format!("/redfish/v1/Chassis/{id}/Sensors")},
        "EnvironmentMetrics": {"@odata.id": format!("/redfish/v1/Chassis/{id}/EnvironmentMetrics")},
        "PowerSubsystem": {"@odata.id": format!("/redfish/v1/Chassis/{id}/PowerSubsystem")},
    });
    match &t {
        None => {
            body["Name"] = json!(format!("Chassis {id}"));
            body["ChassisType"] = json!("Enclosure");
            body["Status"] = json!({"State": "Enabled", "Health": "OK"});
            body["ThermalSubsystem"] =
                json!({"@odata.id": format!("/redfish/v1/Chassis/{id}/ThermalSubsystem")});
            body["Links"] = json!({"ManagedBy": [{"@odata.id": "/redfish/v1/Managers/rmc"}]});
        }
        Some(t) => {
            body["Name"] = json!(format!("Tray {}", t.slot));
            body["ChassisType"] = json!("Sled");
            body["Status"] = status(t);
            body["Links"] = json!({
                "ContainedBy": {"@odata.id": format!("/redfish/v1/Chassis/{}", s.manager.chassis_name())},
                "ManagedBy": [{"@odata.id": format!("/redfish/v1/Managers/bmc-{}", t.slot)}],
            });
        }
    }
    Ok(with_allow(ok(body), "GET, HEAD, PATCH"))
}

async fn patch_chassis<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    known_chassis(&s, &id).await?;
    require(&caller, Role::Operator)?;
    let o = json_object(&body)?;
    only_known(&o, &["LocationIndicatorActive"])?;
    match o.get("LocationIndicatorActive") {
        None => {}
        Some(Value::Bool(b)) => match tray_id(&id) {
            // A tray's locate light is its front indicator, driven by the daemon.
            Some(slot) => s.manager.set_identify(slot, *b).await.map_err(rmd_error)?,
            None => {
                s.indicators
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), *b);
            }
        },
        Some(other) => {
            return Err(RedfishError::bad_request(Message::PropertyValueTypeError {
                value: other.to_string(),
                property: "LocationIndicatorActive".into(),
            }))
        }
    }
    chassis::<M>(State(s), Path(id)).await
}

async fn power_subsystem<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    known_chassis(&s, &id).await?;
    Ok(with_allow(
        ok(json!({
            "@odata.id": format!("/redfish/v1/Chassis/{id}/PowerSubsystem"),
            "@odata.type": "#PowerSubsystem.v1_1_3.PowerSubsystem",
            "Id": "PowerSubsystem",
            "Name": "Power Subsystem",
            "Status": {"State": "Enabled", "Health": "OK"},
        })),
        "GET, HEAD",
    ))
}

async fn environment<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    let t = known_chassis(&s, &id).await?;
    let milli = |r: Reading| match r {
        Reading::Milli(v) => Some(v as f64 / 1000.0),
        _ => None,
    };
    let mut body = json!({
        "@odata.id": format!("/redfish/v1/Chassis/{id}/EnvironmentMetrics"),
        "@odata.type": "#EnvironmentMetrics.v1_5_0.EnvironmentMetrics",
        "Id": "EnvironmentMetrics",
        "Name": format!("Environment of {id}"),
    });
    match t {
        Some(t) => {
            body["PowerWatts"] = json!({"Reading": milli(t.power_milliwatts)});
            body["TemperatureCelsius"] = json!({"Reading": milli(t.soc_millicelsius)});
            body["EnergykWh"] = json!({"Reading": t.energy_millijoules as f64 / 3.6e9});
        }
        None => {
            let total: f64 = s
                .manager
                .trays()
                .await
                .iter()
                .filter_map(|t| milli(t.power_milliwatts))
                .sum();
            body["PowerWatts"] = json!({"Reading": total});
        }
    }
    Ok(with_allow(ok(body), "GET, HEAD"))
}
