//! A `FirmwarePolicy` rolls a signed BMC image out through Redfish, one tray at a time,
//! as persisted steps: the control plane is killed in the middle, or dies with an upload's
//! answer lost, and a new one resumes, with no tray updated twice.

// reason: tests may expect, helpers included: a panic is their failure report; their
// sizes and readings are small and known.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use racklet_gitops::firmware::{rollouts, Rollout, RolloutState, Step, TrayStep};
use racklet_gitops::git::commit_files;
use racklet_gitops::power::{ChassisEndpoint, DriftPolicy};
use racklet_gitops::store::{RedbStore, StateStoreExt};
use racklet_gitops::{Config, ControlPlane};
use racklet_redfish_client::{Client, Endpoint};
use racklet_sim::RunningRack;

mod common;
use common::{branch_source, examples, rack_with_redfish};

const VENDOR: [u8; 32] = [42; 32];

fn bundle(version: u32) -> Vec<u8> {
    let key = ed25519_dalek::SigningKey::from_bytes(&VENDOR);
    let image: Vec<u8> = (0..4096usize).map(|i| (i * 7 + 3) as u8).collect();
    let sig = racklet_firmware_bundle::sign(&key, &image, version).to_bytes();
    let mut file = racklet_mgmt_proto::bundle::header(version, image.len() as u32, &sig).to_vec();
    file.extend_from_slice(&image);
    file
}

/// The example rack, every BMC trusting the vendor key, and a repository whose newest
/// commit asks chassis-1's BMCs for version 2.
struct Setup {
    dir: std::path::PathBuf,
    redfish: Endpoint,
    rack: RunningRack,
    /// Each tray's boot count before the roll-out.
    boots: Vec<u64>,
    /// The commit with the policy.
    commit: String,
    config: Config,
    store: Arc<RedbStore>,
}

