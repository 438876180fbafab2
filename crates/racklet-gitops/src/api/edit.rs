//! Resource-level edits of a revision's manifest files, as `kubectl apply` and `delete`
//! make them: a resource is found by kind and name wherever it lives in the repository,
//! and only its own document changes. The rest of every file (other documents, comments,
//! layout) is kept as it was; a JSON file is written again from its values. New resources
//! go to the file the caller named; a file whose last document is removed is removed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use racklet_model::source::{parse_file, Document};
use serde_json::Value;

use crate::local::Files;

/// A resource's identity in a revision: its kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub kind: String,
    pub name: String,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl ResourceId {
    fn of(value: &Value) -> Option<ResourceId> {
        Some(ResourceId {
            kind: value.get("kind")?.as_str()?.to_string(),
            name: value.pointer("/metadata/name")?.as_str()?.to_string(),
        })
    }
}

/// Fields the control plane writes when it serves an object (`get -o yaml`) that have no
/// place in desired state: they are dropped from what is applied, as kubectl drops them.
const SERVED_METADATA: [&str; 6] = [
    "generation",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "managedFields",
    "selfLink",
];

/// A document's value with the defaults of its kind filled in and nothing else, so that
/// two ways of writing the same resource compare equal (`role: Worker` or no role). A
/// document that does not decode is compared as written.
fn normal(doc: &Document) -> Value {
    racklet_model::resource::decode(doc)
        .map(|r| r.to_json())
        .unwrap_or_else(|_| doc.value.clone())
}

/// One document of a file: identity, value as written, and as compared.
#[derive(Debug, Clone)]
struct Doc {
    id: Option<ResourceId>,
    raw: Value,
    normal: Value,
}

impl Doc {
    fn of(doc: &Document) -> Doc {
        Doc {
            id: ResourceId::of(&doc.value),
            raw: doc.value.clone(),
            normal: normal(doc),
        }
    }

    fn removed() -> Doc {
        Doc {
            id: None,
            raw: Value::Null,
            normal: Value::Null,
        }
    }
}

/// One document a caller asked to apply (or to delete).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub id: ResourceId,
    /// The caller's file it came from (new resources go to the file of that name).
    pub file: PathBuf,
    pub value: Value,
    normal: Value,
    /// Its YAML text as the caller wrote it (comments and all), when it can be kept.
    text: Option<String>,
}

fn strip_served(value: &mut Value) -> bool {
    let mut stripped = false;
    if let Value::Object(o) = value {
        stripped |= o.remove("status").is_some();
        if let Some(Value::Object(meta)) = o.get_mut("metadata") {
            for field in SERVED_METADATA {
                stripped |= meta.remove(field).is_some();
            }
        }
    }
    stripped
}

