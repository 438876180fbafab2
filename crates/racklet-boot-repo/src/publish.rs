//! Publishing: a revision's boot profiles become the targets of a TUF repository in a
//! directory the control plane serves (`metadata/`, `targets/`, plain TUF 1.0 layout with
//! consistent snapshots). Publishing is level-triggered and idempotent: it signs new
//! metadata only when the targets, the root or the keys changed, or when the timestamp
//! (or the snapshot or targets) has less than half of its lifetime left. Files are
//! written content-addressed first and `timestamp.json` last, each atomically, so a
//! client never sees metadata that names a file not yet there.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tough::editor::RepositoryEditor;
use tough::schema::{Hashes, Signed, Snapshot, Target, Targets, Timestamp};

use crate::keys::{expiry, KeyError, KeyStore};
use crate::profile::{Part, ProfileDocument};

/// One boot profile of a revision with its files' bytes.
#[derive(Debug, Clone)]
pub struct ProfilePayload {
    pub name: String,
    pub architecture: String,
    pub command_line: String,
    pub kernel: Vec<u8>,
    pub initramfs: Vec<u8>,
    pub device_tree: Option<Vec<u8>>,
}

/// How long signed metadata stays valid.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub targets: jiff::SignedDuration,
    pub snapshot: jiff::SignedDuration,
    pub timestamp: jiff::SignedDuration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            targets: jiff::SignedDuration::from_hours(24 * 7),
            snapshot: jiff::SignedDuration::from_hours(24 * 7),
            timestamp: jiff::SignedDuration::from_hours(24),
        }
    }
}

/// The versions of a repository's metadata; also the floor a publisher never goes below
/// (the versions a previous leader published) and what a BMC's anti-rollback counter holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    pub root: u64,
    pub targets: u64,
    pub snapshot: u64,
    pub timestamp: u64,
}

impl Versions {
    /// The higher of each.
    pub fn max(self, other: Versions) -> Versions {
        Versions {
            root: self.root.max(other.root),
            targets: self.targets.max(other.targets),
            snapshot: self.snapshot.max(other.snapshot),
            timestamp: self.timestamp.max(other.timestamp),
        }
    }
}

/// What the repository holds after a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub versions: Versions,
    /// The commit the targets came from.
    pub git_commit: String,
    pub profiles: Vec<String>,
    /// When the timestamp expires, RFC 3339.
    pub timestamp_expires: String,
    /// True when this pass signed new metadata.
    pub changed: bool,
}

/// Why publishing failed; the repository is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot sign the boot repository's metadata: {0}")]
    Sign(String),
    #[error("boot profile {profile:?}: {reason}")]
    Profile { profile: String, reason: String },
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
    #[error("cannot prepare {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The directory a repository is published in.
#[derive(Debug, Clone)]
pub struct BootRepository {
    dir: PathBuf,
}

/// The metadata in force, read back from the directory.
struct Current {
    versions: Versions,
    targets: Signed<Targets>,
    earliest_half_life: jiff::Timestamp,
    timestamp_expires: jiff::Timestamp,
}

impl BootRepository {
    pub fn new(dir: impl Into<PathBuf>) -> BootRepository {
        BootRepository { dir: dir.into() }
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }

