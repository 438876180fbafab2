//! BMCs on the chassis hub as the RMC's kernel shows them: each BMC is a USB CDC-ACM
//! device (`/dev/ttyACMk`), its hub port is in the tty's sysfs device path
//! (`…/1-1.3/1-1.3:1.0` for port path `1-1.3`), and its USB serial number (the RP2040
//! flash's unique ID, 16 hex digits) is in the USB device's `serial` attribute.
//!
//! Hot-plug: inotify on the device root wakes a rescan; a rescan also runs every
//! [`RESCAN_EVERY`] in case an event was missed. A read that hits end-of-file or `EIO` is
//! the BMC going away (unplugged, tray pulled, reset); that device node is not reopened
//! until it is replaced by a new one, so a dead port does not flap.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use racklet_hal::{PortEvent, PortState};
use rustix::fs::inotify;
use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, OptionalActions};

use super::LinuxError;

/// pid.codes' vendor ID for open hardware, which the Racklet BMC firmware enumerates with.
pub const RACKLET_BMC_VID: u16 = 0x1209;
/// The Racklet BMC's USB product ID.
pub const RACKLET_BMC_PID: u16 = 0x7ac1;
/// A full rescan at least this often, whatever inotify says.
pub const RESCAN_EVERY: Duration = Duration::from_secs(2);
/// How long a node may refuse to open before it is worth a warning.
const OPEN_GRACE: Duration = Duration::from_secs(5);

/// A device node's identity: a node that is removed and created again is a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct NodeId {
    dev: u64,
    ino: u64,
    rdev: u64,
}

/// A BMC port found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    node: PathBuf,
    id: NodeId,
    serial: u64,
}

struct OpenPort {
    found: Found,
    fd: OwnedFd,
}

/// The hub's BMC ports.
pub struct UsbPorts {
    sys: PathBuf,
    dev: PathBuf,
    /// USB port path → tray slot (hub port number as the daemon counts them).
    slots: BTreeMap<String, u8>,
    count: u8,
    open: BTreeMap<u8, OpenPort>,
    /// Nodes that ended (EOF/EIO); not reopened until they change.
    dead: HashSet<NodeId>,
    /// Nodes that could not be opened yet, since when.
    failing: HashMap<NodeId, Instant>,
    events: VecDeque<PortEvent>,
    inotify: OwnedFd,
    last_scan: Instant,
    started: Instant,
    /// What was already logged, so a stray device warns once, not every rescan.
    warned: BTreeSet<String>,
}

impl UsbPorts {
    /// Watches `dev` and scans `sys` once, so ports attached before the daemon started
    /// are attached from the first step.
    pub fn new(
        sys: &Path,
        dev: &Path,
        map: &BTreeMap<u32, String>,
    ) -> Result<UsbPorts, LinuxError> {
        let mut slots = BTreeMap::new();
        for (&slot, path) in map {
            let port = u8::try_from(slot)
                .ok()
                .filter(|p| *p > 0)
                .ok_or(LinuxError::SlotOutOfRange { slot })?;
            if let Some(first) = slots.insert(path.clone(), port) {
                return Err(LinuxError::DuplicatePort {
                    path: path.clone(),
                    first: u32::from(first),
                    second: slot,
                });
            }
        }
        let watch_error = |source: rustix::io::Errno| LinuxError::Watch {
            path: dev.to_path_buf(),
            source: source.into(),
        };
        let inotify = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
            .map_err(watch_error)?;
        inotify::add_watch(
            &inotify,
            dev,
            inotify::WatchFlags::CREATE
                | inotify::WatchFlags::DELETE
                | inotify::WatchFlags::MOVED_TO
                | inotify::WatchFlags::MOVED_FROM
                | inotify::WatchFlags::ATTRIB,
        )
        .map_err(watch_error)?;
        let now = Instant::now();
        let mut ports = UsbPorts {
            sys: sys.to_path_buf(),
            dev: dev.to_path_buf(),
            count: slots.values().copied().max().unwrap_or(0),
            slots,
            open: BTreeMap::new(),
            dead: HashSet::new(),
            failing: HashMap::new(),
            events: VecDeque::new(),
            inotify,
            last_scan: now,
            started: now,
            warned: BTreeSet::new(),
        };
        ports.scan();
        Ok(ports)
    }