/// The documents of the caller's files, each decoded on its own so that a mistake is
/// located in the caller's file; `Err` holds every problem as `FILE:LINE:COLUMN`.
pub fn incoming(files: &[(PathBuf, Vec<u8>)]) -> Result<Vec<Incoming>, Vec<String>> {
    let mut out: Vec<Incoming> = Vec::new();
    let mut problems = Vec::new();
    for (path, bytes) in files {
        let file: Arc<Path> = Arc::from(path.as_path());
        let docs = match parse_file(&file, bytes) {
            Ok(docs) => docs,
            Err(diags) => {
                problems.extend(diags.iter().map(ToString::to_string));
                continue;
            }
        };
        let texts = yaml_texts(path, bytes, &docs);
        for (i, mut doc) in docs.into_iter().enumerate() {
            let stripped = strip_served(&mut doc.value);
            if let Err(diags) = racklet_model::resource::decode(&doc) {
                problems.extend(diags.iter().map(ToString::to_string));
                continue;
            }
            let Some(id) = ResourceId::of(&doc.value) else {
                continue;
            };
            if out.iter().any(|o| o.id == id) {
                problems.push(
                    doc.diag_at_key(
                        "/metadata/name",
                        format!("{id} is given twice; give each resource once"),
                    )
                    .to_string(),
                );
                continue;
            }
            let text = if stripped {
                None
            } else {
                texts.as_ref().map(|t| t[i].clone())
            };
            out.push(Incoming {
                id,
                file: path.clone(),
                normal: normal(&doc),
                value: doc.value,
                text,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A YAML file cut into pieces at its `---` lines: each piece is kept as text; the ones
/// that hold a document know which.
#[derive(Debug, Clone)]
struct Piece {
    text: String,
    doc: Option<usize>,
}

/// True for a YAML document marker line (`---`, alone or followed by a space).
fn is_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Cuts `text` at marker lines; the pieces joined give `text` back.
fn pieces(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if is_marker(line) {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut() {
            last.push_str(line);
        }
    }
    out
}

/// 1-based line where each piece starts.
fn first_lines(pieces: &[String]) -> Vec<u32> {
    let mut line = 1u32;
    pieces
        .iter()
        .map(|p| {
            let start = line;
            line += u32::try_from(p.matches('\n').count()).unwrap_or(0);
            start
        })
        .collect()
}

/// The pieces of a YAML file with the document each holds, found by the line of each
/// document's first value; None when the documents cannot be told apart by their lines.
fn yaml_pieces(bytes: &[u8], docs: &[Document]) -> Option<Vec<Piece>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let texts = pieces(text);
    let starts = first_lines(&texts);
    let mut out: Vec<Piece> = texts
        .into_iter()
        .map(|text| Piece { text, doc: None })
        .collect();
    for (i, doc) in docs.iter().enumerate() {
        let line = doc.spans.value("").line;
        let at = starts.iter().rposition(|s| *s <= line)?;
        if out[at].doc.is_some() {
            return None;
        }
        out[at].doc = Some(i);
    }
    Some(out)
}

/// The YAML text of each document of a YAML file (without its marker line), if the file
/// can be cut into them.
fn yaml_texts(path: &Path, bytes: &[u8], docs: &[Document]) -> Option<Vec<String>> {
    if is_json(path) {
        return None;
    }
    let pieces = yaml_pieces(bytes, docs)?;
    let mut texts = vec![String::new(); docs.len()];
    for p in pieces {
        if let Some(i) = p.doc {
            texts[i] = body(&p.text);
        }
    }
    Some(texts)
}

/// Bytes at the start of a piece that belong to no document: its `---` line (when nothing
/// but a comment follows the marker) and the comment and blank lines before the document.
/// They stay when the document is replaced or removed.
fn lead_len(piece: &str) -> usize {
    let mut len = 0;
    for (i, line) in piece.split_inclusive('\n').enumerate() {
        let t = line.trim();
        let plain_marker = i == 0
            && is_marker(line)
            && (line[3..].trim().is_empty() || line[3..].trim().starts_with('#'));
        if plain_marker || t.is_empty() || t.starts_with('#') {
            len += line.len();
        } else {
            break;
        }
    }
    len
}

/// A piece's document text without its `---` line (kept when it holds content).
fn body(piece: &str) -> String {
    let Some(first) = piece.split_inclusive('\n').next() else {
        return String::new();
    };
    if !is_marker(first) {
        return piece.to_string();
    }
    let inline = first[3..].trim();
    let rest = &piece[first.len()..];
    if inline.is_empty() || inline.starts_with('#') {
        rest.to_string()
    } else {
        format!("{inline}\n{rest}")
    }
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// One manifest file of the revision being edited.
#[derive(Debug, Clone)]
struct FileDocs {
    path: PathBuf,
    /// Documents in file order.
    docs: Vec<Doc>,
    /// YAML files that could be cut into pieces; None for JSON and for YAML that is
    /// written again from its values.
    pieces: Option<Vec<Piece>>,
    /// A top-level JSON array (written back as one).
    json_array: bool,
    changed: bool,
    /// Bytes as read, for files nothing was done to.
    original: Vec<u8>,
}

impl FileDocs {
    fn render(&self) -> Option<Vec<u8>> {
        let live: Vec<&Value> = self.docs.iter().map(|d| &d.raw).collect();
        if live.iter().all(|v| v.is_null()) {
            return None;
        }
        if is_json(&self.path) {
            let values: Vec<&Value> = live.into_iter().filter(|v| !v.is_null()).collect();
            let text = if values.len() == 1 && !self.json_array {
                serde_json::to_string_pretty(values[0])
            } else {
                serde_json::to_string_pretty(&values)
            };
            return text.ok().map(|t| with_newline(t).into_bytes());
        }
        match &self.pieces {
            Some(pieces) => Some(
                pieces
                    .iter()
                    .map(|p| p.text.as_str())
                    .collect::<String>()
                    .into_bytes(),
            ),
            None => {
                let docs: Vec<String> = live
                    .into_iter()
                    .filter(|v| !v.is_null())
                    .map(racklet_model::emit::yaml)
                    .collect();
                Some(docs.join("---\n").into_bytes())
            }
        }
    }
}

/// The manifest files of a revision, edited resource by resource.
#[derive(Debug, Clone)]
pub struct Tree {
    files: Vec<FileDocs>,
    /// Files that are not manifests or do not parse: carried along untouched.
    others: Files,
}

impl Tree {
    pub fn read(files: &Files) -> Tree {
        let mut tree = Tree {
            files: Vec::new(),
            others: Vec::new(),
        };
        for (path, bytes) in files {
            let manifest = racklet_model::is_manifest(path);
            let file: Arc<Path> = Arc::from(path.as_path());
            let docs = match parse_file(&file, bytes) {
                Ok(docs) if manifest => docs,
                _ => {
                    tree.others.push((path.clone(), bytes.clone()));
                    continue;
                }
            };
            let pieces = if is_json(path) {
                None
            } else {
                yaml_pieces(bytes, &docs)
            };
            let json_array = String::from_utf8_lossy(bytes).trim_start().starts_with('[');
            tree.files.push(FileDocs {
                path: path.clone(),
                docs: docs.iter().map(Doc::of).collect(),
                pieces,
                json_array,
                changed: false,
                original: bytes.clone(),
            });
        }
        tree
    }

    /// Every resource of the revision, in file order.
    pub fn ids(&self) -> Vec<ResourceId> {
        self.files
            .iter()
            .flat_map(|f| f.docs.iter().filter_map(|d| d.id.clone()))
            .collect()
    }

    /// The value of a resource with its kind's defaults filled in, if the revision has it.
    pub fn get(&self, id: &ResourceId) -> Option<&Value> {
        self.files
            .iter()
            .flat_map(|f| &f.docs)
            .find(|d| d.id.as_ref() == Some(id))
            .map(|d| &d.normal)
    }

    fn find(&self, id: &ResourceId) -> Option<(usize, usize)> {
        self.files.iter().enumerate().find_map(|(fi, f)| {
            f.docs
                .iter()
                .position(|d| d.id.as_ref() == Some(id))
                .map(|di| (fi, di))
        })
    }

    /// Replaces the resource where it is declared, or adds it to `new_file`.
    pub fn upsert(&mut self, doc: &Incoming, new_file: &Path) {
        let yaml_text = |text: &Option<String>, value: &Value| {
            with_newline(
                text.clone()
                    .unwrap_or_else(|| racklet_model::emit::yaml(value)),
            )
        };
        if let Some((fi, di)) = self.find(&doc.id) {
            let file = &mut self.files[fi];
            if file.docs[di].normal == doc.normal {
                return;
            }
            file.docs[di].raw = doc.value.clone();
            file.docs[di].normal = doc.normal.clone();
            file.changed = true;
            if let Some(piece) = file
                .pieces
                .as_mut()
                .and_then(|p| p.iter_mut().find(|p| p.doc == Some(di)))
            {
                // The comments before the document stay; only the document changes.
                let head = piece.text[..lead_len(&piece.text)].to_string();
                let marker_in_head = head.lines().next().is_some_and(is_marker);
                let marker = is_marker(piece.text.lines().next().unwrap_or(""));
                let text = yaml_text(&doc.text, &doc.value);
                piece.text = if marker && !marker_in_head {
                    format!("---\n{text}")
                } else {
                    format!("{head}{text}")
                };
            }
            return;
        }
        let fi = match self.files.iter().position(|f| f.path == new_file) {
            Some(fi) => fi,
            None => {
                self.files.push(FileDocs {
                    path: new_file.to_path_buf(),
                    docs: Vec::new(),
                    pieces: Some(Vec::new()),
                    json_array: false,
                    changed: true,
                    original: Vec::new(),
                });
                self.files.len() - 1
            }
        };
        let file = &mut self.files[fi];
        file.changed = true;
        file.docs.push(Doc {
            id: Some(doc.id.clone()),
            raw: doc.value.clone(),
            normal: doc.normal.clone(),
        });
        let index = file.docs.len() - 1;
        if let Some(pieces) = file.pieces.as_mut() {
            let has_docs = pieces.iter().any(|p| p.doc.is_some());
            if let Some(last) = pieces.last_mut() {
                if !last.text.is_empty() && !last.text.ends_with('\n') {
                    last.text.push('\n');
                }
            }
            let text = yaml_text(&doc.text, &doc.value);
            pieces.push(Piece {
                text: if has_docs {
                    format!("---\n{text}")
                } else {
                    text
                },
                doc: Some(index),
            });
        }
    }

    /// Removes the resource; false when the revision does not have it.
    pub fn remove(&mut self, id: &ResourceId) -> bool {
        let Some((fi, di)) = self.find(id) else {
            return false;
        };
        let file = &mut self.files[fi];
        file.changed = true;
        // Indexes stay stable: the document becomes null and is not written.
        file.docs[di] = Doc::removed();
        if let Some(pieces) = file.pieces.as_mut() {
            // Comments before the document stay (they may speak for the whole file).
            for p in pieces.iter_mut().filter(|p| p.doc == Some(di)) {
                let head = p.text[..lead_len(&p.text)].to_string();
                let has_comment = head.lines().any(|l| l.trim_start().starts_with('#'));
                p.text = if has_comment { head } else { String::new() };
                p.doc = None;
            }
            pieces.retain(|p| p.doc.is_some() || !p.text.is_empty());
        }
        true
    }

    /// Every file of the revision as it is now.
    pub fn files(&self) -> Files {
        let mut out = self.others.clone();
        for f in &self.files {
            if !f.changed {
                out.push((f.path.clone(), f.original.clone()));
            } else if let Some(bytes) = f.render() {
                out.push((f.path.clone(), bytes));
            }
        }
        out.sort();
        out
    }

    /// The files that changed: new bytes, or None for a file removed.
    pub fn touched(&self) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        self.files
            .iter()
            .filter(|f| f.changed)
            .map(|f| (f.path.clone(), f.render()))
            .collect()
    }
}

/// What changes between two revisions, one line per resource added or removed and one
/// per field changed: `+ ComputeUnit/node-8`, `~ ComputeUnit/node-6: spec.powerState: Off -> On`,
/// `- ComputeUnit/node-9`.
pub fn diff(before: &Tree, after: &Tree) -> Vec<String> {
    const MOST_FIELDS: usize = 12;
    let mut out = Vec::new();
    let (old, new) = (before.ids(), after.ids());
    for id in &new {
        let Some(now) = after.get(id) else { continue };
        match before.get(id) {
            None => out.push(format!("+ {id}{}", summary(id, now))),
            Some(was) if was != now => {
                let mut fields = Vec::new();
                field_changes("", was, now, &mut fields);
                let more = fields.len().saturating_sub(MOST_FIELDS);
                for f in fields.into_iter().take(MOST_FIELDS) {
                    out.push(format!("~ {id}: {f}"));
                }
                if more > 0 {
                    out.push(format!("~ {id}: … and {more} more field(s)"));
                }
            }
            Some(_) => {}
        }
    }
    for id in old.iter().filter(|id| !new.contains(id)) {
        out.push(format!("- {id}"));
    }
    out
}

/// A few words on a new compute unit: where it goes and its power.
fn summary(id: &ResourceId, value: &Value) -> String {
    if id.kind != "ComputeUnit" {
        return String::new();
    }
    let text = |p: &str| value.pointer(p).map(scalar).unwrap_or_default();
    format!(
        ": tray {} of {}, power {}",
        text("/spec/tray"),
        text("/spec/chassis"),
        text("/spec/powerState")
    )
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `path: old -> new` for every leaf that differs (a missing side reads `(none)`).
fn field_changes(path: &str, was: &Value, now: &Value, out: &mut Vec<String>) {
    match (was, now) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let none = Value::Null;
                let (x, y) = (a.get(k).unwrap_or(&none), b.get(k).unwrap_or(&none));
                if x != y {
                    field_changes(&join(path, k), x, y, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    field_changes(&format!("{path}[{i}]"), x, y, out);
                }
            }
        }
        (x, y) => {
            let show = |v: &Value| match v {
                Value::Object(_) | Value::Array(_) => v.to_string(),
                v => scalar(v),
            };
            out.push(format!("{path}: {} -> {}", show(x), show(y)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "# the rack's nodes\napiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-1}\nspec: {chassis: chassis-1, tray: 1, board: rpi4b, powerState: On}\n---\n# node two keeps its comment\napiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-2}\nspec: {chassis: chassis-1, tray: 2, board: rpi4b, powerState: Off}\n";

    fn tree(files: &[(&str, &str)]) -> Tree {
        Tree::read(
            &files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec()))
                .collect(),
        )
    }

    fn one(path: &str, text: &str) -> Vec<Incoming> {
        incoming(&[(PathBuf::from(path), text.as_bytes().to_vec())]).expect("valid")
    }

    #[test]
    fn an_update_changes_only_its_own_document_wherever_it_lives() {
        let before = tree(&[("nodes.yaml", NODES), ("notes.txt", "hello")]);
        let mut after = before.clone();
        let doc = one(
            "mine.yaml",
            "apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-2}\nspec: {chassis: chassis-1, tray: 2, board: rpi5, powerState: On}\n",
        );
        after.upsert(&doc[0], Path::new("mine.yaml"));
        let touched = after.touched();
        assert_eq!(touched.len(), 1, "{touched:?}");
        let (path, bytes) = &touched[0];
        assert_eq!(path, Path::new("nodes.yaml"));
        let text = String::from_utf8(bytes.clone().expect("kept")).expect("utf-8");
        assert!(text.starts_with("# the rack's nodes\n"), "{text}");
        assert!(text.contains("# node two keeps its comment\n"), "{text}");
        assert!(text.contains("{name: node-1}"), "{text}");
        assert!(text.contains("board: rpi5, powerState: On"), "{text}");
        assert_eq!(
            diff(&before, &after),
            vec![
                "~ ComputeUnit/node-2: spec.board: rpi4b -> rpi5",
                "~ ComputeUnit/node-2: spec.powerState: Off -> On"
            ]
        );
        assert!(after
            .files()
            .iter()
            .any(|(p, _)| p == Path::new("notes.txt")));
    }

    #[test]
    fn new_resources_go_to_the_named_file_and_removal_drops_empty_files() {
        let before = tree(&[("nodes.yaml", NODES)]);
        let mut after = before.clone();
        let doc = one(
            "more.yaml",
            "apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata:\n  name: node-3\n  labels: {role: gpu}\nspec: {chassis: chassis-1, tray: 3, board: rpi4b, powerState: On}\n",
        );
        after.upsert(&doc[0], Path::new("more.yaml"));
        assert!(after.remove(&doc[0].id.clone()));
        assert!(after.touched().iter().all(|(_, b)| b.is_none()));
        after.upsert(&doc[0], Path::new("more.yaml"));
        assert_eq!(
            diff(&before, &after),
            vec!["+ ComputeUnit/node-3: tray 3 of chassis-1, power On"]
        );
        let id = ResourceId {
            kind: "ComputeUnit".into(),
            name: "node-1".into(),
        };
        assert!(after.remove(&id));
        let files = after.files();
        let nodes = files
            .iter()
            .find(|(p, _)| p == Path::new("nodes.yaml"))
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .expect("kept");
        assert!(!nodes.contains("node-1"), "{nodes}");
        assert!(nodes.starts_with("# the rack's nodes\n"), "{nodes}");
        assert!(nodes.contains("# node two keeps its comment"), "{nodes}");
        assert!(diff(&before, &after).contains(&"- ComputeUnit/node-1".to_string()));
    }

    #[test]
    fn served_fields_are_not_applied_and_duplicates_are_located() {
        let doc = one(
            "n.yaml",
            "apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-1, generation: 4}\nspec: {chassis: chassis-1, tray: 1, board: rpi4b, powerState: On}\nstatus: {sync: Synced}\n",
        );
        assert!(doc[0].value.get("status").is_none());
        assert!(doc[0].value.pointer("/metadata/generation").is_none());
        let twice = format!("{NODES}---\n{}", NODES.split("---\n").nth(1).expect("two"));
        let err = incoming(&[(PathBuf::from("n.yaml"), twice.into_bytes())]).expect_err("refused");
        assert!(
            err.iter()
                .any(|e| e.starts_with("n.yaml:") && e.contains("given twice")),
            "{err:?}"
        );
    }

    #[test]
    fn json_files_are_edited_by_value() {
        let json = r#"[{"apiVersion": "racklet.io/v1alpha1", "kind": "ComputeUnit", "metadata": {"name": "node-7"}, "spec": {"chassis": "chassis-1", "tray": 7, "board": "rpi4b", "powerState": "Off"}}]"#;
        let before = tree(&[("n.json", json)]);
        let mut after = before.clone();
        let doc = one("n.json", &json.replace("\"Off\"", "\"On\""));
        after.upsert(&doc[0], Path::new("n.json"));
        let (_, bytes) = &after.touched()[0];
        let v: Value = serde_json::from_slice(bytes.as_ref().expect("kept")).expect("JSON");
        assert_eq!(v[0]["spec"]["powerState"], "On");
    }
}
