//! The `racklet` binary as users run it: exit codes, output formats, `up`'s life cycle.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{racklet, root, scratch, KillOnDrop};

#[test]
fn validate_accepts_the_examples() {
    let out = racklet()
        .arg("validate")
        .arg(root().join("examples"))
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("9 resource(s) valid"));
}

#[test]
fn validate_reports_every_problem_with_file_line_column_and_fails() {
    let case = root().join("tests/malformed/46-several-problems-in-one-file.yaml");
    let out = racklet().arg("validate").arg(&case).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for line in &lines {
        let rest = line
            .strip_prefix(&format!("{}:", case.display()))
            .expect("starts with the file");
        let mut parts = rest.splitn(3, ':');
        let line_no: u32 = parts
            .next()
            .and_then(|l| l.parse().ok())
            .expect("line number");
        let col: u32 = parts.next().and_then(|c| c.parse().ok()).expect("column");
        assert!(line_no >= 1 && col >= 1);
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 problem(s) found"));
}

#[test]
fn validate_names_a_missing_path_instead_of_panicking() {
    let out = racklet()
        .args(["validate", "/nonexistent/rack.yaml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("/nonexistent/rack.yaml:1:1: cannot read:"),
        "{stdout}"
    );
}

#[test]
fn schema_prints_every_kind_and_rejects_unknown_ones() {
    let out = racklet().arg("schema").output().expect("runs");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut kinds: Vec<&String> = v.as_object().expect("object").keys().collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "BoardModel",
            "BootProfile",
            "Chassis",
            "ComputeUnit",
            "FirmwarePolicy",
            "Rack"
        ]
    );
    let out = racklet()
        .args(["schema", "--kind", "Gizmo"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind \"Gizmo\""));
}

