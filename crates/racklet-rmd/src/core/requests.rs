//! The request queue: requests waiting to go to a BMC or for its answer, by id. An API
//! caller's request carries a `oneshot` sender; its answer, or the reason there is none
//! (timeout, the BMC detached, the daemon restarted), is sent there exactly once, so
//! callers await a channel instead of polling. The daemon's own requests (status,
//! inventory, firmware steps, thermal shutdown) carry none.

use std::collections::BTreeMap;
use std::time::Duration;

use racklet_mgmt_proto::message::{ErrorCode, Request, RequestEnvelope, Response};
use racklet_rmd_api::RmdError;

/// A request without an answer fails after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The answer to one request, as an API caller receives it.
pub type ReplySender = tokio::sync::oneshot::Sender<Result<Response, RmdError>>;
/// The receiving end of [`ReplySender`].
pub type ReplyReceiver = tokio::sync::oneshot::Receiver<Result<Response, RmdError>>;

struct Pending {
    slot: u32,
    queued_at: Duration,
    sent_at: Option<Duration>,
    request: Request,
    /// Where the answer goes, for requests an API caller waits for.
    reply: Option<ReplySender>,
}

/// A request the BMC answered, taken off the queue.
pub struct Answered {
    pub request: Request,
    reply: Option<ReplySender>,
}

impl Answered {
    /// Hands the answer to the caller waiting for it, if any (a BMC's refusal becomes
    /// [`RmdError::Refused`]).
    pub fn reply(self, slot: u32, response: Response) {
        if let Some(reply) = self.reply {
            let result = match response {
                Response::Error(code) => Err(RmdError::Refused {
                    slot,
                    reason: refusal(code).into(),
                }),
                other => Ok(other),
            };
            // The caller may have given up; then nobody listens, which is fine.
            let _ = reply.send(result);
        }
    }
}

/// A request that got no answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub id: u32,
    pub slot: u32,
}

/// Requests by id. Ids are never 0 and keep counting across a daemon restart. Ordered by
/// id, so requests to one tray go out in the order they were made.
pub struct RequestQueue {
    next_id: u32,
    pending: BTreeMap<u32, Pending>,
}

impl RequestQueue {
    pub fn new(first_id: u32) -> RequestQueue {
        RequestQueue {
            next_id: first_id.max(1),
            pending: BTreeMap::new(),
        }
    }

    /// The id the next request gets.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Queues a request for `slot` at `now`; returns its id.
    pub fn push(
        &mut self,
        now: Duration,
        slot: u32,
        request: Request,
        reply: Option<ReplySender>,
    ) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.pending.insert(
            id,
            Pending {
                slot,
                queued_at: now,
                sent_at: None,
                request,
                reply,
            },
        );
        id
    }

    /// Offers every unsent request to `send` (slot, envelope); those it took are marked
    /// sent at `now`.
    pub fn send_unsent(
        &mut self,
        now: Duration,
        mut send: impl FnMut(u32, &RequestEnvelope) -> bool,
    ) {
        for (id, p) in self.pending.iter_mut().filter(|(_, p)| p.sent_at.is_none()) {
            let envelope = RequestEnvelope {
                id: *id,
                request: p.request.clone(),
            };
            if send(p.slot, &envelope) {
                p.sent_at = Some(now);
            }
        }
    }

    /// Takes the request `id` off the queue if it was sent to `slot`: only an answer to a
    /// request this tray was sent counts (ids are not secrets, so a BMC must not settle
    /// another tray's requests).
    pub fn answered(&mut self, id: u32, slot: u32) -> Option<Answered> {
        self.pending
            .get(&id)
            .filter(|p| p.slot == slot && p.sent_at.is_some())?;
        let p = self.pending.remove(&id)?;
        Some(Answered {
            request: p.request,
            reply: p.reply,
        })
    }

    /// Fails every request older than [`REQUEST_TIMEOUT`] at `now` (since it was sent, or
    /// queued if it never was) with [`RmdError::Timeout`]; returns which.
    pub fn expire(&mut self, now: Duration) -> Vec<Expired> {
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                now.saturating_sub(p.sent_at.unwrap_or(p.queued_at)) >= REQUEST_TIMEOUT
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                if let Some(reply) = p.reply {
                    let _ = reply.send(Err(RmdError::Timeout(p.slot)));
                }
                out.push(Expired { id, slot: p.slot });
            }
        }
        out.sort_by_key(|e| e.id);
        out
    }

    /// Fails every request for `slot` with `err` (its BMC left).
    pub fn fail_slot(&mut self, slot: u32, err: &RmdError) {
        self.pending.retain(|_, p| {
            if p.slot != slot {
                return true;
            }
            if let Some(reply) = p.reply.take() {
                let _ = reply.send(Err(err.clone()));
            }
            false
        });
    }

    /// Forgets a caller's request (it gave up waiting); it is not sent if still queued.
    pub fn abandon(&mut self, id: u32) {
        if self.pending.get(&id).is_some_and(|p| p.sent_at.is_none()) {
            self.pending.remove(&id);
        }
    }

    /// Fails everything with [`RmdError::Stopped`] (the daemon restarts).
    pub fn stop(&mut self) {
        for (_, p) in std::mem::take(&mut self.pending) {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(RmdError::Stopped));
            }
        }
    }
}

