//! The boot repository's keys: one Ed25519 key per online role (targets, snapshot,
//! timestamp) and one or more root keys with a threshold, kept in a directory of their own
//! (`racklet boot keys init|rotate|show`, or made by `racklet up` on first start):
//!
//! ```text
//! DIR/root/N.root.json      every version of the root metadata, the chain clients follow
//! DIR/private/KEYID.pk8     private keys, PKCS#8 DER, owner-only
//! ```
//!
//! A rotation writes root version N+1 signed by the threshold of version N's root keys
//! and of its own, so a client holding any earlier root can follow the chain to it; the
//! private keys the new root no longer names are deleted.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::{Ed25519Key, Ed25519Scheme, Key};
use tough::schema::{RoleKeys, RoleType, Root, Signature, Signed};

/// One of TUF's four top-level roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp];

    fn tuf(self) -> RoleType {
        match self {
            Role::Root => RoleType::Root,
            Role::Targets => RoleType::Targets,
            Role::Snapshot => RoleType::Snapshot,
            Role::Timestamp => RoleType::Timestamp,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a new key set is made.
#[derive(Debug, Clone, Copy)]
pub struct KeyOptions {
    /// Root keys, and how many of them must sign a root.
    pub root_keys: usize,
    pub root_threshold: NonZeroU64,
    /// How long a root stays valid (renewed by every rotation).
    pub root_lifetime: jiff::SignedDuration,
}

impl Default for KeyOptions {
    fn default() -> Self {
        KeyOptions {
            root_keys: 1,
            root_threshold: NonZeroU64::MIN,
            root_lifetime: jiff::SignedDuration::from_hours(24 * 365),
        }
    }
}

/// What went wrong with the key directory.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{} already holds boot keys (root version {version}); rotate them with `racklet boot keys rotate ROLE` instead", dir.display())]
    AlreadyInitialised { dir: PathBuf, version: u64 },
    #[error("{} holds no boot keys; make them with `racklet boot keys init`", dir.display())]
    Missing { dir: PathBuf },
    #[error("a root threshold of {threshold} needs at least {threshold} root keys, not {keys}")]
    Threshold { threshold: u64, keys: usize },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not root metadata: {reason}", path.display())]
    BadRoot { path: PathBuf, reason: String },
    #[error("{} is not an Ed25519 PKCS#8 key; restore it from a backup or rotate the role it belongs to", path.display())]
    BadKey { path: PathBuf },
    #[error("the {role} role needs {needed} signatures but only {have} of its private keys are in {}; restore them from a backup", dir.display())]
    NotEnoughKeys {
        role: Role,
        needed: u64,
        have: usize,
        dir: PathBuf,
    },
    #[error("cannot create {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
    #[error("cannot generate a key: {0}")]
    Generate(String),
    #[error("cannot serialise root metadata: {0}")]
    Serialise(String),
}

/// One role's keys, as `racklet boot keys show` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSummary {
    pub role: Role,
    pub threshold: u64,
    /// Key IDs, hex.
    pub keys: Vec<String>,
    /// How many of them have their private key in the directory.
    pub private: usize,
}

