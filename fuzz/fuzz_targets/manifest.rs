//! Fuzzes manifest parsing, schema checks and semantic validation: any bytes, read as
//! YAML or JSON, must give diagnostics or resources, never a panic or a hang.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use racklet_model::ManifestSet;

fuzz_target!(|data: &[u8]| {
    // Every input is read both ways: as YAML and as JSON.
    for name in ["fuzz.yaml", "fuzz.json"] {
        let mut set = ManifestSet::with_catalog();
        let file: Arc<Path> = Arc::from(Path::new(name));
        let diags = set.add_source(&file, data);
        let problems = racklet_model::validate::validate(&set);
        for d in diags.iter().chain(&problems) {
            assert!(d.position.line >= 1 && d.position.column >= 1);
            let _ = d.to_string();
        }
    }
});
