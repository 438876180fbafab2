//! `racklet bench`: throughput of the digital twin and of manifest validation, each
//! printed beside a named peer measured in the same run.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use racklet_model::ManifestSet;
use racklet_twin::{Twin, TwinConfig};

#[derive(Args)]
pub struct BenchArgs {
    /// Shorter runs (for CI smoke checks); figures are noisier.
    #[arg(long)]
    quick: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    twin(args.quick)?;
    validation(args.quick)?;
    Ok(())
}

/// Manifests for `chassis` chassis of 7 trays each (one RMC), mixed boards.
pub fn synthetic_rack(chassis: usize) -> String {
    let mut s = String::new();
    for c in 0..chassis {
        let _ = write!(
            s,
            "---\napiVersion: racklet.io/v1alpha1\nkind: Chassis\nmetadata: {{name: c{c}}}\nspec:\n  heightU: 2\n  trays: {{count: 7, widthMm: 30, heightMm: 80, depthMm: 120}}\n  rmcTray: 7\n  backplane:\n    psu:\n      model: SFX 300 W\n      rails:\n        +12V: {{limitAmps: 10}}\n        +5V: {{limitAmps: 8}}\n        +5VSB: {{limitAmps: 2.5}}\n    usbHub: {{ports: 7, watts: 1.0}}\n    trayConverter: {{input: +12V, efficiency: 0.9}}\n    bmcWatts: 0.5\n  fans:\n    - {{name: f1, zone: z, rail: +12V, maxRpm: 3000, maxWatts: 2.4, maxAirflowCfm: 30}}\n  fanZones:\n    - {{name: z, trays: [1, 2, 3, 4, 5, 6, 7]}}\n"
        );
        for t in 1..=7 {
            let board = if t % 2 == 0 { "rpi5" } else { "rpi4b" };
            let role = if t == 7 { "Rmc" } else { "Worker" };
            let _ = write!(
                s,
                "---\napiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {{name: c{c}-n{t}}}\nspec: {{chassis: c{c}, tray: {t}, board: {board}, role: {role}, powerState: On}}\n"
            );
        }
    }
    s
}

fn load(text: &str) -> anyhow::Result<ManifestSet> {
    let mut set = ManifestSet::with_catalog();
    let file: Arc<Path> = Arc::from(Path::new("bench.yaml"));
    let mut diags = set.add_source(&file, text.as_bytes());
    diags.extend(racklet_model::validate::validate(&set));
    if let Some(d) = diags.first() {
        anyhow::bail!("benchmark manifests are invalid: {d}");
    }
    Ok(set)
}

fn twin(quick: bool) -> anyhow::Result<()> {
    println!("twin throughput (1 ms steps; peer: real time, which `racklet up` runs at)");
    println!(
        "{:>7} {:>14} {:>12} {:>16}",
        "trays", "virtual s", "wall s", "virtual s/wall s"
    );
    for (trays, virtual_secs) in [(7usize, 60u64), (700, 4), (7000, 1)] {
        let virtual_secs = if quick {
            virtual_secs.div_ceil(4)
        } else {
            virtual_secs
        };
        let set = load(&synthetic_rack(trays / 7))?;
        let twin = Twin::new(&set, &TwinConfig::default())?;
        for c in twin.chassis_names() {
            for slot in 1..=7 {
                let mut p = twin.tray_peripherals(&c, slot)?;
                embedded_hal::digital::OutputPin::set_high(&mut p.dcdc_enable).ok();
                twin.set_load(&c, slot, 0.5)?;
            }
            let (mut pwm, _) = twin.fan(&c, "f1")?;
            embedded_hal::pwm::SetDutyCycle::set_duty_cycle_percent(&mut pwm, 60).ok();
        }
        // Warm up past boot so the steady-state path is measured.
        twin.advance(Duration::from_millis(200));
        let start = Instant::now();
        twin.advance(Duration::from_secs(virtual_secs));
        let wall = start.elapsed().as_secs_f64();
        println!(
            "{trays:>7} {virtual_secs:>14} {wall:>12.3} {:>16.1}",
            virtual_secs as f64 / wall
        );
    }
    Ok(())
}

fn validation(quick: bool) -> anyhow::Result<()> {
    let chassis = if quick { 250 } else { 1250 };
    let text = synthetic_rack(chassis);
    let docs = chassis * 8;
    println!();
    println!("validation of {docs} documents ({} KiB)", text.len() / 1024);
    let rounds = if quick { 1 } else { 3 };
    let mut peer = f64::MAX;
    let mut ours = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let parsed = yaml_rust2::YamlLoader::load_from_str(&text)?;
        anyhow::ensure!(
            parsed.len() == docs,
            "peer parsed {} documents",
            parsed.len()
        );
        peer = peer.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let set = load(&text)?;
        anyhow::ensure!(
            set.entries.len() >= docs,
            "loaded {} resources",
            set.entries.len()
        );
        ours = ours.min(start.elapsed().as_secs_f64());
    }
    println!("{:<52} {:>10} {:>12}", "", "seconds", "documents/s");
    println!(
        "{:<52} {peer:>10.3} {:>12.0}",
        "peer: yaml-rust2 YamlLoader (parse only)",
        docs as f64 / peer
    );
    println!(
        "{:<52} {ours:>10.3} {:>12.0}",
        "racklet: parse + positions + schema + semantic rules",
        docs as f64 / ours
    );
    println!("ratio racklet/peer time: {:.2}x", ours / peer);
    Ok(())
}
