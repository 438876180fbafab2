//! The commands that read a running rack through the control plane's API (`get`,
//! `describe`, `sync`, `events`): found and authenticated through the data dir
//! (`racklet_client::DataDir`), typed by `racklet_client`.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use racklet_client::{Client, ConditionStatus, DataDir, List, RolloutPhase};

use crate::view::{self, Output};

#[derive(clap::Subcommand)]
pub enum GetWhat {
    /// Compute units: desired and observed power, sync and health.
    #[command(alias = "node")]
    Nodes {
        /// Only this node.
        name: Option<String>,
        /// After the list, print each node again whenever it changes (as kubectl does).
        #[arg(short, long)]
        watch: bool,
    },
    /// Racks of the applied revision, with how many of their nodes are in sync.
    #[command(alias = "rack")]
    Racks,
    /// Chassis of the applied revision: nodes, power, sync, firmware roll-out.
    Chassis,
    /// The Git source: what is applied, and why a newer revision was refused.
    Source,
    /// Firmware roll-outs, tray by tray.
    Rollouts {
        /// Follow them with a progress bar until they end.
        #[arg(short, long)]
        watch: bool,
    },
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The control plane of the data dir.
pub fn client(data_dir: &Path) -> anyhow::Result<Client> {
    Ok(Client::open(&DataDir::new(data_dir))?)
}

pub fn get(data_dir: &Path, what: GetWhat, output: Output) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let text = match what {
            GetWhat::Nodes { name, watch: true } => {
                return watch_nodes(&cp, name.as_deref(), output).await
            }
            GetWhat::Nodes { name: None, .. } => view::nodes(&cp.nodes().await?, output),
            GetWhat::Nodes {
                name: Some(name), ..
            } => match output {
                // One object prints as itself, as `kubectl get node X -o json` does.
                Output::Json | Output::Yaml => view::object(&cp.node(&name).await?, output),
                Output::Table | Output::Wide => {
                    view::nodes(&List::new(vec![cp.node(&name).await?]), output)
                }
            },
            GetWhat::Source => view::source(&cp.source().await?, output),
            GetWhat::Racks => view::racks(&cp.racks().await?, output),
            GetWhat::Chassis => view::chassis(&cp.chassis().await?, output),
            GetWhat::Rollouts { watch: false } => view::rollouts(&cp.rollouts().await?, output),
            GetWhat::Rollouts { watch: true } => return watch_rollouts(&cp).await,
        };
        print!("{text}");
        Ok(())
    })
}

pub fn describe_node(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let node = cp.node(name).await?;
        let events = cp.events(0).await?.items;
        // Sensors are read live from the chassis; the rest of the page does not need them.
        let sensors = cp
            .sensors(name)
            .await
            .map(|l| l.items)
            .map_err(|e| e.to_string());
        print!("{}", view::describe(&node, &events, &sensors));
        Ok(())
    })
}

