//! The data directory of a running rack (`racklet up --data-dir DIR`): one type owns its
//! layout, so the process that writes a file and the one that reads it cannot disagree
//! on where it is.
//!
//! ```text
//! DIR/racklet.lock                         held by the one `racklet up` using DIR (its pid)
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
    #[error("another racklet up ({holder}) is using {}; stop it first, or use another --data-dir", root.display())]
    InUse { root: PathBuf, holder: String },
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The exclusive hold of one process on a data dir, released when dropped (or when the
/// process dies: the kernel drops the lock, so a `kill -9` leaves nothing stale).
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
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

    /// The boot repository's keys and root chain (`racklet boot keys`).
    pub fn boot_keys(&self) -> PathBuf {
        self.root.join("boot-keys")
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

    pub fn lock_file(&self) -> PathBuf {
        self.root.join("racklet.lock")
    }

    /// Takes the data dir for this process, before anything in it is touched: a second
    /// `racklet up` on the same dir is refused and names the process that has it. Creates
    /// the directory if needed.
    pub fn lock(&self) -> Result<DataDirLock, DataDirError> {
        use std::io::{Read as _, Seek as _, Write as _};
        let path = self.lock_file();
        let failed = |source| DataDirError::Lock {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.root).map_err(failed)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "a process that has not written its pid yet".to_string(),
                    pid => format!("pid {pid}"),
                };
                return Err(DataDirError::InUse {
                    root: self.root.clone(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
        }
        // Ours now: say who holds it, for the next one who tries.
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        file.write_all(std::process::id().to_string().as_bytes())
            .map_err(failed)?;
        file.sync_all().map_err(failed)?;
        Ok(DataDirLock { _file: file })
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
    fn a_second_holder_of_a_data_dir_is_refused_and_told_who_has_it() {
        let root =
            std::env::temp_dir().join(format!("racklet-datadir-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = DataDir::new(&root);
        let held = dir.lock().expect("first");
        let e = dir.lock().expect_err("second");
        let pid = std::process::id().to_string();
        assert!(
            matches!(&e, DataDirError::InUse { holder, .. } if holder == &format!("pid {pid}")),
            "{e:?}"
        );
        assert!(e.to_string().contains("another racklet up"), "{e}");
        drop(held);
        let _again = dir.lock().expect("free once the first is dropped");
        let _ = std::fs::remove_dir_all(&root);
    }

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