/// The key directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn open(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn root_dir(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn private_dir(&self) -> PathBuf {
        self.dir.join("private")
    }

    fn private_key(&self, keyid: &str) -> PathBuf {
        self.private_dir().join(format!("{keyid}.pk8"))
    }

    /// Makes a new key set and root version 1; refuses a directory that has one.
    pub fn init(
        dir: impl Into<PathBuf>,
        options: KeyOptions,
        now: jiff::Timestamp,
    ) -> Result<KeyStore, KeyError> {
        let store = KeyStore::open(dir);
        if let Some(version) = store.root_versions()?.last().map(|(v, _)| *v) {
            return Err(KeyError::AlreadyInitialised {
                dir: store.dir.clone(),
                version,
            });
        }
        if (options.root_keys as u64) < options.root_threshold.get() {
            return Err(KeyError::Threshold {
                threshold: options.root_threshold.get(),
                keys: options.root_keys,
            });
        }
        for d in [store.root_dir(), store.private_dir()] {
            create_private_dir(&d)?;
        }
        let mut keys = HashMap::new();
        let mut roles = HashMap::new();
        for role in Role::ALL {
            let (count, threshold) = match role {
                Role::Root => (options.root_keys, options.root_threshold),
                _ => (1, NonZeroU64::MIN),
            };
            let mut ids = Vec::new();
            for _ in 0..count {
                let (id, key) = store.new_key()?;
                keys.insert(id.clone(), key);
                ids.push(id);
            }
            roles.insert(role.tuf(), role_keys(ids, threshold));
        }
        let root = Root {
            spec_version: crate::SPEC_VERSION.into(),
            consistent_snapshot: true,
            version: NonZeroU64::MIN,
            expires: expiry(now, options.root_lifetime),
            keys,
            roles,
            _extra: HashMap::new(),
        };
        let signed = store.sign_root(root, None)?;
        store.write_root(&signed)?;
        Ok(store)
    }

    /// [`KeyStore::init`] with the default options unless the directory has keys already.
    pub fn open_or_init(
        dir: impl Into<PathBuf>,
        now: jiff::Timestamp,
    ) -> Result<KeyStore, KeyError> {
        let store = KeyStore::open(dir);
        if store.root_versions()?.is_empty() {
            return KeyStore::init(store.dir, KeyOptions::default(), now);
        }
        Ok(store)
    }

    /// Every root version in the directory, oldest first.
    pub fn root_versions(&self) -> Result<Vec<(u64, PathBuf)>, KeyError> {
        let dir = self.root_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(KeyError::Read { path: dir, source }),
        };
        let mut versions: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let v = name.strip_suffix(".root.json")?.parse().ok()?;
                Some((v, e.path()))
            })
            .collect();
        versions.sort();
        Ok(versions)
    }

    /// The newest root: its version, the file's exact bytes and the parsed metadata.
    pub fn latest_root(&self) -> Result<(u64, Vec<u8>, Signed<Root>), KeyError> {
        let Some((version, path)) = self.root_versions()?.pop() else {
            return Err(KeyError::Missing {
                dir: self.dir.clone(),
            });
        };
        let bytes = read(&path)?;
        let root = serde_json::from_slice(&bytes).map_err(|e| KeyError::BadRoot {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok((version, bytes, root))
    }

    /// The path of the newest root, as the repository editor reads it.
    pub fn latest_root_path(&self) -> Result<PathBuf, KeyError> {
        self.root_versions()?
            .pop()
            .map(|(_, p)| p)
            .ok_or_else(|| KeyError::Missing {
                dir: self.dir.clone(),
            })
    }

    /// The private keys of the newest root's online roles (targets, snapshot, timestamp);
    /// fails when a role could not reach its threshold.
    pub fn online_keys(&self) -> Result<Vec<Box<dyn KeySource>>, KeyError> {
        let (_, _, root) = self.latest_root()?;
        let mut sources: Vec<Box<dyn KeySource>> = Vec::new();
        for role in [Role::Targets, Role::Snapshot, Role::Timestamp] {
            let present = self.present_keys(&root.signed, role)?;
            sources.extend(
                present
                    .into_iter()
                    .map(|(_, path)| Box::new(LocalKeySource { path }) as Box<dyn KeySource>),
            );
        }
        Ok(sources)
    }

    /// The role's key IDs whose private key is here; an error below the threshold.
    fn present_keys(&self, root: &Root, role: Role) -> Result<Vec<(String, PathBuf)>, KeyError> {
        let Some(rk) = root.roles.get(&role.tuf()) else {
            return Err(KeyError::NotEnoughKeys {
                role,
                needed: 1,
                have: 0,
                dir: self.private_dir(),
            });
        };
        let present: Vec<(String, PathBuf)> = rk
            .keyids
            .iter()
            .map(|id| hex::encode(id.as_ref()))
            .map(|id| {
                let path = self.private_key(&id);
                (id, path)
            })
            .filter(|(_, p)| p.is_file())
            .collect();
        if (present.len() as u64) < rk.threshold.get() {
            return Err(KeyError::NotEnoughKeys {
                role,
                needed: rk.threshold.get(),
                have: present.len(),
                dir: self.private_dir(),
            });
        }
        Ok(present)
    }

    /// Replaces `role`'s keys with new ones (as many as it had) in root version N+1,
    /// signed by version N's root keys and, for a root rotation, the new ones too.
    /// Returns the new version.
    pub fn rotate(
        &self,
        role: Role,
        now: jiff::Timestamp,
        root_lifetime: jiff::SignedDuration,
    ) -> Result<u64, KeyError> {
        let (version, _, old) = self.latest_root()?;
        let old_root = old.signed;
        let old_signers = self.present_keys(&old_root, Role::Root)?;
        let mut root = old_root.clone();
        let retired = root
            .roles
            .get(&role.tuf())
            .map(|rk| rk.keyids.clone())
            .unwrap_or_default();
        let threshold = root
            .roles
            .get(&role.tuf())
            .map_or(NonZeroU64::MIN, |rk| rk.threshold);
        let mut ids = Vec::new();
        for _ in 0..retired.len().max(1) {
            let (id, key) = self.new_key()?;
            root.keys.insert(id.clone(), key);
            ids.push(id);
        }
        root.roles.insert(role.tuf(), role_keys(ids, threshold));
        let still_used: Vec<&Decoded<Hex>> =
            root.roles.values().flat_map(|rk| &rk.keyids).collect();
        for id in &retired {
            if !still_used.contains(&id) {
                root.keys.remove(id);
            }
        }
        root.version = NonZeroU64::new(version.saturating_add(1)).unwrap_or(NonZeroU64::MIN);
        root.expires = expiry(now, root_lifetime);
        let signed = self.sign_root(root.clone(), Some(&old_signers))?;
        self.write_root(&signed)?;
        // The keys no root names any more are of no use, and a risk if kept.
        for id in retired {
            if !root.keys.contains_key(&id) {
                let _ = std::fs::remove_file(self.private_key(&hex::encode(id.as_ref())));
            }
        }
        Ok(root.version.get())
    }

    /// Each role of the newest root: threshold, key IDs, and which private keys are here.
    pub fn summary(&self) -> Result<(u64, jiff::Timestamp, Vec<RoleSummary>), KeyError> {
        let (version, _, root) = self.latest_root()?;
        let mut roles = Vec::new();
        for role in Role::ALL {
            let Some(rk) = root.signed.roles.get(&role.tuf()) else {
                continue;
            };
            let keys: Vec<String> = rk
                .keyids
                .iter()
                .map(|id| hex::encode(id.as_ref()))
                .collect();
            let private = keys
                .iter()
                .filter(|id| self.private_key(id).is_file())
                .count();
            roles.push(RoleSummary {
                role,
                threshold: rk.threshold.get(),
                keys,
                private,
            });
        }
        Ok((version, root.signed.expires, roles))
    }

    /// A new Ed25519 key, its private half written owner-only; returns its TUF key ID.
    fn new_key(&self) -> Result<(Decoded<Hex>, Key), KeyError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let key = tuf_key(&pair);
        let id = key
            .key_id()
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        racklet_files::write_secret(&self.private_key(&hex::encode(id.as_ref())), pkcs8.as_ref())?;
        Ok((id, key))
    }

    /// Signs `root` with every root key it names that is here, and with `previous` (the
    /// last version's root keys) for a rotation.
    fn sign_root(
        &self,
        root: Root,
        previous: Option<&[(String, PathBuf)]>,
    ) -> Result<Signed<Root>, KeyError> {
        let mut signers = self.present_keys(&root, Role::Root)?;
        for s in previous.unwrap_or_default() {
            if !signers.iter().any(|(id, _)| id == &s.0) {
                signers.push(s.clone());
            }
        }
        let canonical = canonical_json(&root)?;
        let mut signatures = Vec::new();
        for (id, path) in signers {
            let pair = load_key(&path)?;
            let keyid = hex::decode(&id).map_err(|_| KeyError::BadKey { path: path.clone() })?;
            signatures.push(Signature {
                keyid: keyid.into(),
                sig: pair.sign(&canonical).as_ref().to_vec().into(),
            });
        }
        Ok(Signed {
            signed: root,
            signatures,
        })
    }

    fn write_root(&self, root: &Signed<Root>) -> Result<(), KeyError> {
        let mut bytes =
            serde_json::to_vec_pretty(root).map_err(|e| KeyError::Serialise(e.to_string()))?;
        bytes.push(b'\n');
        let path = self
            .root_dir()
            .join(format!("{}.root.json", root.signed.version));
        racklet_files::write_atomic(&path, &bytes, racklet_files::Access::Public)?;
        Ok(())
    }
}

