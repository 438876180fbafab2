//! Where the BMC keeps what must survive a reset: the key store and the two firmware slots.
//!
//! Flash layout (2 MiB, offsets from 0x1000_0000):
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0x00_0000 | 960 KiB | slot A: boot2 and this image, as the UF2 writes them |
//! | 0x0F_0000 | 960 KiB | slot B: a staged image (once the A/B boot stage exists) |
//! | 0x1E_0000 | 120 KiB | reserved for the A/B boot stage's state |
//! | 0x1F_E000 | 2 × 4 KiB | key store, two copies written alternately |
//!
//! The key store is written to the older of its two sectors with a sequence number and a
//! SHA-256, so a reset in the middle of a write leaves the previous copy readable.
//!
//! Emulator builds (feature `emulator`, for rp2040js, whose flash model cannot erase or
//! program) keep both in RAM: a reset forgets them, as a new chip would.

use racklet_hal::{FirmwareSlots, KeyStorage};
use sha2::{Digest, Sha256};

const SECTOR: usize = 4096;
/// A record: magic, sequence, length, SHA-256 of the payload, payload.
const MAGIC: u32 = 0x5243_4B53; // "RCKS"
const RECORD_HEADER: usize = 4 + 4 + 2 + 32;

/// Storage errors.
#[cfg_attr(feature = "emulator", allow(dead_code))] // RAM never fails and needs no boot stage
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageError {
    /// The flash driver failed (address, alignment, or the part did not answer).
    Flash,
    /// More bytes than a sector (or a slot) holds.
    TooLarge,
    /// Firmware slots need the A/B boot stage, which this image does not have yet.
    NoBootStage,
    /// A slot number other than 0 (A) or 1 (B).
    NoSuchSlot,
}

/// A key-store record in `sector`, if it is whole: (sequence, payload length).
fn parse_record(sector: &[u8]) -> Option<(u32, usize)> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(sector.get(at..at + 4)?.try_into().ok()?))
    };
    if word(0)? != MAGIC {
        return None;
    }
    let sequence = word(4)?;
    let len = usize::from(u16::from_le_bytes(sector.get(8..10)?.try_into().ok()?));
    let digest = sector.get(10..RECORD_HEADER)?;
    let payload = sector.get(RECORD_HEADER..RECORD_HEADER + len)?;
    (Sha256::digest(payload).as_slice() == digest).then_some((sequence, len))
}

/// Builds the record for `payload` with `sequence` into `out`; its length.
fn build_record(
    sequence: u32,
    payload: &[u8],
    out: &mut [u8; SECTOR],
) -> Result<usize, StorageError> {
    let len = u16::try_from(payload.len()).map_err(|_| StorageError::TooLarge)?;
    let end = RECORD_HEADER + payload.len();
    if end > SECTOR {
        return Err(StorageError::TooLarge);
    }
    out[..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&sequence.to_le_bytes());
    out[8..10].copy_from_slice(&len.to_le_bytes());
    out[10..RECORD_HEADER].copy_from_slice(&Sha256::digest(payload));
    out[RECORD_HEADER..end].copy_from_slice(payload);
    Ok(end)
}

