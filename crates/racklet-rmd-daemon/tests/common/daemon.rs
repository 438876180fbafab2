//! The `racklet-rmd` program under test: started with a configuration file for a
//! temporary tree, its log lines read as they come, stopped with SIGTERM; and a Redfish
//! client for it over HTTPS with the service's own certificate and `admin` account.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Tree;

pub const WITHIN: Duration = Duration::from_secs(30);

pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    pub fn start(config: &Path, journald: bool) -> Daemon {
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
    pub fn wait_line(&mut self, needle: &str) -> String {
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

    /// The Redfish service it started (its address from the "serving" line), with the
    /// `admin` password the first start wrote (the file the "created" line names).
    pub fn first_redfish(&mut self, tree: &Tree) -> Redfish {
        let serving = self.wait_line("serving");
        let base = field(&serving, "redfish")
            .trim_end_matches("/redfish/v1")
            .to_string();
        let created = self.wait_line("created Redfish account");
        let password_file = created
            .split("password is in ")
            .nth(1)
            .and_then(|s| s.split(" (owner-only)").next())
            .expect("password file in the log");
        let password = std::fs::read_to_string(password_file)
            .expect("password")
            .trim()
            .to_string();
        Redfish::new(tree, base, password)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> Vec<String> {
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
pub fn field(line: &str, key: &str) -> String {
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

/// `rmd.toml` for the example chassis on `tree`, trusting `approved` identities from the start.
pub fn write_config(tree: &Tree, approved: &[&str]) -> PathBuf {
    let approved: Vec<String> = approved.iter().map(|a| format!("\"{a}\"")).collect();
    let approved = approved.join(", ");
    let path = tree.root.join("rmd.toml");
    let ports: String = (1..=7)
        .map(|s| format!("{s} = \"{}\"\n", super::port_path(s)))
        .collect();
    std::fs::write(
        &path,
        format!(
            r#"chassis = "chassis-1"
manifests = ["{examples}"]
state-dir = "state"
redfish-listen = "127.0.0.1:0"
metrics-listen = "127.0.0.1:0"
pre-approved = [{approved}]

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
            examples = super::examples().display(),
        ),
    )
    .expect("config");
    path
}

pub struct Redfish {
    /// `https://ADDR`, without `/redfish/v1`.
    pub base: String,
    http: reqwest::Client,
    /// The `admin` account's password.
    pub password: String,
}

impl Redfish {
    pub fn new(tree: &Tree, base: String, password: String) -> Redfish {
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

    pub async fn get(&self, path: &str) -> Value {
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

    pub async fn post(&self, path: &str, body: Value) -> reqwest::StatusCode {
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth("admin", Some(&self.password))
            .json(&body)
            .send()
            .await
            .expect("POST")
            .status()
    }

    /// Uploads a firmware bundle for `slot`'s BMC; the task monitor's URL.
    pub async fn start_update(&self, slot: u32, bundle: Vec<u8>) -> String {
        let params = serde_json::json!({
            "Targets": [format!("/redfish/v1/UpdateService/FirmwareInventory/bmc-{slot}")]
        });
        let form = reqwest::multipart::Form::new()
            .part(
                "UpdateParameters",
                reqwest::multipart::Part::text(params.to_string())
                    .mime_str("application/json")
                    .expect("mime"),
            )
            .part(
                "UpdateFile",
                reqwest::multipart::Part::bytes(bundle).file_name("racklet-bmc.bin"),
            );
        let r = self
            .http
            .post(format!("{}/redfish/v1/UpdateService/upload", self.base))
            .basic_auth("admin", Some(&self.password))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(r.status(), 202, "the upload starts a task");
        let monitor = r.headers()["Location"]
            .to_str()
            .expect("Location")
            .to_string();
        format!("{}{monitor}", self.base)
    }

    /// Uploads a firmware bundle and waits for its task to end; the task.
    pub async fn update(&self, slot: u32, bundle: Vec<u8>) -> Value {
        let monitor = self.start_update(slot, bundle).await;
        let deadline = Instant::now() + WITHIN;
        loop {
            let r = self
                .http
                .get(&monitor)
                .basic_auth("admin", Some(&self.password))
                .send()
                .await
                .expect("task monitor");
            let done = r.status() == 200;
            let task: Value = r.json().await.expect("task");
            if done {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "the update task did not end: {task:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn trust(&self, slot: u32) -> String {
        let m = self.get(&format!("/redfish/v1/Managers/bmc-{slot}")).await;
        m["Oem"]["Racklet"]["Trust"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}
