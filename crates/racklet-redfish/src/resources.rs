//! The Redfish resources and their handlers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use racklet_mgmt_proto::message::{BootMode, PowerAction, PowerState, Reading};
use racklet_rmd_api::{BmcTrust, ChassisManager, FanInfo, RmdError, TrayInfo};
use serde_json::{json, Map, Value};

use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::{etag_of, json_object, AppState, Caller};

type St<M> = State<Arc<AppState<M>>>;
type Res = Result<Response, RedfishError>;

const RESET_TYPES: [&str; 5] = [
    "On",
    "ForceOff",
    "GracefulShutdown",
    "ForceRestart",
    "PowerCycle",
];
const BOOT_TARGETS: [&str; 5] = ["None", "Pxe", "UefiHttp", "SDCard", "Usb"];

pub(crate) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish", get(versions))
        .route("/redfish/", get(versions))
        .route("/redfish/v1", get(service_root::<M>))
        .route("/redfish/v1/", get(service_root::<M>))
        .route("/redfish/v1/odata", get(odata))
        .route("/redfish/v1/$metadata", get(metadata))
        .route("/redfish/v1/SessionService", get(session_service))
        .route(
            "/redfish/v1/SessionService/Sessions",
            get(sessions::<M>).post(login::<M>),
        )
        .route(
            "/redfish/v1/SessionService/Sessions/Members",
            post(login::<M>),
        )
        .route(
            "/redfish/v1/SessionService/Sessions/{id}",
            get(session::<M>).delete(logout::<M>),
        )
        .route("/redfish/v1/AccountService", get(account_service))
        .route(
            "/redfish/v1/AccountService/Accounts",
            get(accounts::<M>).post(create_account::<M>),
        )
        .route(
            "/redfish/v1/AccountService/Accounts/{id}",
            get(account::<M>)
                .patch(patch_account::<M>)
                .delete(delete_account::<M>),
        )
        .route("/redfish/v1/AccountService/Roles", get(roles))
        .route("/redfish/v1/AccountService/Roles/{id}", get(role))
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
        .route("/redfish/v1/Chassis", get(chassis_collection::<M>))
        .route(
            "/redfish/v1/Chassis/{id}",
            get(chassis::<M>).patch(patch_chassis::<M>),
        )
        .route("/redfish/v1/Chassis/{id}/Sensors", get(sensors::<M>))
        .route(
            "/redfish/v1/Chassis/{id}/Sensors/{sensor}",
            get(sensor::<M>),
        )
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
        .route(
            "/redfish/v1/Chassis/{id}/PowerSubsystem",
            get(power_subsystem::<M>),
        )
        .route(
            "/racklet/v1/Systems/{id}/Console",
            get(crate::console::console::<M>),
        )
        .route("/redfish/v1/Managers", get(managers::<M>))
        .route("/redfish/v1/Managers/{id}", get(manager::<M>))
        .route("/redfish/v1/Managers/rmc/LogServices", get(log_services))
        .route(
            "/redfish/v1/Managers/rmc/LogServices/EventLog",
            get(event_log),
        )
        .route(
            "/redfish/v1/Managers/rmc/LogServices/EventLog/Entries",
            get(log_entries::<M>),
        )
        .route(
            "/redfish/v1/Managers/rmc/LogServices/EventLog/Entries/{entry}",
            get(log_entry::<M>),
        )
        .route(
            "/redfish/v1/Managers/rmc/LogServices/EventLog/Actions/LogService.ClearLog",
            post(clear_log::<M>),
        )
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
            "/redfish/v1/Chassis/{id}/EnvironmentMetrics",
            get(environment::<M>),
        )
        .route(
            "/redfish/v1/Managers/{id}/ResetActionInfo",
            get(manager_reset_action_info::<M>),
        )
        .route(
            "/redfish/v1/Managers/{id}/Actions/Manager.Reset",
            post(manager_reset::<M>),
        )
        .route("/redfish/v1/TaskService", get(crate::tasks::task_service))
        .route(
            "/redfish/v1/TaskService/Tasks",
            get(crate::tasks::tasks::<M>),
        )
        .route(
            "/redfish/v1/TaskService/Tasks/{id}",
            get(crate::tasks::task::<M>),
        )
        .route(
            "/redfish/v1/TaskService/TaskMonitors/{id}",
            get(crate::tasks::task_monitor::<M>),
        )
        .route(
            "/redfish/v1/UpdateService",
            get(crate::update::update_service),
        )
        .route(
            "/redfish/v1/UpdateService/upload",
            post(crate::update::upload::<M>).layer(axum::extract::DefaultBodyLimit::max(
                crate::update::MAX_UPLOAD,
            )),
        )
        .route(
            "/redfish/v1/UpdateService/FirmwareInventory",
            get(crate::update::firmware_inventory::<M>),
        )
        .route(
            "/redfish/v1/UpdateService/FirmwareInventory/{id}",
            get(crate::update::firmware_item::<M>),
        )
        .route(
            "/redfish/v1/EventService",
            get(crate::events::event_service),
        )
        .route(
            "/redfish/v1/EventService/Subscriptions",
            get(crate::events::subscriptions::<M>).post(crate::events::subscribe::<M>),
        )
        .route(
            "/redfish/v1/EventService/Subscriptions/{id}",
            get(crate::events::subscription::<M>).delete(crate::events::unsubscribe::<M>),
        )
        .route("/redfish/v1/EventService/SSE", get(crate::events::sse::<M>))
        .route(
            "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent",
            post(crate::events::submit_test_event::<M>),
        )
}

