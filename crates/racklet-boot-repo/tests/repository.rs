//! The boot repository end to end: keys, publishing, serving over HTTPS, and a verifying
//! client; then every way a boot server or its metadata may lie, each refused with its
//! own message (issue 10's attack list, the parts that concern the repository).

// reason: tests may unwrap, helpers included: a panic is their failure report.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::routing::get;
use axum::Router;
use racklet_boot_repo::serve;
use racklet_boot_repo::{
    BootRepository, ClientError, HttpsTransport, KeyOptions, KeyStore, Lifetimes, ProfilePayload,
    Role, VerifiedRepository, Versions,
};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

struct Fixture {
    _tmp: tempfile::TempDir,
    keys: KeyStore,
    repo: BootRepository,
    cert: Vec<u8>,
    base: url::Url,
    tls_dir: PathBuf,
}

fn profile(name: &str, kernel: &[u8]) -> ProfilePayload {
    ProfilePayload {
        name: name.into(),
        architecture: "x86_64".into(),
        command_line: "console=ttyS0 quiet".into(),
        kernel: kernel.to_vec(),
        initramfs: b"initramfs bytes".to_vec(),
        device_tree: None,
    }
}

/// Serves `router` over HTTPS on loopback with the identity in `tls_dir`.
async fn serve_https(router: Router, tls_dir: &Path) -> SocketAddr {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let id = racklet_tls::load_or_create(tls_dir).unwrap();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&id.cert, &id.key)
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, config)
            .serve(router.into_make_service())
            .await
    });
    addr
}

async fn fixture(options: KeyOptions) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let keys = KeyStore::init(tmp.path().join("keys"), options, jiff::Timestamp::now()).unwrap();
    let repo = BootRepository::new(tmp.path().join("repo"));
    let tls_dir = tmp.path().join("tls");
    let addr = serve_https(
        Router::new().nest("/boot", serve::routes(repo.clone())),
        &tls_dir,
    )
    .await;
    let cert = std::fs::read(tls_dir.join("cert.pem")).unwrap();
    Fixture {
        base: format!("https://localhost:{}/boot/", addr.port())
            .parse()
            .unwrap(),
        _tmp: tmp,
        keys,
        repo,
        cert,
        tls_dir,
    }
}

impl Fixture {
    async fn publish(&self, profiles: &[ProfilePayload]) -> racklet_boot_repo::Published {
        self.repo
            .publish(
                &self.keys,
                COMMIT,
                profiles,
                Versions::default(),
                jiff::Timestamp::now(),
                Lifetimes::default(),
            )
            .await
            .unwrap()
    }

    fn root_v1(&self) -> Vec<u8> {
        std::fs::read(self.keys.dir().join("root/1.root.json")).unwrap()
    }

    async fn load(&self, floor: Versions) -> Result<VerifiedRepository, ClientError> {
        let transport = HttpsTransport::pinned(&self.cert, Duration::from_secs(5)).unwrap();
        VerifiedRepository::load(&self.root_v1(), &self.base, transport, floor, None).await
    }

    fn target_file(&self, name: &str) -> PathBuf {
        std::fs::read_dir(self.repo.targets_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .ends_with(&format!(".{name}"))
            })
            .unwrap()
    }
}

#[tokio::test]
async fn published_profiles_verify_over_https_with_their_commit_and_digests() {
    let f = fixture(KeyOptions::default()).await;
    let published = f.publish(&[profile("debian", b"kernel bytes")]).await;
    assert!(published.changed);
    assert_eq!(published.versions.targets, 1);
    let repo = f.load(Versions::default()).await.unwrap();
    assert_eq!(
        repo.target_names(),
        ["debian.initramfs", "debian.kernel", "debian.profile.json"]
    );
    let doc = repo.profile("debian").await.unwrap();
    assert_eq!(doc.git_commit, COMMIT);
    assert_eq!(doc.command_line, "console=ttyS0 quiet");
    assert_eq!(doc.kernel, "debian.kernel");
    let info = repo.target("debian.kernel").unwrap();
    assert_eq!(info.git_commit.as_deref(), Some(COMMIT));
    let (len, digest) = repo.read_target("debian.kernel", |_| Ok(())).await.unwrap();
    assert_eq!(len, 12);
    assert_eq!(hex::encode(digest), info.sha256);
    assert_eq!(repo.fetch("debian.kernel").await.unwrap(), b"kernel bytes");
}

#[tokio::test]
async fn publishing_the_same_profiles_again_signs_nothing_and_a_change_signs_higher_versions() {
    let f = fixture(KeyOptions::default()).await;
    let first = f.publish(&[profile("debian", b"kernel one")]).await;
    let again = f.publish(&[profile("debian", b"kernel one")]).await;
    assert!(!again.changed);
    assert_eq!(again.versions, first.versions);
    let changed = f.publish(&[profile("debian", b"kernel two")]).await;
    assert!(changed.changed);
    assert_eq!(changed.versions.targets, first.versions.targets + 1);
    assert_eq!(changed.versions.timestamp, first.versions.timestamp + 1);
    let repo = f.load(Versions::default()).await.unwrap();
    assert_eq!(repo.fetch("debian.kernel").await.unwrap(), b"kernel two");
}

