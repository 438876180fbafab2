//! What the daemon keeps in its data dir: enrolled BMCs' link keys and approved
//! identities (`state.json`), the trays' boot overrides (`boot.json`) and network boots
//! (`network-boot.json`), each replaced
//! atomically (owner-only temporary file, fsync, rename), and the event log
//! (`events.jsonl`, appended).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use racklet_rmd_api::{BootOverride, NetworkBoot};
use serde::{Deserialize, Serialize};

/// Errors reading or writing the daemon's files. The message names the file and what to
/// do; the cause is the error's `source()` (binaries print the whole chain).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read or write {path}; check the data dir's permissions and free space")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt; restore it from a backup or move it away (for state.json: to re-enroll every BMC)")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
}

/// One enrolled BMC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// Link key, hex.
    pub key: String,
    /// Ed25519 identity, hex.
    pub identity: String,
}

/// The persisted trust state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    /// By BMC serial (hex).
    pub enrolled: BTreeMap<String, Enrolled>,
    /// Identities an operator approved (hex).
    pub approved: Vec<String>,
    /// Identities an operator rejected (hex): never enrolled, shown as refused.
    #[serde(default)]
    pub rejected: Vec<String>,
}

/// The daemon's directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn load(&self) -> Result<TrustState, StoreError> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustState::default()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn save(&self, state: &TrustState) -> Result<(), StoreError> {
        self.write_json(&self.state_path(), state)
    }

    fn boot_path(&self) -> PathBuf {
        self.dir.join("boot.json")
    }

    /// The trays' boot overrides, by slot (none set: empty).
    pub fn load_boot_overrides(&self) -> Result<BTreeMap<u32, BootOverride>, StoreError> {
        let path = self.boot_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Replaces the trays' boot overrides, atomically.
    pub fn save_boot_overrides(
        &self,
        overrides: &BTreeMap<u32, BootOverride>,
    ) -> Result<(), StoreError> {
        self.write_json(&self.boot_path(), overrides)
    }

    fn network_boot_path(&self) -> PathBuf {
        self.dir.join("network-boot.json")
    }

    /// The trays' network boots, by slot (none set: empty).
    pub fn load_network_boots(&self) -> Result<BTreeMap<u32, NetworkBoot>, StoreError> {
        let path = self.network_boot_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Replaces the trays' network boots, atomically.
    pub fn save_network_boots(&self, boots: &BTreeMap<u32, NetworkBoot>) -> Result<(), StoreError> {
        self.write_json(&self.network_boot_path(), boots)
    }

    /// Writes `value` as JSON to `path` atomically: an owner-only temporary file (link
    /// keys are secrets from the moment the file exists), synced, then renamed over.
    fn write_json(&self, path: &Path, value: &impl Serialize) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(racklet_files::write_secret(path, &bytes)?)
    }

    /// The last `keep` events of the log not cleared, oldest first, and the highest
    /// sequence number ever logged. A line that does not parse (the last one, cut short by
    /// a crash) is skipped.
    pub fn load_events(
        &self,
        keep: usize,
    ) -> Result<(Vec<racklet_rmd_api::Event>, u64), StoreError> {
        let path = self.dir.join("events.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let all: Vec<racklet_rmd_api::Event> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // Numbering continues after cleared events, so the last one still counts.
        let last = all.last().cloned();
        let cleared = self.cleared_through();
        let mut events: Vec<_> = all.into_iter().filter(|e| e.sequence > cleared).collect();
        let skip = events.len().saturating_sub(keep);
        events.drain(..skip);
        Ok((events, last.map_or(0, |e| e.sequence)))
    }

    /// Records that the log was cleared through `sequence`: [`Store::load_events`] skips
    /// those from now on, while `events.jsonl` keeps its history for audits.
    pub fn mark_cleared(&self, sequence: u64) -> Result<(), StoreError> {
        let path = self.dir.join("events.cleared");
        Ok(racklet_files::write_secret(
            &path,
            sequence.to_string().as_bytes(),
        )?)
    }

    fn cleared_through(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("events.cleared"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Appends one line to the event log.
    pub fn append_event(&self, line: &str) -> Result<(), StoreError> {
        let path = self.dir.join("events.jsonl");
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        writeln!(f, "{line}").map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use racklet_rmd_api::{BootSourceEnabled, BootSourceTarget};

    #[test]
    fn boot_overrides_round_trip_and_a_corrupt_file_is_named() {
        let dir = std::env::temp_dir().join(format!("racklet-rmd-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("store");
        assert!(store.load_boot_overrides().expect("empty").is_empty());
        let mut map = BTreeMap::new();
        map.insert(
            3,
            BootOverride {
                target: BootSourceTarget::SdCard,
                enabled: BootSourceEnabled::Continuous,
            },
        );
        store.save_boot_overrides(&map).expect("saved");
        assert_eq!(store.load_boot_overrides().expect("loaded"), map);
        let text = std::fs::read_to_string(dir.join("boot.json")).expect("file");
        assert!(text.contains("\"SDCard\""), "{text}");
        assert!(!dir.join("boot.json.tmp").exists());
        std::fs::write(dir.join("boot.json"), "{").expect("write");
        let e = store.load_boot_overrides().expect_err("corrupt");
        assert!(e.to_string().contains("boot.json is corrupt"), "{e}");
        assert!(
            !e.to_string().contains("EOF"),
            "the cause is the source, not the message: {e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
