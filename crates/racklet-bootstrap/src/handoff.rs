//! Handing a verified payload to the hardware. With kexec ([`Kexec`]) the running kernel
//! loads the new one and jumps to it. Boards without kexec (Raspberry Pi 4/5 boot from
//! their own loader) get the payload written to the inactive slot of an A/B disk
//! ([`AbDisk`]) for one trial boot: the loader boots the trial slot once, and falls back
//! to the active slot unless the new system confirmed itself.

use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is handed off: files the bootstrap wrote and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub profile: String,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub command_line: String,
    /// A cpio archive for the booted system (`node::Handover`), appended to the
    /// initramfs in memory. It holds the node identity's seed: a hand-off never writes it
    /// to a disk.
    pub handover: Vec<u8>,
}

/// Why a hand-off did not happen; nothing was started.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot put the initramfs and the handover in memory: {0}")]
    Memory(std::io::Error),
    #[error("kexec_file_load refused the kernel: {0}")]
    Load(std::io::Error),
    #[error("reboot into the loaded kernel failed: {0}")]
    Reboot(std::io::Error),
    #[error("the command line has a NUL byte")]
    CommandLine,
    #[error("the A/B disk {}: {reason}", path.display())]
    Disk { path: PathBuf, reason: String },
}

/// The last step of a boot. On success a real hand-off does not return (kexec) or the
/// board reboots into the new slot; the caller stops either way.
pub trait Handoff {
    fn hand_off(&mut self, payload: &Payload) -> Result<(), HandoffError>;
}

/// The verified initramfs with the handover after it, in an anonymous memory file (never on
/// a disk).
fn with_handover(initramfs: &Path, handover: &[u8]) -> Result<std::fs::File, HandoffError> {
    use std::io::Write as _;
    use std::os::fd::FromRawFd as _;
    // SAFETY: the name is NUL-terminated; the call takes no other pointer.
    let fd = unsafe { libc::memfd_create(c"initramfs".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(HandoffError::Memory(std::io::Error::last_os_error()));
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let mut memory = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut verified = std::fs::File::open(initramfs).map_err(|source| HandoffError::Open {
        path: initramfs.to_path_buf(),
        source,
    })?;
    std::io::copy(&mut verified, &mut memory).map_err(HandoffError::Memory)?;
    memory.write_all(handover).map_err(HandoffError::Memory)?;
    Ok(memory)
}

/// `kexec_file_load` of the kernel and initramfs, then `reboot(LINUX_REBOOT_CMD_KEXEC)`.
#[derive(Debug, Default)]
pub struct Kexec;

impl Handoff for Kexec {
    fn hand_off(&mut self, payload: &Payload) -> Result<(), HandoffError> {
        use std::os::fd::AsRawFd as _;
        let open = |p: &Path| {
            std::fs::File::open(p).map_err(|source| HandoffError::Open {
                path: p.to_path_buf(),
                source,
            })
        };
        let kernel = open(&payload.kernel)?;
        let initramfs = with_handover(&payload.initramfs, &payload.handover)?;
        let cmdline = std::ffi::CString::new(payload.command_line.as_bytes())
            .map_err(|_| HandoffError::CommandLine)?;
        let len = cmdline.as_bytes_with_nul().len();
        // SAFETY: both descriptors are open files owned by this function for the call's
        // duration; `cmdline` is NUL-terminated and `len` counts that NUL, as the
        // syscall requires; flags 0 asks for a normal (not crash) kernel.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_kexec_file_load,
                kernel.as_raw_fd(),
                initramfs.as_raw_fd(),
                len,
                cmdline.as_ptr(),
                0u64,
            )
        };
        if rc != 0 {
            return Err(HandoffError::Load(std::io::Error::last_os_error()));
        }
        // SAFETY: `reboot` takes no pointers; with LINUX_REBOOT_CMD_KEXEC it jumps into
        // the kernel loaded above and returns only on failure.
        let rc = unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC) };
        Err(HandoffError::Reboot(if rc == 0 {
            std::io::Error::other("reboot returned")
        } else {
            std::io::Error::last_os_error()
        }))
    }
}

/// One of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    fn index(self) -> u64 {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }
}

/// The A/B disk's header, the first [`HEADER_BYTES`] of the image (JSON, zero-padded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbHeader {
    pub slot_bytes: u64,
    pub active: Slot,
    /// A slot written for one trial boot, and whether that boot has started.
    pub trial: Option<Slot>,
    pub trial_started: bool,
    /// What each slot holds: profile, lengths, command line.
    pub slots: [Option<SlotContent>; 2],
}

