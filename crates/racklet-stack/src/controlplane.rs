//! Starting the control plane for `racklet up`: the embedded state store, the reconcilers
//! and the HTTPS API, on the data dir's repository.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use racklet_client::DataDir;
use racklet_gitops::git::{current_branch, Reference, SourceSpec};
use racklet_gitops::power::{ChassisEndpoint, DriftPolicy};
use racklet_gitops::store::RedbStore;
use racklet_gitops::{Config, ControlPlane};

/// The control plane `racklet up` runs.
pub type Plane = Arc<ControlPlane<RedbStore>>;

/// Starts the control plane on `repo` and its API; returns where the API listens and the
/// control plane (for its events). Nodes find the boot repository at `boot_host` (the
/// API's port) when given, else at the API's own address.
pub async fn start(
    data_dir: &DataDir,
    repo: &Path,
    chassis: Vec<ChassisEndpoint>,
    poll: Duration,
    drift: DriftPolicy,
    addr: SocketAddr,
    boot_host: Option<&str>,
) -> anyhow::Result<(racklet_gitops::api::Running, Plane)> {
    let dir = data_dir.control_plane();
    let repo = std::fs::canonicalize(repo).unwrap_or(repo.to_path_buf());
    // Secure by default: a boot repository signed with keys of this rack's own, made on
    // first start (rotate them with `racklet boot keys rotate ROLE`).
    racklet_boot_repo::KeyStore::open_or_init(data_dir.boot_keys(), jiff::Timestamp::now())?;
    let config = Config {
        source: SourceSpec {
            url: format!("file://{}", repo.display()),
            reference: Reference::Branch(current_branch(&repo)?),
            path: "rack".into(),
            signers: None,
            ca_pem: None,
        },
        dir: dir.clone(),
        poll,
        period: Duration::from_millis(500),
        chassis,
        drift,
        boot_keys: Some(data_dir.boot_keys()),
    };
    let store = Arc::new(RedbStore::open(&data_dir.control_plane_state())?);
    let plane = ControlPlane::new(config, store).await?;
    tokio::spawn(plane.clone().run());
    let api = racklet_gitops::api::serve(plane.clone(), &dir, addr).await?;
    if let Some(host) = boot_host {
        // Set before the reconcilers next run (nothing awaited since `serve` returned).
        plane.set_boot_uri(format!("https://{host}:{}/boot/", api.addr.port()), true);
    }
    Ok((api, plane))
}
