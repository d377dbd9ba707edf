//! `zun-compute-rs`: the command line. Everything it does lives in the library.
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the decode, the reply encode and the RPC server are allocation-bound
/// (docs/benchmarks.md, "Issue 13, seventh round").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "zun-compute-rs", version, about = "A drop-in replacement for OpenStack Zun's zun-compute")]
struct Cli {
    /// zun.conf to read; may be repeated, later files override earlier ones (as in oslo).
    #[arg(long = "config-file", global = true)]
    config_file: Vec<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the worker (the default).
    Run,
    /// Print the effective configuration (secrets masked) and check that RabbitMQ,
    /// Docker and the database are reachable.
    CheckConfig,
    /// Act as a minimal zun-api: write the row and send the real oslo message.
    Cast(zun_compute_rs::cli::CastArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let files = if cli.config_file.is_empty() { default_config_files() } else { cli.config_file.clone() };
    let settings = match zun_compute_rs::config::Settings::load(&files, std::env::vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zun-compute-rs: {e}");
            return ExitCode::from(2);
        }
    };
    zun_compute_rs::logging::init(&settings);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zun-compute-rs: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => zun_compute_rs::worker::run(settings).await,
            Command::CheckConfig => zun_compute_rs::cli::check_config(&settings).await,
            Command::Cast(args) => zun_compute_rs::cli::cast(&settings, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zun-compute-rs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Like oslo: /etc/zun/zun.conf when it exists and no --config-file is given.
fn default_config_files() -> Vec<PathBuf> {
    let p = PathBuf::from("/etc/zun/zun.conf");
    if p.exists() {
        vec![p]
    } else {
        Vec::new()
    }
}
