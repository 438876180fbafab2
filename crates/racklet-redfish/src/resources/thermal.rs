//! The enclosure's ThermalSubsystem and its fans (duty, RPM, zone; a stopped fan that
//! should turn is `Critical`, one under an override `Warning`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use racklet_rmd_api::{ChassisManager, FanInfo};
use serde_json::json;

use super::{Res, St};
use crate::error::RedfishError;
use crate::odata::{listing, ok, with_allow};
use crate::AppState;

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route(
            "/redfish/v1/Chassis/{id}/ThermalSubsystem",
            get(thermal::<M>),
        )
        .route(
            "/redfish/v1/Chassis/{id}/ThermalSubsystem/Fans",
            get(fans::<M>),
        )
        .route(
            "/redfish/v1/Chassis/{id}/ThermalSubsystem/Fans/{fan}",
            get(fan::<M>),
        )
}

async fn thermal<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    if id != s.manager.chassis_name() {
        return Err(RedfishError::not_found("ThermalSubsystem", &id));
    }
    Ok(with_allow(
        ok(json!({
            "@odata.id": format!("/redfish/v1/Chassis/{id}/ThermalSubsystem"),
            "@odata.type": "#ThermalSubsystem.v1_5_0.ThermalSubsystem",
            "Id": "ThermalSubsystem",
            "Name": "Thermal Subsystem",
            "Fans": {"@odata.id": format!("/redfish/v1/Chassis/{id}/ThermalSubsystem/Fans")},
            "Status": {"State": "Enabled", "Health": "OK"},
        })),
        "GET, HEAD",
    ))
}

async fn fan_list<M: ChassisManager>(
    s: &AppState<M>,
    id: &str,
) -> Result<Vec<FanInfo>, RedfishError> {
    if id != s.manager.chassis_name() {
        return Err(RedfishError::not_found("FanCollection", id));
    }
    Ok(s.manager.fans().await)
}

async fn fans<M: ChassisManager + Clone + 'static>(State(s): St<M>, Path(id): Path<String>) -> Res {
    let members = fan_list(&s, &id)
        .await?
        .iter()
        .map(|f| format!("/redfish/v1/Chassis/{id}/ThermalSubsystem/Fans/{}", f.name))
        .collect();
    Ok(listing(
        &format!("/redfish/v1/Chassis/{id}/ThermalSubsystem/Fans"),
        "FanCollection",
        "Fans",
        members,
        "GET, HEAD",
    ))
}

async fn fan<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path((id, fan)): Path<(String, String)>,
) -> Res {
    let f = fan_list(&s, &id)
        .await?
        .into_iter()
        .find(|f| f.name == fan)
        .ok_or_else(|| RedfishError::not_found("Fan", &fan))?;
    let health = match (&f.rpm, &f.override_reason) {
        (Some(0), _) if f.duty_percent > 10.0 => "Critical",
        (_, Some(_)) => "Warning",
        _ => "OK",
    };
    Ok(with_allow(
        ok(json!({
            "@odata.id": format!("/redfish/v1/Chassis/{id}/ThermalSubsystem/Fans/{fan}"),
            "@odata.type": "#Fan.v1_6_0.Fan",
            "Id": fan,
            "Name": format!("Fan {fan}"),
            "SpeedPercent": {"Reading": f.duty_percent, "SpeedRPM": f.rpm},
            "Location": {"PartLocation": {"ServiceLabel": f.zone}},
            "Status": {"State": "Enabled", "Health": health},
        })),
        "GET, HEAD",
    ))
}
