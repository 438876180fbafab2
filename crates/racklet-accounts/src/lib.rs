//! Accounts (Administrator, Operator, ReadOnly) with argon2 password hashes and lock-out,
//! and sessions (a secret token, an idle timeout), shared by the Redfish service (its
//! X-Auth-Token) and the control plane (the dashboard's session cookie, with a CSRF token
//! derived from the session's). Accounts persist in the data dir; the first start creates
//! `admin` with a random password written once to a file only its owner can read.
//!
//! Checking a password costs one argon2 verification whether or not the user name exists
//! (unknown and disabled names are verified against a dummy hash), so refusals do not tell
//! which names exist. Verifications run off the async workers, a few at once
//! ([`Verifier`]), never while the store is locked, so a flood of bad credentials queues
//! only behind itself: requests with a session token do not wait for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Failed logins before an account locks.
pub const LOCKOUT_THRESHOLD: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_DURATION: Duration = Duration::from_secs(300);
/// Most user names (of no account) whose failed logins are counted at once; beyond it,
/// failures of further unknown names go uncounted until older counts expire. Accounts'
/// own counts are always kept.
pub const MAX_TRACKED_NAMES: usize = 4096;
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
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Write(#[from] racklet_files::WriteError),
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

impl Session {
    /// The token a browser page proves it may act for this session with (sent in a
    /// header on every change): derived from the session's secret token, which the page
    /// never sees (an `HttpOnly` cookie), and read by the page from an authenticated GET
    /// that a cross-site page cannot make.
    pub fn csrf_token(&self) -> String {
        use sha2_std::Digest;
        let mut h = sha2_std::Sha256::new();
        h.update(b"racklet csrf token\0");
        h.update(self.token.as_bytes());
        hex::encode(h.finalize())
    }
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
    /// An argon2 hash (same parameters as accounts' hashes) of a random password, checked
    /// against for names that are no (enabled) account, so that costs the same.
    dummy_hash: String,
    sessions: BTreeMap<String, Session>,
    next_session: u64,
}

/// A password check waiting for its argon2 verification, which runs without the store's
/// lock (see [`Accounts::begin_check`]).
pub struct PendingCheck {
    name: String,
    digest: [u8; 32],
    /// The hash to verify against: the account's, or the dummy one.
    hash: String,
    /// The version and role of the enabled account of that name, if there is one.
    account: Option<(u64, Role)>,
}

/// The first step of a password check.
pub enum CheckStep {
    /// Decided without argon2: the name is locked out, or the password was verified
    /// recently.
    Done(Result<Role, LoginError>),
    /// Verify the password (argon2: slow on purpose), then [`Accounts::finish_check`];
    /// [`Verifier::check`] does both.
    Verify(PendingCheck),
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

/// Whether `password` matches the PHC-format argon2 `hash`, computed in `memory` (grown as
/// the hash's parameters need, and kept by the caller for the next verification).
fn verify(password: &str, hash: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(h.algorithm) else {
        return false;
    };
    let Ok(version) = h.version.map(Version::try_from).transpose() else {
        return false;
    };
    let Ok(params) = Params::try_from(&h) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version.unwrap_or_default(), params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_ok()
        && constant_time_eq(&out, expected.as_bytes())
}

fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), AccountError> {
    Ok(racklet_files::write_secret(path, bytes)?)
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
            dummy_hash: hash_password(&random_text(16))?,
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

    /// Starts checking a user name and password: refuses a locked-out name, accepts a
    /// password verified recently, and otherwise takes out what the argon2 verification
    /// needs (the dummy hash for a name that is no enabled account).
    pub fn begin_check(&mut self, name: &str, password: &str) -> CheckStep {
        if self.is_locked(name) {
            return CheckStep::Done(Err(LoginError::Locked));
        }
        let digest = self.digest(password);
        let account = self.stored.accounts.get(name).filter(|a| a.enabled);
        if let Some(a) = account {
            let remembered = self.verified.get(name).is_some_and(|(version, d, at)| {
                *version == a.version && constant_time_eq(d, &digest) && at.elapsed() < VERIFIED_FOR
            });
            if remembered {
                let (role, version) = (a.role, a.version);
                self.verified
                    .insert(name.to_string(), (version, digest, Instant::now()));
                self.locks.remove(name);
                return CheckStep::Done(Ok(role));
            }
        }
        CheckStep::Verify(PendingCheck {
            name: name.to_string(),
            digest,
            hash: account.map_or_else(|| self.dummy_hash.clone(), |a| a.hash.clone()),
            account: account.map(|a| (a.version, a.role)),
        })
    }

    /// Ends a check with the outcome of its verification, counting a failure toward
    /// lock-out. A name locked out meanwhile (by checks that ran alongside) is refused
    /// even with the right password, and so is an account changed meanwhile.
    pub fn finish_check(
        &mut self,
        pending: PendingCheck,
        verified: bool,
    ) -> Result<Role, LoginError> {
        let name = pending.name.as_str();
        if self.is_locked(name) {
            return Err(LoginError::Locked);
        }
        let current = self
            .stored
            .accounts
            .get(name)
            .filter(|a| a.enabled)
            .map(|a| (a.version, a.role));
        match pending.account {
            Some((version, role)) if verified && current == pending.account => {
                self.verified
                    .insert(name.to_string(), (version, pending.digest, Instant::now()));
                self.locks.remove(name);
                Ok(role)
            }
            _ => {
                self.record_failure(name);
                Err(LoginError::BadCredentials)
            }
        }
    }

    fn record_failure(&mut self, name: &str) {
        let untracked = !self.stored.accounts.contains_key(name) && !self.locks.contains_key(name);
        if untracked && self.locks.len() >= MAX_TRACKED_NAMES {
            // Forget counts of unknown names that are not locked out right now.
            let now = Instant::now();
            let accounts = &self.stored.accounts;
            self.locks
                .retain(|n, l| accounts.contains_key(n) || l.until.is_some_and(|u| now < u));
            if self.locks.len() >= MAX_TRACKED_NAMES {
                return;
            }
        }
        let lock = self.locks.entry(name.to_string()).or_insert(Lock {
            failures: 0,
            until: None,
        });
        lock.failures += 1;
        if lock.failures >= LOCKOUT_THRESHOLD {
            lock.until = Some(Instant::now() + LOCKOUT_DURATION);
            lock.failures = 0;
        }
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        use sha2_std::Digest;
        let mut h = sha2_std::Sha256::new();
        h.update(self.cache_key);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Adds an account; `hash` comes from [`Verifier::hash`] (made before taking the lock).
    pub fn create(&mut self, name: &str, hash: String, role: Role) -> Result<(), AccountError> {
        self.stored.accounts.insert(
            name.into(),
            Account {
                name: name.into(),
                role,
                hash,
                enabled: true,
                version: 1,
            },
        );
        self.save()
    }

    /// Changes an account; a new password comes as its `hash` from [`Verifier::hash`].
    pub fn update(
        &mut self,
        name: &str,
        hash: Option<String>,
        role: Option<Role>,
        enabled: Option<bool>,
    ) -> Result<bool, AccountError> {
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
        // Open sessions act with the account as it is now: a new role at once, none when
        // the account is disabled.
        let (role, enabled) = (a.role, a.enabled);
        self.sessions.retain(|_, s| s.user != name || enabled);
        for s in self.sessions.values_mut().filter(|s| s.user == name) {
            s.role = role;
        }
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

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs password checks' argon2 verifications on the blocking pool, at most a few at once
/// (half the cores, at least one), so that a flood of bad credentials neither blocks the
/// async workers nor takes every core. Waiting checks queue in arrival order. Each running
/// verification borrows its working memory (19 MiB with the default parameters) from a
/// pool of at most one per permit, so a flood of checks reuses it; the last check to end
/// frees it, so an idle service does not hold it (a small RMC's memory). The binaries fix
/// glibc's mmap threshold, so that freed memory goes back to the kernel.
pub struct Verifier {
    gate: Arc<Semaphore>,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Checks asked for and not yet ended (waiting for a permit or running).
    in_flight: Arc<AtomicUsize>,
}

/// One check counted in [`Verifier::in_flight`] until it is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(count))
    }

    /// Whether another check is waiting or running besides this one.
    fn others(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 1
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Verifier {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Verifier::new((cores / 2).max(1))
    }
}

impl Verifier {
    /// A verifier running at most `permits` verifications at once.
    pub fn new(permits: usize) -> Self {
        Verifier {
            gate: Arc::new(Semaphore::new(permits.max(1))),
            memory: Arc::new(Mutex::new(Vec::new())),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hashes a new password, off the async workers and behind the same gate as
    /// verifications, so that changing passwords cannot starve the service either.
    pub async fn hash(&self, password: &str) -> Result<String, AccountError> {
        let failed = |e: String| AccountError::Hash(e);
        // The semaphore is never closed.
        let permit = self
            .gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || {
            let hash = hash_password(&password);
            drop(permit);
            hash
        })
        .await
        .map_err(|e| failed(e.to_string()))?
    }

    /// Checks a user name and password against `accounts`, locking the store only to take
    /// out what the verification needs and to record its outcome.
    pub async fn check(
        &self,
        accounts: &Mutex<Accounts>,
        name: &str,
        password: &str,
    ) -> Result<Role, LoginError> {
        let lock = || accounts.lock().unwrap_or_else(|p| p.into_inner());
        let step = lock().begin_check(name, password);
        let pending = match step {
            CheckStep::Done(outcome) => return outcome,
            CheckStep::Verify(pending) => pending,
        };
        let in_flight = InFlight::new(&self.in_flight);
        // The semaphore is never closed.
        let Ok(permit) = self.gate.clone().acquire_owned().await else {
            return Err(LoginError::BadCredentials);
        };
        let password = password.to_string();
        let pool = self.memory.clone();
        // The permit goes with the work: a verification whose caller gave up still holds
        // it (and its memory) until it ends.
        let (pending, verified) = tokio::task::spawn_blocking(move || {
            let take = || pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut memory = take().unwrap_or_default();
            let verified = verify(&password, &pending.hash, &mut memory);
            let mut kept = pool.lock().unwrap_or_else(|p| p.into_inner());
            if in_flight.others() {
                kept.push(memory);
            } else {
                kept.clear(); // the last one out frees the working memory
                drop(memory);
            }
            drop(kept);
            drop(permit);
            drop(in_flight);
            (pending, verified)
        })
        .await
        .map_err(|_| LoginError::BadCredentials)?;
        lock().finish_check(pending, verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[test]
    fn verification_in_reused_memory_agrees_with_argon2s_own() {
        let hash = hash_password("correct horse").expect("hash");
        let parsed = PasswordHash::new(&hash).expect("parse");
        let mut memory = Vec::new();
        for (password, right) in [
            ("correct horse", true),
            ("wrong horse", false),
            ("correct horse", true),
        ] {
            assert_eq!(verify(password, &hash, &mut memory), right, "{password}");
            let theirs = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            assert_eq!(theirs, right);
        }
        assert!(!verify("x", "not a hash", &mut memory));
    }

    #[test]
    fn open_sessions_take_an_accounts_new_role_and_end_when_it_is_disabled() {
        let dir = std::env::temp_dir().join(format!("racklet-update-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut accounts, _) = Accounts::open(&dir).expect("accounts");
        accounts
            .create(
                "ops",
                hash_password("a long password").expect("hash"),
                Role::Operator,
            )
            .expect("create");
        let s = accounts.open_session("ops", Role::Operator);
        accounts
            .update("ops", None, Some(Role::ReadOnly), None)
            .expect("update");
        let now = accounts.session_by_token(&s.token).expect("still open");
        assert_eq!(now.role, Role::ReadOnly, "demoted at once");
        accounts
            .update("ops", None, None, Some(false))
            .expect("disable");
        assert!(
            accounts.session_by_token(&s.token).is_none(),
            "a disabled account's session ends"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_sessions_csrf_token_is_its_own_and_reveals_nothing_of_its_secret() {
        let dir = std::env::temp_dir().join(format!("racklet-csrf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut accounts, _) = Accounts::open(&dir).expect("accounts");
        let a = accounts.open_session("admin", Role::Administrator);
        let b = accounts.open_session("admin", Role::Administrator);
        assert_eq!(a.csrf_token(), a.csrf_token(), "stable for a session");
        assert_ne!(a.csrf_token(), b.csrf_token(), "one per session");
        assert!(!a.csrf_token().contains(&a.token), "not the secret itself");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_verifier_holds_no_argon2_working_memory() {
        let dir = std::env::temp_dir().join(format!("racklet-verifier-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (accounts, password_file) = Accounts::open(&dir).expect("accounts");
        let password = std::fs::read_to_string(password_file.expect("first start"))
            .expect("password")
            .trim()
            .to_string();
        let accounts = Mutex::new(accounts);
        let verifier = Verifier::new(1);
        let pooled = || {
            verifier
                .memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
        };
        assert!(verifier.check(&accounts, "admin", &password).await.is_ok());
        assert_eq!(pooled(), 0, "the last check frees its working memory");
        // Checks that queue behind each other: the last one to end frees it too.
        let (a, b, c) = tokio::join!(
            verifier.check(&accounts, "admin", &password),
            verifier.check(&accounts, "admin", &password),
            verifier.check(&accounts, "admin", &password),
        );
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(pooled(), 0);
        assert_eq!(verifier.in_flight.load(Ordering::SeqCst), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
