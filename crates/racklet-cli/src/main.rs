//! `racklet`: the command-line entry point. Thin: each subcommand lives in its own module
//! and calls the library crates. The client commands (`get`, `describe`, `power`,
//! `console`, `apply`, `diff`, `sync`, `events`) reach a running rack only through the
//! control plane's API (`racklet-client`); `up` and `bench` run the rack in this process
//! (`racklet-stack`).

mod bmc;
mod boot;
mod change;
mod console;
mod firmware;
mod get;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use racklet_model::{Kind, ManifestSet};

/// Racklet: a miniature, declaratively managed server rack.
#[derive(Parser)]
#[command(name = "racklet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The data dir of `racklet up` (before or after the subcommand; like KUBECONFIG, the
    /// environment can set it).
    #[arg(
        long,
        global = true,
        env = "RACKLET_DATA_DIR",
        default_value = "./racklet-data"
    )]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Check manifests (files or directories) and report every problem as FILE:LINE:COLUMN.
    #[command(
        after_help = "Examples:\n  racklet validate examples/\n  racklet validate rack.yaml nodes/*.yaml"
    )]
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of every kind (or one).
    #[command(after_help = "Examples:\n  racklet schema\n  racklet schema --kind Chassis")]
    Schema {
        #[arg(long)]
        kind: Option<String>,
    },
    /// Run the rack on its digital twin, with a live per-tray table, until Ctrl-C.
    #[command(
        after_help = "Examples:\n  racklet up\n  racklet up --data-dir /tmp/rack --manifests my-rack/"
    )]
    Up(racklet_stack::UpArgs),
    /// Measure the twin's and the validator's throughput against named peers.
    Bench(racklet_stack::BenchArgs),
    /// Show nodes or the Git source as the control plane sees them.
    #[command(
        after_help = "Examples:\n  racklet get nodes\n  racklet get nodes -w\n  racklet get nodes -o wide\n  racklet get node node-6 -o yaml\n  racklet get source"
    )]
    Get {
        #[command(subcommand)]
        what: get::GetWhat,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table", global = true)]
        output: view::Output,
    },
    /// Show one node in detail: conditions, recent events.
    #[command(after_help = "Examples:\n  racklet describe node node-6")]
    Describe {
        /// Only `node` for now.
        #[arg(value_parser = ["node"])]
        kind: String,
        name: String,
    },
    /// Fetch the repository now instead of at the next poll, and show what was applied.
    #[command(after_help = "Examples:\n  racklet sync")]
    Sync,
    /// Print the control plane's events; with --watch, keep printing new ones.
    #[command(after_help = "Examples:\n  racklet events\n  racklet events --watch")]
    Events {
        #[arg(short, long)]
        watch: bool,
    },
    /// Create or update the resources of files or directories where they are declared in
    /// the rack's repository (a commit, never around Git), then sync. Removes nothing
    /// unless --prune.
    #[command(
        after_help = "Examples:\n  racklet apply -f nodes.yaml\n  racklet apply -f my-rack/ -m \"Add node-8\"\n  racklet apply --prune -f compute-units.yaml   # also removes the compute units it does not name"
    )]
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Also remove the resources of the kinds the files hold that they do not name.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        commit: change::CommitArgs,
    },
    /// Show every change of desired state that `apply` would make.
    #[command(
        after_help = "Examples:\n  racklet diff -f nodes.yaml\n  racklet diff --prune -f my-rack/"
    )]
    Diff {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        prune: bool,
    },
    /// Remove resources from the rack's repository (a commit), then sync. A compute unit
    /// removed is powered off.
    #[command(
        after_help = "Examples:\n  racklet delete node node-6\n  racklet delete -f old-nodes.yaml"
    )]
    Delete {
        /// The resources the files declare.
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
        /// node, chassis, rack, boardmodel, firmwarepolicy or bootprofile.
        kind: Option<String>,
        names: Vec<String>,
        #[command(flatten)]
        commit: change::CommitArgs,
    },
    /// Power a node on or off (a commit to the repository; off is a graceful shutdown),
    /// cycle it (through its BMC, now), or show its power.
    #[command(
        after_help = "Examples:\n  racklet power on node-6\n  racklet power off node-6 -m \"maintenance\"\n  racklet power off node-6 --force    # and cut power now, without waiting for the OS\n  racklet power cycle node-2\n  racklet power status node-2"
    )]
    Power {
        #[arg(value_parser = ["on", "off", "cycle", "status"])]
        action: String,
        node: String,
        /// With off: cut power now (Redfish ForceOff) instead of waiting for the OS. Also
        /// what switching off or cycling a chassis' RMC takes (it runs the rack daemon).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        commit: change::CommitArgs,
    },
    /// Attach to a node's serial console; Ctrl-] detaches.
    #[command(after_help = "Examples:\n  racklet console node-1")]
    Console { node: String },
    /// A node's BMC: forget the key it was enrolled with (after its flash was wiped).
    #[command(subcommand)]
    Bmc(BmcCommand),
    /// BMC firmware bundles.
    #[command(subcommand)]
    Firmware(FirmwareCommand),
    /// Network boot: the keys of the boot repository (TUF).
    #[command(subcommand)]
    Boot(BootCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  racklet completions bash > /etc/bash_completion.d/racklet\n  racklet completions zsh > ~/.zfunc/_racklet"
    )]
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum BmcCommand {
    /// The BMC in every node's tray: serial, how far its chassis trusts it, and the
    /// identity of one that waits for approval.
    #[command(after_help = "Examples:\n  racklet bmc list")]
    List,
    /// Trust the BMC that waits for approval in the node's tray (its chassis enrolls it).
    /// Without --identity it prints the identity to check.
    #[command(
        after_help = "Examples:\n  racklet bmc approve node-3\n  racklet bmc approve node-3 --identity 3f9c…"
    )]
    Approve {
        node: String,
        /// The identity the BMC shows (`racklet bmc list`), which you checked.
        #[arg(long)]
        identity: Option<String>,
        #[command(flatten)]
        commit: change::CommitArgs,
    },
    /// Refuse the BMC that waits for approval in the node's tray, for good.
    #[command(after_help = "Examples:\n  racklet bmc reject node-3 --identity 3f9c…")]
    Reject {
        node: String,
        /// The identity the BMC shows (`racklet bmc list`).
        #[arg(long)]
        identity: Option<String>,
        #[command(flatten)]
        commit: change::CommitArgs,
    },
    /// Forget the key the chassis enrolled the node's BMC with and enroll the identity it
    /// shows next: for a BMC that no longer proves its key because its flash was wiped.
    #[command(after_help = "Examples:\n  racklet bmc forget node-3")]
    Forget {
        node: String,
        #[command(flatten)]
        commit: change::CommitArgs,
    },
}

