//! Waiting for a node's publication scan: measuring while it runs would charge its hashing to
//! whatever is measured. Shared with p2p_scale, which waits with a longer timeout of its own.

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::http_client::HttpConnection;
use crate::servers::ServerProcess;
use crate::BenchResult;

/// How long a publication scan (hashing every NAR of the fixture once) may take.
const SCAN_TIMEOUT: Duration = Duration::from_secs(120);
/// How often `GET /status` is polled while waiting for a scan.
const SCAN_POLL: Duration = Duration::from_millis(20);

/// Polls `GET /status` until the publication scan has gone over the whole store, and returns the
/// last answer; `None` when the node has no such route (nothing to wait for).
pub(crate) fn wait_until_scanned(
    runtime: &Runtime,
    node: &ServerProcess,
) -> BenchResult<Option<serde_json::Value>> {
    let deadline = Instant::now() + SCAN_TIMEOUT;
    loop {
        let Some(status) = get_status(runtime, node)? else {
            return Ok(None);
        };
        if scan_finished(&status) {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Err(
                format!("A's scan did not finish within {SCAN_TIMEOUT:?}: {status}").into(),
            );
        }
        // Fine-grained: the time to the end of the scan is a measurement (multi_source.rs).
        std::thread::sleep(SCAN_POLL);
    }
}

/// Whether `GET /status` says the publication scan has gone over the whole store.
pub(crate) fn scan_finished(status: &serde_json::Value) -> bool {
    let scan = &status["scan"];
    let number = |field: &str| scan[field].as_u64().unwrap_or(0);
    // Before the scan starts it is not running either, and has no paths to go.
    scan["running"] == false
        && number("paths_total") > 0
        && number("paths_done") + number("paths_failed") >= number("paths_total")
}

/// `GET /status` of `node`, parsed; `None` when the node has no such route.
pub(crate) fn get_status(
    runtime: &Runtime,
    node: &ServerProcess,
) -> BenchResult<Option<serde_json::Value>> {
    let answer = runtime.block_on(async {
        HttpConnection::connect(node.addr)
            .await?
            .get_text("/status")
            .await
    })?;
    if answer.status == 404 {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&answer.body)?))
}
