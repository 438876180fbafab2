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

/// The node agent (the bootstrap crate's, as the booted system runs it) for `seed`,
/// pinned to the API's certificate.
fn agent_for(api: &racklet_gitops::api::Running, seed: [u8; 32]) -> racklet_bootstrap::node::Agent {
    use rustls_pki_types::pem::PemObject as _;
    use sha2_std::Digest as _;
    let der = rustls_pki_types::CertificateDer::from_pem_file(&api.cert_file).expect("cert");
    let handover = racklet_bootstrap::node::Handover {
        control_plane: format!("https://127.0.0.1:{}/", api.addr.port()),
        server_certificate_sha256: hex::encode(sha2_std::Sha256::digest(der.as_ref())),
        profile: "debian".into(),
        git_commit: "ab".repeat(20),
        kernel_sha256: "cd".repeat(32),
        initramfs_sha256: "ef".repeat(32),
        network: None,
        identity_seed: hex::encode(seed),
    };
    racklet_bootstrap::node::Agent::new(&handover, "boot-1".into()).expect("agent")
}

#[tokio::test]
async fn a_node_agent_is_known_by_the_key_its_bmc_derived_and_nobody_else_gets_in() {
    use racklet_gitops::store::StateStoreExt as _;
    let dir = std::env::temp_dir().join(format!("racklet-agent-{}", std::process::id()));
    // node-1 boots from the network; node-2 does not.
    let files: Vec<(String, Vec<u8>)> = revision(b"kernel")
        .into_iter()
        .map(|(p, b)| {
            let text = String::from_utf8_lossy(&b).replace(
                "tray: 1, board: rpi4b, powerState: On}",
                "tray: 1, board: rpi4b, powerState: On, bootMode: Network, bootProfile: debian}",
            );
            (p, text.into_bytes())
        })
        .collect();
    let (_, plane, api) = served_plane_with_boot_keys(&dir, &files).await;
    plane.sync().await.expect("sync");
    // What the BMC of node-1 reported through Redfish: the public half of its node key.
    let seed = [42u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let boot = racklet_client::NodeBoot {
        stage: "HandedOff".into(),
        node_identity: hex::encode(public),
        ..Default::default()
    };
    let store = plane.store();
    // node-2's status with the same key (left from an earlier revision) names nobody.
    for node in ["node-1", "node-2"] {
        store
            .put_json(
                &racklet_gitops::power::network_boot::status_key(node),
                &boot,
            )
            .await
            .expect("put");
    }

    // The right key: accepted as node-1, and kept.
    let node = agent_for(&api, seed).report().await.expect("accepted");
    assert_eq!(node, "node-1");
    let records = racklet_gitops::agent::records(&**store)
        .await
        .expect("records");
    let r = records.get("node-1").expect("recorded");
    assert_eq!(r.report.git_commit, "ab".repeat(20));
    assert_eq!(r.report.boot_id, "boot-1");

    // Another key (a machine that is no node, or a node pretending to be another): 403.
    let stranger = agent_for(&api, [7u8; 32]).report().await;
    assert!(
        matches!(stranger, Err(racklet_bootstrap::node::AgentError::Refused { status: 403, ref body }) if body.contains("no node's identity")),
        "{stranger:?}"
    );
    assert!(!racklet_gitops::agent::records(&**store)
        .await
        .expect("records")
        .contains_key("node-7"));

    // No client certificate at all: 401; the rest of the API still takes its token only.
    let cert = std::fs::read(&api.cert_file).expect("cert");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).expect("pem"))
        .build()
        .expect("client");
    let anonymous = http
        .post(format!(
            "https://localhost:{}/v1/agent/report",
            api.addr.port()
        ))
        .json(&racklet_client::AgentReport::default())
        .send()
        .await
        .expect("post");
    assert_eq!(anonymous.status(), 401);
    let token = std::fs::read_to_string(&api.token_file).expect("token");
    let nodes = http
        .get(format!("https://localhost:{}/v1/nodes", api.addr.port()))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("get");
    assert_eq!(
        nodes.status(),
        200,
        "a token client is not asked to prove a key"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
