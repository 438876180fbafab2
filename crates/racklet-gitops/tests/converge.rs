//! The control plane on a real Git repository, driving the rack simulation's chassis
//! through its real HTTPS Redfish service: commits power trays on and off, invalid
//! commits are refused whole, drift is corrected.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use racklet_gitops::git::{commit_files, current_branch, Reference, SourceSpec};
use racklet_gitops::power::{ChassisEndpoint, DriftPolicy, NodeStatus};
use racklet_gitops::store::{RedbStore, StateStoreExt as _};
use racklet_gitops::{Config, ControlPlane};
use racklet_redfish_client::Client;
use racklet_sim::RunningRack;

mod common;
use common::{examples, rack_with_redfish, with_power};

struct Bench {
    dir: PathBuf,
    repo: PathBuf,
    plane: Arc<ControlPlane<RedbStore>>,
    redfish: Client,
    rack: RunningRack,
}

async fn bench(name: &str, drift: DriftPolicy) -> Bench {
    bench_via(name, drift, None).await
}

/// A loopback TCP forwarder that can be cut and restored, to make a chassis unreachable.
struct Proxy {
    port: u16,
    target: std::net::SocketAddr,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(port: u16, target: std::net::SocketAddr) -> Proxy {
        let p = Proxy {
            port,
            target,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        p.up().await;
        p
    }

    async fn up(&self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (target, tasks) = (self.target, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().expect("tasks").push(conn);
            }
        });
        self.tasks.lock().expect("tasks").push(accept);
    }

    fn cut(&self) {
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
    }
}

async fn bench_via(name: &str, drift: DriftPolicy, proxy: Option<&mut Option<Proxy>>) -> Bench {
    let (poll, period) = (Duration::from_millis(500), Duration::from_millis(250));
    bench_timed(name, drift, proxy, poll, period).await
}

