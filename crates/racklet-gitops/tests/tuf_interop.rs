//! Other TUF clients read the boot repository: python-tuf's reference client (`ngclient`,
//! installed by `scripts/test`) starts from root version 1, follows a root rotation,
//! verifies every role and downloads the profile's targets over HTTPS, and sees the same
//! digests and Git commit the control plane published. Whole-stack tier: it runs Python.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use racklet_boot_repo::{KeyStore, Role};

mod common;
use common::{served_plane_with_boot_keys, with_boot_profile};

#[tokio::test]
async fn python_tufs_reference_client_verifies_the_boot_repository_after_a_root_rotation() {
    let dir = std::env::temp_dir().join(format!("racklet-tuf-interop-{}", std::process::id()));
    let (commit, plane, api) =
        served_plane_with_boot_keys(&dir, &with_boot_profile(b"a kernel")).await;
    let root_v1 = dir.join("boot-keys/root/1.root.json");
    let keys = KeyStore::open(dir.join("boot-keys"));
    let year = jiff::SignedDuration::from_hours(24 * 365);
    keys.rotate(Role::Root, jiff::Timestamp::now(), year)
        .expect("rotate root");
    keys.rotate(Role::Timestamp, jiff::Timestamp::now(), year)
        .expect("rotate timestamp");
    plane.sync().await.expect("sync");
    plane.reconcile_boot().await.expect("boot");

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tuf_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("https://localhost:{}/boot/", api.addr.port()))
        .arg(&root_v1)
        .arg(&api.cert_file)
        .args(["debian.profile.json", "debian.kernel", "debian.initramfs"])
        .output()
        .await
        .expect("python3 runs (scripts/test installs python-tuf)");
    assert!(
        out.status.success(),
        "python-tuf refused the repository: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(seen["versions"]["root"], 3, "{seen}");
    let kernel = &seen["targets"]["debian.kernel"];
    assert_eq!(kernel["length"], 8);
    assert_eq!(
        kernel["sha256"],
        hex::encode(sha2_std::Sha256::digest(b"a kernel"))
    );
    assert_eq!(kernel["custom"]["racklet"]["gitCommit"], commit.as_str());
    assert_eq!(kernel["custom"]["racklet"]["part"], "kernel");
}

use sha2_std::Digest as _;
