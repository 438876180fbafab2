//! The Redfish resource tree, one module per resource family, each owning its routes;
//! [`routes`] joins them with the routes of the console, TaskService, UpdateService and
//! EventService. Helpers every family shares live in [`crate::odata`].

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Router;
use racklet_rmd_api::ChassisManager;

use crate::error::RedfishError;
use crate::AppState;

mod accounts;
mod boot;
mod chassis;
mod logs;
mod managers;
mod roles;
mod root;
mod sensors;
mod sessions;
mod systems;
mod thermal;

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
        .merge(boot::routes::<M>())
        .merge(chassis::routes::<M>())
        .merge(sensors::routes::<M>())
        .merge(thermal::routes::<M>())
        .merge(managers::routes::<M>())
        .merge(logs::routes::<M>())
        .merge(crate::console::routes::<M>())
        .merge(crate::tasks::routes::<M>())
        .merge(crate::update::routes::<M>())
        .merge(crate::events::routes::<M>())
}
