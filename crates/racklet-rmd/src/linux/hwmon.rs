//! Chassis fans through Linux hwmon: `pwmN` (0–255) with `pwmN_enable` = 1 (manual), and
//! `fanN_input` (RPM). The chip is found by its `name` attribute under `class/hwmon`, since
//! `hwmonK` numbers depend on probe order; a missing chip or file reads as an absent
//! sensor, and the daemon's failsafe treats it so. When the daemon stops, each PWM goes
//! back to the control mode it had before (the chip's own automatic mode, usually), so a
//! stopped daemon does not leave the fans at its last duty.

use std::fs;
use std::path::{Path, PathBuf};

use racklet_hal::SensorError;

use super::HwmonChannel;

/// The chassis' fans, in the daemon's fan order.
pub struct HwmonFans {
    sys: PathBuf,
    channels: Vec<HwmonChannel>,
    /// Each fan's chip directory, once found.
    chips: Vec<Option<PathBuf>>,
    /// Fans whose PWM this daemon switched to manual control: the chip directory and the
    /// `pwmN_enable` value it had before.
    manual: Vec<Option<(PathBuf, String)>>,
    /// Fans whose failure was logged (once until they work again).
    warned: Vec<bool>,
}

impl HwmonFans {
    pub fn new(sys: &Path, channels: Vec<HwmonChannel>) -> HwmonFans {
        let n = channels.len();
        HwmonFans {
            sys: sys.to_path_buf(),
            channels,
            chips: vec![None; n],
            manual: vec![None; n],
            warned: vec![false; n],
        }
    }

    /// The hwmon directory whose `name` is `chip`.
    fn find_chip(&self, chip: &str) -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = fs::read_dir(self.sys.join("class/hwmon"))
            .ok()?
            .filter_map(|e| Some(e.ok()?.path()))
            .collect();
        dirs.sort();
        dirs.into_iter()
            .find(|d| fs::read_to_string(d.join("name")).is_ok_and(|n| n.trim() == chip))
    }

    fn chip(&mut self, fan: usize) -> Option<PathBuf> {
        if let Some(Some(dir)) = self.chips.get(fan) {
            if dir.exists() {
                return Some(dir.clone());
            }
        }
        let dir = self.find_chip(&self.channels.get(fan)?.chip);
        if let Some(slot) = self.chips.get_mut(fan) {
            slot.clone_from(&dir);
        }
        dir
    }

    /// Fan `fan` to `duty` (0 to 1).
    pub fn set_duty(&mut self, fan: usize, duty: f64) {
        let Some(dir) = self.chip(fan) else {
            self.warn(fan, "its hwmon chip is not there");
            return;
        };
        let Some(channel) = self.channels.get(fan).map(|c| c.channel) else {
            return;
        };
        // A chip that came back (driver rebound) is in its own mode again.
        let taken = self
            .manual
            .get(fan)
            .is_some_and(|m| m.as_ref().is_some_and(|(d, _)| *d == dir));
        if !taken {
            let enable = dir.join(format!("pwm{channel}_enable"));
            let before = fs::read_to_string(&enable)
                .unwrap_or_default()
                .trim()
                .to_string();
            if let Err(e) = fs::write(&enable, "1") {
                self.warn(
                    fan,
                    &format!("cannot take manual control (pwm{channel}_enable): {e}"),
                );
                return;
            }
            if let Some(m) = self.manual.get_mut(fan) {
                *m = Some((dir.clone(), before));
            }
        }
        // reason: the duty is clamped to 0..=1, so the value is in 0..=255.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let value = (duty.clamp(0.0, 1.0) * 255.0).round() as u8;
        match fs::write(dir.join(format!("pwm{channel}")), value.to_string()) {
            Ok(()) => {
                if let Some(w) = self.warned.get_mut(fan) {
                    *w = false;
                }
            }
            Err(e) => self.warn(fan, &format!("cannot set pwm{channel}: {e}")),
        }
    }

    /// Fan `fan`'s measured speed.
    pub fn rpm(&mut self, fan: usize) -> Result<u32, SensorError> {
        let dir = self.chip(fan).ok_or(SensorError::Absent)?;
        let channel = self.channels.get(fan).ok_or(SensorError::Absent)?.channel;
        let text = fs::read_to_string(dir.join(format!("fan{channel}_input")))
            .map_err(|_| SensorError::Absent)?;
        text.trim().parse().map_err(|_| SensorError::Absent)
    }

    fn warn(&mut self, fan: usize, why: &str) {
        if let Some(w) = self.warned.get_mut(fan) {
            if !*w {
                *w = true;
                let chip = self.channels.get(fan).map_or("?", |c| c.chip.as_str());
                tracing::warn!(fan, chip, "fan control failed: {why}");
            }
        }
    }
}

impl Drop for HwmonFans {
    fn drop(&mut self) {
        for (channel, taken) in self.channels.iter().zip(&self.manual) {
            let Some((dir, before)) = taken else { continue };
            if before.is_empty() || before == "1" {
                continue; // it was manual already: leave the last duty
            }
            let enable = dir.join(format!("pwm{}_enable", channel.channel));
            if let Err(e) = fs::write(&enable, before) {
                tracing::warn!(chip = %channel.chip, "cannot give the fan back to its chip: {e}");
            }
        }
    }
}
