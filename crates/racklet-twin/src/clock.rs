//! The twin's virtual clock: nanoseconds that advance only when the twin is stepped,
//! faster than real time in tests and at real time under `racklet up`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use racklet_hal::Monotonic;

/// A shared, monotonic virtual clock.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Acquire))
    }

    pub fn seconds(&self) -> f64 {
        self.now().as_secs_f64()
    }

    pub(crate) fn set(&self, at: Duration) {
        let nanos = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_max(nanos, Ordering::AcqRel);
    }
}

impl Monotonic for VirtualClock {
    fn now_micros(&self) -> u64 {
        self.0.load(Ordering::Acquire) / 1_000
    }
}
