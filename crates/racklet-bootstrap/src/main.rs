//! `racklet-bootstrap`, PID 1 of the bootstrap initramfs: mounts the kernel's file
//! systems, loads the network modules listed in `/etc/racklet/modules`, brings `eth0` up
//! with the address on the kernel command line (`racklet.ip=ADDR/PREFIX racklet.gw=GW`),
//! opens the boot channel (`racklet.channel=/dev/ttyS1`, raw, 115200 baud) and runs the
//! bootstrap with the kexec hand-off. When nothing verifies it stays, and tries again a
//! minute later. Started with `racklet.stage=booted`, it is the booted system's first
//! program instead: the node agent, which reads the handover the bootstrap appended to
//! its initramfs, brings the network up again and reports to the control plane over
//! mutual TLS. In both stages the ACPI power button (what the BMC's graceful shutdown
//! presses) powers the machine off.

use std::ffi::CString;
use std::path::PathBuf;
use std::time::Duration;

use racklet_bootstrap::{BmcChannel, Bootstrap, Kexec, Outcome, Retry};

fn main() {
    let pid1 = std::process::id() == 1;
    if pid1 {
        for (source, target, fstype) in [
            ("proc", "/proc", "proc"),
            ("sysfs", "/sys", "sysfs"),
            ("devtmpfs", "/dev", "devtmpfs"),
            ("tmpfs", "/tmp", "tmpfs"),
        ] {
            if let Err(e) = mount(source, target, fstype) {
                say(&format!("cannot mount {target}: {e}"));
            }
        }
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let arg = |key: &str| {
        cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .map(str::to_string)
    };
    load_modules();
    if pid1 {
        power_button::watch();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say(&format!("cannot start: {e}"));
            park(pid1);
        }
    };
    if arg("racklet.stage").as_deref() == Some("booted") {
        println!("racklet-node: booted");
        runtime.block_on(agent());
    }
    let network = arg("racklet.ip").map(|address| racklet_bootstrap::node::Network {
        address,
        gateway: arg("racklet.gw"),
    });
    if let Some(n) = &network {
        if let Err(e) = net::up("eth0", &n.address, n.gateway.as_deref()) {
            say(&format!("cannot bring eth0 up with {}: {e}", n.address));
        }
    }
    let channel = arg("racklet.channel").unwrap_or_else(|| "/dev/ttyS1".into());
    loop {
        let outcome = runtime.block_on(boot(&channel, network.clone()));
        if let Outcome::HandedOff { .. } = outcome {
            // A kexec hand-off never returns; anything else means it failed.
            say("the hand-off returned; starting over");
        }
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// The node agent, for good: a booted system without a handover says why and stays.
async fn agent() -> ! {
    use racklet_bootstrap::node::{Agent, Handover, HANDOVER_PATH};
    let say = |line: &str| println!("racklet-node: {line}");
    let handover: Handover = match std::fs::read(format!("/{HANDOVER_PATH}"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(h) => h,
        Err(e) => {
            say(&format!(
                "no handover in /{HANDOVER_PATH} ({e}): this system was not booted by the bootstrap; no agent"
            ));
            park(true);
        }
    };
    if let Some(n) = &handover.network {
        if let Err(e) = net::up("eth0", &n.address, n.gateway.as_deref()) {
            say(&format!("cannot bring eth0 up with {}: {e}", n.address));
        }
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    match Agent::new(&handover, boot_id) {
        Ok(agent) => agent.run(|line| println!("{line}")).await,
        Err(e) => {
            say(&e.to_string());
            park(true);
        }
    }
}

async fn boot(channel: &str, network: Option<racklet_bootstrap::node::Network>) -> Outcome {
    let registered = open_serial(channel).and_then(|f| {
        // SAFETY: `f` is an open File the AsyncFd owns from here on; a File's descriptor
        // stays the same and open until it is dropped with the AsyncFd.
        unsafe { tokio::io::unix::AsyncFd::register(f) }.map_err(std::io::Error::from)
    });
    let wire = match registered {
        Ok(f) => serial::Serial(f),
        Err(e) => {
            say(&format!("cannot open the boot channel {channel}: {e}"));
            return Outcome::GaveUp;
        }
    };
    let mut bootstrap = Bootstrap {
        channel: BmcChannel::new(wire, Duration::from_secs(5)),
        handoff: Kexec,
        work_dir: PathBuf::from("/tmp/racklet"),
        retry: Retry::default(),
        console: Box::new(|line| println!("{line}")),
        network,
    };
    bootstrap.run().await
}

fn say(line: &str) {
    println!("racklet-bootstrap: {line}");
}

/// PID 1 must never exit (the kernel would panic); anything else may.
fn park(pid1: bool) -> ! {
    if !pid1 {
        std::process::exit(1);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn mount(source: &str, target: &str, fstype: &str) -> std::io::Result<()> {
    let _ = std::fs::create_dir_all(target);
    let c = |s: &str| CString::new(s).map_err(std::io::Error::other);
    let (source, target, fstype) = (c(source)?, c(target)?, c(fstype)?);
    // SAFETY: the three strings are NUL-terminated and live across the call; no data
    // argument is passed (null is allowed for these file systems).
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Loads each module listed in `/etc/racklet/modules`, in order.
fn load_modules() {
    use std::os::fd::AsRawFd as _;
    let list = std::fs::read_to_string("/etc/racklet/modules").unwrap_or_default();
    for path in list.lines().filter(|l| !l.trim().is_empty()) {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                say(&format!("cannot open module {path}: {e}"));
                continue;
            }
        };
        let params = c"";
        // SAFETY: the descriptor is an open module file for the call's duration and the
        // parameter string is NUL-terminated; flags 0.
        let rc =
            unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                say(&format!("cannot load module {path}: {e}"));
            }
        }
    }
}

/// The serial device in raw mode at 115200 baud.
fn open_serial(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        // Non-blocking, for the reactor: a read that timed out leaves nothing behind.
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    // SAFETY: termios is plain data filled by tcgetattr before use; the descriptor is
    // open for the whole block.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(f.as_raw_fd(), &mut t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        // Set by hand: a static glibc lacks cfsetspeed's versioned symbol.
        t.c_cflag = (t.c_cflag & !libc::CBAUD) | libc::B115200;
        t.c_ispeed = libc::B115200;
        t.c_ospeed = libc::B115200;
        if libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Answers to an earlier run's requests are not answers to this one's.
        libc::tcflush(f.as_raw_fd(), libc::TCIFLUSH);
    }
    Ok(f)
}

mod power_button {
    //! The ACPI power button (`button` and `evdev` modules): a press powers off.

    use std::io::Read as _;

    /// `struct input_event` on 64-bit Linux: a timeval, type, code, value.
    const EVENT_BYTES: usize = 24;
    const EV_KEY: u16 = 1;
    const KEY_POWER: u16 = 116;

    /// Watches every input device for a power-button press, each on its own thread.
    pub fn watch() {
        let Ok(devices) = std::fs::read_dir("/dev/input") else {
            return;
        };
        for d in devices.flatten() {
            let path = d.path();
            if !d.file_name().to_string_lossy().starts_with("event") {
                continue;
            }
            std::thread::spawn(move || {
                let Ok(mut f) = std::fs::File::open(&path) else {
                    return;
                };
                let mut e = [0u8; EVENT_BYTES];
                while f.read_exact(&mut e).is_ok() {
                    let type_ = u16::from_ne_bytes([e[16], e[17]]);
                    let code = u16::from_ne_bytes([e[18], e[19]]);
                    let value = i32::from_ne_bytes([e[20], e[21], e[22], e[23]]);
                    if type_ == EV_KEY && code == KEY_POWER && value == 1 {
                        println!("racklet-node: the power button was pressed; powering off");
                        // SAFETY: sync and reboot take no pointers; POWER_OFF ends the
                        // machine, which is what the button asks.
                        unsafe {
                            libc::sync();
                            libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
                        }
                    }
                }
            });
        }
    }
}

mod serial {
    //! The serial device on tokio's reactor.

    use std::io::{Read as _, Write as _};
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use tokio::io::unix::AsyncFd;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    pub struct Serial(pub AsyncFd<std::fs::File>);

    impl AsyncRead for Serial {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            loop {
                let mut guard = ready!(self.0.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                match guard.try_io(|f| f.get_ref().read(unfilled)) {
                    Ok(Ok(n)) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => continue,
                }
            }
        }
    }

    impl AsyncWrite for Serial {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            loop {
                let mut guard = ready!(self.0.poll_write_ready(cx))?;
                match guard.try_io(|f| f.get_ref().write(data)) {
                    Ok(result) => return Poll::Ready(result),
                    Err(_would_block) => continue,
                }
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}

mod net {
    //! An interface up with a static IPv4 address and a default route, by ioctl: the
    //! initramfs has no `ip` program.

    use std::net::Ipv4Addr;

    fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
        let sin = libc::sockaddr_in {
            // AF_INET is 2: it fits.
            sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default(),
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sockaddr_in and sockaddr have the same size on Linux; the generic form
        // is what the ioctls take.
        unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
    }

    fn ifreq(name: &str) -> libc::ifreq {
        // SAFETY: ifreq is plain data; all zero is a valid value.
        let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in r.ifr_name.iter_mut().zip(name.bytes().take(15)) {
            *d = s as libc::c_char;
        }
        r
    }

    fn ioctl(fd: i32, request: libc::Ioctl, arg: *mut libc::c_void) -> std::io::Result<()> {
        // SAFETY: each caller passes a pointer to the struct the request expects, alive
        // for the call.
        if unsafe { libc::ioctl(fd, request, arg) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub fn up(name: &str, cidr: &str, gateway: Option<&str>) -> std::io::Result<()> {
        let bad = |what: &str| std::io::Error::other(format!("not an IPv4 {what}: {cidr}"));
        let (addr, prefix) = cidr.split_once('/').ok_or_else(|| bad("ADDR/PREFIX"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("address"))?;
        let prefix: u32 = prefix.parse().map_err(|_| bad("prefix"))?;
        let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix.min(32)).unwrap_or(0));
        // SAFETY: a plain socket call; the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let result = (|| {
            for ifname in ["lo", name] {
                let mut r = ifreq(ifname);
                ioctl(fd, libc::SIOCGIFFLAGS, (&raw mut r).cast())?;
                let up = i16::try_from(libc::IFF_UP | libc::IFF_RUNNING).unwrap_or_default();
                // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
                unsafe { r.ifr_ifru.ifru_flags |= up };
                ioctl(fd, libc::SIOCSIFFLAGS, (&raw mut r).cast())?;
            }
            let mut r = ifreq(name);
            r.ifr_ifru.ifru_addr = sockaddr(addr);
            ioctl(fd, libc::SIOCSIFADDR, (&raw mut r).cast())?;
            let mut r = ifreq(name);
            r.ifr_ifru.ifru_netmask = sockaddr(mask);
            ioctl(fd, libc::SIOCSIFNETMASK, (&raw mut r).cast())?;
            if let Some(gw) = gateway {
                let gw: Ipv4Addr = gw.parse().map_err(|_| bad("gateway"))?;
                // SAFETY: rtentry is plain data; all zero is a valid value.
                let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
                route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
                route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
                route.rt_gateway = sockaddr(gw);
                route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
                ioctl(fd, libc::SIOCADDRT, (&raw mut route).cast())?;
            }
            Ok(())
        })();
        // SAFETY: fd is the socket opened above, closed once.
        unsafe { libc::close(fd) };
        result
    }
}
