//! The bootstrap agent of RFC-0002's network boot, the first program of a compute unit
//! that boots over the network. Its BMC is its root of trust: over the boot channel (a
//! second UART, [`channel`]) it learns where the boot repository is, which profile to
//! boot, the digests of the TUF root and of the server's certificate, and the versions
//! and time accepted before. It then verifies the repository with `racklet-boot-repo`
//! (thresholds, expiry, versions against the BMC's counters, a clock never earlier than
//! the latest time seen), streams the payload with its length and SHA-256 checked, reports
//! the digests to the BMC and hands off ([`handoff`]: `kexec_file_load`, or an A/B slot
//! with one trial boot for boards without kexec). Any failure is one precise console line;
//! it retries with back-off, then boots the known-good profile, and never hands off
//! anything unverified ([`flow`]). It hands the booted system its node identity and what
//! it booted ([`node::Handover`]); the booted system's node agent ([`node::Agent`]) then
//! reports to the control plane over mutual TLS.

pub mod channel;
pub mod flow;
pub mod handoff;
pub mod initramfs;
pub mod node;

pub use channel::{BmcChannel, ChannelError};
pub use flow::{BootError, Bootstrap, Outcome, Retry};
pub use handoff::{AbDisk, Handoff, HandoffError, Kexec, Payload};
