//! QEMU compute units: the trays of the twin whose compute unit is a real virtual machine
//! ([`racklet_twin::Compute::Machine`]). `DCDC_EN` on starts a VM (Debian's kernel, the
//! bootstrap initramfs); its first serial port is the tray's UART (so the BMC's console,
//! its history and the Redfish console show the real boot), its second is the BMC's boot
//! channel; a press of the tray's power button is QMP `system_powerdown` (the ACPI power
//! button); `DCDC_EN` off ends the VM; the VM's CPU use is the tray's load, so the twin's
//! power draw and heat follow it. A VM that powers itself off leaves the tray halted.
//!
//! Everything here is non-blocking: [`QemuTrays::pump`] runs on the rack's tick.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use racklet_twin::{Compute, OsState, Twin};

/// Where a VM's files are, and what it runs.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// The kernel the VM starts (Debian's).
    pub kernel: PathBuf,
    /// The bootstrap initramfs.
    pub initramfs: PathBuf,
    pub memory_mib: u32,
    /// `kvm` where the CPU has virtualisation and `/dev/kvm` opens, else `tcg`.
    pub accel: &'static str,
    /// Sockets and logs, one directory per tray.
    pub work_dir: PathBuf,
}

/// Why QEMU compute units cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("qemu-system-x86_64 is not on PATH (Debian: apt-get install qemu-system-x86)")]
    NoQemu,
    #[error("no kernel in /boot with its modules (Debian: apt-get install linux-image-amd64)")]
    NoKernel,
    #[error("cannot read the kernel {}: {source} (run as a user who may read it)", path.display())]
    KernelUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot prepare {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start QEMU for {tray}: {source}")]
    Spawn {
        tray: String,
        source: std::io::Error,
    },
}

/// `qemu-system-x86_64` on `PATH`.
pub fn find_qemu() -> Result<PathBuf, QemuError> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .ok_or(QemuError::NoQemu)
}

/// Debian's newest installed kernel: (`/boot/vmlinuz-RELEASE`, `/lib/modules/RELEASE`).
pub fn find_kernel() -> Result<(PathBuf, PathBuf), QemuError> {
    let mut releases: Vec<String> = std::fs::read_dir("/boot")
        .map_err(|_| QemuError::NoKernel)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_string))
        .filter(|r| {
            Path::new("/lib/modules")
                .join(r)
                .join("modules.dep")
                .is_file()
        })
        .collect();
    // By version, not by text: 6.1.0-10 is newer than 6.1.0-9.
    let key = |r: &String| -> Vec<u64> {
        r.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    releases.sort_by_key(key);
    let release = releases.pop().ok_or(QemuError::NoKernel)?;
    let kernel = PathBuf::from(format!("/boot/vmlinuz-{release}"));
    if let Err(source) = std::fs::File::open(&kernel) {
        return Err(QemuError::KernelUnreadable {
            path: kernel,
            source,
        });
    }
    Ok((kernel, Path::new("/lib/modules").join(release)))
}

/// `kvm` when this machine can run it, else `tcg` (BRIEF §2: KVM only where `vmx`/`svm`
/// exist).
pub fn accelerator() -> &'static str {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let virt = cpu.split_whitespace().any(|w| w == "vmx" || w == "svm");
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if virt && kvm {
        "kvm"
    } else {
        "tcg"
    }
}

/// Bytes a serial port buffers from its VM before the oldest are dropped.
const PORT_BUFFER: usize = 1 << 20;

/// One serial port: our listener until QEMU connects; then a thread that reads at once
/// whatever the VM writes (QEMU writes a UART byte by byte and drops a byte its socket
/// does not take, so the port is drained as it comes, not on the rack's tick), and the
/// stream to write to.
struct Port {
    listener: Option<UnixListener>,
    writer: Option<UnixStream>,
    incoming: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Port {
    fn listen(path: &Path) -> std::io::Result<Port> {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path)?;
        l.set_nonblocking(true)?;
        Ok(Port {
            listener: Some(l),
            writer: None,
            incoming: Arc::default(),
            reader: None,
        })
    }

