//! Semantic validation across a whole [`ManifestSet`]: names, references, geometry,
//! power budgets and roles. Every rule runs on every resource, so one run reports every
//! problem. Rules say nothing about references to documents that were present but failed
//! to decode: those already have their own errors.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::chassis::Rail;
use crate::compute_unit::Role;
use crate::diag::Diagnostic;
use crate::manifest::{Entry, ManifestSet};
use crate::resource::{BoardModel, Chassis, ComputeUnit, Kind};

/// Every semantic problem in `set`, in no particular order.
pub fn validate(set: &ManifestSet) -> Vec<Diagnostic> {
    let index = Index::new(set);
    let mut out = Vec::new();
    unique_names(set, &mut out);
    boards(set, &mut out);
    racks(set, &index, &mut out);
    for (e, ch) in set.chassis() {
        chassis(e, ch, &mut out);
        rmc(set, e, ch, &index, &mut out);
        rail_budget(e, ch, &index, &mut out);
    }
    compute_units(set, &index, &mut out);
    rejected_units(set, &index, &mut out);
    firmware_policies(set, &index, &mut out);
    boot_profiles(set, &mut out);
    network_boot(set, &mut out);
    out
}

/// A path in the repository relative to the manifests' directory: not absolute, no `..`.
fn escapes(path: &str) -> bool {
    path.starts_with('/') || path.split('/').any(|s| s == "..")
}

/// A profile's files stay inside the repository.
fn boot_profiles(set: &ManifestSet, out: &mut Vec<Diagnostic>) {
    for (e, p) in set.boot_profiles() {
        for (pointer, path) in p.spec.files() {
            if escapes(path) {
                out.push(e.doc.diag_at(
                    pointer,
                    format!(
                        "path {path:?} leaves the repository; give a path relative to the manifests' directory"
                    ),
                ));
            }
        }
    }
}

/// A compute unit's `bootProfile` and `knownGood` name profiles that exist; they mean
/// something only with `bootMode: Network`, and the fallback is another profile.
fn network_boot(set: &ManifestSet, out: &mut Vec<Diagnostic>) {
    let known: HashSet<&str> = set.boot_profiles().map(|(_, p)| p.name()).collect();
    for (e, cu) in set.compute_units() {
        let spec = &cu.spec;
        for (pointer, name) in [
            ("/spec/bootProfile", &spec.boot_profile),
            ("/spec/knownGood", &spec.known_good),
        ] {
            let Some(name) = name else { continue };
            if !known.contains(name.as_str()) && !set.may_exist(Kind::BootProfile, name) {
                out.push(e.doc.diag_at(
                    pointer,
                    format!(
                        "compute unit `{}` names boot profile `{name}`, but no BootProfile has that name",
                        cu.name()
                    ),
                ));
            }
        }
        if spec.known_good.is_some() && spec.boot_profile.is_none() {
            out.push(e.doc.diag_at_key(
                "/spec/knownGood",
                "`knownGood` is the fallback of `bootProfile`, which is not set; set `bootProfile` too",
            ));
        }
        if spec.known_good.is_some() && spec.known_good == spec.boot_profile {
            out.push(e.doc.diag_at(
                "/spec/knownGood",
                "`knownGood` is the same profile as `bootProfile`; a fallback must be another profile",
            ));
        }
        if spec.boot_profile.is_some() && spec.boot_mode.is_local() {
            out.push(e.doc.diag_at_key(
                "/spec/bootProfile",
                "`bootProfile` is set but the unit boots locally; add `bootMode: Network`",
            ));
        }
    }
}

/// A compute unit that did not decode still names its chassis and board: say in the same
/// run when those do not exist, rather than after the first problem is fixed.
fn rejected_units(set: &ManifestSet, index: &Index<'_>, out: &mut Vec<Diagnostic>) {
    for r in &set.rejected {
        if r.kind.as_deref() != Some("ComputeUnit") {
            continue;
        }
        let name = r.name.as_deref().unwrap_or("?");
        if let Some(chassis) = &r.chassis {
            if !index.chassis.contains_key(chassis.as_str())
                && !set.may_exist(Kind::Chassis, chassis)
            {
                out.push(r.doc.diag_at(
                    "/spec/chassis",
                    format!(
                        "compute unit `{name}` is in chassis `{chassis}`, but no Chassis has that name"
                    ),
                ));
            }
        }
        if let Some(board) = &r.board {
            if !index.boards.contains_key(board.as_str()) && !set.may_exist(Kind::BoardModel, board)
            {
                out.push(r.doc.diag_at("/spec/board", unknown_board(board, index)));
            }
        }
    }
}

