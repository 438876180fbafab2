//! Behaviour of manifest loading and validation beyond the malformed corpus.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use racklet_model::chassis::Rail;
use racklet_model::source::{MAX_DEPTH, MAX_FILE_BYTES};
use racklet_model::{AnyResource, Kind, ManifestSet};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn load_text(name: &str, text: &[u8]) -> (ManifestSet, Vec<String>) {
    let mut set = ManifestSet::with_catalog();
    let file: Arc<Path> = Arc::from(Path::new(name));
    let mut diags = set.add_source(&file, text);
    diags.extend(racklet_model::validate::validate(&set));
    diags.sort();
    (set, diags.iter().map(ToString::to_string).collect())
}

#[test]
fn examples_validate_cleanly() {
    let (set, diags) = ManifestSet::load(&[examples()]);
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(set.racks().count(), 1);
    assert_eq!(set.chassis().count(), 1);
    assert_eq!(set.compute_units().count(), 7);
}

#[test]
fn builtin_catalog_has_every_board_the_issue_names() {
    let set = ManifestSet::with_catalog();
    let mut names: Vec<&str> = set.boards().map(|(_, b)| b.name()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cm4-carrier",
            "odroid-c4",
            "rock5b",
            "rpi3bplus",
            "rpi4b",
            "rpi5"
        ]
    );
    for (_, b) in set.boards() {
        let p = &b.spec.power;
        assert!(
            p.off_watts <= p.idle_watts && p.idle_watts <= p.load_watts,
            "{}",
            b.name()
        );
        assert!(
            b.spec.thermal.throttle_celsius < b.spec.thermal.limit_celsius,
            "{}",
            b.name()
        );
    }
}

#[test]
fn catalog_cites_a_source_for_every_figure() {
    let numeric = regex_like_numeric_lines(racklet_model::catalog::SOURCE);
    for line in numeric {
        assert!(
            line.contains('#'),
            "catalog figure without a cited source: {line}"
        );
    }
}

/// Lines of the catalog that carry a number in `spec` (not the header comments).
fn regex_like_numeric_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| {
            l.contains(':')
                && l.split(':')
                    .nth(1)
                    .is_some_and(|v| v.trim().starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect()
}

#[test]
fn json_array_of_resources_is_read_as_documents() {
    let text = br#"[
  {"apiVersion": "racklet.io/v1alpha1", "kind": "Rack", "metadata": {"name": "r1"}, "spec": {"heightU": 6}},
  {"apiVersion": "racklet.io/v1alpha1", "kind": "Rack", "metadata": {"name": "r2"}, "spec": {"heightU": 4}}
]"#;
    let (set, diags) = load_text("racks.json", text);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(set.racks().count(), 2);
}

#[test]
fn yaml_anchors_and_aliases_are_expanded() {
    let text = b"apiVersion: racklet.io/v1alpha1\nkind: Rack\nmetadata: {name: r1, labels: &l {team: infra}}\nspec: &s {heightU: 6}\n---\napiVersion: racklet.io/v1alpha1\nkind: Rack\nmetadata: {name: r2, labels: {team: infra}}\nspec: {heightU: 6}\n---\napiVersion: racklet.io/v1alpha1\nkind: Rack\nmetadata: {name: r3, labels: &l2 {team: ops}, annotations: *l2}\nspec: {heightU: 4}\n";
    let (set, diags) = load_text("a.yaml", text);
    assert!(diags.is_empty(), "{diags:?}");
    let r3 = set
        .racks()
        .map(|(_, r)| r)
        .find(|r| r.name() == "r3")
        .expect("r3");
    assert_eq!(
        r3.metadata.annotations, r3.metadata.labels,
        "the alias expands to the anchored mapping"
    );
    assert_eq!(r3.metadata.annotations["team"], "ops");
}

#[test]
fn file_over_the_size_limit_is_refused_before_parsing() {
    let big = vec![b'#'; MAX_FILE_BYTES + 1];
    let (_, diags) = load_text("big.yaml", &big);
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0].starts_with("big.yaml:1:1: file is"),
        "{}",
        diags[0]
    );
    assert!(diags[0].contains("larger than the"), "{}", diags[0]);
}

