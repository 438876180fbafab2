//! Tray indicators through Linux LEDs (`class/leds/NAME/brightness`): one LED per colour;
//! the one for the indicator's state is lit at its `max_brightness`, the others are off.
//! The daemon sets an indicator only when it changes, so a write that failed (an LED
//! driver not bound yet, permissions not applied yet) is retried here every few seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use racklet_hal::Indicator;

use super::TrayLeds;

/// How often indicators that could not be written are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// The trays' front LEDs.
pub struct Leds {
    sys: PathBuf,
    trays: BTreeMap<u32, TrayLeds>,
    /// What each tray shows now (written only on change).
    shown: BTreeMap<u32, Indicator>,
    /// What each tray should show.
    wanted: BTreeMap<u32, Indicator>,
    last_retry: Instant,
    /// Trays whose failure was logged (once, until a write works).
    warned: BTreeSet<u32>,
}

impl Leds {
    pub fn new(sys: &Path, trays: BTreeMap<u32, TrayLeds>) -> Leds {
        Leds {
            sys: sys.to_path_buf(),
            trays,
            shown: BTreeMap::new(),
            wanted: BTreeMap::new(),
            last_retry: Instant::now(),
            warned: BTreeSet::new(),
        }
    }

    /// Writes again the indicators whose last write failed (at most every few seconds).
    pub fn retry(&mut self) {
        if self.last_retry.elapsed() < RETRY_EVERY {
            return;
        }
        self.last_retry = Instant::now();
        let behind: Vec<(u32, Indicator)> = self
            .wanted
            .iter()
            .filter(|(slot, want)| self.shown.get(slot) != Some(want))
            .map(|(slot, want)| (*slot, *want))
            .collect();
        for (slot, want) in behind {
            self.set(slot, want);
        }
    }

    pub fn set(&mut self, slot: u32, indicator: Indicator) {
        self.wanted.insert(slot, indicator);
        if self.shown.get(&slot) == Some(&indicator) {
            return;
        }
        let Some(leds) = self.trays.get(&slot) else {
            return; // this chassis has no LED for the tray
        };
        let lit = match indicator {
            Indicator::Off => None,
            Indicator::Ok => leds.ok.as_deref(),
            Indicator::Attention => leds.attention.as_deref(),
            Indicator::Identify => leds.identify.as_deref(),
        };
        let all = [&leds.ok, &leds.attention, &leds.identify];
        let mut ok = true;
        for name in all.into_iter().flatten() {
            let dir = self.sys.join("class/leds").join(name);
            let value = if Some(name.as_str()) == lit {
                fs::read_to_string(dir.join("max_brightness"))
                    .ok()
                    .and_then(|m| m.trim().parse::<u32>().ok())
                    .unwrap_or(1)
            } else {
                0
            };
            if let Err(e) = fs::write(dir.join("brightness"), value.to_string()) {
                if self.warned.insert(slot) {
                    tracing::warn!(slot, led = %name, "cannot set the tray's indicator LED (retrying): {e}");
                }
                ok = false;
            }
        }
        if ok {
            self.warned.remove(&slot);
            self.shown.insert(slot, indicator);
        }
    }
}
