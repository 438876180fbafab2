//! One chassis: PSU rails with latching over-current protection and brown-outs, fans
//! (PWM in, tachometer out, spin-up lag), fan zones, the USB hub, and its trays.

use std::collections::VecDeque;

use racklet_hal::{PortEvent, PortState};
use racklet_model::chassis::{ChassisSpec, Rail};

use crate::tray::TrayTwin;

/// How long a rail may stay above its limit before over-current protection trips.
pub const OCP_DELAY_SECONDS: f64 = 0.002;
/// A converter input below this fraction of nominal drops out.
pub const UNDERVOLTAGE_FRACTION: f64 = 0.9;
/// Fan spin-up and spin-down time constants, seconds.
pub const FAN_SPIN_UP_TAU: f64 = 1.2;
pub const FAN_SPIN_DOWN_TAU: f64 = 2.5;
/// Below this duty a fan stalls.
pub const FAN_MIN_DUTY: f64 = 0.08;
/// Hub port events kept for the RMC before the oldest are dropped.
const HUB_EVENTS: usize = 1024;

/// One PSU rail.
#[derive(Debug, Clone)]
pub struct RailTwin {
    pub rail: Rail,
    pub limit_amps: f64,
    pub amps: f64,
    pub tripped: bool,
    over_for: f64,
    /// (volts, until) of an injected brown-out.
    brownout: Option<(f64, f64)>,
}

impl RailTwin {
    fn new(rail: Rail, limit_amps: f64) -> Self {
        RailTwin {
            rail,
            limit_amps,
            amps: 0.0,
            tripped: false,
            over_for: 0.0,
            brownout: None,
        }
    }

    /// The rail's output voltage now.
    pub fn volts(&self, now: f64) -> f64 {
        if self.tripped {
            return 0.0;
        }
        match self.brownout {
            Some((v, until)) if now < until => v,
            _ => self.rail.volts(),
        }
    }

    pub fn ok(&self, now: f64) -> bool {
        self.volts(now) >= self.rail.volts() * UNDERVOLTAGE_FRACTION
    }
}

/// One fan.
#[derive(Debug, Clone)]
pub struct FanTwin {
    pub name: String,
    pub zone: String,
    pub rail: Rail,
    pub max_rpm: f64,
    pub max_watts: f64,
    pub max_cfm: f64,
    /// PWM duty, 0 to 1.
    pub duty: f64,
    pub rpm: f64,
    pub failed: bool,
}

impl FanTwin {
    pub fn watts(&self) -> f64 {
        let f = (self.rpm / self.max_rpm).clamp(0.0, 1.0);
        self.max_watts * f * f * f
    }
}

/// One chassis and everything on its backplane.
#[derive(Debug, Clone)]
pub struct ChassisTwin {
    pub name: String,
    pub spec: ChassisSpec,
    pub trays: Vec<TrayTwin>,
    pub fans: Vec<FanTwin>,
    pub rails: Vec<RailTwin>,
    pub ambient_celsius: f64,
    /// For each tray, its zone's fan indices (empty: no forced airflow).
    tray_fans: Vec<Vec<usize>>,
    pub hub_ports: Vec<PortState>,
    pub hub_events: VecDeque<PortEvent>,
}

impl ChassisTwin {
    pub fn new(name: String, spec: ChassisSpec, trays: Vec<TrayTwin>, ambient: f64) -> Self {
        let fans: Vec<FanTwin> = spec
            .fans
            .iter()
            .map(|f| FanTwin {
                name: f.name.clone(),
                zone: f.zone.clone(),
                rail: f.rail,
                max_rpm: f64::from(f.max_rpm),
                max_watts: f.max_watts,
                max_cfm: f.max_airflow_cfm,
                duty: 0.0,
                rpm: 0.0,
                failed: false,
            })
            .collect();
        let tray_fans = trays
            .iter()
            .map(|t| {
                let zone = spec.fan_zones.iter().find(|z| z.trays.contains(&t.slot));
                zone.map(|z| {
                    fans.iter()
                        .enumerate()
                        .filter(|(_, f)| f.zone == z.name)
                        .map(|(i, _)| i)
                        .collect()
                })
                .unwrap_or_default()
            })
            .collect();
        let rails = Rail::ALL
            .iter()
            .map(|r| RailTwin::new(*r, spec.backplane.psu.rails.limit(*r).limit_amps))
            .collect();
        let ports = spec.backplane.usb_hub.ports as usize;
        ChassisTwin {
            name,
            spec,
            trays,
            fans,
            rails,
            ambient_celsius: ambient,
            tray_fans,
            hub_ports: vec![PortState::Empty; ports],
            hub_events: VecDeque::new(),
        }
    }

    pub fn rail(&self, rail: Rail) -> &RailTwin {
        &self.rails[rail.index()]
    }

    pub fn rail_mut(&mut self, rail: Rail) -> &mut RailTwin {
        &mut self.rails[rail.index()]
    }

    pub fn tray(&self, slot: u32) -> Option<&TrayTwin> {
        self.trays.iter().find(|t| t.slot == slot)
    }

