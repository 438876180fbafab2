//! Commands that change desired state, through the control plane's API: it commits to the
//! rack's repository (never around it) with the caller as author, and syncs. `apply -f`
//! creates or updates the resources of files or directories where they are declared,
//! `delete` removes resources, `diff -f` shows what an apply would change, `power on|off`
//! edits a compute unit's `powerState`. `power cycle` is the one imperative action (a
//! Redfish PowerCycle, done by the control plane), since a cycle is not a state to declare.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use racklet_client::changes::{
    ActionRequest, ApplyRequest, Author, ChangeResult, DeleteRequest, ManifestFile, NodeAction,
    PowerRequest, ResourceRef,
};
use racklet_client::DesiredPower;
use racklet_model::is_manifest;

use crate::get::{client, runtime, sync_with};

/// Who a commit is by, and why.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CommitArgs {
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// The commit's author as "Name <email>" [default: your Git identity].
    #[arg(long, value_name = "NAME <EMAIL>")]
    pub author: Option<String>,
}

/// `Name <email>` as Git writes it.
fn parse_author(text: &str) -> Option<Author> {
    let (name, rest) = text.split_once('<')?;
    let (email, _) = rest.split_once('>')?;
    let (name, email) = (name.trim(), email.trim());
    (!name.is_empty() && !email.is_empty()).then(|| Author {
        name: name.into(),
        email: email.into(),
    })
}

/// The author of the caller's commits: `--author`, else the identity `git commit` would
/// use here (`git var GIT_AUTHOR_IDENT`: the environment, then Git's configuration), else
/// the login name at this host.
pub(crate) fn author(args: &CommitArgs) -> anyhow::Result<Author> {
    if let Some(text) = &args.author {
        return parse_author(text)
            .with_context(|| format!("--author {text:?} is not of the form \"Name <email>\""));
    }
    let from_git = std::process::Command::new("git")
        .args(["var", "GIT_AUTHOR_IDENT"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_author(&String::from_utf8_lossy(&o.stdout)));
    if let Some(a) = from_git {
        return Ok(a);
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "racklet".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    Ok(Author {
        name: std::env::var("GIT_AUTHOR_NAME").unwrap_or_else(|_| user.clone()),
        email: std::env::var("GIT_AUTHOR_EMAIL").unwrap_or_else(|_| format!("{user}@{host}")),
    })
}

fn read_manifest(file: &Path, name: &Path) -> anyhow::Result<ManifestFile> {
    let content = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {} (manifests are UTF-8 text)", file.display()))?;
    Ok(ManifestFile {
        path: name.to_string_lossy().into_owned(),
        content,
    })
}

/// The manifests of `-f` paths: a file by its name, a directory's manifests (recursively)
/// by their paths inside it. New resources go to a file of the same name in the repository.
fn manifests(paths: &[PathBuf]) -> anyhow::Result<Vec<ManifestFile>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut stack = vec![path.clone()];
            let mut found = Vec::new();
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir)
                    .with_context(|| format!("cannot read directory {}", dir.display()))?;
                for entry in entries {
                    let entry = entry?;
                    let p = entry.path();
                    // Not hidden folders (.git, .github) and not through symbolic links.
                    if entry.file_name().to_string_lossy().starts_with('.') {
                        continue;
                    }
                    let kind = entry.file_type()?;
                    if kind.is_dir() {
                        stack.push(p);
                    } else if kind.is_file() && is_manifest(&p) {
                        found.push(p);
                    }
                }
            }
            found.sort();
            if found.is_empty() {
                bail!("{} holds no .yaml, .yml or .json file", path.display());
            }
            for f in found {
                let name = f.strip_prefix(path).unwrap_or(&f).to_path_buf();
                out.push(read_manifest(&f, &name)?);
            }
        } else {
            let name = path
                .file_name()
                .with_context(|| format!("{} is not a file", path.display()))?;
            out.push(read_manifest(path, Path::new(name))?);
        }
    }
    Ok(out)
}

fn print_changes(result: &ChangeResult) {
    for c in &result.changes {
        println!("{c}");
    }
}

fn committed(result: &ChangeResult) {
    if let Some(commit) = &result.commit {
        println!(
            "committed {} to {}: {}",
            crate::view::short(commit),
            result.repository,
            result.message
        );
    }
}

pub fn apply(
    data_dir: &Path,
    files: &[PathBuf],
    prune: bool,
    commit: &CommitArgs,
) -> anyhow::Result<()> {
    let request = ApplyRequest {
        files: manifests(files)?,
        message: commit.message.clone(),
        author: author(commit)?,
        dry_run: false,
        prune,
    };
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let result = cp.apply(&request).await?;
        print_changes(&result);
        if result.commit.is_none() {
            println!("no change to desired state; nothing to commit");
            return Ok(());
        }
        committed(&result);
        sync_with(&cp, result.commit.as_deref()).await
    })
}

pub fn diff(data_dir: &Path, files: &[PathBuf], prune: bool) -> anyhow::Result<()> {
    let request = ApplyRequest {
        files: manifests(files)?,
        message: None,
        author: author(&CommitArgs::default())?,
        dry_run: true,
        prune,
    };
    runtime()?.block_on(async {
        let result = client(data_dir)?.apply(&request).await?;
        if result.changes.is_empty() {
            println!("no change to desired state");
        }
        print_changes(&result);
        Ok(())
    })
}

