//! Changes through the API are commits: `apply` and `power` commit to the repository the
//! control plane follows, by the caller as author, and a change that does not validate is
//! refused whole with its positions, committing nothing.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use racklet_client::changes::{ApplyRequest, Author, ManifestFile, PowerRequest};
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

#[tokio::test]
async fn changes_are_commits_by_the_caller_and_invalid_ones_commit_nothing() {
    let dir = std::env::temp_dir().join(format!("racklet-changes-{}", std::process::id()));
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
    };
    let diff = cp.apply(&request(&node6_on, true)).await.expect("dry run");
    assert_eq!(diff.changes, vec!["~ node-6: power Off -> On"]);
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
    assert_eq!(powered.changes, vec!["~ node-6: power On -> Off"]);
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
    assert_eq!(rmc_off.changes, vec!["~ rmc-1: power On -> Off"]);

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