fn unknown_board(board: &str, index: &Index<'_>) -> String {
    let mut known: Vec<&str> = index.boards.keys().copied().collect();
    known.sort_unstable();
    format!(
        "unknown board `{board}`; known boards: {}",
        known.join(", ")
    )
}

/// A policy names an existing chassis, at most one per chassis, and a bundle path that
/// stays inside the repository.
fn firmware_policies(set: &ManifestSet, index: &Index<'_>, out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (e, p) in set.firmware_policies() {
        let chassis = p.spec.chassis.as_str();
        if !index.chassis.contains_key(chassis) && !set.may_exist(Kind::Chassis, chassis) {
            out.push(e.doc.diag_at(
                "/spec/chassis",
                format!(
                    "firmware policy `{}` is for chassis `{chassis}`, but no Chassis has that name",
                    p.name()
                ),
            ));
        }
        if let Some(first) = seen.insert(chassis, p.name()) {
            out.push(e.doc.diag_at(
                "/spec/chassis",
                format!(
                    "chassis `{chassis}` already has firmware policy `{first}`; a chassis has at most one"
                ),
            ));
        }
        let bundle = &p.spec.bmc.bundle;
        if bundle.starts_with('/') || bundle.split('/').any(|s| s == "..") {
            out.push(e.doc.diag_at(
                "/spec/bmc/bundle",
                format!(
                    "bundle path {bundle:?} leaves the repository; give a path relative to the manifests' directory"
                ),
            ));
        }
    }
}

/// Lookups built once per validation, so rules stay linear in the number of resources.
struct Index<'a> {
    chassis: HashMap<&'a str, &'a Chassis>,
    boards: HashMap<&'a str, &'a BoardModel>,
    units: HashMap<&'a str, Vec<(&'a Entry, &'a ComputeUnit)>>,
}

impl<'a> Index<'a> {
    fn new(set: &'a ManifestSet) -> Self {
        let mut units: HashMap<&str, Vec<_>> = HashMap::new();
        for (e, cu) in set.compute_units() {
            units
                .entry(cu.spec.chassis.as_str())
                .or_default()
                .push((e, cu));
        }
        Index {
            // First definition wins; duplicates are reported by `unique_names`.
            chassis: set.chassis().rev().map(|(_, c)| (c.name(), c)).collect(),
            boards: set.boards().rev().map(|(_, b)| (b.name(), b)).collect(),
            units,
        }
    }

    fn units_in(&self, chassis: &str) -> &[(&'a Entry, &'a ComputeUnit)] {
        self.units.get(chassis).map_or(&[], Vec::as_slice)
    }
}

fn unique_names(set: &ManifestSet, out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(Kind, &str), &Entry> = HashMap::new();
    for e in &set.entries {
        let key = (e.resource.kind(), e.resource.name());
        if let Some(first) = seen.get(&key) {
            let line = first.doc.spans.value("/metadata/name").line;
            let where_first = if first.builtin {
                "in the built-in board catalog".to_string()
            } else if first.doc.file == e.doc.file {
                format!("on line {line}")
            } else {
                format!("at {}:{line}", first.doc.file.display())
            };
            out.push(e.doc.diag_at(
                "/metadata/name",
                format!(
                    "duplicate {} name `{}`: already defined {where_first}; names must be unique per kind",
                    key.0, key.1
                ),
            ));
        } else {
            seen.insert(key, e);
        }
    }
}

fn boards(set: &ManifestSet, out: &mut Vec<Diagnostic>) {
    for (e, b) in set.boards() {
        let t = &b.spec.thermal;
        if t.throttle_celsius >= t.limit_celsius {
            out.push(e.doc.diag_at(
                "/spec/thermal/throttleCelsius",
                format!(
                    "throttleCelsius ({}) must be below limitCelsius ({})",
                    t.throttle_celsius, t.limit_celsius
                ),
            ));
        }
        if t.forced_air_celsius_per_watt > t.still_air_celsius_per_watt {
            out.push(e.doc.diag_at(
                "/spec/thermal/forcedAirCelsiusPerWatt",
                format!(
                    "forcedAirCelsiusPerWatt ({}) must not exceed stillAirCelsiusPerWatt ({}): airflow can only cool better",
                    t.forced_air_celsius_per_watt, t.still_air_celsius_per_watt
                ),
            ));
        }
        let p = &b.spec.power;
        if p.idle_watts > p.load_watts {
            out.push(e.doc.diag_at(
                "/spec/power/idleWatts",
                format!(
                    "idleWatts ({}) must not exceed loadWatts ({}): loadWatts is the worst case",
                    p.idle_watts, p.load_watts
                ),
            ));
        }
    }
}

