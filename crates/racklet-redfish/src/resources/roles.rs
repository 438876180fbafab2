//! The AccountService's predefined roles (Administrator, Operator, ReadOnly) and their
//! Redfish privileges.

use std::sync::Arc;

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use racklet_rmd_api::ChassisManager;
use serde_json::json;

use super::Res;
use crate::accounts::Role;
use crate::error::RedfishError;
use crate::odata::{listing, ok, with_allow};
use crate::AppState;

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .route("/redfish/v1/AccountService/Roles", get(roles))
        .route("/redfish/v1/AccountService/Roles/{id}", get(role))
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