/// Picks the newest whole record of the two sectors: (index, sequence, length).
fn newest(sectors: [&[u8]; 2]) -> Option<(usize, u32, usize)> {
    let a = parse_record(sectors[0]).map(|(s, l)| (0, s, l));
    let b = parse_record(sectors[1]).map(|(s, l)| (1, s, l));
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.1.wrapping_sub(a.1) as i32 > 0 {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Where the next record goes and its sequence: the sector the newest is not in.
fn next_record(newest: Option<(usize, u32)>) -> (usize, u32) {
    match newest {
        Some((index, sequence)) => (index ^ 1, sequence.wrapping_add(1)),
        None => (0, 1),
    }
}

#[cfg(not(feature = "emulator"))]
pub use flash::{FlashCell, FlashKeys, FlashSlots, SharedFlash};
#[cfg(feature = "emulator")]
pub use ram::{RamKeys, RamSlots};

#[cfg(not(feature = "emulator"))]
mod flash {
    use core::cell::RefCell;

    use embassy_rp::flash::{Blocking, Flash};
    use embassy_rp::peripherals::FLASH;

    use super::*;

    pub const FLASH_SIZE: usize = 2 * 1024 * 1024;
    /// Bytes of one firmware slot in flash.
    pub const FLASH_SLOT_BYTES: u32 = 0x0F_0000;
    /// The key store's two sectors.
    pub const KEY_SECTORS: [u32; 2] = [0x1F_E000, 0x1F_F000];
    const SECTOR_BYTES: u32 = 4096;
    /// The flash, shared by the key store and the slots (one borrower at a time).
    pub type FlashCell = RefCell<Flash<'static, FLASH, Blocking, FLASH_SIZE>>;
    pub type SharedFlash = &'static FlashCell;

    /// The key store in its two flash sectors.
    pub struct FlashKeys {
        pub flash: SharedFlash,
        /// Sector the newest record is in, and its sequence.
        newest: Option<(usize, u32)>,
    }

    impl FlashKeys {
        pub fn new(flash: SharedFlash) -> Self {
            FlashKeys {
                flash,
                newest: None,
            }
        }
    }

    impl KeyStorage for FlashKeys {
        type Error = StorageError;

        fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
            let mut a = [0u8; SECTOR];
            let mut b = [0u8; SECTOR];
            let mut flash = self.flash.borrow_mut();
            flash
                .blocking_read(KEY_SECTORS[0], &mut a)
                .map_err(|_| StorageError::Flash)?;
            flash
                .blocking_read(KEY_SECTORS[1], &mut b)
                .map_err(|_| StorageError::Flash)?;
            let Some((index, sequence, len)) = newest([&a, &b]) else {
                return Ok(None);
            };
            self.newest = Some((index, sequence));
            let sector = if index == 0 { &a } else { &b };
            let out = buf.get_mut(..len).ok_or(StorageError::TooLarge)?;
            out.copy_from_slice(&sector[RECORD_HEADER..RECORD_HEADER + len]);
            Ok(Some(len))
        }

        fn store(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
            let (target, sequence) = next_record(self.newest);
            let mut record = [0xFFu8; SECTOR];
            let len = build_record(sequence, bytes, &mut record)?;
            // Program whole 256-byte pages.
            let len = len.div_ceil(256) * 256;
            let at = KEY_SECTORS[target];
            let mut flash = self.flash.borrow_mut();
            flash
                .blocking_erase(at, at + SECTOR_BYTES)
                .map_err(|_| StorageError::Flash)?;
            flash
                .blocking_write(at, &record[..len])
                .map_err(|_| StorageError::Flash)?;
            self.newest = Some((target, sequence));
            Ok(())
        }
    }

    /// The A/B slots in flash. Until the A/B boot stage exists the boot ROM always runs
    /// slot A, so an image staged in slot B could never boot: the board image offers no
    /// capacity and the core refuses every update with a clear error (reflash the UF2
    /// instead). Slot A can be read back.
    pub struct FlashSlots {
        pub flash: SharedFlash,
    }

    impl FirmwareSlots for FlashSlots {
        type Error = StorageError;

        fn capacity(&self) -> u32 {
            0
        }

        fn erase(&mut self, _slot: u8) -> Result<(), StorageError> {
            Err(StorageError::NoBootStage)
        }

        fn write(&mut self, _slot: u8, _offset: u32, _data: &[u8]) -> Result<(), StorageError> {
            Err(StorageError::NoBootStage)
        }

        fn read(&mut self, slot: u8, offset: u32, buf: &mut [u8]) -> Result<(), StorageError> {
            if slot != 0 {
                return Err(StorageError::NoSuchSlot);
            }
            let len = u32::try_from(buf.len()).map_err(|_| StorageError::TooLarge)?;
            let end = offset.checked_add(len).ok_or(StorageError::TooLarge)?;
            if end > FLASH_SLOT_BYTES {
                return Err(StorageError::TooLarge);
            }
            self.flash
                .borrow_mut()
                .blocking_read(offset, buf)
                .map_err(|_| StorageError::Flash)
        }
    }
}

#[cfg(feature = "emulator")]
mod ram {
    use super::*;

    /// Bytes of one RAM slot in emulator builds.
    pub const RAM_SLOT_BYTES: u32 = 32 * 1024;

    /// The key store's two sectors, in RAM.
    pub struct RamKeys {
        pub sectors: &'static mut [[u8; SECTOR]; 2],
        newest: Option<(usize, u32)>,
    }

    impl RamKeys {
        pub fn new(sectors: &'static mut [[u8; SECTOR]; 2]) -> Self {
            RamKeys {
                sectors,
                newest: None,
            }
        }
    }

    impl KeyStorage for RamKeys {
        type Error = StorageError;

        fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
            let Some((index, sequence, len)) = newest([&self.sectors[0], &self.sectors[1]]) else {
                return Ok(None);
            };
            self.newest = Some((index, sequence));
            let out = buf.get_mut(..len).ok_or(StorageError::TooLarge)?;
            out.copy_from_slice(&self.sectors[index][RECORD_HEADER..RECORD_HEADER + len]);
            Ok(Some(len))
        }

        fn store(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
            let (target, sequence) = next_record(self.newest);
            let mut record = [0xFFu8; SECTOR];
            build_record(sequence, bytes, &mut record)?;
            self.sectors[target] = record;
            self.newest = Some((target, sequence));
            Ok(())
        }
    }

    /// Two small firmware slots in RAM (enough for signed test bundles).
    pub struct RamSlots {
        pub slots: &'static mut [[u8; RAM_SLOT_BYTES as usize]; 2],
    }

    impl RamSlots {
        fn range(
            &self,
            slot: u8,
            offset: u32,
            len: usize,
        ) -> Result<(usize, core::ops::Range<usize>), StorageError> {
            let index = match slot {
                0 | 1 => usize::from(slot),
                _ => return Err(StorageError::NoSuchSlot),
            };
            let start = offset as usize;
            let end = start.checked_add(len).ok_or(StorageError::TooLarge)?;
            if end > RAM_SLOT_BYTES as usize {
                return Err(StorageError::TooLarge);
            }
            Ok((index, start..end))
        }
    }

    impl FirmwareSlots for RamSlots {
        type Error = StorageError;

        fn capacity(&self) -> u32 {
            RAM_SLOT_BYTES
        }

        fn erase(&mut self, slot: u8) -> Result<(), StorageError> {
            let (index, _) = self.range(slot, 0, 0)?;
            self.slots[index].fill(0xFF);
            Ok(())
        }

        fn write(&mut self, slot: u8, offset: u32, data: &[u8]) -> Result<(), StorageError> {
            let (index, range) = self.range(slot, offset, data.len())?;
            self.slots[index][range].copy_from_slice(data);
            Ok(())
        }

        fn read(&mut self, slot: u8, offset: u32, buf: &mut [u8]) -> Result<(), StorageError> {
            let (index, range) = self.range(slot, offset, buf.len())?;
            buf.copy_from_slice(&self.slots[index][range]);
            Ok(())
        }
    }
}
