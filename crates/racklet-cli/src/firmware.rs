//! `racklet firmware bundle`: signs an image into the bundle format the Redfish
//! UpdateService and `FirmwarePolicy` take (`racklet_firmware_bundle`).

use std::path::PathBuf;

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

pub fn bundle(args: BundleArgs) -> anyhow::Result<()> {
    let key = racklet_firmware_bundle::read_key(&args.key)?;
    let image = std::fs::read(&args.image)
        .with_context(|| format!("cannot read the image {}", args.image.display()))?;
    let out = racklet_firmware_bundle::bundle(&key, &image, args.version)?;
    std::fs::write(&args.output, &out)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{}: version {}, {} bytes, signed by {}",
        args.output.display(),
        args.version,
        image.len(),
        key.verifying_key()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Ok(())
}