async fn bench_timed(
    name: &str,
    drift: DriftPolicy,
    proxy: Option<&mut Option<Proxy>>,
    poll: Duration,
    period: Duration,
) -> Bench {
    let dir = std::env::temp_dir().join(format!("racklet-gitops-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    commit_files(&repo, &examples(), "seed the rack").expect("seed");
    let (mut endpoint, rack) = rack_with_redfish(&dir).await;
    let service: std::net::SocketAddr = endpoint
        .base
        .trim_start_matches("https://")
        .parse()
        .expect("address");
    let base_addr = match proxy {
        Some(slot) => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            *slot = Some(Proxy::start(port, service).await);
            std::net::SocketAddr::from(([127, 0, 0, 1], port))
        }
        None => service,
    };
    endpoint.base = format!("https://{base_addr}");
    let config = Config {
        source: SourceSpec {
            url: format!("file://{}", repo.display()),
            reference: Reference::Branch(current_branch(&repo).expect("branch")),
            path: "rack".into(),
            signers: None,
            ca_pem: None,
        },
        dir: dir.join("controlplane"),
        poll,
        period,
        chassis: vec![ChassisEndpoint {
            chassis: "chassis-1".into(),
            endpoint: endpoint.clone(),
            systems: Default::default(),
        }],
        drift,
        boot_keys: Some(dir.join("boot-keys")),
    };
    racklet_boot_repo::KeyStore::open_or_init(dir.join("boot-keys"), jiff::Timestamp::now())
        .expect("boot keys");
    let store = Arc::new(RedbStore::open(&dir.join("controlplane/state.redb")).expect("store"));
    let plane = ControlPlane::new(config, store).await.expect("plane");
    tokio::spawn(plane.clone().run());
    Bench {
        redfish: Client::new(endpoint, Duration::from_secs(5)).expect("client"),
        dir,
        repo,
        plane,
        rack,
    }
}

/// Waits until the power reconciler has finished `n` more passes: whatever it would do
/// about what the test just did, it has had the chance to do.
async fn more_passes(b: &Bench, n: u64) {
    let mut passes = b.plane.power_passes();
    let from = *passes.borrow_and_update();
    tokio::time::timeout(Duration::from_secs(30), passes.wait_for(|p| *p >= from + n))
        .await
        .expect("power passes within 30 s")
        .expect("the control plane runs");
}

async fn node(b: &Bench, name: &str) -> Option<NodeStatus> {
    racklet_gitops::power::node_statuses(&**b.plane.store())
        .await
        .expect("statuses")
        .into_iter()
        .find(|n| n.name == name)
}

async fn until<F: Fn(&NodeStatus) -> bool>(b: &Bench, name: &str, what: &str, f: F) -> NodeStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = node(b, name).await;
        if let Some(n) = n.as_ref().filter(|n| f(n)) {
            return n.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: {what}; last {n:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn converged(power: &'static str) -> impl Fn(&NodeStatus) -> bool {
    move |n| {
        n.observed_power.map(|p| p.as_str()) == Some(power)
            && n.sync == racklet_gitops::power::Sync::Synced
            && n.health == racklet_gitops::power::Health::Healthy
    }
}

/// Someone powers a tray off by hand, through Redfish, behind the control plane's back.
async fn force_off_by_hand(b: &Bench, tray: u32) {
    let sys = b
        .redfish
        .system(&format!("/redfish/v1/Systems/{tray}"))
        .await
        .expect("system");
    b.redfish.reset(&sys, "ForceOff").await.expect("reset");
}

async fn redfish_power(b: &Bench, tray: u32) -> Option<String> {
    b.redfish
        .system(&format!("/redfish/v1/Systems/{tray}"))
        .await
        .expect("system")
        .power_state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_powers_a_tray_on_and_an_invalid_commit_changes_nothing() {
    let b = bench("commit", DriftPolicy::Correct).await;
    // The seed: node-6 is Off, the others On.
    until(&b, "node-1", "On from the seed", converged("On")).await;
    let seed = until(&b, "node-6", "Off from the seed", converged("Off")).await;
    assert_eq!(seed.generation, 1);

    let on = with_power(&examples(), "node-6", "On");
    let commit = commit_files(&b.repo, &on, "power node-6 on").expect("commit");
    let started = std::time::Instant::now();
    b.plane.trigger();
    let n = until(&b, "node-6", "On after the commit", |n| {
        converged("On")(n) && n.observed_generation == 2
    })
    .await;
    eprintln!("commit to converged: {:?}", started.elapsed());
    assert_eq!(n.revision, commit);
    assert_eq!(n.generation, 2, "the spec changed once");
    assert_eq!(n.observed_generation, 2);
    assert_eq!(redfish_power(&b, 6).await.as_deref(), Some("On"));

    // A broken revision is refused whole: node-6 is not switched off by it.
    let mut broken = with_power(&on, "node-6", "Off");
    broken.push(("rack/bad.yaml".into(), b"apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-9}\nspec: {chassis: chassis-1, tray: 9, board: rpi4b, powerState: On}\n".to_vec()));
    commit_files(&b.repo, &broken, "break it").expect("commit");
    b.plane.trigger();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = b.plane.source_status().await.expect("status");
        if s.reason == "InvalidManifests" {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status.applied.as_deref(),
        Some(commit.as_str()),
        "the last good revision stays"
    );
    assert!(status.message.contains("bad.yaml:4:"), "{}", status.message);
    assert!(!status.ready);
    more_passes(&b, 2).await;
    assert_eq!(redfish_power(&b, 6).await.as_deref(), Some("On"));
    let events = b.plane.events().since(0).await.expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("InvalidManifests")),
        "{events:?}"
    );
    let _ = std::fs::remove_dir_all(&b.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_corrected_or_only_reported_per_policy() {
    for (policy, name) in [
        (DriftPolicy::Correct, "drift-fix"),
        (DriftPolicy::Report, "drift-report"),
    ] {
        let b = bench(name, policy).await;
        until(&b, "node-2", "On from the seed", converged("On")).await;
        force_off_by_hand(&b, 2).await;
        match policy {
            DriftPolicy::Correct => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let events = b.plane.events().since(0).await.expect("events");
                    if events.iter().any(|e| {
                        e.message.contains("node-2") && e.message.contains("drift corrected")
                    }) {
                        break;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "{events:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // The event comes before the action: wait for Redfish to show it done.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while redfish_power(&b, 2).await.as_deref() != Some("On") {
                    assert!(tokio::time::Instant::now() < deadline, "node-2 back On");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                until(&b, "node-2", "back On", converged("On")).await;
            }
            DriftPolicy::Report => {
                let n = until(&b, "node-2", "reported as drifted", |n| {
                    n.reason == racklet_gitops::power::NodeReason::Drifted
                })
                .await;
                assert_eq!(n.sync, racklet_gitops::power::Sync::OutOfSync);
                assert_eq!(n.health, racklet_gitops::power::Health::Degraded);
                more_passes(&b, 2).await;
                assert_eq!(
                    redfish_power(&b, 2).await.as_deref(),
                    Some("Off"),
                    "not corrected"
                );
            }
        }
        drop(b.rack.lock());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_events_wake_the_reconciler_long_before_its_period() {
    // Poll and period far longer than the test: after the first pass, only the chassis'
    // Redfish events can make the control plane look again.
    let long = Duration::from_secs(600);
    let b = bench_timed("events", DriftPolicy::Report, None, long, long).await;
    until(&b, "node-2", "On from the seed", converged("On")).await;
    force_off_by_hand(&b, 2).await;
    let n = until(&b, "node-2", "reported as drifted", |n| {
        n.reason == racklet_gitops::power::NodeReason::Drifted
    })
    .await;
    assert_eq!(n.observed_power.map(|p| p.as_str()), Some("Off"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_chassis_backs_off_forgets_nothing_and_converges_when_it_returns() {
    let mut proxy = None;
    let b = bench_via("down", DriftPolicy::Correct, Some(&mut proxy)).await;
    let proxy = proxy.expect("proxy");
    until(&b, "node-6", "Off from the seed", converged("Off")).await;
    proxy.cut();
    let commit = commit_files(
        &b.repo,
        &with_power(&examples(), "node-6", "On"),
        "power node-6 on",
    )
    .expect("commit");
    b.plane.trigger();
    let n = until(&b, "node-6", "reported unreachable", |n| {
        n.reason == racklet_gitops::power::NodeReason::ChassisUnreachable
    })
    .await;
    assert_eq!(n.health, racklet_gitops::power::Health::Unknown);
    assert_eq!(
        n.generation, 2,
        "the new revision is adopted while the chassis is away"
    );
    assert_eq!(
        b.plane
            .source_status()
            .await
            .expect("source")
            .applied
            .as_deref(),
        Some(commit.as_str())
    );
    // Back-off: while it is away, it is not hammered (one event, not one per pass).
    more_passes(&b, 10).await;
    let events = b.plane.events().since(0).await.expect("events");
    let away = events
        .iter()
        .filter(|e| e.message.contains("unreachable"))
        .count();
    assert_eq!(away, 1, "{events:?}");
    proxy.up().await;
    until(&b, "node-6", "On once the chassis answers", converged("On")).await;
    let events = b.plane.events().since(0).await.expect("events");
    assert!(
        events.iter().any(|e| e.message.contains("answers again")),
        "{events:?}"
    );
    proxy.cut();
    let _ = std::fs::remove_dir_all(&b.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_sets_a_nodes_network_boot_through_redfish() {
    let b = bench("boot", DriftPolicy::Correct).await;
    // Where the nodes reach the boot repository, and the certificate they pin.
    let id = racklet_tls::load_or_create(&b.dir.join("controlplane/tls")).expect("tls");
    b.plane
        .set_boot_uri("https://10.0.2.2:8443/boot/".into(), true);
    until(&b, "node-3", "On from the seed", converged("On")).await;
    let network: Vec<(String, Vec<u8>)> = common::with_boot_profile(b"a kernel")
        .into_iter()
        .map(|(p, bytes)| {
            let text = String::from_utf8_lossy(&bytes).replace(
                "tray: 3, board: rpi4b, powerState: On}",
                "tray: 3, board: rpi4b, powerState: On, bootMode: Network, bootProfile: debian}",
            );
            (p, text.into_bytes())
        })
        .collect();
    commit_files(&b.repo, &network, "node-3 boots from the network").expect("commit");
    b.plane.trigger();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = b
            .redfish
            .system("/redfish/v1/Systems/3")
            .await
            .expect("system");
        if s.boots_from_network() && s.http_boot_uri.is_some() {
            assert_eq!(s.boot_target.as_deref(), Some("UefiHttp"));
            assert_eq!(
                s.http_boot_uri.as_deref(),
                Some("https://10.0.2.2:8443/boot/")
            );
            let racklet = &s.body["Boot"]["Oem"]["Racklet"];
            assert_eq!(racklet["BootProfile"], "debian");
            let root = std::fs::read(b.dir.join("boot-keys/root/1.root.json")).expect("root");
            assert_eq!(
                racklet["TrustedRoot"]["Sha256"].as_str(),
                Some(hex::encode(<sha2_std::Sha256 as sha2_std::Digest>::digest(&root)).as_str())
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new generation is published at once; it is observed after a pass read it.
    let n = until(&b, "node-3", "synced at generation 2", |n| {
        converged("On")(n) && n.generation == 2 && n.observed_generation == 2
    })
    .await;
    assert_eq!(n.reason, racklet_gitops::power::NodeReason::Converged);
    let events = b.plane.events().since(0).await.expect("events");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.message == "node-3: boot mode set to Network")
            .count(),
        1,
        "{events:?}"
    );
    // The certificate is pinned on the BMC, and what the BMC saw is in the node's status.
    let collection = "/redfish/v1/Systems/3/Boot/Certificates/1";
    let pinned = b.redfish.get(collection).await.expect("certificate");
    let pem = std::fs::read_to_string(&id.cert).expect("pem");
    assert_eq!(pinned["CertificateString"].as_str(), Some(pem.as_str()));
    // Published by the pass that reads the system after it was configured.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let boot: racklet_client::NodeBoot = loop {
        let published = b
            .plane
            .store()
            .get_json(&racklet_gitops::power::network_boot::status_key("node-3"))
            .await
            .expect("store");
        if let Some(boot) = published {
            break boot;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the BMC's boot report is never published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(boot.stage, "Idle");
    assert!(
        events.iter().any(|e| e
            .message
            .starts_with("node-3: boots profile debian from https://10.0.2.2:8443/boot/")),
        "{events:?}"
    );
    let _ = std::fs::remove_dir_all(&b.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_removed_from_the_repository_is_shut_down_not_left_running() {
    use racklet_gitops::api::edit::{ResourceId, Tree};
    let b = bench("removed", DriftPolicy::Correct).await;
    until(&b, "node-5", "On from the seed", converged("On")).await;
    let mut tree = Tree::read(
        &examples()
            .into_iter()
            .map(|(p, bytes)| (PathBuf::from(p), bytes))
            .collect(),
    );
    let node5 = ResourceId {
        kind: "ComputeUnit".into(),
        name: "node-5".into(),
    };
    assert!(tree.remove(&node5));
    let files: Vec<(String, Vec<u8>)> = tree
        .files()
        .into_iter()
        .map(|(p, bytes)| (p.display().to_string(), bytes))
        .collect();
    commit_files(&b.repo, &files, "remove node-5").expect("commit");
    b.plane.trigger();
    // Its board is still in tray 5: no longer declared, it is shut down.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while redfish_power(&b, 5).await.as_deref() != Some("Off") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tray 5 still {:?}",
            redfish_power(&b, 5).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        node(&b, "node-5").await.is_none(),
        "no status for a removed node"
    );
    let events = b.plane.events().since(0).await.expect("events");
    assert!(
        events.iter().any(
            |e| e.reason == racklet_gitops::events::EventReason::Undeclared
                && e.message.contains("tray 5 of chassis-1")
        ),
        "{events:?}"
    );
    // Said once, not at every pass.
    more_passes(&b, 3).await;
    let events = b.plane.events().since(0).await.expect("events");
    let said = events
        .iter()
        .filter(|e| e.reason == racklet_gitops::events::EventReason::Undeclared)
        .count();
    assert_eq!(said, 1, "{events:?}");
    let _ = std::fs::remove_dir_all(&b.dir);
}
