//! The day-to-day commands against a running control plane (`get`, `describe`, `sync`,
//! `events`): found through `DATA_DIR/endpoints.json`, authenticated with the token in
//! `DATA_DIR/controlplane/token`, over HTTPS checked against its own certificate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use racklet_gitops::events::Event;
use racklet_gitops::power::NodeStatus;
use racklet_gitops::SourceStatus;
use serde::de::DeserializeOwned;

use crate::view::{self, Output};

#[derive(clap::Subcommand)]
pub enum GetWhat {
    /// Compute units: desired and observed power, sync and health.
    #[command(alias = "node")]
    Nodes {
        /// Only this node.
        name: Option<String>,
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

pub struct ControlPlaneClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Endpoint {
    name: String,
    url: String,
}

impl ControlPlaneClient {
    pub fn open(data_dir: &Path) -> anyhow::Result<ControlPlaneClient> {
        let endpoints_file = data_dir.join("endpoints.json");
        let endpoints: Vec<Endpoint> =
            serde_json::from_slice(&std::fs::read(&endpoints_file).with_context(|| {
                format!(
                    "cannot read {}: is `racklet up --data-dir {}` running?",
                    endpoints_file.display(),
                    data_dir.display()
                )
            })?)
            .with_context(|| format!("{} is not valid", endpoints_file.display()))?;
        let Some(base) = endpoints.into_iter().find(|e| e.name == "controlplane") else {
            bail!("{} lists no control plane", endpoints_file.display());
        };
        let dir: PathBuf = data_dir.join("controlplane");
        let token = std::fs::read_to_string(dir.join("token"))
            .with_context(|| format!("cannot read the API token in {}", dir.display()))?;
        let cert = std::fs::read(dir.join("tls/cert.pem"))
            .with_context(|| format!("cannot read the API certificate in {}", dir.display()))?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert)?)
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(ControlPlaneClient {
            base: base.url,
            token: token.trim().to_string(),
            http,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the control plane at {}", self.base))?;
        if !resp.status().is_success() {
            bail!(
                "{url} answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(resp.json().await?)
    }

    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
        self.get("/v1/nodes").await
    }

    pub async fn source(&self) -> anyhow::Result<SourceStatus> {
        self.get("/v1/source").await
    }

    pub async fn desired(&self) -> anyhow::Result<Option<racklet_gitops::desired::Desired>> {
        self.get("/v1/desired").await
    }

    pub async fn rollouts(&self) -> anyhow::Result<Vec<racklet_gitops::firmware::Rollout>> {
        self.get("/v1/rollouts").await
    }

    pub async fn events(&self, since: u64) -> anyhow::Result<Vec<Event>> {
        self.get(&format!("/v1/events?since={since}")).await
    }

    pub async fn sync(&self) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(format!("{}/v1/sync", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the control plane at {}", self.base))?;
        if !resp.status().is_success() {
            bail!("sync refused: {}", resp.status());
        }
        Ok(())
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn get(data_dir: &Path, what: GetWhat, output: Output) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = ControlPlaneClient::open(data_dir)?;
        let text = match what {
            GetWhat::Nodes { name } => {
                let mut nodes = cp.nodes().await?;
                if let Some(name) = name {
                    nodes.retain(|n| n.name == name);
                    if nodes.is_empty() {
                        bail!("no node named {name:?}; `racklet get nodes` lists them");
                    }
                }
                view::nodes(&nodes, output)
            }
            GetWhat::Source => view::source(&cp.source().await?, output),
            GetWhat::Racks => {
                let desired = cp.desired().await?.unwrap_or_default();
                view::racks(&desired, &cp.nodes().await?, output)
            }
            GetWhat::Chassis => {
                let desired = cp.desired().await?.unwrap_or_default();
                view::chassis(&desired, &cp.nodes().await?, &cp.rollouts().await?, output)
            }
            GetWhat::Rollouts { watch: false } => view::rollouts(&cp.rollouts().await?, output),
            GetWhat::Rollouts { watch: true } => return watch_rollouts(&cp).await,
        };
        print!("{text}");
        Ok(())
    })
}

/// How the control plane's own account reaches a chassis' Redfish service (written by
/// `racklet up`: the account under `DATA_DIR/controlplane`, the URL in `endpoints.json`,
/// the service's certificate under `DATA_DIR/redfish`).
pub fn chassis_endpoint(
    data_dir: &Path,
    chassis: &str,
) -> anyhow::Result<racklet_redfish_client::Endpoint> {
    let creds = data_dir
        .join("controlplane")
        .join(format!("redfish-{chassis}.json"));
    let c: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&creds).with_context(|| format!("cannot read {}", creds.display()))?,
    )
    .with_context(|| format!("{} is not JSON", creds.display()))?;
    let endpoints_file = data_dir.join("endpoints.json");
    let endpoints: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(&endpoints_file)
            .with_context(|| format!("cannot read {}", endpoints_file.display()))?,
    )
    .with_context(|| format!("{} is not JSON", endpoints_file.display()))?;
    let wanted = [format!("redfish-{chassis}"), "redfish".to_string()];
    let url = endpoints
        .iter()
        .find(|e| wanted.iter().any(|w| e["name"] == w.as_str()))
        .and_then(|e| e["url"].as_str())
        .with_context(|| format!("no Redfish endpoint for chassis {chassis}"))?;
    let ca = data_dir.join("redfish").join(chassis).join("tls/cert.pem");
    Ok(racklet_redfish_client::Endpoint {
        base: url.trim_end_matches("/redfish/v1").to_string(),
        user: c["user"].as_str().unwrap_or_default().to_string(),
        password: c["password"].as_str().unwrap_or_default().to_string(),
        ca_pem: Some(std::fs::read(&ca).with_context(|| format!("cannot read {}", ca.display()))?),
    })
}

