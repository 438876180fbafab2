//! Where the BMC keeps what must survive a reset: the key store and the two firmware slots,
//! in the flash map of `racklet_bootsel::layout` (boot2 and the boot stage, slot A, slot B,
//! the key store), with the key store in `racklet_bootsel::record`'s two-sector records so
//! a reset in the middle of a write leaves the previous copy readable.
//!
//! Slots are erased a sector at a time as an update's chunks arrive, so no request blocks
//! the loop (and the watchdog) for longer than one sector erase.
//!
//! Emulator builds (feature `emulator`, for rp2040js, whose flash model cannot erase or
//! program) read the key store from flash once and then keep it, and the slots, in RAM:
//! a reset forgets what was written since.

use embassy_rp::flash::{Blocking, Flash};
use embassy_rp::peripherals::FLASH;
use racklet_bootsel::layout::{FLASH_BYTES, KEY_SECTORS};
use racklet_bootsel::record::{self, SECTOR};
use racklet_hal::{FirmwareSlots, KeyStorage};

/// Storage errors.
#[cfg_attr(feature = "emulator", allow(dead_code))] // RAM never fails
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageError {
    /// The flash driver failed (address, alignment, or the part did not answer).
    Flash,
    /// More bytes than a sector (or a slot) holds.
    TooLarge,
    /// A slot number other than 0 (A) or 1 (B).
    NoSuchSlot,
    /// A write into a slot before its `erase`, or not in order.
    NotErased,
}

impl From<record::TooLarge> for StorageError {
    fn from(_: record::TooLarge) -> Self {
        StorageError::TooLarge
    }
}

/// The flash, shared by the key store and the slots (one borrower at a time).
pub type FlashCell = core::cell::RefCell<Flash<'static, FLASH, Blocking, { FLASH_BYTES as usize }>>;
pub type SharedFlash = &'static FlashCell;

/// Both key-store sectors as they are in flash, into `sectors`.
fn read_key_sectors(
    flash: SharedFlash,
    sectors: &mut [[u8; SECTOR]; 2],
) -> Result<(), StorageError> {
    let mut flash = flash.borrow_mut();
    for (sector, at) in sectors.iter_mut().zip(KEY_SECTORS) {
        flash
            .blocking_read(at, sector)
            .map_err(|_| StorageError::Flash)?;
    }
    Ok(())
}

/// The newest record's payload into `buf`, and where it is: (sector, sequence, length).
fn load_newest(
    sectors: &[[u8; SECTOR]; 2],
    buf: &mut [u8],
) -> Result<Option<(usize, u32, usize)>, StorageError> {
    let Some((index, r)) = record::newest([&sectors[0], &sectors[1]]) else {
        return Ok(None);
    };
    let payload = r.payload(&sectors[index]).ok_or(StorageError::TooLarge)?;
    buf.get_mut(..r.len)
        .ok_or(StorageError::TooLarge)?
        .copy_from_slice(payload);
    Ok(Some((index, r.sequence, r.len)))
}

#[cfg(not(feature = "emulator"))]
pub use flash::{FlashKeys, FlashSlots};
#[cfg(feature = "emulator")]
pub use ram::{RamKeys, RamSlots, RAM_SLOT_BYTES};

#[cfg(not(feature = "emulator"))]
mod flash {
    use racklet_bootsel::layout::{slot_offset, IMAGE_MAX_BYTES, SECTOR_BYTES};

