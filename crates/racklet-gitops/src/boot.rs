//! The boot repository reconciler: keeps the TUF boot repository (`racklet-boot-repo`)
//! showing the applied revision's boot profiles, signed with the keys in
//! `Config::boot_keys`. Level-triggered and idempotent: each pass compares what is
//! published with the applied revision, the newest root and the metadata's lifetimes,
//! and signs only when one of them moved. The versions it published are kept in the
//! state store as the floor the next publisher (another replica after a fail-over)
//! never goes below. Served by the API under `/boot/` (`api::routes`).

use std::time::{Duration, Instant};

use racklet_boot_repo::{BootRepository, KeyStore, Lifetimes, ProfilePayload, Published, Versions};

use sha2_std::Digest as _;

use crate::desired::{Desired, DesiredBootProfile};
use crate::events::EventReason;
use crate::power::network_boot::BootServer;
use crate::store::{StateStore, StateStoreExt as _, StoreError};
use crate::{short, ControlPlane};

/// The store key of the last [`Published`] record.
pub const PUBLISHED_KEY: &str = "boot/published";

/// How often an unchanged repository is checked for metadata near its half-life.
const RECHECK: Duration = Duration::from_secs(600);

/// What the reconciler remembers between passes (never needed for correctness).
#[derive(Default)]
pub(crate) struct BootState {
    /// The commit, root version and time of the last pass that found nothing to do.
    settled: Option<(String, u64, Instant)>,
    /// The profiles' bytes of one commit: a pass reads the revision once.
    payloads: Option<(String, Vec<ProfilePayload>)>,
    /// The last failure reported, so it is reported once.
    last_error: Option<String>,
}

impl<S: StateStore> ControlPlane<S> {
    /// The directory the boot repository is published in.
    pub fn boot_repository(&self) -> BootRepository {
        BootRepository::new(self.config().dir.join("boot"))
    }

    /// Where nodes reach the boot repository: `https://HOST:PORT/boot/`. The API sets its
    /// own address when it starts unless this was set first (a twin whose VMs reach the
    /// host at another address).
    pub fn set_boot_uri(&self, uri: String, replace: bool) {
        if let Ok(mut u) = self.boot_uri.lock() {
            if replace || u.is_none() {
                *u = Some(uri);
            }
        }
    }

    /// What network-booting nodes are given: the repository's URL, the newest root of the
    /// boot keys and the API's certificate. `None` without boot keys or before the API runs.
    pub fn boot_server(&self) -> Option<BootServer> {
        let uri = self.boot_uri.lock().ok()?.clone()?;
        let keys = KeyStore::open(self.config().boot_keys.clone()?);
        let (root_version, root, _) = keys.latest_root().ok()?;
        let certificate_pem =
            std::fs::read_to_string(self.config().dir.join("tls").join("cert.pem")).ok()?;
        Some(BootServer {
            uri,
            root_version,
            root_sha256: hex::encode(sha2_std::Sha256::digest(&root)),
            certificate_pem,
        })
    }

    /// One pass of the boot repository reconciler. Does nothing without boot keys or
    /// before a revision is applied.
    pub async fn reconcile_boot(&self) -> Result<(), StoreError> {
        let Some(keys_dir) = self.config().boot_keys.clone() else {
            return Ok(());
        };
        let Some(commit) = self.source_status().await?.applied else {
            return Ok(());
        };
        let Some(desired) = self.store().get_json::<Desired>("applied/desired").await? else {
            return Ok(());
        };
        let keys = KeyStore::open(keys_dir);
        let root_version = keys.latest_root().map(|(v, _, _)| v).unwrap_or(0);
        let mut state = self.boot.lock().await;
        if let Some((c, r, at)) = &state.settled {
            if *c == commit && *r == root_version && at.elapsed() < RECHECK {
                return Ok(());
            }
        }
        let payloads = match &state.payloads {
            Some((c, p)) if *c == commit => p.clone(),
            _ => match self.payloads(&commit, &desired.boot_profiles).await {
                Ok(p) => {
                    state.payloads = Some((commit.clone(), p.clone()));
                    p
                }
                Err(e) => return self.boot_failed(&mut state, e).await,
            },
        };
        let floor = self
            .store()
            .get_json::<Published>(PUBLISHED_KEY)
            .await?
            .map(|p| p.versions)
            .unwrap_or_default();
        let published = self
            .boot_repository()
            .publish(
                &keys,
                &commit,
                &payloads,
                floor,
                jiff::Timestamp::now(),
                Lifetimes::default(),
            )
            .await;
        let published = match published {
            Ok(p) => p,
            Err(e) => return self.boot_failed(&mut state, e.to_string()).await,
        };
        state.last_error = None;
        state.settled = Some((commit.clone(), published.versions.root, Instant::now()));
        let stored = self.store().get_json::<Published>(PUBLISHED_KEY).await?;
        if stored.as_ref().map(|s| s.versions) != Some(published.versions) {
            // The floor for the next publisher, written whenever it moved (also when an
            // earlier pass published but could not record it).
            self.store().put_json(PUBLISHED_KEY, &published).await?;
        }
        if published.changed {
            let Versions {
                root,
                targets,
                timestamp,
                ..
            } = published.versions;
            let profiles = if published.profiles.is_empty() {
                "no profiles".to_string()
            } else {
                format!("profiles: {}", published.profiles.join(", "))
            };
            self.events()
                .record(
                    EventReason::BootRepositoryPublished,
                    &format!(
                        "boot repository: targets version {targets} (root {root}, timestamp {timestamp}) for {} ({profiles})",
                        short(&commit)
                    ),
                )
                .await?;
        }
        Ok(())
    }

    async fn boot_failed(&self, state: &mut BootState, message: String) -> Result<(), StoreError> {
        state.settled = None;
        if state.last_error.as_deref() != Some(message.as_str()) {
            tracing::error!("boot repository: {message}");
            self.events()
                .record(
                    EventReason::BootRepositoryFailed,
                    &format!("boot repository not published: {message}"),
                )
                .await?;
            state.last_error = Some(message);
        }
        Ok(())
    }

    /// The profiles' files from the revision `commit`.
    async fn payloads(
        &self,
        commit: &str,
        profiles: &[DesiredBootProfile],
    ) -> Result<Vec<ProfilePayload>, String> {
        if profiles.is_empty() {
            return Ok(Vec::new());
        }
        let source = self.source.clone();
        let c = commit.to_string();
        let revision = tokio::task::spawn_blocking(move || source.read(&c))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let file = |path: &str| {
            revision
                .files
                .iter()
                .find(|(p, _)| p.as_path() == std::path::Path::new(path))
                .map(|(_, b)| b.clone())
                .ok_or_else(|| format!("{path} is not in revision {}", short(commit)))
        };
        let mut out = Vec::new();
        for p in profiles {
            out.push(ProfilePayload {
                name: p.name.clone(),
                architecture: p.architecture.clone(),
                command_line: p.command_line.clone(),
                kernel: file(&p.kernel)?,
                initramfs: file(&p.initramfs)?,
                device_tree: p.device_tree.as_deref().map(file).transpose()?,
            });
        }
        Ok(out)
    }
}
