//! The TLS identity of a Racklet HTTPS service (a chassis' Redfish service, the control
//! plane's API): a self-signed certificate for the loopback names, made on first start
//! and kept in the service's data dir, the key readable by its owner only. Clients pin
//! the certificate file, so no CA is involved.

use std::path::{Path, PathBuf};

/// Why the identity cannot be made or found.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot create {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a certificate")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
}

/// Where a service's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The identity in `dir` (`cert.pem`, `key.pem`), made if it is not there yet. The key is
/// written first and each file atomically, so a crash never leaves a certificate without
/// its key.
pub fn load_or_create(dir: &Path) -> Result<Identity, TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let identity = Identity {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    if identity.cert.exists() && identity.key.exists() {
        return Ok(identity);
    }
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let made = rcgen::generate_simple_self_signed(names)?;
    racklet_files::write_secret(&identity.key, made.key_pair.serialize_pem().as_bytes())?;
    racklet_files::write_atomic(
        &identity.cert,
        made.cert.pem().as_bytes(),
        racklet_files::Access::Public,
    )?;
    Ok(identity)
}

/// PKCS#8 v1 (RFC 8410) of an Ed25519 private key: this prefix, then the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A client certificate for mutual TLS with an Ed25519 key given by its seed (a node's
/// identity): self-signed, since what the server checks is the key. Returns the
/// certificate's DER and the key's PKCS#8 DER (secret: keep it in memory).
pub fn ed25519_client_certificate(
    seed: &[u8; 32],
    common_name: &str,
) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(seed);
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
        &rcgen::PKCS_ED25519,
    )?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let cert = params.self_signed(&key)?;
    Ok((cert.der().to_vec(), pkcs8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_identity_is_made_once_with_an_owner_only_key() {
        let dir = std::env::temp_dir().join(format!("racklet-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let made = load_or_create(&dir).expect("made");
        let cert = std::fs::read(&made.cert).expect("cert");
        assert!(cert.starts_with(b"-----BEGIN CERTIFICATE-----"));
        let mode = std::fs::metadata(&made.key)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(&dir).expect("loaded");
        assert_eq!(
            std::fs::read(&again.cert).expect("cert"),
            cert,
            "not made twice"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_client_certificate_carries_the_key_of_its_seed() {
        let (a, key_a) = ed25519_client_certificate(&[7; 32], "node").expect("made");
        let (b, _) = ed25519_client_certificate(&[8; 32], "node").expect("made");
        assert_eq!(&key_a[16..], &[7; 32]);
        // The key's public half is in the certificate; another seed gives another one.
        let public = rcgen::KeyPair::try_from(key_a.as_slice())
            .expect("key")
            .public_key_raw()
            .to_vec();
        assert_eq!(public.len(), 32);
        assert!(a.windows(32).any(|w| w == public.as_slice()));
        assert!(!b.windows(32).any(|w| w == public.as_slice()));
    }
}
