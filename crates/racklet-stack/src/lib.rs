//! The whole rack in one process, for `racklet up` and `racklet bench`: the digital twin,
//! a BMC firmware core per tray, a rack management daemon and Redfish service per
//! chassis, and the GitOps control plane with its API, wired together on one data dir.
//!
//! This is the body of the `racklet` binary's two server commands, kept apart from the
//! client commands so that those link nothing but `racklet-client`. It is an application
//! crate (like a binary, it reports errors with `anyhow`); the libraries it wires have
//! typed errors.

pub mod bench;
mod bench_boot;
mod bench_gitops;
mod bench_qemu;
pub mod chassis;
mod controlplane;
pub mod up;
mod up_view;

pub use bench::BenchArgs;
pub use up::UpArgs;
