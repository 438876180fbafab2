//! Whole-stack tier (`scripts/test` installs `qemu-system-x86` and `linux-image-amd64`,
//! and builds the static bootstrap, whose path it gives in `RACKLET_BOOTSTRAP_BIN`): a
//! `racklet up` whose compute units are QEMU VMs. A commit adds a `BootProfile` (Debian's
//! kernel and an initramfs made with `racklet boot build-initramfs`) and switches a tray
//! on: its VM boots the bootstrap, which verifies the profile against the TUF repository
//! the control plane published, kexecs it, and the booted system's node agent reports over
//! mutual TLS; `racklet get nodes -o json` shows that profile's digests and Git commit. A
//! VM that stops reporting turns its node Degraded; a graceful shutdown presses its ACPI
//! power button and the VM powers itself off.

// reason: tests may unwrap and expect: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{console_until, nodes, racklet, run, scratch, spawn_with_lines};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2_std::Digest as _;

const RACK: &str = include_str!("../../../examples/rack.yaml");

const NODES_OFF: &str = "\
apiVersion: racklet.io/v1alpha1
kind: ComputeUnit
metadata: {name: node-1}
spec: {chassis: chassis-1, tray: 1, board: rpi4b, powerState: Off}
---
apiVersion: racklet.io/v1alpha1
kind: ComputeUnit
metadata: {name: rmc-1}
spec: {chassis: chassis-1, tray: 7, board: rpi4b, role: Rmc, powerState: On}
";

const NODES_BOOTING: &str = "\
apiVersion: racklet.io/v1alpha1
kind: ComputeUnit
metadata: {name: node-1}
spec: {chassis: chassis-1, tray: 1, board: rpi4b, powerState: On, bootMode: Network, bootProfile: hypervisor}
---
apiVersion: racklet.io/v1alpha1
kind: ComputeUnit
metadata: {name: rmc-1}
spec: {chassis: chassis-1, tray: 7, board: rpi4b, role: Rmc, powerState: On}
";

const PROFILE: &str = "\
apiVersion: racklet.io/v1alpha1
kind: BootProfile
metadata: {name: hypervisor}
spec:
  architecture: x86_64
  kernel: boot/vmlinuz
  initramfs: boot/node.img
  commandLine: console=ttyS0 panic=-1 tsc=reliable racklet.stage=booted
";

/// Debian's newest kernel: (`/boot/vmlinuz-RELEASE`, RELEASE).
fn debian_kernel() -> (PathBuf, String) {
    let mut releases: Vec<String> = std::fs::read_dir("/boot")
        .expect("/boot (scripts/test installs linux-image-amd64)")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_string))
        .filter(|r| Path::new("/lib/modules").join(r).is_dir())
        .collect();
    releases.sort();
    let release = releases.pop().expect("a kernel in /boot with its modules");
    (PathBuf::from(format!("/boot/vmlinuz-{release}")), release)
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@racklet.invalid",
        ])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {:?}", out);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn node1(dir: &Path) -> serde_json::Value {
    nodes(dir)
        .into_iter()
        .find(|n| n["metadata"]["name"] == "node-1")
        .expect("node-1 is served")
}

/// Polls node-1 until `ok` holds; panics with the last object after `within`.
fn wait_node(dir: &Path, within: Duration, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let n = node1(dir);
        if ok(&n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}; node-1 is {n:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn condition(n: &serde_json::Value, type_: &str) -> (String, String) {
    let c = n["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_);
    (
        c.map_or(String::new(), |c| c["status"].as_str().unwrap_or("").into()),
        c.map_or(String::new(), |c| c["reason"].as_str().unwrap_or("").into()),
    )
}

/// The QEMU process of node-1's tray (its sockets are under the data dir).
fn vm_pid(dir: &Path) -> Option<i32> {
    let marker = dir.join("qemu/chassis-1-tray-1/console.sock");
    let marker = marker.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&marker))
                .unwrap_or(false)
        })
}

