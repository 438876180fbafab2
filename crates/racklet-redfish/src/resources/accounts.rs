//! The AccountService: its settings (lock-out, password length), and the accounts
//! themselves: list, read, create, change (password, role, enabled; `If-Match` against
//! the account's version) and delete. Non-administrators see and change only their own.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use racklet_rmd_api::ChassisManager;
use serde_json::{json, Map, Value};

use super::{Res, St};
use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::odata::{listing, ok, only_known, require, string_prop, visible_to, with_allow};
use crate::{json_object, AppState, Caller};

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
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
    // Hashed before the accounts are locked: argon2 takes tens of milliseconds.
    let hash = s.hash_password(password).await.map_err(|e| {
        RedfishError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Message::GeneralError(crate::error::chain(&e)),
        )
    })?;
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
    accounts.create(name, hash, role).map_err(|e| {
        RedfishError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Message::GeneralError(crate::error::chain(&e)),
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
    // Hashed before the accounts are locked: argon2 takes tens of milliseconds.
    let hash = match password {
        Some(p) => Some(s.hash_password(p).await.map_err(|e| {
            RedfishError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Message::GeneralError(crate::error::chain(&e)),
            )
        })?),
        None => None,
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
    accounts.update(&id, hash, role, enabled).map_err(|e| {
        RedfishError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Message::GeneralError(crate::error::chain(&e)),
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
            Message::GeneralError(crate::error::chain(&e)),
        )),
    }
}
