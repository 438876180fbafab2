//! Changes to a local, non-bare repository: the files of its checked-out branch under a
//! path, and commits made with an author's name. This is how `racklet up` seeds its
//! repository and how the API commits what `apply` and `power on|off` ask for; the
//! control plane then picks the commit up like any other.

use std::path::{Path, PathBuf};

use crate::git::{options, SourceError};

/// Why a change was not committed; the repository and its working tree are unchanged.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Repository(#[from] SourceError),
    #[error("the branch of {repo} moved on (now at {now}) while the change was made; try again")]
    BranchMoved { repo: String, now: String },
    #[error("{path} in {repo} has changes that are not committed; commit or discard them first")]
    Uncommitted { repo: String, path: String },
    #[error("{path} is not a plain file path in {repo} (a symbolic link or `.git` on the way)")]
    UnsafePath { repo: String, path: String },
}

/// Who a commit is by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// The committer of every commit the control plane makes for someone else.
pub const COMMITTER: (&str, &str) = ("Racklet control plane", "controlplane@racklet.invalid");

fn unreachable(dir: &Path) -> impl Fn(gix::Error) -> SourceError + '_ {
    move |e| SourceError::Unreachable {
        url: dir.display().to_string(),
        reason: e.to_string(),
    }
}

/// Files by path, with their bytes.
pub type Files = Vec<(PathBuf, Vec<u8>)>;

/// The commit checked out at `dir` (None in an empty repository) and the files under
/// `sub` in it: (path relative to `sub`, bytes), sorted.
pub fn head_files(dir: &Path, sub: &str) -> Result<(Option<String>, Files), SourceError> {
    let err = unreachable(dir);
    let repo = gix::open_opts(dir, options()).map_err(&err)?;
    let Some(head) = repo.head().map_err(&err)?.id().map(|id| id.detach()) else {
        return Ok((None, Vec::new()));
    };
    let commit = repo.find_commit(head).map_err(&err)?;
    let root = commit.tree().map_err(&err)?;
    let sub = sub.trim_matches('/');
    let tree = if sub.is_empty() || sub == "." {
        root
    } else {
        match root
            .lookup_entry_by_path(sub)
            .map_err(&err)?
            .filter(|e| e.mode().is_tree())
        {
            Some(entry) => repo.find_tree(entry.object_id()).map_err(&err)?,
            None => return Ok((Some(head.to_string()), Vec::new())),
        }
    };
    Ok((Some(head.to_string()), blobs(&repo, &tree).map_err(&err)?))
}

/// Every file below `tree`: (path relative to it, bytes), sorted.
pub(crate) fn blobs(repo: &gix::Repository, tree: &gix::Tree<'_>) -> Result<Files, gix::Error> {
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse().breadthfirst(&mut recorder)?;
    let mut files = Vec::new();
    for e in recorder.records {
        if e.mode.is_blob() {
            let mut blob = repo.find_blob(e.oid)?;
            files.push((PathBuf::from(e.filepath.to_string()), blob.take_data()));
        }
    }
    files.sort();
    Ok(files)
}

/// Commits `files` (path relative to the repository root, bytes) on top of the branch
/// checked out in the non-bare repository at `dir`, creating the repository if needed.
/// For `racklet up`'s seed and tests. Returns the commit id.
pub fn commit_files(
    dir: &Path,
    files: &[(String, Vec<u8>)],
    message: &str,
) -> Result<String, SourceError> {
    let files: Vec<(String, Option<Vec<u8>>)> = files
        .iter()
        .map(|(p, b)| (p.clone(), Some(b.clone())))
        .collect();
    commit(dir, &files, message, None, None).map_err(|e| match e {
        CommitError::Repository(e) => e,
        other => SourceError::Unreachable {
            url: dir.display().to_string(),
            reason: other.to_string(),
        },
    })
}

/// Commits `files` (new bytes, or None to remove the file) by `author` (the control plane
/// is the committer), only if the branch
/// still points at `expected_head`: a commit that raced in between refuses this one
/// instead of being overwritten. A file the person working in the checkout has changed
/// (in the working tree or the index) is never overwritten: the change is refused.
pub fn commit_as(
    dir: &Path,
    files: &[(String, Option<Vec<u8>>)],
    message: &str,
    author: &Author,
    expected_head: Option<&str>,
) -> Result<String, CommitError> {
    commit(dir, files, message, Some(author), expected_head)
}

/// True when every component of `path` below `dir` is a plain name (no `.git`, `..` or
/// root) and nothing on the way is a symbolic link.
fn plain_path(dir: &Path, path: &str) -> bool {
    let mut at = dir.to_path_buf();
    for part in Path::new(path).components() {
        let std::path::Component::Normal(name) = part else {
            return false;
        };
        if name.to_string_lossy().eq_ignore_ascii_case(".git") {
            return false;
        }
        at.push(name);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return false;
        }
    }
    true
}

