//! A set of manifests read from files and directories, decoded into typed resources, with
//! the built-in board catalog alongside.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Position};
use crate::resource::{
    decode, AnyResource, BoardModel, BootProfile, Chassis, CompiledSchema, ComputeUnit,
    FirmwarePolicy, Kind, Rack,
};
use crate::source::{parse_file, Document};

/// One decoded resource with the document it came from (for positions in messages).
#[derive(Debug, Clone)]
pub struct Entry {
    pub doc: Document,
    pub resource: AnyResource,
    /// True for resources of the built-in board catalog.
    pub builtin: bool,
}

/// Resources loaded together and validated as one whole.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    pub entries: Vec<Entry>,
    /// Documents that could not be decoded. Rules across the set do not report follow-on
    /// errors about them (a missing chassis that was merely malformed, say).
    pub rejected: Vec<Rejected>,
    /// Files that could not be read as manifests at all (a YAML syntax error, not UTF-8):
    /// anything may have been declared there, so nothing is reported missing.
    pub unreadable: Vec<Arc<Path>>,
    /// The compiled schema of each kind this set has taken documents of (compiled once per
    /// set, let go with it).
    schemas: Vec<Arc<CompiledSchema>>,
}

/// What is known of a document that failed to decode, read from its raw value.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub kind: Option<String>,
    pub name: Option<String>,
    /// `spec.chassis`, for compute units.
    pub chassis: Option<String>,
    /// `spec.board`, for compute units.
    pub board: Option<String>,
    /// The document, for the positions of what it refers to.
    pub doc: Document,
}

impl Rejected {
    fn of(doc: &Document) -> Rejected {
        let text = |p: &str| {
            doc.value
                .pointer(p)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Rejected {
            kind: text("/kind"),
            name: text("/metadata/name"),
            chassis: text("/spec/chassis"),
            board: text("/spec/board"),
            doc: doc.clone(),
        }
    }
}

macro_rules! typed_iter {
    ($fn:ident, $variant:ident, $ty:ty) => {
        pub fn $fn(&self) -> impl DoubleEndedIterator<Item = (&Entry, &$ty)> {
            self.entries.iter().filter_map(|e| match &e.resource {
                AnyResource::$variant(r) => Some((e, r)),
                _ => None,
            })
        }
    };
}

impl ManifestSet {
    /// A set holding only the built-in board catalog.
    pub fn with_catalog() -> Self {
        ManifestSet {
            entries: crate::catalog::entries().to_vec(),
            ..ManifestSet::default()
        }
    }

    /// Whether a document of `kind` named `name` may exist though it did not decode: it
    /// was present but rejected, or some file could not be read at all. Rules do not call
    /// such a reference missing (that would be a follow-on error of the first problem).
    pub fn may_exist(&self, kind: Kind, name: &str) -> bool {
        !self.unreadable.is_empty()
            || self.rejected.iter().any(|r| {
                r.kind.as_deref() == Some(kind.as_str()) && r.name.as_deref() == Some(name)
            })
    }

    typed_iter!(racks, Rack, Rack);
    typed_iter!(chassis, Chassis, Chassis);
    typed_iter!(compute_units, ComputeUnit, ComputeUnit);
    typed_iter!(boards, BoardModel, BoardModel);
    typed_iter!(firmware_policies, FirmwarePolicy, FirmwarePolicy);
    typed_iter!(boot_profiles, BootProfile, BootProfile);

    pub fn board(&self, name: &str) -> Option<&BoardModel> {
        self.boards().map(|(_, b)| b).find(|b| b.name() == name)
    }

    pub fn chassis_named(&self, name: &str) -> Option<&Chassis> {
        self.chassis().map(|(_, c)| c).find(|c| c.name() == name)
    }

