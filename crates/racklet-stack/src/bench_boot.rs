//! `racklet bench`, network boot part: how fast the bootstrap verifies a payload — TUF
//! metadata loaded, the target streamed over HTTPS from the boot repository, written to a
//! file and checked for length and SHA-256, exactly as `racklet-bootstrap` does — against
//! `sha256sum` (coreutils) hashing the same file from disk in the same run (goal: at least
//! 0.9×). With `RACKLET_BOOTSTRAP_BIN` set, also the bootstrap initramfs' compressed size
//! against u-root's 3 MB goal.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use racklet_boot_repo::{
    BootRepository, HttpsTransport, KeyOptions, KeyStore, Lifetimes, ProfilePayload,
    VerifiedRepository, Versions,
};

pub fn run(quick: bool) -> anyhow::Result<()> {
    let mib: usize = if quick { 16 } else { 128 };
    let dir = std::env::temp_dir().join(format!("racklet-bench-boot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = measure(&dir, mib);
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    initramfs_size()
}

fn measure(dir: &std::path::Path, mib: usize) -> anyhow::Result<()> {
    // Incompressible bytes, like a kernel image.
    let mut kernel = vec![0u8; mib << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in kernel.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (ours, ours_secs) = runtime.block_on(async {
        let keys = KeyStore::init(
            dir.join("keys"),
            KeyOptions::default(),
            jiff::Timestamp::now(),
        )?;
        let repo = BootRepository::new(dir.join("repo"));
        repo.publish(
            &keys,
            "0000000000000000000000000000000000000000",
            &[ProfilePayload {
                name: "bench".into(),
                architecture: "x86_64".into(),
                command_line: String::new(),
                kernel: kernel.clone(),
                initramfs: b"i".to_vec(),
                device_tree: None,
            }],
            Versions::default(),
            jiff::Timestamp::now(),
            Lifetimes::default(),
        )
        .await?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let id = racklet_tls::load_or_create(&dir.join("tls"))?;
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&id.cert, &id.key).await?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let app = axum::Router::new().nest("/boot", racklet_boot_repo::serve::routes(repo));
        let server = tokio::spawn(async move {
            axum_server::from_tcp_rustls(listener, tls)
                .serve(app.into_make_service())
                .await
        });
        let root = std::fs::read(dir.join("keys/root/1.root.json"))?;
        let cert = std::fs::read(&id.cert)?;
        let base: url::Url = format!("https://localhost:{port}/boot/").parse()?;
        let started = Instant::now();
        let transport = HttpsTransport::pinned(&cert, Duration::from_secs(20))?;
        let verified =
            VerifiedRepository::load(&root, &base, transport, Versions::default(), None).await?;
        let mut file = std::fs::File::create(dir.join("staged"))?;
        let (len, digest) = verified
            .read_target("bench.kernel", |chunk| {
                file.write_all(chunk).map_err(|e| e.to_string())
            })
            .await?;
        let secs = started.elapsed().as_secs_f64();
        server.abort();
        anyhow::ensure!(len == kernel.len() as u64, "short read");
        Ok::<_, anyhow::Error>((hex::encode(digest), secs))
    })?;
    std::fs::write(dir.join("kernel"), &kernel)?;
    let started = Instant::now();
    let out = std::process::Command::new("sha256sum")
        .arg(dir.join("kernel"))
        .output()
        .context("sha256sum (coreutils) runs")?;
    let peer_secs = started.elapsed().as_secs_f64();
    let peer = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        peer.split_whitespace().next() == Some(ours.as_str()),
        "sha256sum disagrees: {peer}"
    );
    let mb = mib as f64 * 1.048_576;
    println!("network boot: payload verification ({mib} MiB kernel target)");
    println!(
        "  {:<48} {:>8.1} MB/s",
        "bootstrap: TUF load + HTTPS stream + SHA-256 + file",
        mb / ours_secs
    );
    println!(
        "  {:<48} {:>8.1} MB/s",
        "sha256sum of the same file (peer)",
        mb / peer_secs
    );
    println!("  ratio {:.2}x (goal >= 0.9x)", peer_secs / ours_secs);
    Ok(())
}

fn initramfs_size() -> anyhow::Result<()> {
    let Ok(bin) = std::env::var("RACKLET_BOOTSTRAP_BIN") else {
        println!(
            "  initramfs size: set RACKLET_BOOTSTRAP_BIN to the static bootstrap to measure it"
        );
        return Ok(());
    };
    let image = racklet_bootstrap::initramfs::build(&racklet_bootstrap::initramfs::Spec {
        init: bin.into(),
        modules_dir: None,
        modules: Vec::new(),
    })?;
    println!(
        "  bootstrap initramfs without modules: {} bytes compressed (u-root's goal: 3,000,000)",
        image.gzip.len()
    );
    Ok(())
}
