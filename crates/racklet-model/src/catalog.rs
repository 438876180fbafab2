//! The built-in board catalog, compiled in from `catalog/boards.yaml`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::manifest::{Entry, ManifestSet};

/// The catalog's source text, with its citations.
pub const SOURCE: &str = include_str!("../catalog/boards.yaml");

/// The path shown in diagnostics that point into the catalog.
pub const PATH: &str = "<built-in>/catalog/boards.yaml";

/// The catalog's resources. The catalog is checked by this crate's tests, so a broken
/// catalog can never ship; should it still fail to decode, it is simply empty.
pub fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let mut set = ManifestSet::default();
        let file: Arc<Path> = Arc::from(Path::new(PATH));
        let diags = set.add_source(&file, SOURCE.as_bytes());
        debug_assert!(diags.is_empty(), "built-in catalog: {diags:?}");
        set.entries
            .into_iter()
            .map(|mut e| {
                e.builtin = true;
                e
            })
            .collect()
    })
}
