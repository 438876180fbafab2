//! The rack management controller's event log as a Redfish LogService (`EventLog`): its
//! entries (the daemon's event log) and the `LogService.ClearLog` action.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use racklet_rmd_api::ChassisManager;
use serde_json::{json, Value};

use super::{Res, St};
use crate::accounts::Role;
use crate::error::RedfishError;
use crate::odata::{listing, ok, require, rfc3339, with_allow};
use crate::{AppState, Caller};

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
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
