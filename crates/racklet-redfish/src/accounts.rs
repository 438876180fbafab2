//! Accounts (Administrator, Operator, ReadOnly) with argon2 password hashes and lock-out,
//! and sessions (X-Auth-Token, idle timeout). Accounts persist in the data dir; the first
//! start creates `admin` with a random password written once to a file only its owner
//! can read.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// Failed logins before an account locks.
pub const LOCKOUT_THRESHOLD: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_DURATION: Duration = Duration::from_secs(300);
/// Sessions end after this long without use.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(1800);

/// A Redfish role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    ReadOnly,
    Operator,
    Administrator,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ReadOnly" => Some(Role::ReadOnly),
            "Operator" => Some(Role::Operator),
            "Administrator" => Some(Role::Administrator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "ReadOnly",
            Role::Operator => "Operator",
            Role::Administrator => "Administrator",
        }
    }

    /// Redfish privileges of the role.
    pub fn privileges(self) -> &'static [&'static str] {
        match self {
            Role::ReadOnly => &["Login", "ConfigureSelf"],
            Role::Operator => &["Login", "ConfigureSelf", "ConfigureComponents"],
            Role::Administrator => &[
                "Login",
                "ConfigureSelf",
                "ConfigureComponents",
                "ConfigureManager",
                "ConfigureUsers",
            ],
        }
    }
}

/// One account as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
    pub hash: String,
    pub enabled: bool,
    /// Bumped on every change; the resource's ETag.
    pub version: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    accounts: BTreeMap<String, Account>,
}

/// Errors of the account store.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    BadCredentials,
    Locked,
}

struct Lock {
    failures: u32,
    until: Option<Instant>,
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub token: String,
    pub user: String,
    pub role: Role,
    last_used: Instant,
}

/// How long a verified Basic-auth credential is remembered (argon2 is slow on purpose;
/// tools that send Basic auth with every request would otherwise pay it each time).
pub const VERIFIED_FOR: Duration = Duration::from_secs(60);

/// Accounts and sessions.
pub struct Accounts {
    path: PathBuf,
    stored: Stored,
    locks: BTreeMap<String, Lock>,
    /// user -> (account version, keyed digest of the password, when verified)
    verified: BTreeMap<String, (u64, [u8; 32], Instant)>,
    cache_key: [u8; 32],
    sessions: BTreeMap<String, Session>,
    next_session: u64,
}