#[tokio::test]
async fn a_timestamp_past_half_its_life_is_signed_again_before_it_expires() {
    let f = fixture(KeyOptions::default()).await;
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(13);
    let p = [profile("debian", b"k")];
    let old = f
        .repo
        .publish(
            &f.keys,
            COMMIT,
            &p,
            Versions::default(),
            long_ago,
            Lifetimes::default(),
        )
        .await
        .unwrap();
    let now = f.publish(&p).await;
    assert!(
        now.changed,
        "a timestamp with 11 of 24 hours left is re-signed"
    );
    assert_eq!(now.versions.timestamp, old.versions.timestamp + 1);
}

#[tokio::test]
async fn the_floor_of_a_previous_publisher_is_never_gone_below() {
    let f = fixture(KeyOptions::default()).await;
    let floor = Versions {
        root: 1,
        targets: 41,
        snapshot: 41,
        timestamp: 41,
    };
    let p = f
        .repo
        .publish(
            &f.keys,
            COMMIT,
            &[profile("debian", b"k")],
            floor,
            jiff::Timestamp::now(),
            Lifetimes::default(),
        )
        .await
        .unwrap();
    assert_eq!(p.versions.targets, 42);
}

#[tokio::test]
async fn a_client_with_the_first_root_follows_root_and_key_rotations() {
    let f = fixture(KeyOptions::default()).await;
    f.publish(&[profile("debian", b"k")]).await;
    let now = jiff::Timestamp::now();
    let year = jiff::SignedDuration::from_hours(24 * 365);
    assert_eq!(f.keys.rotate(Role::Timestamp, now, year).unwrap(), 2);
    assert_eq!(f.keys.rotate(Role::Root, now, year).unwrap(), 3);
    assert_eq!(f.keys.rotate(Role::Targets, now, year).unwrap(), 4);
    let p = f.publish(&[profile("debian", b"k")]).await;
    assert!(
        p.changed,
        "a new root is published even when the targets are the same"
    );
    assert_eq!(p.versions.root, 4);
    let repo = f.load(Versions::default()).await.unwrap();
    assert_eq!(repo.versions().root, 4);
    assert_eq!(repo.fetch("debian.kernel").await.unwrap(), b"k");
    // Retired private keys are gone: only the current root's keys are left.
    let (_, _, roles) = f.keys.summary().unwrap();
    let private = std::fs::read_dir(f.keys.dir().join("private"))
        .unwrap()
        .count();
    assert_eq!(private, roles.iter().map(|r| r.keys.len()).sum::<usize>());
}

#[tokio::test]
async fn a_kernel_with_one_byte_changed_is_refused() {
    let f = fixture(KeyOptions::default()).await;
    f.publish(&[profile("debian", b"kernel bytes")]).await;
    let path = f.target_file("debian.kernel");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let repo = f.load(Versions::default()).await.unwrap();
    let err = repo.fetch("debian.kernel").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Target { name, reason } if name == "debian.kernel" && reason.contains("Hash mismatch")),
        "{err}"
    );
}

#[tokio::test]
async fn a_truncated_download_is_refused() {
    let f = fixture(KeyOptions::default()).await;
    f.publish(&[profile("debian", b"kernel bytes")]).await;
    let path = f.target_file("debian.kernel");
    std::fs::write(&path, b"kernel").unwrap();
    let repo = f.load(Versions::default()).await.unwrap();
    let err = repo.fetch("debian.kernel").await.unwrap_err();
    assert!(matches!(err, ClientError::Target { .. }), "{err}");
}

#[tokio::test]
async fn an_expired_timestamp_is_refused() {
    let f = fixture(KeyOptions::default()).await;
    let two_days_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    f.repo
        .publish(
            &f.keys,
            COMMIT,
            &[profile("debian", b"k")],
            Versions::default(),
            two_days_ago,
            Lifetimes::default(),
        )
        .await
        .unwrap();
    let err = f.load(Versions::default()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Expired { role } if role == "timestamp"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "boot repository: timestamp metadata has expired; the boot server's clock or its signer is behind"
    );
}

