//! Crash-safe file writes, in one place for every crate that keeps state or secrets in a
//! data dir: a file is written beside its destination, flushed to disk and renamed over
//! it, so a reader (or the next start after a crash) sees the old content or the new,
//! never a torn one. Secrets are created owner-only (mode 0600) from the first byte.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Who may read the written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// 0600: keys, passwords, tokens, state with secrets in it.
    OwnerOnly,
    /// 0644: certificates, endpoint lists.
    Public,
}

impl Access {
    fn mode(self) -> u32 {
        match self {
            Access::OwnerOnly => 0o600,
            Access::Public => 0o644,
        }
    }
}

/// A write that did not happen; the destination is unchanged.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path` with `bytes` atomically (temporary file, fsync, rename, fsync of the
/// directory). The parent directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> Result<(), WriteError> {
    let failed = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(access.mode())
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed(e));
    }
    // The rename is durable once the directory is; a failure here leaves the new content
    // in place, so it is not an error of the write.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// [`write_atomic`] for a secret: owner-only from its first byte.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic(path, bytes, Access::OwnerOnly)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("racklet-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn secrets_are_owner_only_and_replace_the_old_content() {
        let dir = scratch("secret");
        let path = dir.join("token");
        write_secret(&path, b"old").expect("first write");
        write_secret(&path, b"new").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(&dir).expect("list").collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_names_the_file_and_leaves_no_temporary() {
        let dir = scratch("missing");
        let path = dir.join("no-such-dir").join("file");
        let e = write_atomic(&path, b"x", Access::Public).expect_err("parent is missing");
        assert_eq!(e.path, path);
        assert!(e.to_string().contains("no-such-dir/file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