    /// Makes the repository show `profiles` of `commit`, signed with `keys`; versions go
    /// above both what is on disk and `floor`. Does nothing when it shows them already
    /// and no metadata is near its expiry.
    pub async fn publish(
        &self,
        keys: &KeyStore,
        commit: &str,
        profiles: &[ProfilePayload],
        floor: Versions,
        now: jiff::Timestamp,
        lifetimes: Lifetimes,
    ) -> Result<Published, PublishError> {
        let (root_version, _, _) = keys.latest_root()?;
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut targets: HashMap<String, Target> = HashMap::new();
        for p in profiles {
            for (name, bytes, part) in profile_files(p, commit)? {
                targets.insert(name.clone(), target(&bytes, &p.name, part, commit));
                files.insert(name, bytes);
            }
        }
        let names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
        let current = self.current(lifetimes)?;
        if let Some(c) = &current {
            let same_targets = serde_json::to_value(&c.targets.signed.targets).ok()
                == serde_json::to_value(&targets).ok();
            // Versions below the floor (another leader published higher ones) are republished
            // above it at once: the nodes' BMCs would refuse them as a rollback.
            let above_floor = c.versions.targets >= floor.targets
                && c.versions.snapshot >= floor.snapshot
                && c.versions.timestamp >= floor.timestamp;
            if same_targets
                && above_floor
                && c.versions.root == root_version
                && now < c.earliest_half_life
            {
                return Ok(Published {
                    versions: c.versions,
                    git_commit: commit.to_string(),
                    profiles: names,
                    timestamp_expires: c.timestamp_expires.to_string(),
                    changed: false,
                });
            }
        }
        let base = current
            .as_ref()
            .map(|c| c.versions)
            .unwrap_or_default()
            .max(floor);
        let next = |v: u64| NonZeroU64::new(v.saturating_add(1)).unwrap_or(NonZeroU64::MIN);
        let versions = Versions {
            root: root_version,
            targets: next(base.targets).get(),
            snapshot: next(base.snapshot).get(),
            timestamp: next(base.timestamp).get(),
        };

        // Targets first: content-addressed, so a file in use is never replaced.
        let targets_dir = self.targets_dir();
        create_dir(&targets_dir)?;
        for (name, bytes) in &files {
            let path = targets_dir.join(format!("{}.{name}", sha256_hex(bytes)));
            if !path.is_file() {
                racklet_files::write_atomic(&path, bytes, racklet_files::Access::Public)?;
            }
        }

        let sign = |e: tough::error::Error| PublishError::Sign(e.to_string());
        let mut editor = RepositoryEditor::new(keys.latest_root_path()?)
            .await
            .map_err(sign)?;
        for (name, t) in &targets {
            editor.add_target(name.as_str(), t.clone()).map_err(sign)?;
        }
        editor
            .targets_version(next(base.targets))
            .map_err(sign)?
            .targets_expires(expiry(now, lifetimes.targets))
            .map_err(sign)?
            .snapshot_version(next(base.snapshot))
            .snapshot_expires(expiry(now, lifetimes.snapshot))
            .timestamp_version(next(base.timestamp))
            .timestamp_expires(expiry(now, lifetimes.timestamp));
        let signed = editor.sign(&keys.online_keys()?).await.map_err(sign)?;

        // Metadata is signed into a staging directory, then moved into place one file
        // at a time: the root chain, targets, snapshot, and the timestamp last.
        let staging = self.dir.join("staging");
        let _ = std::fs::remove_dir_all(&staging);
        create_dir(&staging)?;
        signed.write(&staging).await.map_err(sign)?;
        let metadata = self.metadata_dir();
        create_dir(&metadata)?;
        for (_, path) in keys.root_versions()? {
            let name = path.file_name().unwrap_or_default();
            copy(&path, &metadata.join(name))?;
        }
        for name in [
            format!("{}.targets.json", versions.targets),
            format!("{}.snapshot.json", versions.snapshot),
            "timestamp.json".to_string(),
        ] {
            copy(&staging.join(&name), &metadata.join(&name))?;
        }
        // Last: `root.json` says which root the metadata in force is signed under, so a
        // pass cut short before here is done again by the next one.
        copy(&keys.latest_root_path()?, &metadata.join("root.json"))?;
        let _ = std::fs::remove_dir_all(&staging);
        self.collect_garbage(&versions, &files);
        Ok(Published {
            versions,
            git_commit: commit.to_string(),
            profiles: names,
            timestamp_expires: expiry(now, lifetimes.timestamp).to_string(),
            changed: true,
        })
    }

    /// The metadata in force, or `None` for an empty directory.
    fn current(&self, lifetimes: Lifetimes) -> Result<Option<Current>, PublishError> {
        let metadata = self.metadata_dir();
        let Some(timestamp) = read_json::<Signed<Timestamp>>(&metadata.join("timestamp.json"))?
        else {
            return Ok(None);
        };
        let Some(snapshot_version) = timestamp
            .signed
            .meta
            .get("snapshot.json")
            .map(|m| m.version.get())
        else {
            return Ok(None);
        };
        let Some(snapshot) = read_json::<Signed<Snapshot>>(
            &metadata.join(format!("{snapshot_version}.snapshot.json")),
        )?
        else {
            return Ok(None);
        };
        let Some(targets_version) = snapshot
            .signed
            .meta
            .get("targets.json")
            .map(|m| m.version.get())
        else {
            return Ok(None);
        };
        let Some(targets) = read_json::<Signed<Targets>>(
            &metadata.join(format!("{targets_version}.targets.json")),
        )?
        else {
            return Ok(None);
        };
        let root_version = read_json::<Signed<tough::schema::Root>>(&metadata.join("root.json"))?
            .map_or(0, |r| r.signed.version.get());
        // Re-signed once half of a role's lifetime is gone, long before a client could
        // see it expire.
        let half = |expires: jiff::Timestamp, lifetime: jiff::SignedDuration| {
            expires.checked_sub(lifetime / 2).unwrap_or(expires)
        };
        let earliest_half_life = [
            half(timestamp.signed.expires, lifetimes.timestamp),
            half(snapshot.signed.expires, lifetimes.snapshot),
            half(targets.signed.expires, lifetimes.targets),
        ]
        .into_iter()
        .min()
        .unwrap_or(timestamp.signed.expires);
        Ok(Some(Current {
            versions: Versions {
                root: root_version,
                targets: targets_version,
                snapshot: snapshot_version,
                timestamp: timestamp.signed.version.get(),
            },
            timestamp_expires: timestamp.signed.expires,
            targets,
            earliest_half_life,
        }))
    }