    pub fn tray_mut(&mut self, slot: u32) -> Option<&mut TrayTwin> {
        self.trays.iter_mut().find(|t| t.slot == slot)
    }

    /// Fans cooling tray index `i` (its zone's fans).
    pub fn fans_of_tray(&self, i: usize) -> impl Iterator<Item = &FanTwin> {
        self.tray_fans[i].iter().map(|f| &self.fans[*f])
    }

    /// Airflow fraction (0 to 1) through the zone of tray index `i`.
    pub fn airflow(&self, i: usize) -> f64 {
        let fans = &self.tray_fans[i];
        let max: f64 = fans.iter().map(|f| self.fans[*f].max_cfm).sum();
        if max <= 0.0 {
            return 0.0;
        }
        let now: f64 = fans
            .iter()
            .map(|f| {
                let fan = &self.fans[*f];
                fan.max_cfm * (fan.rpm / fan.max_rpm).clamp(0.0, 1.0)
            })
            .sum();
        now / max
    }

    pub fn brownout(&mut self, rail: Rail, volts: f64, until: f64) {
        self.rail_mut(rail).brownout = Some((volts, until));
    }

    /// Clears latched over-current trips, as cycling the PSU's AC input does.
    pub fn reset_psu(&mut self) {
        for r in &mut self.rails {
            r.tripped = false;
            r.over_for = 0.0;
        }
    }

    /// Advances everything in the chassis by `dt` seconds, ending at `now`.
    pub fn step(&mut self, now: f64, dt: f64) {
        let converter = self.spec.backplane.tray_converter.clone();
        let supplied = self.rail(converter.input).ok(now);
        let standby = self.rail(Rail::P5VSB).ok(now);
        for i in 0..self.trays.len() {
            let airflow = self.airflow(i);
            let ambient = self.ambient_celsius;
            let tray = &mut self.trays[i];
            if !standby || tray.installed.is_none() {
                // The BMC HAT lives on +5VSB: without it the RP2040 resets, its outputs
                // fall to their safe defaults and the PAC1921 powers down.
                tray.dcdc_en = false;
                tray.eeprom_wp = true;
                tray.pac.reset();
                tray.usb_to_bmc.clear();
                tray.usb_to_host.clear();
            }
            tray.step(now, dt, supplied, airflow, ambient);
        }
        for fan in &mut self.fans {
            let powered = self.rails[fan.rail.index()].ok(now);
            let target = if fan.failed || !powered || fan.duty < FAN_MIN_DUTY {
                0.0
            } else {
                fan.duty.clamp(0.0, 1.0) * fan.max_rpm
            };
            let tau = if target > fan.rpm {
                FAN_SPIN_UP_TAU
            } else {
                FAN_SPIN_DOWN_TAU
            };
            fan.rpm = target + (fan.rpm - target) * (-dt / tau).exp();
            if fan.rpm < 1.0 && target == 0.0 {
                fan.rpm = 0.0;
            }
        }
        // Rail draws, then over-current protection.
        let mut watts = [0.0f64; 3];
        let bmcs = self.trays.iter().filter(|t| t.installed.is_some()).count();
        for t in &self.trays {
            watts[converter.input.index()] += t.board_watts / converter.efficiency;
        }
        if standby {
            watts[Rail::P5VSB.index()] += self.spec.backplane.bmc_watts * bmcs as f64;
        }
        watts[Rail::P5V.index()] += self.spec.backplane.usb_hub.watts;
        for fan in &self.fans {
            watts[fan.rail.index()] += fan.watts();
        }
        for (r, w) in self.rails.iter_mut().zip(watts) {
            r.amps = if r.ok(now) { w / r.rail.volts() } else { 0.0 };
            if r.amps > r.limit_amps {
                r.over_for += dt;
                if r.over_for >= OCP_DELAY_SECONDS {
                    r.tripped = true;
                    r.amps = 0.0;
                }
            } else {
                r.over_for = 0.0;
            }
        }
        self.update_hub(now);
    }

    fn update_hub(&mut self, now: f64) {
        // The hub chip runs from +5V; each BMC on its port from +5VSB.
        let standby = self.rail(Rail::P5VSB).ok(now) && self.rail(Rail::P5V).ok(now);
        for (i, port) in self.hub_ports.iter_mut().enumerate() {
            let state = match self.trays.get(i) {
                Some(t) if standby && t.installed.is_some() => PortState::Attached {
                    serial: t.bmc_serial,
                },
                _ => PortState::Empty,
            };
            if *port != state {
                *port = state;
                if self.hub_events.len() >= HUB_EVENTS {
                    self.hub_events.pop_front();
                }
                // reason: twin time in µs fits u64 for 584 000 years; `as` saturates anyway.
                #[allow(clippy::cast_possible_truncation)]
                let at_micros = (now * 1e6) as u64;
                self.hub_events.push_back(PortEvent {
                    port: u8::try_from(i + 1).unwrap_or(u8::MAX),
                    state,
                    at_micros,
                });
            }
        }
    }
}