pub(crate) fn ok(body: Value) -> Response {
    Json(body).into_response()
}

pub(crate) fn with_allow(mut resp: Response, allow: &'static str) -> Response {
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Administrators see every account and session; everyone else only their own.
pub(crate) fn visible_to(caller: &Caller, owner: &str) -> bool {
    caller.role == Role::Administrator || caller.user == owner
}

pub(crate) fn require(caller: &Caller, role: Role) -> Result<(), RedfishError> {
    if caller.role >= role {
        Ok(())
    } else {
        Err(RedfishError::new(
            StatusCode::FORBIDDEN,
            Message::InsufficientPrivilege,
        ))
    }
}

/// A collection resource with its `Allow` header.
pub(crate) fn listing(
    id: &str,
    kind: &str,
    name: &str,
    members: Vec<String>,
    allow: &'static str,
) -> Response {
    with_allow(ok(collection(id, kind, name, members)), allow)
}

fn collection(id: &str, kind: &str, name: &str, members: Vec<String>) -> Value {
    json!({
        "@odata.id": id,
        "@odata.type": format!("#{kind}.{kind}"),
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members.into_iter().map(|m| json!({"@odata.id": m})).collect::<Vec<_>>(),
    })
}

pub(crate) fn rmd_error(e: RmdError) -> RedfishError {
    match e {
        RmdError::NoTray(n) => RedfishError::not_found("ComputerSystem", &n.to_string()),
        other => RedfishError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Message::GeneralError(other.to_string()),
        ),
    }
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

async fn session_service() -> Response {
    let body = json!({
        "@odata.id": "/redfish/v1/SessionService",
        "@odata.type": "#SessionService.v1_2_0.SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": crate::accounts::SESSION_TIMEOUT.as_secs(),
        "Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"},
    });
    with_allow(ok(body), "GET, HEAD")
}

fn session_json(id: &str, user: &str) -> Value {
    json!({
        "@odata.id": format!("/redfish/v1/SessionService/Sessions/{id}"),
        "@odata.type": "#Session.v1_8_0.Session",
        "Id": id,
        "Name": format!("Session {id}"),
        "UserName": user,
    })
}

async fn sessions<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let members = s
        .accounts()
        .sessions()
        .into_iter()
        .filter(|x| visible_to(&caller, &x.user))
        .map(|x| format!("/redfish/v1/SessionService/Sessions/{}", x.id))
        .collect();
    listing(
        "/redfish/v1/SessionService/Sessions",
        "SessionCollection",
        "Sessions",
        members,
        "GET, HEAD, POST",
    )
}

