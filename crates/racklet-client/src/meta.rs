//! The parts every object shares, after the Kubernetes API conventions: `metadata`,
//! `status.conditions[]` and lists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API group and version of Racklet's objects (the manifests' `apiVersion`).
pub const API_VERSION: &str = "racklet.io/v1alpha1";

/// `metadata` of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    /// As in the manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// As in the manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Counts changes of the object's `spec` (desired state), starting at 1. Served
    /// only: `apply` ignores it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `True`, `False` or `Unknown`, as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// One entry of `status.conditions[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// CamelCase, machine-readable.
    pub reason: String,
    pub message: String,
    /// RFC 3339, whole seconds.
    pub last_transition_time: String,
    pub observed_generation: u64,
}

/// A list of objects: `{"apiVersion": "v1", "kind": "List", "items": [...]}`, as
/// `kubectl get -o json` prints several objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    pub api_version: String,
    pub kind: String,
    pub items: Vec<T>,
}

impl<T> List<T> {
    pub fn new(items: Vec<T>) -> List<T> {
        List {
            api_version: "v1".into(),
            kind: "List".into(),
            items,
        }
    }
}

/// The error body of every refused API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
