//! The boot repository of RFC-0002's bootstrap environment: each applied revision's boot
//! profiles become a standard TUF 1.0 repository (root, targets, snapshot and timestamp
//! roles, thresholds, expiry, versions, consistent snapshots), made and verified with
//! `tough`, never with hand-written metadata, so any TUF client can read it.
//!
//! - [`keys`] — the key directory, root version 1, rotations that clients follow.
//! - [`publish`] — a revision's profiles → signed metadata and content-addressed targets.
//! - [`profile`] — target names and the signed profile document.
//! - [`serve`] — the repository over HTTP(S), plain TUF layout, for any TUF client.
//! - [`client`] — loading and verifying the repository over HTTPS with a pinned
//!   certificate, with an anti-rollback floor, and streaming a target with its length and
//!   SHA-256 checked.

pub mod client;
pub mod keys;
pub mod profile;
pub mod publish;
#[cfg(feature = "serve")]
pub mod serve;

pub use client::{ClientError, HttpsTransport, VerifiedRepository};
pub use keys::{KeyError, KeyOptions, KeyStore, Role};
pub use profile::{Part, ProfileDocument};
pub use publish::{BootRepository, Lifetimes, ProfilePayload, PublishError, Published, Versions};

/// The TUF specification version of the metadata written.
pub const SPEC_VERSION: &str = "1.0.0";