/// Asks for a fetch now and waits until the source was looked at (with `commit`: until
/// the control plane has fetched that commit); fails when the newest revision was refused.
pub async fn sync_with(cp: &Client, commit: Option<&str>) -> anyhow::Result<()> {
    let before = cp.source().await?.status.last_fetch_time;
    cp.sync().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = cp.source().await?;
        // RFC 3339 with a fixed number of fractional digits sorts as time. A fetch that
        // started before the commit may end after it: only the commit itself counts then.
        let looked = match commit {
            Some(c) => s.status.fetched_revision.as_deref() == Some(c),
            None => s.status.last_fetch_time > before,
        };
        if looked {
            print!("{}", view::source(&s, Output::Table));
            if let Some(ready) = s.ready().filter(|c| c.status != ConditionStatus::True) {
                bail!("the newest revision was refused ({})", ready.reason);
            }
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the control plane did not fetch within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn sync(data_dir: &Path) -> anyhow::Result<()> {
    runtime()?.block_on(async { sync_with(&client(data_dir)?, None).await })
}

pub fn events(data_dir: &Path, watch: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = client(data_dir)?;
        let mut since = 0;
        loop {
            let batch = cp.events(since).await?.items;
            if let Some(last) = batch.last() {
                since = last.sequence;
            }
            print!("{}", view::events(&batch));
            flush();
            if !watch {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

async fn some_nodes(
    cp: &Client,
    name: Option<&str>,
) -> anyhow::Result<Vec<racklet_client::ComputeUnit>> {
    Ok(match name {
        Some(name) => vec![cp.node(name).await?],
        None => cp.nodes().await?.items,
    })
}

fn flush() {
    use std::io::Write as _;
    std::io::stdout().flush().ok();
}

/// `get nodes -w`: the list, then each node again whenever it changes: a table row, or
/// with `-o json|yaml` the object (JSON on one line, so each line is one object).
async fn watch_nodes(cp: &Client, name: Option<&str>, output: Output) -> anyhow::Result<()> {
    let mut last: std::collections::HashMap<String, String> = Default::default();
    let mut first = true;
    loop {
        let items = some_nodes(cp, name).await?;
        let mut text = String::new();
        match output {
            Output::Table | Output::Wide => {
                let table = view::nodes(&List::new(items.clone()), output);
                let mut lines = table.lines();
                let header = lines.next().unwrap_or_default();
                if first {
                    text.push_str(header);
                    text.push('\n');
                }
                for (n, row) in items.iter().zip(lines) {
                    if last.get(&n.metadata.name).map(String::as_str) != Some(row) {
                        last.insert(n.metadata.name.clone(), row.to_string());
                        text.push_str(row);
                        text.push('\n');
                    }
                }
            }
            Output::Json | Output::Yaml => {
                for n in &items {
                    let line = serde_json::to_string(n)?;
                    if last.get(&n.metadata.name) != Some(&line) {
                        last.insert(n.metadata.name.clone(), line.clone());
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
            }
        }
        first = false;
        print!("{text}");
        flush();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Roll-outs followed on something that is not a terminal: a line per change.
async fn watch_rollouts_as_lines(cp: &Client) -> anyhow::Result<()> {
    let mut last: std::collections::HashMap<String, String> = Default::default();
    loop {
        let rollouts = cp.rollouts().await?.items;
        for r in &rollouts {
            let line = format!(
                "{} v{}: {}/{} trays, {:?}: {}",
                r.spec.chassis,
                r.spec.version,
                r.done(),
                r.status.trays.len(),
                r.status.phase,
                r.status.message
            );
            if last.get(&r.spec.chassis) != Some(&line) {
                println!("{line}");
                last.insert(r.spec.chassis.clone(), line);
            }
        }
        flush();
        if let Some(end) = rollouts_ended(&rollouts) {
            return end;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether every roll-out has ended, and how: `Err` names the ones that stopped.
fn rollouts_ended(rollouts: &[racklet_client::FirmwareRollout]) -> Option<anyhow::Result<()>> {
    // Nothing to follow yet (a policy just committed is fetched at the next poll).
    let running = rollouts
        .iter()
        .any(|r| r.status.phase == RolloutPhase::Running);
    if rollouts.is_empty() || running {
        return None;
    }
    let stopped: Vec<_> = rollouts
        .iter()
        .filter(|r| r.status.phase == RolloutPhase::Stopped)
        .map(|r| format!("{}: {}", r.spec.chassis, r.status.message))
        .collect();
    if stopped.is_empty() {
        Some(Ok(()))
    } else {
        Some(Err(anyhow::anyhow!(
            "roll-out stopped: {}",
            stopped.join("; ")
        )))
    }
}

/// One progress bar per roll-out, until every one has ended; lines when not on a
/// terminal (indicatif draws nothing there).
async fn watch_rollouts(cp: &Client) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() {
        return watch_rollouts_as_lines(cp).await;
    }
    let bars = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} trays  {msg}",
    )?
    .progress_chars("=> ");
    let mut shown: Vec<(String, indicatif::ProgressBar)> = Vec::new();
    loop {
        let rollouts = cp.rollouts().await?.items;
        for r in &rollouts {
            let chassis = &r.spec.chassis;
            let trays = r.status.trays.len() as u64;
            let bar = match shown.iter().find(|(c, _)| c == chassis) {
                Some((_, b)) => b.clone(),
                None => {
                    let b = bars.add(indicatif::ProgressBar::new(trays));
                    b.set_style(style.clone());
                    b.set_prefix(chassis.clone());
                    shown.push((chassis.clone(), b.clone()));
                    b
                }
            };
            bar.set_length(trays);
            bar.set_position(r.done() as u64);
            bar.set_message(format!("v{}: {}", r.spec.version, r.status.message));
            if r.status.phase != RolloutPhase::Running {
                bar.finish();
            }
        }
        if let Some(end) = rollouts_ended(&rollouts) {
            return end;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
