//! The API's changes of desired state, made the only way desired state changes: as a
//! commit to the repository the control plane follows, by the caller as author, followed
//! by a sync. `POST /v1/apply` creates or updates resources where they are declared
//! ([`super::edit`]; as a dry run it only says what would change), `POST /v1/delete`
//! removes them, `POST /v1/nodes/{name}/power` edits one compute unit's `powerState`. A change that does not validate is refused whole, with every problem as
//! `FILE:LINE:COLUMN`, and nothing is committed.

use std::path::{Component, Path, PathBuf};

use racklet_client::changes::{
    ApplyRequest, ChangeResult, DeleteRequest, ManifestFile, PowerRequest,
};
use racklet_client::DesiredPower;

use super::edit::{diff, incoming, ResourceId, Tree};
use crate::desired::{desired_from, Desired};
use crate::git::{Reference, SourceSpec};
use crate::local::{commit_as, head_files, Author, CommitError};

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
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the repository failed: {0}")]
    Repository(String),
}

/// The local repository behind the source, if the control plane can commit there: a
/// `file://` source following the branch that is checked out, with no signature policy
/// (the control plane cannot sign for anyone). Other sources take commits and pushes at
/// their Git server.
pub fn local_repository(
    spec: &SourceSpec,
    rack_signers: &[String],
) -> Result<PathBuf, ChangeError> {
    let url = &spec.url;
    let repo = match url.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if !url.contains("://") => PathBuf::from(url),
        None => {
            return Err(ChangeError::Conflict(format!(
                "the source {url} is not a local repository; commit and push there instead"
            )))
        }
    };
    if spec.signers.is_some() || !rack_signers.is_empty() {
        return Err(ChangeError::Conflict(format!(
            "the rack accepts only signed commits; commit to {} with `git commit -S` instead",
            repo.display()
        )));
    }
    let Reference::Branch(branch) = &spec.reference else {
        return Err(ChangeError::Conflict(format!(
            "the control plane follows {}, not a branch; commit to {} and move it yourself",
            spec.reference.full_name(),
            repo.display()
        )));
    };
    let checked_out = crate::git::current_branch(&repo).map_err(repository_failed)?;
    if checked_out != *branch {
        return Err(ChangeError::Conflict(format!(
            "{} has {checked_out} checked out, but the control plane follows {branch}",
            repo.display()
        )));
    }
    Ok(repo)
}

/// A caller's name and email, fit for a commit header or an event line.
pub fn author(a: &racklet_client::changes::Author) -> Result<Author, ChangeError> {
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
    let plain = !path.is_empty()
        && p.components().all(|c| {
            matches!(c, Component::Normal(n) if !n.to_string_lossy().eq_ignore_ascii_case(".git"))
        });
    let manifest = racklet_model::is_manifest(p);
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

fn commit_failed(e: CommitError) -> ChangeError {
    match e {
        CommitError::Repository(e) => repository_failed(e),
        e @ (CommitError::BranchMoved { .. } | CommitError::Uncommitted { .. }) => {
            ChangeError::Conflict(e.to_string())
        }
        e @ CommitError::UnsafePath { .. } => ChangeError::BadRequest(e.to_string()),
    }
}

fn in_source(sub: &str, path: &Path) -> String {
    let sub = sub.trim_matches('/');
    if sub.is_empty() || sub == "." {
        path.display().to_string()
    } else {
        format!("{sub}/{}", path.display())
    }
}

fn manifests(files: &[ManifestFile]) -> Result<Vec<(PathBuf, Vec<u8>)>, ChangeError> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for f in files {
        let path = manifest_path(&f.path)?;
        if out.iter().any(|(p, _)| *p == path) {
            return Err(ChangeError::BadRequest(format!(
                "{} is given twice; give each file once",
                f.path
            )));
        }
        out.push((path, f.content.as_bytes().to_vec()));
    }
    Ok(out)
}

/// Validates the edited revision and commits the files that changed (unless a dry run).
fn commit_edit(
    repo: &Path,
    sub: &str,
    head: Option<&str>,
    (before, after): (&Tree, &Tree),
    message: String,
    author: &Author,
    dry_run: bool,
) -> Result<ChangeResult, ChangeError> {
    validated(&after.files())?;
    let mut result = ChangeResult {
        changes: diff(before, after),
        commit: None,
        repository: repo.display().to_string(),
        message,
    };
    let touched = after.touched();
    if dry_run || touched.is_empty() || result.changes.is_empty() {
        return Ok(result);
    }
    let files: Vec<(String, Option<Vec<u8>>)> = touched
        .into_iter()
        .map(|(p, b)| (in_source(sub, &p), b))
        .collect();
    let commit = commit_as(repo, &files, &result.message, author, head).map_err(commit_failed)?;
    result.commit = Some(commit);
    Ok(result)
}

