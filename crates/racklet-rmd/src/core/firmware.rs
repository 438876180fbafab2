//! A BMC firmware update as a pure state machine: the job says which request to send next
//! ([`FirmwareJob::next_request`]) and turns each input (the BMC's answer, no answer, the
//! BMC detached) into its next stage and a list of [`Action`]s for the daemon to carry out
//! (log an event, greet the rebooted BMC). It does no I/O and reads no clock, so every
//! stage and every failure is unit-tested below.
//!
//! Stages: `Transferring` (begin, then one chunk per request) → `Verifying` (the BMC
//! checks the signature) → `Activating` → `Rebooting` (the BMC restarts into the new slot
//! and must confirm it) → `Confirmed`; any refusal, silence or unexpected answer →
//! `Failed`. A detach is expected only while `Rebooting` (USB re-enumerates).

use std::sync::Arc;

use racklet_mgmt_proto::message::{Request, Response, FIRMWARE_CHUNK};
use racklet_rmd_api::{RmdError, Severity, UpdateProgress, UpdateStep};

use super::requests::refusal;

/// [`FIRMWARE_CHUNK`] as the protocol's `u32` offsets count it.
// reason: the chunk is 512 bytes; the assertion below stops the build if it ever outgrows u32.
#[allow(clippy::cast_possible_truncation)]
const CHUNK: u32 = FIRMWARE_CHUNK as u32;
const _: () = assert!(FIRMWARE_CHUNK <= u32::MAX as usize);

/// Where a BMC firmware update stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareStage {
    Transferring {
        sent: u32,
        size: u32,
    },
    /// The whole image is across; the BMC verifies its signature.
    Verifying,
    Activating,
    /// The BMC reboots into the new slot; the daemon waits for it to come back.
    Rebooting,
    Confirmed {
        version: u32,
    },
    Failed(String),
}

impl FirmwareStage {
    pub fn is_active(&self) -> bool {
        !matches!(
            self,
            FirmwareStage::Confirmed { .. } | FirmwareStage::Failed(_)
        )
    }
}

/// What happened to the job's outstanding request.
// Lives on the stack for one call; boxing the answer would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The BMC answered.
    Answer(Response),
    /// The request timed out.
    NoAnswer,
    /// The BMC left the hub.
    Detached,
}

/// What the daemon must do after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record an event about the job's tray.
    Log(Severity, String),
    /// The BMC restarts now: its session is over; greet it again.
    Greet,
}

/// One BMC firmware update, driven a request at a time.
#[derive(Debug, Clone)]
pub struct FirmwareJob {
    pub slot: u32,
    image: Arc<Vec<u8>>,
    /// `image.len()`, which [`FirmwareJob::new`] checked fits the protocol's `u32`.
    size: u32,
    version: u32,
    signature: heapless::Vec<u8, 64>,
    pub stage: FirmwareStage,
    /// The BMC accepted `FirmwareBegin`.
    begun: bool,
    /// The id of the request the job waits for, if any.
    awaiting: Option<u32>,
}

