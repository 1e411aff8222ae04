//! What every bench binary here shares: the Peerix binary under test, the machine's load, the
//! report file under `target/`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The `peerix` binary the bench runs: the one cargo built, or `PEERIX_BIN` (an older build, to
/// compare two versions by alternating runs of the same bench).
pub(crate) fn peerix_bin() -> PathBuf {
    std::env::var_os("PEERIX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_peerix")))
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
pub(crate) fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The report's first line: the cores, and the load when the run started and now.
pub(crate) fn machine_line(load_at_start: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "- nproc: {cores}; load average at start: {load_at_start}, at end: {}\n",
        load_average()
    )
}

/// Writes `report` to `target/<file_name>` (or under `CARGO_TARGET_DIR`); returns its path.
pub(crate) fn write_report(file_name: &str, report: &str) -> io::Result<PathBuf> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    fs::create_dir_all(&target_dir)?;
    let file = target_dir.join(file_name);
    fs::write(&file, report)?;
    Ok(file)
}
