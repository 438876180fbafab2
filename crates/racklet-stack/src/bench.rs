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
    management_link(args.quick)?;
    fan_loop(args.quick);
    bmc_footprint();
    crate::bench_gitops::run(args.quick)?;
    crate::bench_boot::run(args.quick)?;
    crate::bench_qemu::run(args.quick)?;
    Ok(())
}

/// Round trips of a Status request over the twin's USB link, sealed, against the same
/// messages postcard-encoded with no framing, crypto or link (the peer).
fn management_link(quick: bool) -> anyhow::Result<()> {
    use embedded_io::{Read, Write};
    use racklet_mgmt_proto::link::{BmcEvent, BmcLink, RmcEvent, RmcLink};
    use racklet_mgmt_proto::message::{
        BmcStatus, BootMode, PowerState, Reading, Request, RequestEnvelope, Response,
        ResponseEnvelope,
    };
    use rand_chacha::rand_core::SeedableRng;

    let rounds: u32 = if quick { 2_000 } else { 20_000 };
    let set = load(&synthetic_rack(1))?;
    let twin = Twin::new(&set, &TwinConfig::default())?;
    twin.advance(Duration::from_millis(1));
    let host = twin.usb_host_port("c0", 1)?;
    let (mut device, _) = twin.bmc_usb_and_flash("c0", 1)?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let key = [5u8; 32];
    let serial = racklet_sim::bmc_serial(&twin, "c0", 1)?
        .ok_or_else(|| anyhow::anyhow!("no BMC on c0's hub port 1"))?;
    let mut bmc = BmcLink::new(
        serial,
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        Some(key),
        1,
    );
    let mut rmc = RmcLink::new(serial, Some(key));
    let status = BmcStatus {
        power: PowerState::On,
        faults: 0,
        power_milliwatts: Reading::Milli(4_750),
        energy_millijoules: 123_456_789,
        soc_millicelsius: Reading::Milli(55_300),
        boot_mode: BootMode::Local,
        eeprom_write_protected: true,
        uptime_ms: 1_000_000,
        host_halted: false,
    };
    // Handshake over the link.
    let mut buf = vec![0u8; 4096];
    let mut carry = |from_host: bool,
                     bytes: &[u8],
                     device: &mut racklet_twin::hal::TwinUsbDevice|
     -> anyhow::Result<Vec<u8>> {
        if from_host {
            host.write(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
            let n = device.read(&mut buf).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(buf[..n].to_vec())
        } else {
            device
                .write_all(bytes)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            host.read().map_err(|e| anyhow::anyhow!("{e}"))
        }
    };
    let strip = |f: &[u8]| f[..f.len() - 1].to_vec();
    let hello = rmc
        .hello(&mut rng)
        .ok_or_else(|| anyhow::anyhow!("hello"))?;
    let at_bmc = carry(true, &hello, &mut device)?;
    let BmcEvent::Reply(ack) = bmc.receive(&strip(&at_bmc), &mut rng) else {
        anyhow::bail!("no hello ack")
    };
    let at_rmc = carry(false, &ack, &mut device)?;
    let RmcEvent::Hello { session: true, .. } = rmc.receive(&strip(&at_rmc)) else {
        anyhow::bail!("no session")
    };
    let start = Instant::now();
    for id in 0..rounds {
        let req = rmc
            .request(&RequestEnvelope {
                id,
                request: Request::Status,
            })
            .ok_or_else(|| anyhow::anyhow!("seal"))?;
        let at_bmc = carry(true, &req, &mut device)?;
        let BmcEvent::Request(r) = bmc.receive(&strip(&at_bmc), &mut rng) else {
            anyhow::bail!("request dropped")
        };
        let resp = bmc
            .respond(&ResponseEnvelope {
                id: r.id,
                response: Response::Status(status.clone()),
            })
            .ok_or_else(|| anyhow::anyhow!("seal"))?;
        let at_rmc = carry(false, &resp, &mut device)?;
        let RmcEvent::Response(_) = rmc.receive(&strip(&at_rmc)) else {
            anyhow::bail!("response dropped")
        };
    }
    let ours = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for id in 0..rounds {
        let req = postcard::to_stdvec(&RequestEnvelope {
            id,
            request: Request::Status,
        })?;
        let r: RequestEnvelope = postcard::from_bytes(&req)?;
        let resp = postcard::to_stdvec(&ResponseEnvelope {
            id: r.id,
            response: Response::Status(status.clone()),
        })?;
        let _: ResponseEnvelope = postcard::from_bytes(&resp)?;
    }
    let peer = start.elapsed().as_secs_f64();
    println!();
    println!("management protocol: {rounds} Status round trips");
    println!("{:<52} {:>12}", "", "round trips/s");
    println!(
        "{:<52} {:>12.0}",
        "peer: postcard encode/decode only (no link, no crypto)",
        f64::from(rounds) / peer
    );
    println!(
        "{:<52} {:>12.0}",
        "racklet: sealed, framed, over the twin's USB link",
        f64::from(rounds) / ours
    );
    println!("ratio racklet/peer time: {:.1}x", ours / peer);
    Ok(())
}

/// CPU time of one fan-loop decision for a 4-tray zone, against its 100 ms period.
fn fan_loop(quick: bool) {
    use racklet_rmd::fan::{FanTuning, TrayThermal, ZoneController};
    let n: u32 = if quick { 100_000 } else { 1_000_000 };
    let tuning = FanTuning::default();
    let mut zone = ZoneController::default();
    let trays: Vec<TrayThermal> = (1..=4)
        .map(|slot| TrayThermal {
            slot,
            celsius: Some((50.0 + f64::from(slot), 0.1)),
            throttle_celsius: 80.0,
            shutdown_celsius: 85.0,
        })
        .collect();
    let start = Instant::now();
    let mut acc = 0.0;
    for _ in 0..n {
        acc += std::hint::black_box(zone.decide(&tuning, std::hint::black_box(&trays), 0.1)).duty;
    }
    let per = start.elapsed().as_secs_f64() / f64::from(n);
    std::hint::black_box(acc);
    println!();
    println!(
        "fan loop: {:.0} ns CPU per zone decision (4 trays); at 10 Hz that is {:.6} % of one core",
        per * 1e9,
        per * 10.0 * 100.0
    );
    println!(
        "ratio to the loop period (peer: phosphor-pid-control's 100 ms fan period): {:.2e}",
        per / 0.1
    );
}

/// The BMC core's whole state: its static memory footprint.
fn bmc_footprint() {
    let bytes = std::mem::size_of::<racklet_sim::TwinBmc>();
    println!();
    println!("BMC core state: {bytes} bytes (with the twin's hardware handles); RP2040 SRAM 270,336 bytes: {:.1} %", bytes as f64 / 270_336.0 * 100.0);
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
