//! Commands that change desired state: they commit to the rack's repository (never
//! around it) and ask the control plane to sync. `apply -f` adds or replaces a manifest
//! file, `power on|off` edits a compute unit's `powerState`, `diff -f` shows what a file
//! would change. `power cycle` is the one imperative action: a Redfish PowerCycle, since
//! a power cycle is not a state to declare.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use racklet_gitops::desired::{desired_from, Desired};
use racklet_gitops::git::commit_files;

use crate::cp::ControlPlaneClient;

/// The repository `racklet up` follows (from `DATA_DIR/endpoints.json`).
fn repository(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let file = data_dir.join("endpoints.json");
    let endpoints: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&file).with_context(|| {
            format!("cannot read {}: is `racklet up` running?", file.display())
        })?)?;
    let url = endpoints
        .iter()
        .find(|e| e["name"] == "repository")
        .and_then(|e| e["url"].as_str())
        .with_context(|| format!("{} names no repository", file.display()))?;
    match url.strip_prefix("file://") {
        Some(p) => Ok(PathBuf::from(p)),
        None => bail!("the repository {url} is not local; commit and push there instead"),
    }
}

/// The files under `rack/` in the repository's committed HEAD: (path relative to
/// `rack/`, bytes), bundles in subdirectories included.
fn current(repo: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let source = racklet_gitops::git::GitSource::new(
        racklet_gitops::git::SourceSpec {
            url: repo.display().to_string(),
            reference: racklet_gitops::git::Reference::Branch(racklet_gitops::git::current_branch(
                repo,
            )?),
            path: "rack".into(),
            signers: None,
            ca_pem: None,
        },
        &std::env::temp_dir().join(format!("racklet-cli-mirror-{}", std::process::id())),
    )?;
    let head = source.fetch()?;
    let files = source.read(&head)?.files;
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("racklet-cli-mirror-{}", std::process::id())),
    );
    Ok(files)
}

fn replaced(files: &[(PathBuf, Vec<u8>)], name: &Path, bytes: &[u8]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = files.iter().filter(|(p, _)| p != name).cloned().collect();
    out.push((name.to_path_buf(), bytes.to_vec()));
    out.sort();
    out
}

fn validated(files: &[(PathBuf, Vec<u8>)]) -> anyhow::Result<Desired> {
    desired_from(files).map_err(|problems| {
        anyhow::anyhow!(
            "the change does not validate; nothing was committed:\n{}",
            problems.join("\n")
        )
    })
}

