//! `racklet`: the command-line entry point. Thin: each subcommand lives in its own module
//! and calls the library crates.

mod bench;
mod up;

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
    Up(up::UpArgs),
    /// Measure the twin's and the validator's throughput against named peers.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { paths } => return validate(&paths),
        Command::Schema { kind } => schema(kind.as_deref()),
        Command::Up(args) => up::run(args),
        Command::Bench(args) => bench::run(args),
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
        .map(|k| (k.as_str().to_string(), k.schema().clone()))
        .collect();
    let value = if out.len() == 1 {
        out.into_iter().next().map(|(_, v)| v).unwrap_or_default()
    } else {
        serde_json::Value::Object(out)
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