    pub fn port_count(&self) -> u8 {
        self.count
    }

    pub fn state(&self, port: u8) -> PortState {
        match self.open.get(&port) {
            Some(p) => PortState::Attached {
                serial: p.found.serial,
            },
            None => PortState::Empty,
        }
    }

    /// The next attach or detach, after rescanning if the device root changed.
    pub fn next_event(&mut self) -> Option<PortEvent> {
        if self.events.is_empty()
            && (self.device_root_changed() || self.last_scan.elapsed() >= RESCAN_EVERY)
        {
            self.scan();
        }
        self.events.pop_front()
    }

    /// Whether inotify saw a `ttyACM*` node come or go (drains its queue).
    fn device_root_changed(&mut self) -> bool {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        let mut changed = false;
        while let Ok(event) = reader.next() {
            changed |= event
                .file_name()
                .is_some_and(|n| n.to_bytes().starts_with(b"ttyACM"));
        }
        changed
    }

    fn push(&mut self, port: u8, state: PortState) {
        // reason: u64 microseconds outlast any daemon's uptime.
        #[allow(clippy::cast_possible_truncation)]
        let at_micros = self.started.elapsed().as_micros() as u64;
        self.events.push_back(PortEvent {
            port,
            state,
            at_micros,
        });
    }

    fn warn_once(&mut self, key: String, message: impl FnOnce() -> String) {
        if self.warned.insert(key) {
            tracing::warn!("{}", message());
        }
    }

    /// Compares sysfs with the open ports: closes what went or changed, opens what came.
    fn scan(&mut self) {
        self.last_scan = Instant::now();
        let found = self.find();
        let gone: Vec<u8> = self
            .open
            .iter()
            .filter(|(slot, p)| found.get(slot) != Some(&p.found))
            .map(|(slot, _)| *slot)
            .collect();
        for slot in gone {
            self.open.remove(&slot);
            self.push(slot, PortState::Empty);
        }
        for (slot, f) in &found {
            if self.open.contains_key(slot) || self.dead.contains(&f.id) {
                continue;
            }
            match open_tty(&f.node) {
                Ok(fd) => {
                    self.failing.remove(&f.id);
                    self.warned.remove(&format!("open {}", f.node.display()));
                    tracing::info!(slot, node = %f.node.display(), serial = format!("{:016X}", f.serial), "BMC port opened");
                    self.open.insert(
                        *slot,
                        OpenPort {
                            found: f.clone(),
                            fd,
                        },
                    );
                    self.push(*slot, PortState::Attached { serial: f.serial });
                }
                Err(e) => {
                    // udev gives a new node its group a moment after the kernel makes it:
                    // only a failure that lasts is worth a warning.
                    let since = *self.failing.entry(f.id).or_insert_with(Instant::now);
                    let node = f.node.display().to_string();
                    if since.elapsed() >= OPEN_GRACE {
                        self.warn_once(format!("open {node}"), || {
                            format!("cannot open BMC port {node} (slot {slot}): {e}; check the daemon may read and write it (group dialout)")
                        });
                    } else {
                        tracing::debug!(slot, node, "BMC port not openable yet: {e}");
                    }
                }
            }
        }
        // A dead node that disappeared may come back as a new one with the same numbers.
        self.dead.retain(|id| found.values().any(|f| f.id == *id));
        self.failing
            .retain(|id, _| found.values().any(|f| f.id == *id));
    }

