//! The SessionService: log-in (`POST .../Sessions` with `UserName` and `Password`, answered
//! with an `X-Auth-Token`), the sessions a caller may see, and log-out (`DELETE`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use racklet_rmd_api::ChassisManager;
use serde_json::{json, Value};

use super::{Res, St};
use crate::error::{Message, RedfishError};
use crate::odata::{listing, ok, visible_to, with_allow};
use crate::{json_object, AppState, Caller};

pub(super) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
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
    let role = s
        .check_credentials(user, pass)
        .await
        .map_err(|_| RedfishError::new(StatusCode::UNAUTHORIZED, Message::NoValidSession))?;
    let session = s.accounts().open_session(user, role);
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
