//! Commands that change desired state, through the control plane's API: it commits to the
//! rack's repository (never around it) with the caller as author, and syncs. `apply -f`
//! adds or replaces a manifest file, `diff -f` shows what it would change, `power on|off`
//! edits a compute unit's `powerState`. `power cycle` is the one imperative action (a
//! Redfish PowerCycle, done by the control plane), since a cycle is not a state to declare.

use std::path::Path;

use anyhow::Context as _;
use racklet_client::changes::{
    ApplyRequest, Author, ChangeResult, ManifestFile, NodeAction, PowerRequest,
};
use racklet_client::DesiredPower;

use crate::get::{client, runtime, sync_with};

/// Who commits: `GIT_AUTHOR_NAME`/`GIT_AUTHOR_EMAIL` as git takes them, else the login
/// name at this host.
fn author() -> Author {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "racklet".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    Author {
        name: std::env::var("GIT_AUTHOR_NAME").unwrap_or_else(|_| user.clone()),
        email: std::env::var("GIT_AUTHOR_EMAIL").unwrap_or_else(|_| format!("{user}@{host}")),
    }
}

fn manifest(file: &Path) -> anyhow::Result<ManifestFile> {
    let content = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {} (manifests are UTF-8 text)", file.display()))?;
    let name = file
        .file_name()
        .with_context(|| format!("{} is not a file", file.display()))?;
    Ok(ManifestFile {
        path: name.to_string_lossy().into_owned(),
        content,
    })
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

pub fn apply(data_dir: &Path, file: &Path, message: Option<String>) -> anyhow::Result<()> {
    let request = ApplyRequest {
        files: vec![manifest(file)?],
        message,
        author: author(),
        dry_run: false,
    };
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let result = cp.apply(&request).await?;
        print_changes(&result);
        if result.commit.is_none() {
            println!("{} is unchanged; nothing to commit", request.files[0].path);
            return Ok(());
        }
        committed(&result);
        sync_with(&cp, result.commit.as_deref()).await
    })
}

pub fn diff(data_dir: &Path, file: &Path) -> anyhow::Result<()> {
    let request = ApplyRequest {
        files: vec![manifest(file)?],
        message: None,
        author: author(),
        dry_run: true,
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

pub fn power(data_dir: &Path, action: &str, name: &str, force: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let power_state = match action {
            "cycle" => {
                let node = cp.node(name).await?;
                cp.act(name, NodeAction::PowerCycle, force).await?;
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
            message: None,
            author: author(),
        };
        let result = cp.set_power(name, &request).await?;
        if result.changes.is_empty() {
            println!(
                "{name} is already {} in the repository",
                power_state.as_str()
            );
            return Ok(());
        }
        print_changes(&result);
        committed(&result);
        sync_with(&cp, result.commit.as_deref()).await
    })
}
