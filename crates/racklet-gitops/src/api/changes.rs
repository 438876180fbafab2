//! The API's changes of desired state, made the only way desired state changes: as a
//! commit to the repository the control plane follows, by the caller as author, followed
//! by a sync. `POST /v1/apply` adds or replaces manifest files (or, as a dry run, only says
//! what they would change); `POST /v1/nodes/{name}/power` edits one compute unit's
//! `powerState`. A change that does not validate is refused whole, with every problem as
//! `FILE:LINE:COLUMN`, and nothing is committed.

use std::path::{Component, Path, PathBuf};

use racklet_client::changes::{ApplyRequest, ChangeResult, PowerRequest};
use racklet_client::DesiredPower;

use crate::desired::{changes, desired_from, Desired};
use crate::local::{commit_as, head_files, Author};

/// Why a change was not made; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the change does not validate; nothing was committed:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error("no ComputeUnit named {0:?} in the repository")]
    NoSuchNode(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the repository failed: {0}")]
    Repository(String),
}

/// The local repository behind a `file://` source; other sources take commits and pushes
/// at their Git server.
pub fn local_repository(url: &str) -> Result<PathBuf, ChangeError> {
    match url.strip_prefix("file://") {
        Some(p) => Ok(PathBuf::from(p)),
        None if !url.contains("://") => Ok(PathBuf::from(url)),
        None => Err(ChangeError::Conflict(format!(
            "the source {url} is not a local repository; commit and push there instead"
        ))),
    }
}

fn author(a: &racklet_client::changes::Author) -> Result<Author, ChangeError> {
    let clean = |s: &str| !s.trim().is_empty() && !s.contains(['<', '>', '\n', '\0']);
    if !clean(&a.name) || !clean(&a.email) {
        return Err(ChangeError::BadRequest(
            "the author needs a name and an email without <, > or line breaks".into(),
        ));
    }
    Ok(Author {
        name: a.name.trim().into(),
        email: a.email.trim().into(),
    })
}

/// A manifest path relative to the source's path: plain components, a manifest extension.
fn manifest_path(path: &str) -> Result<PathBuf, ChangeError> {
    let p = Path::new(path);
    let plain = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    let manifest = matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    );
    if !plain || !manifest {
        return Err(ChangeError::BadRequest(format!(
            "{path:?} is not a manifest path: relative, without `..`, ending in .yaml, .yml or .json"
        )));
    }
    Ok(p.to_path_buf())
}

fn validated(files: &[(PathBuf, Vec<u8>)]) -> Result<Desired, ChangeError> {
    desired_from(files).map_err(ChangeError::Invalid)
}

fn repository_failed(e: crate::git::SourceError) -> ChangeError {
    ChangeError::Repository(e.to_string())
}

fn in_source(sub: &str, path: &Path) -> String {
    let sub = sub.trim_matches('/');
    if sub.is_empty() || sub == "." {
        path.display().to_string()
    } else {
        format!("{sub}/{}", path.display())
    }
}

/// `apply`: validates the repository with the files replaced, then commits them.
pub fn apply(repo: &Path, sub: &str, request: &ApplyRequest) -> Result<ChangeResult, ChangeError> {
    if request.files.is_empty() {
        return Err(ChangeError::BadRequest("no files to apply".into()));
    }
    let author = author(&request.author)?;
    let mut incoming = Vec::new();
    for f in &request.files {
        incoming.push((manifest_path(&f.path)?, f.content.as_bytes().to_vec()));
    }
    let (head, before) = head_files(repo, sub).map_err(repository_failed)?;
    let mut after: Vec<(PathBuf, Vec<u8>)> = before
        .iter()
        .filter(|(p, _)| !incoming.iter().any(|(q, _)| q == p))
        .cloned()
        .collect();
    after.extend(incoming.iter().cloned());
    after.sort();
    let new = validated(&after)?;
    let old = validated(&before).ok();
    let lines = old.map(|o| changes(&o, &new)).unwrap_or_default();
    let names: Vec<String> = incoming
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    let message = request
        .message
        .clone()
        .unwrap_or_else(|| format!("Apply {}", names.join(", ")));
    let unchanged = incoming
        .iter()
        .all(|(p, b)| before.iter().any(|(q, c)| q == p && c == b));
    let mut result = ChangeResult {
        changes: lines,
        commit: None,
        repository: repo.display().to_string(),
        message,
    };
    if request.dry_run || unchanged {
        return Ok(result);
    }
    let files: Vec<(String, Vec<u8>)> = incoming
        .into_iter()
        .map(|(p, b)| (in_source(sub, &p), b))
        .collect();
    let commit = commit_as(repo, &files, &result.message, &author, head.as_deref())
        .map_err(|e| ChangeError::Conflict(e.to_string()))?;
    result.commit = Some(commit);
    Ok(result)
}

