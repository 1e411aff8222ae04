//! Peerix: a peer-to-peer binary cache for Nix.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use peerix::cli::{Cli, Command};
use peerix::{cid, daemon, doctor, ipfs_cli, keygen, rescan_cli, status_cli, tracker, why_cli};
use tracing_subscriber::EnvFilter;

/// Bulk transfers allocate and free buffers of 128 KiB to 1 MiB at a high rate on many threads.
/// glibc's malloc hands such freed memory back to the kernel and faults it in again (with the
/// kernel zeroing each page): a sending node took some 41,000 page faults per 256 MiB NAR.
/// mimalloc keeps it for reuse; without transparent huge pages (`no_thp`), which it would
/// otherwise fault in and zero 2 MiB at a time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kademlia warns of states Peerix expects: a node with no peer yet cannot bootstrap (every
/// offline start), and records (which Peerix does not use) failed to replicate.
const EXPECTED_NOISE: &str = "libp2p_kad::behaviour=error";

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => format!("warn,{EXPECTED_NOISE}"),
        1 => format!("info,peerix=info,{EXPECTED_NOISE}"),
        2 => format!("info,peerix=debug,{EXPECTED_NOISE}"),
        _ => "debug,peerix=trace".to_owned(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// What `--check-config` exits with for a bad setting, as clap does for a bad flag.
const BAD_SETTING: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let checking = match &cli.command {
        Command::Serve(args) => args.check_config,
        Command::Tracker(args) => args.check_config,
        _ => false,
    };
    let result = match cli.command {
        Command::Serve(args) => daemon::run(*args).map_err(|e| e.to_string()),
        Command::Keygen(args) => keygen::run(&args).map_err(|e| e.to_string()),
        Command::Cid(args) => cid::run(&args).map_err(|e| e.to_string()),
        Command::Ipfs(args) => ipfs_cli::run(&args).map_err(|e| e.to_string()),
        Command::Tracker(args) if args.check_config => {
            tracker::check_config::check_config(&args.settings()).map_err(|e| e.to_string())
        }
        Command::Tracker(args) => tracker::server::run(args.settings()).map_err(|e| e.to_string()),
        Command::Status(args) => status_cli::run(&args).map_err(|e| e.to_string()),
        Command::Why(args) => why_cli::run(&args).map_err(|e| e.to_string()),
        Command::Doctor(args) => doctor::run(&args).map_err(|e| e.to_string()),
        Command::Rescan(args) => rescan_cli::run(&args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerix: {e:#}");
            match checking {
                true => ExitCode::from(BAD_SETTING),
                false => ExitCode::FAILURE,
            }
        }
    }
}
