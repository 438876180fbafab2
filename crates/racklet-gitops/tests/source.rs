//! The Git source's faults: an unreachable repository, rewritten history, and the commit
//! signature policy. The control plane runs without chassis here: only what it adopts
//! (and refuses) is under test.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use racklet_gitops::git::{commit_files, current_branch, Reference, SourceSpec};
use racklet_gitops::store::RedbStore;
use racklet_gitops::ControlPlane;

mod common;
use common::{branch_source, examples, plane_without_chassis};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("racklet-src-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn plane(
    dir: &Path,
    repo: &Path,
    signers: Option<Vec<String>>,
) -> Arc<ControlPlane<RedbStore>> {
    let branch = Reference::Branch(current_branch(repo).expect("branch"));
    plane_following(dir, repo, branch, signers).await
}

async fn plane_following(
    dir: &Path,
    repo: &Path,
    reference: Reference,
    signers: Option<Vec<String>>,
) -> Arc<ControlPlane<RedbStore>> {
    let source = SourceSpec {
        reference,
        signers,
        ..branch_source(repo)
    };
    plane_without_chassis(dir, source).await
}

#[tokio::test]
async fn an_unreachable_source_keeps_the_last_good_revision_and_recovers() {
    let dir = scratch("unreachable");
    let repo = dir.join("repo");
    let first = commit_files(&repo, &examples(), "seed").expect("seed");
    let p = plane(&dir, &repo, None).await;
    p.sync().await.expect("sync");
    assert_eq!(
        p.source_status().await.expect("status").applied.as_deref(),
        Some(first.as_str())
    );

    let moved = dir.join("elsewhere");
    std::fs::rename(&repo, &moved).expect("move the repository away");
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!((s.ready, s.reason.as_str()), (false, "Unreachable"));
    assert_eq!(
        s.applied.as_deref(),
        Some(first.as_str()),
        "last good stays"
    );
    assert!(s.message.contains("cannot open"), "{}", s.message);

    std::fs::rename(&moved, &repo).expect("and back");
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!((s.ready, s.reason.as_str()), (true, "Applied"));
    let events = p.events().since(0).await.expect("events");
    assert!(
        events.iter().any(|e| e.message.contains("Unreachable")),
        "{events:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn rewritten_history_is_recognised_and_applied() {
    let dir = scratch("forcepush");
    let repo = dir.join("repo");
    commit_files(&repo, &examples(), "seed").expect("seed");
    let p = plane(&dir, &repo, None).await;
    p.sync().await.expect("sync");
    // A force-push: the branch now starts from a fresh repository with another history.
    std::fs::remove_dir_all(&repo).expect("wipe");
    let mut files = examples();
    files.push(("rack/README.md".into(), b"rewritten\n".to_vec()));
    let rewritten = commit_files(&repo, &files, "rewritten history").expect("commit");
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!(s.applied.as_deref(), Some(rewritten.as_str()));
    let events = p.events().since(0).await.expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.message.starts_with("history rewritten")),
        "{events:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Points tag `name` at `commit`: lightweight, or annotated (a tag object to peel).
fn tag(repo: &Path, name: &str, commit: &str, annotated: bool) {
    let r = gix::open(repo).expect("open");
    let id = gix::ObjectId::from_hex(commit.as_bytes()).expect("commit id");
    let any = gix::refs::transaction::PreviousValue::Any;
    if annotated {
        r.tag(name, id, gix::objs::Kind::Commit, None, "release", any)
            .expect("annotated tag");
    } else {
        r.tag_reference(name, id, any).expect("tag");
    }
}

#[tokio::test]
async fn a_tag_source_follows_the_tag_and_not_the_branch() {
    let dir = scratch("tag");
    let repo = dir.join("repo");
    let released = commit_files(&repo, &examples(), "seed").expect("seed");
    tag(&repo, "production", &released, false);
    let p = plane_following(&dir, &repo, Reference::Tag("production".into()), None).await;
    p.sync().await.expect("sync");
    let applied = |s: racklet_gitops::SourceStatus| s.applied.unwrap_or_default();
    assert_eq!(applied(p.source_status().await.expect("status")), released);

    // Work on the branch is not released until the tag moves.
    let mut files = examples();
    files.push(("rack/README.md".into(), b"next release\n".to_vec()));
    let next = commit_files(&repo, &files, "next").expect("commit");
    p.sync().await.expect("sync");
    assert_eq!(applied(p.source_status().await.expect("status")), released);

    // Moving the tag (annotated this time) releases it.
    tag(&repo, "production", &next, true);
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!((s.ready, applied(s)), (true, next));

    // A tag that does not exist is reported as such.
    let q = plane_following(
        &dir.join("other"),
        &repo,
        Reference::Tag("nope".into()),
        None,
    )
    .await;
    q.sync().await.expect("sync");
    let s = q.source_status().await.expect("status");
    assert!(!s.ready && s.message.contains("refs/tags/nope"), "{s:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a commit signed with `key` (SSH signature, namespace `git`) on top of HEAD.
fn signed_commit(
    repo_dir: &Path,
    files: &[(String, Vec<u8>)],
    message: &str,
    key: &ssh_key::PrivateKey,
) -> String {
    let repo = gix::open_opts(
        repo_dir,
        gix::open::Options::isolated()
            .config_overrides(["user.name=racklet", "user.email=racklet@localhost"]),
    )
    .expect("open");
    let parent = repo.head().expect("head").id().map(|id| id.detach());
    let mut editor = repo
        .edit_tree(repo.head_tree_id_or_empty().expect("tree"))
        .expect("editor");
    for (path, bytes) in files {
        let blob = repo.write_blob(bytes).expect("blob").detach();
        editor
            .upsert(path.as_str(), gix::object::tree::EntryKind::Blob, blob)
            .expect("upsert");
    }
    let tree = editor.write().expect("tree").detach();
    let who = gix::actor::Signature {
        name: "racklet".into(),
        email: "racklet@localhost".into(),
        time: gix::date::Time::new(1_795_000_000, 0),
    };
    let mut commit = gix::objs::Commit {
        tree,
        parents: parent.into_iter().collect(),
        author: who.clone(),
        committer: who,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    let mut payload = Vec::new();
    gix::objs::WriteTo::write_to(&commit, &mut payload).expect("serialise");
    let sig = key
        .sign("git", ssh_key::HashAlg::Sha512, &payload)
        .expect("sign");
    let armored = sig.to_pem(ssh_key::LineEnding::LF).expect("pem");
    commit.extra_headers.push(("gpgsig".into(), armored.into()));
    let id = repo.write_object(&commit).expect("write").detach();
    let head = repo.head_name().expect("head").expect("branch");
    repo.reference(
        head.as_bstr(),
        id,
        gix::refs::transaction::PreviousValue::Any,
        "signed commit",
    )
    .expect("move branch");
    id.to_string()
}

#[tokio::test]
async fn the_signature_policy_applies_only_commits_signed_by_listed_keys() {
    let dir = scratch("signed");
    let repo = dir.join("repo");
    commit_files(
        &repo,
        &[("README.md".into(), b"rack\n".to_vec())],
        "unsigned start",
    )
    .expect("init");
    let ops = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[7; 32]));
    let mallory = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[9; 32]));
    let listed = ops.public_key().to_openssh().expect("openssh");
    let good = signed_commit(&repo, &examples(), "signed by ops", &ops);
    let p = plane(&dir, &repo, Some(vec![listed])).await;
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!(
        (s.applied.as_deref(), s.reason.as_str()),
        (Some(good.as_str()), "Applied")
    );

    // Signed by a key the policy does not list: refused, the good one stays.
    let mut files = examples();
    files.push(("rack/note.md".into(), b"x\n".to_vec()));
    let bad = signed_commit(&repo, &files, "signed by mallory", &mallory);
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!((s.reason.as_str(), s.ready), ("SignatureRefused", false));
    assert_eq!(s.applied.as_deref(), Some(good.as_str()));
    assert!(
        s.message.contains(&bad) && s.message.contains("not by a key"),
        "{}",
        s.message
    );

    // Not signed at all: refused too.
    let unsigned = commit_files(&repo, &examples(), "unsigned").expect("commit");
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!(s.reason, "SignatureRefused");
    assert!(
        s.message.contains(&unsigned) && s.message.contains("not signed"),
        "{}",
        s.message
    );
    assert_eq!(s.applied.as_deref(), Some(good.as_str()));

    // A later commit signed by a listed key applies again.
    let next = signed_commit(&repo, &examples(), "signed again by ops", &ops);
    p.sync().await.expect("sync");
    assert_eq!(
        p.source_status().await.expect("status").applied.as_deref(),
        Some(next.as_str())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_rack_that_lists_commit_signers_refuses_later_unsigned_commits() {
    let dir = scratch("rack-signers");
    let repo = dir.join("repo");
    let ops = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[11; 32]));
    let line = ops.public_key().to_openssh().expect("openssh");
    // The rack says who signs from now on.
    let with_signers: Vec<(String, Vec<u8>)> = examples()
        .into_iter()
        .map(|(p, b)| {
            let text = String::from_utf8_lossy(&b).replace(
                "  standard: 10in\n",
                &format!("  standard: 10in\n  commitSigners:\n    - \"{line}\"\n"),
            );
            (p, text.into_bytes())
        })
        .collect();
    let first = commit_files(&repo, &with_signers, "require signed commits").expect("seed");
    let p = plane(&dir, &repo, None).await;
    p.sync().await.expect("sync");
    assert_eq!(
        p.source_status().await.expect("status").applied.as_deref(),
        Some(first.as_str())
    );

    let mut files = with_signers.clone();
    files.push(("rack/note.md".into(), b"unsigned\n".to_vec()));
    let unsigned = commit_files(&repo, &files, "unsigned change").expect("commit");
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!(s.reason, "SignatureRefused", "{s:?}");
    assert!(s.message.contains(&unsigned), "{}", s.message);
    assert_eq!(s.applied.as_deref(), Some(first.as_str()));

    let signed = signed_commit(&repo, &with_signers, "signed change", &ops);
    p.sync().await.expect("sync");
    let s = p.source_status().await.expect("status");
    assert_eq!(
        (s.reason.as_str(), s.applied.as_deref()),
        ("Applied", Some(signed.as_str()))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_commit_signer_that_is_not_an_openssh_key_is_reported_where_it_is_written() {
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = examples()
        .into_iter()
        .map(|(p, b)| {
            let text = String::from_utf8_lossy(&b).replace(
                "  standard: 10in\n",
                "  standard: 10in\n  commitSigners: [\"ssh-ed25519 not-base64\"]\n",
            );
            (
                std::path::PathBuf::from(p.trim_start_matches("rack/")),
                text.into_bytes(),
            )
        })
        .collect();
    let errors = racklet_gitops::desired::desired_from(&files).expect_err("refused");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("rack.yaml:") && e.contains("not an OpenSSH public key")),
        "{errors:?}"
    );
}