    /// Takes QEMU's connection once it is there.
    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        let Ok((stream, _)) = l.accept() else { return };
        self.listener = None;
        let mut read = match stream.try_clone() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("a VM's serial port cannot be read: {e}");
                return;
            }
        };
        // Blocking for the reader; a write that cannot go out in time is dropped.
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
        self.writer = Some(stream);
        let incoming = self.incoming.clone();
        self.reader = Some(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = read.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut v = incoming.lock().unwrap_or_else(PoisonError::into_inner);
                v.extend_from_slice(&buf[..n]);
                let over = v.len().saturating_sub(PORT_BUFFER);
                v.drain(..over);
            }
        }));
    }

    /// What the VM wrote since the last call.
    fn take(&mut self) -> Vec<u8> {
        self.accept();
        std::mem::take(&mut *self.incoming.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// What the VM wrote before it ended (its side is closed: the reader reaches the end).
    fn take_last(&mut self) -> Vec<u8> {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.take()
    }

    /// Writes what the port takes now; returns how much.
    fn write_some(&mut self, bytes: &[u8]) -> usize {
        self.accept();
        match &mut self.writer {
            Some(s) if !bytes.is_empty() => s.write(bytes).unwrap_or_default(),
            _ => 0,
        }
    }
}

struct Vm {
    child: Child,
    /// QEMU's own messages (its stderr).
    log: PathBuf,
    /// The tray's power-on this VM belongs to.
    power_on: u64,
    console: Port,
    boot: Port,
    qmp: PathBuf,
    presses_seen: u64,
    cpu: Option<(f64, Instant)>,
}

impl Vm {
    /// CPU seconds the VM's process used so far (utime + stime).
    fn cpu_seconds(&self) -> Option<f64> {
        let (ticks, hz) = self.cpu_ticks()?;
        Some(ticks as f64 / hz as f64)
    }

    /// (utime + stime, clock ticks per second) of the VM's process.
    fn cpu_ticks(&self) -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces) start at ") ".
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf takes no pointers.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
        (hz > 0).then_some((ticks, hz))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The QEMU machines of a rack's trays.
pub struct QemuTrays {
    config: QemuConfig,
    trays: Vec<(String, u32)>,
    vms: HashMap<(String, u32), Vm>,
    /// Trays whose VM ended during this power-on (it stays halted until the next one).
    ended: HashMap<(String, u32), u64>,
}

impl QemuTrays {
    /// Makes `trays` QEMU machines (their compute unit is no longer the twin's model).
    pub fn new(
        config: QemuConfig,
        twin: &Twin,
        trays: Vec<(String, u32)>,
    ) -> Result<QemuTrays, QemuError> {
        std::fs::create_dir_all(&config.work_dir).map_err(|source| QemuError::Dir {
            path: config.work_dir.clone(),
            source,
        })?;
        {
            let mut s = twin.lock();
            for (chassis, slot) in &trays {
                if let Ok(t) = s.tray_mut(chassis, *slot) {
                    t.compute = Compute::Machine;
                }
            }
        }
        Ok(QemuTrays {
            config,
            trays,
            vms: HashMap::new(),
            ended: HashMap::new(),
        })
    }

    /// VMs running now.
    pub fn running(&self) -> usize {
        self.vms.len()
    }

    fn spawn(&self, chassis: &str, slot: u32, power_on: u64) -> Result<Vm, QemuError> {
        let dir = self.config.work_dir.join(format!("{chassis}-tray-{slot}"));
        let prepared = |r: std::io::Result<Port>| {
            r.map_err(|source| QemuError::Dir {
                path: dir.clone(),
                source,
            })
        };
        std::fs::create_dir_all(&dir).map_err(|source| QemuError::Dir {
            path: dir.clone(),
            source,
        })?;
        let console_path = dir.join("console.sock");
        let boot_path = dir.join("boot-channel.sock");
        let qmp = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&qmp);
        let log_path = dir.join("qemu.log");
        let log = std::fs::File::create(&log_path).map_err(|source| QemuError::Dir {
            path: log_path.clone(),
            source,
        })?;
        let console = prepared(Port::listen(&console_path))?;
        let boot = prepared(Port::listen(&boot_path))?;
        let mut command = Command::new(&self.config.qemu);
        command
            .args(["-M", "pc", "-accel", self.config.accel, "-smp", "1"])
            // A guest reset (a reboot, a panic) ends the VM: the tray halts, and the BMC
            // or the control plane decides what comes next, as with a board.
            .arg("-no-reboot")
            .args(["-m", &self.config.memory_mib.to_string()])
            .args(["-nographic", "-nodefaults", "-no-user-config"])
            .arg("-kernel")
            .arg(&self.config.kernel)
            .arg("-initrd")
            .arg(&self.config.initramfs)
            .args([
                "-append",
                "console=ttyS0 panic=-1 tsc=reliable racklet.ip=10.0.2.15/24 racklet.gw=10.0.2.2",
            ])
            .arg("-serial")
            .arg(format!("unix:{}", console_path.display()))
            .arg("-serial")
            .arg(format!("unix:{}", boot_path.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .args([
                "-netdev",
                "user,id=n0",
                "-device",
                "virtio-net-pci,netdev=n0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: the closure runs in the child between fork and exec and only makes
        // one async-signal-safe system call.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                // The VM ends with the rack, even when the rack is killed.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command.spawn().map_err(|source| QemuError::Spawn {
            tray: format!("{chassis} tray {slot}"),
            source,
        })?;
        Ok(Vm {
            child,
            log: log_path,
            power_on,
            console,
            boot,
            qmp,
            presses_seen: 0,
            cpu: None,
        })
    }

    /// One pass: VMs started and ended with their trays' power, serial bytes both ways,
    /// power-button presses passed on, loads from CPU use.
    pub fn pump(&mut self, twin: &Twin) {
        for (chassis, slot) in self.trays.clone() {
            let key = (chassis.clone(), slot);
            let (os, power_on, presses) = {
                let mut s = twin.lock();
                let Ok(t) = s.tray_mut(&chassis, slot) else {
                    continue;
                };
                (t.os, t.power_ons, t.button_presses)
            };
            let stale = self.vms.get(&key).is_some_and(|vm| vm.power_on != power_on);
            if os == OsState::Off || stale {
                self.vms.remove(&key); // DCDC_EN off: the machine loses power
            }
            if os == OsState::Off {
                continue;
            }
            if !self.vms.contains_key(&key) && self.ended.get(&key) != Some(&power_on) {
                match self.spawn(&chassis, slot, power_on) {
                    Ok(mut vm) => {
                        vm.presses_seen = presses;
                        self.vms.insert(key.clone(), vm);
                        let now = twin.now().as_secs_f64();
                        if let Ok(t) = twin.lock().tray_mut(&chassis, slot) {
                            t.machine_running(true, now);
                        }
                    }
                    Err(e) => {
                        // The tray halts and its console says why.
                        let now = twin.now().as_secs_f64();
                        if let Ok(t) = twin.lock().tray_mut(&chassis, slot) {
                            t.machine_console(format!("\r\n[racklet: {e}]\r\n").as_bytes());
                            t.machine_running(false, now);
                        }
                        self.ended.insert(key.clone(), power_on);
                    }
                }
            }
            let Some(vm) = self.vms.get_mut(&key) else {
                continue;
            };
            if let Ok(Some(status)) = vm.child.try_wait() {
                // It powered itself off: halted, until the tray is switched off and on.
                let mut last = vm.console.take_last();
                if !status.success() {
                    let log = std::fs::read_to_string(&vm.log).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(3).collect();
                    last.extend_from_slice(
                        format!(
                            "\r\n[racklet: QEMU ended with {status}: {}]\r\n",
                            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                        )
                        .as_bytes(),
                    );
                }
                self.vms.remove(&key);
                self.ended.insert(key, power_on);
                let now = twin.now().as_secs_f64();
                if let Ok(t) = twin.lock().tray_mut(&chassis, slot) {
                    t.machine_console(&last);
                    t.machine_running(false, now);
                }
                continue;
            }
            if presses > vm.presses_seen {
                vm.presses_seen = presses;
                power_button(vm.qmp.clone());
            }
            let console = vm.console.take();
            let boot = vm.boot.take();
            let load = sample_load(vm);
            let (to_console, to_boot) = {
                let mut s = twin.lock();
                let Ok(t) = s.tray_mut(&chassis, slot) else {
                    continue;
                };
                t.machine_console(&console);
                t.boot_channel_from_machine(&boot);
                if let Some(load) = load {
                    t.load = load;
                }
                (
                    t.console_to_machine.iter().copied().collect::<Vec<u8>>(),
                    t.boot_to_machine.iter().copied().collect::<Vec<u8>>(),
                )
            };
            // Written without the twin's lock: a slow guest holds up nobody else.
            let sent = (
                vm.console.write_some(&to_console),
                vm.boot.write_some(&to_boot),
            );
            if let Ok(t) = twin.lock().tray_mut(&chassis, slot) {
                t.console_to_machine
                    .drain(..sent.0.min(t.console_to_machine.len()));
                t.boot_to_machine
                    .drain(..sent.1.min(t.boot_to_machine.len()));
            }
        }
    }
}

/// The VM's CPU use since the last sample (0 to 1), at most once a second.
fn sample_load(vm: &mut Vm) -> Option<f64> {
    let now = Instant::now();
    if vm
        .cpu
        .is_some_and(|(_, at)| now - at < Duration::from_secs(1))
    {
        return None;
    }
    let cpu = vm.cpu_seconds()?;
    match vm.cpu {
        Some((before, at)) if now - at >= Duration::from_secs(1) => {
            vm.cpu = Some((cpu, now));
            Some(((cpu - before).max(0.0) / (now - at).as_secs_f64()).clamp(0.0, 1.0))
        }
        Some(_) => None,
        None => {
            vm.cpu = Some((cpu, now));
            None
        }
    }
}

/// Presses the VM's ACPI power button through QMP, on a thread of its own (the
/// handshake must not hold up the rack's tick).
fn power_button(qmp: PathBuf) {
    std::thread::spawn(move || {
        let press = || -> std::io::Result<()> {
            let mut s = UnixStream::connect(&qmp)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; 4096];
            let _greeting = s.read(&mut buf)?;
            s.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
            let _ = s.read(&mut buf)?;
            s.write_all(b"{\"execute\":\"system_powerdown\"}\n")?;
            let _ = s.read(&mut buf)?;
            Ok(())
        };
        if let Err(e) = press() {
            tracing::warn!("cannot press the power button of {}: {e}", qmp.display());
        }
    });
}