fn random_text(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), AccountError> {
    let io = |source| AccountError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Accounts {
    /// Opens (or creates) the account store in `dir`. On first start, returns the path of
    /// the file holding the new `admin` account's password.
    pub fn open(dir: &Path) -> Result<(Accounts, Option<PathBuf>), AccountError> {
        std::fs::create_dir_all(dir).map_err(|source| AccountError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("accounts.json");
        let mut first = None;
        let stored = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| AccountError::Corrupt {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let password = random_text(12);
                let mut s = Stored::default();
                s.accounts.insert(
                    "admin".into(),
                    Account {
                        name: "admin".into(),
                        role: Role::Administrator,
                        hash: hash_password(&password)?,
                        enabled: true,
                        version: 1,
                    },
                );
                let pw_path = dir.join("initial-admin-password");
                write_owner_only(&pw_path, format!("{password}\n").as_bytes())?;
                first = Some(pw_path);
                s
            }
            Err(source) => return Err(AccountError::Io { path, source }),
        };
        let mut cache_key = [0u8; 32];
        OsRng.fill_bytes(&mut cache_key);
        let accounts = Accounts {
            path,
            stored,
            locks: BTreeMap::new(),
            verified: BTreeMap::new(),
            cache_key,
            sessions: BTreeMap::new(),
            next_session: 1,
        };
        accounts.save()?;
        Ok((accounts, first))
    }

    fn save(&self) -> Result<(), AccountError> {
        let bytes =
            serde_json::to_vec_pretty(&self.stored).map_err(|source| AccountError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        write_owner_only(&self.path, &bytes)
    }

    pub fn list(&self) -> Vec<&Account> {
        self.stored.accounts.values().collect()
    }

    pub fn get(&self, name: &str) -> Option<&Account> {
        self.stored.accounts.get(name)
    }

    pub fn is_locked(&self, name: &str) -> bool {
        self.locks
            .get(name)
            .and_then(|l| l.until)
            .is_some_and(|u| Instant::now() < u)
    }

    /// Checks a user name and password, counting failures toward lock-out.
    pub fn check(&mut self, name: &str, password: &str) -> Result<Role, LoginError> {
        if self.is_locked(name) {
            return Err(LoginError::Locked);
        }
        let digest = self.digest(password);
        let account = self.stored.accounts.get(name).filter(|a| a.enabled);
        let remembered =
            account
                .zip(self.verified.get(name))
                .is_some_and(|(a, (version, d, at))| {
                    *version == a.version
                        && constant_time_eq(d, &digest)
                        && at.elapsed() < VERIFIED_FOR
                });
        let ok = account
            .filter(|a| remembered || verify(password, &a.hash))
            .map(|a| (a.role, a.version));
        let ok = ok.map(|(role, version)| {
            self.verified
                .insert(name.to_string(), (version, digest, Instant::now()));
            role
        });
        match ok {
            Some(role) => {
                self.locks.remove(name);
                Ok(role)
            }
            None => {
                let lock = self.locks.entry(name.to_string()).or_insert(Lock {
                    failures: 0,
                    until: None,
                });
                lock.failures += 1;
                if lock.failures >= LOCKOUT_THRESHOLD {
                    lock.until = Some(Instant::now() + LOCKOUT_DURATION);
                    lock.failures = 0;
                }
                Err(LoginError::BadCredentials)
            }
        }
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        use sha2_std::Digest;
        let mut h = sha2_std::Sha256::new();
        h.update(self.cache_key);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    pub fn create(&mut self, name: &str, password: &str, role: Role) -> Result<(), AccountError> {
        self.stored.accounts.insert(
            name.into(),
            Account {
                name: name.into(),
                role,
                hash: hash_password(password)?,
                enabled: true,
                version: 1,
            },
        );
        self.save()
    }

    pub fn update(
        &mut self,
        name: &str,
        password: Option<&str>,
        role: Option<Role>,
        enabled: Option<bool>,
    ) -> Result<bool, AccountError> {
        let hash = password.map(hash_password).transpose()?;
        self.verified.remove(name);
        let Some(a) = self.stored.accounts.get_mut(name) else {
            return Ok(false);
        };
        if let Some(h) = hash {
            a.hash = h;
        }
        if let Some(r) = role {
            a.role = r;
        }
        if let Some(e) = enabled {
            a.enabled = e;
        }
        a.version += 1;
        self.save()?;
        Ok(true)
    }

    pub fn delete(&mut self, name: &str) -> Result<bool, AccountError> {
        let removed = self.stored.accounts.remove(name).is_some();
        self.verified.remove(name);
        self.sessions.retain(|_, s| s.user != name);
        self.save()?;
        Ok(removed)
    }

    /// Starts a session for a checked user.
    pub fn open_session(&mut self, user: &str, role: Role) -> Session {
        let id = self.next_session.to_string();
        self.next_session += 1;
        let s = Session {
            id: id.clone(),
            token: random_text(24),
            user: user.into(),
            role,
            last_used: Instant::now(),
        };
        self.sessions.insert(id, s.clone());
        s
    }

    /// The live session holding `token` (touching it), after expiring idle ones.
    pub fn session_by_token(&mut self, token: &str) -> Option<Session> {
        let now = Instant::now();
        self.sessions
            .retain(|_, s| now.duration_since(s.last_used) < SESSION_TIMEOUT);
        let s = self
            .sessions
            .values_mut()
            .find(|s| constant_time_eq(s.token.as_bytes(), token.as_bytes()))?;
        s.last_used = now;
        Some(s.clone())
    }

    pub fn sessions(&self) -> Vec<&Session> {
        self.sessions.values().collect()
    }

    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    pub fn close_session(&mut self, id: &str) -> bool {
        self.sessions.remove(id).is_some()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
