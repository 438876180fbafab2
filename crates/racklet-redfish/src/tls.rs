//! The service's TLS identity: a self-signed certificate made on first start and kept in
//! the data dir (the key readable by its owner only).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Errors creating or reading the certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a certificate")]
    Generate(#[from] rcgen::Error),
}

/// Paths of the certificate and key, created if missing.
pub fn load_or_create(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let mut k = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key)
        .map_err(io(&key))?;
    k.write_all(certified.key_pair.serialize_pem().as_bytes())
        .map_err(io(&key))?;
    std::fs::write(&cert, certified.cert.pem()).map_err(io(&cert))?;
    Ok((cert, key))
}
