//! Chassis onboarding: the control plane's own Redfish account on a chassis (an Operator,
//! made once through Redfish with the chassis' first-start admin password). Its
//! credentials are saved owner-only *before* the account is made, so a crash in between
//! leaves credentials the next start can still make true.

use std::path::{Path, PathBuf};
use std::time::Duration;

use racklet_redfish_client::{Client, ClientError, Endpoint};
use serde::{Deserialize, Serialize};

/// The account's user name on every chassis.
pub const ACCOUNT: &str = "racklet-controlplane";

#[derive(Serialize, Deserialize)]
struct Credentials {
    user: String,
    password: String,
}

/// Why the control plane has no account on a chassis.
#[derive(Debug, thiserror::Error)]
pub enum OnboardError {
    #[error("{} is corrupt; remove it and the account {ACCOUNT} on the chassis to start over", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the control plane has no Redfish account on {chassis} yet and needs the admin password in {} to make one", path.display())]
    NoAdminPassword {
        chassis: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Save(#[from] racklet_files::WriteError),
    #[error("cannot create the account {ACCOUNT} on {chassis}")]
    Redfish {
        chassis: String,
        #[source]
        source: ClientError,
    },
}

/// Where a chassis' Redfish service is and how to reach it as administrator once.
pub struct Chassis<'a> {
    pub name: &'a str,
    /// `https://HOST:PORT`.
    pub base: &'a str,
    /// The service's certificate (PEM).
    pub ca_pem: &'a [u8],
    pub admin_password_file: &'a Path,
}

/// The control plane's endpoint on `chassis`, with the account in `credentials` (made now
/// if it does not exist yet).
pub async fn account(chassis: &Chassis<'_>, credentials: &Path) -> Result<Endpoint, OnboardError> {
    let endpoint = |c: Credentials| Endpoint {
        base: chassis.base.into(),
        user: c.user,
        password: c.password,
        ca_pem: Some(chassis.ca_pem.to_vec()),
    };
    let redfish = |source| OnboardError::Redfish {
        chassis: chassis.name.into(),
        source,
    };
    if let Ok(bytes) = std::fs::read(credentials) {
        let c: Credentials =
            serde_json::from_slice(&bytes).map_err(|source| OnboardError::Corrupt {
                path: credentials.to_path_buf(),
                source,
            })?;
        let saved = endpoint(c);
        let check = Client::new(saved.clone(), Duration::from_secs(10)).map_err(redfish)?;
        match check.get("/redfish/v1/Systems").await {
            // Saved, but the account was never made (a crash in between): make it below.
            Err(ClientError::Unauthorized { .. }) => {}
            _ => {
                check.logout().await;
                return Ok(saved);
            }
        }
    }
    let admin = std::fs::read_to_string(chassis.admin_password_file).map_err(|source| {
        OnboardError::NoAdminPassword {
            chassis: chassis.name.into(),
            path: chassis.admin_password_file.to_path_buf(),
            source,
        }
    })?;
    let client = Client::new(
        Endpoint {
            base: chassis.base.into(),
            user: "admin".into(),
            password: admin.trim().to_string(),
            ca_pem: Some(chassis.ca_pem.to_vec()),
        },
        Duration::from_secs(10),
    )
    .map_err(redfish)?;
    let mut b = [0u8; 24];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    let c = Credentials {
        user: ACCOUNT.into(),
        password: hex::encode(b),
    };
    let bytes = serde_json::to_vec(&c).map_err(|source| OnboardError::Corrupt {
        path: credentials.to_path_buf(),
        source,
    })?;
    racklet_files::write_secret(credentials, &bytes)?;
    let created = client
        .post_json(
            "/redfish/v1/AccountService/Accounts",
            serde_json::json!({"UserName": ACCOUNT, "Password": c.password, "RoleId": "Operator"}),
        )
        .await;
    if created.is_err() {
        // It exists from an earlier start that died before saving: set the password.
        client
            .patch(
                &format!("/redfish/v1/AccountService/Accounts/{ACCOUNT}"),
                serde_json::json!({"Password": c.password}),
            )
            .await
            .map_err(redfish)?;
    }
    client.logout().await;
    Ok(endpoint(c))
}
