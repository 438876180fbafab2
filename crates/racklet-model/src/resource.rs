//! The resource envelope (`apiVersion`, `kind`, `metadata`, `spec`, `status`), the closed
//! set of kinds, their JSON Schemas, and decoding one parsed document into a typed
//! resource with every schema violation reported at its position.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::board::BoardModelSpec;
use crate::boot_profile::BootProfileSpec;
use crate::chassis::ChassisSpec;
use crate::compute_unit::ComputeUnitSpec;
use crate::diag::Diagnostic;
use crate::firmware_policy::FirmwarePolicySpec;
use crate::meta::{ObjectMeta, Status, API_VERSION};
use crate::rack::RackSpec;
use crate::source::Document;

/// A resource of one kind: Kubernetes-style envelope around a kind-specific `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
    #[serde(default, skip_serializing_if = "Status::is_empty")]
    pub status: Status,
}

impl<S> Resource<S> {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

pub type Rack = Resource<RackSpec>;
pub type Chassis = Resource<ChassisSpec>;
pub type ComputeUnit = Resource<ComputeUnitSpec>;
pub type BoardModel = Resource<BoardModelSpec>;
pub type FirmwarePolicy = Resource<FirmwarePolicySpec>;
pub type BootProfile = Resource<BootProfileSpec>;

/// Every kind this API version has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    BoardModel,
    BootProfile,
    Chassis,
    ComputeUnit,
    FirmwarePolicy,
    Rack,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::BoardModel,
        Kind::BootProfile,
        Kind::Chassis,
        Kind::ComputeUnit,
        Kind::FirmwarePolicy,
        Kind::Rack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BoardModel => "BoardModel",
            Kind::BootProfile => "BootProfile",
            Kind::Chassis => "Chassis",
            Kind::ComputeUnit => "ComputeUnit",
            Kind::FirmwarePolicy => "FirmwarePolicy",
            Kind::Rack => "Rack",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The JSON Schema (draft 2020-12) of a whole document of this kind.
    pub fn schema(self) -> Value {
        self.compiled().schema.clone()
    }

    /// This kind's schema, compiled. Shared while anyone holds it (a [`ManifestSet`] holds
    /// every kind's while it loads documents), compiled again after the last holder lets
    /// go: a long-running process that loaded its manifests once does not keep the
    /// validators (about 1.3 MB) for good.
    ///
    /// [`ManifestSet`]: crate::ManifestSet
    pub(crate) fn compiled(self) -> Arc<CompiledSchema> {
        static CELLS: Mutex<[Weak<CompiledSchema>; 6]> = Mutex::new([const { Weak::new() }; 6]);
        let mut cells = CELLS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = cells[self as usize].upgrade() {
            return held;
        }
        let compiled = Arc::new(self.compile());
        cells[self as usize] = Arc::downgrade(&compiled);
        compiled
    }

    fn compile(self) -> CompiledSchema {
        {
            let mut schema = match self {
                Kind::BoardModel => schemars::schema_for!(BoardModel),
                Kind::BootProfile => schemars::schema_for!(BootProfile),
                Kind::Chassis => schemars::schema_for!(Chassis),
                Kind::ComputeUnit => schemars::schema_for!(ComputeUnit),
                Kind::FirmwarePolicy => schemars::schema_for!(FirmwarePolicy),
                Kind::Rack => schemars::schema_for!(Rack),
            }
            .to_value();
            pin_envelope(&mut schema, self);
            // The schema is generated from our own types at build time; failing to compile
            // it is a programming error caught by every test run.
            #[allow(clippy::expect_used)]
            let validator = jsonschema::validator_for(&schema).expect("generated schema compiles");
            CompiledSchema {
                kind: self,
                schema,
                validator,
            }
        }
    }
}

/// A kind's JSON Schema and its compiled validator.
pub(crate) struct CompiledSchema {
    pub(crate) kind: Kind,
    schema: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} schema", self.kind)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fixes `apiVersion` and `kind` to their only valid values and names the schema.
fn pin_envelope(schema: &mut Value, kind: Kind) {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), Value::String(kind.as_str().into()));
        obj.insert(
            "$id".into(),
            Value::String(format!("https://racklet.io/schemas/v1alpha1/{kind}.json")),
        );
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(
                "apiVersion".into(),
                serde_json::json!({ "const": API_VERSION }),
            );
            props.insert("kind".into(), serde_json::json!({ "const": kind.as_str() }));
        }
    }
}

/// A typed resource of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyResource {
    BoardModel(BoardModel),
    BootProfile(BootProfile),
    Chassis(Chassis),
    ComputeUnit(ComputeUnit),
    FirmwarePolicy(FirmwarePolicy),
    Rack(Rack),
}

