//! The control plane drives other Redfish services too: a node of the manifest is mapped
//! onto the one system of `sushy-emulator --fake` (OpenStack's Redfish emulator, from
//! PyPI's sushy-tools, which `scripts/test` installs), and commits power it on and off.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use racklet_gitops::git::commit_files;
use racklet_gitops::power::{node_statuses, ChassisEndpoint, DriftPolicy};
use racklet_gitops::store::RedbStore;
use racklet_gitops::{Config, ControlPlane};
use racklet_redfish_client::{Client, Endpoint};

mod common;
use common::branch_source;

struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn examples_with_node1(power: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read").replace(
                "spec: {chassis: chassis-1, tray: 1, board: rpi4b, powerState: On}",
                &format!(
                    "spec: {{chassis: chassis-1, tray: 1, board: rpi4b, powerState: {power}}}"
                ),
            );
            (
                format!("rack/{}", p.file_name().expect("name").to_string_lossy()),
                text.into_bytes(),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_powers_a_sushy_emulator_system_on_and_off() {
    let dir = std::env::temp_dir().join(format!("racklet-sushy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let racklet_tls::Identity { cert, key } =
        racklet_tls::load_or_create(&dir.join("tls")).expect("cert");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _emulator = Emulator(
        Command::new("sushy-emulator")
            .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
            .arg("--ssl-certificate")
            .arg(&cert)
            .arg("--ssl-key")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sushy-emulator on PATH (pip install sushy-tools; scripts/test does)"),
    );
    let endpoint = Endpoint {
        base: format!("https://127.0.0.1:{port}"),
        user: "racklet".into(),
        password: "unused-by-the-emulator".into(),
        ca_pem: Some(std::fs::read(&cert).expect("cert")),
    };
    let client = Client::new(endpoint.clone(), Duration::from_secs(5)).expect("client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let systems = loop {
        match client.systems().await {
            Ok(s) if !s.is_empty() => break s,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "emulator up: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let system = systems[0].clone();

    let repo = dir.join("repo");
    commit_files(&repo, &examples_with_node1("On"), "node-1 on").expect("seed");
    let config = Config {
        source: branch_source(&repo),
        dir: dir.join("controlplane"),
        poll: Duration::from_millis(300),
        period: Duration::from_millis(300),
        chassis: vec![ChassisEndpoint {
            chassis: "chassis-1".into(),
            endpoint,
            systems: [(1, system.id.clone())].into_iter().collect(),
        }],
        drift: DriftPolicy::Correct,
        boot_keys: None,
    };
    let store = Arc::new(RedbStore::open(&dir.join("controlplane/state.redb")).expect("store"));
    let plane = ControlPlane::new(config, store).await.expect("plane");
    tokio::spawn(plane.clone().run());

    for (power, commit) in [("On", false), ("Off", true), ("On", true)] {
        if commit {
            commit_files(
                &repo,
                &examples_with_node1(power),
                &format!("node-1 {power}"),
            )
            .expect("commit");
            plane.trigger();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen = client
                .system(&system.uri)
                .await
                .expect("system")
                .power_state;
            let status = node_statuses(&**plane.store())
                .await
                .expect("status")
                .into_iter()
                .find(|n| n.name == "node-1");
            let synced = status
                .as_ref()
                .is_some_and(|n| n.sync == racklet_gitops::power::Sync::Synced);
            if seen.as_deref() == Some(power) && synced {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "emulator system {power}: saw {seen:?}, status {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Trays with no system behind them say so instead of failing the rest.
    let node2 = node_statuses(&**plane.store())
        .await
        .expect("status")
        .into_iter()
        .find(|n| n.name == "node-2")
        .expect("node-2");
    assert_eq!(node2.health, racklet_gitops::power::Health::Missing);
    let _ = std::fs::remove_dir_all(&dir);
}
