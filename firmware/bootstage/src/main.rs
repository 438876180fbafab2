//! The RP2040 BMC's A/B boot stage, at the start of flash after boot2 (the UF2 writes it;
//! an update never does). It reads the boot selector from the newest key-store record,
//! picks a slot with `racklet_bootsel::select::decide` (a new slot gets one try, marked
//! in watchdog scratch register 0), copies that slot's image into SRAM, leaves its choice
//! in scratch register 1 for the firmware, arms the watchdog so an image that hangs before
//! it takes the watchdog over is reset (and then not tried again), and jumps to it.
//!
//! It only reads flash, never writes it, and touches no clock: it runs on the ring
//! oscillator the boot ROM left, in SRAM bank 5 (which it never copies over). With no
//! bootable image in either slot it hands the chip to the boot ROM's USB mass-storage
//! mode, so a person can write a UF2.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use embassy_rp::pac;
use racklet_bootsel::layout::{slot_offset, KEY_SECTORS, RUN_ADDRESS, RUN_BYTES, XIP_BASE};
use racklet_bootsel::record::{self, SECTOR};
use racklet_bootsel::select::{self, BootKind, BootSelector};

/// The watchdog's load for about 8 s: ticks of at most 1 µs (see `arm_watchdog`), counted
/// down twice per tick (RP2040-E1).
const WATCHDOG_LOAD: u32 = 8_000_000 * 2;
/// Ring-oscillator cycles per watchdog tick: the oscillator runs at up to 12 MHz, so a tick
/// is never shorter than 1 µs (slower oscillators only lengthen the timeout).
const TICK_CYCLES: u16 = 12;

/// `len` bytes of flash at `offset`, read through execute-in-place.
fn flash(offset: u32, len: usize) -> &'static [u8] {
    // SAFETY: XIP maps all of flash read-only at XIP_BASE, boot2 has set it up, and nothing
    // writes flash while the stage runs; the offsets come from the fixed flash map, inside
    // the 2 MiB part.
    unsafe { core::slice::from_raw_parts((XIP_BASE + offset) as *const u8, len) }
}

/// The first two words of a slot: the image's initial stack pointer and reset vector.
fn vector_words(slot: u8) -> Option<(u32, u32)> {
    let bytes = flash(slot_offset(slot)?, 8);
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    Some((word(0)?, word(4)?))
}

fn bootable(slot: u8) -> bool {
    vector_words(slot).is_some_and(|(sp, reset)| select::bootable(sp, reset))
}

/// Starts the watchdog for about 8 s (the firmware reprograms it once it runs), resetting
/// everything but the oscillators, as the firmware's own watchdog does.
fn arm_watchdog() {
    pac::PSM
        .wdsel()
        .write_value(pac::psm::regs::Wdsel(0x0001_ffff & !0b11));
    pac::WATCHDOG.tick().write(|w| {
        w.set_enable(true);
        w.set_cycles(TICK_CYCLES);
    });
    pac::WATCHDOG
        .load()
        .write_value(pac::watchdog::regs::Load(WATCHDOG_LOAD));
    pac::WATCHDOG.ctrl().modify(|w| w.set_enable(true));
}

#[entry]
fn main() -> ! {
    let sectors = KEY_SECTORS.map(|at| flash(at, SECTOR));
    let newest = record::newest(sectors);
    let (selector, sequence) = match newest {
        Some((index, r)) => (
            r.payload(sectors[index])
                .and_then(BootSelector::from_payload),
            r.sequence,
        ),
        None => (None, 0),
    };
    let tried = pac::WATCHDOG.scratch0().read() == select::tried_word(sequence);
    let Some(choice) = select::decide(selector, tried, bootable) else {
        // Nothing to boot: the boot ROM's USB drive takes a UF2.
        embassy_rp::rom_data::reset_to_usb_boot(0, 0);
        loop {
            cortex_m::asm::wfi();
        }
    };
    let mark = if choice.kind == BootKind::Trial {
        select::tried_word(sequence)
    } else {
        0
    };
    pac::WATCHDOG.scratch0().write_value(mark);
    pac::WATCHDOG
        .scratch1()
        .write_value(select::handoff_word(choice));

    let Some(from) = slot_offset(choice.slot) else {
        loop {
            cortex_m::asm::wfi(); // `decide` only returns slots 0 and 1
        }
    };
    let image = flash(from, RUN_BYTES as usize);
    // SAFETY: the destination is SRAM below bank 5 (RUN_ADDRESS .. + RUN_BYTES), which
    // holds nothing of the stage (its stack and data are in bank 5); the source is flash,
    // which cannot overlap SRAM; both are word-aligned and RUN_BYTES long.
    unsafe {
        core::ptr::copy_nonoverlapping(image.as_ptr(), RUN_ADDRESS as *mut u8, image.len());
    }
    arm_watchdog();
    // SAFETY: the image at RUN_ADDRESS passed `bootable` (its stack pointer is in SRAM and
    // its reset vector is Thumb code inside the copied image); VTOR points the core at its
    // vector table before the jump, and nothing of the stage runs afterwards.
    unsafe {
        (*cortex_m::peripheral::SCB::PTR).vtor.write(RUN_ADDRESS);
        cortex_m::asm::bootload(RUN_ADDRESS as *const u32)
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // The stage has no way to report; the boot ROM's USB drive lets a person re-flash.
    embassy_rp::rom_data::reset_to_usb_boot(0, 0);
    loop {
        cortex_m::asm::wfi();
    }
}