async fn login<M: ChassisManager + Clone + 'static>(State(s): St<M>, body: Bytes) -> Res {
    let o = json_object(&body)?;
    let user = o.get("UserName").and_then(Value::as_str);
    let pass = o.get("Password").and_then(Value::as_str);
    let (Some(user), Some(pass)) = (user, pass) else {
        let missing = if user.is_none() {
            "UserName"
        } else {
            "Password"
        };
        return Err(RedfishError::bad_request(
            Message::CreateFailedMissingReqProperties(missing.into()),
        ));
    };
    let mut accounts = s.accounts();
    let role = accounts
        .check(user, pass)
        .map_err(|_| RedfishError::new(StatusCode::UNAUTHORIZED, Message::NoValidSession))?;
    let session = accounts.open_session(user, role);
    drop(accounts);
    let location = format!("/redfish/v1/SessionService/Sessions/{}", session.id);
    let mut resp = (
        StatusCode::CREATED,
        Json(session_json(&session.id, &session.user)),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        "X-Auth-Token",
        HeaderValue::from_str(&session.token)
            .map_err(|_| RedfishError::bad_request(Message::MalformedJson))?,
    );
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location)
            .map_err(|_| RedfishError::bad_request(Message::MalformedJson))?,
    );
    Ok(resp)
}

async fn session<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Res {
    let accounts = s.accounts();
    let x = accounts
        .session(&id)
        .filter(|x| visible_to(&caller, &x.user))
        .ok_or_else(|| RedfishError::not_found("Session", &id))?;
    Ok(with_allow(
        ok(session_json(&x.id, &x.user)),
        "GET, HEAD, DELETE",
    ))
}

