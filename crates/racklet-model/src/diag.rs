//! Diagnostics: one problem in one manifest, located as `FILE:LINE:COLUMN`.
//!
//! Every stage (reading, YAML parsing, schema checks, semantic validation) reports
//! problems as [`Diagnostic`]s and keeps going, so a user sees every problem at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A 1-based line and column in a source file (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };

    pub fn new(line: u32, column: u32) -> Self {
        Position { line, column }
    }
}

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: Arc<Path>,
    pub position: Position,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: &Arc<Path>, position: Position, message: impl Into<String>) -> Self {
        Diagnostic {
            file: Arc::clone(file),
            position,
            message: message.into(),
        }
    }

    /// The file, as given on the command line.
    pub fn path(&self) -> PathBuf {
        self.file.to_path_buf()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.position.line,
            self.position.column,
            self.message
        )
    }
}
