//! The daemon's event log: a bounded [`VecDeque`] of the latest events in memory, every
//! event appended to the data dir's `events.jsonl`, and a `watch` of the latest sequence
//! number that subscribers (the Redfish event pump) await before reading
//! [`EventLog::since`]. An event's time is the daemon's clock (the `now` of the step or
//! call that logged it), never the process' wall clock, so a simulated daemon logs
//! simulated time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use racklet_rmd_api::{Event, Severity};
use tokio::sync::watch;

use crate::store::{Store, StoreError};

/// Events kept in memory.
pub const EVENTS_KEPT: usize = 10_000;

/// The in-memory log, its file and its subscribers.
pub struct EventLog {
    store: Store,
    chassis: String,
    kept: VecDeque<Event>,
    capacity: usize,
    next: u64,
    /// The sequence number of the latest event; survives a daemon restart (the runner
    /// hands it to the new core), so subscribers keep listening.
    latest: Arc<watch::Sender<u64>>,
}

impl EventLog {
    /// The log as the store has it (the last `capacity` events not cleared).
    pub fn load(store: Store, chassis: &str, capacity: usize) -> Result<EventLog, StoreError> {
        let (events, last) = store.load_events(capacity)?;
        let (latest, _) = watch::channel(last);
        Ok(EventLog {
            store,
            chassis: chassis.into(),
            kept: events.into(),
            capacity: capacity.max(1),
            next: last + 1,
            latest: Arc::new(latest),
        })
    }

    /// Makes this log notify the subscribers of `previous` (a restarted daemon's log).
    pub fn take_subscribers(&mut self, previous: &EventLog) {
        self.latest = Arc::clone(&previous.latest);
        self.latest.send_replace(self.next - 1);
    }

    /// A receiver that changes whenever an event is logged; its value is the latest
    /// sequence number.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Logs the next event at time `now` (since the Unix epoch, on the daemon's clock):
    /// traced, appended to `events.jsonl`, kept, and announced to subscribers.
    pub fn record(
        &mut self,
        now: Duration,
        severity: Severity,
        slot: Option<u32>,
        message: String,
    ) {
        let e = Event {
            sequence: self.next,
            unix_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            severity,
            slot,
            message,
        };
        self.next += 1;
        tracing::info!(chassis = %self.chassis, ?severity, slot, "{}", e.message);
        match serde_json::to_string(&e) {
            Ok(line) => {
                if let Err(err) = self.store.append_event(&line) {
                    tracing::warn!("{}", super::error_chain(&err));
                }
            }
            Err(err) => tracing::warn!("cannot encode event {}: {err}", e.sequence),
        }
        if self.kept.len() >= self.capacity {
            self.kept.pop_front();
        }
        self.kept.push_back(e);
        self.latest.send_replace(self.next - 1);
    }

    /// Events after sequence `since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<Event> {
        // Sequences increase along the deque: skip the older ones without scanning them.
        let start = self.kept.partition_point(|e| e.sequence <= since);
        self.kept.range(start..).cloned().collect()
    }

    /// Empties the in-memory log; the file keeps its history, marked as cleared so a
    /// restarted daemon does not load it again.
    pub fn clear(&mut self) {
        self.kept.clear();
        if let Err(e) = self.store.mark_cleared(self.next - 1) {
            tracing::warn!("{}", super::error_chain(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &str, capacity: usize) -> (EventLog, Store) {
        let d = std::env::temp_dir().join(format!("racklet-rmd-{}-{dir}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let store = Store::open(&d).expect("store");
        (
            EventLog::load(store.clone(), "c", capacity).expect("log"),
            store,
        )
    }

    #[test]
    fn keeps_the_latest_and_stamps_the_daemons_clock() {
        let (mut l, _) = log("bounded", 3);
        for i in 0..5u64 {
            l.record(
                Duration::from_secs(100 + i),
                Severity::Info,
                None,
                format!("e{i}"),
            );
        }
        let all = l.since(0);
        assert_eq!(
            all.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(all[0].unix_ms, 102_000);
        assert_eq!(l.since(4).len(), 1);
        assert!(l.since(5).is_empty());
    }

    #[test]
    fn subscribers_see_the_latest_sequence_also_after_a_restart() {
        let (mut l, store) = log("watch", 10);
        let mut rx = l.subscribe();
        l.record(Duration::ZERO, Severity::Info, Some(1), "a".into());
        assert!(rx.has_changed().expect("open"));
        assert_eq!(*rx.borrow_and_update(), 1);
        let mut restarted = EventLog::load(store.clone(), "c", 10).expect("log");
        restarted.take_subscribers(&l);
        drop(l);
        restarted.record(Duration::ZERO, Severity::Info, None, "b".into());
        assert!(rx.has_changed().expect("still open"));
        assert_eq!(*rx.borrow_and_update(), 2);
        restarted.clear();
        assert!(restarted.since(0).is_empty());
        let reloaded = EventLog::load(store, "c", 10).expect("log");
        assert!(reloaded.since(0).is_empty(), "cleared stays cleared");
        assert_eq!(reloaded.next, 3, "numbering continues");
    }
}