/// The API kind of a name as kubectl users type it (`node`, `nodes`, `computeunit`, …).
fn kind_of(word: &str) -> anyhow::Result<&'static str> {
    Ok(match word.to_ascii_lowercase().as_str() {
        "node" | "nodes" | "computeunit" | "computeunits" | "cu" => "ComputeUnit",
        "chassis" => "Chassis",
        "rack" | "racks" => "Rack",
        "boardmodel" | "boardmodels" | "board" | "boards" => "BoardModel",
        "firmwarepolicy" | "firmwarepolicies" => "FirmwarePolicy",
        "bootprofile" | "bootprofiles" => "BootProfile",
        _ => bail!(
            "unknown kind {word:?}; use node, chassis, rack, boardmodel, firmwarepolicy or bootprofile"
        ),
    })
}

pub fn delete(
    data_dir: &Path,
    files: &[PathBuf],
    kind: Option<&str>,
    names: &[String],
    commit: &CommitArgs,
) -> anyhow::Result<()> {
    let resources = match kind {
        Some(kind) => {
            let kind = kind_of(kind)?;
            if names.is_empty() {
                bail!("name the {kind}(s) to delete, e.g. `racklet delete node node-6`");
            }
            names
                .iter()
                .map(|name| ResourceRef {
                    kind: kind.into(),
                    name: name.clone(),
                })
                .collect()
        }
        None if files.is_empty() => {
            bail!("say what to delete: `racklet delete node NAME` or `racklet delete -f FILE`")
        }
        None => Vec::new(),
    };
    let request = DeleteRequest {
        resources,
        files: manifests(files)?,
        message: commit.message.clone(),
        author: author(commit)?,
        dry_run: false,
    };
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let result = cp.delete(&request).await?;
        print_changes(&result);
        committed(&result);
        sync_with(&cp, result.commit.as_deref()).await
    })
}

/// `power status`: desired and observed power, and why they differ.
async fn power_status(cp: &racklet_client::Client, name: &str) -> anyhow::Result<()> {
    let n = cp.node(name).await?;
    let message = n
        .condition("Synced")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    println!(
        "{name}: desired {}, observed {} ({}, {}): {message}",
        n.spec.power_state.as_str(),
        n.status.power_state.map_or("unknown", |p| p.as_str()),
        n.status.sync.as_str(),
        n.status.health.as_str(),
    );
    Ok(())
}

/// `power on|off|cycle|status`. `off` is graceful (the OS shuts down, as ipmitool's
/// `soft`); `off --force` also cuts power now (ipmitool's `off`). `--force` is also what
/// switching off or cycling a chassis' RMC takes.
pub fn power(
    data_dir: &Path,
    action: &str,
    name: &str,
    force: bool,
    commit: &CommitArgs,
) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let act = |action: NodeAction| -> anyhow::Result<ActionRequest> {
            Ok(ActionRequest {
                action,
                force,
                author: Some(author(commit)?),
                bmc_identity: None,
            })
        };
        let power_state = match action {
            "status" => return power_status(&cp, name).await,
            "cycle" => {
                let node = cp.node(name).await?;
                cp.act(name, &act(NodeAction::PowerCycle)?).await?;
                println!(
                    "{name}: power cycled (tray {} of {})",
                    node.spec.tray, node.spec.chassis
                );
                return Ok(());
            }
            "on" => DesiredPower::On,
            _ => DesiredPower::Off,
        };
        let request = PowerRequest {
            power_state,
            force,
            message: commit.message.clone(),
            author: author(commit)?,
        };
        let result = cp.set_power(name, &request).await?;
        if result.changes.is_empty() {
            println!(
                "{name} is already {} in the repository",
                power_state.as_str()
            );
        } else {
            print_changes(&result);
            committed(&result);
        }
        if power_state == DesiredPower::Off && force {
            cp.act(name, &act(NodeAction::ForceOff)?).await?;
            println!("{name}: power cut (ForceOff), without waiting for its OS");
        }
        if result.commit.is_some() {
            sync_with(&cp, result.commit.as_deref()).await?;
        }
        Ok(())
    })
}

/// `bmc forget`: the chassis forgets the BMC's enrollment key and enrolls it again.
pub fn forget_bmc_key(data_dir: &Path, name: &str, commit: &CommitArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let request = ActionRequest {
            action: NodeAction::ForgetBmcKey,
            force: false,
            author: Some(author(commit)?),
            bmc_identity: None,
        };
        cp.act(name, &request).await?;
        println!(
            "{name}: its chassis forgot the BMC's enrollment key and enrolls the identity the BMC shows next (`racklet events` says when)"
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_read_as_git_writes_them() {
        let a = parse_author("Ada Lovelace <ada@example.org> 1700000000 +0100").expect("ident");
        assert_eq!(
            (a.name.as_str(), a.email.as_str()),
            ("Ada Lovelace", "ada@example.org")
        );
        assert!(parse_author("Ada").is_none());
        assert!(parse_author("<ada@example.org>").is_none());
    }

    #[test]
    fn kinds_read_as_kubectl_users_type_them() {
        assert_eq!(kind_of("node").ok(), Some("ComputeUnit"));
        assert_eq!(kind_of("Chassis").ok(), Some("Chassis"));
        assert!(kind_of("pods").is_err());
    }
}
