//! The `racklet-rmd` program end to end: its configuration file, the Linux backplane over
//! temporary `sys/` and `dev/` trees with a BMC core behind a pseudo-terminal, Redfish over
//! HTTPS with the account it creates, journald-style logs, SIGTERM, and a restart that
//! leaves the tray's power as it was.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{wait_for, BmcOnPty, Tree};
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(30);

struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(config: &Path, journald: bool) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_racklet-rmd"));
        cmd.arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped());
        if journald {
            cmd.env("JOURNAL_STREAM", "8:12345");
        } else {
            cmd.env_remove("JOURNAL_STREAM");
        }
        let mut child = cmd.spawn().expect("racklet-rmd starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("racklet-rmd: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first log line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {needle:?}; saw {:#?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) -> Vec<String> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "racklet-rmd did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "racklet-rmd exited with {status} on SIGTERM"
        );
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.lines.try_iter());
        seen
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` from a tracing line.
fn field(line: &str, key: &str) -> String {
    let at = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("{key} in {line}"))
        + key.len()
        + 1;
    line[at..]
        .split_whitespace()
        .next()
        .expect("value")
        .trim_matches('"')
        .to_string()
}

fn write_config(tree: &Tree, approved: &str) -> PathBuf {
    let path = tree.root.join("rmd.toml");
    let ports: String = (1..=7)
        .map(|s| format!("{s} = \"{}\"\n", common::port_path(s)))
        .collect();
    std::fs::write(
        &path,
        format!(
            r#"chassis = "chassis-1"
manifests = ["{examples}"]
state-dir = "state"
redfish-listen = "127.0.0.1:0"
metrics-listen = "127.0.0.1:0"
pre-approved = ["{approved}"]

[devices]
sys-root = "sys"
dev-root = "dev"

[devices.ports]
{ports}
[devices.fans.fan-left]
chip = "emc2305"
channel = 1

[devices.fans.fan-right]
chip = "emc2305"
channel = 2
"#,
            examples = common::examples().display(),
        ),
    )
    .expect("config");
    path
}

struct Redfish {
    base: String,
    http: reqwest::Client,
    password: String,
}

impl Redfish {
    fn new(tree: &Tree, base: String, password: String) -> Redfish {
        let ca = std::fs::read(tree.root.join("state/redfish/tls/cert.pem"))
            .expect("the service's certificate");
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM"))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Redfish {
            base,
            http,
            password,
        }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth("admin", Some(&self.password))
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("JSON")
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::StatusCode {
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth("admin", Some(&self.password))
            .json(&body)
            .send()
            .await
            .expect("POST")
            .status()
    }

    async fn trust(&self, slot: u32) -> String {
        let m = self.get(&format!("/redfish/v1/Managers/bmc-{slot}")).await;
        m["Oem"]["Racklet"]["Trust"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racklet_rmd_serves_redfish_for_bmcs_on_ttyacm_ports_and_stops_cleanly_on_sigterm() {
    let tree = Tree::new();
    let bmc = BmcOnPty::start(11, 1);
    tree.plug("ttyACM0", 1, bmc.serial, &bmc.link());
    let config = write_config(&tree, &bmc.identity);

    let mut daemon = Daemon::start(&config, false);
    let serving = daemon.wait_line("serving");
    let redfish_url = field(&serving, "redfish");
    let base = redfish_url.trim_end_matches("/redfish/v1").to_string();
    let created = daemon.wait_line("created Redfish account");
    let password_file = created
        .split("password is in ")
        .nth(1)
        .and_then(|s| s.split(" (owner-only)").next())
        .expect("password file in the log");
    let password = std::fs::read_to_string(password_file)
        .expect("password")
        .trim()
        .to_string();
    let redfish = Redfish::new(&tree, base.clone(), password.clone());

    wait_for("bmc-1 trusted in Redfish", WITHIN, async || {
        redfish.trust(1).await == "Trusted"
    })
    .await;
    let status = redfish
        .post(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            serde_json::json!({"ResetType": "On"}),
        )
        .await;
    assert!(status.is_success(), "Reset On: {status}");
    wait_for("DCDC_EN high", WITHIN, async || bmc.dcdc_en()).await;
    let log = daemon.terminate();
    assert!(
        log.iter().any(|l| l.contains("SIGTERM: stopping")),
        "{log:#?}"
    );

    // A restart, logging for journald: the tray keeps its power; the BMC is trusted again.
    let mut daemon = Daemon::start(&config, true);
    let serving = daemon.wait_line("serving");
    assert!(
        serving.starts_with("<6>"),
        "journald priority prefix: {serving}"
    );
    let base = field(&serving, "redfish")
        .trim_end_matches("/redfish/v1")
        .to_string();
    let redfish = Redfish::new(&tree, base, password);
    wait_for("bmc-1 trusted after the restart", WITHIN, async || {
        redfish.trust(1).await == "Trusted"
    })
    .await;
    assert!(bmc.dcdc_en(), "a daemon start never changes a tray's power");
    wait_for("the system On in Redfish", WITHIN, async || {
        redfish.get("/redfish/v1/Systems/1").await["PowerState"] == "On"
    })
    .await;
    assert!(bmc.dcdc_en());
    daemon.terminate();
}
