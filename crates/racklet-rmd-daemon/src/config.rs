//! The daemon's configuration file (TOML, `/etc/racklet/rmd.toml` by default): which
//! chassis it manages, where its manifests and state are, what it listens on, and the
//! RMC's device map. Errors name the file, the line and column, and what is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use racklet_rmd::linux::LinuxDevices;
use serde::Deserialize;

/// `rmd.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DaemonFile {
    /// The chassis this RMC manages (a `Chassis` in the manifests).
    pub chassis: String,
    /// Manifest files or directories (Rack, Chassis, ComputeUnit, BoardModel); relative
    /// paths are relative to this file.
    pub manifests: Vec<PathBuf>,
    /// Trust store, event log, Redfish accounts and TLS certificate.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_redfish")]
    pub redfish_listen: SocketAddr,
    #[serde(default = "default_metrics")]
    pub metrics_listen: SocketAddr,
    /// BMC identities (hex Ed25519 public keys) trusted from the start, e.g. the ones the
    /// provisioning bench recorded; others wait for an operator's approval.
    #[serde(default)]
    pub pre_approved: Vec<String>,
    pub devices: LinuxDevices,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/racklet-rmd")
}

fn default_redfish() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 443))
}

fn default_metrics() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9101))
}

/// The configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl DaemonFile {
    /// Reads and checks `path`; manifest, state and device paths become absolute.
    pub fn load(path: &Path) -> Result<DaemonFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file = DaemonFile::parse(path, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in file.manifests.iter_mut().chain([
            &mut file.state_dir,
            &mut file.devices.sys_root,
            &mut file.devices.dev_root,
        ]) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(file)
    }

    fn parse(path: &Path, text: &str) -> Result<DaemonFile, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| position(text, s.start)).unwrap_or((1, 1));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
chassis = "chassis-a"
manifests = ["manifests"]
redfish-listen = "127.0.0.1:8443"

[devices]
sys-root = "sys"
ports = { 1 = "1-1.1", 2 = "1-1.2" }

[devices.fans.front]
chip = "emc2305"
channel = 1

[devices.indicators.1]
ok = "racklet:green:tray1"
"#;

    #[test]
    fn a_complete_file_parses_with_numbered_slots() {
        let f = DaemonFile::parse(Path::new("rmd.toml"), GOOD).expect("parses");
        assert_eq!(f.chassis, "chassis-a");
        assert_eq!(f.devices.ports.get(&2).map(String::as_str), Some("1-1.2"));
        assert_eq!(f.devices.fans["front"].channel, 1);
        assert_eq!(f.metrics_listen, default_metrics());
        assert_eq!(f.redfish_listen.port(), 8443);
    }

    #[test]
    fn the_shipped_example_configuration_parses() {
        let f = DaemonFile::parse(Path::new("dist/rmd.toml"), include_str!("../dist/rmd.toml"))
            .expect("the example in dist/ parses");
        assert_eq!(f.devices.ports.len(), 7);
        assert_eq!(f.redfish_listen.port(), 443);
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_line_and_column() {
        let bad = GOOD.replace("redfish-listen", "redfish-lisen");
        let e = DaemonFile::parse(Path::new("/etc/racklet/rmd.toml"), &bad)
            .expect_err("unknown key")
            .to_string();
        assert!(e.starts_with("/etc/racklet/rmd.toml:4:1: "), "{e}");
        assert!(e.contains("redfish-lisen"), "{e}");
    }

    #[test]
    fn a_slot_that_is_not_a_number_is_refused() {
        let bad = GOOD.replace("1 = \"1-1.1\"", "one = \"1-1.1\"");
        let e = DaemonFile::parse(Path::new("rmd.toml"), &bad)
            .expect_err("bad slot")
            .to_string();
        assert!(e.starts_with("rmd.toml:8:"), "{e}");
    }
}
