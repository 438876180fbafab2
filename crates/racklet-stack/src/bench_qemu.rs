//! `racklet bench`, QEMU boot part: Redfish `Reset On` of a tray to its node agent's first
//! report in the control plane (BMC power-on, the VM's bootstrap kernel, the boot channel,
//! TUF verification, the streamed payload, kexec, the booted kernel, the agent over mutual
//! TLS), median of several runs, against a bare boot of the same kernel and initramfs
//! straight to `/init` in the same run (goal: at most 2×). Runs `racklet up --compute
//! qemu` (this binary) with one worker; skipped, with the reason, where QEMU, a kernel or
//! the static bootstrap (`RACKLET_BOOTSTRAP_BIN`) is missing.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use racklet_client::DataDir;

const NODES: &str = "\
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

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    println!("network boot: Redfish Reset On to the node agent's report, against a bare boot");
    let found = (|| {
        let qemu = racklet_sim::qemu::find_qemu()?;
        let (kernel, modules) = racklet_sim::qemu::find_kernel()?;
        let bootstrap = std::env::var_os("RACKLET_BOOTSTRAP_BIN")
            .map(PathBuf::from)
            .context("RACKLET_BOOTSTRAP_BIN is not set (scripts/build-bootstrap prints it)")?;
        anyhow::Ok((qemu, kernel, modules, bootstrap))
    })();
    let (qemu, kernel, modules, bootstrap) = match found {
        Ok(f) => f,
        Err(e) => {
            println!("  skipped: {e:#}");
            return Ok(());
        }
    };
    let runs = if quick { 1 } else { 5 };
    let dir = std::env::temp_dir().join(format!("racklet-bench-qemu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let image = racklet_bootstrap::initramfs::build(&racklet_bootstrap::initramfs::Spec {
        init: bootstrap.clone(),
        modules_dir: Some(modules),
        modules: racklet_bootstrap::initramfs::QEMU_MODULES
            .iter()
            .map(|m| m.to_string())
            .collect(),
    })?;
    let image_path = dir.join("node.img");
    std::fs::write(&image_path, &image.gzip)?;
    let result = (|| {
        let bare = (0..runs)
            .map(|_| bare_boot(&qemu, &kernel, &image_path))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ours = reset_on_to_agent(&dir, &kernel, &image.gzip, &bootstrap, runs)?;
        anyhow::Ok((bare, ours))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (bare, ours) = result?;
    let (bare, ours) = (median(bare), median(ours));
    println!(
        "  {:<58} {:>7.2} s",
        format!("Reset On -> node agent report, median of {runs} (TCG)"),
        ours
    );
    println!(
        "  {:<58} {:>7.2} s",
        format!("bare boot of the same kernel to /init, median of {runs}"),
        bare
    );
    println!("  ratio {:.2}x (goal <= 2x)", ours / bare);
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// QEMU started with the kernel and the initramfs' program as the booted system's, to its
/// first line on the console.
fn bare_boot(qemu: &Path, kernel: &Path, initramfs: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut vm = Killed(
        Command::new(qemu)
            .args(["-M", "pc", "-accel", racklet_sim::qemu::accelerator()])
            .args(["-smp", "1", "-m", "512", "-nographic", "-nodefaults"])
            .args(["-no-user-config", "-serial", "stdio"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initramfs)
            .args([
                "-append",
                "console=ttyS0 panic=-1 tsc=reliable racklet.stage=booted",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("qemu-system-x86_64 runs")?,
    );
    let out = vm.0.stdout.take().context("piped")?;
    for line in std::io::BufReader::new(out).lines() {
        if line?.contains("racklet-node: booted") {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the bare boot never reached /init"
        );
    }
    anyhow::bail!("the bare boot ended before /init")
}

/// `racklet up --compute qemu` with one worker that boots `image` over the network; the
/// time from Redfish `Reset On` (after a `ForceOff`) to a report with a new boot id.
fn reset_on_to_agent(
    dir: &Path,
    kernel: &Path,
    image: &[u8],
    bootstrap: &Path,
    runs: usize,
) -> anyhow::Result<Vec<f64>> {
    let data = DataDir::new(dir.join("data"));
    let profile = "apiVersion: racklet.io/v1alpha1\nkind: BootProfile\nmetadata: {name: hypervisor}\nspec:\n  architecture: x86_64\n  kernel: boot/vmlinuz\n  initramfs: boot/node.img\n  commandLine: console=ttyS0 panic=-1 tsc=reliable racklet.stage=booted\n";
    let files = vec![
        (
            "rack/rack.yaml".to_string(),
            include_bytes!("../../../examples/rack.yaml").to_vec(),
        ),
        ("rack/compute-units.yaml".into(), NODES.as_bytes().to_vec()),
        (
            "rack/boot-profiles.yaml".into(),
            profile.as_bytes().to_vec(),
        ),
        ("rack/boot/vmlinuz".into(), std::fs::read(kernel)?),
        ("rack/boot/node.img".into(), image.to_vec()),
    ];
    racklet_gitops::git::commit_files(&data.repository(), &files, "Bench network boot")?;
    let mut up = Command::new(std::env::current_exe()?);
    up.args([
        "up",
        "--compute",
        "qemu",
        "--drift",
        "report",
        "--refresh",
        "3600",
    ])
    .arg("--bootstrap")
    .arg(bootstrap)
    .arg("--data-dir")
    .arg(data.root())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut up = Killed(up.spawn().context("racklet up starts")?);
    let out = up.0.stdout.take().context("piped")?;
    let mut lines = std::io::BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l == "racklet is ready" => break,
            Some(Ok(_)) => {}
            _ => anyhow::bail!("racklet up ended before it was ready"),
        }
    }
    // Keep reading: a closed pipe would stop `up` at its next line.
    std::thread::spawn(move || for _ in lines {});
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let api = racklet_client::Client::open(&data)?;
        let base = data.endpoint("redfish")?;
        let redfish = racklet_redfish_client::Client::new(
            racklet_redfish_client::Endpoint {
                base: base.trim_end_matches("/redfish/v1").to_string(),
                user: "admin".into(),
                password: std::fs::read_to_string(data.redfish_admin_password("chassis-1"))?
                    .trim()
                    .to_string(),
                ca_pem: Some(std::fs::read(data.redfish_certificate("chassis-1"))?),
            },
            Duration::from_secs(10),
        )?;
        let system = redfish
            .systems()
            .await?
            .into_iter()
            .find(|s| s.id == "1")
            .context("Systems/1 (tray 1)")?;
        let boot_id = || async {
            api.node("node-1")
                .await
                .ok()
                .and_then(|n| n.status.agent)
                .filter(|a| {
                    // A report of this boot, not one from before the last power-off.
                    recent(&a.last_heartbeat)
                })
                .map(|a| a.boot_id)
        };
        let wait = |what: &'static str, limit: Duration| {
            let started = Instant::now();
            move || {
                anyhow::ensure!(started.elapsed() < limit, "{what} within {limit:?}");
                Ok(())
            }
        };
        // The first boot (the seed powers node-1 on).
        let first = wait("the first boot", Duration::from_secs(300));
        let mut last = loop {
            if let Some(id) = boot_id().await {
                break id;
            }
            first()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let mut times = Vec::new();
        for _ in 0..runs {
            redfish.reset(&system, "ForceOff").await?;
            let off = wait("power off", Duration::from_secs(60));
            while redfish.system(&system.uri).await?.power_state.as_deref() != Some("Off") {
                off()?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let started = Instant::now();
            redfish.reset(&system, "On").await?;
            let booted = wait(
                "the agent's report after Reset On",
                Duration::from_secs(300),
            );
            loop {
                if let Some(id) = boot_id().await.filter(|id| *id != last) {
                    last = id;
                    break;
                }
                booted()?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            times.push(started.elapsed().as_secs_f64());
        }
        anyhow::Ok(times)
    })
}

/// True for a heartbeat within the last 15 seconds (RFC 3339).
fn recent(heartbeat: &str) -> bool {
    heartbeat
        .parse::<jiff::Timestamp>()
        .map(|t| jiff::Timestamp::now().duration_since(t).as_secs() < 15)
        .unwrap_or(false)
}
