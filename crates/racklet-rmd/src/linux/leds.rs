//! Tray indicators through Linux LEDs (`class/leds/NAME/brightness`): one LED per colour;
//! the one for the indicator's state is lit at its `max_brightness`, the others are off.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use racklet_hal::Indicator;

use super::TrayLeds;

/// The trays' front LEDs.
pub struct Leds {
    sys: PathBuf,
    trays: BTreeMap<u32, TrayLeds>,
    /// What each tray shows now (written only on change).
    shown: BTreeMap<u32, Indicator>,
}

impl Leds {
    pub fn new(sys: &Path, trays: BTreeMap<u32, TrayLeds>) -> Leds {
        Leds {
            sys: sys.to_path_buf(),
            trays,
            shown: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, slot: u32, indicator: Indicator) {
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
                tracing::warn!(slot, led = %name, "cannot set the tray's indicator LED: {e}");
                ok = false;
            }
        }
        if ok {
            self.shown.insert(slot, indicator);
        }
    }
}
