//! Two control-plane replicas on a real etcd (Debian's `etcd-server`, which the test
//! command installs): only the leader acts; killing it hands over to the other within
//! the lease time, with nothing lost and nothing done twice.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use racklet_gitops::etcd::{leader, LEASE_TTL_SECS};
use racklet_gitops::git::commit_files;
use racklet_gitops::power::{node_statuses, ChassisEndpoint, DriftPolicy, Sync};
use racklet_gitops::store::{StateStore, StateStoreExt};
use racklet_gitops::{Config, SourceStatus};

mod common;
use common::{branch_source, examples, rack_with_redfish, with_power};

struct Etcd(Child, PathBuf);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

async fn start_etcd(dir: &Path) -> (Etcd, String) {
    let (client, peer) = (free_port(), free_port());
    let data = dir.join("etcd");
    let child = Command::new("etcd")
        .args(["--name", "racklet-test", "--data-dir"])
        .arg(&data)
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-cluster",
            &format!("racklet-test=http://127.0.0.1:{peer}"),
            "--initial-cluster-state",
            "new",
            "--log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd on PATH (Debian etcd-server; scripts/test installs it)");
    let endpoint = format!("127.0.0.1:{client}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while racklet_gitops::etcd::EtcdStore::connect(std::slice::from_ref(&endpoint), "probe")
        .await
        .is_err()
        || leader(std::slice::from_ref(&endpoint), "probe")
            .await
            .is_err()
    {
        assert!(Instant::now() < deadline, "etcd did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Etcd(child, data), endpoint)
}

/// A replica in its own runtime, so that killing it stops everything it runs at once
/// (its loop, its lease keep-alive), like a crashed process.
struct Replica(Option<tokio::runtime::Runtime>);

impl Replica {
    fn start(config: Config, endpoint: String, name: &str) -> Replica {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.spawn(racklet_gitops::run_replica(
            config,
            vec![endpoint],
            "/racklet-test".into(),
            name.into(),
        ));
        Replica(Some(rt))
    }

    fn kill(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn leader_is(endpoint: &str, name: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = leader(&[endpoint.to_string()], "/racklet-test")
            .await
            .ok()
            .flatten();
        if now.as_deref() == Some(name) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{name} did not lead within {within:?} (leader {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_within_the_lease_time_with_nothing_lost_or_repeated() {
    let dir = std::env::temp_dir().join(format!("racklet-etcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (_etcd, endpoint) = start_etcd(&dir).await;
    let (redfish, rack) = rack_with_redfish(&dir).await;
    let repo = dir.join("repo");
    commit_files(&repo, &examples(), "seed").expect("seed");
    let config = |name: &str| Config {
        source: branch_source(&repo),
        dir: dir.join(name),
        poll: Duration::from_millis(300),
        period: Duration::from_millis(300),
        chassis: vec![ChassisEndpoint {
            chassis: "chassis-1".into(),
            endpoint: redfish.clone(),
            systems: Default::default(),
        }],
        drift: DriftPolicy::Correct,
        boot_keys: None,
    };
    let mut a = Replica::start(config("a"), endpoint.clone(), "a");
    leader_is(&endpoint, "a", Duration::from_secs(10)).await;
    let _b = Replica::start(config("b"), endpoint.clone(), "b");

    // A reader of the shared state (no fencing: it only reads).
    let state =
        racklet_gitops::etcd::EtcdStore::connect(std::slice::from_ref(&endpoint), "/racklet-test")
            .await
            .expect("reader");
    let node6 = |state: racklet_gitops::etcd::EtcdStore| async move {
        node_statuses(&state)
            .await
            .expect("status")
            .into_iter()
            .find(|n| n.name == "node-6")
    };
    let wait_node6 = |power: &'static str| {
        let state = state.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(45);
            loop {
                let n = node6(state.clone()).await;
                if n.as_ref().is_some_and(|n| {
                    n.observed_power.map(|p| p.as_str()) == Some(power) && n.sync == Sync::Synced
                }) {
                    return;
                }
                assert!(Instant::now() < deadline, "node-6 {power}: {n:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_node6("Off").await;
    let on =
        commit_files(&repo, &with_power(&examples(), "node-6", "On"), "node-6 on").expect("commit");
    wait_node6("On").await;

    // Kill the leader; the other takes over within the lease time.
    a.kill();
    let took = leader_is(
        &endpoint,
        "b",
        Duration::from_secs(LEASE_TTL_SECS as u64 + 5),
    )
    .await;
    eprintln!("takeover after the leader was killed: {took:?} (lease {LEASE_TTL_SECS} s)");
    assert!(
        took <= Duration::from_secs(LEASE_TTL_SECS as u64 + 2),
        "{took:?}"
    );

    // The new leader continues from the stored state: same applied revision, no re-apply.
    let source: SourceStatus = state
        .get_json("status/source")
        .await
        .expect("get")
        .expect("status");
    assert_eq!(source.applied.as_deref(), Some(on.as_str()));
    let off = commit_files(
        &repo,
        &with_power(&examples(), "node-6", "Off"),
        "node-6 off",
    )
    .expect("commit");
    wait_node6("Off").await;
    let events: Vec<String> = state
        .list("events/")
        .await
        .expect("events")
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice::<serde_json::Value>(&v).expect("event")["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let count = |needle: &str| events.iter().filter(|e| e.contains(needle)).count();
    assert_eq!(count(&format!("applied {}", &on[..12])), 1, "{events:#?}");
    assert_eq!(count(&format!("applied {}", &off[..12])), 1, "{events:#?}");
    assert_eq!(
        count("node-6: power is Off, desired On"),
        1,
        "one action for one change: {events:#?}"
    );
    assert_eq!(count("replica a leads"), 1);
    assert_eq!(count("replica b leads"), 1);
    rack.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