    /// Racklet BMCs in sysfs, by slot.
    fn find(&mut self) -> BTreeMap<u8, Found> {
        let mut found = BTreeMap::new();
        let Ok(entries) = fs::read_dir(self.sys.join("class/tty")) else {
            return found;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("ttyACM"))
            .collect();
        names.sort();
        for name in names {
            let Ok(interface) =
                fs::canonicalize(self.sys.join("class/tty").join(&name).join("device"))
            else {
                continue;
            };
            let (Some(port_path), Some(usb_device)) = (
                interface
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split(':').next())
                    .map(str::to_string),
                interface.parent(),
            ) else {
                continue;
            };
            let vid = read_hex(&usb_device.join("idVendor"));
            let pid = read_hex(&usb_device.join("idProduct"));
            if vid != Some(u64::from(RACKLET_BMC_VID)) || pid != Some(u64::from(RACKLET_BMC_PID)) {
                continue; // another CDC-ACM device: not ours to open
            }
            let Some(serial) = read_hex(&usb_device.join("serial")) else {
                self.warn_once(format!("serial {port_path}"), || {
                    format!("the BMC on hub port {port_path} ({name}) has no readable hex serial number; it is left alone")
                });
                continue;
            };
            let Some(&slot) = self.slots.get(&port_path) else {
                self.warn_once(format!("unmapped {port_path}"), || {
                    format!("a BMC ({serial:016X}) is on hub port {port_path}, which the device map does not name; add it to [devices.ports]")
                });
                continue;
            };
            let node = self.dev.join(&name);
            let Ok(stat) = rustix::fs::stat(&node) else {
                continue; // sysfs knows it, the node is not there yet
            };
            let id = NodeId {
                dev: stat.st_dev,
                ino: stat.st_ino,
                rdev: stat.st_rdev,
            };
            found.insert(slot, Found { node, id, serial });
        }
        found
    }

    /// Takes the port down after end-of-file or an I/O error: the BMC went away.
    fn detach(&mut self, port: u8, why: &str) -> io::Error {
        if let Some(p) = self.open.remove(&port) {
            tracing::info!(slot = port, node = %p.found.node.display(), "BMC port closed: {why}");
            self.dead.insert(p.found.id);
            self.push(port, PortState::Empty);
        }
        io::Error::new(
            io::ErrorKind::NotConnected,
            format!("no BMC on hub port {port}: {why}"),
        )
    }

    pub fn read(&mut self, port: u8) -> io::Result<Vec<u8>> {
        let Some(p) = self.open.get(&port) else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("no BMC on hub port {port}"),
            ));
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(&p.fd, &mut buf) {
                Ok(0) => return Err(self.detach(port, "end of file")),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::AGAIN) => return Ok(out),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(self.detach(port, &e.to_string())),
            }
        }
    }

    /// Sends a frame without blocking the daemon: what the port's output buffer cannot take
    /// now is dropped (the BMC's reader discards the cut-off frame at the next delimiter,
    /// and the daemon's requests time out and retry).
    pub fn write(&mut self, port: u8, bytes: &[u8]) -> io::Result<()> {
        let Some(p) = self.open.get(&port) else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("no BMC on hub port {port}"),
            ));
        };
        // A leading delimiter ends anything an earlier cut-off frame left in the BMC's reader.
        let mut rest: &[u8] = &[0];
        let mut frame = bytes;
        loop {
            if rest.is_empty() {
                if frame.is_empty() {
                    return Ok(());
                }
                rest = std::mem::take(&mut frame);
            }
            match rustix::io::write(&p.fd, rest) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("the BMC on hub port {port} is not reading; the frame was dropped"),
                    ));
                }
                Err(e) => return Err(self.detach(port, &e.to_string())),
            }
        }
    }
}

/// A hex number in a sysfs attribute (`1209`, `E6614103E7452D2F`).
fn read_hex(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    u64::from_str_radix(text.trim(), 16).ok()
}

/// Opens a tty raw, exclusive and non-blocking (Linux's cdc-acm raises DTR on open, which
/// the firmware's CDC class waits for).
fn open_tty(node: &Path) -> io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        node,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Exclusive: another program (ModemManager probing a new serial port) must not share it.
    termios::ioctl_tiocexcl(&fd)?;
    let mut t = termios::tcgetattr(&fd)?;
    t.make_raw();
    termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    Ok(fd)
}
