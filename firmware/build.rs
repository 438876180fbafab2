//! Puts `memory.x` where the linker script `link.x` (cortex-m-rt) looks for it, passes the
//! linker scripts, and builds
//! in the firmware signing keys the image trusts (`RACKLET_FIRMWARE_ANCHORS`: Ed25519
//! public keys in hex, comma-separated). Without any, the BMC accepts no firmware update
//! until one is provisioned: nothing is trusted by default.

use std::path::PathBuf;
use std::{env, fs, io};

fn main() -> io::Result<()> {
    let out = env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| io::Error::other("cargo did not set OUT_DIR"))?;
    fs::write(out.join("memory.x"), include_bytes!("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    // cortex-m-rt's link.x and embassy-rp's link-rp.x (boot2); here rather than in
    // .cargo/config.toml, so they do not leak into ontarget/, which has its own map.
    for arg in ["--nmagic", "-Tlink.x", "-Tlink-rp.x"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=memory.x");
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
