//! Which slot the boot stage runs, and what it tells the firmware.
//!
//! The key store (a `racklet-bmc` `KeyStore`) starts with a [`BootSelector`]: four fixed
//! bytes the boot stage reads without knowing the rest of the layout. A new slot gets one
//! try: the stage boots it as [`BootKind::Trial`] and marks the try in a watchdog scratch
//! register (kept across resets, lost at power-off); the firmware, once running, records
//! the try in the key store, and must confirm within its trial time. A reset before that
//! (a watchdog bite, a crash, the trial timing out) makes the stage boot the other slot as
//! [`BootKind::FellBack`]. The stage hands its choice to the firmware in another scratch
//! register ([`handoff_word`]).

use crate::layout::{IMAGE_MAX_BYTES, RUN_ADDRESS, SRAM_BASE, SRAM_END};

/// The key-store layout that starts with a selector (earlier layouts start with 0 or 1).
pub const SELECTOR_LAYOUT: u8 = 3;
/// Bytes of an encoded selector.
pub const SELECTOR_BYTES: usize = 4;

/// The boot decision's inputs, at the start of the key store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootSelector {
    /// The slot to boot (0 = A, 1 = B).
    pub active: u8,
    /// `active` is new and has not confirmed itself.
    pub trial: bool,
    /// The firmware has recorded that it booted the trial slot once.
    pub trial_booted: bool,
}

impl BootSelector {
    pub fn to_bytes(self) -> [u8; SELECTOR_BYTES] {
        [
            SELECTOR_LAYOUT,
            self.active & 1,
            u8::from(self.trial),
            u8::from(self.trial_booted),
        ]
    }

    /// The selector at the start of a key-store payload; `None` for a layout without one.
    pub fn from_payload(payload: &[u8]) -> Option<BootSelector> {
        let flag = |b: u8| match b {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        match *payload.get(..SELECTOR_BYTES)? {
            [SELECTOR_LAYOUT, active @ (0 | 1), trial, trial_booted] => Some(BootSelector {
                active,
                trial: flag(trial)?,
                trial_booted: flag(trial_booted)?,
            }),
            _ => None,
        }
    }
}

/// Why a slot was booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootKind {
    /// The active slot, confirmed.
    Normal,
    /// The one try of a new slot.
    Trial,
    /// The other slot: the trial was used up, or the chosen slot held no image.
    FellBack,
}

/// A slot and why it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootChoice {
    pub slot: u8,
    pub kind: BootKind,
}

/// The slot to boot from the selector (none: slot A, as a board fresh from its UF2) and
/// whether the trial slot was already tried since power-on.
pub fn choose(selector: Option<BootSelector>, tried: bool) -> BootChoice {
    let Some(s) = selector else {
        return BootChoice {
            slot: 0,
            kind: BootKind::Normal,
        };
    };
    let active = s.active & 1;
    match (s.trial, s.trial_booted || tried) {
        (false, _) => BootChoice {
            slot: active,
            kind: BootKind::Normal,
        },
        (true, false) => BootChoice {
            slot: active,
            kind: BootKind::Trial,
        },
        (true, true) => BootChoice {
            slot: active ^ 1,
            kind: BootKind::FellBack,
        },
    }
}

/// [`choose`], then the other slot if the chosen one holds no bootable image (`valid`
/// says which do); `None` when neither does. Falling back onto a trial slot that was
/// already tried gives it another try: it is the only image left.
pub fn decide(
    selector: Option<BootSelector>,
    tried: bool,
    valid: impl Fn(u8) -> bool,
) -> Option<BootChoice> {
    let first = choose(selector, tried);
    if valid(first.slot) {
        return Some(first);
    }
    let other = first.slot ^ 1;
    valid(other).then_some(BootChoice {
        slot: other,
        kind: if first.kind == BootKind::FellBack {
            BootKind::Trial
        } else {
            BootKind::FellBack
        },
    })
}

/// Whether an image's first two vector-table words (initial stack pointer, reset vector)
/// are those of an image linked to run at [`crate::layout::RUN_ADDRESS`]: erased flash,
/// a half-written slot or an image linked for execute-in-place all fail.
pub fn bootable(initial_sp: u32, reset_vector: u32) -> bool {
    let sp_ok = initial_sp > SRAM_BASE && initial_sp <= SRAM_END && initial_sp.is_multiple_of(4);
    let entry = reset_vector & !1;
    let entry_ok = reset_vector & 1 == 1 // Thumb
        && (RUN_ADDRESS..RUN_ADDRESS + IMAGE_MAX_BYTES).contains(&entry);
    sp_ok && entry_ok
}

/// The mark of a trial boot in scratch register 0, bound to the key-store record the stage
/// read (its sequence), so a mark left from an older trial never counts.
pub fn tried_word(record_sequence: u32) -> u32 {
    TRIED_MAGIC ^ record_sequence
}
const TRIED_MAGIC: u32 = 0x7472_6965; // "trie"

/// The stage's choice, for scratch register 1.
pub fn handoff_word(choice: BootChoice) -> u32 {
    let kind = match choice.kind {
        BootKind::Normal => 0,
        BootKind::Trial => 1,
        BootKind::FellBack => 2,
    };
    HANDOFF_MAGIC | (kind << 8) | u32::from(choice.slot & 1)
}
const HANDOFF_MAGIC: u32 = 0x5242_0000; // "RB"