async fn logout<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Res {
    let mut accounts = s.accounts();
    let allowed = accounts
        .session(&id)
        .is_some_and(|x| visible_to(&caller, &x.user));
    if !allowed || !accounts.close_session(&id) {
        return Err(RedfishError::not_found("Session", &id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn account_service() -> Response {
    let body = json!({
        "@odata.id": "/redfish/v1/AccountService",
        "@odata.type": "#AccountService.v1_18_1.AccountService",
        "Id": "AccountService",
        "Name": "Account Service",
        "ServiceEnabled": true,
        "AccountLockoutThreshold": crate::accounts::LOCKOUT_THRESHOLD,
        "AccountLockoutDuration": crate::accounts::LOCKOUT_DURATION.as_secs(),
        "AccountLockoutCounterResetAfter": crate::accounts::LOCKOUT_DURATION.as_secs(),
        "MinPasswordLength": 8,
        "Accounts": {"@odata.id": "/redfish/v1/AccountService/Accounts"},
        "Roles": {"@odata.id": "/redfish/v1/AccountService/Roles"},
    });
    with_allow(ok(body), "GET, HEAD")
}

fn account_json(name: &str, role: Role, enabled: bool, locked: bool, version: u64) -> Value {
    json!({
        "@odata.etag": format!("W/\"{version}\""),
        "@odata.id": format!("/redfish/v1/AccountService/Accounts/{name}"),
        "@odata.type": "#ManagerAccount.v1_14_1.ManagerAccount",
        "Id": name,
        "Name": format!("Account {name}"),
        "UserName": name,
        "RoleId": role.as_str(),
        "Enabled": enabled,
        "Locked": locked,
        "Password": null,
        "AccountTypes": ["Redfish"],
        "Links": {"Role": {"@odata.id": format!("/redfish/v1/AccountService/Roles/{}", role.as_str())}},
    })
}

async fn accounts<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let members = s
        .accounts()
        .list()
        .into_iter()
        .filter(|a| visible_to(&caller, &a.name))
        .map(|a| format!("/redfish/v1/AccountService/Accounts/{}", a.name))
        .collect();
    listing(
        "/redfish/v1/AccountService/Accounts",
        "ManagerAccountCollection",
        "Accounts",
        members,
        "GET, HEAD, POST",
    )
}

async fn account<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Res {
    if caller.role != Role::Administrator && caller.user != id {
        return Err(RedfishError::new(
            StatusCode::FORBIDDEN,
            Message::InsufficientPrivilege,
        ));
    }
    let accounts = s.accounts();
    let a = accounts
        .get(&id)
        .ok_or_else(|| RedfishError::not_found("ManagerAccount", &id))?;
    let mut resp = with_allow(
        ok(account_json(
            &a.name,
            a.role,
            a.enabled,
            accounts.is_locked(&a.name),
            a.version,
        )),
        "GET, HEAD, PATCH, DELETE",
    );
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", a.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

pub(crate) fn string_prop<'a>(
    o: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, RedfishError> {
    match o.get(name) {
        None => Ok(None),
        Some(Value::String(v)) => Ok(Some(v)),
        Some(other) => Err(RedfishError::bad_request(Message::PropertyValueTypeError {
            value: other.to_string(),
            property: name.into(),
        })),
    }
}

pub(crate) fn only_known(o: &Map<String, Value>, known: &[&str]) -> Result<(), RedfishError> {
    let unknown: Vec<Message> = o
        .keys()
        .filter(|k| !known.contains(&k.as_str()) && !k.starts_with('@'))
        .map(|k| Message::PropertyUnknown(k.clone()))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(RedfishError {
            status: StatusCode::BAD_REQUEST,
            messages: unknown,
        })
    }
}

fn parse_role(o: &Map<String, Value>) -> Result<Option<Role>, RedfishError> {
    match string_prop(o, "RoleId")? {
        None => Ok(None),
        Some(r) => Role::parse(r).map(Some).ok_or_else(|| {
            RedfishError::bad_request(Message::PropertyValueNotInList {
                value: r.into(),
                property: "RoleId".into(),
            })
        }),
    }
}

fn check_password(p: &str) -> Result<(), RedfishError> {
    if p.chars().count() < 8 {
        return Err(RedfishError::bad_request(Message::PropertyValueNotInList {
            value: "(hidden)".into(),
            property: "Password".into(),
        }));
    }
    Ok(())
}

async fn create_account<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Res {
    require(&caller, Role::Administrator)?;
    let o = json_object(&body)?;
    only_known(
        &o,
        &["UserName", "Password", "RoleId", "Enabled", "AccountTypes"],
    )?;
    let name = string_prop(&o, "UserName")?.ok_or_else(|| {
        RedfishError::bad_request(Message::CreateFailedMissingReqProperties("UserName".into()))
    })?;
    let password = string_prop(&o, "Password")?.ok_or_else(|| {
        RedfishError::bad_request(Message::CreateFailedMissingReqProperties("Password".into()))
    })?;
    let role = parse_role(&o)?.ok_or_else(|| {
        RedfishError::bad_request(Message::CreateFailedMissingReqProperties("RoleId".into()))
    })?;
    check_password(password)?;
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(RedfishError::bad_request(Message::PropertyValueNotInList {
            value: name.into(),
            property: "UserName".into(),
        }));
    }
    let mut accounts = s.accounts();
    if accounts.get(name).is_some() {
        return Err(RedfishError::new(
            StatusCode::CONFLICT,
            Message::ResourceAlreadyExists {
                kind: "ManagerAccount".into(),
                property: "UserName".into(),
                value: name.into(),
            },
        ));
    }
    accounts.create(name, password, role).map_err(|e| {
        RedfishError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Message::GeneralError(e.to_string()),
        )
    })?;
    let mut resp = (
        StatusCode::CREATED,
        Json(account_json(name, role, true, false, 1)),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/redfish/v1/AccountService/Accounts/{name}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn patch_account<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let own = caller.user == id;
    if !own {
        require(&caller, Role::Administrator)?;
    }
    let o = json_object(&body)?;
    only_known(&o, &["Password", "RoleId", "Enabled"])?;
    let role = parse_role(&o)?;
    if own && caller.role != Role::Administrator && (role.is_some() || o.contains_key("Enabled")) {
        return Err(RedfishError::new(
            StatusCode::FORBIDDEN,
            Message::InsufficientPrivilege,
        ));
    }
    let password = string_prop(&o, "Password")?;
    if let Some(p) = password {
        check_password(p)?;
    }
    let enabled = match o.get("Enabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(RedfishError::bad_request(Message::PropertyValueTypeError {
                value: other.to_string(),
                property: "Enabled".into(),
            }))
        }
    };
    let mut accounts = s.accounts();
    let a = accounts
        .get(&id)
        .ok_or_else(|| RedfishError::not_found("ManagerAccount", &id))?;
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if m != "*" && m != format!("W/\"{}\"", a.version) {
            return Err(RedfishError::new(
                StatusCode::PRECONDITION_FAILED,
                Message::PreconditionFailed,
            ));
        }
    }
    accounts.update(&id, password, role, enabled).map_err(|e| {
        RedfishError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Message::GeneralError(e.to_string()),
        )
    })?;
    let a = accounts
        .get(&id)
        .ok_or_else(|| RedfishError::not_found("ManagerAccount", &id))?;
    Ok(ok(account_json(
        &a.name,
        a.role,
        a.enabled,
        accounts.is_locked(&a.name),
        a.version,
    )))
}