#[derive(Subcommand)]
enum BootCommand {
    /// The boot repository's TUF keys: init, rotate, show.
    #[command(subcommand)]
    Keys(boot::KeysCommand),
    /// Build the bootstrap initramfs (reproducible): the static bootstrap as /init and
    /// the kernel's network modules; prints its compressed size.
    #[command(
        after_help = "Examples:\n  RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p racklet-bootstrap --target x86_64-unknown-linux-gnu\n  racklet boot build-initramfs --init target/x86_64-unknown-linux-gnu/release/racklet-bootstrap --kernel-release 6.1.0-57-amd64 -o bootstrap.img"
    )]
    BuildInitramfs(boot::InitramfsArgs),
}

#[derive(Subcommand)]
enum FirmwareCommand {
    /// Sign an image into a bundle for the Redfish UpdateService and FirmwarePolicy.
    #[command(
        after_help = "Examples:\n  racklet firmware bundle bmc.bin --version 2 --key racklet-data/firmware-signing-key -o racklet-data/repo/rack/firmware/bmc-2.bin"
    )]
    Bundle(firmware::BundleArgs),
}

fn main() -> ExitCode {
    // Like other Unix filters, end quietly when the reader goes away (`racklet … | head`)
    // instead of panicking in `print!` on a broken pipe.
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Large allocations (argon2's 19 MiB per password check) get their own mapping and go
    // back to the kernel when freed; glibc would otherwise raise this threshold after the
    // first such free and keep the memory for good.
    // SAFETY: sets an allocator parameter before any thread exists; a refused value is
    // just ignored (mallopt returns 0).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
    let cli = Cli::parse();
    let data_dir = cli.data_dir;
    let result = match cli.command {
        Command::Validate { paths } => return validate(&paths),
        Command::Schema { kind } => schema(kind.as_deref()),
        Command::Up(mut args) => {
            args.data_dir = data_dir;
            // The rack's warnings (a VM that cannot start, a chassis out of reach) go to
            // stderr; RUST_LOG asks for more.
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
            let _ = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .try_init();
            racklet_stack::up::run(args)
        }
        Command::Bench(args) => racklet_stack::bench::run(args),
        Command::Get { what, output } => get::get(&data_dir, what, output),
        Command::Describe { name, .. } => get::describe_node(&data_dir, &name),
        Command::Sync => get::sync(&data_dir),
        Command::Events { watch } => get::events(&data_dir, watch),
        Command::Apply {
            files,
            prune,
            commit,
        } => change::apply(&data_dir, &files, prune, &commit),
        Command::Diff { files, prune } => change::diff(&data_dir, &files, prune),
        Command::Delete {
            files,
            kind,
            names,
            commit,
        } => change::delete(&data_dir, &files, kind.as_deref(), &names, &commit),
        Command::Power {
            action,
            node,
            force,
            commit,
        } => change::power(&data_dir, &action, &node, force, &commit),
        Command::Bmc(BmcCommand::Forget { node, commit }) => {
            change::forget_bmc_key(&data_dir, &node, &commit)
        }
        Command::Bmc(BmcCommand::List) => bmc::list(&data_dir),
        Command::Bmc(BmcCommand::Approve {
            node,
            identity,
            commit,
        }) => bmc::decide(&data_dir, &node, identity.as_deref(), true, &commit),
        Command::Bmc(BmcCommand::Reject {
            node,
            identity,
            commit,
        }) => bmc::decide(&data_dir, &node, identity.as_deref(), false, &commit),
        Command::Firmware(FirmwareCommand::Bundle(args)) => firmware::bundle(args),
        Command::Boot(BootCommand::Keys(command)) => boot::keys(&data_dir, command),
        Command::Boot(BootCommand::BuildInitramfs(args)) => boot::build_initramfs(&args),
        Command::Console { node } => console::attach(&data_dir, &node),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "racklet",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("racklet: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    let (set, diags) = ManifestSet::load(paths);
    for d in &diags {
        println!("{d}");
    }
    let user = set.entries.iter().filter(|e| !e.builtin).count();
    if diags.is_empty() {
        eprintln!("{user} resource(s) valid");
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s) found", diags.len());
        ExitCode::FAILURE
    }
}

fn schema(kind: Option<&str>) -> anyhow::Result<()> {
    let kinds: Vec<Kind> = match kind {
        None => Kind::ALL.to_vec(),
        Some(k) => vec![Kind::parse(k).ok_or_else(|| {
            let known: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            anyhow::anyhow!("unknown kind {k:?}; known kinds are: {}", known.join(", "))
        })?],
    };
    let out: serde_json::Map<String, serde_json::Value> = kinds
        .into_iter()
        .map(|k| (k.as_str().to_string(), k.schema()))
        .collect();
    let value = if out.len() == 1 {
        out.into_iter().next().map(|(_, v)| v).unwrap_or_default()
    } else {
        serde_json::Value::Object(out)
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
