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
}