async fn delete_account<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Res {
    require(&caller, Role::Administrator)?;
    let mut accounts = s.accounts();
    match accounts.delete(&id) {
        Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(false) => Err(RedfishError::not_found("ManagerAccount", &id)),
        Err(e) => Err(RedfishError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Message::GeneralError(e.to_string()),
        )),
    }
}

async fn roles() -> Response {
    let members = [Role::Administrator, Role::Operator, Role::ReadOnly]
        .iter()
        .map(|r| format!("/redfish/v1/AccountService/Roles/{}", r.as_str()))
        .collect();
    listing(
        "/redfish/v1/AccountService/Roles",
        "RoleCollection",
        "Roles",
        members,
        "GET, HEAD",
    )
}

async fn role(Path(id): Path<String>) -> Res {
    let r = Role::parse(&id).ok_or_else(|| RedfishError::not_found("Role", &id))?;
    Ok(with_allow(
        ok(json!({
            "@odata.id": format!("/redfish/v1/AccountService/Roles/{id}"),
            "@odata.type": "#Role.v1_3_3.Role",
            "Id": id,
            "Name": format!("{id} role"),
            "RoleId": id,
            "IsPredefined": true,
            "AssignedPrivileges": r.privileges(),
        })),
        "GET, HEAD",
    ))
}

