//! The bootstrap's initramfs (`racklet boot build-initramfs`): the static bootstrap
//! binary as `/init`, `/dev/console`, the kernel modules the network needs (with their
//! dependencies from `modules.dep`, in load order, listed in `/etc/racklet/modules`).
//! Reproducible: entries sorted, owner root, timestamps zero, gzip without a name or
//! time; the same inputs give the same bytes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why the image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("module {module:?} is not in {}; is the kernel's modules package installed?", dep.display())]
    NoModule { module: String, dep: PathBuf },
    #[error("{path} is larger than a cpio entry can hold")]
    TooBig { path: String },
    #[error("cannot write the archive: {0}")]
    Write(#[from] std::io::Error),
}

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The program that runs as PID 1.
    pub init: PathBuf,
    /// `/lib/modules/RELEASE` of the kernel the image boots with.
    pub modules_dir: Option<PathBuf>,
    /// Module names to load (with their dependencies), e.g. `virtio_net`.
    pub modules: Vec<String>,
}

/// The modules a QEMU compute unit needs: virtio-net over PCI, and the ACPI power button
/// as an input device (what the BMC's graceful shutdown presses).
pub const QEMU_MODULES: &[&str] = &["virtio_pci", "virtio_net", "button", "evdev"];

/// A built image and what is in it.
#[derive(Debug, Clone)]
pub struct Image {
    pub gzip: Vec<u8>,
    pub uncompressed_bytes: usize,
    /// Module files in load order.
    pub modules: Vec<String>,
}

enum Entry {
    Dir,
    File { bytes: Vec<u8>, mode: u32 },
    CharDevice { major: u32, minor: u32 },
}

/// Builds the image.
pub fn build(spec: &Spec) -> Result<Image, InitramfsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| InitramfsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for d in [
        "dev",
        "etc",
        "etc/racklet",
        "lib",
        "lib/modules",
        "proc",
        "sys",
        "tmp",
    ] {
        entries.insert(d.into(), Entry::Dir);
    }
    entries.insert(
        "dev/console".into(),
        Entry::CharDevice { major: 5, minor: 1 },
    );
    entries.insert(
        "init".into(),
        Entry::File {
            bytes: read(&spec.init)?,
            mode: 0o755,
        },
    );
    let mut order = Vec::new();
    if let Some(dir) = &spec.modules_dir {
        let dep_path = dir.join("modules.dep");
        let deps = String::from_utf8_lossy(&read(&dep_path)?).into_owned();
        let table: BTreeMap<&str, Vec<&str>> = deps
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(m, d)| (m.trim(), d.split_whitespace().collect()))
            .collect();
        let path_of = |name: &str| {
            table
                .keys()
                .find(|p| {
                    let file = p.rsplit('/').next().unwrap_or(p);
                    let stem = file.split(".ko").next().unwrap_or(file);
                    stem.replace('-', "_") == name.replace('-', "_")
                })
                .copied()
        };
        for name in &spec.modules {
            let Some(path) = path_of(name) else {
                return Err(InitramfsError::NoModule {
                    module: name.clone(),
                    dep: dep_path,
                });
            };
            // Dependencies first: modules.dep lists a module's in the order to load them
            // last-to-first.
            let mut chain: Vec<&str> = table.get(path).cloned().unwrap_or_default();
            chain.reverse();
            chain.push(path);
            for m in chain {
                if !order.iter().any(|o: &String| o == m) {
                    order.push(m.to_string());
                }
            }
        }
        for m in &order {
            let file = m.rsplit('/').next().unwrap_or(m);
            entries.insert(
                format!("lib/modules/{file}"),
                Entry::File {
                    bytes: read(&dir.join(m))?,
                    mode: 0o644,
                },
            );
        }
    }
    let list: String = order
        .iter()
        .map(|m| format!("/lib/modules/{}\n", m.rsplit('/').next().unwrap_or(m)))
        .collect();
    entries.insert(
        "etc/racklet/modules".into(),
        Entry::File {
            bytes: list.into_bytes(),
            mode: 0o644,
        },
    );

    let (gzip, uncompressed_bytes) = pack(&entries)?;
    Ok(Image {
        gzip,
        uncompressed_bytes,
        modules: order,
    })
}

/// A gzip'd cpio archive of `files` (path, bytes, mode) and their directories, to append
/// to an image: the kernel unpacks concatenated archives in order.
pub fn overlay(files: &[(&str, Vec<u8>, u32)]) -> Result<Vec<u8>, InitramfsError> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for (path, bytes, mode) in files {
        let mut dir = String::new();
        for part in path
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(part);
            entries.insert(dir.clone(), Entry::Dir);
        }
        entries.insert(
            (*path).to_string(),
            Entry::File {
                bytes: bytes.clone(),
                mode: *mode,
            },
        );
    }
    Ok(pack(&entries)?.0)
}

/// The entries as a gzip'd newc cpio archive, and its uncompressed size.
fn pack(entries: &BTreeMap<String, Entry>) -> Result<(Vec<u8>, usize), InitramfsError> {
    let mut archive = Vec::new();
    for (ino, (name, entry)) in entries.iter().enumerate() {
        let b = cpio::newc::Builder::new(name)
            .ino(u32::try_from(ino).unwrap_or(u32::MAX))
            .uid(0)
            .gid(0)
            .mtime(0);
        match entry {
            Entry::Dir => b.mode(0o040_755).nlink(2).write(&mut archive, 0).finish()?,
            Entry::CharDevice { major, minor } => b
                .mode(0o020_600)
                .nlink(1)
                .rdev_major(*major)
                .rdev_minor(*minor)
                .write(&mut archive, 0)
                .finish()?,
            Entry::File { bytes, mode } => {
                let size = u32::try_from(bytes.len())
                    .map_err(|_| InitramfsError::TooBig { path: name.clone() })?;
                let mut w = b.mode(0o100_000 | mode).nlink(1).write(&mut archive, size);
                w.write_all(bytes)?;
                w.finish()?
            }
        };
    }
    cpio::newc::trailer(&mut archive)?;
    let uncompressed_bytes = archive.len();
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&archive)?;
    Ok((gz.finish()?, uncompressed_bytes))
}
