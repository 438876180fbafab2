//! Network boot on the BMC, the root of trust for what its compute unit boots: the
//! configuration the daemon set (in the key store, beside the identity and the firmware
//! trust anchors) is served to the bootstrap agent over the boot channel, a second UART
//! (`racklet_mgmt_proto::boot_channel`); the highest TUF versions a bootstrap accepted are
//! anti-rollback counters that never go down, and the latest time one saw bounds the
//! clock a later one may trust. What the bootstrap measured before its hand-off is kept
//! for the daemon (Redfish shows it).

use racklet_mgmt_proto::boot_channel::{FromBmc, FromHost, Refusal};
use racklet_mgmt_proto::message::{BootMode, BootReport, BootStage, Measurement, FAILURE_LEN};

use crate::storage::KeyStore;

/// Domain separation of the node identity from the BMC's own identity.
const NODE_IDENTITY_CONTEXT: &[u8] = b"racklet node identity v1";

/// The seed of the node's identity: SHA-256 over a context and the BMC's identity seed, so
/// it is the same at every boot of this tray and tells nothing of the BMC's own key.
/// `None` before the BMC has an identity.
pub fn node_identity_seed(keys: &KeyStore) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    let seed = keys.identity_seed?;
    let mut h = sha2::Sha256::new();
    h.update(NODE_IDENTITY_CONTEXT);
    h.update(seed);
    Some(h.finalize().into())
}

/// The boot channel's state between power-ons (the counters live in the key store).
#[derive(Debug, Default)]
pub struct BootChannel {
    /// The node identity's public key, derived once (an RP2040 has no time to spare).
    node_public: [u8; 32],
    stage: BootStage,
    measurement: Option<Measurement>,
    last_failure: heapless::String<FAILURE_LEN>,
}

impl BootChannel {
    pub fn new(keys: &KeyStore) -> Self {
        BootChannel {
            node_public: node_identity_seed(keys).map_or([0; 32], |seed| {
                ed25519_dalek::SigningKey::from_bytes(&seed)
                    .verifying_key()
                    .to_bytes()
            }),
            ..BootChannel::default()
        }
    }

    /// The tray was switched on: what an earlier boot reported no longer describes it.
    pub fn power_on(&mut self) {
        self.stage = BootStage::Idle;
        self.measurement = None;
    }

    pub fn report(&self, keys: &KeyStore) -> BootReport {
        BootReport {
            node_identity: self.node_public,
            configured: keys.network_boot.is_some(),
            accepted: keys.boot_accepted,
            latest_time_unix: keys.boot_latest_time_unix,
            stage: self.stage,
            measurement: self.measurement.clone(),
            last_failure: self.last_failure.clone(),
        }
    }

    /// Answers one message from the bootstrap; the `bool` says the key store changed
    /// (the caller persists it before the answer leaves).
    pub fn answer(
        &mut self,
        msg: FromHost,
        mode: BootMode,
        keys: &mut KeyStore,
    ) -> (FromBmc, bool) {
        if mode == BootMode::Local {
            return (FromBmc::Refused(Refusal::LocalBoot), false);
        }
        let Some(config) = keys.network_boot.clone() else {
            return (FromBmc::Refused(Refusal::NotConfigured), false);
        };
        if self.stage == BootStage::HandedOff {
            return (FromBmc::Refused(Refusal::HandedOff), false);
        }
        match msg {
            FromHost::GetConfig => {
                self.stage = BootStage::ConfigServed;
                (
                    FromBmc::Config {
                        config,
                        accepted: keys.boot_accepted,
                        latest_time_unix: keys.boot_latest_time_unix,
                    },
                    false,
                )
            }
            FromHost::Accept {
                versions,
                time_unix,
            } => {
                if versions.below(&keys.boot_accepted) {
                    self.fail("refused a rollback: metadata versions below the accepted ones");
                    return (FromBmc::Refused(Refusal::Rollback), false);
                }
                let raised = versions.max(&keys.boot_accepted);
                let latest = keys.boot_latest_time_unix.max(time_unix);
                let changed = raised != keys.boot_accepted || latest != keys.boot_latest_time_unix;
                keys.boot_accepted = raised;
                keys.boot_latest_time_unix = latest;
                (FromBmc::Ack, changed)
            }
            FromHost::NodeIdentity => match node_identity_seed(keys) {
                Some(seed) => (FromBmc::NodeIdentity { seed }, false),
                None => (FromBmc::Refused(Refusal::NotConfigured), false),
            },
            FromHost::Measured(m) => {
                if m.versions.below(&keys.boot_accepted) {
                    self.fail("refused a measurement of metadata below the accepted versions");
                    return (FromBmc::Refused(Refusal::Rollback), false);
                }
                self.measurement = Some(m);
                self.stage = BootStage::HandedOff;
                (FromBmc::Ack, false)
            }
            FromHost::Failed { message } => {
                self.stage = BootStage::Failed;
                self.last_failure = message;
                (FromBmc::Ack, false)
            }
        }
    }

    fn fail(&mut self, message: &str) {
        self.stage = BootStage::Failed;
        self.last_failure.clear();
        for c in message.chars() {
            if self.last_failure.push(c).is_err() {
                break;
            }
        }
    }
}