async fn tray<M: ChassisManager>(
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

fn status(t: &TrayInfo) -> Value {
    let (state, health) = match (&t.trust, t.power) {
        (BmcTrust::Absent, _) => ("Absent", "OK"),
        (BmcTrust::Trusted, Some(PowerState::Fault)) => ("Enabled", "Critical"),
        (BmcTrust::Trusted, _) if t.faults != 0 => ("Enabled", "Warning"),
        (BmcTrust::Trusted, Some(PowerState::Off)) => ("StandbyOffline", "OK"),
        (BmcTrust::Trusted, _) => ("Enabled", "OK"),
        (BmcTrust::PendingApproval { .. }, _) => ("UnavailableOffline", "Warning"),
        (BmcTrust::Connecting, _) => ("Starting", "OK"),
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
    let (target, enabled) = s
        .boot
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&t.slot)
        .cloned()
        .unwrap_or(("None".into(), "Disabled".into()));
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
            "BootSourceOverrideTarget": target,
            "BootSourceOverrideEnabled": enabled,
            "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
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
    Ok(with_allow(ok(body), "GET, HEAD, PATCH"))
}

async fn reset_action_info<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(id): Path<String>,
) -> Res {
    tray(&s, &id, "ComputerSystem").await?;
    Ok(with_allow(
        ok(json!({
            "@odata.id": format!("/redfish/v1/Systems/{id}/ResetActionInfo"),
            "@odata.type": "#ActionInfo.v1_5_0.ActionInfo",
            "Id": "ResetActionInfo",
            "Name": "Reset Action Info",
            "Parameters": [{"Name": "ResetType", "Required": true, "DataType": "String", "AllowableValues": RESET_TYPES}],
        })),
        "GET, HEAD",
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
    let kind = match o.get("ResetType") {
        None => {
            return Err(RedfishError::bad_request(Message::ActionParameterMissing {
                action: action.into(),
                parameter: "ResetType".into(),
            }))
        }
        Some(Value::String(k)) => k.clone(),
        Some(other) => {
            return Err(RedfishError::bad_request(
                Message::ActionParameterValueNotInList {
                    value: other.to_string(),
                    parameter: "ResetType".into(),
                    action: action.into(),
                },
            ))
        }
    };
    let power = match kind.as_str() {
        "On" => PowerAction::On,
        "ForceOff" => PowerAction::ForceOff,
        "GracefulShutdown" => PowerAction::GracefulShutdown,
        "ForceRestart" => PowerAction::ForceRestart,
        "PowerCycle" => PowerAction::PowerCycle,
        _ => {
            return Err(RedfishError::bad_request(
                Message::ActionParameterValueNotInList {
                    value: kind,
                    parameter: "ResetType".into(),
                    action: action.into(),
                },
            ))
        }
    };
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
        &["BootSourceOverrideTarget", "BootSourceOverrideEnabled"],
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
        Some(v) if BOOT_TARGETS.contains(&v) => Some(v.to_string()),
        Some(v) => {
            return Err(RedfishError::bad_request(Message::PropertyValueNotInList {
                value: v.into(),
                property: "BootSourceOverrideTarget".into(),
            }))
        }
        None => None,
    };
    let enabled = match string_prop(boot, "BootSourceOverrideEnabled")? {
        Some(v) if ["Disabled", "Once", "Continuous"].contains(&v) => Some(v.to_string()),
        Some(v) => {
            return Err(RedfishError::bad_request(Message::PropertyValueNotInList {
                value: v.into(),
                property: "BootSourceOverrideEnabled".into(),
            }))
        }
        None => None,
    };
    let (new_target, new_enabled) = {
        let mut map = s.boot.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(t.slot)
            .or_insert(("None".into(), "Disabled".into()));
        if let Some(v) = target {
            entry.0 = v;
        }
        if let Some(v) = enabled {
            entry.1 = v;
        }
        entry.clone()
    };
    let network = new_enabled != "Disabled" && matches!(new_target.as_str(), "Pxe" | "UefiHttp");
    let mode = if network {
        BootMode::Network
    } else {
        BootMode::Local
    };
    s.manager
        .set_boot_mode(t.slot, mode)
        .await
        .map_err(rmd_error)?;
    system::<M>(State(s), Path(id)).await
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

async fn known_chassis<M: ChassisManager>(
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
            "Actions": manager_actions(&id),
            "Status": status(&t),
            "Links": {
                "ManagerForServers": [{"@odata.id": format!("/redfish/v1/Systems/{slot}")}],
                "ManagerForChassis": [{"@odata.id": format!("/redfish/v1/Chassis/tray-{slot}")}],
            },
        })
    };
    Ok(with_allow(ok(body), "GET, HEAD"))
}

