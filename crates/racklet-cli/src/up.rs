//! `racklet up`: the whole rack on one machine, on the digital twin, in real time.
//!
//! Today that is the twin of the manifests; later layers (BMC firmware, rack management
//! daemons, control plane, dashboard) start here too and add their endpoints. Until the
//! BMC firmware runs here, `up` drives each tray's `DCDC_EN` pin from the manifest's
//! `powerState` and the fans at a fixed duty, through the same hardware handles firmware
//! will use.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use embedded_hal::digital::OutputPin;
use embedded_hal::pwm::SetDutyCycle;
use racklet_model::compute_unit::PowerState;
use racklet_model::ManifestSet;
use racklet_twin::{Twin, TwinConfig};
use serde::Serialize;

/// The example rack, seeded into a new data dir.
const EXAMPLES: [(&str, &str); 2] = [
    ("rack.yaml", include_str!("../../../examples/rack.yaml")),
    (
        "compute-units.yaml",
        include_str!("../../../examples/compute-units.yaml"),
    ),
];

/// Fastest virtual clock `up` runs (the twin of a 7-tray chassis manages ~3000x).
const MAX_SPEED: f64 = 1000.0;

/// Fan duty while no fan loop runs.
const FIXED_FAN_PERCENT: u8 = 40;

#[derive(Args)]
pub struct UpArgs {
    /// Directory for everything `up` writes.
    #[arg(long, default_value = "./racklet-data")]
    data_dir: PathBuf,
    /// Manifests to run (default: DATA_DIR/manifests, seeded from the examples).
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
}

#[derive(Serialize)]
struct Endpoint {
    name: String,
    url: String,
}

fn seed_manifests(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("manifests");
    if !dir.exists() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, text) in EXAMPLES {
            std::fs::write(dir.join(name), text)
                .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
        }
    }
    Ok(dir)
}

/// Writes `content` to `path` atomically (temporary file, fsync, rename).
fn write_atomic(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A deterministic synthetic workload: each node's demand drifts on its own period.
fn workload(slot: u32, t: f64) -> f64 {
    let period = 90.0 + 23.0 * f64::from(slot);
    0.5 + 0.45 * (std::f64::consts::TAU * t / period + f64::from(slot)).sin()
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
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
    let manifests = match &args.manifests {
        Some(p) => p.clone(),
        None => seed_manifests(&args.data_dir)?,
    };
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
    let twin = Twin::new(
        &set,
        &TwinConfig {
            seed: args.seed,
            ..TwinConfig::default()
        },
    )?;
    eprintln!(
        "racklet: digital twin of {} chassis, {} compute units from {} (seed {}, {}x real time)",
        set.chassis().count(),
        set.compute_units().count(),
        manifests.display(),
        args.seed,
        args.speed
    );
    eprintln!(
        "racklet: compute units are simulated by the twin (QEMU boot arrives with the boot layer)"
    );
    eprintln!("racklet: no BMC firmware yet: DCDC_EN follows each ComputeUnit's powerState; fans fixed at {FIXED_FAN_PERCENT}%");

    for (_, cu) in set.compute_units() {
        let mut p = twin.tray_peripherals(&cu.spec.chassis, cu.spec.tray)?;
        match cu.spec.power_state {
            PowerState::On => p.dcdc_enable.set_high(),
            PowerState::Off => p.dcdc_enable.set_low(),
        }
        .ok();
    }
    for (_, ch) in set.chassis() {
        for fan in &ch.spec.fans {
            let (mut pwm, _) = twin.fan(ch.name(), &fan.name)?;
            pwm.set_duty_cycle_percent(FIXED_FAN_PERCENT).ok();
        }
    }

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

    // No network services yet; later layers add their endpoints here.
    let endpoints: Vec<Endpoint> = Vec::new();
    write_atomic(
        &args.data_dir.join("endpoints.json"),
        &serde_json::to_vec_pretty(&endpoints)?,
    )?;
    for e in &endpoints {
        println!("{} {}", e.name, e.url);
    }
    println!("racklet is ready");
    std::io::stdout().flush().ok();

    runtime.block_on(drive(&twin, &args, signals))?;
    println!("racklet stopped");
    Ok(())
}

async fn drive(
    twin: &Twin,
    args: &UpArgs,
    (mut interrupt, mut terminate): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = Instant::now();
    let mut last_table = Instant::now() - Duration::from_secs(3600);
    let tty = std::io::stdout().is_terminal();
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
        let t = twin.now().as_secs_f64();
        for s in twin.snapshot() {
            if s.hostname.is_some() {
                twin.set_load(&s.chassis, s.slot, workload(s.slot, t))?;
            }
        }
        twin.advance(virtual_dt);
        if now - last_table >= Duration::from_secs_f64(args.refresh.max(0.05)) {
            last_table = now;
            print_table(twin, tty);
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

fn print_table(twin: &Twin, tty: bool) {
    let mut out = String::new();
    if tty {
        out.push_str("\x1b[H\x1b[2J");
    }
    out.push_str(&format!(
        "racklet twin  t={:.1}s\n",
        twin.now().as_secs_f64()
    ));
    out.push_str(&format!(
        "{:<12} {:>4}  {:<8} {:<12} {:<5} {:<14} {:>7} {:>7} {:>8}\n",
        "CHASSIS", "TRAY", "NODE", "BOARD", "POWER", "OS", "WATTS", "°C", "FAN RPM"
    ));
    for s in twin.snapshot() {
        let celsius = s.soc_celsius.map_or("-".to_string(), |c| format!("{c:.1}"));
        let rpm = s.fan_rpm.map_or("-".to_string(), |r| format!("{r:.0}"));
        out.push_str(&format!(
            "{:<12} {:>4}  {:<8} {:<12} {:<5} {:<14} {:>7.2} {:>7} {:>8}\n",
            s.chassis,
            s.slot,
            s.hostname.as_deref().unwrap_or("(empty)"),
            s.board.as_deref().unwrap_or("-"),
            if s.dcdc_en { "on" } else { "off" },
            format!(
                "{}{}",
                s.os.as_str(),
                if s.throttled { " (thr)" } else { "" }
            ),
            s.watts,
            celsius,
            rpm
        ));
    }
    {
        let state = twin.lock();
        for c in &state.chassis {
            let rails: Vec<String> = c
                .rails
                .iter()
                .map(|r| {
                    format!(
                        "{} {:.2}/{} A{}",
                        r.rail,
                        r.amps,
                        r.limit_amps,
                        if r.tripped { " TRIPPED" } else { "" }
                    )
                })
                .collect();
            out.push_str(&format!("{:<12} PSU  {}\n", c.name, rails.join("  ")));
        }
    }
    print!("{out}");
    std::io::stdout().flush().ok();
}
