//! The single-core SHA-256 baseline the bulk-transfer targets are set against: `openssl speed
//! -evp sha256 -bytes 1048576 -seconds 3` (no `-multi`: one core), run in the same bench run as
//! what it is compared with.

use std::process::Command;

/// One run of `openssl speed`, in MB/s (1e6 bytes/s); an error says why there is no figure.
pub(crate) fn sha256_mb_s() -> Result<f64, String> {
    let output = Command::new("openssl")
        .args([
            "speed", "-evp", "sha256", "-bytes", "1048576", "-seconds", "3",
        ])
        .output()
        .map_err(|e| format!("openssl speed: {e}"))?;
    if !output.status.success() {
        return Err(format!("openssl speed exited with {}", output.status));
    }
    parse_speed(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| "openssl speed printed no sha256 figure".to_owned())
}

/// The figure of the result line `sha256   1722027.63k`, which is in 1000s of bytes per second.
fn parse_speed(stdout: &str) -> Option<f64> {
    let line = stdout.lines().rev().find(|l| l.starts_with("sha256"))?;
    let kilobytes: f64 = line
        .split_whitespace()
        .last()?
        .strip_suffix('k')?
        .parse()
        .ok()?;
    Some(kilobytes / 1000.0)
}