const MANAGER_RESET_TYPES: [&str; 2] = ["GracefulRestart", "ForceRestart"];

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
    Ok(with_allow(
        ok(json!({
            "@odata.id": format!("/redfish/v1/Managers/{id}/ResetActionInfo"),
            "@odata.type": "#ActionInfo.v1_5_0.ActionInfo",
            "Id": "ResetActionInfo",
            "Name": "Reset Action Info",
            "Parameters": [{"Name": "ResetType", "Required": false, "DataType": "String", "AllowableValues": MANAGER_RESET_TYPES}],
        })),
        "GET, HEAD",
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
    match o.get("ResetType") {
        None => {}
        Some(Value::String(k)) if MANAGER_RESET_TYPES.contains(&k.as_str()) => {}
        Some(other) => {
            let value = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_string);
            return Err(RedfishError::bad_request(
                Message::ActionParameterValueNotInList {
                    value,
                    parameter: "ResetType".into(),
                    action: action.into(),
                },
            ));
        }
    }
    only_known(&o, &["ResetType"])?;
    let done = match target {
        None => s.manager.restart().await,
        Some(slot) => s.manager.reset_bmc(slot).await,
    };
    done.map_err(|e| match e {
        RmdError::Busy(_) => {
            let mut err = RedfishError::new(StatusCode::CONFLICT, Message::ResourceInUse);
            err.messages.push(Message::GeneralError(e.to_string()));
            err
        }
        other => rmd_error(other),
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// RFC 3339 UTC time (whole seconds) of a Unix timestamp in milliseconds.
pub(crate) fn rfc3339(unix_ms: u64) -> String {
    let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    jiff::Timestamp::from_second(secs)
        .map_or_else(|_| "9999-12-31T23:59:59Z".to_string(), |t| t.to_string())
}

async fn log_services() -> Response {
    listing(
        "/redfish/v1/Managers/rmc/LogServices",
        "LogServiceCollection",
        "Log Services",
        vec!["/redfish/v1/Managers/rmc/LogServices/EventLog".into()],
        "GET, HEAD",
    )
}

async fn event_log() -> Response {
    with_allow(
        ok(json!({
            "@odata.id": "/redfish/v1/Managers/rmc/LogServices/EventLog",
            "@odata.type": "#LogService.v1_9_0.LogService",
            "Id": "EventLog",
            "Name": "Chassis event log",
            "ServiceEnabled": true,
            "OverWritePolicy": "WrapsWhenFull",
            "MaxNumberOfRecords": 10000,
            "Entries": {"@odata.id": "/redfish/v1/Managers/rmc/LogServices/EventLog/Entries"},
            "Actions": {"#LogService.ClearLog": {"target": "/redfish/v1/Managers/rmc/LogServices/EventLog/Actions/LogService.ClearLog"}},
            "Status": {"State": "Enabled", "Health": "OK"},
        })),
        "GET, HEAD",
    )
}

fn log_entry_json(e: &racklet_rmd_api::Event) -> Value {
    let severity = match e.severity {
        racklet_rmd_api::Severity::Info => "OK",
        racklet_rmd_api::Severity::Warning => "Warning",
        racklet_rmd_api::Severity::Critical => "Critical",
    };
    json!({
        "@odata.id": format!("/redfish/v1/Managers/rmc/LogServices/EventLog/Entries/{}", e.sequence),
        "@odata.type": "#LogEntry.v1_21_0.LogEntry",
        "Id": e.sequence.to_string(),
        "Name": format!("Event {}", e.sequence),
        "EntryType": "Oem",
        "OemRecordFormat": "Racklet",
        "Severity": severity,
        "Created": rfc3339(e.unix_ms),
        "Message": e.message,
    })
}

async fn log_entries<M: ChassisManager + Clone + 'static>(State(s): St<M>) -> Response {
    let members: Vec<Value> = s
        .manager
        .events(0)
        .await
        .iter()
        .map(log_entry_json)
        .collect();
    with_allow(
        ok(json!({
            "@odata.id": "/redfish/v1/Managers/rmc/LogServices/EventLog/Entries",
            "@odata.type": "#LogEntryCollection.LogEntryCollection",
            "Name": "Event log entries",
            "Members@odata.count": members.len(),
            "Members": members,
        })),
        "GET, HEAD",
    )
}

async fn log_entry<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Path(entry): Path<String>,
) -> Res {
    let seq: u64 = entry
        .parse()
        .map_err(|_| RedfishError::not_found("LogEntry", &entry))?;
    let e = s
        .manager
        .events(seq.saturating_sub(1))
        .await
        .into_iter()
        .find(|e| e.sequence == seq)
        .ok_or_else(|| RedfishError::not_found("LogEntry", &entry))?;
    Ok(with_allow(ok(log_entry_json(&e)), "GET, HEAD"))
}

async fn clear_log<M: ChassisManager + Clone + 'static>(
    State(s): St<M>,
    Extension(caller): Extension<Caller>,
) -> Res {
    require(&caller, Role::Administrator)?;
    s.manager.clear_events().await;
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