/// What a slot holds: kernel then initramfs, back to back from the slot's start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotContent {
    pub profile: String,
    pub kernel_bytes: u64,
    pub initramfs_bytes: u64,
    pub command_line: String,
}

/// Bytes of the header region.
pub const HEADER_BYTES: u64 = 4096;

/// An A/B disk image: a header and two equal slots. The handover (with the node
/// identity) is not written: a secret does not go to a disk; such a board's agent has no
/// identity yet.
#[derive(Debug, Clone)]
pub struct AbDisk {
    path: PathBuf,
}

impl AbDisk {
    /// Makes an empty disk image with two slots of `slot_bytes`; slot A active.
    pub fn create(path: impl Into<PathBuf>, slot_bytes: u64) -> Result<AbDisk, HandoffError> {
        let disk = AbDisk { path: path.into() };
        let f = std::fs::File::create(&disk.path).map_err(|e| disk.error(e))?;
        f.set_len(HEADER_BYTES + 2 * slot_bytes)
            .map_err(|e| disk.error(e))?;
        disk.write_header(&AbHeader {
            slot_bytes,
            active: Slot::A,
            trial: None,
            trial_started: false,
            slots: [None, None],
        })?;
        Ok(disk)
    }

    pub fn open(path: impl Into<PathBuf>) -> AbDisk {
        AbDisk { path: path.into() }
    }

