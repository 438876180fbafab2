//! Puts `memory-board.x` (`memory-emulator.x` for the emulator build), as `memory.x`, where the linker script
//! `link.x` (cortex-m-rt) looks for it, passes the linker scripts, and builds in the
//! firmware signing keys the image trusts (`RACKLET_FIRMWARE_ANCHORS`: Ed25519
//! public keys in hex, comma-separated). Without any, the BMC accepts no firmware update
//! until one is provisioned: nothing is trusted by default.

use std::path::PathBuf;
use std::{env, fs, io};

fn main() -> io::Result<()> {
    let out = env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| io::Error::other("cargo did not set OUT_DIR"))?;
    // Not named memory.x in this directory: the linker looks in the working directory
    // first, and would take it for the emulator build too.
    let map: &[u8] = if env::var_os("CARGO_FEATURE_EMULATOR").is_some() {
        include_bytes!("memory-emulator.x")
    } else {
        include_bytes!("memory-board.x")
    };
    fs::write(out.join("memory.x"), map)?;
    println!("cargo:rustc-link-search={}", out.display());
    // cortex-m-rt's link.x (no boot2: the boot stage has it); here rather than in
    // .cargo/config.toml, so it does not leak into ontarget/ or bootstage/, which have
    // their own maps.
    for arg in ["--nmagic", "-Tlink.x"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=memory-board.x");
    println!("cargo:rerun-if-changed=memory-emulator.x");
    // Cargo runs this script once for both feature sets (one OUT_DIR): run it again when
    // the feature changes, or the other build's map would be linked.
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_EMULATOR");
    println!("cargo:rerun-if-changed=build.rs");

    println!("cargo:rerun-if-env-changed=RACKLET_FIRMWARE_ANCHORS");
    let anchors = env::var("RACKLET_FIRMWARE_ANCHORS").unwrap_or_default();
    let mut keys = Vec::new();
    for hex in anchors.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        keys.push(parse_key(hex).ok_or_else(|| {
            io::Error::other(format!(
                "RACKLET_FIRMWARE_ANCHORS: {hex:?} is not an Ed25519 public key (64 hex digits)"
            ))
        })?);
    }
    let body: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    fs::write(
        out.join("anchors.rs"),
        format!(
            "/// Firmware signing keys built into this image (RACKLET_FIRMWARE_ANCHORS).\npub const BUILT_IN: &[[u8; 32]] = &[{}];\n",
            body.join(", ")
        ),
    )
}

fn parse_key(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}
