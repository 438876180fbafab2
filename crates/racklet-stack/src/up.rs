//! `racklet up`: the whole rack on one machine, on the digital twin, in real time: the
//! twin, a BMC firmware core per tray, a rack management daemon per chassis (enrollment,
//! fan loop, event log, OpenMetrics, Redfish over HTTPS), and the GitOps control plane
//! following the Git repository `DATA_DIR/repo` (seeded from `examples/` on first start):
//! commit there and the rack follows, through Redfish.

use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use racklet_client::data_dir::Endpoint;
use racklet_client::DataDir;
use racklet_model::ManifestSet;
use racklet_sim::Rack;
use racklet_twin::TwinConfig;

/// The example rack, seeded into a new data dir.
const EXAMPLES: [(&str, &str); 2] = [
    ("rack.yaml", include_str!("../../../examples/rack.yaml")),
    (
        "compute-units.yaml",
        include_str!("../../../examples/compute-units.yaml"),
    ),
];

/// The example rack when its workers are QEMU VMs that boot over the network; the
/// kernel and initramfs are added beside them at seed time.
const QEMU_EXAMPLES: [(&str, &str); 3] = [
    ("rack.yaml", include_str!("../../../examples/rack.yaml")),
    (
        "compute-units.yaml",
        include_str!("../../../examples-qemu/compute-units.yaml"),
    ),
    (
        "boot-profiles.yaml",
        include_str!("../../../examples-qemu/boot-profiles.yaml"),
    ),
];

/// Fastest virtual clock `up` runs (the twin of a 7-tray chassis manages ~3000x).
const MAX_SPEED: f64 = 1000.0;

