//! The bootstrap agent end to end, without a VM: a real boot repository over HTTPS, the
//! real BMC core (on the twin) at the other end of the boot channel (a socket standing in
//! for the UART), and the A/B disk hand-off on a disk image. Then the attacks: each gives
//! its console line, the node falls back to known-good or stays in the bootstrap, and
//! nothing unverified reaches the disk.

// reason: tests may unwrap and expect, helpers included: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{ask, bmc_on_twin, serve_boot_channel, serve_https, TwinBmc};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use racklet_boot_repo::{
    BootRepository, KeyOptions, KeyStore, Lifetimes, ProfilePayload, Versions,
};
use racklet_bootstrap::handoff::Slot;
use racklet_bootstrap::{AbDisk, BmcChannel, Bootstrap, Outcome, Retry};
use racklet_mgmt_proto::boot_channel::FromHost;
use racklet_mgmt_proto::message::{
    BootMode, BootReport, BootVersions, NetworkBootConfig, Request, Response,
};
use racklet_twin::Twin;
use rustls::pki_types::pem::PemObject as _;
use sha2_std::Digest as _;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn profile(name: &str, kernel: &[u8]) -> ProfilePayload {
    ProfilePayload {
        name: name.into(),
        architecture: std::env::consts::ARCH.into(),
        command_line: "console=ttyS0".into(),
        kernel: kernel.to_vec(),
        initramfs: format!("initramfs of {name}").into_bytes(),
        device_tree: None,
    }
}

struct Rig {
    tmp: tempfile::TempDir,
    repo: BootRepository,
    keys: KeyStore,
    bmc: Arc<Mutex<TwinBmc>>,
    _twin: Twin,
    agent_end: Option<std::os::unix::net::UnixStream>,
    config: NetworkBootConfig,
    lines: Arc<Mutex<Vec<String>>>,
}

/// A published repository with `debian` and its fallback `debian-old`, served over HTTPS,
/// and a BMC configured to boot `debian` from it, listening on its boot channel.
async fn rig(publish_at: jiff::Timestamp) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let keys = KeyStore::init(
        tmp.path().join("keys"),
        KeyOptions::default(),
        jiff::Timestamp::now(),
    )
    .unwrap();
    let repo = BootRepository::new(tmp.path().join("repo"));
    repo.publish(
        &keys,
        COMMIT,
        &[
            profile("debian", b"the new kernel"),
            profile("debian-old", b"the old kernel"),
        ],
        Versions::default(),
        publish_at,
        Lifetimes::default(),
    )
    .await
    .unwrap();
    let (port, cert) = serve_https(repo.clone(), &tmp.path().join("tls")).await;
    let der = rustls::pki_types::CertificateDer::from_pem_file(&cert).unwrap();
    let root = std::fs::read(tmp.path().join("keys/root/1.root.json")).unwrap();
    let config = NetworkBootConfig {
        uri: heapless::String::try_from(format!("https://localhost:{port}/boot/").as_str())
            .unwrap(),
        profile: heapless::String::try_from("debian").unwrap(),
        known_good: Some(heapless::String::try_from("debian-old").unwrap()),
        root_version: 1,
        root_sha256: sha2_std::Sha256::digest(&root).into(),
        server_certificate_sha256: sha2_std::Sha256::digest(der.as_ref()).into(),
    };
    let (twin, bmc) = bmc_on_twin();
    assert_eq!(
        ask(&bmc, Request::SetBootMode(BootMode::Network)),
        Response::Ack
    );
    assert_eq!(
        ask(&bmc, Request::SetNetworkBoot(Some(config.clone()))),
        Response::Ack
    );
    // The BMC's side of the boot channel: bytes in, answers out.
    let (bmc_end, agent_end) = std::os::unix::net::UnixStream::pair().unwrap();
    serve_boot_channel(bmc.clone(), bmc_end);
    Rig {
        tmp,
        repo,
        keys,
        bmc,
        _twin: twin,
        agent_end: Some(agent_end),
        config,
        lines: Arc::new(Mutex::new(Vec::new())),
    }
}

