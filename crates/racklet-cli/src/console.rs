//! `racklet console NODE`: the node's serial console, attached over the chassis' Redfish
//! console WebSocket (TLS checked against the chassis' certificate, the control plane's
//! account). The terminal is raw while attached; the detach key (Ctrl-] by default) ends
//! it and restores the terminal.

use std::io::{IsTerminal, Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

use crate::cp::ControlPlaneClient;

/// Ctrl-]: what telnet and `virsh console` detach with.
pub const DETACH: u8 = 0x1d;

/// Puts the terminal in raw mode while alive; restores it on drop (also on errors).
struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        // SAFETY: an all-zero termios is a valid value to be overwritten by tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is this process' stdin and `saved` is a valid termios to fill.
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios; cfmakeraw only changes its flags.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: fd 0 is stdin and `raw` is a valid termios.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: fd 0 is stdin and `saved` is the termios read from it before.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}

fn tls(ca: &[u8]) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.context("the chassis certificate is not PEM")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

pub fn attach(data_dir: &Path, node: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cp = ControlPlaneClient::open(data_dir)?;
        let n = cp
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.name == node)
            .with_context(|| format!("no node named {node:?}; `racklet get nodes` lists them"))?;
        let endpoint = crate::cp::chassis_endpoint(data_dir, &n.chassis)?;
        let base = endpoint.base.replacen("https://", "wss://", 1);
        let url = format!("{base}/racklet/v1/Systems/{}/Console", n.tray);
        let ca = endpoint.ca_pem.unwrap_or_default();
        let mut req = url.as_str().into_client_request()?;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", endpoint.user, endpoint.password));
        req.headers_mut()
            .insert("Authorization", format!("Basic {basic}").parse()?);
        let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls(&ca)?));
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(req, None, true, Some(connector))
                .await
                .with_context(|| format!("cannot attach to {url}"))?;
        let (mut tx, mut rx) = ws.split();
        eprint!("[racklet: attached to {node} (tray {} of {}); Ctrl-] detaches]\r\n", n.tray, n.chassis);
        // Typed bytes come from a blocking reader thread.
        let (keys_tx, mut keys) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || keys_tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let _raw = RawTerminal::enter();
        let mut out = std::io::stdout();
        loop {
            tokio::select! {
                msg = rx.next() => match msg {
                    Some(Ok(Message::Binary(b))) => { out.write_all(&b)?; out.flush()?; }
                    Some(Ok(Message::Text(t))) => { out.write_all(t.as_bytes())?; out.flush()?; }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(anyhow::anyhow!("the console connection failed: {e}")),
                },
                typed = keys.recv() => match typed {
                    Some(bytes) => {
                        if let Some(at) = bytes.iter().position(|b| *b == DETACH) {
                            if at > 0 {
                                tx.send(Message::Binary(bytes[..at].to_vec().into())).await?;
                            }
                            break;
                        }
                        tx.send(Message::Binary(bytes.into())).await?;
                    }
                    None => break, // stdin ended
                },
            }
        }
        let _ = tx.send(Message::Close(None)).await;
        eprint!("\r\n[racklet: detached from {node}]\r\n");
        Ok(())
    })
}
