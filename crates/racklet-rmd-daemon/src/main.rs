//! `racklet-rmd`: the rack management daemon as a program for a chassis' RMC tray.
//!
//! It reads its configuration file, loads the chassis from the manifests, finds the BMCs
//! on the hub through the Linux backplane (`racklet_rmd::linux`), and serves the chassis'
//! Redfish API (HTTPS) and OpenMetrics. It never changes a tray's power when it starts: it
//! reads each BMC's state back. SIGTERM or SIGINT stop it cleanly; what it must keep (the
//! trust store, the event log, accounts) is written as it changes, so nothing is lost.

mod config;
mod log;
mod pac1921;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use racklet_model::ManifestSet;
use racklet_rmd::linux::LinuxBackplane;
use racklet_rmd::{Clock, DaemonConfig, DaemonCore, Rmd, Store};

use crate::config::DaemonFile;

/// How often the daemon reads its BMC ports and steps its state machines.
const TICK: Duration = Duration::from_millis(10);

/// The rack management daemon of one chassis (runs on its RMC tray).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "RACKLET_RMD_CONFIG",
        default_value = "/etc/racklet/rmd.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    tool: Option<Tool>,
}

/// Tools for bringing up an RMC's hardware (without one, the daemon runs).
#[derive(clap::Subcommand, Debug)]
enum Tool {
    /// Reads a PAC1921 power monitor on a Linux I2C bus with the BMC firmware's driver.
    Pac1921(pac1921::Pac1921Args),
}

fn main() -> ExitCode {
    // Large allocations (argon2's 19 MiB per password check) get their own mapping and go
    // back to the kernel when freed; glibc would otherwise raise this threshold after the
    // first such free and keep the memory for good (measured: 16 → 36 MiB after one login).
    // SAFETY: sets an allocator parameter before any thread exists; a refused value is
    // just ignored (mallopt returns 0).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
    let args = Args::parse();
    log::init();
    let result = match &args.tool {
        Some(Tool::Pac1921(a)) => pac1921::run(a),
        None => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let file = DaemonFile::load(&args.config)?;
    let (set, diags) = ManifestSet::load(&file.manifests);
    if !diags.is_empty() {
        for d in &diags {
            tracing::error!("{d}");
        }
        anyhow::bail!(
            "{} problem(s) in the manifests; fix them and start again",
            diags.len()
        );
    }
    let mut config = DaemonConfig::from_manifests(&set, &file.chassis).with_context(|| {
        format!(
            "{}: chassis {:?} is not in the manifests ({})",
            args.config.display(),
            file.chassis,
            file.manifests
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    config.pre_approved.clone_from(&file.pre_approved);
    // The daemon keeps only its chassis' configuration, not the parsed manifests.
    drop(set);
    for tray in &config.trays {
        if !file.devices.ports.contains_key(&tray.slot) {
            tracing::warn!(
                "{}: tray {} of {} has no hub port in [devices.ports]; its BMC will not be found",
                args.config.display(),
                tray.slot,
                file.chassis
            );
        }
    }
    let fans: Vec<String> = config.fans.iter().map(|f| f.name.clone()).collect();
    let backplane = LinuxBackplane::new(&file.devices, &fans)
        .with_context(|| format!("{}: the device map", args.config.display()))?;
    let store = Store::open(&file.state_dir.join("rmd"))?;
    let core = DaemonCore::new(config, store, None)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let clock: Clock = Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        });
        let rmd = Rmd::spawn(core, backplane, clock, TICK);
        let metrics = racklet_rmd::serve_metrics(vec![rmd.clone()], file.metrics_listen)
            .await
            .with_context(|| format!("metrics on {}", file.metrics_listen))?;
        let redfish = racklet_redfish::serve(
            rmd.clone(),
            &file.state_dir.join("redfish"),
            file.redfish_listen,
        )
        .await
        .with_context(|| format!("Redfish on {}", file.redfish_listen))?;
        if let Some(p) = &redfish.initial_password_file {
            tracing::info!(
                "created Redfish account `admin`; its password is in {} (owner-only)",
                p.display()
            );
        }
        // Start-up (manifests, schemas, the certificate) left free memory inside the heap;
        // give it back to the kernel.
        // SAFETY: malloc_trim only releases free heap pages; it is safe to call at any time.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::info!(
            chassis = %file.chassis,
            redfish = %format!("https://{}/redfish/v1", redfish.addr),
            metrics = %format!("http://{metrics}/metrics"),
            startup_ms = started.elapsed().as_millis(),
            "serving"
        );
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
        drop(rmd);
        anyhow::Ok(())
    })?;
    tracing::info!("stopped");
    Ok(())
}
