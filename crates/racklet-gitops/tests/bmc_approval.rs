//! An operator's decision about a BMC that waits for approval, through the control plane's
//! API (what `racklet bmc list|approve|reject` call): the API reads the BMC's trust and
//! identity from the chassis' Redfish service, and passes an approval or rejection on with
//! the identity the operator checked; a wrong identity decides nothing.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use racklet_client::changes::{ActionRequest, NodeAction};
use racklet_gitops::git::{commit_files, current_branch, Reference, SourceSpec};
use racklet_gitops::power::{ChassisEndpoint, DriftPolicy};
use racklet_gitops::store::RedbStore;
use racklet_gitops::{Config, ControlPlane};
use racklet_model::ManifestSet;

mod common;
use common::examples;

fn request(action: NodeAction, identity: Option<&str>) -> ActionRequest {
    ActionRequest {
        action,
        force: false,
        author: None,
        bmc_identity: identity.map(str::to_string),
    }
}

async fn until<F, Fut>(what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok().await {
        assert!(Instant::now() < deadline, "{what} within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmcs_waiting_for_approval_are_approved_or_rejected_through_the_api_by_identity() {
    let dir = std::env::temp_dir().join(format!("racklet-gitops-approval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    commit_files(&repo, &examples(), "seed the rack").expect("seed");
    // Every BMC waits for an operator: nothing was approved in advance.
    let (set, diags) =
        ManifestSet::load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")]);
    assert!(diags.is_empty());
    let mut rack = racklet_sim::Rack::start(
        &set,
        &racklet_twin::TwinConfig {
            step: Duration::from_millis(5),
            ..racklet_twin::TwinConfig::default()
        },
        &dir.join("rack"),
        false,
    )
    .expect("rack");
    rack.advance(Duration::from_secs(3));
    let daemon = rack.daemons[0].clone();
    let _rack = rack.run_in_background(Duration::from_millis(20));
    let endpoint = racklet_stack::chassis::redfish_with_admin(daemon, &dir.join("redfish"))
        .await
        .expect("redfish");
    let config = Config {
        source: SourceSpec {
            url: format!("file://{}", repo.display()),
            reference: Reference::Branch(current_branch(&repo).expect("branch")),
            path: "rack".into(),
            signers: None,
            ca_pem: None,
        },
        dir: dir.join("controlplane"),
        poll: Duration::from_secs(1),
        period: Duration::from_millis(200),
        chassis: vec![ChassisEndpoint {
            chassis: "chassis-1".into(),
            endpoint,
            systems: Default::default(),
        }],
        drift: DriftPolicy::Report,
        boot_keys: None,
    };
    let store = Arc::new(RedbStore::open(&dir.join("controlplane/state.redb")).expect("store"));
    let plane = ControlPlane::new(config, store).await.expect("plane");
    tokio::spawn(plane.clone().run());
    let api = racklet_gitops::api::serve(
        plane,
        &dir.join("controlplane"),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("api");
    let client = racklet_client::Client::new(
        format!("https://localhost:{}", api.addr.port()),
        std::fs::read_to_string(&api.token_file)
            .expect("token")
            .trim()
            .to_string(),
        std::fs::read(&api.cert_file).expect("cert"),
    )
    .expect("client");
    until("node-2 served", || async {
        client.node("node-2").await.is_ok()
    })
    .await;

    let waiting = client.bmc("node-2").await.expect("bmc");
    assert_eq!(waiting.trust, "PendingApproval", "{waiting:?}");
    assert_eq!((waiting.chassis.as_str(), waiting.tray), ("chassis-1", 2));
    let identity = waiting.identity.clone().expect("the identity to check");
    let other = client
        .bmc("node-3")
        .await
        .expect("bmc")
        .identity
        .expect("identity");

    // No identity, or another BMC's: nothing is decided.
    let missing = client
        .act("node-2", &request(NodeAction::ApproveBmc, None))
        .await;
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.to_string().contains("bmcIdentity is required")),
        "{missing:?}"
    );
    let wrong = client
        .act("node-2", &request(NodeAction::ApproveBmc, Some(&other)))
        .await;
    assert!(
        wrong
            .as_ref()
            .is_err_and(|e| e.to_string().contains("check it again")),
        "{wrong:?}"
    );
    assert_eq!(
        client.bmc("node-2").await.expect("bmc").trust,
        "PendingApproval"
    );

    // Approved: the chassis enrolls it.
    client
        .act("node-2", &request(NodeAction::ApproveBmc, Some(&identity)))
        .await
        .expect("approved");
    until("node-2's BMC trusted", || async {
        client
            .bmc("node-2")
            .await
            .is_ok_and(|b| b.trust == "Trusted")
    })
    .await;

    // Rejected: refused, and said why.
    client
        .act("node-3", &request(NodeAction::RejectBmc, Some(&other)))
        .await
        .expect("rejected");
    let refused = client.bmc("node-3").await.expect("bmc");
    assert_eq!(refused.trust, "Refused", "{refused:?}");
    assert!(
        refused.reason.as_deref().unwrap_or("").contains("rejected"),
        "{refused:?}"
    );
    let events = client.events(0).await.expect("events");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.note.contains("node-2: ApproveBmc asked for by")),
        "{:?}",
        events.items.iter().map(|e| &e.note).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
