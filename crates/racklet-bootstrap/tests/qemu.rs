//! A real network boot in a QEMU virtual machine (whole-stack tier: `scripts/test`
//! installs `qemu-system-x86` and `linux-image-amd64`, and builds the static bootstrap,
//! whose path it gives in `RACKLET_BOOTSTRAP_BIN`). Debian's kernel boots our initramfs;
//! the bootstrap, PID 1, loads the virtio network modules, asks the real BMC core over the
//! VM's second serial port, verifies the TUF repository this test serves over HTTPS
//! (the host is 10.0.2.2 from the VM), measures the profile's kernel, reports it to the
//! BMC and kexecs into it; the booted system says so on the first serial port.

// reason: tests may unwrap and expect, helpers included: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{ask, bmc_on_twin, serve_boot_channel, serve_https};

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use racklet_boot_repo::{
    BootRepository, KeyOptions, KeyStore, Lifetimes, ProfilePayload, Versions,
};
use racklet_bootstrap::initramfs::{self, Spec};
use racklet_mgmt_proto::message::{BootMode, NetworkBootConfig, Request, Response};
use rustls::pki_types::pem::PemObject as _;
use sha2_std::Digest as _;

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// Debian's newest installed kernel: (bzImage, /lib/modules/RELEASE).
fn debian_kernel() -> (PathBuf, PathBuf) {
    let mut releases: Vec<String> = std::fs::read_dir("/boot")
        .expect("/boot (scripts/test installs linux-image-amd64)")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_string))
        .filter(|r| {
            Path::new("/lib/modules")
                .join(r)
                .join("modules.dep")
                .is_file()
        })
        .collect();
    releases.sort();
    let release = releases.pop().expect("a kernel in /boot with its modules");
    (
        PathBuf::from(format!("/boot/vmlinuz-{release}")),
        Path::new("/lib/modules").join(release),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qemu_vm_boots_the_verified_profile_by_kexec_and_its_bmc_holds_the_digests() {
    let bootstrap = PathBuf::from(
        std::env::var("RACKLET_BOOTSTRAP_BIN")
            .expect("RACKLET_BOOTSTRAP_BIN: the static racklet-bootstrap (scripts/test builds it)"),
    );
    let (kernel, modules) = debian_kernel();
    let tmp = tempfile::tempdir().unwrap();
    let boot_image = initramfs::build(&Spec {
        init: bootstrap.clone(),
        modules_dir: Some(modules),
        modules: initramfs::QEMU_MODULES
            .iter()
            .map(|m| m.to_string())
            .collect(),
    })
    .unwrap();
    // The booted system runs the same program as its node agent (racklet.stage=booted).
    let node_image = boot_image.clone();
    std::fs::write(tmp.path().join("bootstrap.img"), &boot_image.gzip).unwrap();
    let kernel_bytes = std::fs::read(&kernel).unwrap();

    // The boot repository, served over HTTPS on the host.
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
        &[ProfilePayload {
            name: "debian".into(),
            architecture: "x86_64".into(),
            command_line: "console=ttyS0 tsc=reliable racklet.stage=booted".into(),
            kernel: kernel_bytes.clone(),
            initramfs: node_image.gzip.clone(),
            device_tree: None,
        }],
        Versions::default(),
        jiff::Timestamp::now(),
        Lifetimes::default(),
    )
    .await
    .unwrap();
    let (port, cert) = serve_https(repo.clone(), &tmp.path().join("tls")).await;

    // The tray's BMC, configured the way the daemon configures it.
    let (twin, bmc) = bmc_on_twin();
    let ask = |request| ask(&bmc, request);
    let der = rustls::pki_types::CertificateDer::from_pem_file(&cert).unwrap();
    let root = std::fs::read(tmp.path().join("keys/root/1.root.json")).unwrap();
    let config = NetworkBootConfig {
        uri: heapless::String::try_from(format!("https://10.0.2.2:{port}/boot/").as_str()).unwrap(),
        profile: heapless::String::try_from("debian").unwrap(),
        known_good: None,
        root_version: 1,
        root_sha256: sha2_std::Sha256::digest(&root).into(),
        server_certificate_sha256: sha2_std::Sha256::digest(der.as_ref()).into(),
    };
    assert_eq!(ask(Request::SetBootMode(BootMode::Network)), Response::Ack);
    assert_eq!(ask(Request::SetNetworkBoot(Some(config))), Response::Ack);

    // The boot channel: the VM's second serial port connects to this socket.
    let channel_path = tmp.path().join("boot-channel.sock");
    let channel = std::os::unix::net::UnixListener::bind(&channel_path).unwrap();
    let bmc_for_channel = bmc.clone();
    std::thread::spawn(move || {
        if let Ok((wire, _)) = channel.accept() {
            serve_boot_channel(bmc_for_channel, wire);
        }
    });

    let mut vm = Command::new("qemu-system-x86_64")
        .args([
            "-M",
            "pc",
            "-accel",
            "tcg",
            "-m",
            "512",
            "-nographic",
            "-nodefaults",
            "-no-user-config",
        ])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(tmp.path().join("bootstrap.img"))
        .args([
            "-append",
            "console=ttyS0 panic=-1 tsc=reliable racklet.ip=10.0.2.15/24 racklet.gw=10.0.2.2",
        ])
        .args(["-serial", "stdio"])
        .arg("-serial")
        .arg(format!("unix:{}", channel_path.display()))
        .args([
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-x86_64 runs (scripts/test installs qemu-system-x86)");
    let stdout = vm.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut console = Vec::new();
    let booted = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("racklet-node: booted");
                console.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = vm.kill();
    let _ = vm.wait();
    let console = console.join("\n");
    eprintln!("{console}");
    assert!(booted, "the VM never reached the booted system:\n{console}");
    let kernel_sha = hex::encode(sha2_std::Sha256::digest(&kernel_bytes));
    assert!(
        console.contains(&format!(
            "verified debian from commit {COMMIT}: kernel sha256:{kernel_sha}"
        )),
        "{console}"
    );
    let Response::BootReport(report) = ask(Request::BootReport) else {
        panic!("no report")
    };
    let m = report
        .measurement
        .expect("the bootstrap reported its measurement");
    assert_eq!(hex::encode(m.kernel_sha256), kernel_sha);
    assert_eq!(hex::encode(m.git_commit), COMMIT);
    let _ = twin;
}
