//! The rack management daemon: one per chassis, on its RMC tray.
//!
//! It finds BMCs on the backplane's USB hub and follows hot-plug, enrolls the ones an
//! operator approved, keeps a session with each, runs the fan loop, keeps an event log,
//! and serves OpenMetrics at `/metrics`. It never changes a tray's power state on its own
//! at start-up: it reads the real state back from each BMC. The logic is
//! [`core::DaemonCore`]; this module runs it on tokio and implements the
//! [`racklet_rmd_api::ChassisManager`] API.

pub mod backplane;
pub mod core;
pub mod fan;
pub mod linux;
pub mod metrics;
pub mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use racklet_mgmt_proto::message::{PowerAction, PowerState, Request, Response};
use racklet_mgmt_proto::DropCounters;
use racklet_rmd_api::{
    BootOverride, BootStatus, ChassisManager, ConsoleChunk, Event, FanInfo, NetworkBoot, RmdError,
    TrayInfo, UpdateProgress,
};

pub use crate::backplane::Backplane;
pub use crate::core::{DaemonConfig, DaemonCore};
pub use crate::store::{Store, StoreError};

/// A source of time for the daemon, as time since the Unix epoch (event timestamps are
/// taken from it): the wall clock on a board; in the simulation, the twin's virtual clock
/// from the moment the simulation started.
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

struct Shared<B> {
    core: Mutex<DaemonCore>,
    backplane: Mutex<B>,
    clock: Clock,
    name: String,
}

/// A running daemon; cheap to clone.
pub struct Rmd<B> {
    shared: Arc<Shared<B>>,
}

impl<B> Clone for Rmd<B> {
    fn clone(&self) -> Self {
        Rmd {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: Backplane> Rmd<B> {
    /// A daemon that steps only when [`Rmd::step`] is called (for a caller that owns the
    /// clock, like the twin's driver).
    pub fn new(core: DaemonCore, backplane: B, clock: Clock) -> Rmd<B> {
        let name = core.config().chassis.clone();
        Rmd {
            shared: Arc::new(Shared {
                core: Mutex::new(core),
                backplane: Mutex::new(backplane),
                clock,
                name,
            }),
        }
    }

    /// One round of the daemon's work at the clock's current time.
    pub fn step(&self) {
        let now = (self.shared.clock)();
        let mut bp = lock(&self.shared.backplane);
        lock(&self.shared.core).step(now, &mut *bp);
    }

    /// Starts the daemon's loop on the current tokio runtime, stepping every `tick`.
    pub fn spawn(core: DaemonCore, backplane: B, clock: Clock, tick: Duration) -> Rmd<B> {
        let rmd = Rmd::new(core, backplane, clock);
        let weak = Arc::downgrade(&rmd.shared);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                let Some(shared) = weak.upgrade() else { break };
                let now = (shared.clock)();
                let mut bp = lock(&shared.backplane);
                lock(&shared.core).step(now, &mut *bp);
            }
        });
        rmd
    }

