//! `peerix doctor`: checks a running `peerix serve` and Nix's configuration and explains, one
//! line a check, what is well and what to do about the rest. It replaces the old program's
//! `diagnose_network.sh`.

pub mod checks;
pub mod nix_config;

use std::io::Read;

use thiserror::Error;

use crate::cli::DoctorArgs;
use crate::status_cli;
use checks::Verdict;

/// `/nix-cache-info` is a few lines.
const MAX_CACHE_INFO: u64 = 64 << 10;

#[derive(Debug, Error)]
pub enum DoctorError {
    #[error("{failed} of {total} checks failed")]
    Failed { failed: usize, total: usize },
}

/// Why `GET /nix-cache-info` gave Nix no cache description.
#[derive(Debug, Error)]
pub enum CacheInfoError {
    #[error("no answer: {0}")]
    Unreachable(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("the answer names no StoreDir")]
    NotCacheInfo,
}

pub fn run(args: &DoctorArgs) -> Result<(), DoctorError> {
    let api = args.api.api.trim_end_matches('/');
    let agent = status_cli::agent();
    let status = status_cli::fetch(&agent, &args.api.url("/status"));
    let cache_info = status.is_ok().then(|| cache_info(&agent, api));
    let nix = nix_config::load();
    let checks = checks::all(api, &status, cache_info.as_ref(), &nix);
    for check in &checks {
        println!("{check}");
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    match failed {
        0 => Ok(()),
        failed => Err(DoctorError::Failed {
            failed,
            total: checks.len(),
        }),
    }
}

/// `GET {api}/nix-cache-info`: what Nix asks first of a substituter; it answers from the store.
fn cache_info(agent: &ureq::Agent, api: &str) -> Result<(), CacheInfoError> {
    let response = agent
        .get(format!("{api}/nix-cache-info"))
        .call()
        .map_err(|e| CacheInfoError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(CacheInfoError::Status(status));
    }
    let mut body = String::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_CACHE_INFO)
        .read_to_string(&mut body)
        .map_err(|e| CacheInfoError::Unreachable(e.to_string()))?;
    match body.lines().any(|line| line.starts_with("StoreDir:")) {
        true => Ok(()),
        false => Err(CacheInfoError::NotCacheInfo),
    }
}