/// What changes between two desired states, one line per node.
pub fn changes(before: &Desired, after: &Desired) -> Vec<String> {
    let mut out = Vec::new();
    for n in &after.nodes {
        match before.nodes.iter().find(|b| b.name == n.name) {
            None => out.push(format!(
                "+ {}: new, tray {} of {}, power {}",
                n.name,
                n.tray,
                n.chassis,
                n.power.as_str()
            )),
            Some(b) if b != n => {
                if b.power != n.power {
                    out.push(format!(
                        "~ {}: power {} -> {}",
                        n.name,
                        b.power.as_str(),
                        n.power.as_str()
                    ));
                }
                if (b.chassis.as_str(), b.tray) != (n.chassis.as_str(), n.tray) {
                    out.push(format!(
                        "~ {}: moves from tray {} of {} to tray {} of {}",
                        n.name, b.tray, b.chassis, n.tray, n.chassis
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for b in &before.nodes {
        if !after.nodes.iter().any(|n| n.name == b.name) {
            out.push(format!("- {}: removed", b.name));
        }
    }
    out
}

fn commit_and_sync(
    data_dir: &Path,
    repo: &Path,
    files: &[(String, Vec<u8>)],
    message: &str,
) -> anyhow::Result<()> {
    let commit = commit_files(repo, files, message)?;
    println!(
        "committed {} to {}: {message}",
        racklet_gitops::short(&commit),
        repo.display()
    );
    crate::cp::sync(data_dir)
}

pub fn apply(data_dir: &Path, file: &Path, message: Option<String>) -> anyhow::Result<()> {
    let repo = repository(data_dir)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = PathBuf::from(file.file_name().context("a file, not a directory")?);
    let before = current(&repo)?;
    let after = replaced(&before, &name, &bytes);
    let old = validated(&before).ok();
    let new = validated(&after)?;
    let changes = old.map(|o| changes(&o, &new)).unwrap_or_default();
    if changes.is_empty() && before.iter().any(|(p, b)| *p == name && *b == bytes) {
        println!("{} is unchanged; nothing to commit", name.display());
        return Ok(());
    }
    for c in &changes {
        println!("{c}");
    }
    let message = message.unwrap_or_else(|| format!("Apply {}", name.display()));
    commit_and_sync(
        data_dir,
        &repo,
        &[(format!("rack/{}", name.display()), bytes)],
        &message,
    )
}

pub fn diff(data_dir: &Path, file: &Path) -> anyhow::Result<()> {
    let repo = repository(data_dir)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = PathBuf::from(file.file_name().context("a file, not a directory")?);
    let before = current(&repo)?;
    let old = validated(&before)?;
    let new = validated(&replaced(&before, &name, &bytes))?;
    let changes = changes(&old, &new);
    if changes.is_empty() {
        println!("no change to desired state");
    }
    for c in changes {
        println!("{c}");
    }
    Ok(())
}

/// Sets `powerState` of compute unit `name` in the document that declares it.
fn set_power(text: &str, name: &str, power: &str) -> Option<String> {
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
    let new = format!("{}powerState: {power}{}", &doc[..at], &rest[value_len..]);
    *doc = new;
    Some(docs.join("\n---"))
}

pub fn power(data_dir: &Path, action: &str, name: &str) -> anyhow::Result<()> {
    if action == "cycle" {
        return cycle(data_dir, name);
    }
    let power = if action == "on" { "On" } else { "Off" };
    let repo = repository(data_dir)?;
    let before = current(&repo)?;
    for (file, bytes) in &before {
        let text = String::from_utf8_lossy(bytes);
        if let Some(edited) = set_power(&text, name, power) {
            let after = replaced(&before, file, edited.as_bytes());
            let (old, new) = (validated(&before)?, validated(&after)?);
            let changes = changes(&old, &new);
            if changes.is_empty() {
                println!("{name} is already {power} in the repository");
                return Ok(());
            }
            for c in &changes {
                println!("{c}");
            }
            return commit_and_sync(
                data_dir,
                &repo,
                &[(format!("rack/{}", file.display()), edited.into_bytes())],
                &format!("Power {name} {}", action),
            );
        }
    }
    bail!(
        "no ComputeUnit named {name:?} in {}",
        repo.join("rack").display()
    )
}

/// `power cycle`: through the chassis' Redfish service, with the control plane's account.
fn cycle(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cp = ControlPlaneClient::open(data_dir)?;
        let node = cp
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no node named {name:?}; `racklet get nodes` lists them"))?;
        let client = crate::cp::chassis_redfish(data_dir, &node.chassis)?;
        let system = client
            .system(&format!("/redfish/v1/Systems/{}", node.tray))
            .await?;
        client.reset(&system, "PowerCycle").await?;
        client.logout().await;
        println!(
            "{name}: power cycled (tray {} of {})",
            node.tray, node.chassis
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_edits_only_the_named_unit_in_flow_and_block_style() {
        let flow = "kind: ComputeUnit\nmetadata: {name: node-1}\nspec: {tray: 1, powerState: On}\n---\nkind: ComputeUnit\nmetadata: {name: node-10}\nspec: {tray: 2, powerState: On}\n";
        let out = set_power(flow, "node-1", "Off").expect("found");
        assert!(out.contains("{tray: 1, powerState: Off}"), "{out}");
        assert!(out.contains("{tray: 2, powerState: On}"), "{out}");
        let block =
            "kind: ComputeUnit\nmetadata:\n  name: node-2\nspec:\n  tray: 2\n  powerState: Off\n";
        let out = set_power(block, "node-2", "On").expect("found");
        assert!(out.ends_with("  powerState: On\n"), "{out}");
        assert_eq!(set_power(block, "node-3", "On"), None);
    }
}