/// The choice in scratch register 1, if the stage left one.
pub fn parse_handoff(word: u32) -> Option<BootChoice> {
    if word & 0xFFFF_0000 != HANDOFF_MAGIC || word & 0xFC != 0 {
        return None;
    }
    let kind = match (word >> 8) & 0xFF {
        0 => BootKind::Normal,
        1 => BootKind::Trial,
        2 => BootKind::FellBack,
        _ => return None,
    };
    let slot = u8::try_from(word & 0x3).ok().filter(|s| *s < 2)?;
    Some(BootChoice { slot, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_SELECTORS: [Option<BootSelector>; 9] = {
        const fn s(active: u8, trial: bool, trial_booted: bool) -> Option<BootSelector> {
            Some(BootSelector {
                active,
                trial,
                trial_booted,
            })
        }
        [
            None,
            s(0, false, false),
            s(1, false, false),
            s(0, true, false),
            s(1, true, false),
            s(0, true, true),
            s(1, true, true),
            s(0, false, true),
            s(1, false, true),
        ]
    };

    #[test]
    fn a_selector_reads_back_from_the_start_of_the_key_store() {
        for s in ALL_SELECTORS.into_iter().flatten() {
            let mut payload = s.to_bytes().to_vec();
            payload.extend_from_slice(b"rest of the key store");
            assert_eq!(BootSelector::from_payload(&payload), Some(s));
        }
    }

    #[test]
    fn older_key_store_layouts_and_damaged_selectors_have_no_selector() {
        // Layouts 1 and 2 start with the identity seed's Option tag.
        assert_eq!(BootSelector::from_payload(&[0, 0, 0, 0, 0]), None);
        assert_eq!(BootSelector::from_payload(&[1, 7, 7, 7, 7]), None);
        assert_eq!(BootSelector::from_payload(&[3, 2, 0, 0]), None);
        assert_eq!(BootSelector::from_payload(&[3, 0, 2, 0]), None);
        assert_eq!(BootSelector::from_payload(&[3, 0, 0]), None);
    }

    #[test]
    fn without_a_selector_slot_a_boots() {
        assert_eq!(
            choose(None, true),
            BootChoice {
                slot: 0,
                kind: BootKind::Normal
            }
        );
    }

    #[test]
    fn every_selector_and_try_mark_gives_the_documented_choice() {
        for selector in ALL_SELECTORS {
            for tried in [false, true] {
                let c = choose(selector, tried);
                let Some(s) = selector else { continue };
                let expected = if !s.trial {
                    (s.active, BootKind::Normal)
                } else if !s.trial_booted && !tried {
                    (s.active, BootKind::Trial)
                } else {
                    (s.active ^ 1, BootKind::FellBack)
                };
                assert_eq!((c.slot, c.kind), expected, "{s:?} tried={tried}");
            }
        }
    }

    #[test]
    fn a_trial_slot_is_never_entered_twice_without_a_record_of_the_first_try() {
        // The firmware died before recording its try: the scratch mark still says tried.
        for active in [0, 1] {
            let s = Some(BootSelector {
                active,
                trial: true,
                trial_booted: false,
            });
            let first = choose(s, false);
            assert_eq!(first.kind, BootKind::Trial);
            let again = choose(s, true);
            assert_eq!((again.slot, again.kind), (active ^ 1, BootKind::FellBack));
        }
    }

    #[test]
    fn an_empty_chosen_slot_boots_the_other_and_none_boots_when_both_are_empty() {
        let s = Some(BootSelector {
            active: 1,
            trial: false,
            trial_booted: false,
        });
        assert_eq!(
            decide(s, false, |slot| slot == 0),
            Some(BootChoice {
                slot: 0,
                kind: BootKind::FellBack
            })
        );
        assert_eq!(decide(s, false, |_| false), None);
        assert_eq!(
            decide(s, false, |_| true),
            Some(BootChoice {
                slot: 1,
                kind: BootKind::Normal
            })
        );
        // The old slot is gone after a used-up trial: the trial slot gets another try.
        let used_up = Some(BootSelector {
            active: 1,
            trial: true,
            trial_booted: true,
        });
        assert_eq!(
            decide(used_up, false, |slot| slot == 1),
            Some(BootChoice {
                slot: 1,
                kind: BootKind::Trial
            })
        );
    }

    #[test]
    fn only_images_linked_to_run_from_sram_are_bootable() {
        assert!(bootable(0x2004_1000, 0x2000_00C1));
        assert!(!bootable(0xFFFF_FFFF, 0xFFFF_FFFF), "erased flash");
        assert!(
            !bootable(0x2004_2000, 0x1000_01C1),
            "an execute-in-place image"
        );
        assert!(!bootable(0x2004_1000, 0x2000_00C0), "not Thumb");
        assert!(!bootable(0x2004_2004, 0x2000_00C1), "stack above SRAM");
        assert!(!bootable(0x2004_1002, 0x2000_00C1), "unaligned stack");
        assert!(
            !bootable(0x2004_1000, RUN_ADDRESS + IMAGE_MAX_BYTES + 1),
            "entry past the code"
        );
    }

    #[test]
    fn the_handoff_word_round_trips_and_nothing_else_parses() {
        for slot in [0, 1] {
            for kind in [BootKind::Normal, BootKind::Trial, BootKind::FellBack] {
                let c = BootChoice { slot, kind };
                assert_eq!(parse_handoff(handoff_word(c)), Some(c));
            }
        }
        assert_eq!(parse_handoff(0), None);
        assert_eq!(parse_handoff(0xFFFF_FFFF), None);
        assert_eq!(parse_handoff(HANDOFF_MAGIC | 0x0302), None);
    }

    #[test]
    fn a_try_mark_belongs_to_one_key_store_record() {
        assert_ne!(tried_word(5), tried_word(6));
        assert_ne!(tried_word(5), 0, "a cleared register is no mark");
    }
}
