//! The boot itself: configuration from the BMC, the trusted root by its digest, the
//! repository verified against the BMC's counters, the counters raised, the payload
//! streamed and measured, the measurement reported, the hand-off. Every failure is one
//! console line (`racklet-bootstrap: …`) and a `Failed` report to the BMC; the profile is
//! retried with back-off, then the known-good one; nothing unverified is handed off.

use std::path::PathBuf;
use std::time::Duration;

use racklet_boot_repo::{ClientError, HttpsTransport, VerifiedRepository, Versions};
use racklet_mgmt_proto::boot_channel::{FromBmc, FromHost};
use racklet_mgmt_proto::message::{BootVersions, Measurement, NetworkBootConfig, FAILURE_LEN};
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

use crate::channel::{BmcChannel, ChannelError};
use crate::handoff::{Handoff, HandoffError, Payload};

/// Why one attempt at a profile failed.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("the BMC answered {0}")]
    Unexpected(&'static str),
    #[error("the BMC refused: {0:?}")]
    Refused(racklet_mgmt_proto::boot_channel::Refusal),
    #[error("the clock says {now}, before {latest}, the latest time a boot has seen; refusing to judge expiry with it")]
    ClockBehind {
        now: jiff::Timestamp,
        latest: jiff::Timestamp,
    },
    #[error("the BMC's boot URI {0:?} is not an https:// URL")]
    Uri(String),
    #[error(
        "root version {version} from the boot server does not have the SHA-256 the BMC pinned"
    )]
    RootMismatch { version: u64 },
    #[error(transparent)]
    Repository(#[from] ClientError),
    #[error("profile {profile:?} is for {architecture}, this machine is {here}")]
    Architecture {
        profile: String,
        architecture: String,
        here: &'static str,
    },
    #[error("profile {0:?} names a Git commit that is not a SHA-1")]
    Commit(String),
    #[error("cannot stage the payload in {}: {reason}", dir.display())]
    Stage { dir: PathBuf, reason: String },
    #[error(transparent)]
    Handoff(#[from] HandoffError),
}

/// How often and how patiently to try.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts per profile.
    pub attempts: u32,
    /// The first wait; it doubles after each failure.
    pub backoff: Duration,
    /// A download that stalls this long fails.
    pub read_timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            backoff: Duration::from_secs(2),
            read_timeout: Duration::from_secs(20),
        }
    }
}

/// How the bootstrap ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handed off (a real hand-off never returns; an A/B disk reboots next).
    HandedOff { profile: String, fell_back: bool },
    /// Nothing could be verified: the node stays in the bootstrap.
    GaveUp,
}

/// The bootstrap agent.
pub struct Bootstrap<W, H> {
    pub channel: BmcChannel<W>,
    pub handoff: H,
    /// Where the payload is staged (a tmpfs in the initramfs).
    pub work_dir: PathBuf,
    pub retry: Retry,
    /// Where console lines go (the console on a board).
    pub console: Box<dyn FnMut(&str) + Send>,
    /// The node's address, handed to the booted system.
    pub network: Option<crate::node::Network>,
}

impl<W: AsyncRead + AsyncWrite + Unpin, H: Handoff> Bootstrap<W, H> {
    fn say(&mut self, line: &str) {
        (self.console)(&format!("racklet-bootstrap: {line}"));
    }