#[test]
fn up_seeds_its_data_dir_prints_ready_and_stops_after_its_duration() {
    let dir = scratch("up");
    let out = racklet()
        .args([
            "up",
            "--duration",
            "2",
            "--speed",
            "20",
            "--refresh",
            "0.5",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l == "racklet is ready"), "{stdout}");
    assert!(
        stdout.contains("node-1") && stdout.contains("rmc-1"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("rmc-1") && l.contains("running")),
        "booted at 20x: {stdout}"
    );
    // Not a terminal: lines of what changed, never the whole table again (a log of a
    // day of `racklet up` stays small).
    assert!(!stdout.contains("CHASSIS"), "no table in a log: {stdout}");
    assert!(!stdout.contains("\x1b["), "no terminal control in a log");
    let rmc_lines = stdout
        .lines()
        .filter(|l| l.contains("tray 7 rmc-1:"))
        .count();
    assert!(
        (1..=6).contains(&rmc_lines),
        "only changes of rmc-1: {stdout}"
    );
    assert!(stdout.trim_end().ends_with("racklet stopped"), "{stdout}");
    let endpoints: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("endpoints.json")).expect("written"))
            .expect("JSON");
    assert!(endpoints.is_array());
    // Network boot is signed from the first start: keys of its own and a served repository.
    let url_of = |name: &str| {
        endpoints
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .and_then(|e| e["url"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(url_of("boot-repository").ends_with("/boot/"), "{endpoints}");
    let root = url_of("boot-trusted-root");
    assert!(
        std::path::Path::new(root.trim_start_matches("file://")).is_file(),
        "{endpoints}"
    );
    assert!(
        dir.join("repo/rack/rack.yaml").exists() && dir.join("repo/.git").exists(),
        "examples seeded into the data dir's repository"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn up_refuses_invalid_manifests_with_their_positions() {
    let dir = scratch("invalid");
    let case = root().join("tests/malformed/27-chassis-without-rmc.yaml");
    let out = racklet()
        .arg("up")
        .arg("--data-dir")
        .arg(&dir)
        .arg("--manifests")
        .arg(&case)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("27-chassis-without-rmc.yaml:3:18: chassis `ch` has no RMC tray"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn up_shuts_down_cleanly_on_ctrl_c() {
    let dir = scratch("sigint");
    let mut up = racklet();
    up.arg("up").arg("--data-dir").arg(&dir);
    let (mut child, rx) = common::spawn_with_lines(up);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut metrics_url = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("\"racklet is ready\" within 30 s");
        if let Some(url) = line.strip_prefix("metrics ") {
            metrics_url = Some(url.to_string());
        }
        if line == "racklet is ready" {
            break;
        }
    }
    let url = metrics_url.expect("the metrics endpoint is listed before ready");
    let body = http_get(&url);
    assert!(
        body.contains("racklet_bmc_up{chassis=\"chassis-1\",tray=\"1\"} 1"),
        "{body}"
    );
    assert!(body.contains("racklet_build_info"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut last = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        last = line;
    }
    let exit = child.0.wait().expect("exits");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(last, "racklet stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A minimal HTTP/1.1 GET over loopback (no client library needed for one request).
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = std::net::TcpStream::connect(host).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("application/openmetrics-text"),
        "{response}"
    );
    response
}

/// `racklet up`, then a commit to its repository that powers a tray on shows the tray On
/// in `racklet get nodes` and in Redfish; the client commands do the rest through the
/// control plane's API. (How fast a commit converges is measured by `racklet bench`.)
#[test]
fn a_commit_to_the_up_repository_powers_a_tray_on() {
    let dir = scratch("gitops");
    let child = common::up_ready(&dir);
    let get_nodes = || -> Vec<serde_json::Value> {
        // `kubectl get -o json`'s shape: a List of objects.
        let out = racklet()
            .args(["get", "nodes", "-o", "json", "--data-dir"])
            .arg(&dir)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(list["kind"], "List", "{list}");
        list["items"].as_array().cloned().unwrap_or_default()
    };
    let node6 = |nodes: &[serde_json::Value]| {
        nodes
            .iter()
            .find(|n| n["metadata"]["name"] == "node-6")
            .cloned()
            .unwrap_or_default()
    };
    // The seed keeps node-6 off; wait until the control plane says so.
    let deadline = Instant::now() + Duration::from_secs(60);
    while node6(&get_nodes())["status"]["sync"] != "Synced" {
        assert!(
            Instant::now() < deadline,
            "seed converged: {:?}",
            get_nodes()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(node6(&get_nodes())["status"]["powerState"], "Off");

    let repo = dir.join("repo");
    let text = std::fs::read_to_string(repo.join("rack/compute-units.yaml")).expect("manifest");
    let on = text.replace(
        "tray: 6, board: rpi5, powerState: Off",
        "tray: 6, board: rpi5, powerState: On",
    );
    assert_ne!(on, text);
    racklet_gitops::git::commit_files(
        &repo,
        &[("rack/compute-units.yaml".to_string(), on.into_bytes())],
        "Power node-6 on",
    )
    .expect("commit");
    let committed = Instant::now();
    loop {
        let n = node6(&get_nodes());
        if n["status"]["powerState"] == "On" && n["status"]["sync"] == "Synced" {
            break;
        }
        assert!(
            committed.elapsed() < Duration::from_secs(60),
            "not On within 60 s: {n}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = committed.elapsed();
    // Redfish says the same.
    assert_eq!(common::redfish_power(&dir, 6).as_deref(), Some("On"));
    eprintln!("commit to On in get nodes and Redfish: {took:?}");
    // The table form lists it too.
    let out = racklet()
        .args(["get", "nodes", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("node-6") && l.contains(" On ") && l.contains("Synced")),
        "{table}"
    );

    // `describe node` shows its conditions and the tray's sensors, read through Redfish.
    let out = racklet()
        .args(["describe", "node", "node-6", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{page}");
    assert!(page.contains("  Synced      True     Converged"), "{page}");
    let power = page
        .lines()
        .find(|l| l.trim_start().starts_with("Tray 6 power"))
        .unwrap_or_else(|| panic!("a power sensor: {page}"));
    assert!(power.ends_with(" W"), "a reading in watts: {power}");

    // `power off` commits to the repository and syncs; the node follows.
    let out = racklet()
        .args(["power", "off", "node-6", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("~ ComputeUnit/node-6: spec.powerState: On -> Off")
            && said.contains("committed"),
        "{said}"
    );
    // A graceful shutdown: the OS halts, or the BMC forces it off after 30 s.
    let deadline = Instant::now() + Duration::from_secs(45);
    while node6(&get_nodes())["status"]["powerState"] != "Off" {
        assert!(
            Instant::now() < deadline,
            "node-6 off: {}",
            node6(&get_nodes())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // An invalid file is refused by `diff` and `apply` with its positions; nothing is committed.
    let bad = dir.join("compute-units.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(repo.join("rack/compute-units.yaml"))
            .expect("manifest")
            .replace("tray: 5, board: rpi5", "tray: 9, board: rpi5"),
    )
    .expect("write");
    for cmd in ["diff", "apply"] {
        let out = racklet()
            .args([cmd, "-f"])
            .arg(&bad)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains("compute-units.yaml:25:34: `spec.tray` is the number 9"),
            "{cmd}: {err}"
        );
    }
    let log = racklet_gitops::git::current_branch(&repo).expect("branch");
    assert_eq!(log, "main");

    // A power cycle of the RMC (it runs the rack daemon) takes --force.
    let out = racklet()
        .args(["power", "cycle", "rmc-1", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("RMC") && err.contains("--force"), "{err}");

    // Racks and chassis as the control plane sees them.
    for (what, expect) in [("racks", "rack-1"), ("chassis", "chassis-1")] {
        let out = racklet()
            .args(["get", what, "--data-dir"])
            .arg(&dir)
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.lines().any(|l| l.starts_with(expect)),
            "{what}: {text}"
        );
    }

    // The serial console of a running node: its boot log, then Ctrl-] detaches.
    let (mut console, mut stdin) =
        common::console_until(&dir, "node-1", "Booting Linux", Duration::from_secs(20));
    std::io::Write::write_all(&mut stdin, &[0x1d]).expect("detach key");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = console.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "detached within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn boot_keys_are_made_once_rotated_into_a_new_root_and_shown() {
    let dir = scratch("boot-keys");
    let keys = dir.join("keys");
    let run = |args: &[&str]| {
        racklet()
            .args(["boot", "keys"])
            .args(args)
            .arg("--keys")
            .arg(&keys)
            .output()
            .expect("runs")
    };
    let out = run(&["init", "--root-keys", "2", "--root-threshold", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("root version 1"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("root") && l.contains(" 2 ") && l.contains("2/2")),
        "{stdout}"
    );
    let again = run(&["init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds boot keys (root version 1)"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let rotated = run(&["rotate", "timestamp"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(
        String::from_utf8_lossy(&rotated.stdout).contains("timestamp keys rotated: root version 2"),
        "{}",
        String::from_utf8_lossy(&rotated.stdout)
    );
    assert!(keys.join("root/2.root.json").is_file());
    let bad = run(&["rotate", "everything"]);
    assert_eq!(bad.status.code(), Some(2), "clap refuses an unknown role");
}

#[test]
fn completions_are_printed_for_bash() {
    let out = racklet()
        .args(["completions", "bash"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("_racklet") && script.contains("apply"),
        "{script}"
    );
}

#[test]
fn writing_to_a_reader_that_went_away_does_not_panic() {
    let mut child = KillOnDrop(
        racklet()
            .arg("schema")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts"),
    );
    // `racklet schema | head -0`: the reader is gone before the first write.
    drop(child.0.stdout.take());
    let status = child.0.wait().expect("ends");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().expect("piped"), &mut err)
        .expect("stderr");
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(status.code(), Some(101), "a panic exits 101: {err}");
}
