//! BMC firmware signing, on a host: the signer's side of what the BMC verifies. An image
//! and its version are signed with Ed25519ph (SHA-512 of image ‖ version, context
//! [`SIGNATURE_CONTEXT`]) and framed as a bundle (`racklet_mgmt_proto::bundle`) for the
//! Redfish UpdateService and `FirmwarePolicy`. Signing keys are files of 64 hex digits,
//! created owner-only. The BMC firmware itself (`racklet-bmc`, no_std) only verifies.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, SigningKey};
pub use racklet_mgmt_proto::bundle::SIGNATURE_CONTEXT;
use sha2::{Digest as _, Sha512};

/// Why a key or bundle could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read the signing key {}", path.display())]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a signing key (64 hex digits)", path.display())]
    NotAKey { path: PathBuf },
    #[error(transparent)]
    WriteKey(#[from] racklet_files::WriteError),
    #[error("the image is larger than 4 GiB")]
    TooLarge,
}

/// The Ed25519ph signature of `image` at `version`, as the BMC verifies it.
pub fn sign(key: &SigningKey, image: &[u8], version: u32) -> Signature {
    let mut digest = Sha512::new();
    digest.update(image);
    digest.update(version.to_le_bytes());
    // The context is a short constant (under 255 bytes), which Ed25519ph always accepts.
    key.sign_prehashed(digest, Some(SIGNATURE_CONTEXT))
        .unwrap_or_else(|_| Signature::from_bytes(&[0; 64]))
}

/// A signed bundle: header (magic, version, length, signature), then the image.
pub fn bundle(key: &SigningKey, image: &[u8], version: u32) -> Result<Vec<u8>, BundleError> {
    let len = u32::try_from(image.len()).map_err(|_| BundleError::TooLarge)?;
    let signature = sign(key, image, version).to_bytes();
    let mut out = racklet_mgmt_proto::bundle::header(version, len, &signature).to_vec();
    out.extend_from_slice(image);
    Ok(out)
}

/// Reads a signing key file (64 hex digits).
pub fn read_key(path: &Path) -> Result<SigningKey, BundleError> {
    let text = std::fs::read_to_string(path).map_err(|source| BundleError::ReadKey {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| BundleError::NotAKey {
            path: path.to_path_buf(),
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// The key in `path`, made (owner-only) if there is none yet.
pub fn read_or_create_key(path: &Path) -> Result<SigningKey, BundleError> {
    if path.exists() {
        return read_key(path);
    }
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    racklet_files::write_secret(path, hex::encode(seed).as_bytes())?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;

    #[test]
    fn a_bundle_parses_back_and_its_signature_covers_the_version() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let image = b"firmware image".to_vec();
        let file = bundle(&key, &image, 3).expect("bundle");
        let parsed = racklet_mgmt_proto::bundle::parse(&file).expect("parses");
        assert_eq!((parsed.version, parsed.image), (3, &image[..]));
        let sig = Signature::from_bytes(parsed.signature);
        let digest = |version: u32| {
            let mut d = Sha512::new();
            d.update(&image);
            d.update(version.to_le_bytes());
            d
        };
        let vk = key.verifying_key();
        assert!(vk
            .verify_prehashed(digest(3), Some(SIGNATURE_CONTEXT), &sig)
            .is_ok());
        assert!(vk
            .verify_prehashed(digest(4), Some(SIGNATURE_CONTEXT), &sig)
            .is_err());
        // Not a plain Ed25519 signature of the image either.
        assert!(vk.verify(&image, &sig).is_err());
    }

    #[test]
    fn keys_are_made_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("racklet-fwkey-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("key");
        let made = read_or_create_key(&path).expect("made");
        let again = read_or_create_key(&path).expect("read");
        assert_eq!(made.to_bytes(), again.to_bytes());
        std::fs::write(&path, "not hex").expect("write");
        assert!(matches!(read_key(&path), Err(BundleError::NotAKey { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
