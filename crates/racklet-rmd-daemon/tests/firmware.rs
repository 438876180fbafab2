//! `racklet-rmd` against the real BMC firmware image running in the rp2040js emulator
//! (`firmware/emulator/harness.mjs`), driven through Redfish: the firmware enumerates on
//! USB with its unique ID as serial number, waits for an operator's approval, enrolls and
//! keeps a session with the daemon, drives DCDC_EN when Redfish powers the system on, its
//! PAC1921 readings come back as watts, and the console carries bytes both ways.
//!
//! Whole-stack tier: needs Node with `npm ci` done in `firmware/emulator`, `socat`, and
//! the emulator image that `scripts/build-firmware` builds (its output directory in
//! `RACKLET_FIRMWARE_DIR`); `scripts/test` provides all three.
#![cfg(feature = "whole-stack-tests")]
// reason: tests may expect: a panic is their failure report.
#![allow(clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use common::daemon::{write_config, Daemon, WITHIN};
use common::{wait_for, Tree};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

const SERIAL: &str = "E6614103E7452D2F";

/// The firmware image in rp2040js, its events read as they come.
struct Emulator {
    child: Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

/// A file of `scripts/build-firmware`'s output.
fn built(name: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var_os("RACKLET_FIRMWARE_DIR").expect(
        "RACKLET_FIRMWARE_DIR names scripts/build-firmware's output (scripts/test sets it)",
    ))
    .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-firmware",
        path.display()
    );
    path
}

impl Emulator {
    /// The boot stage and the emulator image in slot A, as a UF2 leaves a board.
    fn start(dir: &Path) -> Emulator {
        Emulator::start_with(dir, &built("racklet-bmc-emulator-flash.bin"), &[])
    }

