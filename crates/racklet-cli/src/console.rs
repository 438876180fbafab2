//! `racklet console NODE`: the node's serial console, relayed by the control plane from
//! the chassis' console WebSocket (the client never holds chassis credentials). The
//! terminal is raw while attached; the detach key (Ctrl-]) ends it and restores it.

use std::io::{IsTerminal, Read as _, Write as _};
use std::path::Path;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

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

pub fn attach(data_dir: &Path, node: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cp = crate::get::client(data_dir)?;
        let n = cp.node(node).await?;
        let ws = cp.console(node).await?;
        let (mut tx, mut rx) = ws.split();
        eprint!(
            "[racklet: attached to {node} (tray {} of {}); Ctrl-] detaches]\r\n",
            n.spec.tray, n.spec.chassis
        );
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