/// What a BMC's error code means, for people.
pub(crate) fn refusal(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidState => {
            "not possible in the current state (a latched fault? clear it first)"
        }
        ErrorCode::BadRequest => "bad request",
        ErrorCode::BadSignature => "the firmware signature does not verify",
        ErrorCode::BadImage => "the firmware image is incomplete or too large",
        ErrorCode::Rollback => "the firmware is older than the BMC allows",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    const T0: Duration = Duration::from_secs(100);

    fn with_reply(q: &mut RequestQueue, slot: u32) -> (u32, ReplyReceiver) {
        let (tx, rx) = oneshot::channel();
        (q.push(T0, slot, Request::Status, Some(tx)), rx)
    }

    fn send_all(q: &mut RequestQueue, at: Duration) -> Vec<(u32, u32)> {
        let mut sent = Vec::new();
        q.send_unsent(at, |slot, env| {
            sent.push((slot, env.id));
            true
        });
        sent.sort();
        sent
    }

    #[test]
    fn an_answer_reaches_its_caller_once_and_only_from_its_tray() {
        let mut q = RequestQueue::new(1);
        let (id, mut rx) = with_reply(&mut q, 2);
        assert!(q.answered(id, 2).is_none(), "not sent yet");
        assert_eq!(send_all(&mut q, T0), vec![(2, id)]);
        assert!(send_all(&mut q, T0).is_empty(), "sent once");
        assert!(q.answered(id, 3).is_none(), "another tray cannot settle it");
        q.answered(id, 2).expect("pending").reply(2, Response::Ack);
        assert_eq!(rx.try_recv(), Ok(Ok(Response::Ack)));
        assert!(q.answered(id, 2).is_none(), "gone");
    }

    #[test]
    fn a_refusal_is_an_error_for_the_caller() {
        let mut q = RequestQueue::new(1);
        let (id, mut rx) = with_reply(&mut q, 1);
        send_all(&mut q, T0);
        q.answered(id, 1)
            .expect("pending")
            .reply(1, Response::Error(ErrorCode::InvalidState));
        assert!(matches!(
            rx.try_recv(),
            Ok(Err(RmdError::Refused { slot: 1, .. }))
        ));
    }

    #[test]
    fn silence_times_out_after_the_limit() {
        let mut q = RequestQueue::new(1);
        let (id, mut rx) = with_reply(&mut q, 1);
        let own = q.push(T0, 1, Request::Inventory, None);
        send_all(&mut q, T0 + Duration::from_secs(1));
        assert!(q.expire(T0 + Duration::from_secs(5)).is_empty());
        let expired = q.expire(T0 + Duration::from_secs(6));
        assert_eq!(
            expired,
            vec![Expired { id, slot: 1 }, Expired { id: own, slot: 1 }]
        );
        assert_eq!(rx.try_recv(), Ok(Err(RmdError::Timeout(1))));
    }

    #[test]
    fn a_detached_bmc_fails_only_its_own_requests() {
        let mut q = RequestQueue::new(1);
        let (_, mut rx1) = with_reply(&mut q, 1);
        let (_, mut rx2) = with_reply(&mut q, 2);
        q.fail_slot(1, &RmdError::Absent(1));
        assert_eq!(rx1.try_recv(), Ok(Err(RmdError::Absent(1))));
        assert!(rx2.try_recv().is_err(), "still waiting");
        assert_eq!(send_all(&mut q, T0).len(), 1);
    }

    #[test]
    fn abandoned_requests_are_not_sent_and_a_restart_stops_every_caller() {
        let mut q = RequestQueue::new(u32::MAX);
        let (first, _) = with_reply(&mut q, 1);
        let (second, mut rx) = with_reply(&mut q, 1);
        assert_eq!((first, second), (u32::MAX, 1), "ids wrap past 0");
        q.abandon(first);
        assert_eq!(send_all(&mut q, T0), vec![(1, second)]);
        q.stop();
        assert_eq!(rx.try_recv(), Ok(Err(RmdError::Stopped)));
        assert_eq!(q.next_id(), 2);
    }
}
