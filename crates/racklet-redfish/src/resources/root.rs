//! The service's entry points: the `/redfish` version document, the ServiceRoot, the OData
//! service document (`/redfish/v1/odata`) and the CSDL `$metadata` naming every schema the
//! service uses. All are public (readable without credentials).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use racklet_rmd_api::ChassisManager;
use serde_json::{json, Value};

use super::St;
use crate::odata::{ok, with_allow};
use crate::AppState;

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish", get(versions))
        .route("/redfish/", get(versions))
        .route("/redfish/v1", get(service_root::<M>))
        .route("/redfish/v1/", get(service_root::<M>))
        .route("/redfish/v1/odata", get(odata))
        .route("/redfish/v1/$metadata", get(metadata))
}

async fn versions() -> Response {
    ok(json!({"v1": "/redfish/v1/"}))
}

async fn service_root<M: ChassisManager + Clone + 'static>(State(s): St<M>) -> Response {
    let body = json!({
        "@odata.id": "/redfish/v1",
        "@odata.type": "#ServiceRoot.v1_20_0.ServiceRoot",
        "Id": "RootService",
        "Name": "Racklet Redfish Service",
        "RedfishVersion": "1.20.0",
        "UUID": s.uuid,
        "Vendor": "Racklet",
        "Product": "Racklet rack management daemon",
        "Systems": {"@odata.id": "/redfish/v1/Systems"},
        "Chassis": {"@odata.id": "/redfish/v1/Chassis"},
        "Managers": {"@odata.id": "/redfish/v1/Managers"},
        "SessionService": {"@odata.id": "/redfish/v1/SessionService"},
        "AccountService": {"@odata.id": "/redfish/v1/AccountService"},
        "UpdateService": {"@odata.id": "/redfish/v1/UpdateService"},
        "Tasks": {"@odata.id": "/redfish/v1/TaskService"},
        "EventService": {"@odata.id": "/redfish/v1/EventService"},
        "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}},
        "ProtocolFeaturesSupported": {
            "ExcerptQuery": false,
            "ExpandQuery": {"ExpandAll": false, "Levels": false, "Links": false, "NoLinks": false},
            "FilterQuery": false,
            "OnlyMemberQuery": false,
            "SelectQuery": false,
        },
    });
    with_allow(ok(body), "GET, HEAD")
}

async fn odata() -> Response {
    // (ServiceRoot property, URI)
    let names = [
        ("Systems", "Systems"),
        ("Chassis", "Chassis"),
        ("Managers", "Managers"),
        ("SessionService", "SessionService"),
        ("AccountService", "AccountService"),
        ("UpdateService", "UpdateService"),
        ("Tasks", "TaskService"),
        ("EventService", "EventService"),
    ];
    let mut value: Vec<Value> = names
        .iter()
        .map(|(n, u)| json!({"name": n, "kind": "Singleton", "url": format!("/redfish/v1/{u}")}))
        .collect();
    value.push(json!({"name": "Sessions", "kind": "Singleton", "url": "/redfish/v1/SessionService/Sessions"}));
    let mut resp =
        Json(json!({"@odata.context": "/redfish/v1/$metadata", "value": value})).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    resp
}

