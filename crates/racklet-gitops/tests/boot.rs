//! The boot repository the control plane publishes: each applied revision's boot profiles,
//! signed, served under `/boot/` without a token, verified by a TUF client that trusts
//! only root version 1 and the API's certificate; every target names its Git commit.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::time::Duration;

use racklet_boot_repo::{HttpsTransport, VerifiedRepository, Versions};
use racklet_gitops::events::EventReason;
use racklet_gitops::git::commit_files;

mod common;
use common::{served_plane_with_boot_keys, with_boot_profile as revision};

#[tokio::test]
async fn each_applied_revision_is_published_as_a_tuf_repository_naming_its_commit() {
    let dir = std::env::temp_dir().join(format!("racklet-boot-{}", std::process::id()));
    let (first, plane, api) = served_plane_with_boot_keys(&dir, &revision(b"kernel one")).await;
    let repo = dir.join("repo");
    plane.sync().await.expect("sync");
    plane.reconcile_boot().await.expect("boot");

    let cert = std::fs::read(&api.cert_file).expect("cert");
    let root = std::fs::read(dir.join("boot-keys/root/1.root.json")).expect("root");
    let base: url::Url = format!("https://localhost:{}/boot/", api.addr.port())
        .parse()
        .expect("url");
    let load = || async {
        let transport = HttpsTransport::pinned(&cert, Duration::from_secs(10)).expect("pin");
        VerifiedRepository::load(&root, &base, transport, Versions::default(), None)
            .await
            .expect("the published repository verifies")
    };
    let verified = load().await;
    let doc = verified.profile("debian").await.expect("profile");
    assert_eq!(doc.git_commit, first);
    assert_eq!(doc.command_line, "console=ttyS0");
    assert_eq!(
        verified.fetch(&doc.kernel).await.expect("kernel"),
        b"kernel one"
    );
    assert_eq!(
        verified.target(&doc.initramfs).and_then(|t| t.git_commit),
        Some(first.clone())
    );

    // The repository is public; the rest of the API is not.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).expect("pem"))
        .build()
        .expect("client");
    let get = |p: &str| http.get(format!("https://{}{p}", api.addr)).send();
    assert_eq!(
        get("/boot/metadata/timestamp.json")
            .await
            .expect("get")
            .status(),
        200
    );
    assert_eq!(
        get("/boot/metadata/..%2Ftoken")
            .await
            .expect("get")
            .status(),
        404
    );
    assert_eq!(get("/v1/nodes").await.expect("get").status(), 401);

    // Nothing changed: nothing is signed again.
    plane.reconcile_boot().await.expect("boot");
    let published = |events: Vec<racklet_gitops::events::Event>| {
        events
            .into_iter()
            .filter(|e| e.reason == EventReason::BootRepositoryPublished)
            .map(|e| e.message)
            .collect::<Vec<_>>()
    };
    let events = published(plane.events().since(0).await.expect("events"));
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("targets version 1"), "{events:?}");

    // A new kernel in a new commit: higher versions, the new commit, the new bytes.
    let second = commit_files(&repo, &revision(b"kernel two"), "new kernel").expect("commit");
    plane.sync().await.expect("sync");
    plane.reconcile_boot().await.expect("boot");
    let verified = load().await;
    assert_eq!(verified.versions().targets, 2);
    let doc = verified.profile("debian").await.expect("profile");
    assert_eq!(doc.git_commit, second);
    assert_eq!(
        verified.fetch(&doc.kernel).await.expect("kernel"),
        b"kernel two"
    );
    let events = published(plane.events().since(0).await.expect("events"));
    assert_eq!(events.len(), 2, "{events:?}");
}
