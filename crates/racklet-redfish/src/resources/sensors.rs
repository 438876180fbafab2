//! Chassis sensors: a tray's power and SoC temperature, the enclosure's total power.
//!
//! A sensor without a number says why: an absent one (`Reading::Absent`) has
//! `Status.State` `Absent`; a stale one (`Reading::Stale`: the BMC stopped reporting it)
//! has `Status.State` `UnavailableOffline` and `Health` `Warning`. Neither has a `Reading`
//! (omitted, never null or 0).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use racklet_mgmt_proto::message::Reading;
use racklet_rmd_api::ChassisManager;
use serde_json::{json, Value};

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

/// What a sensor shows: its reading in Redfish units, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SensorValue {
    Reading(f64),
    Absent,
    Stale,
}

impl From<Reading> for SensorValue {
    fn from(r: Reading) -> Self {
        match r {
            Reading::Milli(v) => SensorValue::Reading(v as f64 / 1000.0),
            Reading::Absent => SensorValue::Absent,
            Reading::Stale => SensorValue::Stale,
        }
    }
}

impl SensorValue {
    fn status(self) -> Value {
        match self {
            SensorValue::Reading(_) => json!({"State": "Enabled", "Health": "OK"}),
            SensorValue::Absent => json!({"State": "Absent"}),
            SensorValue::Stale => json!({"State": "UnavailableOffline", "Health": "Warning"}),
        }
    }
}

/// (id, name, reading type, units, value) of a chassis' sensors.
async fn sensor_list<M: ChassisManager>(
    s: &AppState<M>,
    id: &str,
) -> Result<Vec<(String, String, &'static str, &'static str, SensorValue)>, RedfishError> {
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
                t.power_milliwatts.into(),
            ),
            (
                "SoCTemp".to_string(),
                format!("Tray {} SoC temperature", t.slot),
                "Temperature",
                "Cel",
                t.soc_millicelsius.into(),
            ),
        ],
        None => {
            let total: f64 = trays.iter().filter_map(|t| milli(t.power_milliwatts)).sum();
            vec![(
                "ChassisPower".to_string(),
                "Chassis power".to_string(),
                "Power",
                "W",
                SensorValue::Reading(total),
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
    let (sid, name, kind, units, value) = sensor_list(&s, &id)
        .await?
        .into_iter()
        .find(|x| x.0 == sensor)
        .ok_or_else(|| RedfishError::not_found("Sensor", &sensor))?;
    let odata_id = format!("/redfish/v1/Chassis/{id}/Sensors/{sid}");
    Ok(with_allow(
        ok(sensor_json(&odata_id, &sid, &name, kind, units, value)),
        "GET, HEAD",
    ))
}

fn sensor_json(
    odata_id: &str,
    id: &str,
    name: &str,
    kind: &str,
    units: &str,
    value: SensorValue,
) -> Value {
    let mut body = json!({
        "@odata.id": odata_id,
        "@odata.type": "#Sensor.v1_12_0.Sensor",
        "Id": id,
        "Name": name,
        "ReadingType": kind,
        "ReadingUnits": units,
        "Status": value.status(),
    });
    if let SensorValue::Reading(r) = value {
        body["Reading"] = json!(r);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(r: Reading) -> Value {
        let uri = "/redfish/v1/Chassis/tray-1/Sensors/Power";
        sensor_json(uri, "Power", "Tray 1 power", "Power", "W", r.into())
    }

    #[test]
    fn absent_and_stale_sensors_render_differently_and_without_a_reading() {
        let absent = render(Reading::Absent);
        let stale = render(Reading::Stale);
        assert_ne!(absent["Status"], stale["Status"], "{absent} vs {stale}");
        assert_eq!(absent["Status"]["State"], "Absent");
        assert_eq!(stale["Status"]["State"], "UnavailableOffline");
        for v in [&absent, &stale] {
            assert!(v.get("Reading").is_none(), "{v}");
        }
        let live = render(Reading::Milli(4250));
        assert_eq!(live["Reading"], 4.25);
        assert_eq!(live["Status"], json!({"State": "Enabled", "Health": "OK"}));
    }
}
