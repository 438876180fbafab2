//! Helpers the CLI tests share: the binary, scratch dirs, a `racklet up` that is killed
//! when the test ends, and reading what the rack reports.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary; a `racklet up` it starts emulates the compute units' OS (deterministic and
/// light) unless a test asks for QEMU with `--compute qemu`.
pub fn racklet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_racklet"));
    c.env("RACKLET_COMPUTE", "emulated");
    c
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("racklet-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Kills the child if the test fails before it exits.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` with its stdout piped and hands the lines over as they come. The
/// reader keeps reading after nobody listens: a closed pipe would stop the child at its
/// next line (SIGPIPE).
pub fn spawn_with_lines(mut command: Command) -> (KillOnDrop, std::sync::mpsc::Receiver<String>) {
    let mut child = KillOnDrop(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Starts `racklet up` on `dir` and waits for "racklet is ready".
pub fn up_ready(dir: &Path) -> KillOnDrop {
    let mut up = racklet();
    up.args(["up", "--refresh", "60", "--data-dir"]).arg(dir);
    let (child, lines) = spawn_with_lines(up);
    line_where(&lines, Duration::from_secs(60), "racklet is ready", |l| {
        l == "racklet is ready"
    });
    child
}

/// `racklet up --duration SECONDS` on `dir`, to its end.
pub fn up_for(dir: &Path, seconds: &str) {
    let status = racklet()
        .args(["up", "--duration", seconds, "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runs");
    assert!(status.success(), "racklet up --duration {seconds}");
}

/// `racklet console NODE` on `dir`, its output as it comes, read until `text` shows.
pub fn console_until(
    dir: &Path,
    node: &str,
    text: &str,
    within: Duration,
) -> (KillOnDrop, std::process::ChildStdin) {
    let mut console = KillOnDrop(
        racklet()
            .args(["console", node, "--data-dir"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts"),
    );
    let mut out = console.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // To the end, as for lines: a closed pipe would stop the console (SIGPIPE).
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            let _ = tx.send(buf[..n].to_vec());
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + within;
    while !seen.contains(text) {
        let chunk = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{text:?} on the console within {within:?}: {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let stdin = console.0.stdin.take().expect("piped");
    (console, stdin)
}

/// Runs `racklet ARGS --data-dir DIR`; (exit code, stdout, stderr).
pub fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = racklet()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `racklet get nodes -o json`: the items of the List.
pub fn nodes(dir: &Path) -> Vec<serde_json::Value> {
    let (code, out, err) = run(dir, &["get", "nodes", "-o", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until `check` holds for the nodes, or fails with what it saw.
pub fn until_nodes(
    dir: &Path,
    within: Duration,
    what: &str,
    check: impl Fn(&[serde_json::Value]) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let n = nodes(dir);
        if check(&n) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}: {n:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `PowerState` the chassis' Redfish service reports for tray `tray`.
pub fn redfish_power(dir: &Path, tray: u32) -> Option<String> {
    let endpoints: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("endpoints.json")).expect("endpoints"))
            .expect("JSON");
    let url = |name: &str| {
        endpoints
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["url"].as_str())
            .expect("endpoint")
            .to_string()
    };
    let password =
        std::fs::read_to_string(url("redfish-admin-password").trim_start_matches("file://"))
            .expect("password");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = racklet_redfish_client::Client::new(
            racklet_redfish_client::Endpoint {
                base: url("redfish").trim_end_matches("/redfish/v1").to_string(),
                user: "admin".into(),
                password: password.trim().to_string(),
                ca_pem: Some(
                    std::fs::read(dir.join("redfish/chassis-1/tls/cert.pem")).expect("ca"),
                ),
            },
            Duration::from_secs(5),
        )
        .expect("client");
        client
            .system(&format!("/redfish/v1/Systems/{tray}"))
            .await
            .expect("system")
            .power_state
    })
}

/// Starts `racklet ARGS --data-dir DIR` (a command that keeps running, such as a watch)
/// and hands over its stdout line by line.
pub fn spawn_lines(dir: &Path, args: &[&str]) -> (KillOnDrop, std::sync::mpsc::Receiver<String>) {
    let mut command = racklet();
    command.args(args).arg("--data-dir").arg(dir);
    spawn_with_lines(command)
}

/// The first line from `lines` that `f` accepts, within `within`.
pub fn line_where(
    lines: &std::sync::mpsc::Receiver<String>,
    within: Duration,
    what: &str,
    f: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if f(&l) => return l,
            Ok(l) => seen.push(l),
            Err(_) => panic!("{what} within {within:?}; saw {seen:#?}"),
        }
    }
}