impl FirmwareJob {
    /// A job for a signed image; refused if the signature is not 64 bytes or the image
    /// does not fit the protocol's 32-bit sizes.
    pub fn new(
        slot: u32,
        image: Arc<Vec<u8>>,
        version: u32,
        signature: &[u8],
    ) -> Result<FirmwareJob, RmdError> {
        let signature = <[u8; 64]>::try_from(signature)
            .ok()
            .and_then(|s| heapless::Vec::from_slice(&s).ok())
            .ok_or_else(|| RmdError::Refused {
                slot,
                reason: "a signature is 64 bytes".into(),
            })?;
        let size = u32::try_from(image.len()).map_err(|_| RmdError::Refused {
            slot,
            reason: "image too large".into(),
        })?;
        Ok(FirmwareJob {
            slot,
            image,
            size,
            version,
            signature,
            stage: FirmwareStage::Transferring { sent: 0, size },
            begun: false,
            awaiting: None,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The id of the request the job waits for.
    pub fn awaiting(&self) -> Option<u32> {
        self.awaiting
    }

    /// The request to send now, if the job is active and waits for nothing.
    pub fn next_request(&self) -> Option<Request> {
        if self.awaiting.is_some() {
            return None;
        }
        Some(match &self.stage {
            FirmwareStage::Transferring { .. } if !self.begun => Request::FirmwareBegin {
                size: self.size(),
                version: self.version,
            },
            FirmwareStage::Transferring { sent, size } => {
                let end = (*sent as usize + FIRMWARE_CHUNK).min(*size as usize);
                let data =
                    heapless::Vec::from_slice(&self.image[*sent as usize..end]).unwrap_or_default();
                Request::FirmwareChunk {
                    offset: *sent,
                    data,
                }
            }
            FirmwareStage::Verifying => Request::FirmwareFinish {
                signature: self.signature.clone(),
            },
            FirmwareStage::Activating => Request::FirmwareActivate,
            FirmwareStage::Rebooting => Request::FirmwareConfirm,
            FirmwareStage::Confirmed { .. } | FirmwareStage::Failed(_) => return None,
        })
    }

    /// The request from [`FirmwareJob::next_request`] went out with this id.
    pub fn sent(&mut self, id: u32) {
        self.awaiting = Some(id);
    }

    fn size(&self) -> u32 {
        self.size
    }

    fn fail(&mut self, reason: String) -> Vec<Action> {
        let slot = self.slot;
        self.awaiting = None;
        let message = format!("firmware update of tray {slot} failed: {reason}");
        self.stage = FirmwareStage::Failed(reason);
        vec![Action::Log(Severity::Warning, message)]
    }

    /// Advances the job on one input; returns what the daemon must do.
    pub fn on(&mut self, input: Input) -> Vec<Action> {
        if !self.stage.is_active() {
            return Vec::new();
        }
        let (slot, version) = (self.slot, self.version);
        let response = match input {
            Input::Detached if self.stage == FirmwareStage::Rebooting => {
                // Rebooting into new firmware re-enumerates on USB: expected. A confirm
                // already sent went down with the link: ask again once it is back.
                self.awaiting = None;
                return Vec::new();
            }
            Input::Detached => {
                return self.fail(
                    "the BMC detached during the update; its running slot is unchanged".into(),
                )
            }
            Input::NoAnswer => {
                return self.fail("the BMC stopped answering during the update".into())
            }
            Input::Answer(r) => r,
        };
        self.awaiting = None;
        match (&self.stage, response) {
            (_, Response::Error(code)) => self.fail(refusal(code).to_string()),
            (FirmwareStage::Transferring { sent, size }, Response::Ack) => {
                let (sent, size) = (*sent, *size);
                if !self.begun {
                    self.begun = true;
                    if size == 0 {
                        self.stage = FirmwareStage::Verifying;
                    }
                } else {
                    let sent = sent.saturating_add(CHUNK).min(size);
                    self.stage = if sent < size {
                        FirmwareStage::Transferring { sent, size }
                    } else {
                        FirmwareStage::Verifying
                    };
                }
                Vec::new()
            }
            (FirmwareStage::Verifying, Response::Ack) => {
                self.stage = FirmwareStage::Activating;
                Vec::new()
            }
            (FirmwareStage::Activating, Response::Ack) => {
                self.stage = FirmwareStage::Rebooting;
                vec![
                    Action::Greet,
                    Action::Log(
                        Severity::Info,
                        format!("tray {slot}'s BMC reboots into firmware {version}"),
                    ),
                ]
            }
            (FirmwareStage::Rebooting, Response::Inventory(inv)) => {
                if inv.firmware_version == version && !inv.trial {
                    self.stage = FirmwareStage::Confirmed { version };
                    vec![Action::Log(
                        Severity::Info,
                        format!("tray {slot}'s BMC runs and confirmed firmware {version}"),
                    )]
                } else if inv.firmware_version == version {
                    self.fail(format!(
                        "the BMC runs firmware {version} but did not confirm it"
                    ))
                } else {
                    self.fail(format!(
                        "the BMC came back with firmware {}, not {version}",
                        inv.firmware_version
                    ))
                }
            }
            (_, other) => self.fail(format!("unexpected answer {other:?}")),
        }
    }

    /// The job as the API reports it.
    pub fn progress(&self) -> UpdateProgress {
        let (step, percent) = match &self.stage {
            // The transfer is most of the time: 0–80 %, then 80, 85, 90, 100.
            FirmwareStage::Transferring { sent, size } => (
                UpdateStep::Transferring,
                // sent <= size, so at most 80.
                u8::try_from(u64::from(*sent) * 80 / u64::from((*size).max(1))).unwrap_or(80),
            ),
            FirmwareStage::Verifying => (UpdateStep::Verifying, 80),
            FirmwareStage::Activating => (UpdateStep::Activating, 85),
            FirmwareStage::Rebooting => (UpdateStep::Rebooting, 90),
            FirmwareStage::Confirmed { .. } => (UpdateStep::Confirmed, 100),
            FirmwareStage::Failed(reason) => (UpdateStep::Failed(reason.clone()), 100),
        };
        UpdateProgress {
            slot: self.slot,
            version: self.version,
            step,
            percent,
        }
    }
}

#[cfg(test)]
// reason: the test image is a few chunks long; its sizes and offsets fit u8 and u32.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use racklet_mgmt_proto::message::{ErrorCode, Inventory, Slot};

    const SIZE: usize = FIRMWARE_CHUNK * 2 + 10;

    fn job() -> FirmwareJob {
        let image: Vec<u8> = (0..SIZE).map(|i| i as u8).collect();
        FirmwareJob::new(4, Arc::new(image), 2, &[7; 64]).expect("valid job")
    }

    /// Sends the next request (as id `id`) and answers it.
    fn answer(j: &mut FirmwareJob, id: u32, response: Response) -> Vec<Action> {
        assert!(j.next_request().is_some(), "{:?} has a request", j.stage);
        j.sent(id);
        assert_eq!(j.next_request(), None, "one request at a time");
        j.on(Input::Answer(response))
    }

    fn inventory(version: u32, trial: bool) -> Response {
        Response::Inventory(Inventory {
            board: heapless::String::new(),
            serial: 1,
            firmware_version: version,
            active_slot: Slot::B,
            trial,
            boot_counter: 2,
            last_reset_watchdog: false,
        })
    }

    fn failed(j: &FirmwareJob) -> String {
        match &j.stage {
            FirmwareStage::Failed(r) => r.clone(),
            other => panic!("not failed: {other:?}"),
        }
    }

    /// A job that went through `acks` acknowledged requests.
    fn after_acks(acks: u32) -> FirmwareJob {
        let mut j = job();
        for id in 1..=acks {
            answer(&mut j, id, Response::Ack);
        }
        j
    }

    #[test]
    fn new_refuses_a_short_signature() {
        let e = FirmwareJob::new(1, Arc::new(vec![0; 8]), 2, &[0; 10]).err();
        assert!(
            matches!(e, Some(RmdError::Refused { slot: 1, .. })),
            "{e:?}"
        );
    }

    #[test]
    fn transferring_begins_then_sends_every_chunk_in_order() {
        let mut j = job();
        assert_eq!(
            j.next_request(),
            Some(Request::FirmwareBegin {
                size: SIZE as u32,
                version: 2
            })
        );
        assert!(answer(&mut j, 1, Response::Ack).is_empty());
        let mut offsets = Vec::new();
        while let Some(Request::FirmwareChunk { offset, data }) = j.next_request() {
            assert_eq!(
                &data[..],
                &j.image[offset as usize..offset as usize + data.len()]
            );
            offsets.push(offset);
            answer(&mut j, 2 + offsets.len() as u32, Response::Ack);
        }
        assert_eq!(
            offsets,
            vec![0, FIRMWARE_CHUNK as u32, 2 * FIRMWARE_CHUNK as u32]
        );
        assert_eq!(j.stage, FirmwareStage::Verifying);
        assert_eq!(j.progress().percent, 80);
    }

    #[test]
    fn verifying_sends_the_signature_and_moves_to_activating() {
        let mut j = after_acks(4);
        assert_eq!(j.stage, FirmwareStage::Verifying);
        assert!(matches!(
            j.next_request(),
            Some(Request::FirmwareFinish { ref signature }) if signature[..] == [7; 64]
        ));
        answer(&mut j, 5, Response::Ack);
        assert_eq!(j.stage, FirmwareStage::Activating);
    }

    #[test]
    fn activating_ack_means_rebooting_and_greeting_the_new_firmware() {
        let mut j = after_acks(5);
        assert_eq!(j.next_request(), Some(Request::FirmwareActivate));
        let actions = answer(&mut j, 6, Response::Ack);
        assert_eq!(j.stage, FirmwareStage::Rebooting);
        assert_eq!(actions[0], Action::Greet);
        assert!(matches!(&actions[1], Action::Log(Severity::Info, m) if m.contains("reboots")));
    }

    #[test]
    fn rebooting_expects_the_detach_and_confirms_the_new_version() {
        let mut j = after_acks(6);
        assert!(j.on(Input::Detached).is_empty(), "expected re-enumeration");
        assert_eq!(j.stage, FirmwareStage::Rebooting);
        assert_eq!(j.next_request(), Some(Request::FirmwareConfirm));
        let actions = answer(&mut j, 7, inventory(2, false));
        assert_eq!(j.stage, FirmwareStage::Confirmed { version: 2 });
        assert!(matches!(&actions[0], Action::Log(Severity::Info, m) if m.contains("confirmed")));
        assert_eq!(j.next_request(), None);
        assert_eq!(j.progress().step, UpdateStep::Confirmed);
        assert!(
            j.on(Input::NoAnswer).is_empty(),
            "a finished job ignores inputs"
        );
    }

    #[test]
    fn a_detach_after_the_confirm_was_sent_asks_again_instead_of_waiting_forever() {
        let mut j = after_acks(6);
        assert_eq!(j.next_request(), Some(Request::FirmwareConfirm));
        j.sent(7);
        // The new firmware crashes and the BMC reverts: the link drops with the confirm.
        assert!(j.on(Input::Detached).is_empty());
        assert_eq!(j.stage, FirmwareStage::Rebooting);
        assert_eq!(j.next_request(), Some(Request::FirmwareConfirm));
    }

    #[test]
    fn rebooting_into_another_version_fails() {
        let mut j = after_acks(6);
        answer(&mut j, 7, inventory(1, false));
        assert!(failed(&j).contains("came back with firmware 1"));
    }

    #[test]
    fn rebooting_into_an_unconfirmed_trial_fails() {
        let mut j = after_acks(6);
        answer(&mut j, 7, inventory(2, true));
        assert!(failed(&j).contains("did not confirm"));
    }

    #[test]
    fn a_refusal_fails_the_job_in_every_stage() {
        for (acks, code) in [
            (0, ErrorCode::InvalidState),
            (1, ErrorCode::BadImage),
            (4, ErrorCode::BadSignature),
            (5, ErrorCode::Rollback),
            (6, ErrorCode::BadRequest),
        ] {
            let mut j = after_acks(acks);
            let actions = answer(&mut j, 99, Response::Error(code));
            assert_eq!(failed(&j), refusal(code), "after {acks} acks");
            assert!(
                matches!(&actions[0], Action::Log(Severity::Warning, m) if m.contains("failed")),
                "{actions:?}"
            );
            assert_eq!(j.next_request(), None);
        }
    }

    #[test]
    fn silence_fails_the_job() {
        let mut j = after_acks(2);
        j.sent(3);
        j.on(Input::NoAnswer);
        assert!(failed(&j).contains("stopped answering"));
    }

    #[test]
    fn a_detach_outside_the_reboot_fails_the_job() {
        for acks in [0, 2, 4, 5] {
            let mut j = after_acks(acks);
            j.on(Input::Detached);
            assert!(failed(&j).contains("detached"), "after {acks} acks");
        }
    }

    #[test]
    fn an_unexpected_answer_fails_the_job() {
        let mut j = after_acks(2);
        answer(&mut j, 3, inventory(2, false));
        assert!(failed(&j).starts_with("unexpected answer"));
    }
}
