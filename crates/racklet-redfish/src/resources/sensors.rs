//! Chassis sensors: a tray's power and SoC temperature, the enclosure's total power.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use racklet_mgmt_proto::message::Reading;
use racklet_rmd_api::ChassisManager;
use serde_json::json;

use super::chassis::known_chassis;
use super::{Res, St};
use crate::error::RedfishError;
use crate::odata::{listing, ok, with_allow};
use crate::AppState;

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish/v1/Chassis/{id}/Sensors", get(sensors::<M>))
        .route(
            "/redfish/v1/Chassis/{id}/Sensors/{sensor}",
            get(sensor::<M>),
        )
}

/// (id, name, reading type, units, reading) of a chassis' sensors.
async fn sensor_list<M: ChassisManager>(
    s: &AppState<M>,
    id: &str,
) -> Result<Vec<(String, String, &'static str, &'static str, Option<f64>)>, RedfishError> {
    let milli = |r: Reading| match r {
        Reading::Milli(v) => Some(v as f64 / 1000.0),
        _ => None,
    };
    let trays = s.manager.trays().await;
    let list = match known_chassis(s, id).await? {
        Some(t) => vec![
            (
                "Power".to_string(),
                format!("Tray {} power", t.slot),
                "Power",
                "W",
                milli(t.power_milliwatts),
            ),
            (
                "SoCTemp".to_string(),
                format!("Tray {} SoC temperature", t.slot),
                "Temperature",
                "Cel",
                milli(t.soc_millicelsius),
            ),
        ],
        None => {
            let total: f64 = trays.iter().filter_map(|t| milli(t.power_milliwatts)).sum();
            vec![(
                "ChassisPower".to_string(),
                "Chassis power".to_string(),
                "Power",
                "W",
                Some(total),
            )]
        }
    };
    Ok(list)
}

async fn sensors<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    let members = sensor_list(&s, &id)
        .await?
        .into_iter()
        .map(|x| format!("/redfish/v1/Chassis/{id}/Sensors/{}", x.0))
        .collect();
    Ok(listing(
        &format!("/redfish/v1/Chassis/{id}/Sensors"),
        "SensorCollection",
        "Sensors",
        members,
        "GET, HEAD",
    ))
}

async fn sensor<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path((id, sensor)): Path<(String, String)>,
) -> Res {
    let (sid, name, kind, units, reading) = sensor_list(&s, &id)
        .await?
        .into_iter()
        .find(|x| x.0 == sensor)
        .ok_or_else(|| RedfishError::not_found("Sensor", &sensor))?;
    let state = if reading.is_some() {
        json!({"State": "Enabled", "Health": "OK"})
    } else {
        json!({"State": "UnavailableOffline"})
    };
    Ok(with_allow(
        ok(json!({
            "@odata.id": format!("/redfish/v1/Chassis/{id}/Sensors/{sid}"),
            "@odata.type": "#Sensor.v1_12_0.Sensor",
            "Id": sid,
            "Name": name,
            "ReadingType": kind,
            "ReadingUnits": units,
            "Reading": reading,
            "Status": state,
        })),
        "GET, HEAD",
    ))
}
