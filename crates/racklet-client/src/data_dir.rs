//! The data directory of a running rack (`racklet up --data-dir DIR`): one type owns its
//! layout, so the process that writes a file and the one that reads it cannot disagree
//! on where it is.
//!
//! ```text
//! DIR/endpoints.json                       where everything listens (written last at start-up)
//! DIR/repo/                                the Git repository the control plane follows
//! DIR/firmware-signing-key                 the key the twin's BMCs trust (owner-only)
//! DIR/controlplane/token                   the API's bearer token (owner-only)
//! DIR/controlplane/webhook-secret          the key Git servers sign webhook calls with
//! DIR/controlplane/tls/{cert,key}.pem      the API's certificate
//! DIR/controlplane/state.redb              the control plane's state
//! DIR/controlplane/redfish-CHASSIS.json    its Redfish account on each chassis (owner-only)
//! DIR/redfish/CHASSIS/                     each chassis' Redfish service (TLS, accounts, tasks)
//! DIR/rmd/CHASSIS/                         each chassis' rack management daemon
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One entry of `endpoints.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
}

/// Name of the control plane's entry in `endpoints.json`.
pub const CONTROL_PLANE: &str = "controlplane";

/// Why the data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot read {}: is `racklet up --data-dir {}` running?", path.display(), root.display())]
    NotRunning {
        path: PathBuf,
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a list of endpoints", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} lists no {name} endpoint", path.display())]
    NoEndpoint { path: PathBuf, name: String },
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
}

/// A data directory and its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn endpoints_file(&self) -> PathBuf {
        self.root.join("endpoints.json")
    }

    pub fn repository(&self) -> PathBuf {
        self.root.join("repo")
    }

    pub fn firmware_signing_key(&self) -> PathBuf {
        self.root.join("firmware-signing-key")
    }

    /// The control plane's own directory.
    pub fn control_plane(&self) -> PathBuf {
        self.root.join("controlplane")
    }

    pub fn api_token(&self) -> PathBuf {
        self.control_plane().join("token")
    }

    pub fn api_certificate(&self) -> PathBuf {
        self.control_plane().join("tls").join("cert.pem")
    }

    pub fn control_plane_state(&self) -> PathBuf {
        self.control_plane().join("state.redb")
    }

    /// The control plane's Redfish account on `chassis`.
    pub fn chassis_account(&self, chassis: &str) -> PathBuf {
        self.control_plane().join(format!("redfish-{chassis}.json"))
    }

    /// The Redfish service of `chassis`.
    pub fn redfish(&self, chassis: &str) -> PathBuf {
        self.root.join("redfish").join(chassis)
    }

    /// The certificate of `chassis`' Redfish service.
    pub fn redfish_certificate(&self, chassis: &str) -> PathBuf {
        self.redfish(chassis).join("tls").join("cert.pem")
    }

    /// The first-start admin password of `chassis`' Redfish service.
    pub fn redfish_admin_password(&self, chassis: &str) -> PathBuf {
        self.redfish(chassis).join("initial-admin-password")
    }

    /// The rack management daemon of `chassis`.
    pub fn daemon(&self, chassis: &str) -> PathBuf {
        self.root.join("rmd").join(chassis)
    }

    /// What `racklet up` wrote to `endpoints.json`.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, DataDirError> {
        let path = self.endpoints_file();
        let bytes = std::fs::read(&path).map_err(|source| DataDirError::NotRunning {
            path: path.clone(),
            root: self.root.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| DataDirError::Corrupt { path, source })
    }

    /// The URL of the endpoint `name`.
    pub fn endpoint(&self, name: &str) -> Result<String, DataDirError> {
        self.endpoints()?
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.url)
            .ok_or_else(|| DataDirError::NoEndpoint {
                path: self.endpoints_file(),
                name: name.into(),
            })
    }

    /// Replaces `endpoints.json` atomically.
    pub fn write_endpoints(&self, endpoints: &[Endpoint]) -> Result<(), DataDirError> {
        let bytes =
            serde_json::to_vec_pretty(endpoints).map_err(|source| DataDirError::Corrupt {
                path: self.endpoints_file(),
                source,
            })?;
        racklet_files::write_atomic(
            &self.endpoints_file(),
            &bytes,
            racklet_files::Access::Public,
        )?;
        Ok(())
    }

    /// Reads a file of the layout (a token, a certificate).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, DataDirError> {
        std::fs::read(path).map_err(|source| DataDirError::Read {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_trip_and_a_missing_file_says_racklet_up_is_not_running() {
        let root = std::env::temp_dir().join(format!("racklet-datadir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = DataDir::new(&root);
        let e = dir.endpoints().expect_err("nothing written yet");
        assert!(e.to_string().contains("is `racklet up --data-dir"), "{e}");
        std::fs::create_dir_all(&root).expect("mkdir");
        let list = vec![Endpoint {
            name: CONTROL_PLANE.into(),
            url: "https://127.0.0.1:1".into(),
        }];
        dir.write_endpoints(&list).expect("write");
        assert_eq!(
            dir.endpoint(CONTROL_PLANE).expect("found"),
            "https://127.0.0.1:1"
        );
        assert!(matches!(
            dir.endpoint("metrics"),
            Err(DataDirError::NoEndpoint { .. })
        ));
        let _ = std::fs::remove_dir_all(&root);
    }
}