/// A Redfish client of a chassis' service, with the control plane's own account.
pub fn chassis_redfish(
    data_dir: &Path,
    chassis: &str,
) -> anyhow::Result<racklet_redfish_client::Client> {
    Ok(racklet_redfish_client::Client::new(
        chassis_endpoint(data_dir, chassis)?,
        Duration::from_secs(30),
    )?)
}

pub fn describe_node(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = ControlPlaneClient::open(data_dir)?;
        let node = cp
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no node named {name:?}; `racklet get nodes` lists them"))?;
        let events = cp.events(0).await?;
        // Sensors are read live from the chassis; the rest of the page does not need them.
        let sensors = match chassis_redfish(data_dir, &node.chassis) {
            Ok(client) => {
                let read = client
                    .system_sensors(&format!("/redfish/v1/Systems/{}", node.tray))
                    .await
                    .map_err(|e| e.to_string());
                client.logout().await;
                read
            }
            Err(e) => Err(format!("{e:#}")),
        };
        print!("{}", view::describe(&node, &events, &sensors));
        Ok(())
    })
}

/// Asks for a fetch now and waits (with a spinner line) until the source was looked at.
pub fn sync(data_dir: &Path) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = ControlPlaneClient::open(data_dir)?;
        let before = cp.source().await?.last_fetch_unix_ms;
        cp.sync().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = cp.source().await?;
            if s.last_fetch_unix_ms > before {
                print!("{}", view::source(&s, Output::Table));
                if !s.ready {
                    bail!("the newest revision was refused ({})", s.reason);
                }
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the control plane did not fetch within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

pub fn events(data_dir: &Path, watch: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let cp = ControlPlaneClient::open(data_dir)?;
        let mut since = 0;
        loop {
            let batch = cp.events(since).await?;
            if let Some(last) = batch.last() {
                since = last.sequence;
            }
            print!("{}", view::events(&batch));
            use std::io::Write as _;
            std::io::stdout().flush().ok();
            if !watch {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// One progress bar per roll-out, until every one has ended.
async fn watch_rollouts(cp: &ControlPlaneClient) -> anyhow::Result<()> {
    use racklet_gitops::firmware::RolloutState;
    let bars = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} trays  {msg}",
    )?
    .progress_chars("=> ");
    let mut shown: Vec<(String, indicatif::ProgressBar)> = Vec::new();
    loop {
        let rollouts = cp.rollouts().await?;
        for r in &rollouts {
            let bar = match shown.iter().find(|(c, _)| *c == r.chassis) {
                Some((_, b)) => b.clone(),
                None => {
                    let b = bars.add(indicatif::ProgressBar::new(r.trays.len() as u64));
                    b.set_style(style.clone());
                    b.set_prefix(r.chassis.clone());
                    shown.push((r.chassis.clone(), b.clone()));
                    b
                }
            };
            bar.set_length(r.trays.len() as u64);
            bar.set_position(r.done() as u64);
            bar.set_message(format!("v{}: {}", r.version, r.message));
            if r.state != RolloutState::Running {
                bar.finish();
            }
        }
        // Nothing to follow yet (a policy just committed is fetched at the next poll).
        if !rollouts.is_empty() && rollouts.iter().all(|r| r.state != RolloutState::Running) {
            let stopped: Vec<_> = rollouts
                .iter()
                .filter(|r| r.state == RolloutState::Stopped)
                .map(|r| format!("{}: {}", r.chassis, r.message))
                .collect();
            if !stopped.is_empty() {
                bail!("roll-out stopped: {}", stopped.join("; "));
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
