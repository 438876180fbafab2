//! The BMC's A/B boot decision, shared by the boot stage (`firmware/bootstage`), the
//! firmware image (`firmware/`) and the firmware core (`racklet-bmc`), so all three read the
//! same bytes the same way.
//!
//! - [`layout`]: where the boot stage, the two firmware slots and the key store sit in the
//!   RP2040's flash, and where an image runs (copied into SRAM).
//! - [`record`]: the key store's on-flash record (two sectors written alternately, each
//!   with a sequence number and a SHA-256), so a reset during a write keeps the last copy.
//! - [`select`]: the fixed-width boot selector at the start of the key store, the choice
//!   of slot (normal, the one try of a new slot, the fall-back), and the words the boot
//!   stage leaves in the watchdog's scratch registers for the firmware.
//!
//! The boot stage is written to flash only by a UF2 (never by an update), so what it reads
//! here is frozen: later key-store layouts keep the selector where it is.
#![no_std]

pub mod layout;
pub mod record;
pub mod select;

pub use select::{choose, BootChoice, BootKind, BootSelector};
