//! Peerix: a peer-to-peer binary cache for Nix.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use peerix::cli::{Cli, Command};
use peerix::{cid, daemon, ipfs_cli, keygen, tracker, why_cli};
use tracing_subscriber::EnvFilter;

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,peerix=info",
        2 => "info,peerix=debug",
        _ => "debug,peerix=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Serve(args) => daemon::run(*args).map_err(|e| e.to_string()),
        Command::Keygen(args) => keygen::run(&args),
        Command::Cid(args) => cid::run(&args),
        Command::Ipfs(args) => ipfs_cli::run(&args),
        Command::Tracker(args) => tracker::server::run(args.settings()).map_err(|e| e.to_string()),
        Command::Why(args) => why_cli::run(&args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerix: {e:#}");
            ExitCode::FAILURE
        }
    }
}