async fn setup(name: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("racklet-fw-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (redfish, rack) = rack_with_redfish(&dir).await;
    let vendor = ed25519_dalek::SigningKey::from_bytes(&VENDOR);
    let boots: Vec<u64> = {
        let mut r = rack.lock();
        for b in r.bmcs.iter_mut() {
            b.bmc()
                .expect("booted")
                .add_trust_anchor(vendor.verifying_key().to_bytes())
                .expect("anchor");
        }
        r.bmcs.iter().map(|b| b.boots()).collect()
    };
    let repo = dir.join("repo");
    let mut files = examples();
    files.push(("rack/firmware/racklet-bmc-2.bin".into(), bundle(2)));
    files.push((
        "rack/firmware.yaml".into(),
        b"apiVersion: racklet.io/v1alpha1\nkind: FirmwarePolicy\nmetadata: {name: bmc-v2}\nspec: {chassis: chassis-1, bmc: {version: 2, bundle: firmware/racklet-bmc-2.bin}}\n".to_vec(),
    ));
    let commit = commit_files(&repo, &files, "BMC firmware 2").expect("commit");
    let config = Config {
        source: branch_source(&repo),
        dir: dir.join("controlplane"),
        poll: Duration::from_millis(300),
        period: Duration::from_millis(200),
        chassis: vec![ChassisEndpoint {
            chassis: "chassis-1".into(),
            endpoint: redfish.clone(),
            systems: Default::default(),
        }],
        drift: DriftPolicy::Correct,
        boot_keys: None,
    };
    let store = Arc::new(RedbStore::open(&dir.join("controlplane/state.redb")).expect("store"));
    Setup {
        dir,
        redfish,
        rack,
        boots,
        commit,
        config,
        store,
    }
}

/// Exactly one update per tray: one reboot into the new slot, one Redfish task each, and
/// every BMC reports version 2.
async fn assert_each_tray_updated_once(s: &Setup) {
    let now: Vec<u64> = s.rack.lock().bmcs.iter().map(|b| b.boots()).collect();
    for (i, (b, n)) in s.boots.iter().zip(&now).enumerate() {
        assert_eq!(*n, b + 1, "tray {} rebooted once", i + 1);
    }
    let client = Client::new(s.redfish.clone(), Duration::from_secs(5)).expect("client");
    let tasks = client
        .get("/redfish/v1/TaskService/Tasks")
        .await
        .expect("tasks");
    assert_eq!(tasks["Members@odata.count"], 7, "{tasks:#}");
    for tray in 1..=7 {
        let inv = client
            .get(&format!(
                "/redfish/v1/UpdateService/FirmwareInventory/bmc-{tray}"
            ))
            .await
            .expect("inventory");
        assert_eq!(inv["Version"], "2", "tray {tray}");
    }
}

/// Waits until the roll-out has ended, and checks it ended with every tray confirmed.
async fn await_rollout_done(store: &RedbStore) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let r = rollouts(store).await.expect("rollouts");
        if let Some(r) = r.first().filter(|r| r.state != RolloutState::Running) {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "roll-out done within 90 s: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.state, RolloutState::Done, "{done:#?}");
    assert!(
        done.trays.iter().all(|t| t.step == Step::Confirmed),
        "{done:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_killed_midway_resumes_and_updates_every_tray_exactly_once() {
    let s = setup("killed").await;
    let (config, store) = (s.config.clone(), s.store.clone());

    // The first control plane runs in its own runtime, so killing it stops all it does.
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let plane = first
        .spawn(ControlPlane::new(config.clone(), store.clone()))
        .await
        .expect("join")
        .expect("plane");
    first.spawn(plane.run());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = rollouts(&*store).await.expect("rollouts");
        if r.first().is_some_and(|r| r.done() >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "two trays within 60 s: {r:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.shutdown_background();
    let at_kill = rollouts(&*store).await.expect("rollouts")[0].clone();
    assert_eq!(
        at_kill.state,
        RolloutState::Running,
        "killed midway: {at_kill:#?}"
    );

    let plane = ControlPlane::new(config, store.clone())
        .await
        .expect("plane");
    tokio::spawn(plane.clone().run());
    await_rollout_done(&store).await;
    assert_each_tray_updated_once(&s).await;
    let events = plane.events().since(0).await.expect("events");
    for tray in 1..=7 {
        let uploads = events
            .iter()
            .filter(|e| e.message.contains(&format!("tray {tray} uploaded")))
            .count();
        assert_eq!(uploads, 1, "tray {tray}: {events:#?}");
    }
    s.rack.stop();
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_answer_was_lost_is_followed_and_not_sent_again() {
    let s = setup("lost").await;
    // A control plane recorded tray 1's upload, sent it, and died before the answer came.
    let client = Client::new(s.redfish.clone(), Duration::from_secs(5)).expect("client");
    let tasks_before: Vec<String> = client
        .get("/redfish/v1/TaskService/Tasks")
        .await
        .expect("tasks")["Members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["@odata.id"].as_str().map(str::to_string))
        .collect();
    let push = client.push_uri().await.expect("push URI");
    client
        .push_firmware_to(&push, "/redfish/v1/Managers/bmc-1", bundle(2))
        .await
        .expect("upload");
    let mut trays = vec![TrayStep {
        tray: 1,
        step: Step::Uploading {
            since_unix_ms: 0,
            tasks_before,
        },
    }];
    trays.extend((2..=7).map(|tray| TrayStep {
        tray,
        step: Step::Pending,
    }));
    let recorded = Rollout {
        policy: "bmc-v2".into(),
        chassis: "chassis-1".into(),
        version: 2,
        bundle: "firmware/racklet-bmc-2.bin".into(),
        commit: s.commit.clone(),
        state: RolloutState::Running,
        trays,
        message: String::new(),
    };
    s.store
        .put_json("rollouts/chassis-1", &recorded)
        .await
        .expect("record");

    let plane = ControlPlane::new(s.config.clone(), s.store.clone())
        .await
        .expect("plane");
    tokio::spawn(plane.clone().run());
    await_rollout_done(&s.store).await;
    assert_each_tray_updated_once(&s).await;
    let events = plane.events().since(0).await.expect("events");
    assert!(
        !events.iter().any(|e| e.message.contains("tray 1 uploaded")),
        "tray 1 was sent again: {events:#?}"
    );
    s.rack.stop();
    let _ = std::fs::remove_dir_all(&s.dir);
}
