//! The twin's BMC flash kept in the data dir, as a real BMC keeps its own: identity seed,
//! link key, trust anchors, anti-rollback counter and both firmware slots survive a
//! restart of the simulation, so the daemon finds the BMCs it enrolled. One owner-only
//! file per tray (it holds keys): `DATA_DIR/twin/CHASSIS/tray-N.flash.json`.

use std::path::{Path, PathBuf};

use racklet_twin::BmcFlash;
use serde::{Deserialize, Serialize};

/// Why a kept flash cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("cannot read the kept BMC flash {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the kept BMC flash {} is damaged; move it away to give that tray's BMC a new identity (the daemon then asks to approve it)", path.display())]
    Corrupt { path: PathBuf },
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    /// Hex.
    key_store: Option<String>,
    /// Hex, slot A then slot B.
    slots: [String; 2],
}

/// Where the flash of `slot` in `chassis` is kept.
pub fn path(data_dir: &Path, chassis: &str, slot: u32) -> PathBuf {
    data_dir
        .join("twin")
        .join(chassis)
        .join(format!("tray-{slot}.flash.json"))
}

/// The kept flash, if there is one.
pub fn load(path: &Path) -> Result<Option<BmcFlash>, FlashError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FlashError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = || FlashError::Corrupt {
        path: path.to_path_buf(),
    };
    let kept: Kept = serde_json::from_slice(&bytes).map_err(|_| corrupt())?;
    let unhex = |h: &str| hex::decode(h).map_err(|_| corrupt());
    Ok(Some(BmcFlash {
        key_store: kept.key_store.as_deref().map(unhex).transpose()?,
        slots: [unhex(&kept.slots[0])?, unhex(&kept.slots[1])?],
        writes: 0,
    }))
}

/// Keeps `flash` at `path` (atomically, owner-only).
pub fn save(path: &Path, flash: &BmcFlash) -> Result<(), FlashError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| FlashError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let kept = Kept {
        key_store: flash.key_store.as_deref().map(hex::encode),
        slots: [hex::encode(&flash.slots[0]), hex::encode(&flash.slots[1])],
    };
    let bytes = serde_json::to_vec(&kept).map_err(|_| FlashError::Corrupt {
        path: path.to_path_buf(),
    })?;
    Ok(racklet_files::write_secret(path, &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_flash_reads_back_and_a_damaged_one_says_what_to_do() {
        let dir = std::env::temp_dir().join(format!("racklet-flash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = path(&dir, "chassis-1", 3);
        assert!(load(&p).expect("nothing kept").is_none());
        let flash = BmcFlash {
            key_store: Some(vec![1, 2, 3]),
            slots: [vec![0xAA; 5], Vec::new()],
            writes: 9,
        };
        save(&p, &flash).expect("saved");
        let back = load(&p).expect("read").expect("kept");
        assert_eq!((back.key_store, back.slots), (flash.key_store, flash.slots));
        std::fs::write(&p, b"{").expect("damage");
        let e = load(&p).expect_err("damaged");
        assert!(e.to_string().contains("move it away"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
