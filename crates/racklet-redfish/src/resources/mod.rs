//! The Redfish resource tree, one module per resource family, each owning its routes;
//! [`routes`] joins them with the routes of the console, TaskService, UpdateService and
//! EventService. Helpers every family shares live in [`crate::odata`].

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use racklet_rmd_api::ChassisManager;

use crate::error::RedfishError;
use crate::AppState;

mod accounts;
mod chassis;
mod logs;
mod managers;
mod roles;
mod root;
mod sensors;
mod sessions;
mod systems;
mod thermal;

// `events.rs` imports these from here (it is being edited elsewhere; import them from
// `crate::odata` there once that lands).
pub(crate) use crate::odata::{
    listing, ok, only_known, require, rfc3339, string_prop, visible_to, with_allow,
};

/// The shared state as a handler argument.
pub(crate) type St<M> = State<Arc<AppState<M>>>;
/// What a fallible handler returns.
pub(crate) type Res = Result<Response, RedfishError>;

/// Every route of the service.
pub(crate) fn routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
        .merge(root::routes::<M>())
        .merge(sessions::routes::<M>())
        .merge(accounts::routes::<M>())
        .merge(roles::routes::<M>())
        .merge(systems::routes::<M>())
        .merge(chassis::routes::<M>())
        .merge(sensors::routes::<M>())
        .merge(thermal::routes::<M>())
        .merge(managers::routes::<M>())
        .merge(logs::routes::<M>())
        .merge(crate::console::routes::<M>())
        .merge(crate::tasks::routes::<M>())
        .merge(crate::update::routes::<M>())
        .merge(event_service_routes::<M>())
}

/// The EventService's routes (its handlers are in [`crate::events`]).
fn event_service_routes<M: ChassisManager + Clone + 'static>() -> Router<Arc<AppState<M>>> {
    Router::new()
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