    use super::*;

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
            let mut sectors = [[0u8; SECTOR]; 2];
            read_key_sectors(self.flash, &mut sectors)?;
            let found = load_newest(&sectors, buf)?;
            self.newest = found.map(|(index, sequence, _)| (index, sequence));
            Ok(found.map(|(_, _, len)| len))
        }

        fn store(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
            let (target, sequence) = record::next(self.newest);
            let mut sector = [0xFFu8; SECTOR];
            let len = record::build(sequence, bytes, &mut sector)?;
            // Program whole 256-byte pages.
            let len = len.div_ceil(256) * 256;
            let at = KEY_SECTORS[target];
            let mut flash = self.flash.borrow_mut();
            flash
                .blocking_erase(at, at + SECTOR_BYTES)
                .map_err(|_| StorageError::Flash)?;
            flash
                .blocking_write(at, &sector[..len])
                .map_err(|_| StorageError::Flash)?;
            self.newest = Some((target, sequence));
            Ok(())
        }
    }

    /// The A/B slots in flash. `erase` wipes a slot's first sector (its vector table, so
    /// the boot stage no longer takes it for an image) and each later sector is erased
    /// when the first write reaches it: an update is written in order, from offset 0.
    pub struct FlashSlots {
        pub flash: SharedFlash,
        /// Per slot, the bytes from its start that are erased and not yet written past.
        erased_to: [u32; 2],
    }

    impl FlashSlots {
        pub fn new(flash: SharedFlash) -> Self {
            FlashSlots {
                flash,
                erased_to: [0; 2],
            }
        }

        /// The flash offset of `len` bytes at `offset` in `slot`, if they are inside it.
        fn locate(slot: u8, offset: u32, len: usize) -> Result<u32, StorageError> {
            let base = slot_offset(slot).ok_or(StorageError::NoSuchSlot)?;
            let len = u32::try_from(len).map_err(|_| StorageError::TooLarge)?;
            let end = offset.checked_add(len).ok_or(StorageError::TooLarge)?;
            if end > IMAGE_MAX_BYTES {
                return Err(StorageError::TooLarge);
            }
            Ok(base + offset)
        }
    }

    impl FirmwareSlots for FlashSlots {
        type Error = StorageError;

        fn capacity(&self) -> u32 {
            IMAGE_MAX_BYTES
        }

        fn erase(&mut self, slot: u8) -> Result<(), StorageError> {
            let at = Self::locate(slot, 0, 0)?;
            self.erased_to[usize::from(slot)] = 0;
            self.flash
                .borrow_mut()
                .blocking_erase(at, at + SECTOR_BYTES)
                .map_err(|_| StorageError::Flash)?;
            self.erased_to[usize::from(slot)] = SECTOR_BYTES;
            Ok(())
        }

        fn write(&mut self, slot: u8, offset: u32, data: &[u8]) -> Result<(), StorageError> {
            let at = Self::locate(slot, offset, data.len())?;
            let base = at - offset;
            let erased_to = &mut self.erased_to[usize::from(slot)];
            if *erased_to == 0 {
                return Err(StorageError::NotErased);
            }
            let end = at - base + u32::try_from(data.len()).map_err(|_| StorageError::TooLarge)?;
            let mut flash = self.flash.borrow_mut();
            while *erased_to < end {
                let sector = base + *erased_to;
                flash
                    .blocking_erase(sector, sector + SECTOR_BYTES)
                    .map_err(|_| StorageError::Flash)?;
                *erased_to += SECTOR_BYTES;
            }
            flash
                .blocking_write(at, data)
                .map_err(|_| StorageError::Flash)
        }

        fn read(&mut self, slot: u8, offset: u32, buf: &mut [u8]) -> Result<(), StorageError> {
            let at = Self::locate(slot, offset, buf.len())?;
            self.flash
                .borrow_mut()
                .blocking_read(at, buf)
                .map_err(|_| StorageError::Flash)
        }
    }
}

#[cfg(feature = "emulator")]
mod ram {
    use super::*;

    /// Bytes of one RAM slot in emulator builds: the tests' signed bundles (16 KiB).
    pub const RAM_SLOT_BYTES: u32 = 16 * 1024;

    /// The key store's two sectors, read from flash at start-up, then kept in RAM.
    pub struct RamKeys {
        pub sectors: &'static mut [[u8; SECTOR]; 2],
        newest: Option<(usize, u32)>,
    }

    impl RamKeys {
        /// The key store in `sectors`, which start as the flash's key-store sectors (a
        /// record the harness put in flash is read as a board would read it).
        pub fn new(
            flash: SharedFlash,
            sectors: &'static mut [[u8; SECTOR]; 2],
        ) -> Result<Self, StorageError> {
            read_key_sectors(flash, sectors)?;
            Ok(RamKeys {
                sectors,
                newest: None,
            })
        }
    }

    impl KeyStorage for RamKeys {
        type Error = StorageError;

        fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
            let found = load_newest(self.sectors, buf)?;
            self.newest = found.map(|(index, sequence, _)| (index, sequence));
            Ok(found.map(|(_, _, len)| len))
        }

        fn store(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
            let (target, sequence) = record::next(self.newest);
            let mut sector = [0xFFu8; SECTOR];
            record::build(sequence, bytes, &mut sector)?;
            self.sectors[target] = sector;
            self.newest = Some((target, sequence));
            Ok(())
        }
    }

    /// Two small firmware slots in RAM (enough for signed test bundles).
    pub struct RamSlots {
        pub slots: &'static mut [[u8; RAM_SLOT_BYTES as usize]; 2],
    }

    impl RamSlots {
        /// The slots in `slots`, erased.
        pub fn new(slots: &'static mut [[u8; RAM_SLOT_BYTES as usize]; 2]) -> Self {
            for slot in slots.iter_mut() {
                slot.fill(0xFF);
            }
            RamSlots { slots }
        }

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
