//! What the Linux backplane's tests stand on: temporary `sys/` and `dev/` trees laid out as
//! the RMC's kernel would show a USB hub of BMCs (`ttyACM*` linked to pseudo-terminals),
//! and BMC cores on the other side of those pseudo-terminals, each over its own digital
//! twin of the example rack and advancing it in real time.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]
#![allow(dead_code)] // each test binary uses a different part

pub mod daemon;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use racklet_bmc::{Action, Bmc, BmcConfig};
use racklet_model::ManifestSet;
use racklet_twin::{Twin, TwinConfig};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rustix::fs::OFlags;

pub const CHASSIS: &str = "chassis-1";

/// The example rack's manifests.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

pub fn example_set() -> ManifestSet {
    let (set, diags) = ManifestSet::load(&[examples()]);
    assert!(diags.is_empty(), "{diags:?}");
    set
}

/// The USB port path of tray `slot`'s hub port in these trees.
pub fn port_path(slot: u32) -> String {
    format!("1-1.{slot}")
}

/// A pseudo-terminal: the master end, and the slave's path (what `/dev/ttyACMk` links to).
pub struct Pty {
    pub master: OwnedFd,
    pub slave: PathBuf,
}

pub fn pty() -> Pty {
    let master =
        rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
            .expect("openpt");
    rustix::pty::grantpt(&master).expect("grantpt");
    rustix::pty::unlockpt(&master).expect("unlockpt");
    let slave = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
    let flags = rustix::fs::fcntl_getfl(&master).expect("getfl");
    rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK).expect("setfl");
    Pty {
        master,
        slave: PathBuf::from(slave.to_str().expect("utf-8 pts path")),
    }
}

/// Temporary `sys/` and `dev/` trees.
pub struct Tree {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub sys: PathBuf,
    pub dev: PathBuf,
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let sys = root.join("sys");
        let dev = root.join("dev");
        for d in ["class/tty", "class/hwmon", "class/leds", "devices/usb1/1-1"] {
            std::fs::create_dir_all(sys.join(d)).expect("mkdir");
        }
        std::fs::create_dir_all(&dev).expect("mkdir dev");
        Tree {
            _dir: dir,
            root,
            sys,
            dev,
        }
    }

    /// A BMC enumerates on hub port `slot` as `tty`: sysfs first, the device node last, as
    /// the kernel does.
    pub fn plug(&self, tty: &str, slot: u32, serial: u64, target: &Path) {
        let port = port_path(slot);
        let usb = self.sys.join("devices/usb1/1-1").join(&port);
        let interface = usb.join(format!("{port}:1.0"));
        std::fs::create_dir_all(&interface).expect("mkdir interface");
        std::fs::write(usb.join("idVendor"), "1209\n").expect("idVendor");
        std::fs::write(usb.join("idProduct"), "7ac1\n").expect("idProduct");
        std::fs::write(usb.join("serial"), format!("{serial:016X}\n")).expect("serial");
        let class = self.sys.join("class/tty").join(tty);
        std::fs::create_dir_all(&class).expect("mkdir class");
        std::os::unix::fs::symlink(&interface, class.join("device")).expect("device link");
        std::os::unix::fs::symlink(target, self.dev.join(tty)).expect("dev link");
    }

    /// The BMC on `tty` leaves: its device node goes first, then sysfs.
    pub fn unplug(&self, tty: &str) {
        let _ = std::fs::remove_file(self.dev.join(tty));
        let _ = std::fs::remove_dir_all(self.sys.join("class/tty").join(tty));
    }

    /// A hwmon chip named `chip` with `channels` PWM outputs and tachometers.
    pub fn hwmon(&self, index: u32, chip: &str, channels: u32) -> PathBuf {
        let dir = self.sys.join(format!("class/hwmon/hwmon{index}"));
        std::fs::create_dir_all(&dir).expect("mkdir hwmon");
        std::fs::write(dir.join("name"), format!("{chip}\n")).expect("name");
        for c in 1..=channels {
            std::fs::write(dir.join(format!("pwm{c}")), "0\n").expect("pwm");
            std::fs::write(dir.join(format!("pwm{c}_enable")), "2\n").expect("enable");
            std::fs::write(dir.join(format!("fan{c}_input")), "1200\n").expect("fan");
        }
        dir
    }
}

