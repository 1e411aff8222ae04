//! `peerix tracker --check-config`: the settings checked as a start would need them (the
//! database creatable or writable), printed, with nothing bound, opened or written.

use super::server::{ServerError, Settings};

/// Checks `settings` and prints what would run.
pub fn check_config(settings: &Settings) -> Result<(), ServerError> {
    crate::fs_access::writable_file(&settings.db_path).map_err(|source| ServerError::DbPath {
        path: settings.db_path.clone(),
        source,
    })?;
    let limits = settings.server_limits;
    println!("peerix tracker: configuration valid (nothing started)");
    println!("http: http://{}", settings.listen);
    println!("database: {}", settings.db_path.display());
    println!("trusted proxies: {}", settings.trusted_proxies.len());
    println!(
        "limits: peers forgotten {}s after their last heartbeat, {}s clock skew, {}/s per IP \
         (burst {}), {}/s writes per peer (burst {}), {} HTTP connections, {}s request-head \
         timeout",
        settings.ttl,
        settings.max_skew,
        settings.per_ip.per_second,
        settings.per_ip.burst,
        settings.per_peer.per_second,
        settings.per_peer.burst,
        limits.max_connections,
        limits.header_timeout.as_secs(),
    );
    Ok(())
}