/// The schemas this service uses: (file stem, namespaces).
pub(crate) const SCHEMAS: &[(&str, &[&str])] = &[
    ("ServiceRoot_v1", &["ServiceRoot", "ServiceRoot.v1_20_0"]),
    ("ComputerSystemCollection_v1", &["ComputerSystemCollection"]),
    (
        "ComputerSystem_v1",
        &["ComputerSystem", "ComputerSystem.v1_27_0"],
    ),
    ("ChassisCollection_v1", &["ChassisCollection"]),
    ("Chassis_v1", &["Chassis", "Chassis.v1_28_0"]),
    ("ManagerCollection_v1", &["ManagerCollection"]),
    ("Manager_v1", &["Manager", "Manager.v1_24_0"]),
    (
        "SessionService_v1",
        &["SessionService", "SessionService.v1_2_0"],
    ),
    ("SessionCollection_v1", &["SessionCollection"]),
    ("Session_v1", &["Session", "Session.v1_8_0"]),
    (
        "AccountService_v1",
        &["AccountService", "AccountService.v1_18_1"],
    ),
    ("ManagerAccountCollection_v1", &["ManagerAccountCollection"]),
    (
        "ManagerAccount_v1",
        &["ManagerAccount", "ManagerAccount.v1_14_1"],
    ),
    ("RoleCollection_v1", &["RoleCollection"]),
    ("Role_v1", &["Role", "Role.v1_3_3"]),
    ("ActionInfo_v1", &["ActionInfo", "ActionInfo.v1_5_0"]),
    ("SensorCollection_v1", &["SensorCollection"]),
    ("Sensor_v1", &["Sensor", "Sensor.v1_12_0"]),
    (
        "ThermalSubsystem_v1",
        &["ThermalSubsystem", "ThermalSubsystem.v1_5_0"],
    ),
    ("FanCollection_v1", &["FanCollection"]),
    ("Fan_v1", &["Fan", "Fan.v1_6_0"]),
    (
        "PowerSubsystem_v1",
        &["PowerSubsystem", "PowerSubsystem.v1_1_3"],
    ),
    ("Message_v1", &["Message", "Message.v1_2_0"]),
    ("LogServiceCollection_v1", &["LogServiceCollection"]),
    ("LogService_v1", &["LogService", "LogService.v1_9_0"]),
    ("LogEntryCollection_v1", &["LogEntryCollection"]),
    ("LogEntry_v1", &["LogEntry", "LogEntry.v1_21_0"]),
    (
        "ManagerNetworkProtocol_v1",
        &["ManagerNetworkProtocol", "ManagerNetworkProtocol.v1_12_0"],
    ),
    (
        "SerialInterfaceCollection_v1",
        &["SerialInterfaceCollection"],
    ),
    (
        "SerialInterface_v1",
        &["SerialInterface", "SerialInterface.v1_3_0"],
    ),
    (
        "EnvironmentMetrics_v1",
        &["EnvironmentMetrics", "EnvironmentMetrics.v1_5_0"],
    ),
    (
        "UpdateService_v1",
        &["UpdateService", "UpdateService.v1_17_0"],
    ),
    (
        "SoftwareInventoryCollection_v1",
        &["SoftwareInventoryCollection"],
    ),
    (
        "SoftwareInventory_v1",
        &["SoftwareInventory", "SoftwareInventory.v1_13_0"],
    ),
    ("TaskService_v1", &["TaskService", "TaskService.v1_3_0"]),
    ("TaskCollection_v1", &["TaskCollection"]),
    ("Task_v1", &["Task", "Task.v1_7_4"]),
    ("EventService_v1", &["EventService", "EventService.v1_12_0"]),
    (
        "EventDestinationCollection_v1",
        &["EventDestinationCollection"],
    ),
    (
        "EventDestination_v1",
        &["EventDestination", "EventDestination.v1_16_0"],
    ),
    ("Event_v1", &["Event", "Event.v1_13_0"]),
    ("Resource_v1", &["Resource", "Resource.v1_21_0"]),
    ("RedfishExtensions_v1", &["RedfishExtensions.v1_0_0"]),
];

async fn metadata() -> Response {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n");
    for (file, namespaces) in SCHEMAS {
        xml.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{file}.xml\">\n"
        ));
        for ns in *namespaces {
            if ns.starts_with("RedfishExtensions") {
                xml.push_str(&format!(
                    "    <edmx:Include Namespace=\"{ns}\" Alias=\"Redfish\"/>\n"
                ));
            } else {
                xml.push_str(&format!("    <edmx:Include Namespace=\"{ns}\"/>\n"));
            }
        }
        xml.push_str("  </edmx:Reference>\n");
    }
    xml.push_str("  <edmx:DataServices>\n    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"Service\">\n      <EntityContainer Name=\"Service\" Extends=\"ServiceRoot.v1_20_0.ServiceContainer\"/>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n");
    ([(header::CONTENT_TYPE, "application/xml")], xml).into_response()
}
