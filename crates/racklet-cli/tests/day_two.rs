//! Day two with `racklet`: restarts keep the rack, one data dir has one owner, the data
//! dir is found as KUBECONFIG is, and `apply`, `diff` and `delete` work on resources as
//! kubectl users expect.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::{
    line_where, racklet, redfish_power, run, scratch, spawn_lines, until_nodes, up_ready,
};

#[test]
fn a_second_up_on_a_data_dir_in_use_is_refused_and_changes_nothing() {
    let dir = scratch("one-owner");
    let first = up_ready(&dir);
    // Let the first rack settle so that its own writes do not look like the second's.
    let out = racklet()
        .args(["get", "nodes", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What a second start used to rewrite: enrollment state, accounts, endpoints.
    let watched = [
        dir.join("rmd/chassis-1/state.json"),
        dir.join("redfish/chassis-1/accounts.json"),
        dir.join("endpoints.json"),
    ];
    let read = |files: &[PathBuf]| -> Vec<Vec<u8>> {
        files
            .iter()
            .map(|f| std::fs::read(f).expect("state file"))
            .collect()
    };
    let before = read(&watched);
    let started = Instant::now();
    let second = racklet()
        .args(["up", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    let pid = first.0.id();
    assert!(
        stderr.contains(&format!("another racklet up (pid {pid}) is using")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("move it away"),
        "never advise moving live state: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    assert!(
        read(&watched) == before,
        "the running rack's state files changed"
    );
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_data_dir_is_global_set_by_the_environment_and_a_stale_one_says_so() {
    let dir = scratch("stale");
    common::up_for(&dir, "0.5");
    // racklet up has stopped: its endpoints.json is stale. Each way of naming the data dir
    // reaches the same dir and says what to do.
    let expect = format!("is `racklet up --data-dir {}` running?", dir.display());
    let runs = [
        racklet()
            .args(["get", "nodes", "--data-dir"])
            .arg(&dir)
            .output(),
        racklet()
            .arg("--data-dir")
            .arg(&dir)
            .args(["get", "nodes"])
            .output(),
        racklet()
            .args(["get", "nodes"])
            .env("RACKLET_DATA_DIR", &dir)
            .output(),
    ];
    for run in runs {
        let out = run.expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("cannot reach the control plane at https://127.0.0.1:")
                && err.contains(&expect),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Commits `power` for node-6 and waits until its BMC reports it: only a rack under
/// control in this run gets there (a status kept from an earlier run does not count).
fn node6_follows(dir: &Path, power: &str, within: Duration) {
    let out = racklet()
        .args(["power", &power.to_lowercase(), "node-6", "--data-dir"])
        .arg(dir)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + within;
    loop {
        let out = racklet()
            .args(["get", "node", "node-6", "-o", "json", "--data-dir"])
            .arg(dir)
            .output()
            .expect("runs");
        let n: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if n["status"]["powerState"] == power && n["status"]["sync"] == "Synced" {
            return;
        }
        assert!(Instant::now() < deadline, "node-6 not {power}: {n}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_rack_comes_back_after_a_kill_and_after_a_failed_start() {
    let dir = scratch("comeback");
    // A first run that stops cleanly after a while (as Ctrl-C would).
    common::up_for(&dir, "6");
    let enrollment = std::fs::read(dir.join("rmd/chassis-1/state.json")).expect("state");
    let second = up_ready(&dir);
    node6_follows(&dir, "On", Duration::from_secs(60));
    drop(second); // SIGKILL: no clean shutdown at all
    let second = up_ready(&dir);
    node6_follows(&dir, "Off", Duration::from_secs(90));
    drop(second);
    // A start that fails (its control plane port is taken) leaves the rack as it was.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = busy.local_addr().expect("addr").port().to_string();
    let failed = racklet()
        .args(["up", "--controlplane-port", &port, "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert_eq!(
        failed.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    drop(busy);
    let third = up_ready(&dir);
    node6_follows(&dir, "On", Duration::from_secs(60));
    // Nobody was enrolled again: the daemon's trust state is the one of the first run.
    assert_eq!(
        std::fs::read(dir.join("rmd/chassis-1/state.json")).expect("state"),
        enrollment
    );
    drop(third);
    let _ = std::fs::remove_dir_all(&dir);
}

const NODE6_STORAGE: &str = "apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-6, labels: {racklet.io/pool: storage}}\nspec: {chassis: chassis-1, tray: 6, board: rpi5, powerState: Off}\n";

/// The author of the newest commit of the rack's repository, as `git log` shows it.
fn last_author(dir: &Path) -> String {
    let out = std::process::Command::new("git")
        .args(["log", "-1", "--format=%an <%ae>"])
        .current_dir(dir.join("repo"))
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn apply_diff_and_delete_work_on_resources_and_a_served_object_applies_back() {
    let dir = scratch("resources");
    let up = up_ready(&dir);
    let named = |nodes: &[serde_json::Value], name: &str| {
        nodes
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .cloned()
    };
    until_nodes(&dir, Duration::from_secs(60), "node-5 On", |n| {
        named(n, "node-5").is_some_and(|n| n["status"]["sync"] == "Synced")
    });

    // What `get node X -o yaml|json` prints is that object, and applies back unchanged.
    for format in ["yaml", "json"] {
        let (code, out, err) = run(&dir, &["get", "node", "node-6", "-o", format]);
        assert_eq!(code, Some(0), "{err}");
        let served = dir.join(format!("node-6.{format}"));
        std::fs::write(&served, &out).expect("write");
        let path = served.to_str().expect("UTF-8 path");
        let (code, out, err) = run(&dir, &["diff", "-f", path]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out.trim(), "no change to desired state", "{format}");
        let (code, out, err) = run(&dir, &["apply", "-f", path]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("nothing to commit"), "{format}: {out}");
    }

    // A file named nodes.yaml that holds node-6 updates node-6 where it lives.
    let nodes = dir.join("nodes.yaml");
    std::fs::write(&nodes, NODE6_STORAGE).expect("write");
    let (code, out, err) = run(&dir, &["diff", "-f", nodes.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.trim(),
        "~ ComputeUnit/node-6: metadata.labels.racklet.io/pool: workers -> storage"
    );
    let (code, out, err) = run(
        &dir,
        &[
            "apply",
            "-f",
            nodes.to_str().expect("path"),
            "--author",
            "Grace Hopper <grace@example.org>",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("committed"), "{out}");
    assert!(!dir.join("repo/rack/nodes.yaml").exists());
    assert_eq!(last_author(&dir), "Grace Hopper <grace@example.org>");

    // Deleting a node removes it from the repository and shuts its tray down.
    let (code, out, err) = run(&dir, &["delete", "node", "node-5"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("- ComputeUnit/node-5"), "{out}");
    until_nodes(&dir, Duration::from_secs(30), "node-5 gone", |n| {
        named(n, "node-5").is_none() && n.len() == 6
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while redfish_power(&dir, 5).as_deref() != Some("Off") {
        assert!(Instant::now() < deadline, "tray 5 shut down");
        std::thread::sleep(Duration::from_millis(200));
    }

    // apply -f DIR: a new resource lands in the file of its name.
    let more = dir.join("more");
    std::fs::create_dir_all(&more).expect("mkdir");
    std::fs::write(
        more.join("node-5.yaml"),
        "apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-5}\nspec: {chassis: chassis-1, tray: 5, board: rpi5, powerState: On}\n",
    )
    .expect("write");
    let (code, out, err) = run(&dir, &["apply", "-f", more.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("+ ComputeUnit/node-5: tray 5 of chassis-1, power On"),
        "{out}"
    );
    assert!(dir.join("repo/rack/node-5.yaml").exists());
    until_nodes(&dir, Duration::from_secs(60), "node-5 back On", |n| {
        named(n, "node-5")
            .is_some_and(|n| n["status"]["powerState"] == "On" && n["status"]["sync"] == "Synced")
    });
    drop(up);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn power_actions_are_the_users_not_drift_and_off_is_graceful_unless_forced() {
    let dir = scratch("intent");
    let up = up_ready(&dir);
    let named = |nodes: &[serde_json::Value], name: &str| {
        nodes
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .cloned()
    };
    let on_and_synced = |name: &'static str| {
        move |n: &[serde_json::Value]| {
            named(n, name).is_some_and(|n| {
                n["status"]["powerState"] == "On" && n["status"]["sync"] == "Synced"
            })
        }
    };
    until_nodes(
        &dir,
        Duration::from_secs(60),
        "node-2 On",
        on_and_synced("node-2"),
    );
    // `get nodes -w` and `events -w` follow what happens next, line by line.
    let (_nodes_watch, node_lines) = spawn_lines(&dir, &["get", "nodes", "-w"]);
    let (_events_watch, event_lines) = spawn_lines(&dir, &["events", "-w"]);
    line_where(&node_lines, Duration::from_secs(10), "the header", |l| {
        l.starts_with("NAME")
    });
    line_where(&node_lines, Duration::from_secs(10), "node-2's row", |l| {
        l.starts_with("node-2 ")
    });

    // A power cycle someone asks for is recorded as theirs and not fought as drift.
    let (code, out, err) = run(
        &dir,
        &[
            "power",
            "cycle",
            "node-2",
            "--author",
            "Ada <ada@example.org>",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    // The BMC keeps the tray off for 3 s, then powers it on again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while redfish_power(&dir, 2).as_deref() == Some("On") {
        assert!(Instant::now() < deadline, "the cycle's off half");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while redfish_power(&dir, 2).as_deref() != Some("On") {
        assert!(Instant::now() < deadline, "the cycle's on half");
        std::thread::sleep(Duration::from_millis(100));
    }
    until_nodes(
        &dir,
        Duration::from_secs(60),
        "node-2 back On",
        on_and_synced("node-2"),
    );
    let (_, events, _) = run(&dir, &["events"]);
    assert!(
        events.contains("node-2: PowerCycle asked for by Ada <ada@example.org>"),
        "{events}"
    );
    line_where(
        &event_lines,
        Duration::from_secs(10),
        "the cycle's event",
        |l| l.contains("node-2: PowerCycle asked for by Ada"),
    );
    // The row changed while the cycle ran (Progressing), and again when it was back.
    line_where(
        &node_lines,
        Duration::from_secs(10),
        "node-2 changing",
        |l| l.starts_with("node-2 ") && !l.contains("Healthy"),
    );
    line_where(
        &node_lines,
        Duration::from_secs(30),
        "node-2 healthy again",
        |l| l.starts_with("node-2 ") && l.contains("Healthy"),
    );
    assert!(
        !events
            .lines()
            .any(|l| l.contains("node-2") && l.contains("drift corrected")),
        "{events}"
    );

    // `power status` says what the node is.
    let (code, out, err) = run(&dir, &["power", "status", "node-2"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("node-2: desired On, observed On (Synced, Healthy)"),
        "{out}"
    );

    // `off --force` cuts power at once; the commit carries the caller's Git identity.
    let out = racklet()
        .args(["power", "off", "node-3", "--force", "--data-dir"])
        .arg(&dir)
        .env("GIT_AUTHOR_NAME", "Linus Operator")
        .env("GIT_AUTHOR_EMAIL", "linus@example.org")
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("ForceOff"), "{said}");
    assert_eq!(last_author(&dir), "Linus Operator <linus@example.org>");
    let (_, events, _) = run(&dir, &["events"]);
    assert!(
        events.contains("node-3: ForceOff asked for by Linus Operator <linus@example.org>"),
        "{events}"
    );
    // Faster than a graceful shutdown could be (the OS takes seconds to halt).
    let deadline = Instant::now() + Duration::from_secs(3);
    while redfish_power(&dir, 3).as_deref() != Some("Off") {
        assert!(Instant::now() < deadline, "tray 3 off at once");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(up);

    // With racklet up stopped, a change is refused before anything is committed.
    let head = || {
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(dir.join("repo"))
            .output()
            .expect("git")
            .stdout
    };
    let before = head();
    let (code, _, err) = run(&dir, &["power", "on", "node-3"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("racklet up --data-dir"), "{err}");
    assert_eq!(head(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_halted_os_under_power_is_not_healthy_and_says_what_to_do() {
    let dir = scratch("halted");
    let up = up_ready(&dir);
    let node1 = |n: &[serde_json::Value]| {
        n.iter()
            .find(|n| n["metadata"]["name"] == "node-1")
            .cloned()
            .unwrap_or_default()
    };
    until_nodes(&dir, Duration::from_secs(60), "node-1 healthy", |n| {
        node1(n)["status"]["health"] == "Healthy"
    });
    // Someone types `poweroff` on its console: the OS halts, the tray stays powered.
    // Its shell prompt: the OS has booted and takes commands.
    let (console, mut stdin) =
        common::console_until(&dir, "node-1", "root@node-1:~# ", Duration::from_secs(60));
    std::io::Write::write_all(&mut stdin, b"poweroff\n").expect("type");
    until_nodes(&dir, Duration::from_secs(30), "node-1 OsHalted", |n| {
        let n = node1(n);
        n["status"]["health"] == "Degraded" && n["status"]["powerState"] == "On"
    });
    std::io::Write::write_all(&mut stdin, &[0x1d]).expect("detach");
    drop(console);
    let (code, page, err) = run(&dir, &["describe", "node", "node-1"]);
    assert_eq!(code, Some(0), "{err}");
    let healthy = page
        .lines()
        .find(|l| l.trim_start().starts_with("Healthy "))
        .unwrap_or_default();
    assert!(
        healthy.contains(" False ")
            && healthy.contains("OsHalted")
            && healthy.contains("racklet power cycle node-1"),
        "{page}"
    );
    // Power still matches the repository: in sync, but not healthy.
    let synced = page
        .lines()
        .find(|l| l.trim_start().starts_with("Synced "))
        .unwrap_or_default();
    assert!(synced.contains(" True "), "{page}");
    // What it says to do works.
    let (code, out, err) = run(&dir, &["power", "cycle", "node-1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    until_nodes(&dir, Duration::from_secs(60), "node-1 healthy again", |n| {
        let n = node1(n);
        n["status"]["health"] == "Healthy" && n["status"]["powerState"] == "On"
    });
    drop(up);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wiped_bmc_is_not_trusted_until_an_operator_forgets_its_key() {
    let dir = scratch("wiped");
    common::up_for(&dir, "4");
    // Tray 3's BMC loses its flash (keys and all) while the rack is down.
    std::fs::remove_file(dir.join("twin/chassis-1/tray-3.flash.json")).expect("wiped");
    let up = up_ready(&dir);
    let node3 = |n: &[serde_json::Value]| {
        n.iter()
            .find(|n| n["metadata"]["name"] == "node-3")
            .cloned()
            .unwrap_or_default()
    };
    until_nodes(&dir, Duration::from_secs(30), "node-3 not trusted", |n| {
        let n = node3(n);
        n["status"]["health"] == "Degraded"
            && n["status"]["conditions"][1]["reason"] == "BmcNotTrusted"
    });
    let (code, out, err) = run(&dir, &["bmc", "forget", "node-3"]);
    assert_eq!(code, Some(0), "{out}{err}");
    until_nodes(
        &dir,
        Duration::from_secs(60),
        "node-3 trusted and on",
        |n| {
            let n = node3(n);
            n["status"]["health"] == "Healthy" && n["status"]["powerState"] == "On"
        },
    );
    let (_, events, _) = run(&dir, &["events"]);
    assert!(
        events.contains("node-3: ForgetBmcKey asked for by"),
        "{events}"
    );
    drop(up);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rollouts_watched_off_a_terminal_print_lines_until_they_end() {
    let dir = scratch("rollout-lines");
    let up = up_ready(&dir);
    let image = dir.join("bmc.bin");
    std::fs::write(
        &image,
        (0..4096u32)
            .map(|i| (i * 7 + 3).to_le_bytes()[0])
            .collect::<Vec<u8>>(),
    )
    .expect("image");
    let bundle = dir.join("bmc-2.bin");
    let out = racklet()
        .arg("firmware")
        .arg("bundle")
        .arg(&image)
        .args(["--version", "2", "--key"])
        .arg(dir.join("firmware-signing-key"))
        .arg("-o")
        .arg(&bundle)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy = "apiVersion: racklet.io/v1alpha1\nkind: FirmwarePolicy\nmetadata: {name: bmc}\nspec: {chassis: chassis-1, bmc: {version: 2, bundle: firmware/bmc-2.bin}}\n";
    racklet_gitops::git::commit_files(
        &dir.join("repo"),
        &[
            (
                "rack/firmware/bmc-2.bin".to_string(),
                std::fs::read(&bundle).expect("bundle"),
            ),
            ("rack/firmware.yaml".to_string(), policy.as_bytes().to_vec()),
        ],
        "Roll out BMC firmware 2",
    )
    .expect("commit");
    let (code, _, err) = run(&dir, &["sync"]);
    assert_eq!(code, Some(0), "{err}");
    // Not a terminal: a line per change of a roll-out, then the command ends.
    let watch = racklet()
        .args(["get", "rollouts", "--watch", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&watch.stdout);
    assert!(
        watch.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with("chassis-1 v2: ")),
        "{text}"
    );
    assert!(lines.len() >= 2, "progress, not only the end: {text}");
    assert!(
        lines.last().is_some_and(|l| l.contains("7/7 trays")),
        "{text}"
    );
    drop(up);
    let _ = std::fs::remove_dir_all(&dir);
}
