//! BMC firmware bundles: `racklet firmware bundle` signs an image into the bundle format
//! the Redfish UpdateService takes (`racklet_mgmt_proto::bundle`), and `racklet up` keeps
//! the twin's firmware signing key, trusted by every twin BMC, in the data dir.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

#[derive(Args)]
pub struct BundleArgs {
    /// The firmware image.
    image: PathBuf,
    /// Version the image carries; the BMC refuses versions below its anti-rollback floor.
    #[arg(long)]
    version: u32,
    /// Signing key: 32 bytes as 64 hex digits (`racklet up` keeps the twin's in
    /// DATA_DIR/firmware-signing-key).
    #[arg(long)]
    key: PathBuf,
    /// Where to write the bundle.
    #[arg(short, long)]
    output: PathBuf,
}

/// Reads a signing key file (64 hex digits).
pub fn read_key(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the signing key {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("{} is not a signing key (64 hex digits)", path.display()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

/// The twin's firmware signing key in `data_dir`, made on first start (owner-only).
pub fn twin_key(data_dir: &Path) -> anyhow::Result<(ed25519_dalek::SigningKey, PathBuf)> {
    let path = data_dir.join("firmware-signing-key");
    if path.exists() {
        return Ok((read_key(&path)?, path));
    }
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(hex::encode(seed).as_bytes())?;
    Ok((ed25519_dalek::SigningKey::from_bytes(&seed), path))
}

pub fn bundle(args: BundleArgs) -> anyhow::Result<()> {
    let key = read_key(&args.key)?;
    let image = std::fs::read(&args.image)
        .with_context(|| format!("cannot read the image {}", args.image.display()))?;
    let len = u32::try_from(image.len()).context("the image is larger than 4 GiB")?;
    let signature = racklet_bmc::sign_firmware(&key, &image, args.version).to_bytes();
    let mut out = racklet_mgmt_proto::bundle::header(args.version, len, &signature).to_vec();
    out.extend_from_slice(&image);
    std::fs::write(&args.output, &out)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{}: version {}, {} bytes, signed by {}",
        args.output.display(),
        args.version,
        image.len(),
        hex::encode(key.verifying_key().to_bytes())
    );
    Ok(())
}