/// `power on|off`: edits the `powerState` of compute unit `name` where it is declared.
pub fn set_power(
    repo: &Path,
    sub: &str,
    name: &str,
    request: &PowerRequest,
) -> Result<ChangeResult, ChangeError> {
    let author = author(&request.author)?;
    let power = request.power_state;
    let (head, before) = head_files(repo, sub).map_err(repository_failed)?;
    for (file, bytes) in &before {
        let text = String::from_utf8_lossy(bytes);
        let Some(edited) = edit_power(&text, name, power) else {
            continue;
        };
        let after: Vec<(PathBuf, Vec<u8>)> = before
            .iter()
            .map(|(p, b)| {
                if p == file {
                    (p.clone(), edited.as_bytes().to_vec())
                } else {
                    (p.clone(), b.clone())
                }
            })
            .collect();
        let lines = changes(&validated(&before)?, &validated(&after)?);
        let verb = if power == DesiredPower::On {
            "on"
        } else {
            "off"
        };
        let mut result = ChangeResult {
            changes: lines,
            commit: None,
            repository: repo.display().to_string(),
            message: request
                .message
                .clone()
                .unwrap_or_else(|| format!("Power {name} {verb}")),
        };
        if result.changes.is_empty() {
            return Ok(result);
        }
        let files = [(in_source(sub, file), edited.into_bytes())];
        let commit = commit_as(repo, &files, &result.message, &author, head.as_deref())
            .map_err(|e| ChangeError::Conflict(e.to_string()))?;
        result.commit = Some(commit);
        return Ok(result);
    }
    Err(ChangeError::NoSuchNode(name.into()))
}

/// Sets `powerState` of compute unit `name` in the YAML document that declares it,
/// keeping the rest of the file (comments, layout) as it is.
fn edit_power(text: &str, name: &str, power: DesiredPower) -> Option<String> {
    let mut docs: Vec<String> = text.split("\n---").map(str::to_string).collect();
    let declares = |d: &str| {
        d.contains("kind: ComputeUnit")
            && (d.contains(&format!("name: {name},"))
                || d.contains(&format!("name: {name}}}"))
                || d.lines().any(|l| l.trim() == format!("name: {name}")))
    };
    let doc = docs.iter_mut().find(|d| declares(d))?;
    let at = doc.find("powerState:")?;
    let rest = &doc[at + "powerState:".len()..];
    let value_len = rest.find([',', '}', '\n']).unwrap_or(rest.len());
    *doc = format!(
        "{}powerState: {}{}",
        &doc[..at],
        power.as_str(),
        &rest[value_len..]
    );
    Some(docs.join("\n---"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_edits_only_the_named_unit_in_flow_and_block_style() {
        let flow = "kind: ComputeUnit\nmetadata: {name: node-1}\nspec: {tray: 1, powerState: On}\n---\nkind: ComputeUnit\nmetadata: {name: node-10}\nspec: {tray: 2, powerState: On}\n";
        let out = edit_power(flow, "node-1", DesiredPower::Off).expect("found");
        assert!(out.contains("{tray: 1, powerState: Off}"), "{out}");
        assert!(out.contains("{tray: 2, powerState: On}"), "{out}");
        let block =
            "kind: ComputeUnit\nmetadata:\n  name: node-2\nspec:\n  tray: 2\n  powerState: Off\n";
        let out = edit_power(block, "node-2", DesiredPower::On).expect("found");
        assert!(out.ends_with("  powerState: On\n"), "{out}");
        assert_eq!(edit_power(block, "node-3", DesiredPower::On), None);
    }

    #[test]
    fn manifest_paths_stay_inside_the_source() {
        assert!(manifest_path("nodes.yaml").is_ok());
        assert!(manifest_path("more/nodes.json").is_ok());
        for bad in [
            "../x.yaml",
            "/etc/x.yaml",
            "a/../../x.yaml",
            "notes.txt",
            "",
            "./x.yaml",
        ] {
            assert!(
                matches!(manifest_path(bad), Err(ChangeError::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn authors_cannot_forge_header_lines() {
        let a = |name: &str, email: &str| racklet_client::changes::Author {
            name: name.into(),
            email: email.into(),
        };
        assert!(author(&a("Ada", "ada@example.org")).is_ok());
        assert!(author(&a("Ada\ncommitter x", "ada@example.org")).is_err());
        assert!(author(&a("Ada", "<ada>")).is_err());
        assert!(author(&a(" ", "ada@example.org")).is_err());
    }
}