/// `apply`: creates or updates each resource of the files where it is declared (new ones
/// go to the file of the same name), validates the whole revision, and commits. Nothing
/// is removed, except with `prune`: then resources of the kinds the files hold that they
/// do not name are removed too.
pub fn apply(repo: &Path, sub: &str, request: &ApplyRequest) -> Result<ChangeResult, ChangeError> {
    if request.files.is_empty() {
        return Err(ChangeError::BadRequest("no files to apply".into()));
    }
    let author = author(&request.author)?;
    let files = manifests(&request.files)?;
    let docs = incoming(&files).map_err(ChangeError::Invalid)?;
    let (head, before_files) = head_files(repo, sub).map_err(repository_failed)?;
    let before = Tree::read(&before_files);
    let mut after = before.clone();
    for doc in &docs {
        after.upsert(doc, &doc.file);
    }
    if request.prune {
        let kinds: Vec<&str> = docs.iter().map(|d| d.id.kind.as_str()).collect();
        for id in before.ids() {
            if kinds.contains(&id.kind.as_str()) && !docs.iter().any(|d| d.id == id) {
                after.remove(&id);
            }
        }
    }
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    let message = request
        .message
        .clone()
        .unwrap_or_else(|| format!("Apply {}", names.join(", ")));
    commit_edit(
        repo,
        sub,
        head.as_deref(),
        (&before, &after),
        message,
        &author,
        request.dry_run,
    )
}

/// `delete`: removes the named resources and those the files declare from wherever they
/// are declared, validates the rest (a chassis still in use cannot go), and commits.
pub fn delete(
    repo: &Path,
    sub: &str,
    request: &DeleteRequest,
) -> Result<ChangeResult, ChangeError> {
    let author = author(&request.author)?;
    let files = manifests(&request.files)?;
    let mut ids: Vec<ResourceId> = incoming(&files)
        .map_err(ChangeError::Invalid)?
        .into_iter()
        .map(|d| d.id)
        .collect();
    ids.extend(request.resources.iter().map(|r| ResourceId {
        kind: r.kind.clone(),
        name: r.name.clone(),
    }));
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Err(ChangeError::BadRequest(
            "nothing to delete: name resources or give files".into(),
        ));
    }
    let (head, before_files) = head_files(repo, sub).map_err(repository_failed)?;
    let before = Tree::read(&before_files);
    let mut after = before.clone();
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !after.remove(id))
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(ChangeError::NotFound(format!(
            "the repository has no {}; nothing was committed",
            missing.join(", ")
        )));
    }
    let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let message = request
        .message
        .clone()
        .unwrap_or_else(|| format!("Delete {}", names.join(", ")));
    commit_edit(
        repo,
        sub,
        head.as_deref(),
        (&before, &after),
        message,
        &author,
        request.dry_run,
    )
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
        let is_json = file.extension().is_some_and(|e| e == "json");
        let edited = if is_json {
            edit_power_json(&text, name, power)
        } else {
            edit_power(&text, name, power)
        };
        let Some(edited) = edited else {
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
        let old = validated(&before)?;
        if power == DesiredPower::Off && !request.force && old.rmc_nodes.iter().any(|n| n == name) {
            return Err(ChangeError::Conflict(rmc_refusal(name, "switching it off")));
        }
        validated(&after)?;
        let lines = diff(&Tree::read(&before), &Tree::read(&after));
        // The edit is text: make sure it changed this node's power and nothing else.
        let expected = format!("~ ComputeUnit/{name}: spec.powerState: ");
        if lines.len() > 1 || lines.iter().any(|l| !l.starts_with(&expected)) {
            return Err(ChangeError::Invalid(vec![format!(
                "{}: editing powerState of {name} would change more than its power ({}); edit the file instead",
                file.display(),
                lines.join("; ")
            )]));
        }
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
        let files = [(in_source(sub, file), Some(edited.into_bytes()))];
        let commit = commit_as(repo, &files, &result.message, &author, head.as_deref())
            .map_err(commit_failed)?;
        result.commit = Some(commit);
        return Ok(result);
    }
    Err(ChangeError::NoSuchNode(name.into()))
}

/// Why an action on a chassis' RMC needs `--force`.
pub fn rmc_refusal(name: &str, what: &str) -> String {
    format!(
        "{name} is its chassis' RMC: {what} stops the rack management daemon running on it, and with it every BMC of the chassis; pass --force if you mean it"
    )
}

/// Sets `spec.powerState` of compute unit `name` in a JSON manifest (one object or an
/// array of them).
fn edit_power_json(text: &str, name: &str, power: DesiredPower) -> Option<String> {
    let mut doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let declares = |v: &serde_json::Value| {
        v["kind"] == "ComputeUnit" && v["metadata"]["name"] == name && v["spec"].is_object()
    };
    let unit = match &mut doc {
        serde_json::Value::Array(items) => items.iter_mut().find(|v| declares(v))?,
        v if declares(v) => v,
        _ => return None,
    };
    unit["spec"]["powerState"] = serde_json::Value::from(power.as_str());
    serde_json::to_string_pretty(&doc).ok().map(|s| s + "\n")
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
    fn power_edits_json_manifests_too() {
        let one = r#"{"apiVersion": "racklet.io/v1alpha1", "kind": "ComputeUnit",
            "metadata": {"name": "node-8"}, "spec": {"tray": 1, "powerState": "Off"}}"#;
        let out = edit_power_json(one, "node-8", DesiredPower::On).expect("found");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(v["spec"]["powerState"], "On");
        let many = format!("[{one}]");
        assert!(edit_power_json(&many, "node-8", DesiredPower::On).is_some());
        assert_eq!(edit_power_json(&many, "node-9", DesiredPower::On), None);
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
