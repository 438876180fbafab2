//! Reading manifest files into JSON values while remembering where every value came from.
//!
//! YAML (and JSON, which the same parser reads) is parsed event by event with
//! `yaml-rust2`, so that each value's position can be kept in a [`Spans`] index keyed by
//! JSON pointer. Later stages report problems by pointer and get `FILE:LINE:COLUMN` back.
//! Untrusted input is bounded: file size, nesting depth and node count (which also
//! defuses alias "billion laughs" expansion) all have limits with their own errors.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

use crate::diag::{Diagnostic, Position};

/// Largest manifest file read, in bytes.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most values (after alias expansion) accepted from one file.
pub const MAX_NODES: usize = 2_000_000;

/// Where each value of a document came from, by JSON pointer (`""` is the root).
#[derive(Debug, Default, Clone)]
pub struct Spans {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl Spans {
    /// Position of the value at `pointer`, or of its nearest ancestor that has one.
    pub fn value(&self, pointer: &str) -> Position {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Position::START,
            }
        }
    }

    /// Position of the mapping key that holds the value at `pointer` (falls back to the value).
    pub fn key(&self, pointer: &str) -> Position {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

/// One document of a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: Arc<Path>,
    /// 0-based index of the document in its file.
    pub index: usize,
    pub value: Value,
    pub spans: Spans,
}

impl Document {
    pub fn diag_at(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.file, self.spans.value(pointer), message)
    }

    pub fn diag_at_key(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.file, self.spans.key(pointer), message)
    }
}

/// Escapes one JSON-pointer segment (RFC 6901).
pub fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn pos(mark: &Marker) -> Position {
    // yaml-rust2 lines are 1-based and columns 0-based.
    Position::new(
        u32::try_from(mark.line()).unwrap_or(u32::MAX),
        u32::try_from(mark.col() + 1).unwrap_or(u32::MAX),
    )
}

/// Position of byte offset `offset` in `bytes`, counting columns in characters.
fn position_of_byte(bytes: &[u8], offset: usize) -> Position {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Position::new(
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Parses the bytes of one manifest file into its documents.
///
/// On any error the file contributes no documents (a half-read file would only produce
/// misleading follow-up errors) and the diagnostics say what is wrong.
pub fn parse_file(file: &Arc<Path>, bytes: &[u8]) -> Result<Vec<Document>, Vec<Diagnostic>> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(vec![Diagnostic::new(
            file,
            Position::START,
            format!(
                "file is {} bytes, larger than the {} byte limit for a manifest; split it into several files",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        )]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            return Err(vec![Diagnostic::new(
                file,
                position_of_byte(bytes, at),
                format!(
                    "file is not valid UTF-8 (byte 0x{:02X}); manifests must be UTF-8 text",
                    bytes[at]
                ),
            )]);
        }
    };
    // YAML and JSON text carry no control characters but tab and line ends; a parser
    // would stop at a NUL without a word, dropping the rest of the document.
    let mut controls = text
        .char_indices()
        .filter(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{85}'));
    if let Some((at, c)) = controls.next() {
        let more = controls.count();
        let others = match more {
            0 => String::new(),
            1 => " (and 1 more in the file)".to_string(),
            n => format!(" (and {n} more in the file)"),
        };
        return Err(vec![Diagnostic::new(
            file,
            position_of_byte(bytes, at),
            format!(
                "control character U+{:04X} is not allowed in a manifest{others}; manifests are text: remove it",
                u32::from(c)
            ),
        )]);
    }
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        return parse_json(file, text);
    }
    Builder::new(file).run(text)
}

/// JSON files: values from JSON's own parser (exact syntax errors, every valid escape),
/// positions from the YAML event stream over the same text when it can read it. A
/// top-level array holds one resource per element.
fn parse_json(file: &Arc<Path>, text: &str) -> Result<Vec<Document>, Vec<Diagnostic>> {
    let mut values = Vec::new();
    for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        match v {
            Ok(v) => values.push(v),
            Err(e) => {
                let at = position_of_line_column(text.as_bytes(), e.line(), e.column());
                let message = e.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m);
                return Err(vec![Diagnostic::new(
                    file,
                    at,
                    format!("JSON syntax error: {message}"),
                )]);
            }
        }
    }
    // The YAML pass enforces the depth, size and duplicate-key rules with positions; a
    // YAML *syntax* error on valid JSON (YAML reads a little less) only costs positions.
    let spans: Vec<Spans> = match Builder::new(file).run(text) {
        Ok(docs) if docs.len() == values.len() => docs.into_iter().map(|d| d.spans).collect(),
        Ok(_) => Vec::new(),
        Err(diags)
            if diags
                .iter()
                .all(|d| d.message.starts_with("YAML syntax error")) =>
        {
            if values.iter().any(|v| depth(v) > MAX_DEPTH) {
                return Err(vec![Diagnostic::new(
                    file,
                    Position::START,
                    format!("document is nested deeper than {MAX_DEPTH} levels"),
                )]);
            }
            Vec::new()
        }
        Err(diags) => return Err(diags),
    };
    let mut spans = spans.into_iter();
    let docs: Vec<Document> = values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(index, value)| Document {
            file: Arc::clone(file),
            index,
            value,
            spans: spans.next().unwrap_or_default(),
        })
        .collect();
    if let [doc] = docs.as_slice() {
        if doc.value.is_array() {
            return Ok(docs.into_iter().flat_map(split_array).collect());
        }
    }
    Ok(docs)
}

fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

/// Converts a 1-based line and byte column (as serde_json reports them) to a position.
fn position_of_line_column(bytes: &[u8], line: usize, column: usize) -> Position {
    let line_start = if line <= 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(bytes.len(), |(i, _)| i + 1)
    };
    position_of_byte(bytes, line_start + column.saturating_sub(1))
}

fn split_array(doc: Document) -> Vec<Document> {
    let Value::Array(items) = doc.value else {
        return vec![doc];
    };
    // Bucket every span by its element index in one pass.
    type Bucket = (HashMap<String, Position>, HashMap<String, Position>);
    let mut buckets: Vec<Bucket> = vec![Default::default(); items.len()];
    let split = |pointer: &str| -> Option<(usize, String)> {
        let rest = pointer.strip_prefix('/')?;
        let (index, tail) = rest.split_once('/').map_or((rest, ""), |(i, t)| (i, t));
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!("/{tail}")
        };
        Some((index.parse().ok()?, tail))
    };
    for (pointer, pos) in doc.spans.values {
        if let Some((i, tail)) = split(&pointer) {
            if let Some(b) = buckets.get_mut(i) {
                b.0.insert(tail, pos);
            }
        }
    }
    for (pointer, pos) in doc.spans.keys {
        if let Some((i, tail)) = split(&pointer) {
            if let Some(b) = buckets.get_mut(i) {
                b.1.insert(tail, pos);
            }
        }
    }
    items
        .into_iter()
        .zip(buckets)
        .enumerate()
        .map(|(index, (value, (values, keys)))| Document {
            file: Arc::clone(&doc.file),
            index,
            value,
            spans: Spans { values, keys },
        })
        .collect()
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        key: Option<(String, Position)>,
        anchor: usize,
    },
}

struct Builder<'f> {
    file: &'f Arc<Path>,
    stack: Vec<Frame>,
    /// JSON pointer of the value being built, one entry per open container plus the root.
    pointer: String,
    pointer_lens: Vec<usize>,
    anchors: HashMap<usize, Value>,
    nodes: usize,
    spans: Spans,
    docs: Vec<Document>,
}

fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

fn scalar_value(text: String, style: TScalarStyle, tagged_str: bool) -> Result<Value, String> {
    if style != TScalarStyle::Plain || tagged_str {
        return Ok(Value::String(text));
    }
    Ok(match Yaml::from_str(&text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => {
            let f: f64 = match r.as_str() {
                ".inf" | ".Inf" | ".INF" | "+.inf" | "-.inf" | "-.Inf" | "-.INF" | ".nan"
                | ".NaN" | ".NAN" => {
                    return Err(format!("`{r}` is not a finite number; use a plain decimal"))
                }
                s => s.parse().map_err(|_| format!("`{r}` is not a number"))?,
            };
            Value::Number(
                Number::from_f64(f).ok_or_else(|| format!("`{r}` is not a finite number"))?,
            )
        }
        _ => Value::String(text),
    })
}

impl<'f> Builder<'f> {
    fn new(file: &'f Arc<Path>) -> Self {
        Builder {
            file,
            stack: Vec::new(),
            pointer: String::new(),
            pointer_lens: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            spans: Spans::default(),
            docs: Vec::new(),
        }
    }

    fn err(&self, at: Position, message: impl Into<String>) -> Vec<Diagnostic> {
        vec![Diagnostic::new(self.file, at, message)]
    }

