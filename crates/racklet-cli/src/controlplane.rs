//! Starting the control plane for `racklet up`: its own Redfish account on every chassis
//! (an Operator, made once through Redfish with the first-start admin password), the
//! embedded state store, and the HTTPS API.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use racklet_gitops::git::{current_branch, Reference, SourceSpec};
use racklet_gitops::power::{ChassisEndpoint, DriftPolicy};
use racklet_gitops::store::RedbStore;
use racklet_gitops::{Config, ControlPlane};
use racklet_redfish_client::{Client, Endpoint};
use serde::{Deserialize, Serialize};

const ACCOUNT: &str = "racklet-controlplane";

#[derive(Serialize, Deserialize)]
struct Credentials {
    user: String,
    password: String,
}

/// The control plane's credentials for one chassis' Redfish service, created on first use.
pub async fn redfish_account(
    dir: &Path,
    chassis: &str,
    base: &str,
    ca: &[u8],
    admin_password_file: &Path,
) -> anyhow::Result<Endpoint> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("redfish-{chassis}.json"));
    if let Ok(bytes) = std::fs::read(&path) {
        let c: Credentials = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is corrupt; remove it and the account {ACCOUNT} to start over",
                path.display()
            )
        })?;
        let endpoint = Endpoint {
            base: base.into(),
            user: c.user,
            password: c.password,
            ca_pem: Some(ca.to_vec()),
        };
        let check = Client::new(endpoint.clone(), Duration::from_secs(10))?;
        match check.get("/redfish/v1/Systems").await {
            Err(racklet_redfish_client::ClientError::Unauthorized { .. }) => {
                // Saved, but the account was never made (a crash in between): make it below.
            }
            _ => {
                check.logout().await;
                return Ok(endpoint);
            }
        }
    }
    let admin = std::fs::read_to_string(admin_password_file).with_context(|| {
        format!(
            "the control plane has no Redfish account on {chassis} yet and needs the admin password to make one, but {} is gone",
            admin_password_file.display()
        )
    })?;
    let client = Client::new(
        Endpoint {
            base: base.into(),
            user: "admin".into(),
            password: admin.trim().to_string(),
            ca_pem: Some(ca.to_vec()),
        },
        Duration::from_secs(10),
    )?;
    let mut b = [0u8; 24];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    let password = hex::encode(b);
    let c = Credentials {
        user: ACCOUNT.into(),
        password: password.clone(),
    };
    // Saved (atomically, owner-only) before the account exists, so a crash in between
    // leaves credentials that the next start can still make true.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec(&c)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    let created = client
        .post_json(
            "/redfish/v1/AccountService/Accounts",
            serde_json::json!({"UserName": ACCOUNT, "Password": password, "RoleId": "Operator"}),
        )
        .await;
    if let Err(e) = created {
        // It exists from an earlier start that died before saving: set the password.
        client
            .patch(
                &format!("/redfish/v1/AccountService/Accounts/{ACCOUNT}"),
                serde_json::json!({"Password": password}),
            )
            .await
            .with_context(|| format!("cannot create the account {ACCOUNT} on {chassis} ({e})"))?;
    }
    client.logout().await;
    Ok(Endpoint {
        base: base.into(),
        user: c.user,
        password: c.password,
        ca_pem: Some(ca.to_vec()),
    })
}

/// Starts the control plane on `repo` and its API; returns where the API listens.
pub async fn start(
    data_dir: &Path,
    repo: &Path,
    chassis: Vec<ChassisEndpoint>,
    poll: Duration,
    drift: DriftPolicy,
    addr: SocketAddr,
) -> anyhow::Result<racklet_gitops::api::Running> {
    let dir = data_dir.join("controlplane");
    let repo = std::fs::canonicalize(repo).unwrap_or(repo.to_path_buf());
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
    };
    let store = Arc::new(RedbStore::open(&dir.join("state.redb"))?);
    let plane = ControlPlane::new(config, store).await?;
    tokio::spawn(plane.clone().run());
    Ok(racklet_gitops::api::serve(plane, &dir, addr).await?)
}