#[test]
fn a_committed_boot_profile_boots_a_qemu_tray_and_its_node_agent_reports_the_digests_and_commit() {
    let bootstrap = PathBuf::from(
        std::env::var("RACKLET_BOOTSTRAP_BIN")
            .expect("RACKLET_BOOTSTRAP_BIN: the static racklet-bootstrap (scripts/test builds it)"),
    );
    let dir = scratch("network-boot");
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("rack.yaml"), RACK).unwrap();
    std::fs::write(seed.join("compute-units.yaml"), NODES_OFF).unwrap();
    let data = dir.join("data");

    let mut up = racklet();
    up.args(["up", "--compute", "qemu", "--refresh", "60", "--manifests"])
        .arg(&seed)
        .arg("--bootstrap")
        .arg(&bootstrap)
        .arg("--data-dir")
        .arg(&data);
    let (_up, lines) = spawn_with_lines(up);
    common::line_where(&lines, Duration::from_secs(120), "racklet is ready", |l| {
        l == "racklet is ready"
    });

    // The commit: a BootProfile with its files, and the tray switched on.
    let repo = data.join("repo");
    let (kernel, release) = debian_kernel();
    std::fs::create_dir_all(repo.join("rack/boot")).unwrap();
    std::fs::copy(&kernel, repo.join("rack/boot/vmlinuz")).unwrap();
    let node_img = repo.join("rack/boot/node.img");
    let (code, out, err) = run(
        &data,
        &[
            "boot",
            "build-initramfs",
            "--init",
            bootstrap.to_str().unwrap(),
            "--kernel-release",
            &release,
            "--output",
            node_img.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("bytes compressed"), "{out}");
    std::fs::write(repo.join("rack/boot-profiles.yaml"), PROFILE).unwrap();
    std::fs::write(repo.join("rack/compute-units.yaml"), NODES_BOOTING).unwrap();
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &["commit", "-q", "-m", "Boot node-1 from the network"],
    );
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let (code, _, err) = run(&data, &["sync"]);
    assert_eq!(code, Some(0), "{err}");

    let sha = |p: &Path| hex::encode(sha2_std::Sha256::digest(std::fs::read(p).unwrap()));
    let (kernel_sha, initramfs_sha) = (sha(&kernel), sha(&node_img));
    // TCG on two cores: the bootstrap's kernel, the verified download and the kexec'd
    // kernel take a while.
    wait_node(
        &data,
        Duration::from_secs(300),
        "the node agent reports the committed profile",
        |n| {
            let a = &n["status"]["agent"];
            a["gitCommit"] == commit.as_str()
                && a["kernelSha256"] == kernel_sha.as_str()
                && a["initramfsSha256"] == initramfs_sha.as_str()
                && a["profile"] == "hypervisor"
        },
    );
    let n = node1(&data);
    assert_eq!(condition(&n, "Booted"), ("True".into(), "Measured".into()));
    assert_eq!(
        condition(&n, "AgentReady"),
        ("True".into(), "Reporting".into())
    );
    assert_eq!(n["status"]["boot"]["gitCommit"], commit.as_str(), "{n:#}");
    assert_eq!(n["status"]["health"], "Healthy", "{n:#}");
    let (code, wide, _) = run(&data, &["get", "nodes", "-o", "wide"]);
    assert_eq!(code, Some(0));
    let row = wide.lines().find(|l| l.starts_with("node-1")).unwrap();
    assert!(
        row.contains(" Measured ") && row.contains(" Reporting "),
        "{wide}"
    );
    let (_, describe, _) = run(&data, &["describe", "node", "node-1"]);
    assert!(
        describe.contains("Node agent:         booted hypervisor from"),
        "{describe}"
    );

    // The console is the VM's first serial port: the real kernel (its last lines: the
    // BMC keeps the newest few KiB), then the agent.
    let (console, _stdin) = console_until(
        &data,
        "node-1",
        "racklet-node: reported to",
        Duration::from_secs(30),
    );
    drop(console);
    let (console, _stdin) = console_until(
        &data,
        "node-1",
        "Run /init as init process",
        Duration::from_secs(30),
    );
    drop(console);

    // A VM that stops (its agent silent) turns its node Degraded; it recovers.
    let pid = vm_pid(&data).expect("node-1's VM runs");
    // SAFETY: kill takes no pointers; the pid is this test's VM.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    wait_node(
        &data,
        Duration::from_secs(60),
        "Degraded, agent silent",
        |n| n["status"]["health"] == "Degraded" && condition(n, "AgentReady").1 == "AgentSilent",
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    wait_node(
        &data,
        Duration::from_secs(60),
        "the agent reporting again",
        |n| n["status"]["health"] == "Healthy" && condition(n, "AgentReady").0 == "True",
    );

    // Off is a graceful shutdown: the ACPI power button, and the VM powers itself off.
    let (code, _, err) = run(&data, &["power", "off", "node-1", "--author", "T <t@x>"]);
    assert_eq!(code, Some(0), "{err}");
    wait_node(&data, Duration::from_secs(120), "observed Off", |n| {
        n["status"]["powerState"] == "Off"
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while vm_pid(&data).is_some() {
        assert!(Instant::now() < deadline, "the VM is still running");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (console, _stdin) = console_until(
        &data,
        "node-1",
        "racklet-node: the power button was pressed; powering off",
        Duration::from_secs(30),
    );
    drop(console);
    let _ = std::fs::remove_dir_all(&dir);
}