    /// Removes metadata two or more versions old and target files no kept version names.
    /// Clients in the middle of an update still find the previous version.
    fn collect_garbage(&self, versions: &Versions, files: &BTreeMap<String, Vec<u8>>) {
        let metadata = self.metadata_dir();
        let mut keep: Vec<String> = files
            .iter()
            .map(|(name, bytes)| format!("{}.{name}", sha256_hex(bytes)))
            .collect();
        let previous = versions.targets.saturating_sub(1);
        if let Ok(Some(t)) =
            read_json::<Signed<Targets>>(&metadata.join(format!("{previous}.targets.json")))
        {
            for (name, target) in &t.signed.targets {
                keep.push(format!(
                    "{}.{}",
                    hex::encode(&target.hashes.sha256),
                    name.raw()
                ));
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.targets_dir()) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep.contains(&name) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&metadata) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                let old = |suffix: &str, current: u64| {
                    name.strip_suffix(suffix)
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|v| v + 1 < current)
                };
                if old(".targets.json", versions.targets)
                    || old(".snapshot.json", versions.snapshot)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// A profile's target files: its document, kernel, initramfs and device tree, named
/// `PROFILE.PART` (flat names: every TUF client maps them to the same URL).
fn profile_files(
    p: &ProfilePayload,
    commit: &str,
) -> Result<Vec<(String, Vec<u8>, Part)>, PublishError> {
    let mut out = vec![
        (Part::Kernel.target(&p.name), p.kernel.clone(), Part::Kernel),
        (
            Part::Initramfs.target(&p.name),
            p.initramfs.clone(),
            Part::Initramfs,
        ),
    ];
    if let Some(dt) = &p.device_tree {
        out.push((
            Part::DeviceTree.target(&p.name),
            dt.clone(),
            Part::DeviceTree,
        ));
    }
    let doc = ProfileDocument {
        profile: p.name.clone(),
        architecture: p.architecture.clone(),
        command_line: p.command_line.clone(),
        kernel: Part::Kernel.target(&p.name),
        initramfs: Part::Initramfs.target(&p.name),
        device_tree: p
            .device_tree
            .as_ref()
            .map(|_| Part::DeviceTree.target(&p.name)),
        git_commit: commit.to_string(),
    };
    let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| PublishError::Profile {
        profile: p.name.clone(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    out.push((Part::Profile.target(&p.name), bytes, Part::Profile));
    Ok(out)
}

/// A target entry: length, SHA-256, and in `custom` the profile, the part and the Git
/// commit it came from.
fn target(bytes: &[u8], profile: &str, part: Part, commit: &str) -> Target {
    let custom = serde_json::json!({
        "profile": profile,
        "part": part.as_str(),
        "gitCommit": commit,
    });
    Target {
        length: bytes.len() as u64,
        hashes: Hashes {
            sha256: sha256(bytes).to_vec().into(),
            _extra: HashMap::new(),
        },
        custom: HashMap::from([("racklet".to_string(), custom)]),
        _extra: HashMap::new(),
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, PublishError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| PublishError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PublishError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), PublishError> {
    let bytes = std::fs::read(from).map_err(|e| PublishError::Read {
        path: from.to_path_buf(),
        reason: e.to_string(),
    })?;
    racklet_files::write_atomic(to, &bytes, racklet_files::Access::Public)?;
    Ok(())
}

fn create_dir(path: &Path) -> Result<(), PublishError> {
    std::fs::create_dir_all(path).map_err(|source| PublishError::Dir {
        path: path.to_path_buf(),
        source,
    })
}
