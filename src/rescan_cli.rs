//! `peerix rescan`: a running `peerix serve` looks at the store again now (`POST /scan/now`), so
//! that paths a system switch added are published without waiting for the next scan. The NixOS
//! module runs it when `/run/current-system` changes.

use crate::cli::RescanArgs;
use crate::status_cli::{agent, press, text, StatusError};

pub fn run(args: &RescanArgs) -> Result<(), StatusError> {
    let scan = press(&agent(), &args.api.url("/scan/now"))?;
    let state = if scan["paused"] == true {
        "the scan is paused: it looks again once resumed"
    } else if scan["running"] == true {
        "a scan is under way: another starts when it ends"
    } else {
        "looking at the store again"
    };
    println!(
        "{state} ({}/{} paths in the current scan)",
        text(&scan["paths_done"]),
        text(&scan["paths_total"])
    );
    Ok(())
}