    /// The daemon's state. Only this crate takes the guard; everyone else reads
    /// [`Rmd::snapshot`] or calls the [`ChassisManager`] API.
    pub(crate) fn core(&self) -> MutexGuard<'_, DaemonCore> {
        lock(&self.shared.core)
    }

    /// What the daemon knows now, as owned values, without waiting (for a live table, a
    /// test on a stepped clock, metrics).
    pub fn snapshot(&self) -> ChassisSnapshot {
        let core = self.core();
        ChassisSnapshot {
            chassis: self.shared.name.clone(),
            trays: core.trays(),
            fans: core.fans(),
            drops: core.drops(),
            update: core.update_progress(),
        }
    }

    /// This daemon's state for the metrics exposition.
    pub fn metrics_state(&self) -> metrics::ChassisMetrics {
        let s = self.snapshot();
        metrics::ChassisMetrics {
            chassis: s.chassis,
            trays: s.trays,
            fans: s.fans,
            drops: s.drops,
        }
    }

    /// The OpenMetrics exposition of this daemon alone.
    pub fn metrics(&self) -> String {
        metrics::render(&[self.metrics_state()])
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one daemon knows at one instant, as owned values.
#[derive(Debug, Clone, PartialEq)]
pub struct ChassisSnapshot {
    pub chassis: String,
    pub trays: Vec<TrayInfo>,
    pub fans: Vec<FanInfo>,
    /// Frames dropped per tray, by reason.
    pub drops: Vec<(u32, DropCounters)>,
    /// The latest BMC firmware update, running or finished.
    pub update: Option<UpdateProgress>,
}

/// The answer to a request sent with [`Rmd::submit`]: it arrives when the daemon's loop
/// has sent the request and the BMC answered (or the request failed: timeout, BMC
/// detached, daemon restarted).
#[derive(Debug)]
pub struct Reply {
    rx: core::ReplyReceiver,
}

impl Reply {
    /// The answer, if it has arrived; for callers that step the daemon themselves.
    pub fn try_take(&mut self) -> Option<Result<Response, RmdError>> {
        use tokio::sync::oneshot::error::TryRecvError;
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => Some(Err(RmdError::Stopped)),
        }
    }

    /// Waits for the answer.
    pub async fn wait(self) -> Result<Response, RmdError> {
        self.rx.await.unwrap_or(Err(RmdError::Stopped))
    }
}

/// How long an API caller waits for an answer before it gives up (the core times out a
/// sent request sooner; this bounds a request that never leaves the queue).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl<B: Backplane> Rmd<B> {
    /// Queues a request to a tray's trusted BMC; the daemon's loop sends it.
    pub fn submit(&self, slot: u32, request: Request) -> Result<Reply, RmdError> {
        let (_, rx) = self.core().request(slot, request)?;
        Ok(Reply { rx })
    }

    /// Sends a request to a tray's BMC and waits for its answer.
    pub async fn call(&self, slot: u32, request: Request) -> Result<Response, RmdError> {
        let (id, rx) = self.core().request(slot, request)?;
        self.wait(slot, id, rx).await
    }

    async fn wait(
        &self,
        slot: u32,
        id: u32,
        rx: core::ReplyReceiver,
    ) -> Result<Response, RmdError> {
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(reply) => reply.unwrap_or(Err(RmdError::Stopped)),
            Err(_) => {
                self.core().abandon(id);
                Err(RmdError::Timeout(slot))
            }
        }
    }
}

fn power_of(slot: u32, response: Response) -> Result<PowerState, RmdError> {
    match response {
        Response::Status(s) => Ok(s.power),
        other => Err(RmdError::Refused {
            slot,
            reason: format!("unexpected answer {other:?}"),
        }),
    }
}

impl<B: Backplane> ChassisManager for Rmd<B> {
    fn chassis_name(&self) -> &str {
        &self.shared.name
    }

    async fn trays(&self) -> Vec<TrayInfo> {
        self.core().trays()
    }

    async fn fans(&self) -> Vec<FanInfo> {
        self.core().fans()
    }

    async fn power(&self, slot: u32, action: PowerAction) -> Result<PowerState, RmdError> {
        power_of(slot, self.call(slot, Request::Power(action)).await?)
    }

    async fn clear_faults(&self, slot: u32) -> Result<PowerState, RmdError> {
        power_of(slot, self.call(slot, Request::ClearFaults).await?)
    }

    async fn console_read(&self, slot: u32, from: u64) -> Result<ConsoleChunk, RmdError> {
        match self.call(slot, Request::ConsoleRead { from }).await? {
            Response::Console { from, next, data } => Ok(ConsoleChunk {
                from,
                next,
                data: data.to_vec(),
            }),
            other => Err(RmdError::Refused {
                slot,
                reason: format!("unexpected answer {other:?}"),
            }),
        }
    }

    async fn console_write(&self, slot: u32, bytes: &[u8]) -> Result<(), RmdError> {
        for chunk in bytes.chunks(racklet_mgmt_proto::message::CONSOLE_CHUNK) {
            let data = heapless::Vec::from_slice(chunk).unwrap_or_default();
            self.call(slot, Request::ConsoleWrite(data)).await?;
        }
        Ok(())
    }

