//! The fan loop's decision for one zone, as pure logic: PID on the worst thermal margin,
//! a failsafe duty when a sensor is silent or stale, full speed past a critical threshold,
//! and which trays must be powered off past their shutdown threshold.

/// Tuning of the zone controller.
#[derive(Debug, Clone, Copy)]
pub struct FanTuning {
    /// Margin below each board's throttle point the loop holds the hottest SoC at, °C.
    pub target_margin: f64,
    pub kp: f64,
    pub ki: f64,
    pub kd: f64,
    pub min_duty: f64,
    /// Duty while any sensor in the zone is silent or stale.
    pub failsafe_duty: f64,
    /// A reading older than this counts as stale, seconds.
    pub stale_after: f64,
}

impl Default for FanTuning {
    fn default() -> Self {
        FanTuning {
            target_margin: 15.0,
            kp: 0.04,
            ki: 0.004,
            kd: 0.0,
            min_duty: 0.2,
            failsafe_duty: 0.8,
            stale_after: 2.0,
        }
    }
}

/// What the loop knows of one powered tray in the zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrayThermal {
    pub slot: u32,
    /// Latest SoC temperature and its age in seconds; None when the sensor is silent.
    pub celsius: Option<(f64, f64)>,
    pub throttle_celsius: f64,
    pub shutdown_celsius: f64,
}

/// Why a zone is not under PID control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Override {
    SensorSilent(u32),
    Critical(u32),
}

/// The controller of one zone.
#[derive(Debug, Clone, Default)]
pub struct ZoneController {
    integral: f64,
    last_error: Option<f64>,
}

/// The loop's output for one zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneDecision {
    pub duty: f64,
    pub override_: Option<Override>,
    /// Trays above their shutdown threshold: power them off.
    pub shutdown: Vec<u32>,
}

impl ZoneController {
    pub fn decide(&mut self, tuning: &FanTuning, trays: &[TrayThermal], dt: f64) -> ZoneDecision {
        let mut shutdown = Vec::new();
        let mut critical = None;
        let mut silent = None;
        let mut worst_margin: Option<f64> = None;
        for t in trays {
            match t.celsius {
                Some((c, age)) if age <= tuning.stale_after => {
                    if c >= t.shutdown_celsius {
                        shutdown.push(t.slot);
                    }
                    if c >= t.throttle_celsius {
                        critical.get_or_insert(t.slot);
                    }
                    let margin = t.throttle_celsius - c;
                    worst_margin = Some(worst_margin.map_or(margin, |w: f64| w.min(margin)));
                }
                _ => {
                    silent.get_or_insert(t.slot);
                }
            }
        }
        if let Some(slot) = critical {
            self.integral = 0.0;
            return ZoneDecision {
                duty: 1.0,
                override_: Some(Override::Critical(slot)),
                shutdown,
            };
        }
        if let Some(slot) = silent {
            return ZoneDecision {
                duty: tuning.failsafe_duty,
                override_: Some(Override::SensorSilent(slot)),
                shutdown,
            };
        }
        let Some(margin) = worst_margin else {
            self.integral = 0.0;
            self.last_error = None;
            return ZoneDecision {
                duty: tuning.min_duty,
                override_: None,
                shutdown,
            };
        };
        // Positive error: hotter than the target.
        let error = tuning.target_margin - margin;
        let derivative = self.last_error.map_or(0.0, |e| (error - e) / dt.max(1e-6));
        self.last_error = Some(error);
        let unclamped = tuning.min_duty
            + tuning.kp * error
            + tuning.ki * (self.integral + error * dt)
            + tuning.kd * derivative;
        // Anti-windup: integrate only while the output is not saturated.
        if (tuning.min_duty..=1.0).contains(&unclamped) {
            self.integral += error * dt;
        }
        let duty = (tuning.min_duty
            + tuning.kp * error
            + tuning.ki * self.integral
            + tuning.kd * derivative)
            .clamp(tuning.min_duty, 1.0);
        ZoneDecision {
            duty,
            override_: None,
            shutdown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tray(c: Option<(f64, f64)>) -> TrayThermal {
        TrayThermal {
            slot: 1,
            celsius: c,
            throttle_celsius: 80.0,
            shutdown_celsius: 85.0,
        }
    }

    #[test]
    fn hotter_zone_gets_more_air() {
        let t = FanTuning::default();
        let mut z = ZoneController::default();
        let cool = z.decide(&t, &[tray(Some((40.0, 0.1)))], 0.1).duty;
        let mut z = ZoneController::default();
        let warm = z.decide(&t, &[tray(Some((75.0, 0.1)))], 0.1).duty;
        assert!(warm > cool, "{warm} > {cool}");
    }

    #[test]
    fn silent_or_stale_sensor_means_failsafe() {
        let t = FanTuning::default();
        let mut z = ZoneController::default();
        assert_eq!(
            z.decide(&t, &[tray(None)], 0.1).override_,
            Some(Override::SensorSilent(1))
        );
        let d = z.decide(&t, &[tray(Some((50.0, 2.5)))], 0.1);
        assert_eq!(
            (d.duty, d.override_),
            (0.8, Some(Override::SensorSilent(1)))
        );
    }

    #[test]
    fn critical_means_full_speed_and_shutdown_past_the_limit() {
        let t = FanTuning::default();
        let mut z = ZoneController::default();
        let d = z.decide(&t, &[tray(Some((82.0, 0.1)))], 0.1);
        assert_eq!((d.duty, d.shutdown.len()), (1.0, 0));
        let d = z.decide(&t, &[tray(Some((86.0, 0.1)))], 0.1);
        assert_eq!(d.shutdown, vec![1]);
    }
}
