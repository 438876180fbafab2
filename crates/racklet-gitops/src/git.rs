//! The Git source, with gitoxide (`gix`), never the `git` binary.
//!
//! Every fetched commit's objects are imported into a bare mirror in the data dir, so the
//! last applied revision and its history stay readable
//! when the source is rewritten or unreachable, and a force-push is recognised (the new
//! tip does not descend from the last applied one). Sources: a local path or `file://`
//! URL (opened directly: gix would otherwise spawn `git upload-pack`), or an `https://`
//! URL (smart HTTP, rustls; an extra CA may be given; plain `http://` is refused).
//!
//! With a signature policy, a revision is applied only when its commit carries an SSH
//! signature (`gpgsig`, namespace `git`) by one of the listed Ed25519 keys.

use std::path::{Path, PathBuf};

use gix::objs::Kind;
use gix::ObjectId;

/// What to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Branch(String),
    Tag(String),
}

impl Reference {
    pub fn full_name(&self) -> String {
        match self {
            Reference::Branch(b) => format!("refs/heads/{b}"),
            Reference::Tag(t) => format!("refs/tags/{t}"),
        }
    }
}

/// Where desired state comes from.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// A local path, a `file://` URL or an `https://` URL.
    pub url: String,
    pub reference: Reference,
    /// Directory inside the repository holding the manifests ("" for the root).
    pub path: String,
    /// When set, only commits signed by one of these keys (OpenSSH public key lines) apply.
    pub signers: Option<Vec<String>>,
    /// Extra CA certificates (PEM) trusted for an `https://` source.
    pub ca_pem: Option<Vec<u8>>,
}

/// Why a source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open the Git repository at {url}: {reason}; check the path or URL")]
    Unreachable { url: String, reason: String },
    #[error("{reference} does not exist in {url}")]
    NoSuchReference { url: String, reference: String },
    #[error("{0:?} is not a supported source: give a local path, a file:// URL or an https:// URL (plain http:// is refused)")]
    UnsupportedUrl(String),
    #[error("the path {path:?} is not a directory in commit {commit}")]
    NoSuchPath { commit: String, path: String },
    #[error("commit {commit} is not signed; the signature policy allows only commits signed by a listed key")]
    Unsigned { commit: String },
    #[error("commit {commit} is signed, but {reason}")]
    BadSignature { commit: String, reason: String },
    #[error("the signature policy lists an unusable key {key:?}: {reason}")]
    BadPolicyKey { key: String, reason: String },
    #[error("the mirror in {path} failed: {reason}; move it away to fetch afresh")]
    Mirror { path: PathBuf, reason: String },
}

/// One fetched revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub commit: String,
    /// One line: the commit's subject.
    pub subject: String,
    /// Manifest files under the source's path: (path relative to it, bytes), sorted.
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

/// A source and its mirror.
pub struct GitSource {
    spec: SourceSpec,
    mirror_dir: PathBuf,
    signers: Vec<ssh_key::PublicKey>,
}