#[derive(Args)]
pub struct UpArgs {
    /// Directory for everything `up` writes: the binary's global `--data-dir`.
    #[arg(skip = PathBuf::from("./racklet-data"))]
    pub data_dir: PathBuf,
    /// Manifests to seed a new DATA_DIR/repo with (default: the examples).
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Seed of the twin's random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Virtual seconds per wall second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Stop after this many wall seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds between table refreshes.
    #[arg(long, default_value_t = 1.0)]
    refresh: f64,
    /// Loopback port of the metrics endpoint (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    metrics_port: u16,
    /// Loopback port of the first chassis' Redfish service (0 picks free ones).
    #[arg(long, default_value_t = 0)]
    redfish_port: u16,
    /// Loopback port of the control plane's API (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    controlplane_port: u16,
    /// Seconds between fetches of the repository (a `racklet sync` fetches at once).
    #[arg(long, default_value_t = 1.0)]
    poll: f64,
    /// What the control plane does when a node differs from the repository after it had
    /// converged (e.g. powered off by hand through Redfish): put it back, or only report it.
    #[arg(long, value_enum, default_value = "correct")]
    drift: Drift,
    /// What the compute units are: QEMU virtual machines that really boot (over the
    /// network, from the repository; real time only), or the twin's emulated OS. Default:
    /// QEMU when `qemu-system-x86_64`, a kernel in /boot and the static bootstrap
    /// (`scripts/build-bootstrap`) are here and `--speed` is 1.
    #[arg(long, value_enum, env = "RACKLET_COMPUTE")]
    compute: Option<ComputeKind>,
    /// The static `racklet-bootstrap`, PID 1 of the VMs' initramfs (`scripts/build-bootstrap`
    /// builds it and prints its path; without this option, that path beside this binary's
    /// target dir is used if it is there).
    #[arg(long, env = "RACKLET_BOOTSTRAP_BIN")]
    bootstrap: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ComputeKind {
    Qemu,
    Emulated,
}

/// What QEMU compute units need, found and built at start.
struct QemuSetup {
    config: racklet_sim::qemu::QemuConfig,
    kernel: PathBuf,
    /// The initramfs: the bootstrap, and as the booted system the node agent.
    image: Vec<u8>,
}

fn prepare_qemu(args: &UpArgs, data_dir: &Path) -> anyhow::Result<QemuSetup> {
    let qemu = racklet_sim::qemu::find_qemu()?;
    let (kernel, modules) = racklet_sim::qemu::find_kernel()?;
    // Where scripts/build-bootstrap puts it, beside target/release/racklet.
    let built = std::env::current_exe().ok().and_then(|exe| {
        let p = exe
            .parent()?
            .join("../static/x86_64-unknown-linux-gnu/release/racklet-bootstrap");
        p.is_file().then_some(p)
    });
    let bootstrap = args.bootstrap.clone().or(built).context(
        "no static racklet-bootstrap: build it with scripts/build-bootstrap and pass its path with --bootstrap or RACKLET_BOOTSTRAP_BIN",
    )?;
    let image = racklet_bootstrap::initramfs::build(&racklet_bootstrap::initramfs::Spec {
        init: bootstrap,
        modules_dir: Some(modules),
        modules: racklet_bootstrap::initramfs::QEMU_MODULES
            .iter()
            .map(|m| m.to_string())
            .collect(),
    })?;
    let work_dir = data_dir.join("qemu");
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    let initramfs = work_dir.join("bootstrap.img");
    racklet_files::write_atomic(&initramfs, &image.gzip, racklet_files::Access::Public)?;
    Ok(QemuSetup {
        config: racklet_sim::qemu::QemuConfig {
            qemu,
            kernel: kernel.clone(),
            initramfs,
            memory_mib: 512,
            accel: racklet_sim::qemu::accelerator(),
            work_dir,
        },
        kernel,
        image: image.gzip,
    })
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Drift {
    Correct,
    Report,
}

/// The repository the control plane follows; made on first start from `seed` (a
/// directory of manifests) or the examples. Returns its path.
fn seed_repository(
    data_dir: &DataDir,
    seed: Option<&Path>,
    qemu: Option<&QemuSetup>,
) -> anyhow::Result<PathBuf> {
    let repo = data_dir.repository();
    if repo.join(".git").exists() {
        return Ok(repo);
    }
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    match (seed, qemu) {
        (None, Some(q)) => {
            for (name, text) in QEMU_EXAMPLES {
                files.push((format!("rack/{name}"), text.as_bytes().to_vec()));
            }
            let kernel = std::fs::read(&q.kernel)
                .with_context(|| format!("cannot read {}", q.kernel.display()))?;
            files.push(("rack/boot/vmlinuz".into(), kernel));
            files.push(("rack/boot/node.img".into(), q.image.clone()));
        }
        (None, None) => {
            for (name, text) in EXAMPLES {
                files.push((format!("rack/{name}"), text.as_bytes().to_vec()));
            }
        }
        (Some(seed), _) => {
            let paths: Vec<PathBuf> = if seed.is_dir() {
                std::fs::read_dir(seed)
                    .with_context(|| format!("cannot read the manifests in {}", seed.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file())
                    .collect()
            } else {
                vec![seed.to_path_buf()]
            };
            for path in paths {
                let name = path.file_name().map(|n| n.to_string_lossy().to_string());
                if let Some(name) = name {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    files.push((format!("rack/{name}"), bytes));
                }
            }
        }
    }
    files.sort();
    racklet_gitops::git::commit_files(&repo, &files, "Seed the rack")
        .with_context(|| format!("cannot create the repository {}", repo.display()))?;
    Ok(repo)
}

/// A deterministic synthetic workload: each node's demand drifts on its own period.
fn workload(slot: u32, t: f64) -> f64 {
    let period = 90.0 + 23.0 * f64::from(slot);
    0.5 + 0.45 * (std::f64::consts::TAU * t / period + f64::from(slot)).sin()
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    // Before anything in the data dir is touched: one `racklet up` per data dir.
    let _one_owner = DataDir::new(&args.data_dir).lock()?;
    anyhow::ensure!(
        args.speed > 0.0 && args.speed <= MAX_SPEED,
        "--speed must be above 0 and at most {MAX_SPEED} (virtual seconds per wall second)"
    );
    anyhow::ensure!(
        args.refresh.is_finite() && args.refresh >= 0.05,
        "--refresh must be at least 0.05 seconds"
    );
    if let Some(d) = args.duration {
        anyhow::ensure!(
            d.is_finite() && d >= 0.0,
            "--duration must be a non-negative number of seconds"
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    anyhow::ensure!(
        args.poll.is_finite() && args.poll >= 0.1,
        "--poll must be at least 0.1 seconds"
    );
    let data_dir = DataDir::new(&args.data_dir);
    let qemu = match args.compute {
        Some(ComputeKind::Emulated) => None,
        Some(ComputeKind::Qemu) => {
            anyhow::ensure!(
                args.speed == 1.0,
                "--compute qemu runs in real time: the VMs cannot run --speed {} times faster; leave --speed at 1",
                args.speed
            );
            Some(prepare_qemu(&args, &args.data_dir).context("--compute qemu cannot run here")?)
        }
        None if args.speed != 1.0 => {
            eprintln!(
                "racklet: QEMU compute units run in real time; with --speed {} the twin emulates the OS",
                args.speed
            );
            None
        }
        None => {
            match prepare_qemu(&args, &args.data_dir) {
                Ok(q) => Some(q),
                Err(e) => {
                    eprintln!("racklet: QEMU compute units cannot run here ({e:#}); the twin emulates the OS");
                    None
                }
            }
        }
    };
    let repo = seed_repository(&data_dir, args.manifests.as_deref(), qemu.as_ref())?;
    // The twin is the hardware: built once from the repository's manifests at start.
    let manifests = repo.join("rack");
    let (set, diags) = ManifestSet::load(std::slice::from_ref(&manifests));
    if !diags.is_empty() {
        for d in &diags {
            eprintln!("{d}");
        }
        anyhow::bail!(
            "{} problem(s) in {}; fix them and run again",
            diags.len(),
            manifests.display()
        );
    }
    let twin_config = TwinConfig {
        seed: args.seed,
        ..TwinConfig::default()
    };
    let mut rack = Rack::start(&set, &twin_config, &args.data_dir, true)?;
    // The twin's BMCs trust the twin's own firmware signing key, so that roll-outs of
    // bundles signed with it (`racklet firmware bundle`) work end to end.
    let key_file = data_dir.firmware_signing_key();
    let signing_key = racklet_firmware_bundle::read_or_create_key(&key_file)?;
    for b in &mut rack.bmcs {
        if let Some(bmc) = b.bmc() {
            bmc.add_trust_anchor(signing_key.verifying_key().to_bytes())
                .map_err(|e| anyhow::anyhow!("cannot provision a BMC's trust anchor: {e:?}"))?;
        }
    }
    eprintln!(
        "racklet: digital twin of {} chassis, {} compute units from {} (seed {}, {}x real time)",
        set.chassis().count(),
        set.compute_units().count(),
        manifests.display(),
        args.seed,
        args.speed
    );
    // The workers are the VMs; the RMC is where the daemon runs, so it stays the twin's.
    let machine_trays: Vec<(String, u32)> = set
        .compute_units()
        .filter(|(_, cu)| cu.spec.role != racklet_model::compute_unit::Role::Rmc)
        .map(|(_, cu)| (cu.spec.chassis.clone(), cu.spec.tray))
        .collect();
    match &qemu {
        Some(q) => {
            eprintln!(
                "racklet: compute units are QEMU virtual machines ({}, {} MiB each, kernel {}, accelerator {}): {} trays; they boot over the network when powered",
                q.config.qemu.display(),
                q.config.memory_mib,
                q.kernel.display(),
                q.config.accel,
                machine_trays.len()
            );
            rack.use_qemu(q.config.clone(), machine_trays.clone())?;
            if !set
                .compute_units()
                .any(|(_, cu)| cu.spec.boot_profile.is_some())
            {
                eprintln!(
                    "racklet: no compute unit in {} boots from the network (bootMode: Network, bootProfile); their VMs wait in the bootstrap until one does",
                    manifests.display()
                );
            }
        }
        None => eprintln!("racklet: compute units are emulated by the twin's OS model"),
    }
    eprintln!(
        "racklet: {} BMC firmware cores and {} rack management daemon(s); the daemons trust the BMCs this run created",
        rack.bmcs.len(),
        rack.daemons.len()
    );
    eprintln!(
        "racklet: the twin's BMCs trust firmware signed with {} (racklet firmware bundle --key)",
        key_file.display()
    );
    // Let the BMCs enroll; the control plane then brings trays to their desired state.
    rack.advance(Duration::from_secs(2));

    // Signal handlers exist before "ready" is printed, so a Ctrl-C right after it is
    // handled as a clean stop, not the default kill.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        anyhow::Ok((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let metrics = runtime.block_on(racklet_rmd::serve_metrics(
        rack.daemons.clone(),
        SocketAddr::from(([127, 0, 0, 1], args.metrics_port)),
    ))?;
    let mut endpoints = vec![Endpoint {
        name: "metrics".into(),
        url: format!("http://{metrics}/metrics"),
    }];
    let mut chassis_endpoints = Vec::new();
    for (i, d) in rack.daemons.iter().enumerate() {
        let chassis = racklet_rmd_api::ChassisManager::chassis_name(d).to_string();
        let dir = data_dir.redfish(&chassis);
        let port = if args.redfish_port == 0 {
            0
        } else {
            u16::try_from(i)
                .ok()
                .and_then(|i| args.redfish_port.checked_add(i))
                .with_context(|| {
                    format!(
                        "Redfish port {} + chassis {i} is past 65535",
                        args.redfish_port
                    )
                })?
        };
        let running = runtime.block_on(racklet_redfish::serve(
            d.clone(),
            &dir,
            SocketAddr::from(([127, 0, 0, 1], port)),
        ))?;
        let name = if rack.daemons.len() == 1 {
            "redfish".to_string()
        } else {
            format!("redfish-{chassis}")
        };
        endpoints.push(Endpoint {
            name: name.clone(),
            url: format!("https://{}/redfish/v1", running.addr),
        });
        let password_file = data_dir.redfish_admin_password(&chassis);
        if running.initial_password_file.is_some() {
            eprintln!(
                "racklet: {name}: created account `admin`; its password is in {} (owner-only)",
                password_file.display()
            );
        }
        let password_file = std::fs::canonicalize(&password_file).unwrap_or(password_file);
        endpoints.push(Endpoint {
            name: format!("{name}-admin-password"),
            url: format!("file://{}", password_file.display()),
        });
        let base = format!("https://{}", running.addr);
        let ca = std::fs::read(data_dir.redfish_certificate(&chassis))?;
        std::fs::create_dir_all(data_dir.control_plane())?;
        let endpoint = runtime.block_on(racklet_gitops::onboard::account(
            &racklet_gitops::onboard::Chassis {
                name: &chassis,
                base: &base,
                ca_pem: &ca,
                admin_password_file: &password_file,
            },
            &data_dir.chassis_account(&chassis),
        ))?;
        chassis_endpoints.push(racklet_gitops::power::ChassisEndpoint {
            chassis,
            endpoint,
            systems: Default::default(),
        });
    }
    let (api, plane) = runtime.block_on(crate::controlplane::start(
        &data_dir,
        &repo,
        chassis_endpoints,
        Duration::from_secs_f64(args.poll),
        match args.drift {
            Drift::Correct => racklet_gitops::power::DriftPolicy::Correct,
            Drift::Report => racklet_gitops::power::DriftPolicy::Report,
        },
        SocketAddr::from(([127, 0, 0, 1], args.controlplane_port)),
        // A VM reaches the host's loopback at QEMU's user-network gateway.
        qemu.as_ref().map(|_| "10.0.2.2"),
    ))?;
    eprintln!(
        "racklet: the control plane's API token is in {}; Git servers sign webhook calls to /v1/webhook with the secret in {}",
        api.token_file.display(),
        api.webhook_secret_file.display()
    );
    let admin_password = api.accounts_dir.join("initial-admin-password");
    eprintln!(
        "racklet: the dashboard is at https://{}/ ; sign in as `admin` with the password in {} (owner-only; written on first start)",
        api.addr,
        admin_password.display()
    );
    endpoints.push(Endpoint {
        name: racklet_client::data_dir::CONTROL_PLANE.into(),
        url: format!("https://{}", api.addr),
    });
    endpoints.push(Endpoint {
        name: "dashboard".into(),
        url: format!("https://{}/", api.addr),
    });
    endpoints.push(Endpoint {
        name: "dashboard-admin-password".into(),
        url: format!("file://{}", admin_password.display()),
    });
    endpoints.push(Endpoint {
        name: "boot-repository".into(),
        url: format!("https://{}/boot/", api.addr),
    });
    if let Ok(root) = racklet_boot_repo::KeyStore::open(data_dir.boot_keys()).latest_root_path() {
        endpoints.push(Endpoint {
            name: "boot-trusted-root".into(),
            url: format!("file://{}", root.display()),
        });
    }
    endpoints.push(Endpoint {
        name: "repository".into(),
        url: format!(
            "file://{}",
            std::fs::canonicalize(&repo)
                .unwrap_or(repo.clone())
                .display()
        ),
    });
    data_dir.write_endpoints(&endpoints)?;
    for e in &endpoints {
        println!("{} {}", e.name, e.url);
    }
    println!("racklet is ready");
    std::io::stdout().flush().ok();

    // On a terminal the table is redrawn in place: the ways in stay on screen above it.
    let header = endpoints
        .iter()
        .filter(|e| {
            e.name == racklet_client::data_dir::CONTROL_PLANE
                || e.name.starts_with("redfish") && !e.name.ends_with("password")
        })
        .map(|e| format!("{} {}", e.name, e.url))
        .chain(std::iter::once(format!(
            "all endpoints: {}",
            data_dir.endpoints_file().display()
        )))
        .collect();
    let view = crate::up_view::LiveView::new(std::io::stdout().is_terminal(), header);
    let machines: std::collections::HashSet<(String, u32)> = if qemu.is_some() {
        machine_trays.into_iter().collect()
    } else {
        Default::default()
    };
    runtime.block_on(drive(&mut rack, &args, signals, view, &plane, &machines))?;
    println!("racklet stopped");
    Ok(())
}

async fn drive(
    rack: &mut Rack,
    args: &UpArgs,
    (mut interrupt, mut terminate): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    mut view: crate::up_view::LiveView,
    plane: &crate::controlplane::Plane,
    machines: &std::collections::HashSet<(String, u32)>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = Instant::now();
    let mut last_table = Instant::now() - Duration::from_secs(3600);
    // Events of earlier runs are history: show the ones from now on.
    let mut seen = plane
        .events()
        .since(0)
        .await
        .ok()
        .and_then(|e| e.last().map(|e| e.sequence))
        .unwrap_or(0);
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        // A stalled process (suspended laptop) does not replay the time it missed.
        let virtual_dt = (now - last).min(Duration::from_secs(1)).mul_f64(args.speed);
        last = now;
        let t = rack.twin.now().as_secs_f64();
        for s in rack.twin.snapshot() {
            // A VM's load is its own CPU use.
            if s.hostname.is_some() && !machines.contains(&(s.chassis.clone(), s.slot)) {
                rack.twin
                    .set_load(&s.chassis, s.slot, workload(s.slot, t))?;
            }
        }
        rack.advance(virtual_dt);
        if now - last_table >= Duration::from_secs_f64(args.refresh) {
            last_table = now;
            let events = plane.events().since(seen).await.unwrap_or_default();
            if let Some(e) = events.last() {
                seen = e.sequence;
            }
            let text = view.render(&rack.snapshot(), &events);
            if !text.is_empty() {
                print!("{text}");
                std::io::stdout().flush().ok();
            }
        }
        if args
            .duration
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            break;
        }
    }
    Ok(())
}
