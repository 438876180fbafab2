//! The bootstrap's end of the boot channel: one request, one answer, over any byte
//! stream (the serial device on a board, a socket in tests), each bounded in time.

use std::time::Duration;

use racklet_mgmt_proto::boot_channel::{self, FromBmc, FromHost, Refusal};
use racklet_mgmt_proto::{FrameReader, MAX_FRAME};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Why the BMC gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("the boot channel failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the BMC did not answer on the boot channel within {0:?}")]
    Timeout(Duration),
    #[error("the boot channel closed")]
    Closed,
    #[error("the BMC refused the boot channel: {}", refusal_text(*.0))]
    Refused(Refusal),
    #[error("the message does not fit a boot-channel frame")]
    TooBig,
}

fn refusal_text(r: Refusal) -> &'static str {
    match r {
        Refusal::LocalBoot => "the tray boots from its own media",
        Refusal::NotConfigured => "no network boot is configured for this tray",
        Refusal::Rollback => "metadata versions below the ones it accepted before (rollback)",
        Refusal::BadRequest => "it could not read the request",
        Refusal::HandedOff => "this boot was already handed off",
    }
}

/// The boot channel to the BMC.
pub struct BmcChannel<W> {
    wire: W,
    reader: FrameReader,
    timeout: Duration,
}

impl<W: AsyncRead + AsyncWrite + Unpin> BmcChannel<W> {
    pub fn new(wire: W, timeout: Duration) -> Self {
        BmcChannel {
            wire,
            reader: FrameReader::default(),
            timeout,
        }
    }

    /// Sends `msg` and waits for the answer; a refusal is an error.
    pub async fn ask(&mut self, msg: &FromHost) -> Result<FromBmc, ChannelError> {
        let mut frame = [0u8; MAX_FRAME];
        let n = boot_channel::encode(msg, &mut frame).ok_or(ChannelError::TooBig)?;
        self.wire.write_all(&frame[..n]).await?;
        self.wire.flush().await?;
        let answer = tokio::time::timeout(self.timeout, self.next_frame())
            .await
            .map_err(|_| ChannelError::Timeout(self.timeout))??;
        match answer {
            FromBmc::Refused(r) => Err(ChannelError::Refused(r)),
            other => Ok(other),
        }
    }

    async fn next_frame(&mut self) -> Result<FromBmc, ChannelError> {
        let mut buf = [0u8; 256];
        loop {
            let n = self.wire.read(&mut buf).await?;
            if n == 0 {
                return Err(ChannelError::Closed);
            }
            for &b in &buf[..n] {
                if let Some(Ok(frame)) = self.reader.push(b) {
                    let mut plain = [0u8; boot_channel::MAX_MESSAGE];
                    if let Some(answer) = boot_channel::decode::<FromBmc>(&frame, &mut plain) {
                        return Ok(answer);
                    }
                    // Line noise between frames is skipped, never acted on.
                }
            }
        }
    }
}
