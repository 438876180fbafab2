# Sourced by the scripts that build for the RP2040 (thumbv6m-none-eabi): picks a toolchain
# without downloading from outside our registries and sets `cargo_cmd` (the cargo to run),
# `build_std` (the arguments that build `core`, if any) and, for Debian's, CARGO_TARGET_DIR.
# rustup's thumbv6m target when it is installed or installs; otherwise Debian's rustc-web
# with its library source, building `core` from it (-Zbuild-std=core; installed with
# apt-get when run as root).
# RACKLET_FIRMWARE_TOOLCHAIN=debian takes the Debian path even where rustup's would work.
if [ "${RACKLET_FIRMWARE_TOOLCHAIN:-}" != debian ] && {
  rustup target list --installed 2>/dev/null | grep -x 'thumbv6m-none-eabi' >/dev/null \
    || timeout 180 rustup target add thumbv6m-none-eabi >&2 2>/dev/null
}; then
  echo "firmware toolchain: rustup ($(rustc --version))" >&2
  cargo_cmd=(cargo)
  build_std=()
else
  if [ ! -x /usr/bin/cargo ] || ! dpkg -s rust-web-src >/dev/null 2>&1 || ! command -v ld.lld-22 >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      echo "no thumbv6m-none-eabi target: install it (rustup target add thumbv6m-none-eabi) or, as root, rustc-web cargo-web rust-web-src lld-22" >&2
      exit 1
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      rustc-web cargo-web rust-web-src lld-22 >&2
  fi
  echo "firmware toolchain: Debian $(/usr/bin/rustc --version) with -Zbuild-std=core" >&2
  # rustup's cargo would shadow Debian's on PATH; the library source must match rustc exactly.
  export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_THUMBV6M_NONE_EABI_LINKER=ld.lld-22
  cargo_cmd=(/usr/bin/cargo)
  build_std=(-Zbuild-std=core)
  export CARGO_TARGET_DIR=target/debian
fi
