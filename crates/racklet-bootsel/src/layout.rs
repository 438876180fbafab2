//! The RP2040 BMC's 2 MiB flash and where a firmware image runs.
//!
//! | flash offset | size | contents |
//! |---|---|---|
//! | 0x00_0000 | 256 B | boot2 (sets up execute-in-place for the W25Q16JV) |
//! | 0x00_0100 | 64 KiB − 256 B | the boot stage (written only by a UF2) |
//! | 0x01_0000 | 960 KiB | slot A |
//! | 0x10_0000 | 960 KiB | slot B |
//! | 0x1F_0000 | 56 KiB | reserved (the emulator's unique-ID sector at 0x1F_D000) |
//! | 0x1F_E000 | 2 × 4 KiB | the key store, two records written alternately |
//!
//! A slot holds one firmware image linked to run from SRAM at [`RUN_ADDRESS`]: the boot
//! stage copies it there and jumps to it, so one image (and one signature) serves both
//! slots.

/// Flash as the CPU sees it (execute-in-place).
pub const XIP_BASE: u32 = 0x1000_0000;
/// Bytes of flash on the Racklet BMC HAT (W25Q16JV).
pub const FLASH_BYTES: u32 = 2 * 1024 * 1024;
/// One erase sector.
pub const SECTOR_BYTES: u32 = 4096;
/// Where the boot stage's vector table is (after boot2).
pub const STAGE_OFFSET: u32 = 0x100;
/// The flash offset of each slot (A, B).
pub const SLOT_OFFSETS: [u32; 2] = [0x01_0000, 0x10_0000];
/// Bytes of one slot in flash.
pub const SLOT_BYTES: u32 = 960 * 1024;
/// The key store's two sectors.
pub const KEY_SECTORS: [u32; 2] = [0x1F_E000, 0x1F_F000];

/// SRAM (the striped banks 0–3, then banks 4 and 5).
pub const SRAM_BASE: u32 = 0x2000_0000;
pub const SRAM_END: u32 = 0x2004_2000;
/// Where a firmware image runs: copied here from its slot.
pub const RUN_ADDRESS: u32 = SRAM_BASE;
/// What the boot stage copies from a slot: everything below bank 5, which holds the
/// stage's own stack while it copies. An image's code, data and stack all fit below it.
pub const RUN_BYTES: u32 = 0x4_1000;
/// Most bytes of code and initialised data an image may have (the rest of [`RUN_BYTES`] is
/// its RAM). The build fails above this; it is also the most an update may write.
pub const IMAGE_MAX_BYTES: u32 = 192 * 1024;

/// The flash offset of `slot` (0 = A, 1 = B); `None` for any other number.
pub fn slot_offset(slot: u8) -> Option<u32> {
    SLOT_OFFSETS.get(usize::from(slot)).copied()
}