fn racks(set: &ManifestSet, index: &Index<'_>, out: &mut Vec<Diagnostic>) {
    let mut placed_in: HashMap<&str, &str> = HashMap::new();
    for (e, rack) in set.racks() {
        // (bottom, top, chassis name) of each placement that resolved.
        let mut spans: Vec<(u32, u32, &str)> = Vec::new();
        for (i, p) in rack.spec.chassis.iter().enumerate() {
            let ptr = format!("/spec/chassis/{i}");
            let Some(ch) = index.chassis.get(p.name.as_str()) else {
                if !set.may_exist(Kind::Chassis, &p.name) {
                    out.push(e.doc.diag_at(
                        &format!("{ptr}/name"),
                        format!(
                            "rack `{}` places chassis `{}`, but no Chassis has that name",
                            rack.name(),
                            p.name
                        ),
                    ));
                }
                continue;
            };
            if let Some(other) = placed_in.insert(&p.name, rack.name()) {
                out.push(e.doc.diag_at(
                    &format!("{ptr}/name"),
                    format!("chassis `{}` is already placed in rack `{other}`; a chassis sits in one place", p.name),
                ));
                continue;
            }
            let height = ch.spec.height_u;
            let top = p.position_u.saturating_add(height).saturating_sub(1);
            if height > rack.spec.height_u {
                out.push(e.doc.diag_at(
                    &format!("{ptr}/name"),
                    format!(
                        "chassis `{}` is {height}U tall, taller than the {}U rack `{}`; use a taller rack",
                        p.name,
                        rack.spec.height_u,
                        rack.name()
                    ),
                ));
            } else if top > rack.spec.height_u {
                out.push(e.doc.diag_at(
                    &format!("{ptr}/positionU"),
                    format!(
                        "chassis `{}` is {height}U tall; placed at U{} it reaches U{top}, above the top of the {}U rack `{}`; place it at U{} or lower",
                        p.name,
                        p.position_u,
                        rack.spec.height_u,
                        rack.name(),
                        rack.spec.height_u + 1 - height
                    ),
                ));
            }
            for (bottom, other_top, other) in &spans {
                if p.position_u <= *other_top && top >= *bottom {
                    out.push(e.doc.diag_at(
                        &format!("{ptr}/positionU"),
                        format!(
                            "chassis `{}` (U{}-U{top}) overlaps chassis `{other}` (U{bottom}-U{other_top}) in rack `{}`",
                            p.name,
                            p.position_u,
                            rack.name()
                        ),
                    ));
                }
            }
            spans.push((p.position_u, top, &p.name));
        }
    }
}

