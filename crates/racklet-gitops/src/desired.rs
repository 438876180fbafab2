//! From the files of one Git revision to the desired state the reconcilers act on. A
//! revision whose manifests do not validate is refused as a whole: every problem is
//! reported as `FILE:LINE:COLUMN` (paths relative to the source's sub-path), and nothing
//! of it is applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use racklet_model::compute_unit::BootMode;
use racklet_model::compute_unit::{PowerState, Role};
use racklet_model::{is_manifest, ManifestSet};
use serde::{Deserialize, Serialize};

/// What one compute unit should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredNode {
    pub name: String,
    pub chassis: String,
    pub tray: u32,
    pub power: Power,
    #[serde(default)]
    pub boot: BootMode,
    #[serde(default)]
    pub board: String,
    #[serde(default)]
    pub role: Role,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The `BootProfile` it boots over the network, and its fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_good: Option<String>,
}

/// A boot profile of the revision: the files are paths in it, relative to the source's path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredBootProfile {
    pub name: String,
    pub architecture: String,
    pub kernel: String,
    pub initramfs: String,
    #[serde(default)]
    pub command_line: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_tree: Option<String>,
}

/// Desired power, as the control plane stores and shows it.
pub use racklet_client::DesiredPower as Power;

/// The BMC firmware one chassis should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredFirmware {
    pub policy: String,
    pub chassis: String,
    pub version: u32,
    /// Path of the signed bundle in the revision, relative to the source's path.
    pub bundle: String,
    /// Trays of the chassis (from its compute units), in roll-out order.
    pub trays: Vec<u32>,
}

/// The tray slots of one chassis, for the trays no compute unit declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChassisLayout {
    pub chassis: String,
    /// Slots 1 to `trays`.
    pub trays: u32,
    /// The slot of the RMC, which runs the rack management daemon: never switched off
    /// for being undeclared.
    pub rmc_tray: u32,
}

/// The desired state of one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub nodes: Vec<DesiredNode>,
    /// Chassis named in the manifests.
    pub chassis: Vec<String>,
    pub firmware: Vec<DesiredFirmware>,
    /// Racks of the revision.
    #[serde(default)]
    pub racks: Vec<String>,
    /// Who may sign the next revision (the racks' `commitSigners`).
    #[serde(default)]
    pub signers: Vec<String>,
    /// Compute units that are their chassis' RMC: switching one off stops the rack
    /// management daemon that runs on it.
    #[serde(default)]
    pub rmc_nodes: Vec<String>,
    /// Every chassis' slots: a powered tray that no compute unit declares (one that was
    /// removed from the repository) is switched off, never left running unseen.
    #[serde(default)]
    pub layouts: Vec<ChassisLayout>,
    /// The boot profiles the boot repository publishes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_profiles: Vec<DesiredBootProfile>,
}

