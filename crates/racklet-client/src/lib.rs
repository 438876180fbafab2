//! The control plane's HTTPS API as Rust types, and a client for it.
//!
//! This is the one door to a running rack for everything that is not the control plane:
//! the CLI's client commands, tests and the dashboard. The objects follow the Kubernetes
//! API conventions the manifests already use (`apiVersion`, `kind`, `metadata`, `spec`,
//! `status` with `conditions`, camelCase, lists as `List` with `items`), so that
//! `racklet get nodes -o json` reads like `kubectl get -o json`. [`DataDir`] owns the
//! layout of the data directory that `racklet up` writes and the client reads.

pub mod changes;
pub mod client;
pub mod data_dir;
pub mod meta;
pub mod objects;

pub use racklet_time as time;

pub use client::{Client, ClientError};
pub use data_dir::DataDir;
pub use meta::{Condition, ConditionStatus, List, ObjectMeta, API_VERSION};
pub use objects::*;
