//! The service's messages are the DMTF Base registry's, word for word.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::Path;

use racklet_redfish::error::Message;
use serde_json::Value;

fn base_registry() -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/redfish/registries");
    let path = std::fs::read_dir(&dir)
        .expect("../shared/redfish/registries beside the clone")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("Base.1.22"))
        })
        .expect("Base 1.22 registry");
    serde_json::from_slice(&std::fs::read(path).expect("readable")).expect("JSON")
}

#[test]
fn messages_match_the_base_registry() {
    let registry = base_registry();
    let a = || "A".to_string();
    let cases = vec![
        (
            Message::ResourceNotFound {
                kind: a(),
                name: "B".into(),
            },
            vec!["A", "B"],
        ),
        (Message::PropertyUnknown(a()), vec!["A"]),
        (
            Message::PropertyValueTypeError {
                value: a(),
                property: "B".into(),
            },
            vec!["A", "B"],
        ),
        (
            Message::PropertyValueNotInList {
                value: a(),
                property: "B".into(),
            },
            vec!["A", "B"],
        ),
        (Message::MalformedJson, vec![]),
        (Message::InsufficientPrivilege, vec![]),
        (
            Message::ActionParameterMissing {
                action: a(),
                parameter: "B".into(),
            },
            vec!["A", "B"],
        ),
        (
            Message::ActionParameterValueNotInList {
                value: a(),
                parameter: "B".into(),
                action: "C".into(),
            },
            vec!["A", "B", "C"],
        ),
        (Message::PreconditionFailed, vec![]),
        (Message::NoValidSession, vec![]),
        (Message::PayloadTooLarge, vec![]),
        (Message::OperationNotAllowed, vec![]),
        (
            Message::ResourceAlreadyExists {
                kind: a(),
                property: "B".into(),
                value: "C".into(),
            },
            vec!["A", "B", "C"],
        ),
        (Message::CreateFailedMissingReqProperties(a()), vec!["A"]),
        (Message::MissingOrMalformedPart, vec![]),
        (Message::PropertyMissing(a()), vec!["A"]),
        (
            Message::PropertyValueFormatError {
                value: a(),
                property: "B".into(),
            },
            vec!["A", "B"],
        ),
        (Message::ResourceInUse, vec![]),
        (Message::Success, vec![]),
    ];
    for (message, args) in cases {
        let (id, text, severity, resolution) = message.parts();
        let entry = &registry["Messages"][id];
        let mut expected = entry["Message"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} is in the registry"))
            .to_string();
        for (i, arg) in args.iter().enumerate().rev() {
            expected = expected.replace(&format!("%{}", i + 1), arg);
        }
        assert_eq!(text, expected, "{id}");
        assert_eq!(
            severity,
            entry["MessageSeverity"].as_str().unwrap_or_default(),
            "{id}"
        );
        assert_eq!(
            resolution,
            entry["Resolution"].as_str().unwrap_or_default(),
            "{id}"
        );
    }
}

fn registry(prefix: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/redfish/registries");
    let path = std::fs::read_dir(&dir)
        .expect("../shared/redfish/registries beside the clone")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("{prefix} registry"));
    serde_json::from_slice(&std::fs::read(path).expect("readable")).expect("JSON")
}

#[test]
fn task_messages_match_the_update_and_task_event_registries() {
    for (id, text, severity) in racklet_redfish::tasks::MESSAGES {
        let mut parts = id.splitn(4, '.');
        let (name, major, minor, key) = (
            parts.next().expect("registry"),
            parts.next().expect("major"),
            parts.next().expect("minor"),
            parts.next().expect("message"),
        );
        let reg = registry(&format!("{name}.{major}.{minor}."));
        let entry = &reg["Messages"][key];
        assert_eq!(entry["Message"].as_str(), Some(*text), "{id}");
        assert_eq!(entry["MessageSeverity"].as_str(), Some(*severity), "{id}");
        let placeholders = (1..=9).filter(|i| text.contains(&format!("%{i}"))).count();
        assert_eq!(
            entry["NumberOfArgs"].as_u64(),
            Some(placeholders as u64),
            "{id}"
        );
    }
}
