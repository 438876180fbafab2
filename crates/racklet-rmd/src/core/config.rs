//! How one daemon runs: its chassis, tray slots (with each board's thermal limits), fans,
//! fan zones, fan-loop tuning and identities approved before start. Built from validated
//! manifests with [`DaemonConfig::from_manifests`]; plain data, no behaviour.

use racklet_model::board::BoardThermal;

use crate::fan::FanTuning;

/// One tray slot as configured.
#[derive(Debug, Clone)]
pub struct TraySpec {
    pub slot: u32,
    pub name: Option<String>,
    pub board: Option<String>,
    pub thermal: Option<BoardThermal>,
}

/// One fan as configured.
#[derive(Debug, Clone)]
pub struct FanSpec {
    pub name: String,
    pub zone: String,
}

/// A fan zone.
#[derive(Debug, Clone)]
pub struct ZoneSpec {
    pub name: String,
    pub trays: Vec<u32>,
}

/// How one daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub chassis: String,
    pub trays: Vec<TraySpec>,
    pub fans: Vec<FanSpec>,
    pub zones: Vec<ZoneSpec>,
    pub tuning: FanTuning,
    /// Identities (hex) approved before start, e.g. by the tool that provisioned them.
    pub pre_approved: Vec<String>,
}

impl DaemonConfig {
    /// The configuration of `chassis` from validated manifests.
    pub fn from_manifests(set: &racklet_model::ManifestSet, chassis: &str) -> Option<DaemonConfig> {
        let ch = set.chassis_named(chassis)?;
        let trays = (1..=ch.spec.trays.count)
            .map(|slot| {
                let cu = set
                    .compute_units()
                    .map(|(_, c)| c)
                    .find(|c| c.spec.chassis == chassis && c.spec.tray == slot);
                let board = cu.and_then(|c| set.board(&c.spec.board));
                TraySpec {
                    slot,
                    name: cu.map(|c| c.name().to_string()),
                    board: cu.map(|c| c.spec.board.clone()),
                    thermal: board.map(|b| b.spec.thermal.clone()),
                }
            })
            .collect();
        Some(DaemonConfig {
            chassis: chassis.into(),
            trays,
            fans: ch
                .spec
                .fans
                .iter()
                .map(|f| FanSpec {
                    name: f.name.clone(),
                    zone: f.zone.clone(),
                })
                .collect(),
            zones: ch
                .spec
                .fan_zones
                .iter()
                .map(|z| ZoneSpec {
                    name: z.name.clone(),
                    trays: z.trays.clone(),
                })
                .collect(),
            tuning: FanTuning::default(),
            pre_approved: Vec::new(),
        })
    }
}