    /// `flash` as the chip's flash, with watchdog scratch registers as a reset left them.
    fn start_with(dir: &Path, flash: &Path, scratch: &[(u8, u32)]) -> Emulator {
        let harness =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware/emulator/harness.mjs");
        let mut command = Command::new("node");
        command.arg(harness);
        for (n, value) in scratch {
            command.arg("--scratch").arg(format!("{n}={value:#x}"));
        }
        let mut child = command
            .arg("--image")
            .arg(flash)
            .args(["--serial", SERIAL, "--volts", "5.1", "--load-watts", "3.1"])
            .arg("--usb-pty")
            .arg(dir.join("usb"))
            .arg("--console-pty")
            .arg(dir.join("console"))
            .stdin(Stdio::piped()) // it stops on stdin EOF: kept open until the test ends
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs the harness (npm ci in firmware/emulator)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("rp2040js: {line}");
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Emulator {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// The first event named `name` for which `pred` holds.
    fn wait_event(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let matches = |v: &Value| v["event"] == name && pred(v);
        if let Some(v) = self.seen.iter().find(|v| matches(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.events.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no {name} event from the emulator; saw {:#?}", self.seen)
            });
            assert_ne!(v["event"], "fault", "the firmware faulted: {v}");
            self.seen.push(v.clone());
            if matches(&v) {
                return v;
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SIGTERM lets the harness end its socat children; SIGKILL only if it hangs.
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racklet_rmd_enrolls_and_powers_the_real_firmware_in_rp2040js_through_redfish() {
    let tree = Tree::new();
    let mut emulator = Emulator::start(&tree.root);
    let usb = emulator.wait_event("usb-enumerated", |_| true);
    assert_eq!(
        usb["serial"], SERIAL,
        "USB serial number = the flash's unique ID: {usb}"
    );
    assert_eq!(
        usb["serialFromDevice"], true,
        "read from the device's descriptor: {usb}"
    );
    assert_eq!(
        (usb["vid"].as_u64(), usb["pid"].as_u64()),
        (Some(0x1209), Some(0x7ac1))
    );
    emulator.wait_event("ready", |_| true);
    let dcdc_low = emulator.wait_event("gpio", |v| v["name"] == "DCDC_EN");
    assert_eq!(dcdc_low["level"], 0, "a new BMC leaves its tray off");

    let serial = u64::from_str_radix(SERIAL, 16).expect("hex");
    tree.plug("ttyACM0", 1, serial, &tree.root.join("usb"));
    let config = write_config(&tree, &[]);
    let mut daemon = Daemon::start(&config, false);
    let redfish = daemon.first_redfish(&tree);

    // A new BMC waits for an operator; approving its identity enrolls it.
    wait_for("bmc-1 pending approval", WITHIN, async || {
        redfish.trust(1).await == "PendingApproval"
    })
    .await;
    let manager = redfish.get("/redfish/v1/Managers/bmc-1").await;
    let identity = manager["Oem"]["Racklet"]["Identity"]
        .as_str()
        .expect("identity")
        .to_string();
    assert_eq!(
        identity.len(),
        64,
        "an Ed25519 public key in hex: {manager}"
    );
    let status = redfish
        .post(
            "/redfish/v1/Managers/bmc-1/Actions/Oem/RackletBmc.Approve",
            json!({"Identity": identity}),
        )
        .await;
    assert!(status.is_success(), "approve: {status}");
    wait_for("bmc-1 trusted (enrolled, in session)", WITHIN, async || {
        redfish.trust(1).await == "Trusted"
    })
    .await;

    // Power on through Redfish: the firmware drives DCDC_EN and its PAC1921 reads watts.
    let status = redfish
        .post(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            json!({"ResetType": "On"}),
        )
        .await;
    assert!(status.is_success(), "Reset On: {status}");
    emulator.wait_event("gpio", |v| v["name"] == "DCDC_EN" && v["level"] == 1);
    wait_for("the tray's watts in Redfish", WITHIN, async || {
        let s = redfish
            .get("/redfish/v1/Chassis/tray-1/Sensors/Power")
            .await;
        s["Reading"].as_f64().is_some_and(|w| (w - 3.1).abs() < 0.1)
    })
    .await;

    // The console both ways, through the daemon's console WebSocket.
    let ca = std::fs::read(tree.root.join("state/redfish/tls/cert.pem")).expect("certificate");
    let tls = racklet_client::client::tls_config(&ca).expect("TLS config");
    let url = format!(
        "{}/racklet/v1/Systems/1/Console",
        redfish.base.replace("https://", "wss://")
    );
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .expect("request");
    let basic = base64_basic("admin", &redfish.password);
    request
        .headers_mut()
        .insert("Authorization", basic.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
    )
    .await
    .expect("console WebSocket");
    let console_path = tree.root.join("console");
    let mut console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&console_path)
        .expect("console pty");
    console
        .write_all(b"racklet-node login: ")
        .expect("write to the tray's UART");
    let mut got = Vec::new();
    let deadline = Instant::now() + WITHIN;
    while !String::from_utf8_lossy(&got).contains("racklet-node login: ") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(m))) => got.extend_from_slice(&m.into_data()),
            other => panic!("the console did not carry the tray's output: {other:?}, got {got:?}"),
        }
    }
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "root\n".into(),
    ))
    .await
    .expect("type into the console");
    let typed = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 64];
        let mut typed = Vec::new();
        while !typed.ends_with(b"root\n") {
            let n = console.read(&mut buf).expect("read the tray's UART");
            typed.extend_from_slice(&buf[..n]);
        }
        typed
    });
    let typed = tokio::time::timeout(WITHIN, typed)
        .await
        .expect("typed bytes reach the UART")
        .expect("reader");
    assert!(typed.ends_with(b"root\n"), "{typed:?}");

    // Firmware updates (the emulator image trusts firmware/emulator/test-signing-key): a
    // bundle with one byte changed is refused and nothing changes; the same bundle intact
    // is verified and staged, and the BMC resets into the new slot.
    let key = racklet_firmware_bundle::read_key(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware/emulator/test-signing-key"),
    )
    .expect("the test signing key");
    let image: Vec<u8> = (0..16 * 1024u32).map(|i| (i % 251) as u8).collect();
    let good = racklet_firmware_bundle::bundle(&key, &image, 2).expect("bundle");
    let mut tampered = good.clone();
    if let Some(b) = tampered.last_mut() {
        *b ^= 0x01;
    }
    let task = redfish.update(1, tampered).await;
    assert_eq!(task["TaskState"], "Exception", "{task:#}");
    assert!(
        task.to_string().contains("signature"),
        "the refusal names the signature: {task:#}"
    );
    assert_eq!(
        redfish.trust(1).await,
        "Trusted",
        "a refused bundle changes nothing"
    );
    assert!(
        !emulator.seen.iter().any(|e| e["event"] == "reset"),
        "no reset for a refused bundle"
    );
    let inventory = redfish
        .get("/redfish/v1/UpdateService/FirmwareInventory/bmc-1")
        .await;
    assert_eq!(inventory["Version"], "1", "{inventory:#}");
    let monitor = redfish.start_update(1, good).await;
    let reset = emulator.wait_event("reset", |_| true);
    assert_eq!(
        reset["reason"], "watchdog-reset",
        "the firmware resets through its watchdog (peripherals too): {reset}"
    );
    drop(monitor);
    // The image runs from SRAM, its stack in what its code and statics leave: the emulator
    // image leaves 40 KiB (memory-emulator.x), the board image 49 KiB. The deepest the stack
    // went (enrollment, sessions, a signature check, flash records) stays well inside.
    let stats = emulator.wait_event("stats", |_| true);
    let stack = stats["stackBytes"].as_u64().expect("the stack is painted");
    assert!(stack < 30 * 1024, "stack use {stack} B: {stats}");

    let log = daemon.terminate();
    assert!(log.iter().any(|l| l.contains("SIGTERM: stopping")));
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A flash image as a board holds it after an update was activated: the boot stage, this
/// image in both slots, and a key store (record `sequence`) whose selector makes slot B,
/// version 2, the trial slot with its one try not used yet. Returns the BMC's identity.
fn flash_on_trial(path: &Path, sequence: u32) -> String {
    use racklet_bootsel::layout::{KEY_SECTORS, SLOT_OFFSETS};
    let mut flash = std::fs::read(built("racklet-bmc-emulator-flash.bin")).expect("flash image");
    let image = std::fs::read(built("racklet-bmc-emulator.bin")).expect("image");
    let seed = [9u8; 32];
    let keys = racklet_bmc::KeyStore {
        identity_seed: Some(seed),
        firmware: racklet_bmc::FirmwareState {
            active: 1,
            active_version: 2,
            staged_version: Some(1), // what a fall-back returns to
            trial: true,
            trial_booted: false,
            boot_count: 4,
        },
        ..racklet_bmc::KeyStore::default()
    };
    let mut buf = [0u8; 1024];
    let payload = keys.encode(&mut buf).expect("fits");
    let mut record = [0xFFu8; racklet_bootsel::record::SECTOR];
    racklet_bootsel::record::build(sequence, payload, &mut record).expect("record");
    let mut put = |at: u32, bytes: &[u8]| {
        let at = at as usize;
        if flash.len() < at + bytes.len() {
            flash.resize(at + bytes.len(), 0xFF);
        }
        flash[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(SLOT_OFFSETS[1], &image);
    put(KEY_SECTORS[0], &record);
    std::fs::write(path, &flash).expect("write the flash image");
    hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes(),
    )
}

/// What Redfish says of tray 1's BMC firmware, once the daemon has a session with it.
async fn running_firmware(emulator: &mut Emulator, tree: &Tree, identity: &str) -> Value {
    emulator.wait_event("ready", |_| true);
    let serial = u64::from_str_radix(SERIAL, 16).expect("hex");
    tree.plug("ttyACM0", 1, serial, &tree.root.join("usb"));
    let config = write_config(tree, &[identity]);
    let mut daemon = Daemon::start(&config, false);
    let redfish = daemon.first_redfish(tree);
    wait_for(
        "bmc-1 trusted (pre-approved identity)",
        WITHIN,
        async || redfish.trust(1).await == "Trusted",
    )
    .await;
    wait_for(
        "tray 1's BMC firmware in the inventory",
        WITHIN,
        async || {
            let all = redfish
                .get("/redfish/v1/UpdateService/FirmwareInventory")
                .await;
            all.to_string()
                .contains("/redfish/v1/UpdateService/FirmwareInventory/bmc-1")
        },
    )
    .await;
    let inventory = redfish
        .get("/redfish/v1/UpdateService/FirmwareInventory/bmc-1")
        .await;
    daemon.terminate();
    inventory
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boot_stage_gives_a_new_slot_one_try_then_falls_back_to_the_old_one() {
    const SEQUENCE: u32 = 7;
    let dir = tempfile::tempdir().expect("temporary directory");
    let flash = dir.path().join("flash.bin");
    let identity = flash_on_trial(&flash, SEQUENCE);

    // Power-on: the stage boots slot B, the new version, as its one try.
    let tree = Tree::new();
    let mut emulator = Emulator::start_with(&tree.root, &flash, &[]);
    let inventory = running_firmware(&mut emulator, &tree, &identity).await;
    assert_eq!(inventory["Version"], "2", "{inventory:#}");
    assert!(
        inventory["Description"]
            .as_str()
            .is_some_and(|d| d.contains("slot B") && d.contains("on trial")),
        "{inventory:#}"
    );
    drop(emulator);

    // A reset before the new firmware confirmed (and before it could even record its try):
    // the stage's mark in watchdog scratch 0 survives the reset, so slot A boots, with the
    // version the key store kept for it.
    let tree = Tree::new();
    let tried = racklet_bootsel::select::tried_word(SEQUENCE);
    let mut emulator = Emulator::start_with(&tree.root, &flash, &[(0, tried)]);
    let inventory = running_firmware(&mut emulator, &tree, &identity).await;
    assert_eq!(inventory["Version"], "1", "{inventory:#}");
    assert_eq!(
        inventory["Description"], "Runs from slot A",
        "{inventory:#}"
    );
    drop(emulator);
}