fn commit(
    dir: &Path,
    files: &[(String, Option<Vec<u8>>)],
    message: &str,
    author: Option<&Author>,
    expected_head: Option<&str>,
) -> Result<String, CommitError> {
    let err = unreachable(dir);
    let repo_name = || dir.display().to_string();
    let repo = if dir.join(".git").exists() {
        gix::open_opts(dir, options()).map_err(&err)?
    } else {
        std::fs::create_dir_all(dir).map_err(|e| SourceError::Unreachable {
            url: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        gix::ThreadSafeRepository::init_opts(
            dir,
            gix::create::Kind::WithWorktree,
            gix::create::Options::default(),
            options(),
        )
        .map(|r| r.to_thread_local())
        .map_err(&err)?
    };
    let parent = repo.head().map_err(&err)?.id().map(|id| id.detach());
    if let Some(expected) = expected_head {
        if parent.map(|p| p.to_string()).as_deref() != Some(expected) {
            return Err(CommitError::BranchMoved {
                repo: repo_name(),
                now: parent.map_or_else(|| "nothing".into(), |p| p.to_string()),
            });
        }
    }
    let base = repo.head_tree_id_or_empty().map_err(&err)?;
    let base_tree = repo.find_tree(base).map_err(&err)?;
    let index = repo.open_index().ok();
    for (path, bytes) in files {
        if !plain_path(dir, path) {
            return Err(CommitError::UnsafePath {
                repo: repo_name(),
                path: path.clone(),
            });
        }
        // What the branch has now; the working tree and the index must agree with it
        // (or already hold the new content), so that writing them loses nothing.
        let committed = base_tree
            .lookup_entry_by_path(path.as_str())
            .map_err(&err)?
            .map(|e| e.object_id());
        let committed_bytes = match committed {
            Some(id) => Some(repo.find_blob(id).map_err(&err)?.take_data()),
            None => None,
        };
        let on_disk = std::fs::read(dir.join(path)).ok();
        let disk_clean = on_disk.is_none() || on_disk == committed_bytes || on_disk == *bytes;
        let staged = index
            .as_ref()
            .and_then(|i| i.entry_by_path(path.as_str().into()))
            .map(|e| e.id);
        let index_clean = staged.is_none() || staged == committed;
        if !disk_clean || !index_clean {
            return Err(CommitError::Uncommitted {
                repo: repo_name(),
                path: path.clone(),
            });
        }
    }
    let mut editor = repo.edit_tree(base).map_err(&err)?;
    let mut blobs = Vec::new();
    for (path, bytes) in files {
        match bytes {
            Some(bytes) => {
                let blob = repo.write_blob(bytes).map_err(&err)?.detach();
                editor
                    .upsert(path.as_str(), gix::object::tree::EntryKind::Blob, blob)
                    .map_err(&err)?;
                blobs.push((path, Some(blob)));
            }
            None => {
                editor.remove(path.as_str()).map_err(&err)?;
                blobs.push((path, None));
            }
        }
    }
    let tree = editor.write().map_err(&err)?.detach();
    // HEAD moves only if it still is `parent` (gix compares and swaps).
    let id = match author {
        None => repo.commit("HEAD", message, tree, parent).map_err(&err)?,
        Some(author) => {
            let now = gix::date::Time::now_local_or_utc();
            let committer = gix::actor::Signature {
                name: COMMITTER.0.into(),
                email: COMMITTER.1.into(),
                time: now,
            };
            let by = gix::actor::Signature {
                name: author.name.as_str().into(),
                email: author.email.as_str().into(),
                time: now,
            };
            let (mut a, mut c) = (
                gix::date::parse::TimeBuf::default(),
                gix::date::parse::TimeBuf::default(),
            );
            repo.commit_as(
                committer.to_ref(&mut c),
                by.to_ref(&mut a),
                "HEAD",
                message,
                tree,
                parent,
            )
            .map_err(&err)?
        }
    }
    .detach();
    // The checkout follows the commit: the changed files, and their index entries only.
    for (path, bytes) in files {
        let on_disk = dir.join(path);
        match bytes {
            Some(bytes) => {
                if let Some(parent) = on_disk.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::write(&on_disk, bytes);
            }
            None => {
                let _ = std::fs::remove_file(&on_disk);
            }
        }
    }
    match index {
        Some(mut index) => {
            use gix::index::entry::{Flags, Mode, Stage, Stat};
            let removed: Vec<&String> = blobs
                .iter()
                .filter(|(_, b)| b.is_none())
                .map(|(p, _)| *p)
                .collect();
            if !removed.is_empty() {
                index.remove_entries(|_, path, _| {
                    removed.iter().any(|r| path == r.as_str().as_bytes())
                });
            }
            for (path, blob) in blobs {
                let Some(blob) = blob else { continue };
                let path: &gix::bstr::BStr = path.as_str().into();
                match index.entry_mut_by_path_and_stage(path, Stage::Unconflicted) {
                    // A zero stat makes git look at the file again instead of trusting it.
                    Some(entry) => {
                        entry.id = blob;
                        entry.stat = Stat::default();
                    }
                    None => {
                        index.dangerously_push_entry(
                            Stat::default(),
                            blob,
                            Flags::empty(),
                            Mode::FILE,
                            path,
                        );
                        index.sort_entries();
                    }
                }
            }
            index.write(Default::default()).map_err(err)?;
        }
        None => {
            let mut index = repo.index_from_tree(&tree).map_err(&err)?;
            index.write(Default::default()).map_err(err)?;
        }
    }
    Ok(id.to_string())
}