impl AnyResource {
    pub fn kind(&self) -> Kind {
        match self {
            AnyResource::BoardModel(_) => Kind::BoardModel,
            AnyResource::BootProfile(_) => Kind::BootProfile,
            AnyResource::Chassis(_) => Kind::Chassis,
            AnyResource::ComputeUnit(_) => Kind::ComputeUnit,
            AnyResource::FirmwarePolicy(_) => Kind::FirmwarePolicy,
            AnyResource::Rack(_) => Kind::Rack,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            AnyResource::BoardModel(r) => &r.metadata,
            AnyResource::BootProfile(r) => &r.metadata,
            AnyResource::Chassis(r) => &r.metadata,
            AnyResource::ComputeUnit(r) => &r.metadata,
            AnyResource::FirmwarePolicy(r) => &r.metadata,
            AnyResource::Rack(r) => &r.metadata,
        }
    }

    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    pub fn to_json(&self) -> Value {
        let v = match self {
            AnyResource::BoardModel(r) => serde_json::to_value(r),
            AnyResource::BootProfile(r) => serde_json::to_value(r),
            AnyResource::Chassis(r) => serde_json::to_value(r),
            AnyResource::ComputeUnit(r) => serde_json::to_value(r),
            AnyResource::FirmwarePolicy(r) => serde_json::to_value(r),
            AnyResource::Rack(r) => serde_json::to_value(r),
        };
        v.unwrap_or(Value::Null)
    }
}

/// Renders a JSON pointer as a field path people read: `spec.fans[0].maxRpm`.
pub fn field_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return "document".into();
    }
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// How a JSON value is described in messages.
pub fn describe(v: &Value) -> String {
    let short = |s: String| {
        if s.chars().count() > 40 {
            format!("{}…", s.chars().take(40).collect::<String>())
        } else {
            s
        }
    };
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", short(format!("{s:?}"))),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn type_name(t: &str) -> &str {
    match t {
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "boolean" => "true or false",
        "array" => "a list",
        "object" => "a mapping",
        "null" => "null",
        other => other,
    }
}

fn list_values(v: &Value) -> String {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// Turns one JSON Schema violation into a message that says what is wrong and what
/// would be right.
fn schema_message(
    doc: &Document,
    err: &jsonschema::ValidationError<'_>,
) -> (String, Option<String>) {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    let pointer = err.instance_path().as_str().to_string();
    let field = field_path(&pointer);
    let found = doc
        .value
        .pointer(&pointer)
        .map(describe)
        .unwrap_or_else(|| "nothing".into());
    let msg = match err.kind() {
        K::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => type_name(&t.to_string()).to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| type_name(&t.to_string()).to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!("`{field}` is {found}, expected {expected}")
        }
        K::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            let owner = if pointer.is_empty() {
                "document".to_string()
            } else {
                format!("`{field}`")
            };
            format!("{owner} is missing the required field `{p}`")
        }
        K::AdditionalProperties { unexpected } => {
            let known = known_properties(err.schema_path().as_str(), doc);
            let owner = if pointer.is_empty() {
                "the document".to_string()
            } else {
                format!("`{field}`")
            };
            let mut m = format!(
                "unknown field{} {} in {owner}",
                if unexpected.len() > 1 { "s" } else { "" },
                unexpected
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(known) = known {
                m.push_str(&format!("; known fields are: {known}"));
            }
            let first = unexpected
                .first()
                .map(|u| format!("{pointer}/{}", crate::source::escape_segment(u)));
            return (m, first);
        }
        K::Enum { options } => format!(
            "`{field}` is {found}, expected one of: {}",
            list_values(options)
        ),
        K::Constant { expected_value } => {
            format!(
                "`{field}` is {found}, expected {}",
                list_values(expected_value)
            )
        }
        K::Minimum { limit } => format!("`{field}` is {found}, expected at least {limit}"),
        K::Maximum { limit } => format!("`{field}` is {found}, expected at most {limit}"),
        K::ExclusiveMinimum { limit } => {
            format!("`{field}` is {found}, expected more than {limit}")
        }
        K::ExclusiveMaximum { limit } => {
            format!("`{field}` is {found}, expected less than {limit}")
        }
        K::MinLength { limit } => {
            format!("`{field}` is {found}, expected at least {limit} characters")
        }
        K::MaxLength { limit } => {
            format!("`{field}` is {found}, expected at most {limit} characters")
        }
        K::MinItems { limit } => {
            format!("`{field}` has too few entries, expected at least {limit}")
        }
        K::MaxItems { limit } => {
            format!("`{field}` has too many entries, expected at most {limit}")
        }
        K::Pattern { pattern } => {
            if pattern.contains("a-z0-9") {
                format!("`{field}` is {found}, expected a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit")
            } else {
                format!("`{field}` is {found}, expected text matching {pattern}")
            }
        }
        _ => format!("`{field}`: {err}"),
    };
    (msg, None)
}

