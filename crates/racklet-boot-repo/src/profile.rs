//! What a boot profile looks like inside the repository: one target per file, named
//! `PROFILE.PART`, and a signed document (`PROFILE.profile.json`) that ties them together
//! with the command line, the architecture and the Git commit.

use serde::{Deserialize, Serialize};

/// The files of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Profile,
    Kernel,
    Initramfs,
    DeviceTree,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Profile => "profile.json",
            Part::Kernel => "kernel",
            Part::Initramfs => "initramfs",
            Part::DeviceTree => "device-tree",
        }
    }

    /// The target name of this part of `profile`.
    pub fn target(self, profile: &str) -> String {
        format!("{profile}.{}", self.as_str())
    }
}

/// The signed description of a profile (the target `PROFILE.profile.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileDocument {
    pub profile: String,
    pub architecture: String,
    pub command_line: String,
    /// Target names.
    pub kernel: String,
    pub initramfs: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_tree: Option<String>,
    /// The commit of the revision the profile was published from.
    pub git_commit: String,
}