    fn error(&self, e: impl std::fmt::Display) -> HandoffError {
        HandoffError::Disk {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    pub fn header(&self) -> Result<AbHeader, HandoffError> {
        let mut f = std::fs::File::open(&self.path).map_err(|e| self.error(e))?;
        let mut buf = vec![0u8; usize::try_from(HEADER_BYTES).unwrap_or(4096)];
        f.read_exact(&mut buf).map_err(|e| self.error(e))?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        serde_json::from_slice(&buf[..end]).map_err(|e| self.error(format!("bad header: {e}")))
    }

    fn write_header(&self, h: &AbHeader) -> Result<(), HandoffError> {
        let mut bytes = serde_json::to_vec(h).map_err(|e| self.error(e))?;
        if bytes.len() as u64 >= HEADER_BYTES {
            return Err(self.error("header too big"));
        }
        bytes.resize(usize::try_from(HEADER_BYTES).unwrap_or(4096), 0);
        let mut f = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| self.error(e))?;
        f.write_all(&bytes).map_err(|e| self.error(e))?;
        f.sync_all().map_err(|e| self.error(e))
    }

    /// The loader's choice at power-on: a pending trial slot once, then back to the
    /// active slot unless the trial confirmed itself ([`AbDisk::confirm`]).
    pub fn next_boot(&self) -> Result<Slot, HandoffError> {
        let mut h = self.header()?;
        let slot = match (h.trial, h.trial_started) {
            (Some(t), false) => {
                h.trial_started = true;
                t
            }
            (Some(_), true) => {
                // The trial booted and never confirmed: fall back.
                h.trial = None;
                h.trial_started = false;
                h.active
            }
            (None, _) => h.active,
        };
        self.write_header(&h)?;
        Ok(slot)
    }

    /// The running trial slot is good: it becomes the active one.
    pub fn confirm(&self) -> Result<(), HandoffError> {
        let mut h = self.header()?;
        if let (Some(t), true) = (h.trial, h.trial_started) {
            h.active = t;
            h.trial = None;
            h.trial_started = false;
            self.write_header(&h)?;
        }
        Ok(())
    }

    /// The kernel and initramfs bytes in `slot`.
    pub fn read_slot(&self, slot: Slot) -> Result<(Vec<u8>, Vec<u8>), HandoffError> {
        let h = self.header()?;
        let Some(c) = &h.slots[usize::from(slot == Slot::B)] else {
            return Err(self.error(format!("slot {slot:?} is empty")));
        };
        let mut f = std::fs::File::open(&self.path).map_err(|e| self.error(e))?;
        f.seek(SeekFrom::Start(HEADER_BYTES + slot.index() * h.slot_bytes))
            .map_err(|e| self.error(e))?;
        let mut kernel = vec![0u8; usize::try_from(c.kernel_bytes).map_err(|e| self.error(e))?];
        f.read_exact(&mut kernel).map_err(|e| self.error(e))?;
        let mut initramfs =
            vec![0u8; usize::try_from(c.initramfs_bytes).map_err(|e| self.error(e))?];
        f.read_exact(&mut initramfs).map_err(|e| self.error(e))?;
        Ok((kernel, initramfs))
    }
}

impl Handoff for AbDisk {
    /// Writes the payload to the slot that is not active and marks it for one trial
    /// boot; the header is written last, so a torn write leaves the old state.
    fn hand_off(&mut self, payload: &Payload) -> Result<(), HandoffError> {
        let mut h = self.header()?;
        let target = h.active.other();
        let kernel = std::fs::read(&payload.kernel).map_err(|e| self.error(e))?;
        let initramfs = std::fs::read(&payload.initramfs).map_err(|e| self.error(e))?;
        let total = (kernel.len() + initramfs.len()) as u64;
        if total > h.slot_bytes {
            return Err(self.error(format!(
                "the payload ({total} bytes) does not fit a slot ({} bytes)",
                h.slot_bytes
            )));
        }
        // The slot is emptied in the header before its bytes change: a write cut short
        // leaves nothing the loader would boot.
        h.trial = None;
        h.trial_started = false;
        h.slots[usize::from(target == Slot::B)] = None;
        self.write_header(&h)?;
        let mut f = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| self.error(e))?;
        f.seek(SeekFrom::Start(
            HEADER_BYTES + target.index() * h.slot_bytes,
        ))
        .map_err(|e| self.error(e))?;
        f.write_all(&kernel).map_err(|e| self.error(e))?;
        f.write_all(&initramfs).map_err(|e| self.error(e))?;
        f.sync_all().map_err(|e| self.error(e))?;
        h.slots[usize::from(target == Slot::B)] = Some(SlotContent {
            profile: payload.profile.clone(),
            kernel_bytes: kernel.len() as u64,
            initramfs_bytes: initramfs.len() as u64,
            command_line: payload.command_line.clone(),
        });
        h.trial = Some(target);
        h.trial_started = false;
        self.write_header(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(dir: &Path, kernel: &[u8]) -> Payload {
        std::fs::write(dir.join("k"), kernel).expect("write");
        std::fs::write(dir.join("i"), b"initramfs").expect("write");
        Payload {
            profile: "p".into(),
            kernel: dir.join("k"),
            initramfs: dir.join("i"),
            command_line: "console=ttyS0".into(),
            handover: b"HANDOVER-WITH-A-SECRET".to_vec(),
        }
    }

    #[test]
    fn the_handover_follows_the_verified_initramfs_in_memory_and_never_reaches_the_ab_disk() {
        use std::io::{Read as _, Seek as _};
        let tmp = tempfile::tempdir().expect("tmp");
        let p = payload(tmp.path(), b"kernel");
        let mut memory = with_handover(&p.initramfs, &p.handover).expect("memfd");
        memory.rewind().expect("rewind");
        let mut both = Vec::new();
        memory.read_to_end(&mut both).expect("read");
        assert_eq!(both, b"initramfsHANDOVER-WITH-A-SECRET");
        let mut disk = AbDisk::create(tmp.path().join("disk.img"), 1 << 12).expect("disk");
        disk.hand_off(&p).expect("written");
        let image = std::fs::read(tmp.path().join("disk.img")).expect("image");
        assert!(image.windows(9).any(|w| w == b"initramfs"));
        assert!(!image.windows(8).any(|w| w == b"HANDOVER"));
    }

    #[test]
    fn a_confirmed_trial_slot_stays_and_the_next_payload_goes_to_the_other_slot() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut disk = AbDisk::create(dir.path().join("d.img"), 1024).expect("disk");
        disk.hand_off(&payload(dir.path(), b"one"))
            .expect("hand off");
        assert_eq!(disk.next_boot().expect("boot"), Slot::B);
        disk.confirm().expect("confirm");
        assert_eq!(
            disk.next_boot().expect("boot"),
            Slot::B,
            "confirmed: B is active"
        );
        disk.hand_off(&payload(dir.path(), b"two"))
            .expect("hand off");
        assert_eq!(disk.next_boot().expect("boot"), Slot::A);
        assert_eq!(disk.read_slot(Slot::A).expect("slot").0, b"two");
        assert_eq!(
            disk.read_slot(Slot::B).expect("slot").0,
            b"one",
            "the good slot is kept"
        );
    }

    #[test]
    fn a_payload_bigger_than_a_slot_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut disk = AbDisk::create(dir.path().join("d.img"), 8).expect("disk");
        let err = disk
            .hand_off(&payload(dir.path(), b"a kernel too big"))
            .expect_err("too big");
        assert!(err.to_string().contains("does not fit a slot"), "{err}");
        let h = disk.header().expect("header");
        assert_eq!((h.trial, h.slots[1].is_none()), (None, true));
    }
}