    /// Holds the compiled schema of `doc`'s kind for as long as this set lives, so the
    /// set's other documents of that kind reuse it.
    fn hold_schema(&mut self, doc: &Document) {
        let kind = doc
            .value
            .get("kind")
            .and_then(|k| k.as_str())
            .and_then(Kind::parse);
        if let Some(kind) = kind {
            if !self.schemas.iter().any(|s| s.kind == kind) {
                self.schemas.push(kind.compiled());
            }
        }
    }

    /// Parses and decodes one file's bytes, adding what decodes and returning every problem.
    pub fn add_source(&mut self, file: &Arc<Path>, bytes: &[u8]) -> Vec<Diagnostic> {
        let docs = match parse_file(file, bytes) {
            Ok(docs) => docs,
            Err(diags) => {
                self.unreadable.push(Arc::clone(file));
                return diags;
            }
        };
        let mut diags = Vec::new();
        for doc in docs {
            self.hold_schema(&doc);
            match decode(&doc) {
                Ok(resource) => self.entries.push(Entry {
                    doc,
                    resource,
                    builtin: false,
                }),
                Err(mut d) => {
                    self.rejected.push(Rejected::of(&doc));
                    diags.append(&mut d);
                }
            }
        }
        diags
    }

    /// Reads files and directories (recursively: `*.yaml`, `*.yml`, `*.json`).
    pub fn add_paths(&mut self, paths: &[PathBuf]) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        for path in paths {
            for file in manifest_files(path, &mut diags) {
                let file: Arc<Path> = Arc::from(file.as_path());
                match std::fs::read(&file) {
                    Ok(bytes) => diags.append(&mut self.add_source(&file, &bytes)),
                    Err(e) => diags.push(Diagnostic::new(
                        &file,
                        Position::START,
                        format!("cannot read file: {e}"),
                    )),
                }
            }
        }
        diags
    }

    /// Loads and validates `paths` with the built-in catalog: all problems, sorted.
    pub fn load(paths: &[PathBuf]) -> (ManifestSet, Vec<Diagnostic>) {
        let mut set = ManifestSet::with_catalog();
        let mut diags = set.add_paths(paths);
        diags.extend(crate::validate::validate(&set));
        diags.sort();
        diags.dedup();
        (set, diags)
    }
}

/// Whether `path` names a manifest file: `.yaml`, `.yml` or `.json`, in any case. The one
/// rule every reader of manifests (validate, the control plane, `apply -f DIR`) uses.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml" | "json")
    )
}

/// Manifest files under `path`, sorted for stable output.
fn manifest_files(path: &Path, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let file: Arc<Path> = Arc::from(path);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            diags.push(Diagnostic::new(
                &file,
                Position::START,
                format!("cannot read: {e}"),
            ));
            return Vec::new();
        }
    };
    if !meta.is_dir() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                diags.push(Diagnostic::new(
                    &Arc::from(dir.as_path()),
                    Position::START,
                    format!("cannot read directory: {e}"),
                ));
                continue;
            }
        };
        for entry in entries.flatten() {
            let p = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) if is_manifest(&p) => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHASSIS: &str = "apiVersion: racklet.io/v1alpha1
kind: Chassis
metadata:
  name: c1
spec:
  rackUnits: 1
";

    // reason: a test's panic is its failure report.
    #[allow(clippy::expect_used)]
    #[test]
    fn a_sets_compiled_schemas_are_shared_while_it_lives_and_let_go_with_it() {
        let file: Arc<Path> = Arc::from(Path::new("c1.yaml"));
        let mut set = ManifestSet::default();
        let _ = set.add_source(&file, CHASSIS.as_bytes());
        let held = Arc::downgrade(set.schemas.first().expect("the Chassis schema is held"));
        assert!(
            Arc::ptr_eq(&Kind::Chassis.compiled(), &held.upgrade().expect("held")),
            "documents decoded while the set lives share one compiled schema"
        );
        drop(set);
        assert!(
            held.upgrade().is_none(),
            "a long-running process does not keep the validators after loading"
        );
    }
}
