//! Writing JSON values as block-style YAML text, the way `kubectl get -o yaml` prints
//! objects: for the CLI's output and for documents the control plane writes into a
//! repository (they must read back as the same value).

use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter};

/// `value` as one YAML document, without the leading `---`, ending in a newline.
pub fn yaml(value: &Value) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    if let Err(e) = emitter.dump(&to_yaml(value)) {
        // Writing to a String cannot fail; say so rather than print half a document.
        return format!("# cannot write this value as YAML: {e}\n");
    }
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    let body = body.strip_prefix("--- ").unwrap_or(body);
    format!("{body}\n")
}

fn to_yaml(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(to_yaml).collect()),
        Value::Object(o) => Yaml::Hash(
            o.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn written_yaml_reads_back_as_the_same_value() {
        let value = serde_json::json!({
            "apiVersion": "racklet.io/v1alpha1",
            "kind": "ComputeUnit",
            "metadata": {"name": "node-6", "labels": {"role": "gpu", "odd": "yes: no # x"}},
            "spec": {"tray": 6, "powerState": "On", "ratio": 0.5, "list": [1, "On", null, true]},
        });
        let text = yaml(&value);
        assert!(!text.starts_with("---"), "{text}");
        let file: Arc<Path> = Arc::from(Path::new("x.yaml"));
        let docs = crate::source::parse_file(&file, text.as_bytes()).expect("parses");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].value, value, "{text}");
    }
}
