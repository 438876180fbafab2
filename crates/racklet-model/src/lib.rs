//! Racklet's declarative resources for RFC-0002 layers 1 (structural) and 2 (electrical).
//!
//! Manifests are Kubernetes-style documents (`apiVersion: racklet.io/v1alpha1`, `kind`,
//! `metadata`, `spec`, `status`) in multi-document YAML or JSON. Reading them goes
//! through three stages, each reporting every problem as `FILE:LINE:COLUMN: message`:
//!
//! 1. [`source`]: bytes to JSON values with a position for every value (bounded input);
//! 2. [`resource`]: each document against its kind's JSON Schema (generated from the Rust
//!    types, so schema and types cannot drift), then into typed resources;
//! 3. [`validate`]: rules across the whole set (references, geometry, power budgets, roles).
//!
//! Every other part of Racklet (the twin, the firmware, the control plane) consumes the
//! typed resources from here.

pub mod board;
pub mod boot_profile;
pub mod catalog;
pub mod chassis;
pub mod compute_unit;
pub mod diag;
pub mod emit;
pub mod firmware_policy;
pub mod manifest;
pub mod meta;
pub mod rack;
pub mod resource;
pub mod source;
pub mod validate;

pub use diag::{Diagnostic, Position};
pub use manifest::{is_manifest, Entry, ManifestSet, Rejected};
pub use meta::API_VERSION;
pub use resource::{
    AnyResource, BoardModel, BootProfile, Chassis, ComputeUnit, FirmwarePolicy, Kind, Rack,
    Resource,
};