/// Validates a revision's files; `Err` holds every problem, one per line.
pub fn desired_from(files: &[(PathBuf, Vec<u8>)]) -> Result<Desired, Vec<String>> {
    let mut set = ManifestSet::with_catalog();
    let mut diags = Vec::new();
    for (path, bytes) in files.iter().filter(|(p, _)| is_manifest(p)) {
        let file: Arc<Path> = Arc::from(path.as_path());
        diags.extend(set.add_source(&file, bytes));
    }
    diags.extend(racklet_model::validate::validate(&set));
    for (e, r) in set.racks() {
        for (i, line) in r.spec.commit_signers.iter().enumerate() {
            if let Err(err) = ssh_key::PublicKey::from_openssh(line.trim()) {
                diags.push(e.doc.diag_at(
                    &format!("/spec/commitSigners/{i}"),
                    format!("not an OpenSSH public key ({err}); give a line like `ssh-ed25519 AAAA… name`"),
                ));
            }
        }
    }
    for (e, p) in set.firmware_policies() {
        let bundle = Path::new(&p.spec.bmc.bundle);
        if !files.iter().any(|(f, _)| f == bundle) {
            diags.push(e.doc.diag_at(
                "/spec/bmc/bundle",
                format!(
                    "bundle {:?} is not in this revision; commit it next to the manifests",
                    p.spec.bmc.bundle
                ),
            ));
        }
    }
    for (e, p) in set.boot_profiles() {
        for (pointer, path) in p.spec.files() {
            if !files.iter().any(|(f, _)| f == Path::new(path)) {
                diags.push(e.doc.diag_at(
                    pointer,
                    format!("{path:?} is not in this revision; commit it next to the manifests"),
                ));
            }
        }
    }
    if !diags.is_empty() {
        diags.sort();
        diags.dedup();
        return Err(diags.iter().map(ToString::to_string).collect());
    }
    let nodes = set
        .compute_units()
        .map(|(_, cu)| DesiredNode {
            name: cu.name().to_string(),
            chassis: cu.spec.chassis.clone(),
            tray: cu.spec.tray,
            power: match cu.spec.power_state {
                PowerState::On => Power::On,
                PowerState::Off => Power::Off,
            },
            boot: cu.spec.boot_mode,
            board: cu.spec.board.clone(),
            role: cu.spec.role,
            labels: cu.metadata.labels.clone(),
            annotations: cu.metadata.annotations.clone(),
            boot_profile: cu.spec.boot_profile.clone(),
            known_good: cu.spec.known_good.clone(),
        })
        .collect();
    let chassis = set.chassis().map(|(_, c)| c.name().to_string()).collect();
    let firmware = set
        .firmware_policies()
        .map(|(_, p)| {
            let mut trays: Vec<u32> = set
                .compute_units()
                .filter(|(_, cu)| cu.spec.chassis == p.spec.chassis)
                .map(|(_, cu)| cu.spec.tray)
                .collect();
            trays.sort_unstable();
            DesiredFirmware {
                policy: p.name().to_string(),
                chassis: p.spec.chassis.clone(),
                version: p.spec.bmc.version,
                bundle: p.spec.bmc.bundle.clone(),
                trays,
            }
        })
        .collect();
    let racks = set.racks().map(|(_, r)| r.name().to_string()).collect();
    let layouts = set
        .chassis()
        .map(|(_, c)| ChassisLayout {
            chassis: c.name().to_string(),
            trays: c.spec.trays.count,
            rmc_tray: c.spec.rmc_tray,
        })
        .collect();
    let rmc_nodes = set
        .compute_units()
        .filter(|(_, cu)| cu.spec.role == racklet_model::compute_unit::Role::Rmc)
        .map(|(_, cu)| cu.name().to_string())
        .collect();
    let signers = set
        .racks()
        .flat_map(|(_, r)| r.spec.commit_signers.iter().cloned())
        .collect();
    let boot_profiles = set
        .boot_profiles()
        .map(|(_, p)| DesiredBootProfile {
            name: p.name().to_string(),
            architecture: serde_json::to_value(p.spec.architecture)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            kernel: p.spec.kernel.clone(),
            initramfs: p.spec.initramfs.clone(),
            command_line: p.spec.command_line.clone(),
            device_tree: p.spec.device_tree.clone(),
        })
        .collect();
    Ok(Desired {
        nodes,
        chassis,
        firmware,
        racks,
        signers,
        rmc_nodes,
        layouts,
        boot_profiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        std::fs::read_dir(&dir)
            .expect("examples")
            .map(|e| e.expect("entry").path())
            .map(|p| {
                let bytes = std::fs::read(&p).expect("read");
                (PathBuf::from(p.file_name().expect("name")), bytes)
            })
            .collect()
    }

    #[test]
    fn the_examples_give_seven_nodes() {
        let d = desired_from(&examples()).expect("valid");
        assert_eq!(d.nodes.len(), 7);
        assert_eq!(d.chassis, vec!["chassis-1".to_string()]);
    }

    #[test]
    fn a_boot_profile_needs_its_files_in_the_revision() {
        let mut files = examples();
        files.push((
            PathBuf::from("boot.yaml"),
            b"apiVersion: racklet.io/v1alpha1\nkind: BootProfile\nmetadata: {name: debian}\nspec: {architecture: aarch64, kernel: boot/vmlinuz, initramfs: boot/initrd.img, commandLine: console=ttyAMA0}\n".to_vec(),
        ));
        let units = files
            .iter_mut()
            .find(|(p, _)| p == Path::new("compute-units.yaml"))
            .expect("units");
        let text = String::from_utf8(units.1.clone()).expect("UTF-8").replace(
            "tray: 6, board: rpi5, powerState: Off",
            "tray: 6, board: rpi5, powerState: Off, bootMode: Network, bootProfile: debian",
        );
        units.1 = text.into_bytes();
        let errors = desired_from(&files).expect_err("no kernel in the revision");
        assert!(
            errors.iter().any(|e| e.starts_with("boot.yaml:4:")
                && e.contains("\"boot/vmlinuz\" is not in this revision")),
            "{errors:?}"
        );
        files.push((PathBuf::from("boot/vmlinuz"), vec![0x4d, 0x5a]));
        files.push((PathBuf::from("boot/initrd.img"), vec![0x1f, 0x8b]));
        let d = desired_from(&files).expect("valid");
        let node6 = d.nodes.iter().find(|n| n.name == "node-6").expect("node-6");
        assert_eq!(node6.boot_profile.as_deref(), Some("debian"));
    }

    #[test]
    fn an_invalid_revision_is_refused_with_located_errors() {
        let mut files = examples();
        files.push((
            PathBuf::from("nodes/bad.yaml"),
            b"apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-9}\nspec: {chassis: chassis-1, tray: 9, board: rpi4b, powerState: Maybe}\n".to_vec(),
        ));
        let errors = desired_from(&files).expect_err("refused");
        assert!(
            errors.iter().all(|e| e.starts_with("nodes/bad.yaml:4:")),
            "{errors:?}"
        );
    }
}