fn chassis(e: &Entry, ch: &Chassis, out: &mut Vec<Diagnostic>) {
    let spec = &ch.spec;
    let mut zones: HashSet<&str> = HashSet::new();
    let mut zoned_trays: HashMap<u32, &str> = HashMap::new();
    for (i, z) in spec.fan_zones.iter().enumerate() {
        if !zones.insert(&z.name) {
            out.push(e.doc.diag_at(
                &format!("/spec/fanZones/{i}/name"),
                format!(
                    "duplicate fan zone name `{}` in chassis `{}`",
                    z.name,
                    ch.name()
                ),
            ));
        }
        for (j, t) in z.trays.iter().enumerate() {
            let ptr = format!("/spec/fanZones/{i}/trays/{j}");
            if *t < 1 || *t > spec.trays.count {
                out.push(e.doc.diag_at(
                    &ptr,
                    format!(
                        "fan zone `{}` lists tray {t}, but chassis `{}` has trays 1 to {}",
                        z.name,
                        ch.name(),
                        spec.trays.count
                    ),
                ));
            } else if let Some(other) = zoned_trays.insert(*t, &z.name) {
                out.push(e.doc.diag_at(
                    &ptr,
                    format!(
                        "tray {t} is already in fan zone `{other}`; a tray is cooled by one zone"
                    ),
                ));
            }
        }
    }
    let mut fan_names = HashSet::new();
    for (i, f) in spec.fans.iter().enumerate() {
        if !zones.contains(f.zone.as_str()) {
            let known = spec
                .fan_zones
                .iter()
                .map(|z| z.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            out.push(e.doc.diag_at(
                &format!("/spec/fans/{i}/zone"),
                format!(
                    "fan `{}` is in zone `{}`, but chassis `{}` has no such fan zone (zones: {})",
                    f.name,
                    f.zone,
                    ch.name(),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known
                    }
                ),
            ));
        }
        if !fan_names.insert(f.name.as_str()) {
            out.push(e.doc.diag_at(
                &format!("/spec/fans/{i}/name"),
                format!("duplicate fan name `{}` in chassis `{}`", f.name, ch.name()),
            ));
        }
    }
    // The backplane wires tray slot N's BMC to hub port N.
    let ports = spec.backplane.usb_hub.ports;
    if ports < spec.trays.count {
        out.push(e.doc.diag_at(
            "/spec/backplane/usbHub/ports",
            format!(
                "the USB hub has {ports} ports but the chassis has {} tray slots, each wired to its own port for its BMC; use a hub with at least {} ports",
                spec.trays.count, spec.trays.count
            ),
        ));
    }
    if spec.rmc_tray > spec.trays.count {
        out.push(e.doc.diag_at(
            "/spec/rmcTray",
            format!(
                "rmcTray {} is out of range: chassis `{}` has trays 1 to {}",
                spec.rmc_tray,
                ch.name(),
                spec.trays.count
            ),
        ));
    }
}

fn compute_units(set: &ManifestSet, index: &Index<'_>, out: &mut Vec<Diagnostic>) {
    let mut booked: HashMap<(&str, u32), &str> = HashMap::new();
    for (e, cu) in set.compute_units() {
        let spec = &cu.spec;
        let chassis = index.chassis.get(spec.chassis.as_str()).copied();
        match chassis {
            None if set.may_exist(Kind::Chassis, &spec.chassis) => {}
            None => out.push(e.doc.diag_at(
                "/spec/chassis",
                format!(
                    "compute unit `{}` is in chassis `{}`, but no Chassis has that name",
                    cu.name(),
                    spec.chassis
                ),
            )),
            Some(ch) => {
                if spec.tray > ch.spec.trays.count {
                    out.push(e.doc.diag_at(
                        "/spec/tray",
                        format!(
                            "tray {} is out of range: chassis `{}` has trays 1 to {}",
                            spec.tray,
                            ch.name(),
                            ch.spec.trays.count
                        ),
                    ));
                } else if let Some(other) = booked.insert((ch.name(), spec.tray), cu.name()) {
                    out.push(e.doc.diag_at(
                        "/spec/tray",
                        format!(
                            "tray {} of chassis `{}` is already taken by compute unit `{other}`; pick a free tray",
                            spec.tray,
                            ch.name()
                        ),
                    ));
                }
            }
        }
        let Some(board) = index.boards.get(spec.board.as_str()) else {
            if !set.may_exist(Kind::BoardModel, &spec.board) {
                out.push(
                    e.doc
                        .diag_at("/spec/board", unknown_board(&spec.board, index)),
                );
            }
            continue;
        };
        let Some(ch) = chassis else { continue };
        let d = &board.spec.dimensions_mm;
        let slot = &ch.spec.trays;
        let mut misfits = Vec::new();
        if d.thickness > slot.width_mm {
            misfits.push(format!(
                "{} mm thick but the tray slots are {} mm wide",
                d.thickness, slot.width_mm
            ));
        }
        if d.width > slot.height_mm {
            misfits.push(format!(
                "{} mm wide but the tray slots are {} mm high",
                d.width, slot.height_mm
            ));
        }
        if d.length > slot.depth_mm {
            misfits.push(format!(
                "{} mm long but the tray slots are {} mm deep",
                d.length, slot.depth_mm
            ));
        }
        if !misfits.is_empty() {
            out.push(e.doc.diag_at(
                "/spec/board",
                format!(
                    "board `{}` does not fit a tray of chassis `{}`: it is {}",
                    board.name(),
                    ch.name(),
                    misfits.join(", and ")
                ),
            ));
        }
    }
}