#[tokio::test]
async fn a_targets_version_below_the_accepted_floor_is_a_rollback() {
    let f = fixture(KeyOptions::default()).await;
    f.publish(&[profile("debian", b"k")]).await;
    let floor = Versions {
        root: 1,
        targets: 5,
        snapshot: 1,
        timestamp: 1,
    };
    let err = f.load(floor).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Rollback {
                role: "targets",
                got: 1,
                floor: 5
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn metadata_signed_by_a_key_the_root_does_not_name_is_refused() {
    let f = fixture(KeyOptions::default()).await;
    f.publish(&[profile("debian", b"k")]).await;
    // Another key set signs the same kind of repository; its timestamp replaces ours.
    let other = tempfile::tempdir().unwrap();
    let keys = KeyStore::init(
        other.path().join("keys"),
        KeyOptions::default(),
        jiff::Timestamp::now(),
    )
    .unwrap();
    let repo = BootRepository::new(other.path().join("repo"));
    repo.publish(
        &keys,
        COMMIT,
        &[profile("debian", b"evil")],
        Versions::default(),
        jiff::Timestamp::now(),
        Lifetimes::default(),
    )
    .await
    .unwrap();
    std::fs::copy(
        repo.metadata_dir().join("timestamp.json"),
        f.repo.metadata_dir().join("timestamp.json"),
    )
    .unwrap();
    let err = f.load(Versions::default()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Metadata { reason } if reason.contains("not met for role timestamp")),
        "{err}"
    );
}

#[tokio::test]
async fn a_root_rotation_signed_by_too_few_old_keys_is_refused() {
    let options = KeyOptions {
        root_keys: 2,
        root_threshold: NonZeroU64::new(2).unwrap(),
        ..KeyOptions::default()
    };
    let f = fixture(options).await;
    f.publish(&[profile("debian", b"k")]).await;
    // The operator's own tool refuses to rotate with one of two root keys missing.
    let (_, _, roles) = f.keys.summary().unwrap();
    let root_keys = &roles.iter().find(|r| r.role == Role::Root).unwrap().keys;
    let stolen = f
        .keys
        .dir()
        .join("private")
        .join(format!("{}.pk8", root_keys[0]));
    let kept = f
        .keys
        .dir()
        .join("private")
        .join(format!("{}.pk8", root_keys[1]));
    let stolen_bytes = std::fs::read(&stolen).unwrap();
    std::fs::remove_file(&kept).unwrap();
    let err = f
        .keys
        .rotate(
            Role::Timestamp,
            jiff::Timestamp::now(),
            jiff::SignedDuration::from_hours(24),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("needs 2 signatures but only 1"),
        "{err}"
    );
    // An attacker with that one key signs root 2 anyway, naming keys of their own.
    let mut rogue: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.keys.dir().join("root/1.root.json")).unwrap())
            .unwrap();
    rogue["signed"]["version"] = 2.into();
    rogue["signed"]["roles"]["timestamp"]["threshold"] = 1.into();
    let canonical = {
        let mut out = Vec::new();
        let mut ser =
            serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
        serde::Serialize::serialize(&rogue["signed"], &mut ser).unwrap();
        out
    };
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&stolen_bytes).unwrap();
    rogue["signatures"] = serde_json::json!([{
        "keyid": root_keys[0],
        "sig": hex::encode(pair.sign(&canonical).as_ref()),
    }]);
    std::fs::write(
        f.repo.metadata_dir().join("2.root.json"),
        serde_json::to_vec_pretty(&rogue).unwrap(),
    )
    .unwrap();
    let err = f.load(Versions::default()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Metadata { reason } if reason.contains("Signature threshold of 2 not met for role root")),
        "{err}"
    );
}

#[tokio::test]
async fn a_boot_server_presenting_another_certificate_is_refused() {
    let f = fixture(KeyOptions::default()).await;
    f.publish(&[profile("debian", b"k")]).await;
    let other = tempfile::tempdir().unwrap();
    let id = racklet_tls::load_or_create(other.path()).unwrap();
    let transport =
        HttpsTransport::pinned(&std::fs::read(id.cert).unwrap(), Duration::from_secs(5)).unwrap();
    let err = VerifiedRepository::load(&f.root_v1(), &f.base, transport, Versions::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Transport { reason, .. } if reason.contains("certificate")),
        "{err}"
    );
}

#[tokio::test]
async fn a_boot_server_that_stalls_mid_file_fails_the_download() {
    let f = fixture(KeyOptions::default()).await;
    f.publish(&[profile("debian", &vec![7u8; 256 * 1024])])
        .await;
    // The same metadata, but every target stops after its first bytes and never ends.
    let targets = f.repo.targets_dir();
    let stalling = Router::new()
        .nest("/boot", serve::metadata_routes(f.repo.clone()))
        .route(
            "/boot/targets/{file}",
            get(move |UrlPath(file): UrlPath<String>| {
                let targets = targets.clone();
                async move {
                    let bytes = std::fs::read(targets.join(file)).unwrap();
                    let first = bytes::Bytes::copy_from_slice(&bytes[..1024.min(bytes.len())]);
                    let stream =
                        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) })
                            .chain(futures_util::stream::pending());
                    axum::body::Body::from_stream(stream)
                }
            }),
        );
    let addr = serve_https(stalling, &f.tls_dir).await;
    let base: url::Url = format!("https://localhost:{}/boot/", addr.port())
        .parse()
        .unwrap();
    let transport = HttpsTransport::pinned(&f.cert, Duration::from_millis(500)).unwrap();
    let repo = VerifiedRepository::load(&f.root_v1(), &base, transport, Versions::default(), None)
        .await
        .unwrap();
    let err = repo.fetch("debian.kernel").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Target { reason, .. } if reason.contains("timed out") || reason.contains("timeout")),
        "{err}"
    );
}

use futures_util::StreamExt as _;
