//! Helpers the control-plane tests share: the example manifests as repository files, a
//! source on a local repository, a control plane without chassis, and the rack simulation
//! with its chassis' Redfish service over HTTPS.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use racklet_gitops::git::{current_branch, Reference, SourceSpec};
use racklet_gitops::power::DriftPolicy;
use racklet_gitops::store::RedbStore;
use racklet_gitops::{Config, ControlPlane};
use racklet_model::ManifestSet;
use racklet_redfish_client::Endpoint;
use racklet_sim::RunningRack;

pub fn examples() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            (
                format!("rack/{}", p.file_name().expect("name").to_string_lossy()),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

/// The `rack/` directory of the checked-out branch of the repository at `repo`, unsigned.
pub fn branch_source(repo: &Path) -> SourceSpec {
    SourceSpec {
        url: repo.display().to_string(),
        reference: Reference::Branch(current_branch(repo).expect("branch")),
        path: "rack".into(),
        signers: None,
        ca_pem: None,
    }
}

/// A control plane on `source` with no chassis, its state under `dir/controlplane`; it
/// fetches and reconciles only when asked (or hourly), so a test sees one step at a time.
pub async fn plane_without_chassis(dir: &Path, source: SourceSpec) -> Arc<ControlPlane<RedbStore>> {
    plane_with(dir, source, None).await
}

/// [`plane_without_chassis`] that publishes a boot repository signed with the keys in
/// `dir/boot-keys` (made here).
pub async fn plane_with_boot_keys(dir: &Path, source: SourceSpec) -> Arc<ControlPlane<RedbStore>> {
    let keys = dir.join("boot-keys");
    racklet_boot_repo::KeyStore::open_or_init(&keys, jiff::Timestamp::now()).expect("boot keys");
    plane_with(dir, source, Some(keys)).await
}

/// A repository at `dir/repo` seeded with `files`, a control plane with boot keys on it,
/// and its HTTPS API: (seed commit, plane, where the API runs).
pub async fn served_plane_with_boot_keys(
    dir: &Path,
    files: &[(String, Vec<u8>)],
) -> (
    String,
    Arc<ControlPlane<RedbStore>>,
    racklet_gitops::api::Running,
) {
    let _ = std::fs::remove_dir_all(dir);
    let repo = dir.join("repo");
    let commit = racklet_gitops::git::commit_files(&repo, files, "seed").expect("seed");
    let plane = plane_with_boot_keys(dir, branch_source(&repo)).await;
    let api = racklet_gitops::api::serve(
        plane.clone(),
        &dir.join("controlplane"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("serve");
    (commit, plane, api)
}

async fn plane_with(
    dir: &Path,
    source: SourceSpec,
    boot_keys: Option<std::path::PathBuf>,
) -> Arc<ControlPlane<RedbStore>> {
    let config = Config {
        source,
        dir: dir.join("controlplane"),
        poll: Duration::from_secs(3600),
        period: Duration::from_secs(3600),
        chassis: Vec::new(),
        drift: DriftPolicy::Correct,
        boot_keys,
    };
    let store = Arc::new(RedbStore::open(&dir.join("controlplane/state.redb")).expect("store"));
    ControlPlane::new(config, store).await.expect("plane")
}

/// The examples with a boot profile `debian` (kernel `kernel`, command line
/// `console=ttyS0`) and its files.
pub fn with_boot_profile(kernel: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = examples();
    let profile = "apiVersion: racklet.io/v1alpha1\nkind: BootProfile\nmetadata: {name: debian}\nspec:\n  architecture: x86_64\n  kernel: boot/vmlinuz\n  initramfs: boot/initrd.img\n  commandLine: console=ttyS0\n";
    files.push((
        "rack/boot-profiles.yaml".into(),
        profile.as_bytes().to_vec(),
    ));
    files.push(("rack/boot/vmlinuz".into(), kernel.to_vec()));
    files.push(("rack/boot/initrd.img".into(), b"initramfs".to_vec()));
    files
}

pub fn with_power(files: &[(String, Vec<u8>)], node: &str, power: &str) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(p, b)| {
            let text = String::from_utf8_lossy(b).to_string();
            let mut out = Vec::new();
            let mut hit = false;
            for line in text.lines() {
                if line.contains(&format!("name: {node},"))
                    || line.contains(&format!("name: {node}}}"))
                {
                    hit = true;
                }
                if hit && line.starts_with("spec:") {
                    out.push(
                        line.replace("powerState: On", &format!("powerState: {power}"))
                            .replace("powerState: Off", &format!("powerState: {power}")),
                    );
                    hit = false;
                } else {
                    out.push(line.to_string());
                }
            }
            (p.clone(), format!("{}\n", out.join("\n")).into_bytes())
        })
        .collect()
}

/// The example rack on the twin (10x real time), and its chassis' Redfish service.
pub async fn rack_with_redfish(dir: &Path) -> (Endpoint, RunningRack) {
    let (set, diags) =
        ManifestSet::load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")]);
    assert!(diags.is_empty());
    let rack = racklet_stack::chassis::enrolled_rack(&set, &dir.join("rack")).expect("rack");
    let daemon = rack.daemons[0].clone();
    let rack = rack.run_in_background(Duration::from_millis(20));
    let endpoint = racklet_stack::chassis::redfish_with_admin(daemon, &dir.join("redfish"))
        .await
        .expect("redfish");
    (endpoint, rack)
}