    async fn set_boot_mode(
        &self,
        slot: u32,
        mode: racklet_mgmt_proto::message::BootMode,
    ) -> Result<(), RmdError> {
        self.call(slot, Request::SetBootMode(mode))
            .await
            .map(|_| ())
    }

    async fn boot_override(&self, slot: u32) -> Result<BootOverride, RmdError> {
        self.core().boot_override(slot)
    }

    async fn set_boot_override(&self, slot: u32, boot: BootOverride) -> Result<(), RmdError> {
        self.core().boot_override(slot)?; // no such tray: say so before asking a BMC
        self.call(slot, Request::SetBootMode(boot.boot_mode()))
            .await?;
        self.core().set_boot_override(slot, boot)
    }

    async fn network_boot(&self, slot: u32) -> Result<Option<NetworkBoot>, RmdError> {
        self.core().network_boot(slot)
    }

    async fn set_network_boot(&self, slot: u32, boot: Option<NetworkBoot>) -> Result<(), RmdError> {
        self.core().network_boot(slot)?; // no such tray: say so before asking a BMC
        let config = boot
            .as_ref()
            .map(core::network_boot::bmc_config)
            .transpose()?;
        match self.call(slot, Request::SetNetworkBoot(config)).await? {
            Response::Ack => self.core().set_network_boot(slot, boot),
            other => Err(RmdError::Refused {
                slot,
                reason: format!("{other:?}"),
            }),
        }
    }

    async fn boot_status(&self, slot: u32) -> Result<BootStatus, RmdError> {
        self.core().network_boot(slot)?;
        match self.call(slot, Request::BootReport).await? {
            Response::BootReport(r) => Ok(core::network_boot::boot_status(r)),
            other => Err(RmdError::Refused {
                slot,
                reason: format!("{other:?}"),
            }),
        }
    }

    async fn approve(&self, identity: &str) -> Result<(), RmdError> {
        self.core().approve(identity)
    }

    async fn reject(&self, identity: &str) -> Result<(), RmdError> {
        self.core().reject(identity)
    }

    async fn forget_bmc(&self, slot: u32) -> Result<(), RmdError> {
        self.core().forget(slot)
    }

    async fn events(&self, since: u64) -> Vec<Event> {
        self.core().events(since)
    }

    fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.core().subscribe_events()
    }

    async fn set_identify(&self, slot: u32, on: bool) -> Result<(), RmdError> {
        self.core().set_identify(slot, on)
    }

    async fn identify(&self, slot: u32) -> bool {
        self.core().identify(slot)
    }

    async fn clear_events(&self) {
        self.core().clear_events();
    }

    async fn update_firmware(
        &self,
        slot: u32,
        image: Arc<Vec<u8>>,
        version: u32,
        signature: [u8; 64],
    ) -> Result<(), RmdError> {
        self.core()
            .start_firmware_update(slot, image, version, &signature)
    }

    async fn update_progress(&self) -> Option<UpdateProgress> {
        self.core().update_progress()
    }

    async fn reset_bmc(&self, slot: u32) -> Result<(), RmdError> {
        let (id, rx) = self.core().reset_bmc(slot)?;
        self.wait(slot, id, rx).await.map(|_| ())
    }

    async fn restart(&self) -> Result<(), RmdError> {
        self.core().restart()
    }
}

/// Serves `/metrics` for these daemons on `addr` (port 0 picks one); returns the address.
pub async fn serve_metrics<B: Backplane>(
    daemons: Vec<Rmd<B>>,
    addr: SocketAddr,
) -> std::io::Result<SocketAddr> {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let daemons = daemons.clone();
            async move {
                let all: Vec<_> = daemons.iter().map(Rmd::metrics_state).collect();
                let body = metrics::render(&all);
                (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server stopped: {e}");
        }
    });
    Ok(local)
}
