//! `racklet boot keys init|rotate|show`: the boot repository's keys, in the data dir's
//! `boot-keys/` unless `--keys` names another directory (an offline one for root keys).
//! The running control plane publishes with whatever root is newest there.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use racklet_boot_repo::{KeyOptions, KeyStore, Role};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make the keys and root version 1 (refused where keys exist).
    #[command(
        after_help = "Examples:\n  racklet boot keys init\n  racklet boot keys init --root-keys 3 --root-threshold 2"
    )]
    Init {
        #[command(flatten)]
        keys: KeysDir,
        /// How many root keys.
        #[arg(long, default_value_t = 1)]
        root_keys: usize,
        /// How many root keys must sign a new root.
        #[arg(long, default_value_t = NonZeroU64::MIN)]
        root_threshold: NonZeroU64,
    },
    /// Replace a role's keys: a new root version signed by the old root keys and the
    /// new ones, which clients follow; the retired private keys are deleted.
    #[command(
        after_help = "Examples:\n  racklet boot keys rotate timestamp\n  racklet boot keys rotate root"
    )]
    Rotate {
        role: RoleArg,
        #[command(flatten)]
        keys: KeysDir,
    },
    /// Print the newest root: version, expiry, and each role's threshold and keys.
    #[command(after_help = "Examples:\n  racklet boot keys show")]
    Show {
        #[command(flatten)]
        keys: KeysDir,
    },
}

#[derive(Args)]
pub struct KeysDir {
    /// The key directory (default: DATA_DIR/boot-keys).
    #[arg(long)]
    keys: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Root => Role::Root,
            RoleArg::Targets => Role::Targets,
            RoleArg::Snapshot => Role::Snapshot,
            RoleArg::Timestamp => Role::Timestamp,
        }
    }
}

impl KeysDir {
    fn path(&self, data_dir: &Path) -> PathBuf {
        self.keys
            .clone()
            .unwrap_or_else(|| racklet_client::DataDir::new(data_dir).boot_keys())
    }
}

pub fn keys(data_dir: &Path, command: KeysCommand) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    match command {
        KeysCommand::Init {
            keys,
            root_keys,
            root_threshold,
        } => {
            let options = KeyOptions {
                root_keys,
                root_threshold,
                ..KeyOptions::default()
            };
            let store = KeyStore::init(keys.path(data_dir), options, now)?;
            println!(
                "boot keys made in {}; clients trust {}",
                store.dir().display(),
                store.latest_root_path()?.display()
            );
            show(&store)
        }
        KeysCommand::Rotate { role, keys } => {
            let store = KeyStore::open(keys.path(data_dir));
            let role = Role::from(role);
            let version = store
                .rotate(role, now, KeyOptions::default().root_lifetime)
                .with_context(|| format!("cannot rotate the {role} keys"))?;
            println!(
                "{role} keys rotated: root version {version}; the control plane publishes it at its next pass"
            );
            show(&store)
        }
        KeysCommand::Show { keys } => show(&KeyStore::open(keys.path(data_dir))),
    }
}

fn show(store: &KeyStore) -> anyhow::Result<()> {
    let (version, expires, roles) = store.summary()?;
    println!("root version {version}, expires {expires}");
    println!("{:<10} {:>9} {:>8}  KEYS", "ROLE", "THRESHOLD", "PRIVATE");
    for r in roles {
        let keys: Vec<&str> = r.keys.iter().map(|k| &k[..k.len().min(16)]).collect();
        println!(
            "{:<10} {:>9} {:>8}  {}",
            r.role.as_str(),
            r.threshold,
            format!("{}/{}", r.private, r.keys.len()),
            keys.join(" ")
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct InitramfsArgs {
    /// The static bootstrap binary (PID 1).
    #[arg(long)]
    init: PathBuf,
    /// The kernel whose modules go in (`/lib/modules/RELEASE`); none: no modules.
    #[arg(long)]
    kernel_release: Option<String>,
    /// Modules to load, with their dependencies.
    #[arg(long, value_delimiter = ',', default_values_t = racklet_bootstrap::initramfs::QEMU_MODULES.iter().map(|m| m.to_string()))]
    modules: Vec<String>,
    /// Where the gzip'd cpio goes.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn build_initramfs(args: &InitramfsArgs) -> anyhow::Result<()> {
    let spec = racklet_bootstrap::initramfs::Spec {
        init: args.init.clone(),
        modules_dir: args
            .kernel_release
            .as_ref()
            .map(|r| Path::new("/lib/modules").join(r)),
        modules: if args.kernel_release.is_some() {
            args.modules.clone()
        } else {
            Vec::new()
        },
    };
    let image = racklet_bootstrap::initramfs::build(&spec)?;
    std::fs::write(&args.output, &image.gzip)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{}: {} bytes compressed ({} uncompressed), {} modules; u-root's goal is 3 MB",
        args.output.display(),
        image.gzip.len(),
        image.uncompressed_bytes,
        image.modules.len()
    );
    Ok(())
}