/// TUF's canonical JSON (OLPC) of a value: the bytes signatures cover.
pub(crate) fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .map_err(|e| KeyError::Serialise(e.to_string()))?;
    Ok(out)
}

pub(crate) fn load_key(path: &Path) -> Result<Ed25519KeyPair, KeyError> {
    let der = read(path)?;
    Ed25519KeyPair::from_pkcs8(&der).map_err(|_| KeyError::BadKey {
        path: path.to_path_buf(),
    })
}

pub(crate) fn tuf_key(pair: &Ed25519KeyPair) -> Key {
    Key::Ed25519 {
        keyval: Ed25519Key {
            public: pair.public_key().as_ref().to_vec().into(),
            _extra: HashMap::new(),
        },
        scheme: Ed25519Scheme::Ed25519,
        _extra: HashMap::new(),
    }
}

fn role_keys(keyids: Vec<Decoded<Hex>>, threshold: NonZeroU64) -> RoleKeys {
    RoleKeys {
        keyids,
        threshold,
        _extra: HashMap::new(),
    }
}

/// `now + lifetime`, whole seconds (TUF's timestamps have no fraction).
pub(crate) fn expiry(now: jiff::Timestamp, lifetime: jiff::SignedDuration) -> jiff::Timestamp {
    let t = now.checked_add(lifetime).unwrap_or(jiff::Timestamp::MAX);
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn create_private_dir(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| KeyError::Dir {
            path: path.to_path_buf(),
            source,
        })
}
