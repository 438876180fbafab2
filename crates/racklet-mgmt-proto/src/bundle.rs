//! The file format of a signed BMC firmware image, as uploaded to the Redfish
//! `UpdateService` and sent over the link: a fixed header, then the image.
//!
//! ```text
//! magic "RKLTBMC1" (8) | version u32 LE | image length u32 LE | Ed25519ph signature (64) | image
//! ```
//!
//! The signature is over the image and its version (see `racklet_firmware_bundle::sign`);
//! only the BMC checks it, against its own trust anchors. This header only says where
//! the parts are.

/// Ed25519ph context of the signature: the signer (`racklet-firmware-bundle`, on a host)
/// and the verifier (the BMC) take it from here.
pub const SIGNATURE_CONTEXT: &[u8] = b"racklet-bmc-firmware-v1";

/// First bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"RKLTBMC1";
/// Bytes before the image.
pub const HEADER_LEN: usize = 8 + 4 + 4 + 64;

/// A parsed bundle, borrowing the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bundle<'a> {
    pub version: u32,
    pub signature: &'a [u8; 64],
    pub image: &'a [u8],
}

/// Why a file is not a firmware bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleError {
    /// Shorter than the header.
    Truncated,
    /// Does not start with [`MAGIC`]: not a Racklet BMC firmware bundle.
    NotABundle,
    /// The header's image length disagrees with the file.
    LengthMismatch { declared: u32, actual: usize },
}

impl core::fmt::Display for BundleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BundleError::Truncated => write!(
                f,
                "the file is shorter than a firmware bundle header ({HEADER_LEN} bytes)"
            ),
            BundleError::NotABundle => write!(
                f,
                "the file is not a Racklet BMC firmware bundle (it must start with \"RKLTBMC1\")"
            ),
            BundleError::LengthMismatch { declared, actual } => write!(
                f,
                "the bundle declares a {declared}-byte image but carries {actual} bytes: the file is truncated or padded"
            ),
        }
    }
}

/// Splits a bundle into its parts.
pub fn parse(file: &[u8]) -> Result<Bundle<'_>, BundleError> {
    if file.len() < HEADER_LEN {
        return Err(BundleError::Truncated);
    }
    let (header, image) = file.split_at(HEADER_LEN);
    if &header[..8] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let version = word(8);
    let declared = word(12);
    if declared as usize != image.len() {
        return Err(BundleError::LengthMismatch {
            declared,
            actual: image.len(),
        });
    }
    let signature: &[u8; 64] = header[16..80]
        .try_into()
        .map_err(|_| BundleError::Truncated)?;
    Ok(Bundle {
        version,
        signature,
        image,
    })
}

/// The header for an image of `len` bytes; the bundle is this header followed by the image.
pub fn header(version: u32, len: u32, signature: &[u8; 64]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    h[16..].copy_from_slice(signature);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_round_trips() {
        let image = [7u8; 100];
        let sig = [9u8; 64];
        let mut file = [0u8; HEADER_LEN + 100];
        file[..HEADER_LEN].copy_from_slice(&header(42, 100, &sig));
        file[HEADER_LEN..].copy_from_slice(&image);
        let b = parse(&file).expect("bundle");
        assert_eq!((b.version, b.signature, b.image), (42, &sig, &image[..]));
    }

    #[test]
    fn truncated_foreign_and_padded_files_are_refused() {
        let sig = [0u8; 64];
        let mut file = [0u8; HEADER_LEN + 10];
        file[..HEADER_LEN].copy_from_slice(&header(1, 10, &sig));
        assert_eq!(parse(&file[..20]), Err(BundleError::Truncated));
        assert_eq!(
            parse(&file[..HEADER_LEN + 5]),
            Err(BundleError::LengthMismatch {
                declared: 10,
                actual: 5
            })
        );
        file[0] = b'X';
        assert_eq!(parse(&file), Err(BundleError::NotABundle));
    }
}
