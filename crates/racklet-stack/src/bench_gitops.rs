//! `racklet bench`, control plane part: commit-to-converged time for racks of 7, 70 and
//! 1,001 twin trays (one rack management daemon and Redfish service per chassis), against
//! the anchor of a Flux-style fixed 1-minute polling interval; the control plane's CPU
//! while idle (its own thread's CPU time); memory per tray as the process' resident-set
//! growth from starting the control plane to convergence, divided by the trays (an upper
//! bound: the simulated rack and Redfish services grow in that time too).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use racklet_gitops::git::{commit_files, current_branch, Reference, SourceSpec};
use racklet_gitops::power::{node_statuses, ChassisEndpoint, DriftPolicy, Sync};
use racklet_gitops::store::RedbStore;
use racklet_gitops::{Config, ControlPlane};

/// The Flux default the issue names: `interval: 1m`; a commit waits half of it on average.
const FLUX_INTERVAL_SECS: f64 = 60.0;

fn manifests(chassis: usize, workers: &str) -> String {
    crate::bench::synthetic_rack(chassis).replace(
        "role: Worker, powerState: On",
        &format!("role: Worker, powerState: {workers}"),
    )
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_THREAD_CPUTIME_ID is a clock
    // every Linux supports; clock_gettime only writes that struct.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let Ok(nanos) = u32::try_from(ts.tv_nsec) else {
        return Duration::ZERO;
    };
    Duration::new(ts.tv_sec as u64, nanos)
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

struct Run {
    trays: usize,
    converge: Duration,
    idle_cpu_percent: f64,
    bytes_per_tray: f64,
}

fn run_one(chassis: usize, dir: &Path, idle: Duration) -> anyhow::Result<Run> {
    let _ = std::fs::remove_dir_all(dir);
    let repo = dir.join("repo");
    let seed = manifests(chassis, "Off");
    commit_files(
        &repo,
        &[("rack/rack.yaml".into(), seed.clone().into_bytes())],
        "seed",
    )?;
    let (set, diags) = racklet_model::ManifestSet::load(&[repo.join("rack")]);
    anyhow::ensure!(diags.is_empty(), "bench manifests: {}", diags[0]);
    let rack = crate::chassis::enrolled_rack(&set, &dir.join("rack"))?;
    let daemons = rack.daemons.clone();
    let rack = Arc::new(Mutex::new(rack));
    let stop = Arc::new(AtomicBool::new(false));
    // The rack in real time, on its own thread.
    let (r, s) = (rack.clone(), stop.clone());
    let sim = std::thread::spawn(move || {
        let mut last = Instant::now();
        while !s.load(Ordering::SeqCst) {
            let dt = last.elapsed().min(Duration::from_millis(200));
            last = Instant::now();
            if let Ok(mut rack) = r.lock() {
                rack.advance(dt.max(Duration::from_millis(1)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // Redfish services, one per chassis, on a runtime of their own.
    let services = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut endpoints = Vec::new();
    for d in daemons {
        let name = racklet_rmd_api::ChassisManager::chassis_name(&d).to_string();
        let rf = dir.join("redfish").join(&name);
        let endpoint = services.block_on(crate::chassis::redfish_with_admin(d, &rf))?;
        endpoints.push(ChassisEndpoint {
            chassis: name,
            endpoint,
            systems: Default::default(),
        });
    }
    let trays = chassis * 7;
    let rss_before = resident_bytes();
    // The control plane alone on one thread, so its CPU time can be read.
    let cpu = Arc::new(AtomicU64::new(0));
    let (plane_tx, plane_rx) = std::sync::mpsc::channel();
    let config = Config {
        source: SourceSpec {
            url: repo.display().to_string(),
            reference: Reference::Branch(current_branch(&repo)?),
            path: "rack".into(),
            signers: None,
            ca_pem: None,
        },
        dir: dir.join("controlplane"),
        poll: Duration::from_secs(1),
        period: Duration::from_millis(500),
        chassis: endpoints,
        drift: DriftPolicy::Correct,
        boot_keys: None,
    };
    let (c, s) = (cpu.clone(), stop.clone());
    let store_path = dir.join("controlplane/state.redb");
    let cp_thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let store = Arc::new(RedbStore::open(&store_path)?);
            let plane = ControlPlane::new(config, store).await?;
            let _ = plane_tx.send(plane.clone());
            tokio::spawn(plane.run());
            while !s.load(Ordering::SeqCst) {
                let nanos = u64::try_from(thread_cpu().as_nanos()).unwrap_or(u64::MAX);
                c.store(nanos, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(())
        })
    });
    let plane = plane_rx.recv_timeout(Duration::from_secs(30))?;
    let reader = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all = |power: &str, deadline: Duration| -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let nodes = reader.block_on(node_statuses(&**plane.store()))?;
            let want = |n: &racklet_gitops::power::NodeStatus| {
                if n.name.ends_with("-n7") {
                    "On"
                } else {
                    power
                }
            };
            let done = nodes.len() == trays
                && nodes.iter().all(|n| {
                    n.sync == Sync::Synced && n.observed_power.map(|p| p.as_str()) == Some(want(n))
                });
            if done {
                return Ok(start.elapsed());
            }
            anyhow::ensure!(
                start.elapsed() < deadline,
                "{trays} trays did not converge to {power} within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    all("Off", Duration::from_secs(300))?;
    // The measured change: every worker on, committed; the control plane finds it by polling.
    commit_files(
        &repo,
        &[(
            "rack/rack.yaml".into(),
            manifests(chassis, "On").into_bytes(),
        )],
        "every worker on",
    )?;
    let converge = all("On", Duration::from_secs(600))?;
    let bytes_per_tray = resident_bytes().saturating_sub(rss_before) as f64 / trays as f64;
    let cpu_start = cpu.load(Ordering::SeqCst);
    std::thread::sleep(idle);
    let cpu_end = cpu.load(Ordering::SeqCst);
    let idle_cpu_percent =
        (cpu_end.saturating_sub(cpu_start)) as f64 / idle.as_nanos() as f64 * 100.0;
    stop.store(true, Ordering::SeqCst);
    let _ = sim.join();
    let _ = cp_thread.join();
    services.shutdown_background();
    let _ = std::fs::remove_dir_all(dir);
    Ok(Run {
        trays,
        converge,
        idle_cpu_percent,
        bytes_per_tray,
    })
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    println!();
    println!("GitOps control plane: commit-to-converged (every worker powered on, observed through Redfish)");
    println!(
        "anchor: Flux-style fixed polling, interval 1m: a commit waits {:.0} s on average ({:.0} s at worst) before any apply",
        FLUX_INTERVAL_SECS / 2.0,
        FLUX_INTERVAL_SECS
    );
    println!(
        "{:>7} {:>22} {:>18} {:>18} {:>16}",
        "trays", "commit->converged s", "vs Flux mean wait", "idle CPU (1 core)", "RSS growth/tray"
    );
    let sizes: &[usize] = if quick { &[1, 10] } else { &[1, 10, 143] };
    let idle = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    let base = std::env::temp_dir().join(format!("racklet-bench-gitops-{}", std::process::id()));
    for &chassis in sizes {
        let r = run_one(chassis, &base.join(chassis.to_string()), idle)?;
        println!(
            "{:>7} {:>22.2} {:>17.1}x {:>17.2}% {:>13.1} KiB",
            r.trays,
            r.converge.as_secs_f64(),
            FLUX_INTERVAL_SECS / 2.0 / r.converge.as_secs_f64(),
            r.idle_cpu_percent,
            r.bytes_per_tray / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}