/// The property names a mapping may have, taken from the schema that rejected it.
fn known_properties(schema_path: &str, doc: &Document) -> Option<String> {
    let kind = doc
        .value
        .get("kind")
        .and_then(Value::as_str)
        .and_then(Kind::parse)?;
    let compiled = kind.compiled();
    let schema = &compiled.schema;
    // schema_path ends in ".../additionalProperties"; its parent holds `properties`.
    let parent = schema_path.strip_suffix("/additionalProperties")?;
    let node = resolve_schema_path(schema, parent)?;
    let props = node.get("properties")?.as_object()?;
    Some(
        props
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Follows a schema path (which may step through `$ref`) inside our own schema.
fn resolve_schema_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = root;
    for seg in path.split('/').skip(1) {
        if seg == "$ref" {
            let target = node.get("$ref")?.as_str()?;
            node = root.pointer(target.strip_prefix('#')?)?;
            continue;
        }
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(o) => match o.get(&seg) {
                Some(n) => n,
                None => {
                    let target = o.get("$ref")?.as_str()?;
                    root.pointer(target.strip_prefix('#')?)?.get(&seg)?
                }
            },
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    if let Some(target) = node.get("$ref").and_then(Value::as_str) {
        return root.pointer(target.strip_prefix('#')?);
    }
    Some(node)
}

/// Decodes one parsed document into a typed resource, or says everything wrong with it.
pub fn decode(doc: &Document) -> Result<AnyResource, Vec<Diagnostic>> {
    let Value::Object(obj) = &doc.value else {
        return Err(vec![doc.diag_at(
            "",
            format!(
                "document is {}, expected a mapping with apiVersion, kind, metadata and spec",
                describe(&doc.value)
            ),
        )]);
    };
    let mut diags = Vec::new();
    match obj.get("apiVersion") {
        None => diags.push(doc.diag_at(
            "",
            format!("document is missing `apiVersion`; use `apiVersion: {API_VERSION}`"),
        )),
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(other) => diags.push(doc.diag_at(
            "/apiVersion",
            match other {
                Value::String(v) => {
                    format!("unknown apiVersion {v:?}; this version of Racklet reads {API_VERSION}")
                }
                other => format!(
                    "`apiVersion` is {}, expected the string {API_VERSION}",
                    describe(other)
                ),
            },
        )),
    }
    let known = Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let kind = match obj.get("kind") {
        None => {
            diags.push(doc.diag_at(
                "",
                format!("document is missing `kind`; known kinds are: {known}"),
            ));
            None
        }
        Some(Value::String(k)) => match Kind::parse(k) {
            Some(kind) => Some(kind),
            None => {
                diags.push(doc.diag_at(
                    "/kind",
                    format!("unknown kind {k:?}; known kinds are: {known}"),
                ));
                None
            }
        },
        Some(other) => {
            diags.push(doc.diag_at(
                "/kind",
                format!("`kind` is {}, expected one of: {known}", describe(other)),
            ));
            None
        }
    };
    let Some(kind) = kind else { return Err(diags) };
    if !diags.is_empty() {
        return Err(diags);
    }
    let compiled = kind.compiled();
    for err in compiled.validator.iter_errors(&doc.value) {
        let (message, key_pointer) = schema_message(doc, &err);
        let at = err.instance_path().as_str();
        let d = match key_pointer {
            Some(p) => doc.diag_at_key(&p, message),
            // A missing field is reported where its mapping's key is.
            None if matches!(
                err.kind(),
                jsonschema::error::ValidationErrorKind::Required { .. }
            ) =>
            {
                doc.diag_at_key(at, message)
            }
            None => doc.diag_at(at, message),
        };
        diags.push(d);
    }
    if !diags.is_empty() {
        diags.sort();
        diags.dedup();
        return Err(diags);
    }
    let typed = match kind {
        Kind::BoardModel => typed(doc).map(AnyResource::BoardModel),
        Kind::Chassis => typed(doc).map(AnyResource::Chassis),
        Kind::ComputeUnit => typed(doc).map(AnyResource::ComputeUnit),
        Kind::FirmwarePolicy => typed(doc).map(AnyResource::FirmwarePolicy),
        Kind::BootProfile => typed(doc).map(AnyResource::BootProfile),
        Kind::Rack => typed(doc).map(AnyResource::Rack),
    };
    typed.map_err(|d| vec![d])
}

/// Deserialises a schema-checked document. The schema cannot say everything serde
/// checks (JSON Schema counts `1.0` as an integer; integer widths), so errors here are
/// located and explained too.
fn typed<T: DeserializeOwned>(doc: &Document) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let mut pointer = String::new();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            match seg {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } => {
                    pointer.push('/');
                    pointer.push_str(&crate::source::escape_segment(key));
                }
                Segment::Enum { .. } | Segment::Unknown => {}
            }
        }
        let found = doc
            .value
            .pointer(&pointer)
            .map(describe)
            .unwrap_or_else(|| "nothing".into());
        let wanted = e.inner().to_string();
        let wanted = wanted.split(", expected ").nth(1).unwrap_or(&wanted);
        let wanted = match wanted {
            "u8" | "u16" | "u32" | "u64" => "a whole number that fits",
            other => other,
        };
        doc.diag_at(
            &pointer,
            format!("`{}` is {found}, expected {wanted}", field_path(&pointer)),
        )
    })
}