impl Rig {
    fn bootstrap(&mut self) -> Bootstrap<tokio::net::UnixStream, AbDisk> {
        let end = self.agent_end.take().expect("one bootstrap per rig");
        end.set_nonblocking(true).unwrap();
        let wire = tokio::net::UnixStream::from_std(end).unwrap();
        let lines = self.lines.clone();
        Bootstrap {
            channel: BmcChannel::new(wire, Duration::from_secs(5)),
            handoff: AbDisk::create(self.tmp.path().join("disk.img"), 1 << 16).unwrap(),
            work_dir: self.tmp.path().join("stage"),
            retry: Retry {
                attempts: 2,
                backoff: Duration::from_millis(10),
                read_timeout: Duration::from_secs(5),
            },
            console: Box::new(move |l| lines.lock().unwrap().push(l.to_string())),
            network: None,
        }
    }

    fn report(&self) -> BootReport {
        match ask(&self.bmc, Request::BootReport) {
            Response::BootReport(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn console(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn target_file(&self, name: &str) -> std::path::PathBuf {
        std::fs::read_dir(self.repo.targets_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&format!(".{name}")))
            .unwrap()
    }
}

fn hex32(d: [u8; 32]) -> String {
    hex::encode(d)
}

#[tokio::test]
async fn the_bootstrap_verifies_measures_reports_and_hands_off_the_profile() {
    let mut rig = rig(jiff::Timestamp::now()).await;
    let mut boot = rig.bootstrap();
    let outcome = boot.run().await;
    assert_eq!(
        outcome,
        Outcome::HandedOff {
            profile: "debian".into(),
            fell_back: false
        },
        "{}",
        rig.console()
    );
    let disk = AbDisk::open(rig.tmp.path().join("disk.img"));
    assert_eq!(
        disk.next_boot().unwrap(),
        Slot::B,
        "the trial slot boots once"
    );
    let (kernel, _) = disk.read_slot(Slot::B).unwrap();
    assert_eq!(kernel, b"the new kernel");
    let report = rig.report();
    let m = report.measurement.expect("the BMC holds the measurement");
    assert_eq!(
        m.kernel_sha256,
        <[u8; 32]>::from(sha2_std::Sha256::digest(b"the new kernel"))
    );
    assert_eq!(hex::encode(m.git_commit), COMMIT);
    assert!(!m.fell_back);
    assert_eq!(report.accepted.targets, 1, "the counters went up");
    assert!(rig.console().contains(&format!(
        "kernel sha256:{}",
        hex32(sha2_std::Sha256::digest(b"the new kernel").into())
    )));
    assert_eq!(
        disk.next_boot().unwrap(),
        Slot::A,
        "an unconfirmed trial falls back"
    );
}

#[tokio::test]
async fn a_kernel_with_one_byte_changed_is_refused_and_the_known_good_profile_boots() {
    let mut rig = rig(jiff::Timestamp::now()).await;
    let path = rig.target_file("debian.kernel");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let outcome = rig.bootstrap().run().await;
    assert_eq!(
        outcome,
        Outcome::HandedOff {
            profile: "debian-old".into(),
            fell_back: true
        }
    );
    let console = rig.console();
    assert!(
        console.contains(
            "racklet-bootstrap: profile debian: boot repository: target \"debian.kernel\" refused"
        ),
        "{console}"
    );
    assert!(console.contains("Hash mismatch"), "{console}");
    assert!(
        console.contains("falling back to the known-good profile"),
        "{console}"
    );
    let disk = AbDisk::open(rig.tmp.path().join("disk.img"));
    let (kernel, _) = disk.read_slot(disk.next_boot().unwrap()).unwrap();
    assert_eq!(
        kernel, b"the old kernel",
        "only the verified fallback reached the disk"
    );
    assert!(rig.report().measurement.expect("measured").fell_back);
    assert!(
        !rig.tmp.path().join("stage/kernel").exists()
            || std::fs::read(rig.tmp.path().join("stage/kernel")).unwrap() == b"the old kernel"
    );
}

#[tokio::test]
async fn an_expired_timestamp_boots_nothing() {
    let mut rig = rig(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48)).await;
    assert_eq!(rig.bootstrap().run().await, Outcome::GaveUp);
    let console = rig.console();
    assert!(
        console.contains("timestamp metadata has expired"),
        "{console}"
    );
    assert!(
        console.contains("nothing verified; staying in the bootstrap"),
        "{console}"
    );
    let disk = AbDisk::open(rig.tmp.path().join("disk.img"));
    assert!(disk.read_slot(Slot::B).is_err(), "nothing was written");
    assert!(rig.report().last_failure.contains("expired"));
}

#[tokio::test]
async fn metadata_below_the_bmcs_counters_is_a_rollback_and_boots_nothing() {
    let mut rig = rig(jiff::Timestamp::now()).await;
    {
        // An earlier boot accepted version 7 of everything.
        let mut boot = rig.bootstrap();
        let accepted = BootVersions {
            root: 1,
            targets: 7,
            snapshot: 7,
            timestamp: 7,
        };
        boot.channel
            .ask(&FromHost::Accept {
                versions: accepted,
                time_unix: 0,
            })
            .await
            .unwrap();
        assert_eq!(boot.run().await, Outcome::GaveUp);
    }
    let console = rig.console();
    assert!(
        console.contains("rollback refused: targets version 1 is below version 7"),
        "{console}"
    );
}

#[tokio::test]
async fn a_boot_server_with_another_certificate_is_refused() {
    let mut rig = rig(jiff::Timestamp::now()).await;
    let mut config = rig.config.clone();
    config.server_certificate_sha256 = [7; 32];
    assert_eq!(
        ask(&rig.bmc, Request::SetNetworkBoot(Some(config))),
        Response::Ack
    );
    assert_eq!(rig.bootstrap().run().await, Outcome::GaveUp);
    let console = rig.console();
    assert!(
        console.contains("presented a certificate other than the one its BMC pinned"),
        "{console}"
    );
}

#[tokio::test]
async fn a_root_that_is_not_the_pinned_one_is_refused() {
    let mut rig = rig(jiff::Timestamp::now()).await;
    // Another key set's root, published where the pinned one was.
    let other = KeyStore::init(
        rig.tmp.path().join("other-keys"),
        KeyOptions::default(),
        jiff::Timestamp::now(),
    )
    .unwrap();
    std::fs::copy(
        other.latest_root_path().unwrap(),
        rig.repo.metadata_dir().join("1.root.json"),
    )
    .unwrap();
    assert_eq!(rig.bootstrap().run().await, Outcome::GaveUp);
    assert!(
        rig.console().contains(
            "root version 1 from the boot server does not have the SHA-256 the BMC pinned"
        ),
        "{}",
        rig.console()
    );
    let _ = &rig.keys;
}

#[tokio::test]
async fn a_bmc_that_refuses_the_boot_channel_leaves_the_node_in_the_bootstrap() {
    let mut rig = rig(jiff::Timestamp::now()).await;
    assert_eq!(
        ask(&rig.bmc, Request::SetBootMode(BootMode::Local)),
        Response::Ack
    );
    assert_eq!(rig.bootstrap().run().await, Outcome::GaveUp);
    let console = rig.console();
    assert!(
        console.contains("the BMC refused the boot channel: the tray boots from its own media"),
        "{console}"
    );
    assert!(
        console.contains("no configuration from the BMC; staying in the bootstrap"),
        "{console}"
    );
}

#[tokio::test]
async fn a_clock_behind_the_latest_time_seen_is_not_trusted() {
    let mut rig = rig(jiff::Timestamp::now()).await;
    let mut boot = rig.bootstrap();
    let future = u64::try_from(jiff::Timestamp::now().as_second()).unwrap() + 86_400 * 30;
    boot.channel
        .ask(&FromHost::Accept {
            versions: BootVersions::default(),
            time_unix: future,
        })
        .await
        .unwrap();
    assert_eq!(boot.run().await, Outcome::GaveUp);
    let console = rig.console();
    assert!(
        console.contains("before") && console.contains("the latest time a boot has seen"),
        "{console}"
    );
}
