//! What the bootstrap's tests share: the BMC core on the twin, its side of the boot
//! channel over a stream, and a boot repository served over HTTPS.

// reason: tests may unwrap, helpers included: a panic is their failure report.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use racklet_bmc::{Bmc, BmcConfig, PowerConfig};
use racklet_boot_repo::{serve, BootRepository};
use racklet_mgmt_proto::message::{Request, RequestEnvelope, Response};
use racklet_model::ManifestSet;
use racklet_twin::hal::{TwinFlash, TwinTrayPeripherals};
use racklet_twin::{Twin, TwinConfig};
use rand_chacha::rand_core::SeedableRng;

pub type TwinBmc = Bmc<
    racklet_twin::hal::TwinPin,
    racklet_twin::hal::TwinPin,
    racklet_twin::hal::TwinI2c,
    racklet_twin::hal::TwinConsole,
    racklet_twin::hal::TwinTemperature,
    racklet_twin::VirtualClock,
    TwinFlash,
    TwinFlash,
>;

/// The BMC core of tray 2 of the example rack, on the twin (keep the twin alive).
pub fn bmc_on_twin() -> (Twin, Arc<Mutex<TwinBmc>>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let (set, diags) = ManifestSet::load(&[dir]);
    assert!(diags.is_empty(), "{diags:?}");
    let twin = Twin::new(&set, &TwinConfig::default()).unwrap();
    let p: TwinTrayPeripherals = twin.tray_peripherals("chassis-1", 2).unwrap();
    let (_, flash) = twin.bmc_usb_and_flash("chassis-1", 2).unwrap();
    let config = BmcConfig {
        serial: 2,
        board: heapless::String::try_from("rpi4b").unwrap(),
        firmware_version: 1,
        pac_gain: (2 << 3) | 2,
        power: PowerConfig::default(),
        reset_by_watchdog: false,
        booted: None,
    };
    let bmc = Bmc::boot(
        config,
        p,
        flash.clone(),
        flash,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(2),
    )
    .unwrap();
    (twin, Arc::new(Mutex::new(bmc)))
}

pub fn ask(bmc: &Mutex<TwinBmc>, request: Request) -> Response {
    bmc.lock()
        .unwrap()
        .handle(&RequestEnvelope { id: 1, request })
        .response
}

/// The BMC's side of the boot channel on `wire`, in a thread: bytes in, answers out.
pub fn serve_boot_channel(bmc: Arc<Mutex<TwinBmc>>, mut wire: std::os::unix::net::UnixStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = wire.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut out = Vec::new();
            bmc.lock()
                .unwrap()
                .boot_channel_bytes(&buf[..n], |answer| out.extend_from_slice(answer));
            if wire.write_all(&out).is_err() {
                break;
            }
        }
    });
}

/// Serves `repo` under `/boot/` over HTTPS on loopback with a certificate made in
/// `tls_dir`; returns the port and the certificate's path.
pub async fn serve_https(repo: BootRepository, tls_dir: &Path) -> (u16, std::path::PathBuf) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let id = racklet_tls::load_or_create(tls_dir).unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&id.cert, &id.key)
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().nest("/boot", serve::routes(repo));
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, tls)
            .serve(app.into_make_service())
            .await
    });
    (port, id.cert)
}