fn rmc(set: &ManifestSet, e: &Entry, ch: &Chassis, index: &Index<'_>, out: &mut Vec<Diagnostic>) {
    let rmcs: Vec<&(&Entry, &ComputeUnit)> = index
        .units_in(ch.name())
        .iter()
        .filter(|(_, cu)| cu.spec.role == Role::Rmc)
        .collect();
    let unit_rejected = !set.unreadable.is_empty()
        || set.rejected.iter().any(|r| {
            r.kind.as_deref() == Some("ComputeUnit") && r.chassis.as_deref() == Some(ch.name())
        });
    if rmcs.is_empty() && !unit_rejected {
        out.push(e.doc.diag_at(
            "/metadata/name",
            format!(
                "chassis `{}` has no RMC tray: give the ComputeUnit in tray {} (rmcTray) `role: Rmc`",
                ch.name(),
                ch.spec.rmc_tray
            ),
        ));
    }
    for (entry, cu) in &rmcs {
        if cu.spec.tray != ch.spec.rmc_tray {
            out.push(entry.doc.diag_at(
                "/spec/tray",
                format!(
                    "compute unit `{}` is the RMC but sits in tray {}; the USB hub host of chassis `{}` is tray {} (rmcTray)",
                    cu.name(),
                    cu.spec.tray,
                    ch.name(),
                    ch.spec.rmc_tray
                ),
            ));
        }
    }
    if let Some(((_, first), rest)) = rmcs.split_first().map(|(f, r)| (**f, r)) {
        for (entry, _) in rest {
            out.push(entry.doc.diag_at(
                "/spec/role",
                format!(
                    "chassis `{}` already has an RMC (compute unit `{}`); a chassis has exactly one, make this one `role: Worker`",
                    ch.name(),
                    first.name()
                ),
            ));
        }
    }
}

/// Worst-case draw on each rail of a chassis, in watts, with what makes it up.
pub fn rail_draws(set: &ManifestSet, chassis: &str) -> BTreeMap<Rail, (f64, Vec<String>)> {
    let index = Index::new(set);
    match index.chassis.get(chassis) {
        Some(ch) => draws(ch, &index),
        None => BTreeMap::new(),
    }
}

fn draws(ch: &Chassis, index: &Index<'_>) -> BTreeMap<Rail, (f64, Vec<String>)> {
    let mut draws: BTreeMap<Rail, (f64, Vec<String>)> = BTreeMap::new();
    let bp = &ch.spec.backplane;
    let mut add = |rail: Rail, watts: f64, what: String| {
        let d = draws.entry(rail).or_default();
        d.0 += watts;
        d.1.push(what);
    };
    let mut per_board: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    let units = index.units_in(ch.name());
    for (_, cu) in units {
        if let Some(b) = index.boards.get(cu.spec.board.as_str()) {
            let e = per_board.entry(b.name()).or_default();
            e.0 += 1;
            e.1 += b.spec.power.load_watts / bp.tray_converter.efficiency;
        }
    }
    for (board, (n, w)) in per_board {
        add(
            bp.tray_converter.input,
            w,
            format!("{n} × {board} at full load"),
        );
    }
    if !units.is_empty() {
        add(
            Rail::P5VSB,
            bp.bmc_watts * units.len() as f64,
            format!("{} BMCs", units.len()),
        );
    }
    add(Rail::P5V, bp.usb_hub.watts, "the USB hub".into());
    for f in &ch.spec.fans {
        add(f.rail, f.max_watts, format!("fan `{}`", f.name));
    }
    draws
}

fn rail_budget(e: &Entry, ch: &Chassis, index: &Index<'_>, out: &mut Vec<Diagnostic>) {
    for (rail, (watts, parts)) in draws(ch, index) {
        let amps = watts / rail.volts();
        let limit = ch.spec.backplane.psu.rails.limit(rail).limit_amps;
        if amps > limit {
            out.push(e.doc.diag_at(
                &format!("{}/limitAmps", rail.pointer()),
                format!(
                    "worst-case draw on {rail} is {amps:.2} A ({watts:.1} W: {}), above the PSU's {limit} A limit; use a stronger PSU or fewer trays",
                    parts.join(", ")
                ),
            ));
        }
    }
}
