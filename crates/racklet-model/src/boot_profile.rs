//! `BootProfile`: what a compute unit boots over the network — a kernel, an initramfs, a
//! command line and an optional device tree, as files in the same Git revision. The control
//! plane publishes them (signed, as TUF targets) for the bootstrap on the node to verify.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest kernel command line accepted (x86's `COMMAND_LINE_SIZE` is 2048 bytes).
pub const MAX_COMMAND_LINE: usize = 2048;

/// One network-boot profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootProfileSpec {
    /// The CPU architecture the kernel is built for.
    pub architecture: Architecture,
    /// The kernel image, as a path in the repository relative to the manifests' directory.
    #[schemars(length(min = 1, max = 255))]
    pub kernel: String,
    /// The initramfs, as a path in the repository relative to the manifests' directory.
    #[schemars(length(min = 1, max = 255))]
    pub initramfs: String,
    /// The kernel command line. Never a secret: it is readable on the node and in Git.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 2048))]
    pub command_line: String,
    /// A device tree blob for boards that need one, as a path in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub device_tree: Option<String>,
}

/// CPU architectures a profile can be built for (the names the Linux kernel uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "aarch64")]
    Aarch64,
}

impl BootProfileSpec {
    /// Every file the profile names, with the field that names it.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            ("/spec/kernel", self.kernel.as_str()),
            ("/spec/initramfs", self.initramfs.as_str()),
        ];
        if let Some(dt) = &self.device_tree {
            out.push(("/spec/deviceTree", dt.as_str()));
        }
        out
    }
}