#[test]
fn nesting_limit_applies_to_flow_and_block_styles() {
    let mut block = String::from("a:\n");
    for depth in 1..=MAX_DEPTH + 1 {
        block.push_str(&"  ".repeat(depth));
        block.push_str("a:\n");
    }
    let (_, diags) = load_text("deep.yaml", block.as_bytes());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].contains("nested deeper than 64 levels"),
        "{}",
        diags[0]
    );
}

#[test]
fn ten_thousand_documents_load_and_validate() {
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!(
            "---\napiVersion: racklet.io/v1alpha1\nkind: Rack\nmetadata: {{name: r{i}}}\nspec: {{heightU: 6}}\n"
        ));
    }
    let (set, diags) = load_text("many.yaml", text.as_bytes());
    assert!(diags.is_empty(), "{:?}", &diags[..diags.len().min(3)]);
    assert_eq!(set.racks().count(), 10_000);
}

#[test]
fn every_problem_in_a_file_is_reported_not_just_the_first() {
    let text = b"apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: n1}\nspec: {chassis: 5, tray: x, board: [], powerState: Maybe, extra: 1}\n";
    let (_, diags) = load_text("multi.yaml", text);
    let schema_problems: Vec<_> = diags
        .iter()
        .filter(|d| d.contains("spec.") || d.contains("unknown field"))
        .collect();
    assert_eq!(schema_problems.len(), 5, "{diags:#?}");
}

#[test]
fn truncated_and_corrupted_examples_never_panic() {
    let text = std::fs::read(examples().join("rack.yaml")).expect("example exists");
    for cut in 0..text.len() {
        let _ = load_text("cut.yaml", &text[..cut]);
        let _ = load_text("cut.json", &text[..cut]);
    }
    // Flip every byte to a few troublesome values.
    for i in (0..text.len()).step_by(3) {
        for b in [0u8, b'\t', b'[', b'{', b'&', b'*', b'!', b'"', 0xFF] {
            let mut t = text.clone();
            t[i] = b;
            let _ = load_text("flip.yaml", &t);
        }
    }
}

#[test]
fn schema_of_every_kind_is_a_json_schema_that_rejects_unknown_fields() {
    for kind in Kind::ALL {
        let schema = kind.schema();
        assert_eq!(schema["title"], kind.as_str());
        assert_eq!(schema["properties"]["kind"]["const"], kind.as_str());
        assert_eq!(schema["additionalProperties"], false, "{kind}");
    }
}

#[test]
fn typed_resources_round_trip_through_json() {
    let (set, _) = ManifestSet::load(&[examples()]);
    for e in set.entries.iter().filter(|e| !e.builtin) {
        let json = serde_json::to_vec(&e.resource.to_json()).expect("serialises");
        let (again, diags) = load_text("rt.json", &json);
        let user: Vec<&AnyResource> = again
            .entries
            .iter()
            .filter(|e| !e.builtin)
            .map(|e| &e.resource)
            .collect();
        // References to other resources are not in this one document: only schema
        // problems would be a round-trip failure.
        assert!(diags.iter().all(|d| !d.contains("expected")), "{diags:?}");
        assert_eq!(user, vec![&e.resource]);
    }
}

#[test]
fn rail_draws_add_boards_fans_bmcs_and_hub() {
    let (set, _) = ManifestSet::load(&[examples()]);
    let draws = racklet_model::validate::rail_draws(&set, "chassis-1");
    // 4 × rpi4b at 6.4 W and 3 × rpi5 at 9.7 W through a 90 % converter, plus 2 fans at 2.4 W.
    let expected_12v = (4.0 * 6.4 + 3.0 * 9.7) / 0.9 + 2.0 * 2.4;
    assert!((draws[&Rail::P12V].0 - expected_12v).abs() < 1e-9);
    assert!((draws[&Rail::P5VSB].0 - 7.0 * 0.5).abs() < 1e-9);
    assert!((draws[&Rail::P5V].0 - 1.0).abs() < 1e-9);
}