fn mirror_err(path: &Path) -> impl Fn(gix::Error) -> SourceError + '_ {
    move |e| SourceError::Mirror {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

pub(crate) fn options() -> gix::open::Options {
    // Only the repository's own configuration: no user or system config, no credential
    // helpers, and never the git binary.
    gix::open::Options::isolated()
        .config_overrides(["user.name=racklet", "user.email=racklet@localhost"])
}

impl GitSource {
    pub fn new(spec: SourceSpec, mirror_dir: &Path) -> Result<GitSource, SourceError> {
        let mut signers = Vec::new();
        for line in spec.signers.iter().flatten() {
            let key = ssh_key::PublicKey::from_openssh(line.trim()).map_err(|e| {
                SourceError::BadPolicyKey {
                    key: line.clone(),
                    reason: e.to_string(),
                }
            })?;
            signers.push(key);
        }
        Ok(GitSource {
            spec,
            mirror_dir: mirror_dir.to_path_buf(),
            signers,
        })
    }

    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    fn open_source(&self) -> Result<gix::Repository, SourceError> {
        let url = &self.spec.url;
        let path = if let Some(p) = url.strip_prefix("file://") {
            p
        } else if url.contains("://") {
            return Err(SourceError::UnsupportedUrl(url.clone()));
        } else {
            url.as_str()
        };
        gix::open_opts(path, options()).map_err(|e| SourceError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })
    }

    fn mirror(&self) -> Result<gix::Repository, SourceError> {
        let dir = &self.mirror_dir;
        if dir.join("HEAD").exists() {
            return gix::open_opts(dir, options()).map_err(|e| SourceError::Mirror {
                path: dir.clone(),
                reason: e.to_string(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| SourceError::Mirror {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        gix::ThreadSafeRepository::init_opts(
            dir,
            gix::create::Kind::Bare,
            gix::create::Options::default(),
            options(),
        )
        .map(|r| r.to_thread_local())
        .map_err(|e| SourceError::Mirror {
            path: dir.clone(),
            reason: e.to_string(),
        })
    }

    /// Fetches the reference's tip into the mirror; returns its commit id. Blocking.
    pub fn fetch(&self) -> Result<String, SourceError> {
        if self.spec.url.starts_with("https://") {
            let mirror = self.mirror()?;
            return self.fetch_https(&mirror).map(|id| id.to_string());
        }
        let source = self.open_source()?;
        let name = self.spec.reference.full_name();
        let tip = source
            .find_reference(name.as_str())
            .ok()
            .and_then(|mut r| r.peel_to_commit().ok())
            .map(|c| c.id)
            .ok_or_else(|| SourceError::NoSuchReference {
                url: self.spec.url.clone(),
                reference: name.clone(),
            })?;
        let mirror = self.mirror()?;
        import_closure(&source, &mirror, tip).map_err(mirror_err(&self.mirror_dir))?;
        Ok(tip.to_string())
    }

    /// Fetches over smart HTTP into `refs/racklet/...` of the mirror (forced, so that a
    /// rewritten history arrives and is recognised by [`GitSource::descends`]).
    fn fetch_https(&self, mirror: &gix::Repository) -> Result<ObjectId, SourceError> {
        use gix::protocol::transport::client::blocking_io::http;
        use gix::remote::Direction;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = self.spec.url.clone();
        let unreachable = |e: &dyn std::fmt::Display| SourceError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        let (refspec, local) = match &self.spec.reference {
            Reference::Branch(b) => (
                format!("+refs/heads/{b}:refs/racklet/heads/{b}"),
                format!("refs/racklet/heads/{b}"),
            ),
            Reference::Tag(t) => (
                format!("+refs/tags/{t}:refs/racklet/tags/{t}"),
                format!("refs/racklet/tags/{t}"),
            ),
        };
        let remote = mirror
            .remote_at(url.as_str())
            .map_err(|e| unreachable(&e))?
            .with_fetch_tags(gix::remote::fetch::Tags::None)
            .with_refspecs([refspec.as_str()], Direction::Fetch)
            .map_err(|e| unreachable(&e))?;
        let mut conn = remote
            .connect(Direction::Fetch)
            .map_err(|e| unreachable(&e))?;
        if let Some(pem) = &self.spec.ca_pem {
            let certs = reqwest_blocking::Certificate::from_pem_bundle(pem)
                .map_err(|e| unreachable(&format!("the source's CA is not usable PEM: {e}")))?;
            let backend = http::reqwest::Options {
                configure_client: Some(Box::new(move |b| Ok(b.tls_certs_merge(certs.clone())))),
                configure_request: None,
            };
            let options = http::Options {
                backend: Some(std::sync::Arc::new(std::sync::Mutex::new(backend))),
                ..http::Options::default()
            };
            conn = conn.with_transport_options(Box::new(options));
        }
        let interrupt = std::sync::atomic::AtomicBool::new(false);
        conn.prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| unreachable(&e))?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| unreachable(&e))?;
        let id = mirror
            .find_reference(local.as_str())
            .ok()
            .and_then(|mut r| r.peel_to_commit().ok())
            .map(|c| c.id)
            .ok_or_else(|| SourceError::NoSuchReference {
                url: url.clone(),
                reference: self.spec.reference.full_name(),
            })?;
        Ok(id)
    }

    /// True when `new` descends from `old` (a fast-forward); false after a force-push.
    pub fn descends(&self, new: &str, old: &str) -> Result<bool, SourceError> {
        if new == old {
            return Ok(true);
        }
        let mirror = self.mirror()?;
        let (Ok(new), Ok(old)) = (
            ObjectId::from_hex(new.as_bytes()),
            ObjectId::from_hex(old.as_bytes()),
        ) else {
            return Ok(false);
        };
        if !mirror.has_object(old) {
            return Ok(false);
        }
        let commit = mirror
            .find_commit(new)
            .map_err(|e| mirror_err(&self.mirror_dir)(e))?;
        let walk = commit
            .ancestors()
            .all()
            .map_err(|e| mirror_err(&self.mirror_dir)(e))?;
        for info in walk {
            let info = info.map_err(|e| mirror_err(&self.mirror_dir)(e))?;
            if info.id == old {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads a fetched commit from the mirror: checks the source's signature policy, then
    /// collects the files under the source's path. Blocking.
    pub fn read(&self, commit: &str) -> Result<Revision, SourceError> {
        self.read_with_policy(commit, &[])
    }

    /// Like [`GitSource::read`]; when the source itself lists no signers, `rack_signers`
    /// (from the applied revision's `Rack`) are the policy: changing who may sign takes a
    /// commit signed by someone already trusted.
    pub fn read_with_policy(
        &self,
        commit: &str,
        rack_signers: &[String],
    ) -> Result<Revision, SourceError> {
        let keys: Option<Vec<ssh_key::PublicKey>> = if self.spec.signers.is_some() {
            Some(self.signers.clone())
        } else if !rack_signers.is_empty() {
            let mut keys = Vec::new();
            for line in rack_signers {
                keys.push(ssh_key::PublicKey::from_openssh(line.trim()).map_err(|e| {
                    SourceError::BadPolicyKey {
                        key: line.clone(),
                        reason: e.to_string(),
                    }
                })?);
            }
            Some(keys)
        } else {
            None
        };
        let mirror = self.mirror()?;
        let err = mirror_err(&self.mirror_dir);
        let id = ObjectId::from_hex(commit.as_bytes()).map_err(|e| SourceError::Mirror {
            path: self.mirror_dir.clone(),
            reason: e.to_string(),
        })?;
        let c = mirror.find_commit(id).map_err(&err)?;
        if let Some(keys) = &keys {
            verify(&c, commit, keys)?;
        }
        let subject = c
            .message()
            .map(|m| m.summary().to_string())
            .unwrap_or_default();
        let root = c.tree().map_err(&err)?;
        let sub = self.spec.path.trim_matches('/');
        let tree = if sub.is_empty() || sub == "." {
            root
        } else {
            let entry = root
                .lookup_entry_by_path(sub)
                .map_err(&err)?
                .filter(|e| e.mode().is_tree())
                .ok_or_else(|| SourceError::NoSuchPath {
                    commit: commit.to_string(),
                    path: sub.to_string(),
                })?;
            mirror.find_tree(entry.object_id()).map_err(&err)?
        };
        let files = crate::local::blobs(&mirror, &tree).map_err(&err)?;
        Ok(Revision {
            commit: commit.to_string(),
            subject,
            files,
        })
    }
}

/// Checks that commit `c` carries an SSH signature (namespace `git`) by one of `keys`.
fn verify(
    c: &gix::Commit<'_>,
    commit: &str,
    keys: &[ssh_key::PublicKey],
) -> Result<(), SourceError> {
    {
        let bad = |reason: String| SourceError::BadSignature {
            commit: commit.to_string(),
            reason,
        };
        let signature = c.signature().map_err(|e| bad(e.to_string()))?;
        let Some((armored, signed)) = signature else {
            return Err(SourceError::Unsigned {
                commit: commit.to_string(),
            });
        };
        let armored: &[u8] = armored.as_ref();
        let sig = ssh_key::SshSig::from_pem(armored)
            .map_err(|e| bad(format!("its signature is not an SSH signature ({e})")))?;
        let payload = signed.to_bstring();
        if keys
            .iter()
            .any(|k| k.verify("git", payload.as_ref(), &sig).is_ok())
        {
            return Ok(());
        }
        Err(bad(format!(
            "not by a key the signature policy lists (signed by {})",
            sig.public_key().fingerprint(Default::default())
        )))
    }
}

/// Copies everything reachable from `tip` that `dst` lacks, children before parents, so
/// an object present in `dst` always has its whole closure (safe after a crash).
fn import_closure(
    src: &gix::Repository,
    dst: &gix::Repository,
    tip: ObjectId,
) -> Result<(), gix::Error> {
    use gix::objs::Write as _;
    enum Step {
        Visit(ObjectId),
        Write(Kind, Vec<u8>),
    }
    let hash = src.object_hash();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![Step::Visit(tip)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Write(kind, data) => {
                dst.objects.write_buf(kind, &data)?;
            }
            Step::Visit(id) => {
                if !seen.insert(id) || dst.has_object(id) {
                    continue;
                }
                let obj = src.find_object(id)?.detach();
                let mut children = Vec::new();
                match obj.kind {
                    Kind::Commit => {
                        let mut c = gix::objs::CommitRefIter::from_bytes(&obj.data, hash);
                        children.push(c.tree_id()?);
                        children.extend(
                            gix::objs::CommitRefIter::from_bytes(&obj.data, hash).parent_ids(),
                        );
                    }
                    Kind::Tree => {
                        for e in gix::objs::TreeRefIter::from_bytes(&obj.data, hash) {
                            let e = e?;
                            if !e.mode.is_commit() {
                                children.push(e.oid.to_owned());
                            }
                        }
                    }
                    Kind::Tag => children
                        .push(gix::objs::TagRefIter::from_bytes(&obj.data, hash).target_id()?),
                    Kind::Blob => {}
                }
                stack.push(Step::Write(obj.kind, obj.data));
                stack.extend(children.into_iter().map(Step::Visit));
            }
        }
    }
    Ok(())
}

pub use crate::local::commit_files;

/// The branch checked out in the repository at `dir` (e.g. `main`).
pub fn current_branch(dir: &Path) -> Result<String, SourceError> {
    let repo = gix::open_opts(dir, options()).map_err(|e| SourceError::Unreachable {
        url: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let head = repo.head_name().map_err(|e| SourceError::Unreachable {
        url: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    head.map(|n| n.shorten().to_string())
        .ok_or_else(|| SourceError::NoSuchReference {
            url: dir.display().to_string(),
            reference: "HEAD (detached)".into(),
        })
}