    fn run(mut self, text: &str) -> Result<Vec<Document>, Vec<Diagnostic>> {
        let mut parser = Parser::new_from_str(text);
        let mut doc_start = Position::START;
        loop {
            let (event, mark) = match parser.next_token() {
                Ok(t) => t,
                Err(e) => {
                    return Err(
                        self.err(pos(e.marker()), format!("YAML syntax error: {}", e.info()))
                    )
                }
            };
            let at = pos(&mark);
            match event {
                Event::StreamEnd => break,
                Event::StreamStart | Event::Nothing => {}
                Event::DocumentStart => {
                    self.spans = Spans::default();
                    self.anchors.clear();
                    doc_start = at;
                }
                Event::DocumentEnd => {}
                Event::Alias(id) => {
                    let Some(v) = self.anchors.get(&id).cloned() else {
                        return Err(self.err(at, "YAML alias refers to an unknown anchor"));
                    };
                    self.nodes += count_nodes(&v);
                    self.check_nodes(at)?;
                    self.begin_value(at)?;
                    self.finish_value(v, 0)?;
                }
                Event::Scalar(text, style, anchor, tag) => {
                    self.nodes += 1;
                    self.check_nodes(at)?;
                    let tagged_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                    // A mapping key: remember it, with the key's own position.
                    if let Some(Frame::Map {
                        key: key @ None,
                        map,
                        ..
                    }) = self.stack.last_mut()
                    {
                        let first = map.is_empty();
                        *key = Some((text, at));
                        // yaml-rust2 marks a block mapping after its first key; the first
                        // key is where people see the mapping start.
                        if first {
                            if let Some(p) = self.spans.values.get_mut(&self.pointer) {
                                *p = (*p).min(at);
                            }
                        }
                        continue;
                    }
                    self.begin_value(at)?;
                    let v = scalar_value(text, style, tagged_str).map_err(|m| self.err(at, m))?;
                    self.finish_value(v, anchor)?;
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    self.nodes += 1;
                    self.check_nodes(at)?;
                    if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
                        return Err(self.err(
                            at,
                            "mapping keys must be plain strings, not mappings or sequences",
                        ));
                    }
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(self.err(
                            at,
                            format!("document is nested deeper than {MAX_DEPTH} levels"),
                        ));
                    }
                    // A document's root is reported where the document starts.
                    let at = if self.stack.is_empty() { doc_start } else { at };
                    self.begin_value(at)?;
                    self.pointer_lens.push(self.pointer.len());
                    self.stack
                        .push(if matches!(event, Event::MappingStart(..)) {
                            Frame::Map {
                                map: Map::new(),
                                key: None,
                                anchor,
                            }
                        } else {
                            Frame::Seq {
                                items: Vec::new(),
                                anchor,
                            }
                        });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (v, anchor) = match self.stack.pop() {
                        Some(Frame::Seq { items, anchor }) => (Value::Array(items), anchor),
                        Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                        None => return Err(self.err(at, "YAML syntax error: unbalanced document")),
                    };
                    let len = self.pointer_lens.pop().unwrap_or(0);
                    self.pointer.truncate(len);
                    self.finish_value(v, anchor)?;
                }
            }
        }
        Ok(self.docs)
    }

    fn check_nodes(&self, at: Position) -> Result<(), Vec<Diagnostic>> {
        if self.nodes > MAX_NODES {
            return Err(self.err(
                at,
                format!("file holds more than {MAX_NODES} values (after expanding YAML aliases); split it into several files"),
            ));
        }
        Ok(())
    }

    /// Extends the pointer for the value about to start and records its position.
    fn begin_value(&mut self, at: Position) -> Result<(), Vec<Diagnostic>> {
        match self.stack.last() {
            None => self.pointer.clear(),
            Some(Frame::Seq { items, .. }) => {
                let i = items.len();
                self.pointer.push('/');
                self.pointer.push_str(&i.to_string());
            }
            Some(Frame::Map {
                key: Some((k, key_at)),
                map,
                ..
            }) => {
                if map.contains_key(k) {
                    return Err(self.err(*key_at, format!("duplicate key `{k}` in this mapping")));
                }
                let key_at = *key_at;
                let seg = escape_segment(k);
                self.pointer.push('/');
                self.pointer.push_str(&seg);
                self.spans.keys.insert(self.pointer.clone(), key_at);
            }
            Some(Frame::Map { key: None, .. }) => {}
        }
        self.spans.values.insert(self.pointer.clone(), at);
        Ok(())
    }

    /// Attaches a completed value to its parent (or closes the document).
    fn finish_value(&mut self, v: Value, anchor: usize) -> Result<(), Vec<Diagnostic>> {
        if anchor != 0 {
            self.anchors.insert(anchor, v.clone());
        }
        let key_start = self.pointer_lens.last().copied().unwrap_or(0);
        match self.stack.last_mut() {
            None => {
                if !v.is_null() {
                    self.docs.push(Document {
                        file: Arc::clone(self.file),
                        index: self.docs.len(),
                        value: v,
                        spans: std::mem::take(&mut self.spans),
                    });
                }
                self.pointer.clear();
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(v);
                self.pointer.truncate(key_start);
            }
            Some(Frame::Map { map, key, .. }) => {
                if let Some((k, _)) = key.take() {
                    map.insert(k, v);
                }
                self.pointer.truncate(key_start);
            }
        }
        Ok(())
    }
}