#[test]
fn nesting_limit_applies_to_flow_style_too() {
    let text = format!(
        "a: {}{}\n",
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    let (_, diags) = load_text("flow.yaml", text.as_bytes());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].contains("nested deeper than 64 levels"),
        "{}",
        diags[0]
    );
    let json = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let (_, diags) = load_text("deep.json", json.as_bytes());
    assert_eq!(diags.len(), 1, "{diags:?}");
}

#[test]
fn valid_json_that_yaml_cannot_read_is_still_accepted() {
    // A surrogate-pair escape: valid JSON, rejected by YAML's scanner.
    let text = br#"{"apiVersion": "racklet.io/v1alpha1", "kind": "Rack", "metadata": {"name": "r1", "annotations": {"note": "\ud83d\ude00"}}, "spec": {"heightU": 6}}"#;
    let (set, diags) = load_text("emoji.json", text);
    assert!(diags.is_empty(), "{diags:?}");
    let (_, rack) = set.racks().next().expect("rack");
    assert_eq!(rack.metadata.annotations["note"], "\u{1F600}");
}

#[test]
fn json_syntax_error_columns_count_characters() {
    let (_, diags) = load_text("e.json", "{\"a\": \"ééééé\", 1}".as_bytes());
    assert_eq!(
        diags,
        ["e.json:1:16: JSON syntax error: key must be a string"]
    );
}

#[test]
fn large_json_array_of_resources_loads() {
    let mut text = String::from("[");
    for i in 0..40_000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"apiVersion":"racklet.io/v1alpha1","kind":"Rack","metadata":{{"name":"r{i}"}},"spec":{{"heightU":6}}}}"#
        ));
    }
    text.push(']');
    let (set, diags) = load_text("big.json", text.as_bytes());
    assert!(diags.is_empty(), "{:?}", &diags[..diags.len().min(3)]);
    assert_eq!(set.racks().count(), 40_000);
}

#[test]
fn whole_number_written_as_decimal_is_located_and_explained() {
    let text = b"apiVersion: racklet.io/v1alpha1\nkind: Rack\nmetadata: {name: r1}\nspec: {heightU: 2.0}\n";
    let (_, diags) = load_text("f.yaml", text);
    assert_eq!(
        diags,
        ["f.yaml:4:17: `spec.heightU` is the number 2.0, expected a whole number that fits"]
    );
}

#[test]
fn malformed_documents_do_not_cause_follow_on_reference_errors() {
    let dir = examples();
    let mut text = std::fs::read_to_string(dir.join("rack.yaml")).expect("example");
    text = text.replace("heightU: 2\n", "heightU: two\n");
    text.push_str("---\n");
    text.push_str(
        &std::fs::read_to_string(dir.join("compute-units.yaml"))
            .expect("example")
            .replace("role: Rmc", "role: Boss"),
    );
    let (_, diags) = load_text("rack.yaml", text.as_bytes());
    assert_eq!(diags.len(), 2, "only the two real problems: {diags:#?}");
    assert!(diags
        .iter()
        .any(|d| d.contains("`spec.heightU` is the string \"two\"")));
    assert!(diags
        .iter()
        .any(|d| d.contains("`spec.role` is the string \"Boss\"")));
}

#[test]
fn a_yaml_syntax_error_in_one_file_gives_no_follow_on_errors_in_the_others() {
    let mut set = ManifestSet::with_catalog();
    let rack = std::fs::read_to_string(examples().join("rack.yaml")).expect("rack.yaml");
    let broken = rack.replacen("kind: Chassis", "kind: Chassis\n  bad: [unclosed", 1);
    assert_ne!(broken, rack);
    let units = std::fs::read(examples().join("compute-units.yaml")).expect("units");
    let mut diags = set.add_source(&Arc::from(Path::new("rack.yaml")), broken.as_bytes());
    diags.extend(set.add_source(&Arc::from(Path::new("compute-units.yaml")), &units));
    diags.extend(racklet_model::validate::validate(&set));
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    // The one problem, in the file that has it; the untouched file is not blamed for
    // naming a chassis that the broken file declares.
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].starts_with("rack.yaml:") && text[0].contains("YAML syntax error"),
        "{text:#?}"
    );
}