    /// Boots the configured profile, or its known-good fallback, or gives up.
    pub async fn run(&mut self) -> Outcome {
        let mut wait = self.retry.backoff;
        let mut asked = 0;
        let (config, accepted, latest) = loop {
            asked += 1;
            match self.channel.ask(&FromHost::GetConfig).await {
                Ok(FromBmc::Config {
                    config,
                    accepted,
                    latest_time_unix,
                }) => break (config, accepted, latest_time_unix),
                Ok(_) => self.say("the BMC answered something other than a configuration"),
                Err(e) => self.say(&e.to_string()),
            }
            if asked >= self.retry.attempts {
                self.say("no configuration from the BMC; staying in the bootstrap");
                return Outcome::GaveUp;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        };
        let mut candidates = vec![(config.profile.to_string(), false)];
        if let Some(k) = &config.known_good {
            candidates.push((k.to_string(), true));
        }
        for (profile, fell_back) in candidates {
            let mut wait = self.retry.backoff;
            for attempt in 1..=self.retry.attempts {
                self.say(&format!(
                    "booting profile {profile} (attempt {attempt} of {})",
                    self.retry.attempts
                ));
                match self
                    .attempt(&config, accepted, latest, &profile, fell_back)
                    .await
                {
                    Ok(()) => return Outcome::HandedOff { profile, fell_back },
                    Err(e) => {
                        let line = format!("profile {profile}: {e}");
                        self.say(&line);
                        let mut message = heapless::String::<FAILURE_LEN>::new();
                        for c in line.chars() {
                            if message.push(c).is_err() {
                                break;
                            }
                        }
                        // The console already has the whole line; the BMC gets what fits.
                        let _ = self.channel.ask(&FromHost::Failed { message }).await;
                    }
                }
                if attempt < self.retry.attempts {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
            if !fell_back && config.known_good.is_some() {
                self.say("falling back to the known-good profile");
            }
        }
        self.say("nothing verified; staying in the bootstrap");
        Outcome::GaveUp
    }

    async fn attempt(
        &mut self,
        config: &NetworkBootConfig,
        accepted: BootVersions,
        latest_unix: u64,
        profile: &str,
        fell_back: bool,
    ) -> Result<(), BootError> {
        let now = jiff::Timestamp::now();
        let latest = jiff::Timestamp::from_second(i64::try_from(latest_unix).unwrap_or(i64::MAX))
            .unwrap_or(jiff::Timestamp::MAX);
        if now < latest {
            return Err(BootError::ClockBehind { now, latest });
        }
        let base = Url::parse(&config.uri)
            .ok()
            .filter(|u| u.scheme() == "https")
            .ok_or_else(|| BootError::Uri(config.uri.to_string()))?;
        let transport = HttpsTransport::pinned_sha256(
            config.server_certificate_sha256,
            self.retry.read_timeout,
        )?;
        let root_url = base
            .join(&format!("metadata/{}.root.json", config.root_version))
            .map_err(|_| BootError::Uri(config.uri.to_string()))?;
        let root = transport.get(&root_url, 1 << 20).await?;
        if racklet_boot_repo::client::sha256(&root) != config.root_sha256 {
            return Err(BootError::RootMismatch {
                version: config.root_version,
            });
        }
        let floor = Versions {
            root: accepted.root,
            targets: accepted.targets,
            snapshot: accepted.snapshot,
            timestamp: accepted.timestamp,
        };
        let repo = VerifiedRepository::load(&root, &base, transport, floor, None).await?;
        let v = repo.versions();
        let versions = BootVersions {
            root: v.root,
            targets: v.targets,
            snapshot: v.snapshot,
            timestamp: v.timestamp,
        };
        // The counters go up before anything is fetched: a replay of this metadata later
        // is a rollback even if this boot fails.
        let now_unix = u64::try_from(now.as_second()).unwrap_or(0);
        expect_ack(
            self.channel
                .ask(&FromHost::Accept {
                    versions,
                    time_unix: now_unix,
                })
                .await?,
        )?;
        let doc = repo.profile(profile).await?;
        let here = std::env::consts::ARCH;
        if doc.architecture != here {
            return Err(BootError::Architecture {
                profile: profile.into(),
                architecture: doc.architecture,
                here,
            });
        }
        let mut git_commit = [0u8; 20];
        hex::decode_to_slice(&doc.git_commit, &mut git_commit)
            .map_err(|_| BootError::Commit(doc.git_commit.clone()))?;
        let stage_err = |reason: String| BootError::Stage {
            dir: self.work_dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&self.work_dir).map_err(|e| stage_err(e.to_string()))?;
        let kernel_path = self.work_dir.join("kernel");
        let initramfs_path = self.work_dir.join("initramfs");
        let kernel_sha256 = stream_to(&repo, &doc.kernel, &kernel_path).await?;
        let initramfs_sha256 = stream_to(&repo, &doc.initramfs, &initramfs_path).await?;
        let mut name = heapless::String::new();
        for c in profile.chars() {
            name.push(c)
                .map_err(|_| stage_err("profile name too long".into()))?;
        }
        // The identity goes to the booted system with the payload; asked before the
        // measurement, after which the BMC answers nothing until the next power-on.
        let seed = match self.channel.ask(&FromHost::NodeIdentity).await? {
            FromBmc::NodeIdentity { seed } => seed,
            FromBmc::Refused(r) => return Err(BootError::Refused(r)),
            _ => {
                return Err(BootError::Unexpected(
                    "something other than the node identity",
                ))
            }
        };
        let handover = crate::node::Handover {
            control_plane: base
                .join("/")
                .map_err(|_| BootError::Uri(config.uri.to_string()))?
                .to_string(),
            server_certificate_sha256: hex::encode(config.server_certificate_sha256),
            profile: profile.into(),
            git_commit: doc.git_commit.clone(),
            kernel_sha256: hex::encode(kernel_sha256),
            initramfs_sha256: hex::encode(initramfs_sha256),
            network: self.network.clone(),
            identity_seed: hex::encode(seed),
        }
        .archive()
        .map_err(|e| stage_err(e.to_string()))?;
        expect_ack(
            self.channel
                .ask(&FromHost::Measured(Measurement {
                    profile: name,
                    git_commit,
                    kernel_sha256,
                    initramfs_sha256,
                    versions,
                    fell_back,
                }))
                .await?,
        )?;
        self.say(&format!(
            "verified {profile} from commit {}: kernel sha256:{} initramfs sha256:{}; handing off",
            doc.git_commit,
            hex::encode(kernel_sha256),
            hex::encode(initramfs_sha256)
        ));
        self.handoff.hand_off(&Payload {
            profile: profile.into(),
            kernel: kernel_path,
            initramfs: initramfs_path,
            command_line: doc.command_line,
            handover,
        })?;
        Ok(())
    }
}

/// Only an `Ack` acknowledges; anything else (a late answer to an earlier request) is not.
fn expect_ack(answer: FromBmc) -> Result<(), BootError> {
    match answer {
        FromBmc::Ack => Ok(()),
        FromBmc::Refused(r) => Err(BootError::Refused(r)),
        _ => Err(BootError::Unexpected(
            "something other than an acknowledgement",
        )),
    }
}

/// Streams a target to `path`; the file is removed unless it verified.
async fn stream_to(
    repo: &VerifiedRepository,
    target: &str,
    path: &std::path::Path,
) -> Result<[u8; 32], BootError> {
    use std::io::Write as _;
    let stage = |reason: String| BootError::Stage {
        dir: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::create(path).map_err(|e| stage(e.to_string()))?;
    let result = repo
        .read_target(target, |chunk| {
            file.write_all(chunk).map_err(|e| e.to_string())
        })
        .await;
    match result {
        Ok((_, digest)) => Ok(digest),
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(path);
            Err(e.into())
        }
    }
}
