//! Changes through the API are commits: `apply`, `delete` and `power` commit to the
//! repository the control plane follows, by the caller as author, and a change that does
//! not validate is refused whole with its positions, committing nothing. `apply` and
//! `delete` work on resources wherever they are declared, as kubectl's do.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use racklet_client::changes::{
    ApplyRequest, Author, DeleteRequest, ManifestFile, PowerRequest, ResourceRef,
};
use racklet_client::{Client, DesiredPower};
use racklet_gitops::git::commit_files;
use racklet_gitops::local::head_files;

mod common;
use common::{branch_source, examples, plane_without_chassis};

fn ada() -> Author {
    Author {
        name: "Ada Operator".into(),
        email: "ada@example.org".into(),
    }
}

fn head(repo: &std::path::Path) -> Option<String> {
    head_files(repo, "rack").expect("read").0
}

/// The author line of commit `id` in the repository at `repo`.
fn author_of(repo: &std::path::Path, id: &str) -> (String, String) {
    let r = gix::open(repo).expect("open");
    let c = r
        .find_commit(gix::ObjectId::from_hex(id.as_bytes()).expect("id"))
        .expect("commit");
    let a = c.author().expect("author");
    (a.name.to_string(), a.email.to_string())
}

/// The example rack's repository, a control plane without chassis on it, and a client
/// of its API.
async fn api_on_examples(name: &str) -> (std::path::PathBuf, std::path::PathBuf, Client) {
    let dir = std::env::temp_dir().join(format!("racklet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    commit_files(&repo, &examples(), "seed").expect("seed");
    let source = branch_source(&repo);
    let plane = plane_without_chassis(&dir, source).await;
    let api = racklet_gitops::api::serve(
        plane,
        &dir.join("controlplane"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("serve");
    let token = std::fs::read_to_string(&api.token_file).expect("token");
    let cp = Client::new(
        format!("https://{}", api.addr),
        token.trim().into(),
        std::fs::read(&api.cert_file).expect("cert"),
    )
    .expect("client");
    (dir, repo, cp)
}

#[tokio::test]
async fn changes_are_commits_by_the_caller_and_invalid_ones_commit_nothing() {
    let (dir, repo, cp) = api_on_examples("changes").await;
    let units =
        String::from_utf8(std::fs::read(repo.join("rack/compute-units.yaml")).expect("read"))
            .expect("UTF-8");
    let node6_on = units.replace(
        "tray: 6, board: rpi5, powerState: Off",
        "tray: 6, board: rpi5, powerState: On",
    );
    assert_ne!(node6_on, units);
    let seeded = head(&repo);

    // A dry run says what would change and commits nothing.
    let request = |content: &str, dry_run: bool| ApplyRequest {
        files: vec![ManifestFile {
            path: "compute-units.yaml".into(),
            content: content.into(),
        }],
        message: Some("Turn node-6 on".into()),
        author: ada(),
        dry_run,
        prune: false,
    };
    let diff = cp.apply(&request(&node6_on, true)).await.expect("dry run");
    assert_eq!(
        diff.changes,
        vec!["~ ComputeUnit/node-6: spec.powerState: Off -> On"]
    );
    assert_eq!((diff.commit, head(&repo)), (None, seeded.clone()));

    // An invalid file is refused with its position; the branch does not move.
    let bad = units.replace("tray: 5, board: rpi5", "tray: 9, board: rpi5");
    let e = cp.apply(&request(&bad, false)).await.expect_err("invalid");
    let text = e.to_string();
    assert!(
        text.contains("compute-units.yaml:") && text.contains("nothing was committed"),
        "{text}"
    );
    assert!(
        matches!(e, racklet_client::ClientError::Refused { status: 422, .. }),
        "{e:?}"
    );
    assert_eq!(head(&repo), seeded);

    // A path outside the source is refused before anything is read.
    let mut outside = request(&node6_on, false);
    outside.files[0].path = "../escape.yaml".into();
    let e = cp.apply(&outside).await.expect_err("outside");
    assert!(
        matches!(e, racklet_client::ClientError::Refused { status: 400, .. }),
        "{e:?}"
    );

    // apply commits, by the caller.
    let applied = cp.apply(&request(&node6_on, false)).await.expect("apply");
    let commit = applied.commit.expect("a commit");
    assert_eq!(head(&repo).as_deref(), Some(commit.as_str()));
    assert_eq!(
        author_of(&repo, &commit),
        ("Ada Operator".into(), "ada@example.org".into())
    );

    // power edits the unit where it is declared; a second time there is nothing to do.
    let off = PowerRequest {
        power_state: DesiredPower::Off,
        force: false,
        message: None,
        author: ada(),
    };
    let powered = cp.set_power("node-6", &off).await.expect("power off");
    assert_eq!(
        powered.changes,
        vec!["~ ComputeUnit/node-6: spec.powerState: On -> Off"]
    );
    assert_eq!(powered.message, "Power node-6 off");
    assert!(powered.commit.is_some());
    let again = cp.set_power("node-6", &off).await.expect("again");
    assert_eq!((again.changes.len(), again.commit), (0, None));
    let e = cp
        .set_power("node-99", &off)
        .await
        .expect_err("no such node");
    assert!(e.is_not_found(), "{e:?}");
    let e = cp.node("node-99").await.expect_err("no such node");
    assert!(e.is_not_found(), "{e:?}");

    // The RMC runs the rack daemon: switching it off takes --force.
    let e = cp.set_power("rmc-1", &off).await.expect_err("the RMC");
    assert!(
        matches!(&e, racklet_client::ClientError::Refused { status: 409, message } if message.contains("--force")),
        "{e:?}"
    );
    let forced = PowerRequest {
        force: true,
        ..off.clone()
    };
    let rmc_off = cp.set_power("rmc-1", &forced).await.expect("forced");
    assert_eq!(
        rmc_off.changes,
        vec!["~ ComputeUnit/rmc-1: spec.powerState: On -> Off"]
    );

    // The checkout follows each commit, and a file someone is editing there is never
    // overwritten: the change is refused and their edit stays.
    let on_disk = repo.join("rack/compute-units.yaml");
    let committed = std::fs::read_to_string(&on_disk).expect("read");
    assert!(
        committed.contains("tray: 6, board: rpi5, powerState: Off"),
        "{committed}"
    );
    let edited = format!("{committed}# someone's edit in progress\n");
    std::fs::write(&on_disk, &edited).expect("edit");
    let before = head(&repo);
    let on = PowerRequest {
        power_state: DesiredPower::On,
        force: false,
        message: None,
        author: ada(),
    };
    let e = cp
        .set_power("node-6", &on)
        .await
        .expect_err("uncommitted edit");
    assert!(
        matches!(&e, racklet_client::ClientError::Refused { status: 409, message } if message.contains("not committed")),
        "{e:?}"
    );
    assert_eq!(std::fs::read_to_string(&on_disk).expect("read"), edited);
    assert_eq!(head(&repo), before);
    let _ = std::fs::remove_dir_all(&dir);
}

fn file(path: &str, content: &str) -> ManifestFile {
    ManifestFile {
        path: path.into(),
        content: content.into(),
    }
}

fn apply(files: Vec<ManifestFile>, dry_run: bool, prune: bool) -> ApplyRequest {
    ApplyRequest {
        files,
        message: None,
        author: ada(),
        dry_run,
        prune,
    }
}

const NODE6: &str = "apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-6, labels: {racklet.io/pool: storage}}\nspec: {chassis: chassis-1, tray: 6, board: rpi5, powerState: On}\n";
const RMC: &str = "apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: rmc-1, labels: {racklet.io/pool: management}}\nspec: {chassis: chassis-1, tray: 7, board: rpi4b, role: Rmc, powerState: On}\n";

#[tokio::test]
async fn apply_updates_resources_where_they_live_and_removes_only_when_asked() {
    let (dir, repo, cp) = api_on_examples("resources").await;
    let units = || std::fs::read_to_string(repo.join("rack/compute-units.yaml")).expect("read");
    let seeded = units();

    // A file of another name that holds node-6 updates node-6 where it is declared: no
    // "duplicate" error, no second file, and every field that changes is shown.
    let diff = cp
        .apply(&apply(vec![file("nodes.yaml", NODE6)], true, false))
        .await
        .expect("dry run");
    assert_eq!(
        diff.changes,
        vec![
            "~ ComputeUnit/node-6: metadata.labels.racklet.io/pool: workers -> storage",
            "~ ComputeUnit/node-6: spec.powerState: Off -> On",
        ]
    );
    let applied = cp
        .apply(&apply(vec![file("nodes.yaml", NODE6)], false, false))
        .await
        .expect("apply");
    assert!(applied.commit.is_some());
    assert!(!repo.join("rack/nodes.yaml").exists());
    let now = units();
    assert!(now.contains("racklet.io/pool: storage"), "{now}");
    // The other documents of the file, and its comments, are as they were.
    for line in seeded
        .lines()
        .filter(|l| !l.contains("node-6") && !l.contains("tray: 6"))
    {
        assert!(now.contains(line), "lost {line:?}:\n{now}");
    }

    // A partial compute-units.yaml removes nothing.
    let partial = cp
        .apply(&apply(
            vec![file("compute-units.yaml", NODE6)],
            false,
            false,
        ))
        .await
        .expect("partial");
    assert_eq!((partial.changes.len(), partial.commit), (0, None));
    assert_eq!(units(), now);

    // A board change is a change too.
    let rpi4 = NODE6.replace("board: rpi5", "board: rpi4b");
    let diff = cp
        .apply(&apply(vec![file("nodes.yaml", &rpi4)], true, false))
        .await
        .expect("dry run");
    assert_eq!(
        diff.changes,
        vec!["~ ComputeUnit/node-6: spec.board: rpi5 -> rpi4b"]
    );

    // --prune removes what the files do not name, of the kinds they hold; a prune that
    // would leave the chassis without its RMC is refused whole.
    let e = cp
        .apply(&apply(vec![file("compute-units.yaml", NODE6)], true, true))
        .await
        .expect_err("no RMC left");
    assert!(
        matches!(&e, racklet_client::ClientError::Refused { status: 422, message } if message.contains("RMC")),
        "{e:?}"
    );
    let both = format!("{NODE6}---\n{RMC}");
    let pruned = cp
        .apply(&apply(vec![file("compute-units.yaml", &both)], true, true))
        .await
        .expect("dry run");
    let removed: Vec<&String> = pruned
        .changes
        .iter()
        .filter(|c| c.starts_with("- "))
        .collect();
    assert_eq!(removed.len(), 5, "{pruned:?}");
    assert!(pruned.changes.contains(&"- ComputeUnit/node-1".to_string()));

    // delete removes a resource where it is declared, and only it.
    let node5 = DeleteRequest {
        resources: vec![ResourceRef {
            kind: "ComputeUnit".into(),
            name: "node-5".into(),
        }],
        files: Vec::new(),
        message: None,
        author: ada(),
        dry_run: false,
    };
    let gone = cp.delete(&node5).await.expect("delete");
    assert_eq!(gone.changes, vec!["- ComputeUnit/node-5"]);
    assert_eq!(gone.message, "Delete ComputeUnit/node-5");
    let after = units();
    assert!(
        !after.contains("node-5") && after.contains("node-4") && after.contains("node-6"),
        "{after}"
    );
    let e = cp.delete(&node5).await.expect_err("gone already");
    assert!(e.is_not_found(), "{e:?}");

    // A new resource goes to the file the caller named.
    let node9 = "apiVersion: racklet.io/v1alpha1\nkind: ComputeUnit\nmetadata: {name: node-9}\nspec: {chassis: chassis-1, tray: 5, board: rpi5, powerState: Off}\n";
    let added = cp
        .apply(&apply(vec![file("more/node-9.yaml", node9)], false, false))
        .await
        .expect("new node");
    assert_eq!(
        added.changes,
        vec!["+ ComputeUnit/node-9: tray 5 of chassis-1, power Off"]
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("rack/more/node-9.yaml")).expect("new file"),
        node9
    );
    let _ = std::fs::remove_dir_all(&dir);
}