/// Polls `cond` until it holds or `within` passes.
pub async fn wait_for(what: &str, within: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

enum Command {
    /// Use this pseudo-terminal's master as the USB link from now on.
    Link(OwnedFd),
    /// No USB link (unplugged).
    Unlink,
}

/// One BMC core on its own twin, talking over a pseudo-terminal.
pub struct BmcOnPty {
    pub twin: Twin,
    pub slot: u32,
    pub serial: u64,
    pub identity: String,
    commands: mpsc::Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BmcOnPty {
    /// The BMC of tray `slot` in a twin of the example rack built with `seed` (another
    /// seed is another BMC: another serial and identity).
    pub fn start(seed: u64, slot: u32) -> BmcOnPty {
        let twin = Twin::new(
            &example_set(),
            &TwinConfig {
                seed,
                ..TwinConfig::default()
            },
        )
        .expect("twin");
        twin.advance(Duration::from_millis(1)); // standby power
        let (commands, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let twin = twin.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || run_bmc(twin, seed, slot, rx, stop, ready_tx))
        };
        let (serial, identity) = ready_rx.recv().expect("the BMC booted");
        BmcOnPty {
            twin,
            slot,
            serial,
            identity,
            commands,
            stop,
            thread: Some(thread),
        }
    }

    /// A new USB link (a new enumeration): the pseudo-terminal's slave path.
    pub fn link(&self) -> PathBuf {
        let p = pty();
        self.commands
            .send(Command::Link(p.master))
            .expect("BMC thread");
        p.slave
    }

    pub fn unlink(&self) {
        self.commands.send(Command::Unlink).expect("BMC thread");
    }

    /// Whether the BMC drives its tray's DCDC_EN high.
    pub fn dcdc_en(&self) -> bool {
        self.twin
            .lock()
            .tray_mut(CHASSIS, self.slot)
            .map(|t| t.dcdc_en)
            .unwrap_or(false)
    }
}

impl Drop for BmcOnPty {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_bmc(
    twin: Twin,
    seed: u64,
    slot: u32,
    commands: mpsc::Receiver<Command>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<(u64, String)>,
) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ u64::from(slot));
    let (serial, installed) = {
        let mut s = twin.lock();
        let t = s.tray_mut(CHASSIS, slot).expect("tray");
        (
            t.bmc_serial,
            t.installed.clone().expect("a board in the tray"),
        )
    };
    let peripherals = twin.tray_peripherals(CHASSIS, slot).expect("peripherals");
    let (_, flash) = twin.bmc_usb_and_flash(CHASSIS, slot).expect("flash");
    let config = BmcConfig {
        serial,
        board: heapless::String::try_from(installed.board_name.as_str()).unwrap_or_default(),
        firmware_version: racklet_sim::BMC_FIRMWARE_VERSION,
        pac_gain: racklet_sim::pac_gain(&installed.board.power),
        power: racklet_sim::power_config(
            &installed.board.power,
            installed.board.thermal.limit_celsius,
        ),
        reset_by_watchdog: false,
        booted: None,
    };
    let Ok(mut bmc) = Bmc::boot(config, peripherals, flash.clone(), flash, &mut rng) else {
        panic!("the BMC did not boot");
    };
    ready
        .send((serial, hex::encode(bmc.identity().to_bytes())))
        .expect("test thread");
    let mut link: Option<OwnedFd> = None;
    let mut last = Instant::now();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        while let Ok(c) = commands.try_recv() {
            link = match c {
                Command::Link(fd) => Some(fd),
                Command::Unlink => None,
            };
        }
        let now = Instant::now();
        twin.advance(now - last);
        last = now;
        if let Some(fd) = &link {
            // EIO while the daemon has the slave closed, EAGAIN when nothing came.
            while let Ok(n) = rustix::io::read(fd.as_fd(), &mut buf) {
                if n == 0 {
                    break;
                }
                bmc.receive(&buf[..n], &mut rng, |frame| {
                    let _ = rustix::io::write(fd.as_fd(), frame);
                });
            }
        }
        bmc.tick();
        if bmc.take_action() == Some(Action::Reboot) {
            panic!("these tests do not reboot BMCs");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
