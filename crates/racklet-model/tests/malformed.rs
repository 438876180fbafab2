//! The malformed-manifest corpus (`tests/malformed/` at the workspace root): every file
//! must give exactly the errors in its `.expected` file, and none may validate or panic.
//! `RACKLET_BLESS=1 cargo test -p racklet-model --test malformed` rewrites the expected
//! files; review the diff before committing it.

use std::path::{Path, PathBuf};

use racklet_model::ManifestSet;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/malformed")
}

fn render(path: &Path) -> String {
    let (_, diags) = ManifestSet::load(&[path.to_path_buf()]);
    diags
        .iter()
        .map(|d| {
            let name = d
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!(
                "{name}:{}:{}: {}\n",
                d.position.line, d.position.column, d.message
            )
        })
        .collect()
}

#[test]
fn malformed_corpus_gives_its_expected_errors() {
    let bless = std::env::var_os("RACKLET_BLESS").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e != "expected"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 30,
        "the corpus needs at least 30 cases, has {}",
        inputs.len()
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let got = render(input);
        assert!(
            !got.is_empty(),
            "{} validated, but every corpus case is malformed",
            input.display()
        );
        let expected_path = input.with_extension(format!(
            "{}.expected",
            input
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default()
        ));
        if bless {
            std::fs::write(&expected_path, &got).expect("write expected file");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                input.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
